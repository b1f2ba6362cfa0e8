//! Long-polls (`GET /v1/orders/{id}?wait=`) in flight. Each holds a
//! connection here and at the order service for up to 30 s, so a customer
//! may hold a few at once and the process a bounded number; one more is
//! answered `429 too_many_waits` at once, and a plain read (`wait=0`) is
//! always served.

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use choreo_kit::HttpError;
use serde::{Deserialize, Serialize};
use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct WaitSettings {
    /// Long-polls one customer may have in flight.
    pub per_customer: usize,
    /// Long-polls the process holds at once, all customers together.
    pub total: usize,
}

impl Default for WaitSettings {
    fn default() -> Self {
        Self {
            per_customer: 4,
            total: 256,
        }
    }
}

#[derive(Clone)]
pub(crate) struct Waits(Arc<Inner>);

struct Inner {
    limits: WaitSettings,
    /// All in flight, and each customer's.
    held: Mutex<(usize, HashMap<String, usize>)>,
}

/// One long-poll admitted; dropping it makes room for the next.
pub(crate) struct Held {
    waits: Waits,
    customer: String,
}

/// Over a cap, with whose.
pub(crate) struct TooMany(&'static str);

impl Waits {
    pub(crate) fn new(limits: &WaitSettings) -> Self {
        Self(Arc::new(Inner {
            limits: limits.clone(),
            held: Mutex::default(),
        }))
    }

    fn held(&self) -> MutexGuard<'_, (usize, HashMap<String, usize>)> {
        // Plain counts: a panic while holding the lock leaves them usable.
        self.0.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Admits one long-poll of `customer`'s, or says which cap it is over.
    pub(crate) fn enter(&self, customer: &str) -> Result<Held, TooMany> {
        let mut held = self.held();
        let (total, customers) = &mut *held;
        if *total >= self.0.limits.total {
            return Err(TooMany("this edge"));
        }
        let mine = customers.entry(customer.to_owned()).or_default();
        if *mine >= self.0.limits.per_customer {
            return Err(TooMany("this customer"));
        }
        *mine += 1;
        *total += 1;
        Ok(Held {
            waits: self.clone(),
            customer: customer.to_owned(),
        })
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut held = self.waits.held();
        let (total, customers) = &mut *held;
        *total = total.saturating_sub(1);
        if let Some(mine) = customers.get_mut(&self.customer) {
            *mine = mine.saturating_sub(1);
            if *mine == 0 {
                customers.remove(&self.customer);
            }
        }
    }
}

impl IntoResponse for TooMany {
    fn into_response(self) -> Response {
        (
            [(header::RETRY_AFTER, HeaderValue::from_static("1"))],
            HttpError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_waits",
                format!(
                    "{} holds as many long-polls as it may; retry in a second, or read without wait",
                    self.0
                ),
            ),
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_cap_holds_and_a_finished_wait_makes_room() {
        let waits = Waits::new(&WaitSettings {
            per_customer: 2,
            total: 3,
        });
        let a1 = waits.enter("alice").ok();
        let _a2 = waits.enter("alice").ok();
        assert!(waits.enter("alice").is_err(), "alice's third");
        let _b1 = waits.enter("bob").ok();
        assert!(matches!(waits.enter("carol"), Err(TooMany("this edge"))));
        drop(a1);
        assert!(waits.enter("alice").is_ok());
    }
}
