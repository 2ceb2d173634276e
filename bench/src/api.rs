//! The HTTP side of the API contract, as a client sees it: register users,
//! send writes, page through lists.

use std::time::Duration;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use serde::Deserialize;
use serde_json::json;

use crate::{Error, Result};

/// A registered user.
#[derive(Debug, Clone)]
pub struct User {
    /// The user id.
    pub id: String,
    /// The session token.
    pub token: String,
    /// The nickname.
    pub nickname: String,
}

/// A status and the raw body.
#[derive(Debug, Clone)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Body bytes.
    pub body: Bytes,
}

/// An HTTP/1.1 client keeping up to `idle` connections open.
///
/// # Errors
/// When the client cannot be built.
pub fn client(idle: usize) -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .pool_max_idle_per_host(idle)
        .timeout(Duration::from_secs(30))
        .tcp_nodelay(true)
        .build()?)
}

/// Sends one request; a JSON `body` is sent with its content type.
///
/// # Errors
/// Transport failures (not HTTP error statuses).
pub async fn send(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    token: Option<&str>,
    body: Option<String>,
) -> Result<Answer> {
    let mut req = http.request(method, url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.header("content-type", "application/json").body(b);
    }
    let resp = req.send().await?;
    let status = resp.status().as_u16();
    let body = resp.bytes().await?;
    Ok(Answer { status, body })
}

/// The registration body of `nickname`.
pub fn registration(nickname: &str) -> String {
    json!({
        "nickname": nickname,
        "email": format!("{nickname}@example.org"),
        "password": format!("password-{nickname}"),
        "first_name": "Bench",
        "last_name": "User",
        "age": 30,
        "gender": "unspecified",
    })
    .to_string()
}

/// Registers `nickname`, retrying (at most 5 times) on 429 and 503.
///
/// # Errors
/// Any other status, or a body without token and id.
pub async fn register(http: &reqwest::Client, base: &str, nickname: &str) -> Result<User> {
    let url = format!("{base}/api/auth/register");
    for attempt in 0..5u64 {
        let a = send(
            http,
            reqwest::Method::POST,
            &url,
            None,
            Some(registration(nickname)),
        )
        .await?;
        match a.status {
            201 => {
                let v: serde_json::Value = serde_json::from_slice(&a.body)?;
                let token = v["token"].as_str();
                let id = v["user"]["id"].as_str();
                return match (token, id) {
                    (Some(t), Some(i)) => Ok(User {
                        id: i.to_string(),
                        token: t.to_string(),
                        nickname: nickname.to_string(),
                    }),
                    _ => Err(Error::Protocol(format!("register: {v}"))),
                };
            }
            429 | 503 => tokio::time::sleep(Duration::from_millis(200 * (attempt + 1))).await,
            s => {
                return Err(Error::Protocol(format!(
                    "register {nickname}: {s} {}",
                    String::from_utf8_lossy(&a.body)
                )))
            }
        }
    }
    Err(Error::Protocol(format!(
        "register {nickname}: still refused"
    )))
}

/// Registers `n` users named `<prefix>_<i>`, `concurrency` at a time
/// (registration hashes passwords: a few at a time is fastest on 2 cores).
///
/// # Errors
/// The first failed registration.
pub async fn register_many(
    http: &reqwest::Client,
    base: &str,
    prefix: &str,
    n: usize,
    concurrency: usize,
) -> Result<Vec<User>> {
    futures::stream::iter(0..n)
        .map(|i| {
            let nickname = format!("{prefix}_{i}");
            async move { register(http, base, &nickname).await }
        })
        .buffered(concurrency.max(1))
        .try_collect()
        .await
}

/// The body of a new post.
pub fn post_body(title: &str, content: &str) -> String {
    json!({"title": title, "content": content, "categories": ["general"]}).to_string()
}

/// The body of a new comment or message.
pub fn content_body(content: &str) -> String {
    json!({ "content": content }).to_string()
}

#[derive(Deserialize)]
struct IdOnly {
    id: String,
}

#[derive(Deserialize)]
struct Page {
    items: Vec<IdOnly>,
    next_cursor: Option<String>,
}

/// The `id` of a JSON object body.
pub fn id_of(body: &[u8]) -> Option<String> {
    serde_json::from_slice::<IdOnly>(body).ok().map(|o| o.id)
}

/// Every item id of a cursor-paginated list at `path` (which carries its
/// query, `limit` included), at most `max_pages` pages.
///
/// # Errors
/// A status other than 200, or a body that is not a page.
pub async fn list_ids(
    http: &reqwest::Client,
    base: &str,
    path: &str,
    token: Option<&str>,
    max_pages: usize,
) -> Result<Vec<String>> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    let sep = if path.contains('?') { '&' } else { '?' };
    for _ in 0..max_pages {
        let url = match &cursor {
            Some(c) => format!("{base}{path}{sep}cursor={}", percent_encode(c)),
            None => format!("{base}{path}"),
        };
        let a = send(http, reqwest::Method::GET, &url, token, None).await?;
        if a.status != 200 {
            return Err(Error::Protocol(format!(
                "GET {path}: {} {}",
                a.status,
                String::from_utf8_lossy(&a.body)
            )));
        }
        let page: Page = serde_json::from_slice(&a.body)?;
        ids.extend(page.items.into_iter().map(|i| i.id));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    Ok(ids)
}

/// Percent-encodes everything but the unreserved characters of RFC 3986.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// How many acknowledged ids are missing from the listed ones.
pub fn missing<'a>(acked: impl IntoIterator<Item = &'a String>, listed: &[String]) -> usize {
    let listed: std::collections::HashSet<&str> = listed.iter().map(String::as_str).collect();
    acked
        .into_iter()
        .filter(|id| !listed.contains(id.as_str()))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_are_percent_encoded() {
        assert_eq!(percent_encode("abc-1_2.3~"), "abc-1_2.3~");
        assert_eq!(percent_encode("a+b/c=="), "a%2Bb%2Fc%3D%3D");
        assert_eq!(percent_encode("é"), "%C3%A9");
    }

    #[test]
    fn ids_are_read_from_bodies_and_missing_ones_counted() {
        assert_eq!(id_of(br#"{"id":"x1","title":"t"}"#).as_deref(), Some("x1"));
        assert_eq!(id_of(b"not json"), None);
        let acked = vec!["a".to_string(), "b".to_string(), "c".to_string()];
        let listed = vec!["c".to_string(), "a".to_string(), "z".to_string()];
        assert_eq!(missing(&acked, &listed), 1);
    }
}
