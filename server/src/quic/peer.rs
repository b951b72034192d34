//! One connection from handshake to goodbye: authenticate the `Hello`, then act as the
//! session's publisher (wearable) or as a watcher (agent, supervisor), authorising every
//! control message against the role and the sessions this connection is part of.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use farsight_protocol::control::Participant;
use farsight_protocol::{
    ControlMessage, ErrorCode, PROTOCOL_VERSION, ParticipantId, PoseDatagram, Role, SessionId,
};
use tokio::sync::{mpsc, oneshot};

use super::control::{ControlReader, Fatal, write_control};
use crate::Shared;
use crate::metrics::Metrics;
use crate::relay::forward::{Forwarding, forward_groups};
use crate::relay::ingest::ingest_group;
use crate::relay::session::CONTROL_QUEUE;
use crate::relay::{Member, SessionHub};
use farsight_store::{SessionRecord, StoreError, TokenRecord, new_id};

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

impl From<StoreError> for Fatal {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "storage failed");
        Fatal::new(ErrorCode::Internal, "storage unavailable")
    }
}

/// What a connection is, once authenticated.
struct Peer {
    shared: Arc<Shared>,
    conn: quinn::Connection,
    token: TokenRecord,
    me: Participant,
    control: mpsc::Sender<ControlMessage>,
}

impl Peer {
    fn member(&self) -> Member {
        Member {
            participant: self.me.clone(),
            control: self.control.clone(),
            conn: self.conn.clone(),
        }
    }

    /// A typed error the connection survives.
    fn refuse(&self, code: ErrorCode, message: impl Into<String>) {
        let message = message.into();
        tracing::debug!(participant = %self.me.id, ?code, %message, "refused");
        self.shared
            .metrics
            .control_errors
            .get_or_create(&Metrics::label("code", &format!("{code:?}")))
            .inc();
        let _ = self
            .control
            .try_send(ControlMessage::Error { code, message });
    }

    fn unexpected(&self, msg: &ControlMessage) {
        self.refuse(
            ErrorCode::UnexpectedMessage,
            format!("unexpected message type {:#06x}", msg.type_code()),
        );
    }

    fn send(&self, msg: ControlMessage) {
        let _ = self.control.try_send(msg);
    }

    /// Replays a session's marks still on screen, with their anchors.
    async fn replay_annotations(&self, session: SessionId) -> Result<(), Fatal> {
        for stored in self.shared.store.annotations(session).await? {
            let id = stored.annotate.id;
            self.send(ControlMessage::Annotate(stored.annotate));
            if let Some((depth, points)) = stored.anchor {
                self.send(ControlMessage::AnchorResolved {
                    session,
                    id,
                    depth,
                    points,
                });
            }
        }
        Ok(())
    }

    fn presence(&self, hub: &SessionHub, present: bool) {
        hub.broadcast(
            &ControlMessage::Presence {
                session: hub.id,
                participant: self.me.clone(),
                present,
            },
            Some(self.me.id),
        );
    }
}

pub async fn run(conn: quinn::Connection, shared: Arc<Shared>) {
    shared.metrics.connected.inc();
    let remote = conn.remote_address();
    match serve(conn.clone(), shared.clone()).await {
        Ok(()) => tracing::debug!(%remote, "connection ended"),
        Err(e) => tracing::info!(%remote, error = %e, "connection refused or failed"),
    }
    shared.metrics.connected.dec();
}

async fn serve(conn: quinn::Connection, shared: Arc<Shared>) -> Result<(), Fatal> {
    let (send, recv) = match tokio::time::timeout(HANDSHAKE_TIMEOUT, conn.accept_bi()).await {
        Ok(Ok(streams)) => streams,
        _ => return Ok(()),
    };
    let (control, queue) = mpsc::channel(CONTROL_QUEUE);
    let (fatal_tx, fatal_rx) = oneshot::channel();
    let writer = tokio::spawn(write_control(conn.clone(), send, queue, fatal_rx));
    let mut reader = ControlReader::new(recv);

    let result = async {
        let (peer, resume) = handshake(&shared, &conn, &mut reader, control).await?;
        match peer.me.role {
            Role::Wearable => run_wearable(peer, resume, &mut reader).await,
            Role::Agent | Role::Supervisor => run_watcher(peer, &mut reader).await,
        }
    }
    .await;
    match result {
        Ok(()) => {
            conn.close(0u32.into(), b"");
            Ok(())
        }
        Err(fatal) => {
            let message = fatal.to_string();
            let _ = fatal_tx.send(fatal);
            let _ = writer.await;
            Err(Fatal::new(ErrorCode::Internal, message))
        }
    }
}

async fn handshake(
    shared: &Arc<Shared>,
    conn: &quinn::Connection,
    reader: &mut ControlReader,
    control: mpsc::Sender<ControlMessage>,
) -> Result<(Peer, SessionId), Fatal> {
    let hello = tokio::time::timeout(HANDSHAKE_TIMEOUT, reader.next())
        .await
        .map_err(|_| Fatal::new(ErrorCode::UnexpectedMessage, "no Hello within 10 s"))??;
    let Some(ControlMessage::Hello {
        version,
        role,
        token,
        resume,
    }) = hello
    else {
        return Err(Fatal::new(
            ErrorCode::UnexpectedMessage,
            "the first control message must be Hello",
        ));
    };
    if version != PROTOCOL_VERSION {
        return Err(Fatal::new(
            ErrorCode::UnsupportedVersion,
            format!("server speaks version {PROTOCOL_VERSION}, client sent {version}"),
        ));
    }
    let Some(token) = shared.store.verify_token(&token).await? else {
        return Err(Fatal::new(
            ErrorCode::Unauthorized,
            "unknown or revoked token",
        ));
    };
    if token.role.protocol_role() != Some(role) {
        return Err(Fatal::new(
            ErrorCode::WrongRole,
            format!(
                "token is for role {}, Hello claims {}",
                token.role.as_str(),
                role.as_str()
            ),
        ));
    }
    shared
        .metrics
        .connections
        .get_or_create(&Metrics::label("role", role.as_str()))
        .inc();
    let me = Participant {
        id: ParticipantId(new_id() as u64),
        role,
        name: token.name.clone(),
    };
    let peer = Peer {
        shared: shared.clone(),
        conn: conn.clone(),
        token,
        me,
        control,
    };
    Ok((peer, resume))
}

/// The session a wearable may resume: it must exist and belong to the same token.
async fn own_session(peer: &Peer, id: SessionId) -> Result<SessionRecord, Fatal> {
    let Some(session) = peer.shared.store.session(id).await? else {
        return Err(Fatal::new(
            ErrorCode::NoSuchSession,
            format!("session {id} does not exist"),
        ));
    };
    if session.owner_token != peer.token.id {
        return Err(Fatal::new(
            ErrorCode::NotJoined,
            format!("session {id} belongs to another wearable"),
        ));
    }
    Ok(session)
}

/// A wearable: attach it as its session's publisher, then take its groups, pose datagrams
/// and control messages until it goes.
async fn run_wearable(
    peer: Peer,
    resume: SessionId,
    reader: &mut ControlReader,
) -> Result<(), Fatal> {
    let shared = &peer.shared;
    let session = if resume.0 != 0 {
        own_session(&peer, resume).await?
    } else {
        shared
            .store
            .create_session(peer.token.id, &peer.token.name)
            .await?
    };
    let id = SessionId(session.id as u64);
    let hub = shared.relay.hub(id, session.owner_token, &session.name);
    shared
        .store
        .add_participant(id, &peer.me, peer.token.id)
        .await?;
    if let Some(old) = hub.attach_publisher(peer.member()) {
        old.conn.close(
            (ErrorCode::SessionBusy as u32).into(),
            b"replaced by a newer connection of the same wearable",
        );
    }
    tracing::info!(session = %id, participant = %peer.me.id, resumed = resume.0 != 0, "wearable publishing");
    peer.send(ControlMessage::Welcome {
        participant: peer.me.id,
        session: id,
        name: session.name.clone(),
    });
    for watcher in hub.watchers() {
        peer.send(ControlMessage::Presence {
            session: id,
            participant: watcher,
            present: true,
        });
    }
    peer.replay_annotations(id).await?;
    peer.presence(&hub, true);

    let media = tokio::spawn(receive_groups(
        peer.conn.clone(),
        hub.clone(),
        peer.shared.clone(),
        peer.control.clone(),
    ));
    let poses = tokio::spawn(receive_poses(peer.conn.clone(), hub.clone()));
    let result = wearable_control(&peer, &hub, reader).await;
    media.abort();
    poses.abort();

    hub.detach_publisher(peer.me.id);
    peer.presence(&hub, false);
    shared.store.participant_left(id, peer.me.id).await?;
    shared.relay.release_if_idle(id);
    result
}

async fn wearable_control(
    peer: &Peer,
    hub: &Arc<SessionHub>,
    reader: &mut ControlReader,
) -> Result<(), Fatal> {
    let store = &peer.shared.store;
    while let Some(msg) = reader.next().await? {
        if let Some(s) = msg.session().filter(|s| *s != hub.id) {
            peer.refuse(
                ErrorCode::NotJoined,
                format!("this connection publishes session {}, not {s}", hub.id),
            );
            continue;
        }
        match &msg {
            ControlMessage::AnchorResolved {
                id, depth, points, ..
            } => {
                if !store.resolve_anchor(hub.id, *id, *depth, points).await? {
                    peer.refuse(
                        ErrorCode::NoSuchAnnotation,
                        format!("no live annotation {id}"),
                    );
                    continue;
                }
            }
            ControlMessage::Erase { id, .. } => store.erase_annotation(hub.id, *id).await?,
            ControlMessage::Clear { .. } => store.clear_annotations(hub.id).await?,
            ControlMessage::Annotate(_)
            | ControlMessage::Join { .. }
            | ControlMessage::Leave { .. }
            | ControlMessage::Freeze { .. }
            | ControlMessage::Unfreeze { .. }
            | ControlMessage::KeyframeRequest { .. } => {
                peer.refuse(ErrorCode::WrongRole, "a wearable cannot send this message");
                continue;
            }
            other => {
                peer.unexpected(other);
                continue;
            }
        }
        hub.broadcast(&msg, Some(peer.me.id));
    }
    Ok(())
}

/// Takes each group the wearable opens; a bad group is stopped with its error code and
/// reported on the control stream, and the connection carries on.
async fn receive_groups(
    conn: quinn::Connection,
    hub: Arc<SessionHub>,
    shared: Arc<Shared>,
    control: mpsc::Sender<ControlMessage>,
) {
    while let Ok(mut recv) = conn.accept_uni().await {
        let (hub, shared, control) = (hub.clone(), shared.clone(), control.clone());
        tokio::spawn(async move {
            match ingest_group(&hub, &mut recv, &shared.metrics).await {
                Ok(Some(header)) => {
                    if let Err(e) = shared.store.set_last_group(hub.id, header.group.0).await {
                        tracing::warn!(session = %hub.id, error = %e, "could not record last group");
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    if let Some(code) = e.code() {
                        let _ = recv.stop((code as u32).into());
                        let _ = control.try_send(ControlMessage::Error {
                            code,
                            message: e.to_string(),
                        });
                    }
                    tracing::info!(session = %hub.id, error = %e, "group refused");
                }
            }
        });
    }
}

/// Forwards head-pose datagrams of this session to its watchers; others are ignored.
async fn receive_poses(conn: quinn::Connection, hub: Arc<SessionHub>) {
    while let Ok(datagram) = conn.read_datagram().await {
        match PoseDatagram::decode(&datagram) {
            Ok(pose) if pose.session == hub.id => hub.forward_datagram(datagram),
            Ok(_) | Err(_) => tracing::debug!(session = %hub.id, "pose datagram ignored"),
        }
    }
}

/// An agent or supervisor: join sessions, watch them and annotate.
async fn run_watcher(peer: Peer, reader: &mut ControlReader) -> Result<(), Fatal> {
    peer.send(ControlMessage::Welcome {
        participant: peer.me.id,
        session: SessionId(0),
        name: peer.me.name.clone(),
    });
    let mut joined: HashMap<SessionId, Arc<SessionHub>> = HashMap::new();
    let result = watcher_control(&peer, reader, &mut joined).await;
    for hub in joined.into_values() {
        leave(&peer, &hub).await?;
    }
    result
}

async fn watcher_control(
    peer: &Peer,
    reader: &mut ControlReader,
    joined: &mut HashMap<SessionId, Arc<SessionHub>>,
) -> Result<(), Fatal> {
    let store = &peer.shared.store;
    while let Some(mut msg) = reader.next().await? {
        if let ControlMessage::Join { session } = msg {
            if !joined.contains_key(&session)
                && let Some(hub) = join(peer, session).await?
            {
                joined.insert(session, hub);
            }
            continue;
        }
        let hub = match msg.session() {
            Some(s) => match joined.get(&s) {
                Some(hub) => hub.clone(),
                None => {
                    peer.refuse(ErrorCode::NotJoined, format!("not joined to session {s}"));
                    continue;
                }
            },
            None => {
                peer.refuse(
                    ErrorCode::UnexpectedMessage,
                    "unexpected message after Welcome",
                );
                continue;
            }
        };
        match &mut msg {
            ControlMessage::Leave { session } => {
                joined.remove(session);
                leave(peer, &hub).await?;
                continue;
            }
            ControlMessage::Annotate(a) => {
                if a.points.is_empty() {
                    peer.refuse(ErrorCode::Malformed, "Annotate needs at least one point");
                    continue;
                }
                a.author = peer.me.id;
                store.save_annotation(a).await?;
                peer.shared.metrics.annotations.inc();
            }
            ControlMessage::Erase { id, .. } => store.erase_annotation(hub.id, *id).await?,
            ControlMessage::Clear { .. } => store.clear_annotations(hub.id).await?,
            ControlMessage::Freeze { .. } | ControlMessage::Unfreeze { .. } => {}
            ControlMessage::KeyframeRequest { .. } => {
                hub.to_publisher(msg);
                continue;
            }
            ControlMessage::AnchorResolved { .. } | ControlMessage::BitrateHint { .. } => {
                peer.refuse(ErrorCode::WrongRole, "only the wearable sends this message");
                continue;
            }
            other => {
                peer.unexpected(other);
                continue;
            }
        }
        hub.broadcast(&msg, Some(peer.me.id));
    }
    Ok(())
}

/// Joins an open session: start forwarding its groups (the current one at once), replay
/// its marks, and tell the others. `None` (after a typed error) when it cannot be joined.
async fn join(peer: &Peer, id: SessionId) -> Result<Option<Arc<SessionHub>>, Fatal> {
    let shared = &peer.shared;
    let Some(session) = shared
        .store
        .session(id)
        .await?
        .filter(|s| s.ended_at.is_none())
    else {
        peer.refuse(ErrorCode::NoSuchSession, format!("no open session {id}"));
        return Ok(None);
    };
    let hub = shared.relay.hub(id, session.owner_token, &session.name);
    shared
        .store
        .add_participant(id, &peer.me, peer.token.id)
        .await?;
    let (groups_tx, groups_rx) = mpsc::unbounded_channel();
    let (participants, has_picture) = hub.add_watcher(peer.member(), groups_tx);
    tokio::spawn(forward_groups(
        Forwarding {
            hub: hub.clone(),
            watcher: peer.me.id,
            conn: peer.conn.clone(),
            budget: shared.latency_budget,
            metrics: shared.metrics.clone(),
        },
        groups_rx,
    ));
    peer.send(ControlMessage::Joined {
        session: id,
        participants,
    });
    peer.replay_annotations(id).await?;
    peer.presence(&hub, true);
    if !has_picture {
        hub.to_publisher(ControlMessage::KeyframeRequest { session: id });
    }
    tracing::info!(session = %id, participant = %peer.me.id, role = peer.me.role.as_str(), "joined");
    Ok(Some(hub))
}

async fn leave(peer: &Peer, hub: &SessionHub) -> Result<(), Fatal> {
    if hub.remove_watcher(peer.me.id) {
        peer.presence(hub, false);
    }
    peer.shared
        .store
        .participant_left(hub.id, peer.me.id)
        .await?;
    peer.shared.relay.release_if_idle(hub.id);
    Ok(())
}
