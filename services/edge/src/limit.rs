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

/// The bucket an address counts against: an IPv4 address (also when
/// written IPv4-mapped), or an IPv6 address's /64, which one subscriber
/// usually holds whole and could otherwise walk through.
fn client(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(prefix.into())
        }
        v4 => v4,
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
            .map(|ConnectInfo(addr)| client(addr.ip()));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_count_per_ipv4_address_and_per_ipv6_64() {
        let ip = |s: &str| s.parse::<IpAddr>().expect("an address");
        assert_eq!(client(ip("192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(client(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(client(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(
            client(ip("2001:db8:1:2:ffff:ffff:ffff:ffff")),
            client(ip("2001:db8:1:2::9"))
        );
        assert_ne!(client(ip("2001:db8:1:3::1")), client(ip("2001:db8:1:2::1")));
    }
}
