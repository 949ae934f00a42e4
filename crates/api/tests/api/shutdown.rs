//! Graceful shutdown and start-up, on the real binary (signals, sockets,
//! exit status) and on an in-process [`Service`].

use std::collections::HashMap;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use actix_web::web;
use orgsvc_api::config::Settings;
use orgsvc_api::credentials::Credentials;
use orgsvc_api::startup::Service;
use orgsvc_api::state::AppState;
use serde_json::Value;
use tempfile::TempDir;

use orgsvc_domain::testing::{Operation, Times};

use crate::failures::broken_store;
use crate::helpers::JWT_SECRET;

/// A response read off a socket.
#[derive(Debug)]
pub(crate) struct RawResponse {
    pub(crate) status: u16,
    pub(crate) headers: HashMap<String, String>,
    pub(crate) body: Vec<u8>,
}

impl RawResponse {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// An HTTP/1.1 client connection (keep-alive unless the server closes it).
pub(crate) struct Connection {
    stream: TcpStream,
    buffer: Vec<u8>,
}

impl Connection {
    pub(crate) fn open(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Self {
            stream,
            buffer: Vec::new(),
        }
    }

    pub(crate) fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    pub(crate) fn get(&mut self, path: &str) -> RawResponse {
        self.send(format!("GET {path} HTTP/1.1\r\nHost: orgsvc\r\n\r\n").as_bytes());
        self.response()
            .expect("the connection closed instead of answering")
    }

    /// Sends `HEAD` and reads the answer's head only (it has no content,
    /// whatever its `Content-Length`).
    pub(crate) fn head(&mut self, path: &str) -> RawResponse {
        self.send(format!("HEAD {path} HTTP/1.1\r\nHost: orgsvc\r\n\r\n").as_bytes());
        self.read_response(false)
            .expect("the connection closed instead of answering")
    }

    /// Reads the next response; `None` when the server closed the connection.
    pub(crate) fn response(&mut self) -> Option<RawResponse> {
        self.read_response(true)
    }

    /// Reads the next response, with its content when `with_content`.
    fn read_response(&mut self, with_content: bool) -> Option<RawResponse> {
        let head_end = loop {
            if let Some(end) = self.buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break end;
            }
            if !self.fill() {
                assert!(self.buffer.is_empty(), "connection closed mid-response");
                return None;
            }
        };
        let head = String::from_utf8(self.buffer[..head_end].to_vec()).unwrap();
        self.buffer.drain(..head_end + 4);
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let headers: HashMap<String, String> = lines
            .map(|line| {
                let (name, value) = line.split_once(':').unwrap();
                (name.to_ascii_lowercase(), value.trim().to_owned())
            })
            .collect();
        let length: usize = match headers.get("content-length") {
            Some(length) if with_content => length.parse().unwrap(),
            _ => 0,
        };
        while self.buffer.len() < length {
            assert!(self.fill(), "connection closed mid-body");
        }
        let body = self.buffer.drain(..length).collect();
        Some(RawResponse {
            status,
            headers,
            body,
        })
    }

    /// Reads more bytes; false at the end of the stream (or a reset).
    fn fill(&mut self) -> bool {
        let mut chunk = [0_u8; 4096];
        match self.stream.read(&mut chunk) {
            Ok(0) => false,
            Ok(read) => {
                self.buffer.extend_from_slice(&chunk[..read]);
                true
            }
            Err(error) if error.kind() == ErrorKind::ConnectionReset => false,
            Err(error) => panic!("reading the response failed: {error}"),
        }
    }

    /// Sends the head of `POST /org/create` and half its body, and waits
    /// for `100 Continue`: the handler is then running, waiting for the
    /// rest, which [`Connection::finish_create`] sends.
    fn start_create(&mut self) -> &'static [u8] {
        let body: &'static [u8] =
            br#"{"organization_name": "Slow Corp", "email": "admin@slow.example", "password": "correct horse battery"}"#;
        self.send(
            format!(
                "POST /org/create HTTP/1.1\r\nHost: orgsvc\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\nExpect: 100-continue\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        );
        let interim = self.response().unwrap();
        assert_eq!(interim.status, 100, "{interim:?}");
        let (first, rest) = body.split_at(body.len() / 2);
        self.send(first);
        rest
    }
}

/// Whether a new connection to `addr` is refused.
fn refused(addr: SocketAddr) -> bool {
    match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
        Ok(_) => false,
        Err(error) => error.kind() == ErrorKind::ConnectionRefused,
    }
}

#[track_caller]
fn wait_until_refused(addr: SocketAddr, within: Duration) {
    let start = Instant::now();
    while !refused(addr) {
        assert!(
            start.elapsed() < within,
            "{addr} still accepts connections after {within:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The `orgsvc` binary serving on a fresh embedded store and a free port.
struct Orgsvc {
    child: Child,
    addr: SocketAddr,
    _dir: TempDir,
}

impl Orgsvc {
    fn start(extra_env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_orgsvc"));
        command
            .env_remove("RUST_LOG")
            .env_remove("ORGSVC_CONFIG")
            .env("ORGSVC__STORE__KIND", "embedded")
            .env("ORGSVC__STORE__PATH", dir.path().join("orgsvc.db"))
            .env("ORGSVC__SERVER__HOST", "127.0.0.1")
            .env("ORGSVC__SERVER__PORT", "0")
            .env("ORGSVC__SERVER__WORKERS", "2")
            .env("ORGSVC__AUTH__JWT_SECRET", JWT_SECRET)
            .env("ORGSVC__AUTH__ARGON2__MEMORY_KIB", "256")
            .env("ORGSVC__AUTH__ARGON2__ITERATIONS", "1")
            .env("ORGSVC__LOG__FORMAT", "json")
            .env("ORGSVC__LOG__LEVEL", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (key, value) in extra_env {
            command.env(key, value);
        }
        let mut child = command.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (addresses, listening) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let Ok(event) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                if event["message"] == "listening" {
                    let address = event["address"].as_str().unwrap_or_default().to_owned();
                    let _ = addresses.send(address);
                }
            }
        });
        let addr = listening
            .recv_timeout(Duration::from_secs(60))
            .expect("orgsvc did not log its listening address")
            .parse()
            .unwrap();
        Self {
            child,
            addr,
            _dir: dir,
        }
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit; `None` if it still runs after `within`.
    fn exit_status(&mut self, within: Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if start.elapsed() > within {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Orgsvc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Slack for a loaded test machine on top of the configured bounds.
const MARGIN: Duration = Duration::from_secs(5);

#[test]
fn sigterm_refuses_new_connections_lets_in_flight_requests_finish_and_exits_0() {
    let mut orgsvc = Orgsvc::start(&[("ORGSVC__SERVER__SHUTDOWN_TIMEOUT_SECS", "10")]);
    let addr = orgsvc.addr;
    let mut idle = Connection::open(addr);
    assert_eq!(idle.get("/health/ready").status, 200);
    let mut in_flight = Connection::open(addr);
    let rest = in_flight.start_create();

    orgsvc.signal("TERM");
    wait_until_refused(addr, MARGIN);
    assert!(
        idle.response().is_none(),
        "an idle keep-alive connection stays open after SIGTERM"
    );
    in_flight.send(rest);
    let created = in_flight.response().unwrap();
    assert_eq!(
        created.status,
        201,
        "{:?}",
        String::from_utf8_lossy(&created.body)
    );
    assert_eq!(created.json()["organization_name"], "Slow Corp");
    assert_eq!(created.header("connection"), Some("close"));

    let status = orgsvc
        .exit_status(Duration::from_secs(10) + MARGIN)
        .expect("orgsvc still runs after its shutdown timeout");
    assert!(status.success(), "{status}");
}

#[test]
fn with_a_shutdown_delay_readiness_answers_503_before_the_listener_closes() {
    let mut orgsvc = Orgsvc::start(&[
        ("ORGSVC__SERVER__SHUTDOWN_TIMEOUT_SECS", "10"),
        ("ORGSVC__SERVER__SHUTDOWN_DELAY_SECS", "3"),
    ]);
    let addr = orgsvc.addr;
    let mut opened_before = Connection::open(addr);
    assert_eq!(opened_before.get("/health/ready").status, 200);

    orgsvc.signal("TERM");
    // The signal is handled asynchronously: new connections are still
    // accepted during the delay, and soon told the instance is going.
    let signalled = Instant::now();
    let not_ready = loop {
        let response = Connection::open(addr).get("/health/ready");
        if response.status == 503 {
            break response;
        }
        assert_eq!(response.status, 200);
        assert!(signalled.elapsed() < MARGIN, "readiness never answered 503");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(
        not_ready.header("content-type"),
        Some("application/problem+json")
    );
    assert_eq!(not_ready.json()["code"], "shutting_down");
    assert_eq!(not_ready.header("connection"), Some("close"));
    let response = opened_before.get("/health/ready");
    assert_eq!(response.status, 503);
    assert_eq!(response.json()["code"], "shutting_down");
    assert_eq!(Connection::open(addr).get("/health/live").status, 200);

    wait_until_refused(addr, Duration::from_secs(10) + MARGIN);
    let status = orgsvc
        .exit_status(Duration::from_secs(10) + MARGIN)
        .expect("orgsvc still runs after its shutdown timeout");
    assert!(status.success(), "{status}");
}

#[test]
fn a_request_that_never_completes_does_not_hold_shutdown_past_the_timeout() {
    let mut orgsvc = Orgsvc::start(&[("ORGSVC__SERVER__SHUTDOWN_TIMEOUT_SECS", "2")]);
    let mut stuck = Connection::open(orgsvc.addr);
    let _never_sent = stuck.start_create();

    orgsvc.signal("INT");
    let status = orgsvc
        .exit_status(Duration::from_secs(2) + MARGIN)
        .expect("a stuck request kept orgsvc running past its shutdown timeout");
    assert!(status.success(), "{status}");
    assert!(stuck.response().is_none(), "the stuck request was answered");
}

#[test]
fn a_login_still_hashing_does_not_hold_shutdown_past_the_timeout() {
    // Hashing with these parameters takes minutes: the handler is busy on
    // a blocking thread that nothing can interrupt.
    let mut orgsvc = Orgsvc::start(&[
        ("ORGSVC__SERVER__SHUTDOWN_TIMEOUT_SECS", "2"),
        ("ORGSVC__AUTH__ARGON2__MEMORY_KIB", "8192"),
        ("ORGSVC__AUTH__ARGON2__ITERATIONS", "10000"),
    ]);
    let body = br#"{"email": "nobody@slow.example", "password": "correct horse battery"}"#;
    let mut login = Connection::open(orgsvc.addr);
    login.send(
        format!(
            "POST /admin/login HTTP/1.1\r\nHost: orgsvc\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nExpect: 100-continue\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    assert_eq!(login.response().unwrap().status, 100);
    login.send(body);
    std::thread::sleep(Duration::from_millis(300)); // the hash starts

    orgsvc.signal("TERM");
    let status = orgsvc
        .exit_status(Duration::from_secs(2) + MARGIN)
        .expect("a login still hashing kept orgsvc running past its shutdown timeout");
    assert!(status.success(), "{status}");
    assert!(login.response().is_none(), "the login was answered");
}

pub(crate) fn settings(env: &[(&str, &str)]) -> Settings {
    let env = [
        ("ORGSVC__SERVER__PORT", "0"),
        ("ORGSVC__SERVER__WORKERS", "1"),
        ("ORGSVC__AUTH__JWT_SECRET", JWT_SECRET),
        ("ORGSVC__AUTH__ARGON2__MEMORY_KIB", "256"),
        ("ORGSVC__AUTH__ARGON2__ITERATIONS", "1"),
    ]
    .iter()
    .chain(env)
    .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
    .collect();
    Settings::load_from(None, Some(env)).unwrap()
}

#[actix_web::test]
async fn the_service_listens_while_the_first_reconciliation_still_runs() {
    // Reconciliation never ends (a hook before it that never completes).
    let store = broken_store();
    store.before(Operation::Reconcile, Times::Always, |_| {
        std::future::pending::<()>()
    });
    let reconciliations = {
        let store = store.clone();
        move || store.calls_to(Operation::Reconcile)
    };
    let settings = settings(&[("ORGSVC__SERVER__SHUTDOWN_TIMEOUT_SECS", "3")]);
    let credentials = Credentials::from_settings(&settings).unwrap();
    let state = web::Data::new(AppState::new(&settings, store.clone(), credentials));
    let service = Service::start(&settings, state, true, None).unwrap();
    let addr = service.addrs()[0];
    let plan = service.plan();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = actix_web::rt::spawn(service.serve_until(async {
        let _ = stopped.await;
    }));

    // The first reconciliation starts on its own as the service starts
    // (the task may need a moment to be scheduled) and never ends...
    let started_by = Instant::now() + Duration::from_secs(10);
    while reconciliations() == 0 && Instant::now() < started_by {
        actix_web::rt::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        reconciliations(),
        1,
        "the first reconciliation starts as the service starts"
    );
    // ...and the service answers meanwhile.
    let live =
        actix_web::rt::task::spawn_blocking(move || Connection::open(addr).get("/health/live"))
            .await
            .unwrap();
    assert_eq!(live.status, 200);

    let shutdown_began = Instant::now();
    stop.send(()).unwrap();
    serving.await.unwrap().unwrap(); // without waiting for the hung reconciliation

    // actix closes the listening socket on its accept thread once that
    // thread sees the stop, which may be a moment after `serve_until` returns.
    actix_web::rt::task::spawn_blocking(move || {
        wait_until_refused(addr, Duration::from_secs(1));
    })
    .await
    .unwrap();
    let drains = store.drains();
    assert_eq!(drains.len(), 1, "begin_drain is called once");
    assert!(drains[0] > shutdown_began);
    assert!(drains[0] <= shutdown_began + plan.operations_deadline + Duration::from_millis(500));
    assert!(plan.operations_deadline < plan.exit_by);
}
