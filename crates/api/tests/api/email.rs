//! The email outbox delivered by the running service to a real SMTP server
//! (aiosmtpd, started by `scripts/test`: `ORGSVC_TEST_SMTP_URL`, with each
//! accepted message as a file in `ORGSVC_TEST_MAILDIR`). Messages are put
//! in the outbox through the store, as the use cases do: with their token,
//! in one write.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::web;
use chrono::Utc;
use orgsvc_api::config::Settings;
use orgsvc_api::credentials::Credentials;
use orgsvc_api::metrics::Metrics;
use orgsvc_api::startup::Service;
use orgsvc_api::state::AppState;
use orgsvc_domain::testing::{FaultyStore, Operation};
use orgsvc_domain::{
    AccountToken, AccountTokenPurpose, AdminEmail, AdminId, OutboxMessage, TenantStore, TokenHash,
};

use crate::helpers::{Backend, TestApp};

/// How long a test waits for something the sender does within seconds.
const PATIENCE: Duration = Duration::from_secs(30);

fn required_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the tests with scripts/test, which starts an SMTP server")
    })
}

/// The running service, until `stop` is sent to (or dropped).
struct Running {
    stop: tokio::sync::oneshot::Sender<()>,
    serving: actix_web::rt::task::JoinHandle<Result<(), orgsvc_api::startup::StartupError>>,
    state: web::Data<AppState>,
}

impl Running {
    /// The metrics as `GET /metrics` serves them (with `metrics.enabled`).
    fn scrape(&self) -> String {
        let metrics = self.state.metrics.as_ref().expect("metrics.enabled");
        metrics.render(self.state.app.hashing_pool_usage(), None)
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.serving.await.unwrap().unwrap();
    }
}

/// The running service on `store`, with `settings`.
async fn serve(settings: &Settings, store: Arc<dyn TenantStore>) -> Running {
    let credentials = Credentials::load(settings, store.clone()).await.unwrap();
    let mut state = AppState::new(settings, store, credentials);
    if let Some(metrics) = Metrics::from_settings(&settings.metrics).unwrap() {
        state = state.with_metrics(metrics);
    }
    let state = web::Data::new(state);
    let service = Service::start(settings, state.clone(), false, None).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = actix_web::rt::spawn(service.serve_until(async {
        let _ = stopped.await;
    }));
    Running {
        stop,
        serving,
        state,
    }
}

/// The value of the sample `series` (name and labels as exposed), 0 when
/// absent.
fn sample(scrape: &str, series: &str) -> f64 {
    scrape
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |value| value.trim().parse().unwrap())
}

/// `email.*` settings for a service delivering to `smtp_url` quickly.
fn email_env(smtp_url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("ORGSVC__SERVER__PORT", "0".into()),
        ("ORGSVC__SERVER__WORKERS", "1".into()),
        ("ORGSVC__SERVER__SHUTDOWN_TIMEOUT_SECS", "3".into()),
        ("ORGSVC__EMAIL__TRANSPORT", "smtp".into()),
        ("ORGSVC__EMAIL__SMTP_URL", smtp_url.into()),
        (
            "ORGSVC__EMAIL__FROM",
            "orgsvc tests <no-reply@orgsvc.test>".into(),
        ),
        ("ORGSVC__EMAIL__POLL_INTERVAL_SECS", "1".into()),
        ("ORGSVC__EMAIL__TIMEOUT_SECS", "5".into()),
        ("ORGSVC__EMAIL__RETRY_BASE_SECS", "1".into()),
        ("ORGSVC__EMAIL__RETRY_MAX_SECS", "1".into()),
    ]
}

async fn spawn_app(backend: Backend, smtp_url: &str) -> TestApp {
    let env = email_env(smtp_url);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    TestApp::spawn_with(backend, &env).await
}

/// Puts a message to a fresh address at `domain` in the outbox, with its
/// token, as a use case would; answers it.
async fn queue(store: &dyn TenantStore, domain: &str) -> OutboxMessage {
    let unique = uuid::Uuid::new_v4();
    let to = AdminEmail::parse(&format!("admin-{}@{domain}", unique.simple())).unwrap();
    let now = Utc::now();
    let token = AccountToken::issue(
        TokenHash::from_hex(format!("{:064x}", unique.as_u128())),
        AccountTokenPurpose::PasswordReset,
        AdminId::new(),
        to.clone(),
        now,
        Duration::from_secs(3600),
    );
    let link = format!(
        "https://app.orgsvc.test/reset-password?token=t{}",
        unique.simple()
    );
    let message = OutboxMessage::new(
        to,
        format!("Reset your password {}", unique.simple()),
        format!("Someone asked to reset your password.\r\nOpen {link}\r\n"),
        format!(
            "<p>Someone asked to reset your password.</p><p><a href=\"{link}\">Reset it</a></p>"
        ),
        now,
    );
    store
        .issue_account_token(token, message.clone())
        .await
        .unwrap();
    message
}

/// The messages in `maildir` whose envelope goes to `to`, as text.
fn delivered_to(maildir: &Path, to: &str) -> Vec<String> {
    let wanted = format!("X-Envelope-To: {to}\r\n");
    let mut files: Vec<PathBuf> = std::fs::read_dir(maildir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|entry| entry.path())
                .filter(|path| path.extension().is_some_and(|ext| ext == "eml"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .filter(|text| text.contains(&wanted))
        .collect()
}

/// Waits until `done` holds, up to [`PATIENCE`]; whether it did.
async fn eventually(mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    done()
}

/// Undoes quoted-printable soft line breaks and `=3D` (lettre's body
/// encoding for long lines), enough to find a link in a body.
fn unfold(text: &str) -> String {
    text.replace("=\r\n", "").replace("=3D", "=")
}

fn check_delivered(mail: &str, message: &OutboxMessage) {
    let unfolded = unfold(mail);
    assert!(
        mail.contains(&format!("Subject: {}\r\n", message.subject)),
        "{mail}"
    );
    assert!(mail.contains(&format!("To: {}\r\n", message.to)), "{mail}");
    assert!(
        mail.contains("From: \"orgsvc tests\" <no-reply@orgsvc.test>"),
        "{mail}"
    );
    assert!(
        mail.contains(&format!("Message-ID: <{}@orgsvc.test>", message.id)),
        "{mail}"
    );
    assert!(mail.contains("multipart/alternative"), "{mail}");
    assert!(mail.contains("text/plain"), "{mail}");
    assert!(mail.contains("text/html"), "{mail}");
    assert!(unfolded.contains(message.text_body.trim_end()), "{mail}");
    assert!(unfolded.contains(&message.html_body), "{mail}");
}

async fn outbox_messages_arrive_at_the_smtp_server(backend: Backend) {
    let smtp_url = required_env("ORGSVC_TEST_SMTP_URL");
    let maildir = PathBuf::from(required_env("ORGSVC_TEST_MAILDIR"));
    let app = spawn_app(backend, &smtp_url).await;
    let running = serve(&app.settings, app.store.clone()).await;

    let message = queue(app.store.as_ref(), "example.com").await;
    let to = message.to.to_string();
    assert!(
        eventually(|| !delivered_to(&maildir, &to).is_empty()).await,
        "the message did not arrive within {PATIENCE:?}"
    );
    let mails = delivered_to(&maildir, &to);
    assert_eq!(mails.len(), 1);
    check_delivered(&mails[0], &message);

    running.stop().await;
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An SMTP sink of this test's own (`scripts/smtp-sink run`), killed when
/// dropped.
struct OwnSink {
    child: Child,
    maildir: tempfile::TempDir,
}

impl OwnSink {
    async fn start(port: u16, extra: &[&str]) -> Self {
        let maildir = tempfile::tempdir().unwrap();
        let child = Command::new(required_env("ORGSVC_TEST_SMTP_SINK"))
            .arg("run")
            .arg(port.to_string())
            .arg(maildir.path())
            .args(extra)
            .spawn()
            .unwrap();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let listening =
            eventually(|| TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok())
                .await;
        assert!(listening, "the SMTP sink did not listen on {addr}");
        Self { child, maildir }
    }
}

impl Drop for OwnSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn delivery_is_retried_while_the_server_is_down_and_happens_once_it_is_back(
    backend: Backend,
) {
    let port = free_port(); // nothing listens there yet
    let app = spawn_app(backend, &format!("smtp://127.0.0.1:{port}")).await;
    let store = Arc::new(FaultyStore::new(app.store.clone()));
    let running = serve(&app.settings, store.clone()).await;

    let message = queue(app.store.as_ref(), "example.com").await;
    // Refused connections: failed, and tried again after the backoff.
    assert!(
        eventually(|| store.calls_to(Operation::MarkFailed) >= 2).await,
        "the sender did not retry"
    );
    assert_eq!(store.calls_to(Operation::MarkSent), 0);

    let sink = OwnSink::start(port, &[]).await;
    let to = message.to.to_string();
    assert!(
        eventually(|| !delivered_to(sink.maildir.path(), &to).is_empty()).await,
        "the message did not arrive once the server was up"
    );
    assert!(eventually(|| store.calls_to(Operation::MarkSent) == 1).await);
    // Several more rounds: it stays delivered once.
    let rounds = store.calls_to(Operation::ClaimDueMessages);
    assert!(eventually(|| store.calls_to(Operation::ClaimDueMessages) >= rounds + 3).await);
    let mails = delivered_to(sink.maildir.path(), &to);
    assert_eq!(mails.len(), 1, "delivered more than once");
    check_delivered(&mails[0], &message);
    assert_eq!(store.calls_to(Operation::MarkSent), 1);

    running.stop().await;
}

async fn a_recipient_the_server_refuses_is_given_up_after_one_attempt(backend: Backend) {
    let port = free_port();
    let sink = OwnSink::start(port, &["--reject-domain", "bounce.test"]).await;
    let mut env = email_env(&format!("smtp://127.0.0.1:{port}"));
    env.push(("ORGSVC__METRICS__ENABLED", "true".into()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let app = TestApp::spawn_with(backend, &env).await;
    let store = Arc::new(FaultyStore::new(app.store.clone()));
    let running = serve(&app.settings, store.clone()).await;
    // Counters are process-wide (other tests may add to them): compare.
    const DELIVERED: &str = "orgsvc_emails_delivered_total";
    const GIVEN_UP: &str = "orgsvc_email_delivery_failures_total{outcome=\"given_up\"}";
    let before = running.scrape();

    let refused = queue(app.store.as_ref(), "bounce.test").await;
    let accepted = queue(app.store.as_ref(), "example.com").await;
    let accepted_to = accepted.to.to_string();
    assert!(eventually(|| !delivered_to(sink.maildir.path(), &accepted_to).is_empty()).await);
    assert!(eventually(|| store.calls_to(Operation::MarkFailed) == 1).await);
    // A 550 is permanent: no retry in later rounds (retries would come
    // every second).
    let rounds = store.calls_to(Operation::ClaimDueMessages);
    assert!(eventually(|| store.calls_to(Operation::ClaimDueMessages) >= rounds + 3).await);
    assert_eq!(store.calls_to(Operation::MarkFailed), 1);
    assert!(delivered_to(sink.maildir.path(), refused.to.as_str()).is_empty());
    let after = running.scrape();
    assert!(
        sample(&after, DELIVERED) >= sample(&before, DELIVERED) + 1.0,
        "{after}"
    );
    assert!(
        sample(&after, GIVEN_UP) >= sample(&before, GIVEN_UP) + 1.0,
        "{after}"
    );

    running.stop().await;
}

backend_suite!(
    outbox_messages_arrive_at_the_smtp_server,
    delivery_is_retried_while_the_server_is_down_and_happens_once_it_is_back,
    a_recipient_the_server_refuses_is_given_up_after_one_attempt,
);

#[actix_web::test]
async fn rejected_credentials_are_retried_not_given_up_and_good_ones_deliver() {
    let port = free_port();
    let sink = OwnSink::start(port, &["--login", "orgsvc:s3cr@t"]).await;

    // A wrong password: 535 is our configuration, not the message's fault.
    let app = spawn_app(
        Backend::Embedded,
        &format!("smtp://orgsvc:wrong@127.0.0.1:{port}"),
    )
    .await;
    let store = Arc::new(FaultyStore::new(app.store.clone()));
    let running = serve(&app.settings, store.clone()).await;
    let message = queue(app.store.as_ref(), "example.com").await;
    assert!(
        eventually(|| store.calls_to(Operation::MarkFailed) >= 2).await,
        "a refused login was not retried"
    );
    assert_eq!(store.calls_to(Operation::MarkSent), 0);
    running.stop().await;

    // The right one (percent-encoded in the URL's userinfo) delivers it.
    let fixed = format!("smtp://orgsvc:s3cr%40t@127.0.0.1:{port}");
    let mut settings = app.settings.clone();
    settings.email.smtp_url = Some(fixed.into());
    let running = serve(&settings, app.store.clone()).await;
    let to = message.to.to_string();
    assert!(
        eventually(|| !delivered_to(sink.maildir.path(), &to).is_empty()).await,
        "not delivered with the right credentials"
    );
    check_delivered(&delivered_to(sink.maildir.path(), &to)[0], &message);
    running.stop().await;
}
