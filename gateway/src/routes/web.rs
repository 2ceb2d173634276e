//! The web page: the forum's own single-page application, from `web/` at
//! the workspace root, embedded in the binary at build time so every
//! gateway serves it with nothing on disk.
//!
//! `GET /` answers the HTML page and `GET /assets/{file}` its script
//! modules and its style sheet (a fixed list, [`ASSETS`]). The page uses
//! only the public API and the live feed, authenticated by the `session`
//! cookie that register and login set.
//!
//! Every answer carries a Content-Security-Policy ([`CSP`]) that lets the
//! page load only its own script and style (no inline script or style, no
//! `eval`), connect only to its own origin and WebSockets, and be framed by
//! nobody; with `X-Content-Type-Options: nosniff` and `Cache-Control:
//! no-cache` (a browser revalidates, so a new binary's page is seen at
//! once).

use axum::http::{header, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::AppState;

/// The page's Content-Security-Policy.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self' ws: wss:; object-src 'none'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// One embedded file of the page.
#[derive(Debug)]
pub struct Asset {
    /// The path it is served at.
    pub path: &'static str,
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Its bytes.
    pub body: &'static str,
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// Declares an embedded file of `web/`.
macro_rules! asset {
    ($path:literal, $file:literal, $type:expr) => {
        Asset {
            path: $path,
            content_type: $type,
            body: include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../web/", $file)),
        }
    };
}

/// Every file of the page and where it is served.
pub const ASSETS: &[Asset] = &[
    asset!("/", "index.html", HTML),
    asset!("/assets/style.css", "style.css", CSS),
    asset!("/assets/app.js", "app.js", JS),
    asset!("/assets/api.js", "api.js", JS),
    asset!("/assets/dom.js", "dom.js", JS),
    asset!("/assets/live.js", "live.js", JS),
    asset!("/assets/auth.js", "auth.js", JS),
    asset!("/assets/feed.js", "feed.js", JS),
    asset!("/assets/chat.js", "chat.js", JS),
    asset!("/assets/notifications.js", "notifications.js", JS),
];

/// The page's routes (`GET` and `HEAD`).
pub fn router() -> Router<AppState> {
    ASSETS.iter().fold(Router::new(), |router, asset| {
        router.route(asset.path, get(move || async move { serve(asset) }))
    })
}

/// One file with its type and the page's security headers.
fn serve(asset: &'static Asset) -> Response {
    let headers: [(HeaderName, HeaderValue); 5] = [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        ),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ),
    ];
    (headers, asset.body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_has_a_distinct_path_a_body_and_a_known_type() {
        for (i, asset) in ASSETS.iter().enumerate() {
            assert!(!asset.body.is_empty(), "{}", asset.path);
            assert!([HTML, JS, CSS].contains(&asset.content_type));
            assert!(
                ASSETS[..i].iter().all(|a| a.path != asset.path),
                "{} twice",
                asset.path
            );
        }
    }

    #[test]
    fn the_page_loads_only_listed_scripts_and_styles_and_has_no_inline_code() {
        let page = ASSETS.iter().find(|a| a.path == "/").map(|a| a.body);
        let page = page.unwrap_or_default();
        for src in page
            .split("src=\"")
            .skip(1)
            .chain(page.split("href=\"").skip(1))
        {
            let target = src.split('"').next().unwrap_or_default();
            if target.starts_with("/assets/") {
                assert!(
                    ASSETS.iter().any(|a| a.path == target),
                    "{target} not served"
                );
            }
        }
        assert!(!page.contains("<style"), "inline style element");
        assert!(!page.contains("style=\""), "inline style attribute");
        for (i, _) in page.match_indices(" on") {
            let name: String = page[i + 3..]
                .chars()
                .take_while(|c| c.is_ascii_alphabetic())
                .collect();
            let after = page[i + 3 + name.len()..].trim_start();
            assert!(
                name.is_empty() || !after.starts_with('='),
                "inline event handler on{name}"
            );
        }
        for script in page.split("<script").skip(1) {
            assert!(script.contains("src=\"/assets/"), "inline script");
        }
    }

    #[test]
    fn the_scripts_never_insert_html() {
        for asset in ASSETS.iter().filter(|a| a.content_type == JS) {
            for sink in [
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "document.write",
            ] {
                assert!(!asset.body.contains(sink), "{} uses {sink}", asset.path);
            }
            // Every module imported by another is served.
            for import in asset.body.split("from './").skip(1) {
                let file = import.split('\'').next().unwrap_or_default();
                let path = format!("/assets/{file}");
                assert!(ASSETS.iter().any(|a| a.path == path), "{path} not served");
            }
        }
    }
}
