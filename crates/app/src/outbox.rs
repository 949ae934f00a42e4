//! Delivering the email outbox in the background (issue #14).
//!
//! Use cases store a message in the same write as the token it carries
//! ([`orgsvc_domain::AccountTokenStore::issue_account_token`]); the
//! [`MailSender`] then claims due messages in batches
//! ([`OutboxStore::claim_due_messages`]), hands each to the
//! [`MailTransport`] and records the outcome:
//! - accepted: [`OutboxStore::mark_sent`];
//! - a transient failure: [`OutboxStore::mark_failed`], due again after the
//!   [`RetryPolicy`]'s backoff;
//! - a permanent failure (an SMTP `5yz` reply), or the
//!   [`SenderSettings::max_attempts`]-th failure: given up, i.e. marked
//!   failed with [`given_up_at`] as its next attempt, so it is never claimed
//!   again, and logged as a warning naming the message id (never the
//!   recipient or a body). It goes when its token is purged.
//!
//! Delivery is **at least once**. A claim keeps other senders (other
//! instances) away from a message until it expires, and a message is only
//! attempted while its claim has at least [`SenderSettings::delivery_timeout`]
//! left, so under normal operation no two senders deliver the same message.
//! A message is sent twice only when the sender stops (crash, kill, shutdown
//! deadline) or the store fails between the transport's acceptance and
//! `mark_sent`: the claim then expires and the message is delivered again.
//! Every message carries its outbox id as `Message-ID`, so a receiver can
//! tell such duplicates apart.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use orgsvc_domain::{
    given_up_at, DeliveryError, ErrorChain, MailTransport, OutboxMessage, OutboxStore, RetryPolicy,
    StoreError,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How the sender works (`email.*` settings).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SenderSettings {
    /// Time between looks at the outbox when the last one found less than a
    /// full batch (`email.poll_interval_secs`).
    pub poll_interval: Duration,
    /// Messages claimed at once (`email.batch_size`, at least 1).
    pub batch_size: u32,
    /// Longest one delivery may take (`email.timeout_secs`); a slower one
    /// counts as a transient failure.
    pub delivery_timeout: Duration,
    /// When failed messages are tried again (`email.retry_base_secs`,
    /// `email.retry_max_secs`).
    pub retry: RetryPolicy,
    /// Failed deliveries after which a message is given up
    /// (`email.max_attempts`, at least 1).
    pub max_attempts: u32,
}

impl Default for SenderSettings {
    /// Every 5 s, batches of 20, 30 s per delivery, retries from 30 s
    /// doubling up to an hour, given up after 10 failures (about 4 hours).
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(5),
            batch_size: 20,
            delivery_timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            max_attempts: 10,
        }
    }
}

impl SenderSettings {
    /// How long a batch is claimed: one delivery timeout per message, and
    /// one more for the store's calls.
    pub fn claim_duration(&self) -> Duration {
        self.delivery_timeout
            .saturating_mul(self.batch_size.saturating_add(1))
    }
}

/// What one round of the sender did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RoundReport {
    /// Messages claimed.
    pub claimed: usize,
    /// Accepted by the transport and marked sent.
    pub delivered: usize,
    /// Failed transiently; due again after the backoff.
    pub retried: usize,
    /// Failed permanently or too often; never tried again.
    pub given_up: usize,
    /// Claimed but not attempted (the claim ran short, or the sender was
    /// stopped): taken again once the claim expires.
    pub skipped: usize,
}

/// Told each round's report (e.g. to count deliveries).
pub type RoundObserver = Arc<dyn Fn(&RoundReport) + Send + Sync>;

/// Delivers the outbox: see the [module documentation](self).
#[derive(Clone)]
pub struct MailSender {
    store: Arc<dyn OutboxStore>,
    transport: Arc<dyn MailTransport>,
    settings: SenderSettings,
    observer: Option<RoundObserver>,
}

impl std::fmt::Debug for MailSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailSender")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl MailSender {
    /// A sender delivering `store`'s outbox through `transport`.
    pub fn new(
        store: Arc<dyn OutboxStore>,
        transport: Arc<dyn MailTransport>,
        settings: SenderSettings,
    ) -> Self {
        Self {
            store,
            transport,
            settings,
            observer: None,
        }
    }

    /// The same sender, telling `observer` what each round did.
    pub fn with_observer(self, observer: RoundObserver) -> Self {
        Self {
            observer: Some(observer),
            ..self
        }
    }

    /// Its settings.
    pub fn settings(&self) -> &SenderSettings {
        &self.settings
    }

    /// Claims one batch of messages due at `now` and delivers them (see the
    /// [module documentation](self)). Failures to record an outcome are
    /// logged; the message's claim then expires and it is delivered again.
    ///
    /// # Errors
    /// The store's failure to claim.
    pub async fn run_once(&self, now: DateTime<Utc>) -> Result<RoundReport, StoreError> {
        self.round(now, None).await
    }

    async fn round(
        &self,
        now: DateTime<Utc>,
        stop: Option<&watch::Receiver<bool>>,
    ) -> Result<RoundReport, StoreError> {
        let started = Instant::now();
        let claim = self.settings.claim_duration();
        let claim_until = after(now, claim);
        let batch = self
            .store
            .claim_due_messages(now, claim_until, self.settings.batch_size)
            .await?;
        let mut report = RoundReport {
            claimed: batch.len(),
            ..RoundReport::default()
        };
        for message in &batch {
            let claim_left = claim.saturating_sub(started.elapsed());
            let stopping = stop.is_some_and(|stop| *stop.borrow());
            if stopping || claim_left <= self.settings.delivery_timeout {
                report.skipped += 1;
                continue;
            }
            let outcome = match tokio::time::timeout(
                self.settings.delivery_timeout,
                self.transport.deliver(message),
            )
            .await
            {
                Ok(outcome) => outcome,
                Err(_) => Err(DeliveryError::Transient(format!(
                    "no answer within {:?}",
                    self.settings.delivery_timeout
                ))),
            };
            let at = after(now, started.elapsed());
            match outcome {
                Ok(()) => {
                    self.record(message, self.store.mark_sent(message.id, at).await);
                    tracing::info!(message_id = %message.id, attempts = message.attempts + 1, "email delivered");
                    report.delivered += 1;
                }
                Err(error) => {
                    let attempts = message.attempts.saturating_add(1);
                    let give_up = !error.is_transient() || attempts >= self.settings.max_attempts;
                    let next = if give_up {
                        given_up_at()
                    } else {
                        self.settings.retry.next_attempt_at(attempts, at)
                    };
                    self.record(message, self.store.mark_failed(message.id, next).await);
                    if give_up {
                        tracing::warn!(
                            message_id = %message.id,
                            attempts,
                            error = %error,
                            "email given up: it will not be delivered"
                        );
                        report.given_up += 1;
                    } else {
                        tracing::warn!(
                            message_id = %message.id,
                            attempts,
                            next_attempt_at = %next,
                            error = %error,
                            "email delivery failed; will retry"
                        );
                        report.retried += 1;
                    }
                }
            }
        }
        if let Some(observer) = &self.observer {
            observer(&report);
        }
        Ok(report)
    }

    fn record(&self, message: &OutboxMessage, recorded: Result<bool, StoreError>) {
        match recorded {
            Ok(true) => {}
            Ok(false) => tracing::warn!(
                message_id = %message.id,
                "email outcome not recorded: the message is gone or already sent"
            ),
            Err(error) => tracing::error!(
                message_id = %message.id,
                error = %ErrorChain(&error),
                "email outcome not recorded; it is delivered again when its claim expires"
            ),
        }
    }

    /// Delivers in the background until `stop` turns true (or its sender is
    /// dropped): a round at once, then every
    /// [`SenderSettings::poll_interval`], or at once again after a full
    /// batch. Once stopped, the message being delivered is finished and the
    /// rest of its batch left to its claim's expiry; the caller waits for
    /// the handle (and aborts it once it has waited long enough).
    pub fn spawn(self, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(self.settings.poll_interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    biased;
                    _ = stop.wait_for(|stop| *stop) => return,
                    _ = ticks.tick() => {} // the first tick is immediate
                }
                loop {
                    match self.round(Utc::now(), Some(&stop)).await {
                        Ok(report) => {
                            let full = u32::try_from(report.claimed)
                                .is_ok_and(|claimed| claimed >= self.settings.batch_size);
                            if !full || report.skipped > 0 {
                                break;
                            }
                        }
                        Err(error) => {
                            tracing::error!(error = %ErrorChain(&error), "claiming emails to deliver failed");
                            break;
                        }
                    }
                }
            }
        })
    }
}

/// `now + wait`, saturating at the latest representable time.
fn after(now: DateTime<Utc>, wait: Duration) -> DateTime<Utc> {
    TimeDelta::from_std(wait)
        .ok()
        .and_then(|wait| now.checked_add_signed(wait))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::HashMap;
    use std::sync::Mutex;

    use async_trait::async_trait;
    use orgsvc_domain::testing::InMemoryStore;
    use orgsvc_domain::{
        AccountToken, AccountTokenPurpose, AccountTokenStore, AdminEmail, AdminId, OutboxMessageId,
        TokenHash,
    };

    use super::*;

    /// Accepts a message after failing it `failures[to]` times
    /// (transiently), or refuses `permanent` recipients; records every
    /// accepted message.
    #[derive(Default)]
    struct FlakyTransport {
        failures: Mutex<HashMap<String, u32>>,
        permanent: Vec<String>,
        delivered: Mutex<Vec<OutboxMessageId>>,
        attempts: Mutex<u32>,
    }

    #[async_trait]
    impl MailTransport for FlakyTransport {
        async fn deliver(&self, message: &OutboxMessage) -> Result<(), DeliveryError> {
            *self.attempts.lock().unwrap() += 1;
            let to = message.to.as_str().to_owned();
            if self.permanent.contains(&to) {
                return Err(DeliveryError::Permanent("550 no such user".into()));
            }
            let mut failures = self.failures.lock().unwrap();
            if let Some(left) = failures.get_mut(&to).filter(|left| **left > 0) {
                *left -= 1;
                return Err(DeliveryError::Transient("421 try later".into()));
            }
            self.delivered.lock().unwrap().push(message.id);
            Ok(())
        }
    }

    fn settings() -> SenderSettings {
        SenderSettings {
            poll_interval: Duration::from_millis(10),
            batch_size: 2,
            delivery_timeout: Duration::from_secs(5),
            retry: RetryPolicy {
                base: Duration::from_secs(10),
                max: Duration::from_secs(40),
            },
            max_attempts: 4,
        }
    }

    async fn queue(store: &InMemoryStore, to: &str, now: DateTime<Utc>) -> OutboxMessageId {
        let email = AdminEmail::parse(to).unwrap();
        let token = AccountToken::issue(
            TokenHash::from_hex(format!(
                "{:064x}",
                to.len() as u128 * 7919 + to.bytes().map(u128::from).sum::<u128>()
            )),
            AccountTokenPurpose::PasswordReset,
            AdminId::new(),
            email.clone(),
            now,
            Duration::from_secs(86_400),
        );
        let message = OutboxMessage::new(email, "Reset", "link", "<a>link</a>", now);
        let id = message.id;
        store.issue_account_token(token, message).await.unwrap();
        id
    }

    fn sender(store: &Arc<InMemoryStore>, transport: &Arc<FlakyTransport>) -> MailSender {
        MailSender::new(store.clone(), transport.clone(), settings())
    }

    fn secs(n: i64) -> TimeDelta {
        TimeDelta::seconds(n)
    }

    #[tokio::test]
    async fn failed_deliveries_are_retried_with_backoff_until_they_succeed_once() {
        let store = Arc::new(InMemoryStore::new());
        let transport = Arc::new(FlakyTransport::default());
        transport
            .failures
            .lock()
            .unwrap()
            .insert("a@example.com".into(), 2);
        let sender = sender(&store, &transport);
        let t0 = orgsvc_domain::clock::now_millis();
        let id = queue(&store, "a@example.com", t0).await;

        let first = sender.run_once(t0).await.unwrap();
        assert_eq!((first.claimed, first.retried), (1, 1));
        // Not due before the first backoff (10 s)...
        assert_eq!(sender.run_once(t0 + secs(9)).await.unwrap().claimed, 0);
        // ...fails again at 10 s, then waits 20 s.
        assert_eq!(sender.run_once(t0 + secs(10)).await.unwrap().retried, 1);
        assert_eq!(sender.run_once(t0 + secs(29)).await.unwrap().claimed, 0);
        let third = sender.run_once(t0 + secs(31)).await.unwrap();
        assert_eq!((third.claimed, third.delivered), (1, 1));
        // Delivered exactly once, and never again.
        assert_eq!(sender.run_once(t0 + secs(3600)).await.unwrap().claimed, 0);
        assert_eq!(*transport.delivered.lock().unwrap(), vec![id]);
        assert_eq!(*transport.attempts.lock().unwrap(), 3);
    }

    #[tokio::test]
    async fn permanent_failures_and_too_many_attempts_are_given_up() {
        let store = Arc::new(InMemoryStore::new());
        let transport = Arc::new(FlakyTransport {
            permanent: vec!["gone@example.com".into()],
            ..FlakyTransport::default()
        });
        transport
            .failures
            .lock()
            .unwrap()
            .insert("down@example.com".into(), 100);
        let sender = sender(&store, &transport);
        let t0 = orgsvc_domain::clock::now_millis();
        queue(&store, "gone@example.com", t0).await;
        queue(&store, "down@example.com", t0).await;

        let first = sender.run_once(t0).await.unwrap();
        assert_eq!((first.given_up, first.retried), (1, 1));
        // The second fails at attempts 2 and 3 (10 s, then 20 s later)...
        let mut at = t0;
        for wait in [10, 20] {
            at += secs(wait);
            assert_eq!(sender.run_once(at).await.unwrap().retried, 1);
        }
        // ...and is given up at the fourth (max_attempts).
        at += secs(40);
        assert_eq!(sender.run_once(at).await.unwrap().given_up, 1);
        let far = given_up_at() - secs(1);
        assert_eq!(sender.run_once(far).await.unwrap().claimed, 0);
        assert_eq!(*transport.attempts.lock().unwrap(), 5);
        assert!(transport.delivered.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn claimed_messages_are_not_delivered_by_a_second_sender() {
        let store = Arc::new(InMemoryStore::new());
        let transport = Arc::new(FlakyTransport::default());
        let t0 = orgsvc_domain::clock::now_millis();
        for n in 0..5 {
            queue(&store, &format!("user{n}@example.com"), t0).await;
        }
        // Two instances polling at once: each message goes to one.
        let (a, b) = (sender(&store, &transport), sender(&store, &transport));
        loop {
            let (ra, rb) = tokio::join!(a.run_once(t0), b.run_once(t0));
            let (ra, rb) = (ra.unwrap(), rb.unwrap());
            if ra.claimed + rb.claimed == 0 {
                break;
            }
        }
        let mut delivered = transport.delivered.lock().unwrap().clone();
        delivered.sort();
        delivered.dedup();
        assert_eq!(delivered.len(), 5);
        assert_eq!(*transport.attempts.lock().unwrap(), 5);
    }

    #[tokio::test]
    async fn a_crash_after_claiming_delays_delivery_until_the_claim_expires() {
        let store = Arc::new(InMemoryStore::new());
        let transport = Arc::new(FlakyTransport::default());
        let t0 = orgsvc_domain::clock::now_millis();
        let id = queue(&store, "a@example.com", t0).await;
        let claim = settings().claim_duration();
        // A sender claims the message and dies before delivering it.
        let claimed = store
            .claim_due_messages(t0, after(t0, claim), 10)
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1);
        let sender = sender(&store, &transport);
        assert_eq!(sender.run_once(t0 + secs(1)).await.unwrap().claimed, 0);
        let later = after(t0, claim);
        assert_eq!(sender.run_once(later).await.unwrap().delivered, 1);
        assert_eq!(*transport.delivered.lock().unwrap(), vec![id]);
    }

    #[tokio::test]
    async fn the_background_sender_delivers_and_stops() {
        let store = Arc::new(InMemoryStore::new());
        let transport = Arc::new(FlakyTransport::default());
        let id = queue(&store, "a@example.com", orgsvc_domain::clock::now_millis()).await;
        let (stop, stopped) = watch::channel(false);
        let task = sender(&store, &transport).spawn(stopped);
        let deadline = Instant::now() + Duration::from_secs(10);
        while transport.delivered.lock().unwrap().is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(*transport.delivered.lock().unwrap(), vec![id]);
        stop.send_replace(true);
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
    }

    #[test]
    fn a_batch_is_claimed_for_one_timeout_per_message_and_one_more() {
        assert_eq!(settings().claim_duration(), Duration::from_secs(15));
        assert_eq!(
            SenderSettings::default().claim_duration(),
            Duration::from_secs(630)
        );
    }
}
