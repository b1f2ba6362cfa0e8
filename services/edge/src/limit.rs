//! Rate limits, so that one client cannot flood the services behind the
//! edge: per client address before authentication (a flood of bad tokens is
//! limited too) and per customer after it. Each is a token bucket (GCRA,
//! from `governor`) refilled at a steady rate with room for a burst; a
//! request over the limit is answered `429` with `Retry-After`.
//!
//! The address is the TCP peer's, unless the peer is one of the trusted
//! proxies (`rate_limit.trusted_proxies`, the ingress's ranges): then it is
//! the address that proxy says it forwarded for, the right-most one in
//! `X-Forwarded-For` that is not a trusted proxy itself. Anyone else's
//! `X-Forwarded-For` is ignored, so a client cannot pick its own bucket.

use crate::auth::Caller;
use axum::{
    extract::{ConnectInfo, Request, State},
    http::{HeaderValue, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use choreo_kit::{CancellationToken, HttpError};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter, clock::Clock};
use ipnet::IpNet;
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
    /// The proxies whose `X-Forwarded-For` names the client, as
    /// comma-separated addresses or CIDR ranges (`10.0.0.0/8,fd00::/8`);
    /// empty: none, the peer is the client.
    pub trusted_proxies: String,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            customer_per_minute: 1_200,
            customer_burst: 60,
            address_per_minute: 6_000,
            address_burst: 300,
            trusted_proxies: String::new(),
        }
    }
}

/// The edge's two limiters; `None` where a limit is off.
#[derive(Clone)]
pub(crate) struct Limits {
    customer: Option<Arc<DefaultKeyedRateLimiter<String>>>,
    address: Option<Arc<DefaultKeyedRateLimiter<IpAddr>>>,
    trusted: Arc<[IpNet]>,
}

/// `rate_limit.trusted_proxies` names something that is no address or range.
#[derive(Debug, thiserror::Error)]
#[error("rate_limit.trusted_proxies: {0:?} is not an IP address or CIDR range")]
pub struct BadProxy(String);

/// The ranges of `listed`, comma-separated; a bare address is its own range.
fn trusted_proxies(listed: &str) -> Result<Vec<IpNet>, BadProxy> {
    listed
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| BadProxy(s.to_owned()))
        })
        .collect()
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
    /// # Errors
    /// When a trusted proxy is not an address or range.
    pub(crate) fn new(settings: &RateLimitSettings) -> Result<Self, BadProxy> {
        Ok(Self {
            customer: limiter(settings.customer_per_minute, settings.customer_burst),
            address: limiter(settings.address_per_minute, settings.address_burst),
            trusted: trusted_proxies(&settings.trusted_proxies)?.into(),
        })
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.trusted.iter().any(|net| net.contains(&ip))
    }

    /// Who sent `request`: the peer, or, when the peer is a trusted proxy,
    /// the right-most address in `X-Forwarded-For` that is not one (each
    /// proxy appends the address it was reached from; only the entries
    /// trusted proxies appended can be believed). Unreadable entries end
    /// the walk at the last address believed.
    fn client_of(&self, peer: IpAddr, headers: &axum::http::HeaderMap) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let forwarded: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        let mut client = peer;
        for entry in forwarded.iter().rev() {
            let Ok(ip) = entry.parse::<IpAddr>() else {
                break;
            };
            client = ip;
            if !self.trusts(ip) {
                break;
            }
        }
        client
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
            .map(|ConnectInfo(addr)| client(limits.client_of(addr.ip(), request.headers())));
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
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let ip = |s: &str| s.parse::<IpAddr>().expect("an address");
        let limits = Limits::new(&RateLimitSettings {
            trusted_proxies: "10.0.0.0/8, 192.0.2.1".into(),
            ..Default::default()
        })
        .expect("valid ranges");
        let mut headers = axum::http::HeaderMap::new();
        // The client's own claim first, then what two proxies appended.
        headers.append(
            "x-forwarded-for",
            "6.6.6.6, 203.0.113.9".parse().expect("ascii"),
        );
        headers.append("x-forwarded-for", "10.1.2.3".parse().expect("ascii"));
        assert_eq!(
            limits.client_of(ip("10.9.9.9"), &headers),
            ip("203.0.113.9")
        );
        assert_eq!(
            limits.client_of(ip("192.0.2.1"), &headers),
            ip("203.0.113.9")
        );
        // From anyone else the header is the client's own word.
        assert_eq!(
            limits.client_of(ip("198.51.100.4"), &headers),
            ip("198.51.100.4")
        );
        // A proxy that forwarded nothing readable is the client.
        let junk: axum::http::HeaderMap = [(
            header::HeaderName::from_static("x-forwarded-for"),
            "unknown".parse().expect("ascii"),
        )]
        .into_iter()
        .collect();
        assert_eq!(limits.client_of(ip("10.9.9.9"), &junk), ip("10.9.9.9"));
        assert!(
            Limits::new(&RateLimitSettings {
                trusted_proxies: "10.0.0.0/33".into(),
                ..Default::default()
            })
            .is_err()
        );
    }

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
