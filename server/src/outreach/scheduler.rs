//! The scheduler: turns predictions into planned calls (and hold-out twins that are never
//! dialled), and due calls into dial attempts. Each call's row and Call-ID are committed
//! before the dialer is asked, so a crash leaves at most an `interrupted` call, never a
//! second dial. `farsight serve` runs it on a timer; `farsight outreach run-once` once.

use farsight_outreach::calls::ClaimedCall;
use farsight_outreach::dial::Outcome;
use farsight_outreach::event::{Event, EventKind};
use farsight_outreach::ids::{CallId, Millis};
use farsight_outreach::policy::{Policy, in_holdout};
use farsight_outreach::scheduling::{
    DIAL_BATCH, DialReport, PlanReport, PlanState, STALE_DIALING_MS, plan_calls, retry_at,
    wait_for_window,
};
use farsight_sip::{self as sip, CallRequest, Disposition, Party, SipConfig, Transport};
use farsight_store::Store;

use super::service::{OutreachError, current_predictions};
use super::webhook::WebhookDialer;
use crate::config::{DialerConfig, SipTransport};

/// How calls leave Farsight.
#[derive(Clone, Debug)]
pub enum Dialer {
    Webhook(WebhookDialer),
    Sip(SipDialer),
}

/// Third-party call control over SIP: the agent's phone first, then the customer.
#[derive(Clone, Debug)]
pub struct SipDialer {
    pub config: SipConfig,
    pub agent: Party,
    pub trunk: std::net::SocketAddr,
    pub domain: String,
}

impl SipDialer {
    async fn dial(&self, call: &ClaimedCall) -> Outcome {
        let Some(phone) = &call.phone else {
            return Outcome::Failed("no phone number".into());
        };
        let request = CallRequest {
            call_id: call.call_id.clone(),
            agent: self.agent.clone(),
            customer: Party {
                uri: format!("sip:{phone}@{}", self.domain),
                addr: self.trunk,
                display: call.user.to_string(),
            },
            reason: format!(
                "{} ({:.0}%): {}",
                call.topic,
                call.probability * 100.0,
                call.reasons
            ),
        };
        outcome_of(sip::dial(&self.config, &request).await)
    }
}

/// What a SIP disposition means for the call. Trouble on the agent's side or the trunk's
/// is retried; the customer's busy and no-answer too; a refusal is final.
pub fn outcome_of(d: Disposition) -> Outcome {
    match d {
        Disposition::Answered { .. } => Outcome::Answered,
        Disposition::Busy => Outcome::Busy,
        Disposition::NoAnswer => Outcome::NoAnswer,
        Disposition::Declined => Outcome::Declined,
        Disposition::NotFound => Outcome::NotFound,
        Disposition::ServerError(code) => Outcome::Unreachable(format!("trunk answered {code}")),
        Disposition::AgentUnavailable(why) => {
            Outcome::Unreachable(format!("agent unavailable: {why:?}"))
        }
        Disposition::Transport(e) => Outcome::Unreachable(e),
        Disposition::Rejected(code) => Outcome::Failed(format!("refused with {code}")),
        Disposition::AuthFailed => Outcome::Failed("trunk refused our credentials".into()),
        Disposition::Invalid(e) => Outcome::Failed(e),
    }
}

impl Dialer {
    /// The dialer a `[dialer]` table describes; parsing has already checked its fields.
    pub fn from_config(config: &DialerConfig) -> Self {
        match config {
            DialerConfig::Webhook { url, secret, .. } => {
                Dialer::Webhook(WebhookDialer::new(url.clone(), secret.clone()))
            }
            DialerConfig::Sip {
                trunk,
                domain,
                transport,
                username,
                password,
                agent_uri,
                agent_addr,
                no_answer_seconds,
                ..
            } => {
                let mut sip_config = SipConfig {
                    transport: match transport {
                        None | Some(SipTransport::Udp) => Transport::Udp,
                        Some(SipTransport::Tcp) => Transport::Tcp,
                    },
                    username: username.clone(),
                    password: password.clone(),
                    ..SipConfig::default()
                };
                if let Some(s) = no_answer_seconds {
                    sip_config.no_answer = std::time::Duration::from_secs(*s);
                }
                Dialer::Sip(SipDialer {
                    config: sip_config,
                    agent: Party {
                        uri: agent_uri.clone(),
                        addr: *agent_addr,
                        display: "Farsight outreach".into(),
                    },
                    trunk: *trunk,
                    domain: domain.clone().unwrap_or_else(|| trunk.ip().to_string()),
                })
            }
        }
    }

    pub async fn dial(&self, call: &ClaimedCall) -> Outcome {
        match self {
            Dialer::Webhook(w) => w.dial(call).await,
            Dialer::Sip(s) => s.dial(call).await,
        }
    }
}

/// Plans calls for the current predictions and stores them (hold-out twins included).
pub async fn plan(
    store: &Store,
    policy: &Policy,
    now: Millis,
) -> Result<PlanReport, OutreachError> {
    let predictions = match current_predictions(store, usize::MAX, None).await {
        Ok(p) => p,
        Err(OutreachError::NoModel) => return Ok(PlanReport::default()),
        Err(e) => return Err(e),
    };
    let predictions: Vec<_> = predictions
        .into_iter()
        .filter(|p| p.probability >= policy.min_probability)
        .collect();
    let profiles = store.user_profiles().await?;
    let users: Vec<&str> = predictions.iter().map(|p| p.user.as_str()).collect();
    let groups = store
        .holdout_groups(&users, |u| {
            in_holdout(u, &policy.holdout_salt, policy.holdout_fraction)
        })
        .await?;
    let history = store.call_history().await?;
    let (used, planned_today) = store.planned_load(now).await?;
    let state = PlanState {
        profiles,
        groups,
        history,
        used,
        planned_today,
    };
    let (rows, report) = plan_calls(policy, &predictions, state, now);
    store.insert_calls(&rows).await?;
    Ok(report)
}

/// Dials the calls now due, at most one batch.
pub async fn dial_due(
    store: &Store,
    policy: &Policy,
    dialer: &Dialer,
    node: &str,
    now: Millis,
) -> Result<DialReport, OutreachError> {
    let mut report = DialReport {
        interrupted: store
            .interrupt_stale_calls(Millis(now.0 - STALE_DIALING_MS))
            .await?,
        ..DialReport::default()
    };
    for call in store.claim_due_calls(now, DIAL_BATCH, node).await? {
        if let Some(next) = wait_for_window(policy, &call.tz, now) {
            store.reschedule(call.id, next).await?;
            report.rescheduled += 1;
            continue;
        }
        tracing::info!(call = call.id.0, call_id = %call.call_id, user = %call.user, topic = %call.topic, "dialling");
        let outcome = dialer.dial(&call).await;
        record_outcome(
            store,
            policy,
            call.id,
            &call.tz,
            call.attempts,
            &outcome,
            now,
        )
        .await?;
        if matches!(outcome, Outcome::Answered | Outcome::Placed) {
            record_call_event(store, &call).await?;
        }
        report.dialled += 1;
        *report
            .outcomes
            .entry(outcome.state().to_string())
            .or_default() += 1;
    }
    Ok(report)
}

/// Stores an attempt's outcome; retryable ones come back after the back-off, inside the
/// user's window, while attempts remain.
pub async fn record_outcome(
    store: &Store,
    policy: &Policy,
    id: CallId,
    tz: &str,
    attempts: i64,
    outcome: &Outcome,
    now: Millis,
) -> Result<(), OutreachError> {
    let retry_at = retry_at(policy, tz, attempts, outcome, now);
    store
        .finish_attempt(id, outcome.state(), &outcome.detail(), retry_at)
        .await?;
    Ok(())
}

/// A call that reached someone is an `outreach_call` event: the features see it.
async fn record_call_event(store: &Store, call: &ClaimedCall) -> Result<(), OutreachError> {
    let event = Event {
        id: format!("call-{}", call.call_id),
        user: call.user.to_string(),
        ts: jiff::Timestamp::now().as_millisecond(),
        kind: EventKind::OutreachCall,
        topic: call.topic.to_string(),
        attrs: Default::default(),
    };
    store.ingest_events(&[event]).await?;
    Ok(())
}

/// One planning pass and one dialling pass.
pub async fn run_once(
    store: &Store,
    policy: &Policy,
    dialer: &Dialer,
    node: &str,
    now: Millis,
) -> Result<(PlanReport, DialReport), OutreachError> {
    let planned = plan(store, policy, now).await?;
    let dialled = dial_due(store, policy, dialer, node, now).await?;
    Ok((planned, dialled))
}

/// `farsight serve`'s scheduler: plan and dial every `interval`, logging what it did. Due
/// calls are dialled even when planning fails (no active model yet, say).
pub async fn run_forever(
    store: Store,
    policy: Policy,
    dialer: Dialer,
    node: String,
    interval: std::time::Duration,
) {
    let mut tick = tokio::time::interval(interval);
    loop {
        tick.tick().await;
        let now = Millis::now();
        match plan(&store, &policy, now).await {
            Ok(p) => tracing::info!(
                planned = p.planned,
                holdout_twins = p.holdout_twins,
                "outreach planned"
            ),
            Err(e) => tracing::warn!(error = %e, "outreach planning skipped"),
        }
        match dial_due(&store, &policy, &dialer, &node, now).await {
            Ok(d) if d.dialled > 0 || d.interrupted > 0 => tracing::info!(
                dialled = d.dialled,
                interrupted = d.interrupted,
                "outreach dialled"
            ),
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "outreach dialling failed"),
        }
    }
}

/// A default node name for call records: the host name.
pub fn default_node() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "farsight".into())
}
