//! The relay core ([`farsight_relay`]) on this node, and what executes its outputs: every
//! connection's outbox, the store, and the timer. Transports feed it inputs and drain their
//! outbox; they decide nothing.

pub mod control;
mod persist;
pub mod serve;
pub mod writer;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use farsight_protocol::{ControlMessage, ErrorCode, Role, SessionId, StreamHeader};
use farsight_relay::{
    Config, Input, MediaOp, MemberId, Output, SessionView, Stats, Token, TokenId, TokenRefused,
};
use tokio::sync::{Notify, mpsc, oneshot};

use crate::limits::AddressLimits;
use crate::metrics::Metrics;
use crate::sso::check_secret;
use crate::sso::ticket::Tickets;
use farsight_store::{Actor, AuditAction, Store, StoreError, TokenCheck, new_id};

/// How long a write may wait on a peer that takes none of it before the connection is
/// closed as too slow: what queues behind a stuck peer stays bounded.
pub const WRITE_STALL: std::time::Duration = std::time::Duration::from_secs(10);

/// What a connection's writer is asked to do, in order.
#[derive(Debug)]
pub enum Outbound {
    Control(ControlMessage),
    Media(MediaOp),
    Datagram(Bytes),
    /// Close the connection with this code once what came before is written.
    Close {
        code: ErrorCode,
        reason: String,
    },
    /// The peer said goodbye (it finished its control stream): close normally (code 0)
    /// once what came before is written.
    Goodbye,
    /// A group's stream to open (stream transports): its steps come straight from the
    /// relay, not through the outbox, so an object takes one hop to its stream.
    OpenGroup {
        group: StreamHeader,
        priority: i32,
        steps: mpsc::UnboundedReceiver<GroupStep>,
        reset: oneshot::Receiver<()>,
    },
}

/// What a group's stream task is told to do next.
#[derive(Debug)]
pub enum GroupStep {
    Write(Bytes),
    /// The group is complete: finish the stream.
    Finish,
}

/// The relay's handle on one group stream of a member whose transport opens streams.
#[derive(Debug)]
struct GroupTask {
    steps: mpsc::UnboundedSender<GroupStep>,
    reset: oneshot::Sender<()>,
}

/// What the input's sender must do itself: stop reading one of its streams.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StopStream {
    pub stream: u64,
    pub code: ErrorCode,
}

#[derive(Debug)]
struct Inner {
    core: farsight_relay::Relay,
    outboxes: HashMap<MemberId, mpsc::UnboundedSender<Outbound>>,
    /// Members whose transport carries each group on a stream of its own.
    stream_members: HashSet<MemberId>,
    groups: HashMap<(MemberId, StreamHeader), GroupTask>,
    /// When the timer task is set to wake.
    timer_at: Option<Instant>,
}

#[derive(Debug)]
pub struct Relay {
    inner: Mutex<Inner>,
    timer: Notify,
    closed: AtomicBool,
    store: Store,
    metrics: Arc<Metrics>,
    limits: Arc<AddressLimits>,
    tickets: Arc<Tickets>,
}

/// One connection's place in the relay. Dropping it tells the relay the connection is
/// gone.
#[derive(Debug)]
pub struct Membership(MemberHandle);

impl std::ops::Deref for Membership {
    type Target = MemberHandle;
    fn deref(&self) -> &MemberHandle {
        &self.0
    }
}

/// What a connection's tasks use to report to the relay.
#[derive(Clone, Debug)]
pub struct MemberHandle {
    pub member: MemberId,
    relay: Arc<Relay>,
    /// Where the connection comes from, for the per-address limits.
    peer: Peer,
}

/// A connection's address and transport (`quic`, `webtransport`, `websocket`).
#[derive(Clone, Copy, Debug)]
pub struct Peer {
    pub ip: std::net::IpAddr,
    pub transport: &'static str,
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.relay.step(Input::Closed {
            member: self.member,
        });
        let mut inner = self.relay.lock();
        inner.outboxes.remove(&self.member);
        inner.stream_members.remove(&self.member);
        inner.groups.retain(|(m, _), _| *m != self.member);
        drop(inner);
        self.relay.metrics.connected.dec();
    }
}

impl MemberHandle {
    /// Feeds the member's own input and carries out what the store must do, in order.
    /// An error from the store ends the connection (`Internal`).
    pub async fn feed(&self, input: Input) -> Vec<StopStream> {
        match self.relay.feed(input).await {
            Ok(stops) => stops,
            Err(e) => {
                tracing::error!(member = %self.member, error = %e, "storage failed");
                self.relay.step(Input::TransportError {
                    member: self.member,
                    code: ErrorCode::Internal,
                    message: "storage unavailable".into(),
                });
                Vec::new()
            }
        }
    }

    /// A `Hello`: the token is looked up in the store before the core decides, unless the
    /// address has failed too many sign-ins of late.
    pub async fn hello(&self, msg: ControlMessage) {
        let ControlMessage::Hello {
            version,
            role,
            token,
            resume,
        } = msg
        else {
            return self.control(msg).await;
        };
        let now = Instant::now();
        let limits = &self.relay.limits;
        if let Err(wait) = limits.may_sign_in(self.peer.ip, now) {
            let limit = "failed_sign_ins";
            self.relay
                .metrics
                .address_limited(self.peer.transport, limit);
            let secs = wait.as_secs().max(1);
            let message = format!("too many failed sign-ins from this address: wait {secs} s");
            return self.fail(ErrorCode::Unauthorized, message);
        }
        let check = check_secret(&self.relay.store, &self.relay.tickets, &token).await;
        if matches!(&check, Ok(c) if c.refusal().is_some()) {
            limits.failed(self.peer.ip, now);
        }
        if let Ok(check) = &check
            && let Err(e) = self.audit_sign_in(check, role).await
        {
            tracing::error!(error = %e, "storage failed");
            return self.fail(ErrorCode::Internal, "storage unavailable");
        }
        let token = match check {
            Ok(TokenCheck::Valid(t)) => Ok(Token {
                id: TokenId(t.id),
                role: t.role.protocol_role(),
                name: t.name,
                session: t.session.map(|s| SessionId(s as u64)),
            }),
            Ok(TokenCheck::Unknown) => Err(TokenRefused::Unknown),
            Ok(TokenCheck::Revoked) => Err(TokenRefused::Revoked),
            Ok(TokenCheck::Expired) => Err(TokenRefused::Expired),
            Err(e) => {
                tracing::error!(error = %e, "storage failed");
                return self.fail(ErrorCode::Internal, "storage unavailable");
            }
        };
        self.feed(Input::Hello {
            member: self.member,
            version,
            role,
            resume,
            token,
        })
        .await;
    }

    /// Records a sign-in, or its refusal with the reason, with where it came from.
    async fn audit_sign_in(&self, check: &TokenCheck, role: Role) -> Result<(), StoreError> {
        let Peer { ip, transport } = self.peer;
        let (actor, action, detail) = match check {
            TokenCheck::Valid(t) => (
                Actor {
                    token: Some(t.id),
                    name: t.name.clone(),
                },
                AuditAction::SignIn,
                format!("as {} over {transport} from {ip}", role.as_str()),
            ),
            refused => (
                Actor {
                    token: None,
                    name: ip.to_string(),
                },
                AuditAction::SignInRefused,
                format!(
                    "{} (as {} over {transport})",
                    refused.refusal().unwrap_or_default(),
                    role.as_str()
                ),
            ),
        };
        self.relay.store.audit(&actor, action, None, &detail).await
    }

    pub async fn control(&self, msg: ControlMessage) {
        self.feed(Input::Control {
            member: self.member,
            msg,
        })
        .await;
    }

    /// The peer finished its control stream: what is queued for it is still written, then
    /// the connection closes normally.
    pub fn goodbye(&self) {
        if let Some(outbox) = self.relay.lock().outboxes.get(&self.member) {
            let _ = outbox.send(Outbound::Goodbye);
        }
    }

    /// The peer took nothing for [`WRITE_STALL`]: it is closed as too slow, and counted.
    pub fn stalled(&self) {
        let secs = WRITE_STALL.as_secs();
        self.fail(
            ErrorCode::TooSlow,
            format!("took nothing sent to it for {secs} s"),
        );
    }

    /// The control stream did not decode, or the transport broke a rule: fatal.
    pub fn fail(&self, code: ErrorCode, message: impl Into<String>) {
        self.relay.step(Input::TransportError {
            member: self.member,
            code,
            message: message.into(),
        });
    }

    /// Feeds an input that needs nothing from the store (acknowledgements, datagrams).
    pub fn step(&self, input: Input) {
        self.relay.step(input);
    }
}

impl Relay {
    pub fn new(
        config: Config,
        store: Store,
        metrics: Arc<Metrics>,
        limits: Arc<AddressLimits>,
        tickets: Arc<Tickets>,
    ) -> Arc<Self> {
        let relay = Arc::new(Self {
            inner: Mutex::new(Inner {
                core: farsight_relay::Relay::new(config),
                outboxes: HashMap::new(),
                stream_members: HashSet::new(),
                groups: HashMap::new(),
                timer_at: None,
            }),
            timer: Notify::new(),
            closed: AtomicBool::new(false),
            store,
            metrics,
            limits,
            tickets,
        });
        tokio::spawn(run_timer(relay.clone()));
        relay
    }

    /// Stops the timer (connections are closed by their transports).
    pub fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        self.timer.notify_one();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("relay lock poisoned")
    }

    /// A new connection (`browser`: over WebTransport or WebSocket; `streams`: its
    /// transport opens a stream per group): its membership and the outbox its writer
    /// drains.
    pub fn connect(
        self: &Arc<Self>,
        peer: Peer,
        browser: bool,
        streams: bool,
    ) -> (Membership, mpsc::UnboundedReceiver<Outbound>) {
        let member = farsight_protocol::ParticipantId(new_id() as u64);
        let (tx, rx) = mpsc::unbounded_channel();
        let mut inner = self.lock();
        inner.outboxes.insert(member, tx);
        if streams {
            inner.stream_members.insert(member);
        }
        drop(inner);
        self.metrics.connected.inc();
        self.step(Input::Connected { member, browser });
        let membership = Membership(MemberHandle {
            member,
            relay: self.clone(),
            peer,
        });
        (membership, rx)
    }

    /// Who is in a live session on this node.
    pub fn session(&self, id: SessionId) -> Option<SessionView> {
        self.lock().core.session(id)
    }

    /// The core's counters now.
    pub fn stats(&self) -> Stats {
        self.lock().core.stats().clone()
    }

    /// Brings the Prometheus counters up to the core's.
    pub fn sync_metrics(&self) {
        self.metrics.sync_relay(&self.stats());
    }

    /// Hands an input to the core and routes its outputs: messages to outboxes at once,
    /// work for the store returned in order (with what was routed after it held back, so
    /// that nothing is forwarded before it is stored).
    fn handle(&self, input: Option<Input>) -> Vec<Output> {
        let mut inner = self.lock();
        let now = Instant::now();
        match input {
            Some(input) => inner.core.handle(now, input),
            None => inner.core.handle_timeout(now),
        }
        let mut held = Vec::new();
        while let Some(output) = inner.core.poll_output() {
            let store_work = matches!(
                output,
                Output::Persist(_) | Output::Load { .. } | Output::StopStream { .. }
            );
            if store_work || !held.is_empty() {
                held.push(output);
            } else {
                inner.route(output);
            }
        }
        let next = inner.core.poll_timeout();
        if next.is_some_and(|at| inner.timer_at.is_none_or(|t| at < t)) {
            inner.timer_at = next;
            self.timer.notify_one();
        }
        held
    }

    /// Feeds an input whose outputs need no store (the store work, if any, is done
    /// without waiting for it).
    fn step(self: &Arc<Self>, input: Input) {
        let held = self.handle(Some(input));
        if !held.is_empty() {
            let relay = self.clone();
            tokio::spawn(async move {
                if let Err(e) = relay.execute(held).await {
                    tracing::error!(error = %e, "storage failed");
                }
            });
        }
    }

    async fn feed(&self, input: Input) -> Result<Vec<StopStream>, StoreError> {
        let held = self.handle(Some(input));
        self.execute(held).await
    }

    /// Carries out held outputs in order: store writes and loads awaited, the rest routed.
    async fn execute(&self, held: Vec<Output>) -> Result<Vec<StopStream>, StoreError> {
        let mut stops = Vec::new();
        let mut queue = std::collections::VecDeque::from(held);
        while let Some(output) = queue.pop_front() {
            match output {
                Output::Persist(p) => persist::apply(&self.store, p).await?,
                Output::Load { member, load } => {
                    let session = persist::load(&self.store, load).await?;
                    queue.extend(self.handle(Some(Input::Loaded { member, session })));
                }
                Output::StopStream { stream, code, .. } => stops.push(StopStream { stream, code }),
                other => self.lock().route(other),
            }
        }
        Ok(stops)
    }
}

impl Inner {
    fn route(&mut self, output: Output) {
        let (member, outbound) = match output {
            Output::Control { member, msg } => (member, Outbound::Control(msg)),
            Output::Media { member, op } if self.stream_members.contains(&member) => {
                let Some(open) = self.route_to_group(member, op) else {
                    return;
                };
                (member, open)
            }
            Output::Media { member, op } => (member, Outbound::Media(op)),
            Output::Datagram { member, datagram } => (member, Outbound::Datagram(datagram)),
            Output::Close {
                member,
                code,
                reason,
            } => (member, Outbound::Close { code, reason }),
            Output::Persist(_) | Output::Load { .. } | Output::StopStream { .. } => {
                unreachable!("store work is executed, not routed")
            }
        };
        if let Some(outbox) = self.outboxes.get(&member) {
            // A closed outbox is a connection already gone: nothing left to tell it.
            let _ = outbox.send(outbound);
        }
    }
}

impl Inner {
    /// A media step for a stream transport: straight to the group's task; an opening is
    /// returned for the writer, which starts the task.
    fn route_to_group(&mut self, member: MemberId, op: MediaOp) -> Option<Outbound> {
        // A closed step channel is a task that is done: the relay may still reset a
        // finished group, so handles stay until then.
        let send = |task: &GroupTask, step| {
            let _ = task.steps.send(step);
        };
        match op {
            MediaOp::Open { group, priority } => {
                self.groups.retain(|_, task| !task.steps.is_closed());
                let (steps_tx, steps) = mpsc::unbounded_channel();
                let (reset_tx, reset) = oneshot::channel();
                let task = GroupTask {
                    steps: steps_tx,
                    reset: reset_tx,
                };
                self.groups.insert((member, group), task);
                return Some(Outbound::OpenGroup {
                    group,
                    priority,
                    steps,
                    reset,
                });
            }
            MediaOp::Write { group, object } => {
                if let Some(task) = self.groups.get(&(member, group)) {
                    send(task, GroupStep::Write(object));
                }
            }
            MediaOp::Finish { group } => {
                if let Some(task) = self.groups.get(&(member, group)) {
                    send(task, GroupStep::Finish);
                }
            }
            MediaOp::Reset { group } => {
                if let Some(task) = self.groups.remove(&(member, group)) {
                    let _ = task.reset.send(());
                }
            }
        }
        None
    }
}

/// Wakes the core at its deadlines (handshake limits, groups fallen behind) until the
/// relay is closed.
async fn run_timer(relay: Arc<Relay>) {
    while !relay.closed.load(Ordering::Relaxed) {
        let at = relay.lock().core.poll_timeout();
        let notified = relay.timer.notified();
        match at {
            Some(at) => {
                tokio::select! {
                    () = tokio::time::sleep_until(at.into()) => {}
                    () = notified => continue,
                }
            }
            None => {
                notified.await;
                continue;
            }
        }
        relay.lock().timer_at = None;
        let held = relay.handle(None);
        if let Err(e) = relay.execute(held).await {
            tracing::error!(error = %e, "storage failed");
        }
    }
}
