//! A WebSocket client for the live feed tests.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a test waits for one frame by default.
pub const FRAME_WAIT: Duration = Duration::from_secs(30);

/// One live-feed socket.
pub struct Ws {
    pub stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// The `hello` frame.
    pub hello: Value,
}

fn ws_url(base: &str, cursor: Option<&str>) -> String {
    let mut url = format!("{}/api/ws", base.replacen("http://", "ws://", 1));
    if let Some(c) = cursor {
        url.push_str("?cursor=");
        url.push_str(c);
    }
    url
}

/// Opens a socket; `Err(status)` when the upgrade is refused.
pub async fn try_connect(base: &str, token: Option<&str>, cursor: Option<&str>) -> Result<Ws, u16> {
    let auth = token.map(|t| ("authorization", format!("Bearer {t}")));
    try_connect_with(base, cursor, auth.as_slice()).await
}

/// Opens a socket with exactly these extra headers (no `Authorization`
/// unless given); returns it after its `hello`, or the refusal's status.
pub async fn try_connect_with(
    base: &str,
    cursor: Option<&str>,
    headers: &[(&'static str, String)],
) -> Result<Ws, u16> {
    let mut req = ws_url(base, cursor).into_client_request().expect("request");
    for (k, v) in headers {
        req.headers_mut()
            .insert(*k, HeaderValue::from_str(v).expect("header"));
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok((stream, _)) => {
            let mut ws = Ws {
                stream,
                hello: Value::Null,
            };
            let hello = ws.next_any(FRAME_WAIT).await.expect("hello frame");
            assert_eq!(hello["type"], "hello", "first frame: {hello}");
            ws.hello = hello;
            Ok(ws)
        }
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
        Err(e) => panic!("connect: {e}"),
    }
}

/// Opens a socket, panicking when refused.
pub async fn connect(base: &str, token: &str, cursor: Option<&str>) -> Ws {
    try_connect(base, Some(token), cursor)
        .await
        .unwrap_or_else(|s| panic!("upgrade refused with {s}"))
}

impl Ws {
    /// The next text frame of any type, or `None` after `within`.
    pub async fn next_any(&mut self, within: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let msg = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .ok()??;
            match msg {
                Ok(Message::Text(t)) => {
                    return Some(serde_json::from_str(t.as_str()).expect("frames are JSON"))
                }
                Ok(Message::Close(c)) => panic!("socket closed: {c:?}"),
                Ok(_) => continue,
                Err(e) => panic!("socket failed: {e}"),
            }
        }
    }

    /// The next durable frame (skipping `presence` and `typing`), or
    /// `None` after `within`.
    pub async fn next(&mut self, within: Duration) -> Option<Value> {
        loop {
            let v = self.next_any(within).await?;
            if v["type"] != "presence" && v["type"] != "typing" {
                return Some(v);
            }
        }
    }

    /// The next frame of type `ty`, skipping others; panics after `within`.
    pub async fn expect(&mut self, ty: &str, within: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_any(left).await {
                Some(v) if v["type"] == ty => return v,
                Some(_) => continue,
                None => panic!("no {ty} frame within {within:?}"),
            }
        }
    }

    /// Sends a text frame.
    pub async fn send(&mut self, text: &str) {
        self.stream
            .send(Message::text(text.to_string()))
            .await
            .expect("send");
    }

    /// Reads until the server closes: the close code (1006 when the
    /// connection ended without a close frame), or `None` after `within`.
    pub async fn closed(&mut self, within: Duration) -> Option<u16> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Err(_) => return None,
                Ok(None) | Ok(Some(Err(_))) => return Some(1006),
                Ok(Some(Ok(Message::Close(c)))) => {
                    return Some(c.map_or(1005, |c| u16::from(c.code)))
                }
                Ok(Some(Ok(_))) => continue,
            }
        }
    }

    /// The cursor of the `hello` frame.
    pub fn hello_cursor(&self) -> String {
        self.hello["cursor"]
            .as_str()
            .expect("hello cursor")
            .to_string()
    }
}

/// Opens a socket over a TCP connection with a tiny receive buffer, and
/// reads nothing but `hello`: the server's writes to it back up quickly.
pub async fn connect_small_buffer(base: &str, token: &str) -> Ws {
    let addr: std::net::SocketAddr = base
        .trim_start_matches("http://")
        .parse()
        .expect("gateway address");
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("rcvbuf");
    let tcp = socket.connect(addr).await.expect("connect");
    let mut req = ws_url(base, None).into_client_request().expect("request");
    req.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {token}")).expect("header"),
    );
    let (stream, _) = tokio_tungstenite::client_async(req, MaybeTlsStream::Plain(tcp))
        .await
        .expect("upgrade");
    let mut ws = Ws {
        stream,
        hello: Value::Null,
    };
    ws.hello = ws.next_any(FRAME_WAIT).await.expect("hello");
    ws
}

/// Opens a socket authenticated by the `session` cookie only.
pub async fn connect_with_cookie(base: &str, token: &str) -> Ws {
    let mut req = ws_url(base, None).into_client_request().expect("request");
    req.headers_mut().insert(
        "cookie",
        HeaderValue::from_str(&format!("theme=dark; session={token}")).expect("header"),
    );
    let (stream, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("upgrade with the session cookie");
    let mut ws = Ws {
        stream,
        hello: Value::Null,
    };
    ws.hello = ws.next_any(FRAME_WAIT).await.expect("hello");
    ws
}
