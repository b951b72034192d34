//! One live assist session: its publishing wearable, its watchers, the current group and
//! the fan-out of control messages between them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use farsight_protocol::control::Participant;
use farsight_protocol::{ControlMessage, ParticipantId, SessionId};
use tokio::sync::{mpsc, watch};

use super::group::Group;
use super::schedule::{BitrateGovernor, ThroughputMeter};

/// Control messages queued for one connection; a member that lets this fill is too slow to
/// keep and its messages are dropped (media has its own path).
pub const CONTROL_QUEUE: usize = 1024;

/// How one connection is reached from the hub.
#[derive(Clone, Debug)]
pub struct Member {
    pub participant: Participant,
    pub control: mpsc::Sender<ControlMessage>,
    pub conn: quinn::Connection,
}

#[derive(Debug)]
struct WatcherEntry {
    member: Member,
    groups: mpsc::UnboundedSender<Arc<Group>>,
    delivered: ThroughputMeter,
}

#[derive(Debug)]
struct HubState {
    publisher: Option<Member>,
    watchers: HashMap<ParticipantId, WatcherEntry>,
    current: Option<Arc<Group>>,
    governor: BitrateGovernor,
}

#[derive(Debug)]
pub struct SessionHub {
    pub id: SessionId,
    pub owner_token: i64,
    pub name: String,
    state: Mutex<HubState>,
    latest_group: watch::Sender<u64>,
}

/// Window over which a watcher's delivery rate is measured for bit-rate hints.
const DELIVERY_WINDOW: Duration = Duration::from_secs(2);

impl SessionHub {
    pub fn new(id: SessionId, owner_token: i64, name: String) -> Self {
        Self {
            id,
            owner_token,
            name,
            state: Mutex::new(HubState {
                publisher: None,
                watchers: HashMap::new(),
                current: None,
                governor: BitrateGovernor::new(Duration::from_secs(2)),
            }),
            latest_group: watch::channel(0).0,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, HubState> {
        self.state.lock().expect("session hub lock poisoned")
    }

    /// Makes `member` the publisher, returning the one it replaces (a wearable that
    /// reconnected before its old connection timed out).
    pub fn attach_publisher(&self, member: Member) -> Option<Member> {
        self.state().publisher.replace(member)
    }

    pub fn detach_publisher(&self, id: ParticipantId) {
        let mut s = self.state();
        if s.publisher.as_ref().is_some_and(|p| p.participant.id == id) {
            s.publisher = None;
        }
    }

    pub fn publisher_id(&self) -> Option<ParticipantId> {
        self.state().publisher.as_ref().map(|p| p.participant.id)
    }

    /// Adds a watcher; returns who is already there. The current group, from its key
    /// frame, is queued for the watcher at once so it sees a picture without waiting.
    /// `false` in the second place means there is no group yet and one should be requested.
    pub fn add_watcher(
        &self,
        member: Member,
        groups: mpsc::UnboundedSender<Arc<Group>>,
    ) -> (Vec<Participant>, bool) {
        let mut s = self.state();
        let present = s
            .publisher
            .iter()
            .chain(s.watchers.values().map(|w| &w.member))
            .map(|m| m.participant.clone())
            .collect();
        let has_picture = match &s.current {
            Some(group) => groups.send(group.clone()).is_ok(),
            None => false,
        };
        s.watchers.insert(
            member.participant.id,
            WatcherEntry {
                member,
                groups,
                delivered: ThroughputMeter::new(DELIVERY_WINDOW),
            },
        );
        (present, has_picture)
    }

    pub fn remove_watcher(&self, id: ParticipantId) -> bool {
        self.state().watchers.remove(&id).is_some()
    }

    pub fn watchers(&self) -> Vec<Participant> {
        self.state()
            .watchers
            .values()
            .map(|w| w.member.participant.clone())
            .collect()
    }

    /// A new group from the publisher goes to every watcher, and becomes the current one
    /// unless a newer group got here first (group streams are read concurrently).
    pub fn publish_group(&self, group: Arc<Group>) {
        let seq = group.header.group.0;
        let mut s = self.state();
        if s.current.as_ref().is_none_or(|c| c.header.group.0 <= seq) {
            s.current = Some(group.clone());
        }
        s.watchers
            .retain(|_, w| w.groups.send(group.clone()).is_ok());
        drop(s);
        self.latest_group.send_if_modified(|latest| {
            let newer = seq > *latest;
            *latest = (*latest).max(seq);
            newer
        });
    }

    /// Watches the sequence of the newest group (watcher writers drop older ones).
    pub fn latest_group(&self) -> watch::Receiver<u64> {
        self.latest_group.subscribe()
    }

    /// Sends to everyone in the session but `except`.
    pub fn broadcast(&self, msg: &ControlMessage, except: Option<ParticipantId>) {
        let s = self.state();
        let members = s
            .publisher
            .iter()
            .chain(s.watchers.values().map(|w| &w.member));
        for m in members.filter(|m| Some(m.participant.id) != except) {
            if m.control.try_send(msg.clone()).is_err() {
                tracing::warn!(session = %self.id, participant = %m.participant.id, "control queue full, message dropped");
            }
        }
    }

    /// Sends to the publishing wearable; false when none is connected.
    pub fn to_publisher(&self, msg: ControlMessage) -> bool {
        match &self.state().publisher {
            Some(p) => p.control.try_send(msg).is_ok(),
            None => false,
        }
    }

    /// Records bytes a watcher took, for its delivery rate.
    pub fn delivered(&self, watcher: ParticipantId, now: Instant, bytes: usize) {
        if let Some(w) = self.state().watchers.get_mut(&watcher) {
            w.delivered.record(now, bytes);
        }
    }

    /// A watcher dropped a group: maybe ask the wearable for a lower bit rate.
    pub fn on_group_dropped(&self, now: Instant) {
        let mut s = self.state();
        let slowest = s
            .watchers
            .values_mut()
            .map(|w| w.delivered.bits_per_second(now))
            .min()
            .unwrap_or(0);
        if let Some(bits_per_second) = s.governor.on_drop(now, slowest)
            && let Some(p) = &s.publisher
        {
            let _ = p.control.try_send(ControlMessage::BitrateHint {
                session: self.id,
                bits_per_second,
            });
        }
    }

    /// Passes a pose datagram on to every watcher; datagrams are unreliable by design.
    pub fn forward_datagram(&self, datagram: bytes::Bytes) {
        for w in self.state().watchers.values() {
            let _ = w.member.conn.send_datagram(datagram.clone());
        }
    }

    pub fn is_idle(&self) -> bool {
        let s = self.state();
        s.publisher.is_none() && s.watchers.is_empty()
    }
}

/// Every live session on this node.
#[derive(Debug, Default)]
pub struct Relay {
    sessions: Mutex<HashMap<SessionId, Arc<SessionHub>>>,
}

impl Relay {
    pub fn get(&self, id: SessionId) -> Option<Arc<SessionHub>> {
        self.sessions.lock().expect("relay lock").get(&id).cloned()
    }

    /// The live hub for a session, created on first use.
    pub fn hub(&self, id: SessionId, owner_token: i64, name: &str) -> Arc<SessionHub> {
        self.sessions
            .lock()
            .expect("relay lock")
            .entry(id)
            .or_insert_with(|| Arc::new(SessionHub::new(id, owner_token, name.to_string())))
            .clone()
    }

    /// Forgets a hub nobody is connected to; its state lives on in the store.
    pub fn release_if_idle(&self, id: SessionId) {
        let mut sessions = self.sessions.lock().expect("relay lock");
        if sessions.get(&id).is_some_and(|h| h.is_idle()) {
            sessions.remove(&id);
        }
    }

    pub fn live(&self) -> Vec<Arc<SessionHub>> {
        self.sessions
            .lock()
            .expect("relay lock")
            .values()
            .cloned()
            .collect()
    }
}
