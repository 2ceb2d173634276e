//! Rate limits (API.md "Rate limits"): per client address on every route
//! but the operations ones (`/healthz`, `/readyz`, `/metrics`), and per user
//! on every authenticated write.
//!
//! Each request falls in one class, counted per client address:
//! [`Class::Auth`] (`POST /api/auth/register` and `/api/auth/login`),
//! [`Class::Socket`] (`GET /api/ws`, the WebSocket upgrade),
//! [`Class::Write`] (any other POST, PUT, PATCH or DELETE) and
//! [`Class::Read`] (everything else, the web page too). A write that carries
//! a token whose signature and expiry check out is also counted against its
//! user (its own budget). That check is the cheap one (the JWT alone,
//! no database): this middleware runs before the idempotency claim and the
//! handler, so a refused request costs no query and stores nothing. A token
//! whose session was revoked still counts against its (real) user, since
//! only the gateway's secret can sign one.
//!
//! The limiters are governor's keyed GCRA limiters (in memory, per gateway
//! process): a class allows `burst` requests at once and refills one every
//! `60 s / per_minute`. Keys that have refilled are forgotten by
//! [`Limits::forget_idle`], which a background task calls every minute, so
//! the maps hold only the addresses and users seen in the last few minutes.
//!
//! IPv6 clients are counted per /64 (one host usually holds a whole /64).
//!
//! # Headers
//! Every response of a limited route carries `RateLimit-Limit` (the burst:
//! requests allowed at once), `RateLimit-Remaining` (requests left right
//! now) and `RateLimit-Reset` (whole seconds until the budget is full
//! again); when two budgets apply (address and user), those of the one with
//! less left. A refused request is `429 rate_limited` with `Retry-After`
//! (whole seconds, at least 1, until the next request is allowed).
//!
//! # Client address
//! The TCP peer, unless it is one of the trusted proxies: then the
//! right-most address of `X-Forwarded-For` that is not a trusted proxy (a
//! client can prepend anything, but each trusted proxy appends the address
//! it saw).

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::{DefaultKeyedRateLimiter, Quota};
use ipnet::IpNet;
use uuid::Uuid;

use crate::error::ApiError;
use crate::extract::token;
use crate::AppState;

/// How often idle keys are forgotten.
pub const FORGET_EVERY: Duration = Duration::from_secs(60);

/// One class's budget: `burst` at once, refilled at `per_minute`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Requests refilled per minute.
    pub per_minute: u32,
    /// Requests allowed at once.
    pub burst: u32,
}

impl Rate {
    fn quota(self) -> Quota {
        let per_minute = self.per_minute.max(1);
        let period = Duration::from_nanos(60_000_000_000 / u64::from(per_minute)).max(
            // Quota::with_period refuses zero.
            Duration::from_nanos(1),
        );
        let burst = NonZeroU32::new(self.burst.max(1)).unwrap_or(NonZeroU32::MIN);
        Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_minute(NonZeroU32::MIN))
            .allow_burst(burst)
    }
}

/// The rate-limit settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Off: no limit, no header (benchmarks, most tests).
    pub enabled: bool,
    /// Reads per client address.
    pub read: Rate,
    /// Writes per client address.
    pub write: Rate,
    /// Registrations and logins per client address.
    pub auth: Rate,
    /// WebSocket upgrades per client address.
    pub socket: Rate,
    /// Writes per user.
    pub user_write: Rate,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            enabled: true,
            read: Rate {
                per_minute: 600,
                burst: 240,
            },
            write: Rate {
                per_minute: 120,
                burst: 60,
            },
            auth: Rate {
                per_minute: 10,
                burst: 10,
            },
            socket: Rate {
                per_minute: 30,
                burst: 30,
            },
            user_write: Rate {
                per_minute: 60,
                burst: 30,
            },
            trusted_proxies: Vec::new(),
        }
    }
}

/// Parses `FORUM_TRUSTED_PROXIES`: comma-separated IP addresses and CIDRs.
///
/// # Errors
/// The first entry that is neither, as text.
pub fn parse_proxies(s: &str) -> Result<Vec<IpNet>, String> {
    s.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|e| {
            e.parse::<IpNet>()
                .or_else(|_| e.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("{e:?} is not an IP address or CIDR"))
        })
        .collect()
}

/// What a request is counted as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// GET, HEAD, OPTIONS (per address).
    Read,
    /// Other methods (per address).
    Write,
    /// Register and login (per address).
    Auth,
    /// The WebSocket upgrade (per address).
    Socket,
}

impl Class {
    /// The class's name in `forum_rate_limited_total{limit}`.
    pub fn name(self) -> &'static str {
        match self {
            Class::Read => "read",
            Class::Write => "write",
            Class::Auth => "auth",
            Class::Socket => "socket",
        }
    }

    /// The per-address class of a request, or `None` for the operations
    /// routes, which are not limited.
    pub fn of(method: &Method, path: &str) -> Option<Class> {
        if matches!(path, "/healthz" | "/readyz" | "/metrics") {
            return None;
        }
        let read = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
        Some(match path.trim_end_matches('/') {
            "/api/ws" if read => Class::Socket,
            "/api/auth/register" | "/api/auth/login" if !read => Class::Auth,
            _ if read => Class::Read,
            _ => Class::Write,
        })
    }
}

type Keyed<K> = DefaultKeyedRateLimiter<K, StateInformationMiddleware>;

/// The state of one budget after a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// `RateLimit-Limit`.
    pub limit: u32,
    /// `RateLimit-Remaining`.
    pub remaining: u32,
    /// `RateLimit-Reset`, seconds.
    pub reset: u64,
    /// `Retry-After` seconds when refused.
    pub refused: Option<u64>,
}

impl Budget {
    /// Writes the `RateLimit-*` headers.
    pub fn write_headers(&self, headers: &mut HeaderMap) {
        for (name, value) in [
            ("ratelimit-limit", u64::from(self.limit)),
            ("ratelimit-remaining", u64::from(self.remaining)),
            ("ratelimit-reset", self.reset),
        ] {
            headers.insert(name, HeaderValue::from(value));
        }
    }

    /// The tighter of two budgets: a refused one, else the one with less left.
    fn tighter(self, other: Budget) -> Budget {
        match (self.refused, other.refused) {
            (Some(a), Some(b)) => {
                if a >= b {
                    self
                } else {
                    other
                }
            }
            (Some(_), None) => self,
            (None, Some(_)) => other,
            (None, None) => {
                if (self.remaining, std::cmp::Reverse(self.reset))
                    <= (other.remaining, std::cmp::Reverse(other.reset))
                {
                    self
                } else {
                    other
                }
            }
        }
    }
}

fn secs_up(d: Duration) -> u64 {
    let s = d.as_secs();
    if d.subsec_nanos() > 0 {
        s + 1
    } else {
        s
    }
}

struct Limiter<K: std::hash::Hash + Eq + Clone> {
    inner: Keyed<K>,
    quota: Quota,
}

impl<K: std::hash::Hash + Eq + Clone> Limiter<K> {
    fn new(rate: Rate) -> Self {
        let quota = rate.quota();
        Limiter {
            inner: DefaultKeyedRateLimiter::dashmap(quota)
                .with_middleware::<StateInformationMiddleware>(),
            quota,
        }
    }

    fn check(&self, key: &K) -> Budget {
        let limit = self.quota.burst_size().get();
        let interval = self.quota.replenish_interval();
        match self.inner.check_key(key) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                Budget {
                    limit,
                    remaining,
                    reset: secs_up(interval * (limit - remaining.min(limit))),
                    refused: None,
                }
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                Budget {
                    limit,
                    remaining: 0,
                    reset: secs_up(wait + interval * (limit - 1)).max(1),
                    refused: Some(secs_up(wait).max(1)),
                }
            }
        }
    }

    fn forget_idle(&self) {
        self.inner.retain_recent();
        self.inner.shrink_to_fit();
    }

    fn len(&self) -> usize {
        self.inner.len()
    }
}

struct Inner {
    settings: Settings,
    read: Limiter<IpAddr>,
    write: Limiter<IpAddr>,
    auth: Limiter<IpAddr>,
    socket: Limiter<IpAddr>,
    user_write: Limiter<Uuid>,
}

/// Every limiter of this gateway; cloning is shallow.
#[derive(Clone)]
pub struct Limits(Arc<Inner>);

impl Limits {
    /// Limiters for `settings`.
    pub fn new(settings: Settings) -> Self {
        Limits(Arc::new(Inner {
            read: Limiter::new(settings.read),
            write: Limiter::new(settings.write),
            auth: Limiter::new(settings.auth),
            socket: Limiter::new(settings.socket),
            user_write: Limiter::new(settings.user_write),
            settings,
        }))
    }

    /// Whether limits apply at all.
    pub fn enabled(&self) -> bool {
        self.0.settings.enabled
    }

    /// Counts one request of `class` from `address`.
    pub fn check_address(&self, class: Class, address: IpAddr) -> Budget {
        let key = bucket(address);
        match class {
            Class::Read => self.0.read.check(&key),
            Class::Write => self.0.write.check(&key),
            Class::Auth => self.0.auth.check(&key),
            Class::Socket => self.0.socket.check(&key),
        }
    }

    /// Counts one write by `user`.
    pub fn check_user(&self, user: Uuid) -> Budget {
        self.0.user_write.check(&user)
    }

    /// Forgets the keys whose budget is full again (they behave as new).
    pub fn forget_idle(&self) {
        let i = &self.0;
        i.read.forget_idle();
        i.write.forget_idle();
        i.auth.forget_idle();
        i.socket.forget_idle();
        i.user_write.forget_idle();
    }

    /// Keys held, over every limiter.
    pub fn keys(&self) -> usize {
        let i = &self.0;
        i.read.len() + i.write.len() + i.auth.len() + i.socket.len() + i.user_write.len()
    }

    /// Calls [`Limits::forget_idle`] every [`FORGET_EVERY`] until `stop`
    /// turns true.
    pub async fn forget_idle_until(self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(FORGET_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => self.forget_idle(),
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }

    /// The client address of a request from `peer` (see the module docs).
    pub fn client_address(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        client_address(&self.0.settings.trusted_proxies, peer, headers)
    }
}

/// An address with IPv4-mapped IPv6 unmapped.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// The key of an address: itself for IPv4, its /64 for IPv6.
fn bucket(ip: IpAddr) -> IpAddr {
    match canonical(ip) {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

/// The client address: `peer`, or when `peer` is trusted, the right-most
/// `X-Forwarded-For` entry that is not trusted (the left-most entry when all
/// are; the last trusted hop when an entry does not parse).
pub fn client_address(trusted: &[IpNet], peer: IpAddr, headers: &HeaderMap) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|net| net.contains(&ip));
    let mut client = canonical(peer);
    if !is_trusted(client) {
        return client;
    }
    let entries: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    for entry in entries.iter().rev() {
        let Some(ip) = parse_forwarded(entry) else {
            break;
        };
        client = canonical(ip);
        if !is_trusted(client) {
            break;
        }
    }
    client
}

/// An `X-Forwarded-For` entry: an address, maybe with a port
/// (`1.2.3.4:5`, `[::1]:5`).
fn parse_forwarded(entry: &str) -> Option<IpAddr> {
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|a| a.ip()))
}

/// The middleware: counts the request, refuses it with 429 when a budget is
/// spent, and writes the headers on every answer of a limited route.
pub async fn layer(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let limits = &state.limits;
    if !limits.enabled() {
        return next.run(req).await;
    }
    let Some(class) = Class::of(req.method(), req.uri().path()) else {
        return next.run(req).await;
    };
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::from([0, 0, 0, 0]), |c| c.0.ip());
    let address = limits.client_address(peer, req.headers());
    let mut budget = limits.check_address(class, address);
    let mut refused_by = class.name();
    if budget.refused.is_none() && !matches!(class, Class::Read | Class::Socket) {
        if let Some(claims) = token(req.headers()).and_then(|t| state.tokens.verify(t)) {
            budget = budget.tighter(limits.check_user(claims.sub));
            refused_by = "user_write";
        }
    }
    let mut response = match budget.refused {
        Some(secs) => {
            tracing::debug!(%address, ?class, secs, "rate limited");
            crate::metrics::rate_limited(refused_by);
            ApiError::RateLimited(secs).into_response()
        }
        None => next.run(req).await,
    };
    budget.write_headers(response.headers_mut());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xff(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_str(v).expect("header"));
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn forwarded_for_is_ignored_from_an_untrusted_peer() {
        let trusted = parse_proxies("10.0.0.0/8").expect("parse");
        assert_eq!(
            client_address(&trusted, ip("192.0.2.7"), &xff("203.0.113.1")),
            ip("192.0.2.7")
        );
    }

    #[test]
    fn the_right_most_untrusted_forwarded_address_is_the_client() {
        let trusted = parse_proxies("127.0.0.1, 10.0.0.0/8").expect("parse");
        let h = xff("198.51.100.9, 203.0.113.1, 10.1.2.3");
        assert_eq!(
            client_address(&trusted, ip("127.0.0.1"), &h),
            ip("203.0.113.1")
        );
    }

    #[test]
    fn a_trusted_peer_without_forwarded_for_is_the_client() {
        let trusted = parse_proxies("127.0.0.1").expect("parse");
        assert_eq!(
            client_address(&trusted, ip("127.0.0.1"), &HeaderMap::new()),
            ip("127.0.0.1")
        );
        assert_eq!(
            client_address(&trusted, ip("127.0.0.1"), &xff("garbage")),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn bad_proxy_lists_are_refused() {
        assert!(parse_proxies("10.0.0.0/8,nonsense").is_err());
        assert_eq!(parse_proxies(" ").expect("empty"), Vec::<IpNet>::new());
    }

    #[test]
    fn ipv6_addresses_share_their_64() {
        assert_eq!(
            bucket(ip("2001:db8:1:2:3:4:5:6")),
            bucket(ip("2001:db8:1:2:ffff::1"))
        );
        assert_eq!(bucket(ip("::ffff:192.0.2.1")), ip("192.0.2.1"));
    }

    #[test]
    fn classes_follow_method_and_path() {
        assert_eq!(Class::of(&Method::GET, "/healthz"), None);
        assert_eq!(Class::of(&Method::GET, "/api/ws"), Some(Class::Socket));
        assert_eq!(
            Class::of(&Method::POST, "/api/auth/login"),
            Some(Class::Auth)
        );
        assert_eq!(Class::of(&Method::POST, "/api/posts"), Some(Class::Write));
        assert_eq!(Class::of(&Method::GET, "/api/posts"), Some(Class::Read));
        assert_eq!(Class::of(&Method::GET, "/"), Some(Class::Read));
    }

    #[test]
    fn a_spent_budget_refuses_with_retry_after_and_headers() {
        let limits = Limits::new(Settings {
            auth: Rate {
                per_minute: 2,
                burst: 2,
            },
            ..Settings::default()
        });
        let a = ip("192.0.2.1");
        let first = limits.check_address(Class::Auth, a);
        assert_eq!((first.limit, first.remaining, first.refused), (2, 1, None));
        assert_eq!(first.reset, 30);
        assert_eq!(limits.check_address(Class::Auth, a).remaining, 0);
        let refused = limits.check_address(Class::Auth, a);
        assert_eq!(refused.remaining, 0);
        let secs = refused.refused.expect("refused");
        assert!((1..=30).contains(&secs), "{secs}");
        // Another address has its own budget.
        assert_eq!(
            limits.check_address(Class::Auth, ip("192.0.2.2")).refused,
            None
        );
    }

    #[test]
    fn idle_keys_are_forgotten() {
        let limits = Limits::new(Settings {
            read: Rate {
                per_minute: 60_000_000,
                burst: 1,
            },
            ..Settings::default()
        });
        for i in 0..100u8 {
            limits.check_address(Class::Read, IpAddr::from([10, 0, 0, i]));
        }
        assert!(limits.keys() >= 100);
        std::thread::sleep(Duration::from_millis(5));
        limits.forget_idle();
        assert_eq!(limits.keys(), 0);
    }
}
