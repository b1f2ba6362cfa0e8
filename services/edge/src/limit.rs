//! Rate limits, so that one client cannot flood the services behind the
//! edge: per client address before authentication (a flood of bad tokens is
//! limited too) and per customer after it. Each is a token bucket (GCRA,
//! from `governor`) refilled at a steady rate with room for a burst; a
//! request over the limit is answered `429` with `Retry-After`.
//!
//! The address is the TCP peer: behind a proxy every client shares the
//! proxy's bucket, so raise the address limit there (or set it to 0, off)
//! and rely on the per-customer one.

use crate::auth::Caller;
use axum::{
    extract::{ConnectInfo, Request, State},
    http::{HeaderValue, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use choreo_kit::{CancellationToken, HttpError};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter, clock::Clock};
use serde::{Deserialize, Serialize};
use std::{
    hash::Hash,
    net::{IpAddr, SocketAddr},
    num::NonZeroU32,
    sync::Arc,
    time::Duration,
};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RateLimitSettings {
    /// Requests a customer may make per minute, sustained; 0 turns it off.
    pub customer_per_minute: u32,
    /// How many a customer may make at once above the sustained rate.
    pub customer_burst: u32,
    /// Requests one client address may make per minute; 0 turns it off.
    pub address_per_minute: u32,
    pub address_burst: u32,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            customer_per_minute: 1_200,
            customer_burst: 60,
            address_per_minute: 6_000,
            address_burst: 300,
        }
    }
}

/// The edge's two limiters; `None` where a limit is off.
#[derive(Clone)]
pub(crate) struct Limits {
    customer: Option<Arc<DefaultKeyedRateLimiter<String>>>,
    address: Option<Arc<DefaultKeyedRateLimiter<IpAddr>>>,
}

fn limiter<K: Clone + Hash + Eq>(
    per_minute: u32,
    burst: u32,
) -> Option<Arc<DefaultKeyedRateLimiter<K>>> {
    let rate = NonZeroU32::new(per_minute)?;
    let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
    Some(Arc::new(RateLimiter::keyed(
        Quota::per_minute(rate).allow_burst(burst),
    )))
}

impl Limits {
    pub(crate) fn new(settings: &RateLimitSettings) -> Self {
        Self {
            customer: limiter(settings.customer_per_minute, settings.customer_burst),
            address: limiter(settings.address_per_minute, settings.address_burst),
        }
    }

    /// Forgets clients whose buckets are full again, every minute until
    /// `shutdown`, so that memory follows the active clients only.
    pub(crate) async fn forget_idle_until(self, shutdown: CancellationToken) {
        let mut every = tokio::time::interval(Duration::from_secs(60));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = every.tick() => {}
            }
            if let Some(l) = &self.customer {
                l.retain_recent();
            }
            if let Some(l) = &self.address {
                l.retain_recent();
            }
        }
    }
}

/// `None` when `key` may go on; otherwise how long it should wait.
fn check<K: Clone + Hash + Eq>(limiter: &DefaultKeyedRateLimiter<K>, key: &K) -> Option<Duration> {
    limiter
        .check_key(key)
        .err()
        .map(|not_until| not_until.wait_time_from(limiter.clock().now()))
}

fn too_many(wait: Duration, whose: &str) -> Response {
    // Whole seconds, rounded up: retrying at the announced time succeeds.
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let seconds = seconds.max(1);
    (
        [(header::RETRY_AFTER, HeaderValue::from(seconds))],
        HttpError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("too many requests from this {whose}; retry after {seconds} s"),
        ),
    )
        .into_response()
}

/// The per-address limit, before authentication.
pub(crate) async fn by_address(
    State(limits): State<Limits>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(limiter) = &limits.address {
        let peer = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip());
        if let Some(wait) = peer.and_then(|ip| check(limiter, &ip)) {
            return too_many(wait, "client address");
        }
    }
    next.run(request).await
}

/// The per-customer limit, after authentication.
pub(crate) async fn by_customer(
    State(limits): State<Limits>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(limiter) = &limits.customer {
        let customer = request.extensions().get::<Caller>().map(|c| &c.customer);
        if let Some(wait) = customer.and_then(|c| check(limiter, c)) {
            return too_many(wait, "customer");
        }
    }
    next.run(request).await
}
