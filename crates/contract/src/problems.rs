//! Every problem of a request, each naming its field.

use choreo_kit::HttpError;
use std::fmt;

/// What is wrong with a request: one entry per problem, each starting with
/// the field's path (`items[1].sku must be ...`). Answered as one 422.
///
/// Not a `std::error::Error` on purpose: `HttpError` converts any error into
/// an opaque 500, and these are the caller's mistakes, converted into a 422
/// by the `From` below.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Problems(Vec<String>);

impl Problems {
    /// Notes `field`'s problem, if `parsed` has one; the value otherwise.
    pub(crate) fn check<T>(
        &mut self,
        field: impl fmt::Display,
        parsed: Result<T, Invalid>,
    ) -> Option<T> {
        parsed.map_err(|invalid| self.push(invalid.at(field))).ok()
    }

    pub(crate) fn push(&mut self, problem: String) {
        self.0.push(problem);
    }

    /// The value `build` makes from the parsed fields, if no problem was
    /// noted. `build` sees the fields as `Option`s, all `Some` when no
    /// problem was noted.
    pub(crate) fn or_value<T>(self, build: impl FnOnce() -> Option<T>) -> Result<T, Problems> {
        match build() {
            Some(value) if self.0.is_empty() => Ok(value),
            _ => Err(self),
        }
    }
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("; "))
    }
}

impl From<Problems> for HttpError {
    fn from(problems: Problems) -> Self {
        HttpError::invalid(problems.to_string())
    }
}

/// Why one value is not valid, without its field: `must be between 1 and
/// 1000`. [`Invalid::at`] names the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid(pub(crate) String);

impl Invalid {
    /// The problem as a request reports it: `field` first.
    pub fn at(&self, field: impl fmt::Display) -> String {
        format!("{field} {}", self.0)
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
