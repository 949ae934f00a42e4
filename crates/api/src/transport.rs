//! The HTTP server under the application: read timeouts, the per-IP
//! connection limit, and problem documents for the errors that actix-http
//! answers itself.
//!
//! # Why not `HttpServer`
//!
//! actix-http's HTTP/1 dispatcher answers some requests without calling the
//! application: a malformed request line or header (400), a request head
//! that does not arrive within the header timeout (408), one larger than
//! its buffer (431, at 128 KiB or 96 fields). Those responses have empty
//! bodies, and the dispatcher has no hook to change them. So the server is
//! assembled here from actix-server and actix-http (as actix-web's
//! `HttpServer` does it) with one addition: each accepted TCP stream is
//! wrapped in a [`ProblemIo`] that watches the responses written to it.
//!
//! # How the dispatcher's responses are recognized
//!
//! Every error the application sends is a problem document, never empty.
//! [`ProblemIo`] follows the response stream's framing (head, then
//! `Content-Length` bytes of body) and replaces a response head whose status
//! is 400, 408, 413, 431 or 500 with no body (`content-length: 0` or none)
//! by the same status with the problem document of [`ApiError`] and
//! `connection: close` (the dispatcher closes the connection after each of
//! them). To know where a body ends, it must know which responses answer
//! `HEAD` (they declare `GET`'s length and send nothing): the outermost
//! middleware, [`note_request`], records each request's method in the
//! connection's [`ConnectionRequests`], in order. A response it cannot frame
//! (`Transfer-Encoding`, a head over 64 KiB) ends the watching for that
//! connection: everything after it passes unchanged (the application sends
//! neither).
//!
//! # Timeouts
//!
//! * Head of a connection's first request: actix-http's
//!   `client_request_timeout`, from the connection's start
//!   (`server.header_read_timeout_secs`), 408.
//! * Head of a later request: actix-http has none (its timer covers only
//!   the first request, and the keep-alive timer stops at the first byte of
//!   the next), so [`ProblemIo`] arms one at the first byte read after
//!   every response was written, disarmed when the application receives the
//!   request; when it fires, the 408 problem is written and the connection
//!   closed.
//! * Idle keep-alive connection: actix-http's keep-alive timer
//!   (`server.keep_alive_secs`), closed without a response (RFC 9112 §9.3).
//! * Body: `server.body_read_timeout_secs`, in the body reader
//!   ([`crate::extractors::body`]).
//!
//! # Connections per client IP
//!
//! [`ConnectionCounter`] counts the open connections of each peer IP;
//! beyond `server.max_connections_per_ip` a new connection is answered 429
//! `too_many_connections` and closed before its request is read. Peers in
//! `security.trusted_proxies` (every peer under the deprecated
//! `security.trust_forwarded_for`) are not limited: one proxy carries many
//! clients, and limiting them by forwarded address is the proxy's job.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use actix_http::body::MessageBody;
use actix_http::error::DispatchError;
use actix_http::{Extensions, HttpService, KeepAlive, Protocol, Request, Response};
use actix_server::Server;
use actix_service::{
    fn_service, map_config, IntoServiceFactory, ServiceFactory, ServiceFactoryExt,
};
use actix_web::dev::{AppConfig, ServiceRequest, ServiceResponse};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::rt::net::TcpStream;
use actix_web::ResponseError;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::config::Settings;
use crate::problem::{ApiError, PROBLEM_JSON};
use crate::proxies::TrustedProxies;

/// Largest response head [`ProblemIo`] follows; a larger one ends the
/// watching of its connection.
const MAX_RESPONSE_HEAD_BYTES: usize = 64 * 1024;
/// How every response head starts.
const STATUS_LINE_START: &[u8] = b"HTTP/1.";
/// Pending connections the listener queues (as actix-web's default).
const BACKLOG: i32 = 1024;
/// How long a refused connection is kept to deliver its 429 (short: under
/// a flood, each refused connection holds a file descriptor meanwhile).
const REFUSAL_LINGER: Duration = Duration::from_millis(250);
/// `Retry-After` of a refused connection, in seconds (RFC 6585 §4, RFC 9110
/// §10.2.3): by then the client's closed connections have usually been
/// released.
pub(crate) const REFUSAL_RETRY_AFTER_SECS: u64 = 1;

/// What the transport needs from the settings.
#[derive(Clone, Debug)]
struct Limits {
    header_read_timeout: Duration,
    keep_alive: Duration,
    max_connections_per_ip: usize,
    max_body_bytes: usize,
    proxies: TrustedProxies,
    trust_any_peer: bool,
}

impl Limits {
    fn from_settings(settings: &Settings) -> Self {
        Self {
            header_read_timeout: settings.server.header_read_timeout(),
            keep_alive: settings.server.keep_alive(),
            max_connections_per_ip: settings.server.max_connections_per_ip,
            max_body_bytes: settings.server.max_body_bytes.get(),
            proxies: settings.security.trusted_proxies.clone(),
            trust_any_peer: settings.security.trust_forwarded_for,
        }
    }

    /// Whether connections from `ip` are counted.
    fn limits(&self, ip: IpAddr) -> bool {
        self.max_connections_per_ip > 0 && !self.trust_any_peer && !self.proxies.contains(ip)
    }
}

/// Listens on `server.host`:`server.port` and serves the application that
/// `factory` builds (once per worker), with the settings' workers, timeouts
/// and limits; `shutdown_timeout_secs` is how long a graceful stop waits
/// for connections. Returns the server (not yet polled) and the address it
/// listens on.
pub fn serve<F, I, S, B>(
    settings: &Settings,
    shutdown_timeout_secs: u64,
    factory: F,
) -> io::Result<(Server, SocketAddr)>
where
    F: Fn() -> I + Send + Clone + 'static,
    I: IntoServiceFactory<S, Request>,
    S: ServiceFactory<Request, Config = AppConfig> + 'static,
    S::Error: Into<actix_web::Error> + 'static,
    S::InitError: fmt::Debug,
    S::Response: Into<Response<B>> + 'static,
    <S::Service as actix_service::Service<Request>>::Future: 'static,
    S::Service: 'static,
    B: MessageBody + 'static,
{
    let listener = listen((settings.server.host, settings.server.port).into())?;
    let addr = listener.local_addr()?;
    let limits = Limits::from_settings(settings);
    let counter = ConnectionCounter::default();
    let builder = Server::build()
        .workers(settings.workers())
        .disable_signals()
        .shutdown_timeout(shutdown_timeout_secs);
    let graceful = builder.graceful_shutdown_signal();
    let server = builder
        .listen("orgsvc-http", listener, move || {
            let graceful = graceful.clone();
            let app = factory()
                .into_factory()
                .map_err(|error| error.into().error_response());
            let http = HttpService::<ProblemIo<TcpStream>, _, _>::build()
                .graceful_shutdown_signal(move || {
                    let graceful = graceful.clone();
                    async move { graceful.notified().await }
                })
                .keep_alive(if limits.keep_alive.is_zero() {
                    KeepAlive::Disabled
                } else {
                    KeepAlive::Timeout(limits.keep_alive)
                })
                .client_request_timeout(limits.header_read_timeout)
                .client_disconnect_timeout(Duration::from_secs(1))
                .local_addr(addr)
                .on_connect_ext(|io: &ProblemIo<TcpStream>, extensions: &mut Extensions| {
                    extensions.insert(io.requests.clone());
                })
                // The host only serves absolute URLs built without a `Host`
                // header; the API builds none.
                .finish(map_config(app, |()| AppConfig::default()));
            let limits = limits.clone();
            let counter = counter.clone();
            fn_service(move |stream: TcpStream| {
                let limits = limits.clone();
                let counter = counter.clone();
                async move { accept(stream, &limits, &counter).await }
            })
            .and_then(http)
        })?
        .run();
    Ok((server, addr))
}

/// A listening socket with address reuse and actix-web's backlog.
fn listen(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// Admits a connection under the per-IP limit (wrapped for the
/// dispatcher), or answers 429 and closes it.
async fn accept(
    stream: TcpStream,
    limits: &Limits,
    counter: &ConnectionCounter,
) -> Result<(ProblemIo<TcpStream>, Protocol, Option<SocketAddr>), DispatchError> {
    let peer = stream.peer_addr().ok();
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, "could not set TCP_NODELAY");
    }
    let slot = match peer.map(|peer| peer.ip().to_canonical()) {
        Some(ip) if limits.limits(ip) => match counter.acquire(ip, limits.max_connections_per_ip) {
            Some(slot) => Some(slot),
            None => {
                tracing::debug!(%ip, limit = limits.max_connections_per_ip, "connection refused: too many from this address");
                refuse(stream, limits.max_connections_per_ip).await;
                return Err(DispatchError::Io(io::Error::other(
                    "too many connections from this address",
                )));
            }
        },
        _ => None,
    };
    let io = ProblemIo::new(stream, slot, limits);
    Ok((io, Protocol::Http1, peer))
}

/// Writes the 429 problem to a connection over the limit, then closes it
/// after reading what the client sent (closing with unread data would reset
/// the connection and could destroy the answer), within
/// [`REFUSAL_LINGER`].
async fn refuse(stream: TcpStream, limit: usize) {
    let response = problem_response(&ApiError::TooManyConnections { limit }, None);
    let linger = async {
        let mut written = 0;
        while written < response.len() {
            if stream.writable().await.is_err() {
                return;
            }
            match stream.try_write(&response[written..]) {
                Ok(0) => return,
                Ok(n) => written += n,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => return,
            }
        }
        let _ = socket2::SockRef::from(&stream).shutdown(std::net::Shutdown::Write);
        let mut discard = [0_u8; 4096];
        let mut read = 0_usize;
        while read < 64 * 1024 {
            if stream.readable().await.is_err() {
                return;
            }
            match stream.try_read(&mut discard) {
                Ok(0) => return,
                Ok(n) => read += n,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => return,
            }
        }
    };
    let _ = tokio::time::timeout(REFUSAL_LINGER, linger).await;
}

/// Open connections per client IP, shared by every worker.
#[derive(Clone, Debug, Default)]
pub struct ConnectionCounter(Arc<Mutex<HashMap<IpAddr, usize>>>);

impl ConnectionCounter {
    /// Counts a new connection of `ip` unless it has `limit` already; the
    /// slot uncounts it when dropped.
    pub fn acquire(&self, ip: IpAddr, limit: usize) -> Option<ConnectionSlot> {
        let mut open = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(ip).or_insert(0);
        if *count >= limit {
            return None;
        }
        *count += 1;
        Some(ConnectionSlot {
            counter: self.clone(),
            ip,
        })
    }

    /// Open connections of `ip`.
    pub fn open(&self, ip: IpAddr) -> usize {
        let open = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        open.get(&ip).copied().unwrap_or(0)
    }
}

/// One counted connection; uncounted on drop.
#[derive(Debug)]
pub struct ConnectionSlot {
    counter: ConnectionCounter,
    ip: IpAddr,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut open = self
            .counter
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// The requests the application received on one connection, in order
/// (shared by the connection's [`ProblemIo`] and, through the connection's
/// extensions, [`note_request`]).
#[derive(Debug, Default)]
pub struct ConnectionRequests {
    /// Whether each request whose response is not yet written is a `HEAD`.
    heads: RefCell<VecDeque<bool>>,
    /// Requests received so far.
    received: Cell<u64>,
}

impl ConnectionRequests {
    fn receive(&self, head: bool) {
        self.heads.borrow_mut().push_back(head);
        self.received.set(self.received.get() + 1);
    }
}

/// Outermost middleware: tells the connection's [`ProblemIo`] that a
/// request reached the application, and whether it is a `HEAD` (no-op
/// without one, as in tests that call the app directly).
pub async fn note_request(
    req: ServiceRequest,
    next: Next<impl actix_web::body::MessageBody>,
) -> Result<ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    if let Some(requests) = req.conn_data::<Rc<ConnectionRequests>>() {
        requests.receive(req.method() == Method::HEAD);
    }
    next.call(req).await
}

/// The response stream's framing as [`ProblemIo`] follows it.
#[derive(Debug)]
enum Framing {
    /// Reading a response head (the bytes so far).
    Head(Vec<u8>),
    /// Passing this many body bytes.
    Body(u64),
    /// Not watching any more: everything passes.
    Passthrough,
}

/// A connection's byte stream, with the dispatcher's bodiless error
/// responses replaced by problem documents and a head timeout for the
/// requests after the first (see the module documentation).
pub struct ProblemIo<T> {
    inner: T,
    requests: Rc<ConnectionRequests>,
    _slot: Option<ConnectionSlot>,
    framing: Framing,
    /// Bytes accepted from the dispatcher, not yet written to `inner`.
    pending: Vec<u8>,
    written: usize,
    /// Responses written (their last byte accepted) to requests the
    /// application received.
    answered: u64,
    header_read_timeout: Duration,
    max_body_bytes: usize,
    /// The head timeout of a later request: its deadline, and how many
    /// requests the application had received when it was armed.
    head_deadline: Option<(Pin<Box<Sleep>>, u64)>,
    timed_out: bool,
}

impl<T> fmt::Debug for ProblemIo<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProblemIo")
            .field("framing", &self.framing)
            .field("pending", &self.pending.len())
            .field("answered", &self.answered)
            .finish_non_exhaustive()
    }
}

impl<T> ProblemIo<T> {
    fn new(inner: T, slot: Option<ConnectionSlot>, limits: &Limits) -> Self {
        Self {
            inner,
            requests: Rc::default(),
            _slot: slot,
            framing: Framing::Head(Vec::new()),
            pending: Vec::new(),
            written: 0,
            answered: 0,
            header_read_timeout: limits.header_read_timeout,
            max_body_bytes: limits.max_body_bytes,
            head_deadline: None,
            timed_out: false,
        }
    }

    /// Follows `input` (written by the dispatcher) through the framing,
    /// appending what goes to the client to `pending`.
    fn transform(&mut self, mut input: &[u8]) {
        while !input.is_empty() {
            match &mut self.framing {
                Framing::Passthrough => {
                    self.pending.extend_from_slice(input);
                    return;
                }
                Framing::Body(remaining) => {
                    let take =
                        usize::try_from(*remaining).map_or(input.len(), |r| r.min(input.len()));
                    self.pending.extend_from_slice(&input[..take]);
                    *remaining -= take as u64;
                    input = &input[take..];
                    if *remaining == 0 {
                        self.framing = Framing::Head(Vec::new());
                        self.answered += 1;
                    }
                }
                Framing::Head(head) => {
                    let before = head.len();
                    let search_from = before.saturating_sub(3);
                    head.extend_from_slice(input);
                    // Not a response head: the framing was lost somehow;
                    // stop watching rather than hold bytes back.
                    let prefix = head.len().min(STATUS_LINE_START.len());
                    let lost = head[..prefix] != STATUS_LINE_START[..prefix];
                    let found = find(&head[search_from..], b"\r\n\r\n");
                    let Some(at) = found.filter(|_| !lost) else {
                        if lost || head.len() > MAX_RESPONSE_HEAD_BYTES {
                            let head = std::mem::take(head);
                            self.pending.extend_from_slice(&head);
                            self.framing = Framing::Passthrough;
                        }
                        return;
                    };
                    let end = search_from + at + 4;
                    let mut head = std::mem::take(head);
                    head.truncate(end);
                    input = &input[end - before..];
                    self.on_head(&head);
                }
            }
        }
    }

    /// Decides what follows a complete response head and what is sent.
    fn on_head(&mut self, head: &[u8]) {
        let Some(parsed) = ResponseHead::parse(head) else {
            self.pending.extend_from_slice(head);
            self.framing = Framing::Passthrough;
            return;
        };
        let status = parsed.status;
        if status.is_informational() {
            self.pending.extend_from_slice(head);
            self.framing = Framing::Head(Vec::new());
            return;
        }
        let bodiless = !parsed.chunked && parsed.content_length.unwrap_or(0) == 0;
        if let Some(error) = self.dispatcher_error(status).filter(|_| bodiless) {
            // The dispatcher's own answer: the application's errors all
            // have a body, even for HEAD (GET's length).
            self.pending
                .extend_from_slice(&problem_response(&error, parsed.date));
            self.framing = Framing::Head(Vec::new());
            return;
        }
        self.pending.extend_from_slice(head);
        let to_head = self
            .requests
            .heads
            .borrow_mut()
            .pop_front()
            .unwrap_or(false);
        if parsed.chunked {
            self.framing = Framing::Passthrough;
            return;
        }
        let length =
            if to_head || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
                0
            } else {
                match parsed.content_length {
                    Some(length) => length,
                    None => {
                        // Delimited by the connection's close.
                        self.framing = Framing::Passthrough;
                        return;
                    }
                }
            };
        if length == 0 {
            self.answered += 1;
            self.framing = Framing::Head(Vec::new());
        } else {
            self.framing = Framing::Body(length);
        }
    }

    /// The problem replacing the dispatcher's bodiless `status`, if any.
    fn dispatcher_error(&self, status: StatusCode) -> Option<ApiError> {
        Some(match status {
            StatusCode::BAD_REQUEST => ApiError::MalformedRequest,
            StatusCode::REQUEST_TIMEOUT => ApiError::RequestTimeout,
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge {
                limit: self.max_body_bytes,
            },
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => ApiError::HeaderFieldsTooLarge,
            StatusCode::INTERNAL_SERVER_ERROR => {
                ApiError::unexpected("the HTTP dispatcher failed a request")
            }
            _ => return None,
        })
    }
}

impl<T: AsyncWrite + Unpin> ProblemIo<T> {
    /// Writes `pending` to the stream; ready once all of it is written.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.pending.len() {
            match ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending[self.written..])) {
                Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Ok(n) => self.written += n,
                Err(error) => return Poll::Ready(Err(error)),
            }
        }
        self.pending.clear();
        self.written = 0;
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncRead for ProblemIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.timed_out {
            return Poll::Ready(Ok(()));
        }
        let received = this.requests.received.get();
        if let Some((deadline, armed_at)) = &mut this.head_deadline {
            if received > *armed_at {
                this.head_deadline = None;
            } else if deadline.as_mut().poll(cx).is_ready() {
                // The next request's head is late: answer 408 as the
                // dispatcher does for the first request, and end the input
                // (the dispatcher then closes the connection).
                tracing::info!("request head not received in time");
                this.head_deadline = None;
                this.timed_out = true;
                this.framing = Framing::Passthrough;
                this.pending
                    .extend_from_slice(&problem_response(&ApiError::RequestTimeout, None));
                let _ = this.poll_pending(cx);
                return Poll::Ready(Ok(()));
            }
        }
        let filled = buf.filled().len();
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        let between_requests = received > 0 && this.answered >= received;
        if buf.filled().len() > filled && between_requests && this.head_deadline.is_none() {
            let mut deadline = Box::pin(tokio::time::sleep_until(
                Instant::now() + this.header_read_timeout,
            ));
            // Registers the wake-up.
            let _ = deadline.as_mut().poll(cx);
            this.head_deadline = Some((deadline, received));
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ProblemIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        if this.timed_out {
            // The 408 ended the conversation.
            return Poll::Ready(Ok(buf.len()));
        }
        if matches!(this.framing, Framing::Passthrough) {
            return Pin::new(&mut this.inner).poll_write(cx, buf);
        }
        this.transform(buf);
        // The bytes are accepted; what is not written now is by the next
        // write, flush or shutdown.
        if let Poll::Ready(Err(error)) = this.poll_pending(cx) {
            return Poll::Ready(Err(error));
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

/// What [`ProblemIo`] needs of a response head.
#[derive(Debug)]
struct ResponseHead<'a> {
    status: StatusCode,
    content_length: Option<u64>,
    chunked: bool,
    date: Option<&'a [u8]>,
}

impl<'a> ResponseHead<'a> {
    /// Parses `HTTP/1.x SSS reason` and the fields it needs; `None` when the
    /// head is not one.
    fn parse(head: &'a [u8]) -> Option<Self> {
        let mut lines = head.split(|byte| *byte == b'\n');
        let status_line = lines.next()?;
        let status = status_line.strip_prefix(b"HTTP/1.")?.get(2..5)?;
        let status = StatusCode::from_bytes(status).ok()?;
        let mut parsed = Self {
            status,
            content_length: None,
            chunked: false,
            date: None,
        };
        for line in lines {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let Some(colon) = line.iter().position(|byte| *byte == b':') else {
                continue;
            };
            let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
            if name.eq_ignore_ascii_case(b"content-length") {
                parsed.content_length = Some(std::str::from_utf8(value).ok()?.parse().ok()?);
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                parsed.chunked = true;
            } else if name.eq_ignore_ascii_case(b"date") {
                parsed.date = Some(value);
            }
        }
        Some(parsed)
    }
}

/// A complete HTTP/1.1 response carrying `error`'s problem document, closing
/// the connection.
fn problem_response(error: &ApiError, date: Option<&[u8]>) -> Vec<u8> {
    let status = error.status_code();
    let body = serde_json::to_vec(&error.problem()).unwrap_or_default();
    let mut response = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: {PROBLEM_JSON}\r\ncontent-length: {}\r\nconnection: close\r\nx-content-type-options: nosniff\r\n",
        status.as_str(),
        status.canonical_reason().unwrap_or(""),
        body.len(),
    )
    .into_bytes();
    if matches!(error, ApiError::TooManyConnections { .. }) {
        response
            .extend_from_slice(format!("retry-after: {REFUSAL_RETRY_AFTER_SECS}\r\n").as_bytes());
    }
    if let Some(date) = date {
        response.extend_from_slice(b"date: ");
        response.extend_from_slice(date);
        response.extend_from_slice(b"\r\n");
    }
    response.extend_from_slice(b"\r\n");
    response.extend_from_slice(&body);
    response
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io() -> ProblemIo<()> {
        let limits = Limits {
            header_read_timeout: Duration::from_secs(1),
            keep_alive: Duration::from_secs(1),
            max_connections_per_ip: 1,
            max_body_bytes: 100,
            proxies: TrustedProxies::default(),
            trust_any_peer: false,
        };
        ProblemIo::new((), None, &limits)
    }

    fn sent(io: &mut ProblemIo<()>, writes: &[&[u8]]) -> String {
        for write in writes {
            io.transform(write);
        }
        String::from_utf8(std::mem::take(&mut io.pending)).unwrap()
    }

    #[test]
    fn a_bodiless_dispatcher_error_becomes_a_problem_and_app_responses_pass() {
        let mut io = io();
        io.requests.receive(false);
        let app = "HTTP/1.1 404 Not Found\r\ncontent-length: 5\r\n\r\nabcde";
        let error =
            "HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\ndate: D\r\n\r\n";
        let out = sent(
            &mut io,
            &[
                &app.as_bytes()[..20],
                &app.as_bytes()[20..],
                error.as_bytes(),
            ],
        );
        assert!(out.starts_with(app), "{out}");
        let rest = &out[app.len()..];
        assert!(rest.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{rest}");
        assert!(rest.contains("\"code\":\"malformed_request\""), "{rest}");
        assert!(rest.contains("date: D\r\n"), "{rest}");
        let (head, body) = rest.split_once("\r\n\r\n").unwrap();
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{head}"
        );
    }

    #[test]
    fn a_head_response_has_no_body_to_skip() {
        let mut io = io();
        io.requests.receive(true);
        let head = "HTTP/1.1 200 OK\r\ncontent-length: 50\r\n\r\n";
        let timeout = "HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\n\r\n";
        let out = sent(&mut io, &[head.as_bytes(), timeout.as_bytes()]);
        assert!(out.contains("\"code\":\"request_timeout\""), "{out}");
        assert_eq!(io.answered, 1);
    }

    #[test]
    fn problem_bodies_that_look_like_heads_are_not_rewritten() {
        let mut io = io();
        io.requests.receive(false);
        let body = "HTTP/1.1 431 X\r\ncontent-length: 0\r\n\r\n";
        let app = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        let out = sent(&mut io, &[app.as_bytes()]);
        assert_eq!(out, app);
    }

    #[test]
    fn lost_framing_passes_everything_at_once() {
        let mut io = io();
        // A HEAD the middleware did not see: the next head is taken for its
        // content, and what follows is no head.
        let answers = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n";
        let out = sent(&mut io, &[answers.as_bytes()]);
        assert_eq!(out, answers);
        assert!(matches!(io.framing, Framing::Passthrough));
        let mut other = super::tests::io();
        let out = sent(&mut other, &[b"{\"not\": \"a head\"}"]);
        assert_eq!(out, "{\"not\": \"a head\"}");
        assert!(matches!(other.framing, Framing::Passthrough));
    }

    #[test]
    fn the_per_ip_counter_limits_and_releases() {
        let counter = ConnectionCounter::default();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let first = counter.acquire(ip, 2).unwrap();
        let _second = counter.acquire(ip, 2).unwrap();
        assert!(counter.acquire(ip, 2).is_none());
        assert!(counter.acquire("10.0.0.2".parse().unwrap(), 2).is_some());
        drop(first);
        assert_eq!(counter.open(ip), 1);
        assert!(counter.acquire(ip, 2).is_some());
    }
}
