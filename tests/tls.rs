//! HTTPS: the gateway serves the API and the live feed over TLS with a
//! certificate the test makes, and the session cookie is then `Secure`.

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use common::System;
use futures::StreamExt;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

/// A self-signed certificate for `localhost`, written to a fresh folder.
struct Cert {
    dir: PathBuf,
    der: CertificateDer<'static>,
}

impl Cert {
    fn new() -> Cert {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])
            .expect("make a certificate");
        let dir = std::env::temp_dir().join(format!("forum-tls-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        std::fs::write(dir.join("cert.pem"), made.cert.pem()).expect("write cert");
        std::fs::write(dir.join("key.pem"), made.signing_key.serialize_pem()).expect("write key");
        Cert {
            der: made.cert.der().clone(),
            dir,
        }
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).to_string_lossy().into_owned()
    }

    fn connector(&self) -> TlsConnector {
        let mut roots = RootCertStore::empty();
        roots.add(self.der.clone()).expect("trust the certificate");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocols")
            .with_root_certificates(roots)
            .with_no_client_auth();
        TlsConnector::from(Arc::new(config))
    }
}

impl Drop for Cert {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn tls_system(cert: &Cert) -> (System, String) {
    let sys = System::up_with(&[
        ("FORUM_TLS_CERT", &cert.path("cert.pem")),
        ("FORUM_TLS_KEY", &cert.path("key.pem")),
    ])
    .await;
    let addr = sys.base.trim_start_matches("http://").to_string();
    (sys, addr)
}

async fn connect(cert: &Cert, addr: &str) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let name = ServerName::try_from("localhost").expect("name");
    tokio::time::timeout(Duration::from_secs(10), cert.connector().connect(name, tcp))
        .await
        .expect("handshake in time")
        .expect("TLS handshake")
}

/// One HTTP/1.1 request over TLS (`Connection: close`): status, head, body.
async fn https(
    cert: &Cert,
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> (u16, String, Value) {
    let mut stream = connect(cert, addr).await;
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    if !body.is_empty() {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(&body);
    stream.write_all(req.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), stream.read_to_end(&mut raw))
        .await
        .expect("an answer in time")
        .expect("read");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("a head");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status");
    let value = serde_json::from_str(body).unwrap_or(Value::Null);
    (status, head.to_string(), value)
}

#[tokio::test]
async fn https_serves_the_api_and_the_session_cookie_is_secure() {
    let cert = Cert::new();
    let (sys, addr) = tls_system(&cert).await;
    let reg = common::registration("ann_tls");
    let (status, head, body) =
        https(&cert, &addr, "POST", "/api/auth/register", None, Some(&reg)).await;
    assert_eq!(status, 201, "{head}\n{body}");
    let cookie = head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .expect("a session cookie");
    assert!(cookie.contains("; Secure"), "{cookie}");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    let token = body["token"].as_str().expect("token").to_string();
    let (status, _, me) = https(&cert, &addr, "GET", "/api/auth/me", Some(&token), None).await;
    assert_eq!(status, 200);
    assert_eq!(me["nickname"], "ann_tls");
    // Plain HTTP on the TLS port gets no answer.
    let plain = sys.http.get(sys.url("/healthz")).send().await;
    assert!(
        plain.map_or(true, |r| !r.status().is_success()),
        "plain HTTP was served on the HTTPS port"
    );
}

#[tokio::test]
async fn a_websocket_upgrades_over_tls() {
    let cert = Cert::new();
    let (_sys, addr) = tls_system(&cert).await;
    let reg = common::registration("bob_tls");
    let (status, _, body) =
        https(&cert, &addr, "POST", "/api/auth/register", None, Some(&reg)).await;
    assert_eq!(status, 201, "{body}");
    let token = body["token"].as_str().expect("token");
    let stream = connect(&cert, &addr).await;
    let port = addr.rsplit(':').next().expect("port");
    let mut req = format!("wss://localhost:{port}/api/ws")
        .into_client_request()
        .expect("request");
    req.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {token}")).expect("header"),
    );
    let (mut ws, _) = tokio_tungstenite::client_async(req, stream)
        .await
        .expect("WebSocket upgrade over TLS");
    let hello = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => {
                    return serde_json::from_str::<Value>(&t).expect("JSON frame")
                }
                Some(Ok(_)) => continue,
                other => panic!("socket ended: {other:?}"),
            }
        }
    })
    .await
    .expect("hello in time");
    assert_eq!(hello["type"], "hello", "{hello}");
}
