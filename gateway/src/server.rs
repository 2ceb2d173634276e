//! Serving the router over TCP, or TLS when a certificate is configured:
//! a manual accept loop around hyper's HTTP/1.1 connection, so that every
//! connection has
//!
//! - a **header timeout** (hyper's `header_read_timeout`): a client must
//!   send a request's whole head within it, counted from when the
//!   connection waits for a request (on a kept-alive connection, from the
//!   previous answer), else the connection is closed (slowloris);
//! - a **body timeout**: a request's body must arrive within it, counted
//!   from the end of its head; reading past it fails, and a JSON body then
//!   answers `408 request_timeout` with `Connection: close`;
//! - an **idle timeout**: a kept-alive connection without a request in
//!   flight for that long is closed (the header timeout also bounds it);
//! - a place among at most `max_connections`: beyond that the accept loop
//!   stops accepting until one closes, so new connections wait in the
//!   listen backlog (then the kernel refuses them). A WebSocket keeps its
//!   place until it closes.
//!
//! A TLS handshake must end within the header timeout too. TLS is rustls
//! with the `ring` provider and its default suites (TLS 1.3, and TLS 1.2
//! with ECDHE and AEAD ciphers only); ALPN offers `http/1.1`. WebSockets
//! work over it (wss).
//!
//! Graceful shutdown: once `shutdown` resolves the loop stops accepting,
//! every connection finishes the request in flight and closes, and
//! [`serve`] returns when all are closed (upgraded WebSockets are the live
//! feed's to close).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

/// How the server treats connections.
#[derive(Clone)]
pub struct Settings {
    /// Time to receive a request's head.
    pub header_timeout: Duration,
    /// Time to receive a request's body, after its head.
    pub body_timeout: Duration,
    /// Time a connection may stay open without a request.
    pub idle_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
    /// HTTPS, when set.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(5),
            max_connections: 20_000,
            tls: None,
        }
    }
}

/// The TLS settings for a PEM certificate chain and private key.
///
/// # Errors
/// When a file cannot be read, holds no certificate or key, or the key does
/// not fit the certificate.
pub fn tls_config(cert: &Path, key: &Path) -> io::Result<Arc<rustls::ServerConfig>> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let invalid = |what: &str, e: &dyn std::fmt::Display| {
        io::Error::new(io::ErrorKind::InvalidInput, format!("{what}: {e}"))
    };
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| invalid(&format!("certificate {}", cert.display()), &e))?;
    if certs.is_empty() {
        return Err(invalid(
            &format!("certificate {}", cert.display()),
            &"no certificate in the file",
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| invalid(&format!("private key {}", key.display()), &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid("TLS", &e))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| invalid("TLS certificate and key", &e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves `app` on `listener` until `shutdown` resolves, then lets the
/// connections finish their requests in flight (see the module docs).
///
/// # Errors
/// None today besides I/O set-up; accept errors are logged and retried.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let places = Arc::new(Semaphore::new(settings.max_connections.max(1)));
    let acceptor = settings.tls.clone().map(TlsAcceptor::from);
    let settings = Arc::new(settings);
    let (close_tx, close) = watch::channel(false);
    let (open_tx, mut open) = mpsc::channel::<()>(1);
    tokio::pin!(shutdown);
    loop {
        let place = tokio::select! {
            place = places.clone().acquire_owned() => match place {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    // Out of file descriptors, most likely: wait for some to close.
                    tracing::error!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let io = Counted {
            io: stream,
            _place: place,
        };
        tokio::spawn(connection(
            io,
            peer,
            acceptor.clone(),
            app.clone(),
            settings.clone(),
            close.clone(),
            open_tx.clone(),
        ));
    }
    drop(listener);
    let _ = close_tx.send(true);
    drop(open_tx);
    // Every connection holds a sender: this ends when the last one closes.
    let _ = open.recv().await;
    Ok(())
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

async fn connection(
    io: Counted<TcpStream>,
    peer: SocketAddr,
    acceptor: Option<TlsAcceptor>,
    app: Router,
    settings: Arc<Settings>,
    mut close: watch::Receiver<bool>,
    _open: mpsc::Sender<()>,
) {
    match acceptor {
        None => http(TokioIo::new(io), peer, app, &settings, close).await,
        Some(acceptor) => {
            let handshake = tokio::time::timeout(settings.header_timeout, acceptor.accept(io));
            let tls = tokio::select! {
                r = handshake => match r {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        return;
                    }
                },
                _ = close.wait_for(|c| *c) => return,
            };
            http(TokioIo::new(tls), peer, app, &settings, close).await;
        }
    }
}

/// When the connection last finished a request, and how many run.
struct Activity {
    in_flight: usize,
    since: Instant,
}

struct InFlight(Arc<Mutex<Activity>>);

impl InFlight {
    fn start(activity: &Arc<Mutex<Activity>>) -> Self {
        if let Ok(mut a) = activity.lock() {
            a.in_flight += 1;
        }
        InFlight(activity.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Ok(mut a) = self.0.lock() {
            a.in_flight = a.in_flight.saturating_sub(1);
            a.since = Instant::now();
        }
    }
}

async fn http<I>(
    io: I,
    peer: SocketAddr,
    app: Router,
    settings: &Settings,
    mut close: watch::Receiver<bool>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let activity = Arc::new(Mutex::new(Activity {
        in_flight: 0,
        since: Instant::now(),
    }));
    let body_timeout = settings.body_timeout;
    let requests = activity.clone();
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let guard = InFlight::start(&requests);
        let app = app.clone();
        async move {
            let deadline = Instant::now() + body_timeout;
            let mut req = req.map(|body| {
                if http_body::Body::is_end_stream(&body) {
                    Body::new(body)
                } else {
                    Body::new(Deadline::new(body, deadline))
                }
            });
            req.extensions_mut().insert(ConnectInfo(peer));
            let response = app.oneshot(req).await;
            drop(guard);
            response
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_timeout)
        .keep_alive(true);
    let conn = builder.serve_connection(io, service).with_upgrades();
    tokio::pin!(conn);
    let mut closing = false;
    loop {
        // While a request runs, look again an idle timeout later.
        let idle_check = {
            let now = Instant::now();
            let since = activity
                .lock()
                .map_or(now, |a| if a.in_flight > 0 { now } else { a.since });
            tokio::time::sleep_until(since + settings.idle_timeout)
        };
        tokio::select! {
            done = conn.as_mut() => {
                if let Err(e) = done {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            _ = close.wait_for(|c| *c), if !closing => {
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
            () = idle_check, if !closing => {
                let idle = activity.lock().is_ok_and(|a| {
                    a.in_flight == 0 && a.since.elapsed() >= settings.idle_timeout
                });
                if idle {
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
        }
    }
}

/// A connection's I/O with its place among the connections allowed: the
/// place is given back when the connection (or the WebSocket it became)
/// is dropped.
struct Counted<T> {
    io: T,
    _place: OwnedSemaphorePermit,
}

impl<T: AsyncRead + Unpin> AsyncRead for Counted<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Counted<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// The error of a body that did not arrive within the body timeout.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time")]
pub struct BodyTimeout;

/// Whether `error` or one of its causes is a [`BodyTimeout`].
pub fn is_body_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut e = Some(error);
    // Bounded: error chains are short, but never trust one to end.
    for _ in 0..16 {
        match e {
            Some(err) if err.is::<BodyTimeout>() => return true,
            Some(err) => e = err.source(),
            None => return false,
        }
    }
    false
}

/// A request body that fails with [`BodyTimeout`] once `deadline` passes.
struct Deadline<B> {
    inner: B,
    deadline: Instant,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl<B> Deadline<B> {
    fn new(inner: B, deadline: Instant) -> Self {
        Deadline {
            inner,
            deadline,
            sleep: None,
        }
    }
}

impl<B> http_body::Body for Deadline<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: Into<axum::BoxError>,
{
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|r| r.map_err(Into::into)));
        }
        let deadline = this.deadline;
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if sleep.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(Box::new(BodyTimeout))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
