//! The [`Relay`] value: every member and live session of this node, the inputs that change
//! them and the outputs they produce.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use farsight_protocol::control::Participant;
use farsight_protocol::{
    ControlMessage, DecodeError, ErrorCode, MediaEvent, PROTOCOL_VERSION, PoseDatagram, Role,
    SessionId,
};

use crate::authorize::{MessageKind, Scope, authorize};
use crate::member::{Ingest, Member, Standing, State};
use crate::session::{Ctx, Deadline, Session};
use crate::{Input, Load, MemberId, Output, Persist, StoredSession, Token, TokenId, TokenRefused};

#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// How late a watcher's object may be before its group is dropped (when a newer one
    /// exists).
    pub latency_budget: Duration,
    /// From connecting to `Hello`, the one handshake limit.
    pub hello_timeout: Duration,
    /// Control messages a member may leave unread before it is removed as too slow.
    pub control_backlog: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            latency_budget: Duration::from_millis(500),
            hello_timeout: Duration::from_secs(10),
            control_backlog: 1024,
        }
    }
}

/// Counters for the metrics endpoint; they only grow.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Accepted handshakes by role.
    pub connections: BTreeMap<&'static str, u64>,
    /// Typed errors sent, by code.
    pub errors: BTreeMap<u16, u64>,
    pub objects_received: u64,
    pub bytes_received: u64,
    pub objects_forwarded: u64,
    pub bytes_forwarded: u64,
    pub groups_dropped: u64,
    pub annotations: u64,
    /// Members removed because they left too many control messages unread.
    pub members_too_slow: u64,
}

/// Who is in a live session now.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionView {
    pub id: SessionId,
    pub publisher: Option<Participant>,
    pub watchers: Vec<Participant>,
}

#[derive(Debug, Default)]
pub struct Relay {
    config: Config,
    members: HashMap<MemberId, Member>,
    sessions: HashMap<SessionId, Session>,
    out: VecDeque<Output>,
    hello_deadlines: BinaryHeap<Reverse<(Instant, MemberId)>>,
    deadlines: BinaryHeap<Reverse<Deadline>>,
    stats: Stats,
    /// The time of the latest input.
    now: Option<Instant>,
}

impl Relay {
    pub fn new(config: Config) -> Self {
        Self {
            config,
            ..Self::default()
        }
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Who is in a live session on this node; `None` when nobody is.
    pub fn session(&self, id: SessionId) -> Option<SessionView> {
        self.sessions.get(&id).map(|s| SessionView {
            id,
            publisher: s.publisher.clone(),
            watchers: s.watchers.values().map(|w| w.participant.clone()).collect(),
        })
    }

    /// When [`Relay::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let hello = self.hello_deadlines.peek().map(|Reverse((at, _))| *at);
        let late = self.deadlines.peek().map(|Reverse(d)| d.at);
        hello.into_iter().chain(late).min()
    }

    /// The next thing to do. A control message that would take a member past its backlog
    /// is not sent: the member is removed as too slow instead, and counted.
    pub fn poll_output(&mut self) -> Option<Output> {
        let output = self.out.pop_front()?;
        let Output::Control { member, .. } = &output else {
            return Some(output);
        };
        let member = *member;
        let Some(m) = self.members.get_mut(&member) else {
            return Some(output);
        };
        if matches!(m.state, State::Closing) {
            return Some(output);
        }
        m.backlog += 1;
        if m.backlog <= self.config.control_backlog {
            return Some(output);
        }
        self.stats.members_too_slow += 1;
        let reason = format!(
            "{} control messages unread: too slow to stay",
            self.config.control_backlog
        );
        let now = self
            .now
            .expect("an output follows an input, which set the time");
        self.remove(now, member);
        Some(Output::Close {
            member,
            code: ErrorCode::TooSlow,
            reason,
        })
    }
}

/// The handshake's checks, in the documented order: version, token, role, and a watcher's
/// `resume` of 0. Gives the token back when the `Hello` is accepted.
fn check_hello(
    version: u16,
    role: Role,
    resume: SessionId,
    token: Result<Token, TokenRefused>,
    browser: bool,
) -> Result<Token, (ErrorCode, String)> {
    if version != PROTOCOL_VERSION {
        return Err((
            ErrorCode::UnsupportedVersion,
            format!("server speaks version {PROTOCOL_VERSION}, client sent {version}"),
        ));
    }
    let token = token.map_err(|why| (ErrorCode::Unauthorized, why.message().to_string()))?;
    if token.role != Some(role) {
        let message = format!("the token was not issued for role {}", role.as_str());
        return Err((ErrorCode::WrongRole, message));
    }
    if browser && !role.watches() {
        let message = "the console is for agents and supervisors; wearables connect over QUIC";
        return Err((ErrorCode::WrongRole, message.into()));
    }
    if role.watches() && resume != SessionId(0) {
        let message = format!("a watcher's Hello.resume must be 0, not {resume}");
        return Err((ErrorCode::Malformed, message));
    }
    if let Some(only) = token.session
        && !role.watches()
        && resume != only
    {
        return Err((ErrorCode::Unauthorized, out_of_scope(only)));
    }
    Ok(token)
}

/// The words of a refusal for a session outside the token's.
fn out_of_scope(only: SessionId) -> String {
    format!("the token is limited to session {only}")
}

/// The words of a refusal from [`authorize`]. `own`: the session a wearable publishes.
fn refusal(code: ErrorCode, role: Role, own: Option<SessionId>, msg: &ControlMessage) -> String {
    let kind = MessageKind::of(msg);
    let named = msg.session().unwrap_or_default();
    match (code, own) {
        (ErrorCode::NotJoined, Some(own)) => {
            format!("this connection publishes session {own}, not {named}")
        }
        (ErrorCode::NotJoined, None) => format!("not joined to session {named}"),
        (ErrorCode::WrongRole, _) => format!("a {} cannot send {kind:?}", role.as_str()),
        _ if kind == MessageKind::Hello => "Hello was already sent".to_string(),
        _ => format!("unexpected message type {:#06x}", msg.type_code()),
    }
}

/// The parts of the relay a session's handling writes to.
macro_rules! ctx {
    ($self:ident, $now:expr) => {
        Ctx {
            now: $now,
            budget: $self.config.latency_budget,
            out: &mut $self.out,
            stats: &mut $self.stats,
            deadlines: &mut $self.deadlines,
        }
    };
}

impl Relay {
    pub fn handle(&mut self, now: Instant, input: Input) {
        self.now = Some(now);
        match input {
            Input::Connected { member, browser } => {
                let deadline = now + self.config.hello_timeout;
                self.members.insert(member, Member::greeting(browser));
                self.hello_deadlines.push(Reverse((deadline, member)));
            }
            Input::Hello {
                member,
                version,
                role,
                resume,
                token,
            } => self.on_hello(now, member, version, role, resume, token),
            Input::Loaded { member, session } => self.on_loaded(now, member, session),
            Input::Control { member, msg } => self.on_control(now, member, msg),
            Input::StreamData {
                member,
                stream,
                data,
            } => self.on_stream_data(now, member, stream, &data),
            Input::StreamEnd { member, stream } => self.on_stream_end(now, member, stream),
            Input::Datagram { member, datagram } => self.on_datagram(member, datagram),
            Input::ControlWritten { member, count } => {
                if let Some(m) = self.members.get_mut(&member) {
                    m.backlog = m.backlog.saturating_sub(count);
                }
            }
            Input::ObjectWritten {
                member,
                group,
                bytes,
            } => {
                self.stats.objects_forwarded += 1;
                self.stats.bytes_forwarded += bytes as u64;
                if let Some(session) = self.sessions.get_mut(&group.session) {
                    session.written(now, member, group, bytes);
                }
            }
            Input::TransportError {
                member,
                code,
                message,
            } => {
                if self
                    .members
                    .get(&member)
                    .is_some_and(|m| !matches!(m.state, State::Closing))
                {
                    if code == ErrorCode::TooSlow {
                        self.stats.members_too_slow += 1;
                    }
                    self.fatal(now, member, code, message);
                }
            }
            Input::Closed { member } => {
                self.remove(now, member);
                self.members.remove(&member);
            }
        }
    }

    /// Acts on every deadline that has passed: handshakes not completed, groups fallen
    /// behind.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = Some(now);
        while let Some(Reverse((at, member))) = self.hello_deadlines.peek().copied() {
            if at > now {
                break;
            }
            self.hello_deadlines.pop();
            if self
                .members
                .get(&member)
                .is_some_and(|m| matches!(m.state, State::Greeting))
            {
                let secs = self.config.hello_timeout.as_secs();
                let message = format!("no Hello within {secs} s of connecting");
                self.fatal(now, member, ErrorCode::UnexpectedMessage, message);
            }
        }
        while let Some(Reverse(d)) = self.deadlines.peek().copied() {
            if d.at > now {
                break;
            }
            self.deadlines.pop();
            if let Some(session) = self.sessions.get_mut(&d.group.session) {
                session.check_late(&mut ctx!(self, now), d.member, d.group);
            }
        }
    }

    /// A typed error the member survives; the message it answers has no effect.
    fn refuse(&mut self, member: MemberId, code: ErrorCode, message: String) {
        *self.stats.errors.entry(code as u16).or_default() += 1;
        self.out.push_back(Output::Control {
            member,
            msg: ControlMessage::Error { code, message },
        });
    }

    /// An error that ends the connection: sent, then the connection closed with its code.
    fn fatal(&mut self, now: Instant, member: MemberId, code: ErrorCode, message: String) {
        self.refuse(member, code, message.clone());
        self.out.push_back(Output::Close {
            member,
            code,
            reason: message,
        });
        self.remove(now, member);
    }

    fn on_hello(
        &mut self,
        now: Instant,
        member: MemberId,
        version: u16,
        role: Role,
        resume: SessionId,
        token: Result<Token, TokenRefused>,
    ) {
        let browser = match self.members.get(&member) {
            Some(m) if matches!(m.state, State::Greeting) => m.browser,
            Some(Member {
                state: State::Ready { .. },
                ..
            }) => {
                let message = "Hello was already sent".to_string();
                return self.refuse(member, ErrorCode::UnexpectedMessage, message);
            }
            Some(_) | None => return,
        };
        let token = match check_hello(version, role, resume, token, browser) {
            Ok(token) => token,
            Err((code, message)) => return self.fatal(now, member, code, message),
        };
        *self.stats.connections.entry(role.as_str()).or_default() += 1;
        let participant = Participant {
            id: member,
            role,
            name: token.name.clone(),
        };
        let standing = if role.watches() {
            self.out.push_back(Output::Control {
                member,
                msg: ControlMessage::Welcome {
                    participant: member,
                    session: SessionId(0),
                    name: token.name.clone(),
                },
            });
            Standing::Watching {
                joined: BTreeSet::new(),
                joining: None,
                limited_to: token.session,
            }
        } else {
            let load = if resume == SessionId(0) {
                Load::NewSession {
                    owner: token.id,
                    name: token.name.clone(),
                }
            } else {
                Load::Session(resume)
            };
            self.out.push_back(Output::Load { member, load });
            Standing::Loading { resume }
        };
        if let Some(m) = self.members.get_mut(&member) {
            m.state = State::Ready {
                participant,
                token: token.id,
                standing,
            };
        }
    }

    fn on_loaded(&mut self, now: Instant, member: MemberId, stored: Option<StoredSession>) {
        let Some(Member {
            state:
                State::Ready {
                    participant,
                    token,
                    standing,
                },
            ..
        }) = self.members.get_mut(&member)
        else {
            return;
        };
        let (participant, token) = (participant.clone(), *token);
        match standing {
            Standing::Loading { resume } => {
                let resume = *resume;
                match stored {
                    None => {
                        let message = format!("session {resume} does not exist");
                        self.fatal(now, member, ErrorCode::NoSuchSession, message);
                    }
                    Some(s) if s.ended => {
                        let message = format!("session {} has ended", s.id);
                        self.fatal(now, member, ErrorCode::NoSuchSession, message);
                    }
                    Some(s) if s.owner != token => {
                        let message = format!("session {} belongs to another wearable", s.id);
                        self.fatal(now, member, ErrorCode::NotJoined, message);
                    }
                    Some(s) => self.publish(now, participant, token, s),
                }
            }
            Standing::Watching { joining, .. } => {
                let Some(id) = joining.take() else { return };
                match stored {
                    Some(s) if !s.ended => {
                        self.sessions.entry(id).or_insert_with(|| Session::new(s));
                        self.join_live(now, participant, token, id);
                    }
                    _ => {
                        let message = format!("no open session {id}");
                        self.refuse(member, ErrorCode::NoSuchSession, message);
                    }
                }
            }
            Standing::Publishing(_) => {}
        }
    }

    /// A wearable's session is loaded: it becomes the publisher, replacing an older
    /// connection of the same wearable.
    fn publish(&mut self, now: Instant, me: Participant, token: TokenId, stored: StoredSession) {
        let id = stored.id;
        let old = self
            .sessions
            .get(&id)
            .and_then(|s| s.publisher.as_ref())
            .map(|p| p.id);
        if let Some(old) = old {
            self.out.push_back(Output::Close {
                member: old,
                code: ErrorCode::SessionBusy,
                reason: "replaced by a newer connection of the same wearable".into(),
            });
            self.remove(now, old);
        }
        if let Some(m) = self.members.get_mut(&me.id)
            && let State::Ready { standing, .. } = &mut m.state
        {
            *standing = Standing::Publishing(id);
        }
        self.out.push_back(Output::Persist(Persist::Joined {
            session: id,
            participant: me.clone(),
            token,
        }));
        let session = self
            .sessions
            .entry(id)
            .or_insert_with(|| Session::new(stored));
        session.publisher = Some(me.clone());
        let ctx = &mut ctx!(self, now);
        ctx.send(
            me.id,
            ControlMessage::Welcome {
                participant: me.id,
                session: id,
                name: session.name.clone(),
            },
        );
        for watcher in session.watchers.values() {
            let present = ControlMessage::Presence {
                session: id,
                participant: watcher.participant.clone(),
                present: true,
            };
            ctx.send(me.id, present);
        }
        session.replay_marks(ctx, me.id);
        session.presence(ctx, &me, true);
    }

    /// `Join`: at once for a session live here, after loading it otherwise. Joining a
    /// session again answers `Joined` and replays the marks again, and changes nothing.
    fn join(&mut self, member: MemberId, id: SessionId) {
        let Some(Member {
            state:
                State::Ready {
                    participant,
                    token,
                    standing:
                        Standing::Watching {
                            joined,
                            joining,
                            limited_to,
                        },
                },
            ..
        }) = self.members.get_mut(&member)
        else {
            return;
        };
        let now = self.now.expect("set by handle");
        if let Some(only) = *limited_to
            && id != only
        {
            return self.refuse(member, ErrorCode::Unauthorized, out_of_scope(only));
        }
        if joined.contains(&id) {
            if let Some(session) = self.sessions.get(&id) {
                let ctx = &mut ctx!(self, now);
                let participants = session
                    .participants()
                    .filter(|p| p.id != member)
                    .cloned()
                    .collect();
                ctx.send(
                    member,
                    ControlMessage::Joined {
                        session: id,
                        participants,
                    },
                );
                session.replay_marks(ctx, member);
            }
        } else if self.sessions.get(&id).is_some_and(|s| s.ended) {
            self.refuse(
                member,
                ErrorCode::NoSuchSession,
                format!("session {id} has ended"),
            );
        } else if self.sessions.contains_key(&id) {
            let (participant, token) = (participant.clone(), *token);
            self.join_live(now, participant, token, id);
        } else {
            *joining = Some(id);
            self.out.push_back(Output::Load {
                member,
                load: Load::Session(id),
            });
        }
    }

    fn join_live(&mut self, now: Instant, me: Participant, token: TokenId, id: SessionId) {
        if let Some(m) = self.members.get_mut(&me.id)
            && let State::Ready {
                standing: Standing::Watching { joined, .. },
                ..
            } = &mut m.state
        {
            joined.insert(id);
        }
        self.out.push_back(Output::Persist(Persist::Joined {
            session: id,
            participant: me.clone(),
            token,
        }));
        let Some(session) = self.sessions.get_mut(&id) else {
            return;
        };
        let ctx = &mut ctx!(self, now);
        let participants = session.participants().cloned().collect();
        ctx.send(
            me.id,
            ControlMessage::Joined {
                session: id,
                participants,
            },
        );
        session.replay_marks(ctx, me.id);
        session.presence(ctx, &me, true);
        if !session.add_watcher(ctx, me) {
            session.to_publisher(ctx, ControlMessage::KeyframeRequest { session: id });
        }
    }

    /// A watcher leaves one session; the session is forgotten here once nobody is in it
    /// (it lives on in the store).
    fn leave(&mut self, now: Instant, member: MemberId, id: SessionId) {
        if let Some(m) = self.members.get_mut(&member)
            && let State::Ready {
                standing: Standing::Watching { joined, .. },
                ..
            } = &mut m.state
        {
            joined.remove(&id);
        }
        let Some(session) = self.sessions.get_mut(&id) else {
            return;
        };
        if let Some(watch) = session.watchers.remove(&member) {
            session.presence(&mut ctx!(self, now), &watch.participant, false);
            self.out.push_back(Output::Persist(Persist::Left {
                session: id,
                participant: member,
            }));
        }
        self.release_if_idle(id);
    }

    /// Ends a session for everyone: stored as ended first, then told to everyone else in it.
    /// Its watchers are out of it at once, without a `Presence` each; its wearable, told,
    /// closes, and cannot resume it.
    fn end(&mut self, now: Instant, member: MemberId, id: SessionId) {
        let Some(session) = self.sessions.get_mut(&id).filter(|s| !s.ended) else {
            return;
        };
        session.ended = true;
        self.out.push_back(Output::Persist(Persist::Ended {
            session: id,
            by: member,
        }));
        let end = ControlMessage::End { session: id };
        session.broadcast(&mut ctx!(self, now), &end, member);
        let watchers: Vec<MemberId> = std::mem::take(&mut session.watchers).into_keys().collect();
        for watcher in watchers {
            if let Some(m) = self.members.get_mut(&watcher)
                && let State::Ready {
                    standing: Standing::Watching { joined, .. },
                    ..
                } = &mut m.state
            {
                joined.remove(&id);
            }
            self.out.push_back(Output::Persist(Persist::Left {
                session: id,
                participant: watcher,
            }));
        }
        self.release_if_idle(id);
    }

    fn release_if_idle(&mut self, id: SessionId) {
        if self.sessions.get(&id).is_some_and(Session::is_idle) {
            self.sessions.remove(&id);
        }
    }

    /// Takes a member out of every session it is in; it stays known as closing until its
    /// transport reports it closed.
    fn remove(&mut self, now: Instant, member: MemberId) {
        let Some(m) = self.members.get_mut(&member) else {
            return;
        };
        let state = std::mem::replace(&mut m.state, State::Closing);
        let streams = std::mem::take(&mut m.streams);
        let State::Ready { standing, .. } = state else {
            return;
        };
        match standing {
            Standing::Publishing(id) => {
                let Some(session) = self.sessions.get_mut(&id) else {
                    return;
                };
                let ctx = &mut ctx!(self, now);
                // The publisher vanished mid-group: end what was sent cleanly.
                for header in streams.values().filter(|i| i.opened && !i.refused) {
                    if let Some(h) = header.header {
                        session.finish_group(ctx, h);
                    }
                }
                if let Some(me) = session.publisher.take_if(|p| p.id == member) {
                    session.presence(ctx, &me, false);
                    ctx.out.push_back(Output::Persist(Persist::Left {
                        session: id,
                        participant: member,
                    }));
                }
                self.release_if_idle(id);
            }
            Standing::Watching { joined, .. } => {
                for id in joined {
                    self.leave(now, member, id);
                }
            }
            Standing::Loading { .. } => {}
        }
    }

    fn on_control(&mut self, now: Instant, member: MemberId, mut msg: ControlMessage) {
        let Some(m) = self.members.get(&member) else {
            return;
        };
        let (role, own) = match &m.state {
            State::Greeting => {
                let message = "the first control message must be Hello".to_string();
                return self.fatal(now, member, ErrorCode::UnexpectedMessage, message);
            }
            State::Closing => return,
            State::Ready {
                participant,
                standing,
                ..
            } => (
                participant.role,
                match standing {
                    Standing::Publishing(s) => Some(*s),
                    _ => None,
                },
            ),
        };
        let kind = MessageKind::of(&msg);
        let scope = match msg.session() {
            Some(s) if m.is_member_of(s) => Scope::Member,
            _ => Scope::Stranger,
        };
        if let Err(code) = authorize(role, kind, scope) {
            let message = refusal(code, role, own, &msg);
            return self.refuse(member, code, message);
        }
        let Some(id) = msg.session() else { return };
        match &mut msg {
            ControlMessage::Join { session } => return self.join(member, *session),
            ControlMessage::End { session } => return self.end(now, member, *session),
            ControlMessage::Leave { session } => return self.leave(now, member, *session),
            ControlMessage::Annotate(a) if a.points.is_empty() => {
                let message = "Annotate needs at least one point".to_string();
                return self.refuse(member, ErrorCode::Malformed, message);
            }
            ControlMessage::AnchorResolved { id: mark, .. }
                if !self
                    .sessions
                    .get(&id)
                    .is_some_and(|s| s.marks.iter().any(|m| m.annotate.id == *mark)) =>
            {
                let message = format!("no live annotation {mark}");
                return self.refuse(member, ErrorCode::NoSuchAnnotation, message);
            }
            _ => {}
        }
        let Some(session) = self.sessions.get_mut(&id) else {
            return;
        };
        if let ControlMessage::KeyframeRequest { .. } = msg {
            return session.to_publisher(&mut ctx!(self, now), msg);
        }
        if let ControlMessage::Annotate(a) = &mut msg {
            a.author = member;
            self.stats.annotations += 1;
        }
        // Stored before it is sent on.
        if let Some(write) = session.update_marks(&msg, member) {
            self.out.push_back(Output::Persist(write));
        }
        session.broadcast(&mut ctx!(self, now), &msg, member);
    }

    fn on_stream_data(&mut self, now: Instant, member: MemberId, stream: u64, data: &[u8]) {
        let Some(m) = self.members.get_mut(&member) else {
            return;
        };
        let publishing = match &m.state {
            State::Ready {
                standing: Standing::Publishing(s),
                ..
            } => Some(*s),
            State::Ready { .. } => None,
            State::Greeting | State::Closing => return,
        };
        let ingest = m.streams.entry(stream).or_default();
        if ingest.refused {
            return;
        }
        let Some(id) = publishing else {
            ingest.refused = true;
            return self.refuse_stream(
                member,
                stream,
                ErrorCode::WrongRole,
                "only a wearable opens media streams".into(),
            );
        };
        ingest.decoder.push(data);
        while let Some(event) = self.next_media_event(now, member, stream) {
            if !self.on_media_event(now, member, stream, id, event) {
                return;
            }
        }
    }

    /// The next whole header or object of a stream; a stream that does not decode is
    /// refused.
    fn next_media_event(
        &mut self,
        now: Instant,
        member: MemberId,
        stream: u64,
    ) -> Option<MediaEvent> {
        let ingest = self.members.get_mut(&member)?.streams.get_mut(&stream)?;
        match ingest.decoder.poll() {
            Ok(event) => event,
            Err(e) => {
                let code = match e {
                    DecodeError::TooLong { .. } => ErrorCode::TooLarge,
                    _ => ErrorCode::Malformed,
                };
                let message = format!("malformed media: {e}");
                self.end_refused(now, member, stream, code, message);
                None
            }
        }
    }

    /// A group's header or object from the publisher of session `id`. False once the
    /// stream is refused.
    fn on_media_event(
        &mut self,
        now: Instant,
        member: MemberId,
        stream: u64,
        id: SessionId,
        event: MediaEvent,
    ) -> bool {
        let Some(ingest) = self
            .members
            .get_mut(&member)
            .and_then(|m| m.streams.get_mut(&stream))
        else {
            return false;
        };
        let (object, bytes) = match event {
            MediaEvent::Header(h) if h.session != id => {
                let message = format!(
                    "group for session {} on a connection publishing session {id}",
                    h.session
                );
                self.end_refused(now, member, stream, ErrorCode::NotJoined, message);
                return false;
            }
            MediaEvent::Header(h) => {
                ingest.header = Some(h);
                return true;
            }
            MediaEvent::Object { object, encoded } => (object, encoded),
        };
        let header = ingest.header.expect("the decoder yields the header first");
        self.stats.objects_received += 1;
        self.stats.bytes_received += bytes.len() as u64;
        let opened = ingest.opened;
        if !opened && !object.flags.keyframe {
            let message = format!("group {} does not start with a key frame", header.group);
            self.end_refused(now, member, stream, ErrorCode::Malformed, message);
            if let Some(session) = self.sessions.get(&id) {
                let request = ControlMessage::KeyframeRequest { session: id };
                session.to_publisher(&mut ctx!(self, now), request);
            }
            return false;
        }
        ingest.opened = true;
        if let Some(session) = self.sessions.get_mut(&id) {
            let ctx = &mut ctx!(self, now);
            if opened {
                session.push_object(ctx, header, bytes);
            } else {
                session.open_group(ctx, header, bytes);
            }
        }
        true
    }

    fn refuse_stream(&mut self, member: MemberId, stream: u64, code: ErrorCode, message: String) {
        self.out.push_back(Output::StopStream {
            member,
            stream,
            code,
        });
        self.refuse(member, code, message);
    }

    /// Refuses a stream mid-way: what was forwarded of its group is finished cleanly.
    fn end_refused(
        &mut self,
        now: Instant,
        member: MemberId,
        stream: u64,
        code: ErrorCode,
        message: String,
    ) {
        if let Some(ingest) = self
            .members
            .get_mut(&member)
            .and_then(|m| m.streams.get_mut(&stream))
        {
            ingest.refused = true;
            if let (true, Some(h)) = (ingest.opened, ingest.header)
                && let Some(session) = self.sessions.get_mut(&h.session)
            {
                session.finish_group(&mut ctx!(self, now), h);
            }
        }
        self.refuse_stream(member, stream, code, message);
    }

    fn on_stream_end(&mut self, now: Instant, member: MemberId, stream: u64) {
        let Some(ingest) = self
            .members
            .get_mut(&member)
            .and_then(|m| m.streams.remove(&stream))
        else {
            return;
        };
        let Ingest {
            header: Some(h),
            refused: false,
            opened,
            ..
        } = ingest
        else {
            return;
        };
        if opened && let Some(session) = self.sessions.get_mut(&h.session) {
            session.finish_group(&mut ctx!(self, now), h);
        }
        self.out.push_back(Output::Persist(Persist::LastGroup {
            session: h.session,
            group: h.group,
        }));
    }

    /// Head poses go to every watcher of the publisher's own session; others are ignored.
    fn on_datagram(&mut self, member: MemberId, datagram: Bytes) {
        let Some(Member {
            state:
                State::Ready {
                    standing: Standing::Publishing(id),
                    ..
                },
            ..
        }) = self.members.get(&member)
        else {
            return;
        };
        let Ok(pose) = PoseDatagram::decode(&datagram) else {
            return;
        };
        if pose.session != *id {
            return;
        }
        if let Some(session) = self.sessions.get(id) {
            for &watcher in session.watchers.keys() {
                self.out.push_back(Output::Datagram {
                    member: watcher,
                    datagram: datagram.clone(),
                });
            }
        }
    }
}
