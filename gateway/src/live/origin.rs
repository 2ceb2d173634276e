//! Which pages may open a cookie-authenticated socket.
//!
//! A browser attaches the `session` cookie to a WebSocket handshake that a
//! page of another origin starts (SameSite=Lax keeps it off cross-site
//! handshakes only: another port or subdomain of the same site still gets
//! it), and the same-origin policy does not apply to WebSockets, so such a
//! page could read a user's feed. The handshake's `Origin` header says
//! which page asks: a cookie-authenticated upgrade is accepted only from
//! the gateway's own origin (the request's `Host`, over `http` or
//! `https`) or one of `FORUM_ALLOWED_ORIGINS`; others get `403`.
//!
//! - An upgrade authenticated by the `Authorization` header is not
//!   checked: a page cannot set that header on a WebSocket, so whoever
//!   sends it holds the token and is not riding on a browser's cookie.
//! - A cookie-authenticated upgrade **without** `Origin` is accepted:
//!   browsers always send `Origin` on WebSocket handshakes (RFC 6455
//!   §4.1, Fetch), so its absence means a non-browser client that holds
//!   the cookie itself, which it could as well send as a bearer token.
//! - `Origin: null` (sandboxed frames, `file:` pages) matches nothing and
//!   is refused.
//!
//! Origins compare as browsers serialize them: scheme and host
//! lowercased, the scheme's default port dropped, no path.

use axum::http::{header, HeaderMap, Uri};

/// The origins allowed besides the gateway's own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedOrigins(Vec<String>);

impl AllowedOrigins {
    /// Parses a comma-separated list of origins such as
    /// `https://forum.example,http://localhost:3000`; blanks are ignored.
    ///
    /// # Errors
    /// An entry that is not `scheme://host[:port]`.
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut origins = Vec::new();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let origin = normalize(entry).ok_or_else(|| {
                format!("{entry:?} is not an origin (scheme://host[:port], no path)")
            })?;
            origins.push(origin);
        }
        Ok(AllowedOrigins(origins))
    }

    /// Whether a cookie-authenticated upgrade with these headers may
    /// proceed (see the module docs).
    pub fn allows(&self, headers: &HeaderMap, uri: &Uri) -> bool {
        let Some(origin) = headers.get(header::ORIGIN) else {
            return true;
        };
        let Some(origin) = origin.to_str().ok().and_then(normalize) else {
            return false;
        };
        if self.0.contains(&origin) {
            return true;
        }
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| uri.authority().map(|a| a.as_str()));
        host.is_some_and(|host| {
            ["http", "https"]
                .iter()
                .filter_map(|scheme| normalize(&format!("{scheme}://{host}")))
                .any(|own| own == origin)
        })
    }
}

/// The serialized form of an origin, or `None` for anything else.
fn normalize(s: &str) -> Option<String> {
    let s = s.trim();
    let s = s.strip_suffix('/').unwrap_or(s);
    let (scheme, host) = s.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let valid_scheme = scheme
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    if !valid_scheme
        || host.is_empty()
        || host.contains(|c: char| "/?#@ ".contains(c) || c.is_control())
    {
        return None;
    }
    let host = host.to_ascii_lowercase();
    let host = match (scheme.as_str(), host.rsplit_once(':')) {
        ("http", Some((h, "80"))) | ("https", Some((h, "443"))) => h.to_string(),
        _ => host,
    };
    Some(format!("{scheme}://{host}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(host: &str, origin: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_str(host).expect("host"));
        if let Some(o) = origin {
            h.insert(header::ORIGIN, HeaderValue::from_str(o).expect("origin"));
        }
        h
    }

    #[test]
    fn the_gateways_own_origin_and_the_listed_ones_are_allowed() {
        let allowed = AllowedOrigins::parse(" https://App.Example:443/ , ,http://localhost:3000")
            .expect("valid list");
        let uri = Uri::from_static("/api/ws");
        for origin in [
            "http://forum.test:8080",
            "https://forum.test:8080",
            "https://app.example",
            "http://localhost:3000",
        ] {
            assert!(
                allowed.allows(&headers("forum.test:8080", Some(origin)), &uri),
                "{origin}"
            );
        }
        assert!(allowed.allows(&headers("Forum.Test", Some("https://forum.test:443")), &uri));
    }

    #[test]
    fn another_origin_null_or_garbage_is_refused_and_none_is_accepted() {
        let allowed = AllowedOrigins::parse("https://app.example").expect("valid list");
        let uri = Uri::from_static("/api/ws");
        for origin in [
            "https://evil.example",
            "http://forum.test:8081",
            "https://app.example:8443",
            "http://app.example",
            "null",
            "forum.test:8080",
            "",
        ] {
            assert!(
                !allowed.allows(&headers("forum.test:8080", Some(origin)), &uri),
                "{origin:?}"
            );
        }
        assert!(allowed.allows(&headers("forum.test:8080", None), &uri));
    }

    #[test]
    fn a_list_entry_that_is_not_an_origin_is_a_configuration_error() {
        assert!(AllowedOrigins::parse("").expect("empty").0.is_empty());
        for bad in ["app.example", "https://app.example/path", "https://"] {
            assert!(AllowedOrigins::parse(bad).is_err(), "{bad}");
        }
    }
}
