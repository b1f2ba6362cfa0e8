//! What no request may carry, whatever its shape: control characters. The
//! shapes themselves, and the rules of each field, are the contract's
//! (`choreo_contract`): a body parses into its validating types there.

use choreo_kit::HttpError;

/// 422 naming every field whose text holds a C0 control character (NUL,
/// tab, newline, escape, ...): no field of the API takes one, and some
/// stores cannot (PostgreSQL refuses NUL in text and `jsonb`), so they are
/// refused here, as the caller's mistake, before any service sees them.
pub(crate) fn no_control_characters(document: &serde_json::Value) -> Result<(), HttpError> {
    let mut problems = Vec::new();
    find_control_characters(document, &mut String::new(), &mut problems);
    verdict(problems)
}

fn find_control_characters(
    value: &serde_json::Value,
    path: &mut String,
    problems: &mut Vec<String>,
) {
    let controlled = |s: &str| s.chars().any(|c| c <= '\u{1f}');
    let at = |path: &str| {
        if path.is_empty() {
            "the body".to_owned()
        } else {
            path.to_owned()
        }
    };
    match value {
        serde_json::Value::String(s) if controlled(s) => {
            problems.push(format!("{} must not contain control characters", at(path)));
        }
        serde_json::Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                find_control_characters(item, path, problems);
                path.truncate(len);
            }
        }
        serde_json::Value::Object(fields) => {
            for (name, field) in fields {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                if controlled(name) {
                    problems.push(format!(
                        "a field name in {} contains control characters",
                        at(&path[..len])
                    ));
                    continue;
                }
                path.push_str(name);
                find_control_characters(field, path, problems);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

fn verdict(problems: Vec<String>) -> Result<(), HttpError> {
    if problems.is_empty() {
        Ok(())
    } else {
        Err(HttpError::invalid(problems.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_refused_in_every_string_naming_the_field() {
        let document = serde_json::json!({
            "items": [{"sku": "TEA-01"}, {"sku": "TEA\u{0}02"}],
            "shipping_address": {"name": "Al\tice", "line1": "ok", "city": "Ber\u{1b}lin"},
            "tea\u{7}": 1,
        });
        let err = no_control_characters(&document).expect_err("refused");
        assert_eq!(err.status, axum::http::StatusCode::UNPROCESSABLE_ENTITY);
        for field in [
            "items[1].sku",
            "shipping_address.name",
            "shipping_address.city",
            "a field name in the body",
        ] {
            assert!(
                err.message.contains(field),
                "{field} missing from {}",
                err.message
            );
        }
        assert!(!err.message.contains("line1"), "{}", err.message);
        // Text outside C0 (accents, other scripts) is fine.
        let fine = serde_json::json!({"name": "Zoë Ōta — 東京", "n": 3});
        assert!(no_control_characters(&fine).is_ok());
    }
}
