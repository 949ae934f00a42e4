//! The email outbox's transports ([`MailTransport`]), chosen by
//! `email.transport`:
//! - [`SmtpTransport`] (`smtp`): lettre's async SMTP client on tokio, TLS
//!   with rustls, to the relay at `email.smtp_url`;
//! - [`LogTransport`] (`log`, the development default): writes the
//!   recipient, subject and text body (with its link) to the log, so the
//!   flow can be followed without a mail server. Never in production.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::AsyncSmtpTransport;
use lettre::{AsyncTransport, Message, Tokio1Executor};
use orgsvc_domain::{DeliveryError, MailTransport, OutboxMessage};
use secrecy::ExposeSecret;

use crate::config::{smtp_builder, ConfigError, EmailSettings, EmailTransportKind};

/// The transport `settings` ask for.
///
/// # Errors
/// [`ConfigError::Invalid`] naming `email.smtp_url` or `email.from` when
/// they are missing or unusable (validation normally catches it first).
pub fn transport(settings: &EmailSettings) -> Result<Arc<dyn MailTransport>, ConfigError> {
    match settings.transport {
        EmailTransportKind::Log => Ok(Arc::new(LogTransport)),
        EmailTransportKind::Smtp => Ok(Arc::new(SmtpTransport::from_settings(settings)?)),
    }
}

/// Delivers through an SMTP relay (RFC 5321) with lettre.
///
/// `email.smtp_url` says how, in lettre's connection URL format:
/// - `smtp://host:port`: plain SMTP, no encryption (a relay on the same
///   host or network, a mail catcher); port 25 by default;
/// - `smtp://user:password@host:587?tls=required`: STARTTLS (RFC 3207),
///   refusing a server that does not offer it; `?tls=opportunistic`
///   upgrades only when offered; port 587 by default;
/// - `smtps://user:password@host:465`: implicit TLS (RFC 8314); port 465
///   by default.
///
/// Credentials in the URL's userinfo (percent-encoded) authenticate with
/// `AUTH PLAIN` or `LOGIN`; certificates are checked against the Mozilla
/// root store (webpki-roots). Connections are pooled. Each SMTP command
/// times out after `email.timeout_secs`.
///
/// A `5yz` reply (RFC 5321 §4.2.1) is a permanent failure, except the
/// authentication replies 530, 534, 535 and 538 (RFC 4954 §6): those mean
/// our configuration is wrong, not the message, so they are retried (and
/// the operator alerted by the failures metric and log). Everything else
/// (unreachable server, timeouts, `4yz`, TLS) is transient.
pub struct SmtpTransport {
    mailer: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl fmt::Debug for SmtpTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The mailer holds the relay's credentials: never shown.
        f.debug_struct("SmtpTransport")
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

impl SmtpTransport {
    /// The transport to `email.smtp_url` sending as `email.from`.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the key when `email.smtp_url` is
    /// missing or not an SMTP URL, or `email.from` not a mailbox.
    pub fn from_settings(settings: &EmailSettings) -> Result<Self, ConfigError> {
        let url = settings.smtp_url.as_ref().ok_or_else(|| {
            ConfigError::Invalid("email.transport = \"smtp\" requires email.smtp_url".into())
        })?;
        let mailer = smtp_builder(url.expose_secret())?
            .timeout(Some(Duration::from_secs(settings.timeout_secs)))
            .build();
        Ok(Self {
            mailer,
            from: settings.from_mailbox()?,
        })
    }
}

/// The MIME message for `message` from `from`: `multipart/alternative` with
/// the text and HTML bodies, and the outbox id as `Message-ID` (RFC 5322
/// §3.6.4), so that a repeated delivery is recognizable as the same
/// message.
pub fn mime_message(from: &Mailbox, message: &OutboxMessage) -> Result<Message, DeliveryError> {
    let to: Mailbox =
        message.to.as_str().parse().map_err(|error| {
            DeliveryError::Permanent(format!("recipient address refused: {error}"))
        })?;
    let domain = from.email.domain();
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(message.subject.as_str())
        .message_id(Some(format!("<{}@{domain}>", message.id)))
        .multipart(MultiPart::alternative_plain_html(
            message.text_body.clone(),
            message.html_body.clone(),
        ))
        .map_err(|error| DeliveryError::Permanent(format!("message not built: {error}")))
}

/// RFC 4954 §6 replies about authentication: our configuration, not the
/// message.
const AUTHENTICATION_REPLIES: [u16; 4] = [530, 534, 535, 538];

/// Whether an SMTP error is permanent (see [`SmtpTransport`]).
fn classify(error: &lettre::transport::smtp::Error) -> DeliveryError {
    let code = error.status().map(u16::from);
    let text = error.to_string();
    if error.is_permanent() && !code.is_some_and(|code| AUTHENTICATION_REPLIES.contains(&code)) {
        DeliveryError::Permanent(text)
    } else {
        DeliveryError::Transient(text)
    }
}

#[async_trait]
impl MailTransport for SmtpTransport {
    async fn deliver(&self, message: &OutboxMessage) -> Result<(), DeliveryError> {
        let mime = mime_message(&self.from, message)?;
        self.mailer
            .send(mime)
            .await
            .map(drop)
            .map_err(|error| classify(&error))
    }
}

/// Writes each message to the log at `info` (target `orgsvc::email`):
/// recipient, subject and text body, whose link a developer can follow.
/// Development only: production refuses `email.transport = "log"`.
#[derive(Clone, Copy, Debug, Default)]
pub struct LogTransport;

#[async_trait]
impl MailTransport for LogTransport {
    async fn deliver(&self, message: &OutboxMessage) -> Result<(), DeliveryError> {
        tracing::info!(
            target: "orgsvc::email",
            message_id = %message.id,
            to = %message.to,
            subject = %message.subject,
            "email (email.transport = \"log\": not sent)\n{}",
            message.text_body
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orgsvc_domain::AdminEmail;

    #[test]
    fn messages_are_multipart_alternative_with_the_outbox_id() {
        let from: Mailbox = "orgsvc <no-reply@example.com>".parse().unwrap();
        let message = OutboxMessage::new(
            AdminEmail::parse("ann@example.org").unwrap(),
            "Your invitation ✓",
            "Open https://app.example.com/invite?token=abc",
            "<a href=\"https://app.example.com/invite?token=abc\">Open</a>",
            chrono::Utc::now(),
        );
        let mime = mime_message(&from, &message).unwrap();
        let text = String::from_utf8(mime.formatted()).unwrap();
        assert!(
            text.contains(&format!("Message-ID: <{}@example.com>", message.id)),
            "{text}"
        );
        assert!(text.contains("multipart/alternative"), "{text}");
        assert!(text.contains("To: ann@example.org"), "{text}");
        assert_eq!(mime.envelope().to(), ["ann@example.org".parse().unwrap()]);
    }

    /// Collects what a `fmt` subscriber writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn the_log_transport_writes_recipient_subject_and_link() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let message = OutboxMessage::new(
            AdminEmail::parse("ann@example.org").unwrap(),
            "Your invitation",
            "Open http://localhost:8080/invite?token=abc123",
            "<a href=\"http://localhost:8080/invite?token=abc123\">Open</a>",
            chrono::Utc::now(),
        );
        LogTransport.deliver(&message).await.unwrap();
        let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert!(log.contains(" INFO "), "{log}");
        assert!(log.contains("ann@example.org"), "{log}");
        assert!(log.contains("Your invitation"), "{log}");
        assert!(
            log.contains("http://localhost:8080/invite?token=abc123"),
            "{log}"
        );
    }

    #[tokio::test] // lettre's connection pool lives on the runtime
    async fn the_transport_never_shows_the_smtp_password() {
        let settings = crate::config::Settings::load_from(
            None,
            Some(
                [
                    ("ORGSVC__EMAIL__TRANSPORT", "smtp"),
                    (
                        "ORGSVC__EMAIL__SMTP_URL",
                        "smtps://mailer:hunter2@smtp.example.com",
                    ),
                ]
                .into_iter()
                .map(|(key, value)| (key.to_owned(), value.to_owned()))
                .collect(),
            ),
        )
        .unwrap();
        let transport = SmtpTransport::from_settings(&settings.email).unwrap();
        assert!(!format!("{transport:?}").contains("hunter2"));
    }

    #[test]
    fn smtp_urls_follow_lettres_format_and_errors_hide_the_url() {
        for good in [
            "smtp://127.0.0.1:2525",
            "smtp://relay.example.com?tls=required",
            "smtp://user:p%40ss@relay.example.com:587?tls=opportunistic",
            "smtps://user:secret@relay.example.com",
        ] {
            assert!(smtp_builder(good).is_ok(), "{good}");
        }
        for bad in ["http://user:hunter2@x", "smtp://user:hunter2@", "nonsense"] {
            let error = smtp_builder(bad).err().unwrap().to_string();
            assert!(error.contains("email.smtp_url"), "{error}");
            assert!(!error.contains("hunter2"), "{error}");
        }
    }
}
