//! The link to the relay: a QUIC connection on a tokio runtime in its own thread, publishing
//! the encoder's frames one group of pictures per stream and passing the relay's messages
//! back to the Bevy app: key frame requests, bit rate hints and agents' marks, which the app
//! answers (`AnchorResolved`) through [`LinkReplies`]. When the relay goes away it reconnects
//! with back-off and resumes the same session.

use std::time::Duration;

use bevy::prelude::*;
use farsight_client::{Backoff, ClientError, ConnectOptions, Connection, connect_with_backoff};
use farsight_protocol::control::Participant;
use farsight_protocol::{
    ControlMessage, GroupSeq, Object, PoseDatagram, SessionId, StreamHeader, TrackId,
};
use tokio::sync::mpsc;

use farsight_media::Encoded;

/// Encoded frames waiting for the network; beyond this the encoder waits.
const FRAME_QUEUE: usize = 64;

/// How long the first connection may take, retries included.
const CONNECT_GIVE_UP: Duration = Duration::from_secs(30);

/// How long to keep trying to reach a relay that went away before giving up.
const RECONNECT_GIVE_UP: Duration = Duration::from_secs(300);

/// How long the relay has to acknowledge the last group once the stream is finished.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct LinkPlugin {
    pub options: ConnectOptions,
}

impl Plugin for LinkPlugin {
    fn build(&self, app: &mut App) {
        let (frames_tx, frames_rx) = mpsc::channel(FRAME_QUEUE);
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let (replies_tx, replies_rx) = mpsc::unbounded_channel();
        let options = self.options.clone();
        std::thread::Builder::new()
            .name("link".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                let result = match runtime {
                    Ok(runtime) => {
                        runtime.block_on(run(&options, frames_rx, replies_rx, &events_tx))
                    }
                    Err(e) => Err(LinkError::Runtime(e)),
                };
                let _ = events_tx.send(match result {
                    Ok(Ending::Published) => LinkEvent::Finished,
                    Ok(Ending::EndedForEveryone) => LinkEvent::SessionEnded,
                    Err(e) => LinkEvent::Failed(e.to_string()),
                });
            })
            .expect("spawning a thread");
        app.add_message::<LinkEvent>()
            .insert_resource(LinkStatus::default())
            .insert_resource(LinkOutbox(Some(frames_tx)))
            .insert_resource(LinkInbox(events_rx))
            .insert_resource(LinkReplies(replies_tx))
            .add_systems(PreUpdate, receive_link_events)
            .add_systems(Update, end_with_the_link);
    }
}

/// What the link tells the app.
#[derive(Message, Clone, Debug, PartialEq)]
pub enum LinkEvent {
    /// Connected and publishing this session (again, after a reconnect).
    Connected { session: SessionId, resumed: bool },
    /// The relay went away; reconnecting with back-off.
    Lost(String),
    /// Someone joined the session (`present`) or left it.
    Presence {
        participant: Participant,
        present: bool,
    },
    /// A watcher or the relay wants a new group: the next frame should be a key frame.
    KeyframeRequested,
    /// The slowest watcher can take this many bits per second.
    Bitrate(u64),
    /// An agent's mark or view change: `Annotate`, `Erase`, `Clear`, `Freeze` or `Unfreeze`.
    Agent(ControlMessage),
    /// Every frame was sent and acknowledged; the connection is closed.
    Finished,
    /// Someone in the session ended it for everyone; the connection is closed.
    SessionEnded,
    /// The link gave up: a refusal, an unreachable relay, a failed encoder.
    Failed(String),
}

/// The session being published, once connected.
#[derive(Resource, Debug, Default)]
pub struct LinkStatus {
    pub session: Option<SessionId>,
}

/// Where the encoder sends its frames. Whoever starts the encoder takes the sender, so the
/// channel closes when the encoder is done with it.
#[derive(Resource, Debug)]
pub struct LinkOutbox(pub Option<mpsc::Sender<Encoded>>);

/// Control messages for the relay from the app (`AnchorResolved`). Sent in order once
/// connected; those written while the relay is away go out after the reconnect.
#[derive(Resource, Debug, Clone)]
pub struct LinkReplies(mpsc::UnboundedSender<ControlMessage>);

impl LinkReplies {
    pub fn send(&self, message: ControlMessage) {
        if self.0.send(message).is_err() {
            warn!("the link has ended; a reply to the relay is dropped");
        }
    }
}

#[derive(Resource, Debug)]
struct LinkInbox(mpsc::UnboundedReceiver<LinkEvent>);

#[derive(Debug, thiserror::Error)]
enum LinkError {
    #[error("starting the network runtime: {0}")]
    Runtime(std::io::Error),
    #[error("relay at {server}: {source}")]
    Connect {
        server: std::net::SocketAddr,
        source: ClientError,
    },
    #[error("finishing the stream: {0}")]
    Flush(String),
    #[error("the encoder stopped before the end of the stream")]
    EncoderStopped,
}

fn receive_link_events(
    mut inbox: ResMut<LinkInbox>,
    mut status: ResMut<LinkStatus>,
    mut events: MessageWriter<LinkEvent>,
) {
    while let Ok(event) = inbox.0.try_recv() {
        if let LinkEvent::Connected { session, resumed } = &event {
            if !resumed {
                // The one line a script needs: which session to join.
                println!("publishing session {session}");
            }
            info!(%session, resumed, "linked to the relay");
            status.session = Some(*session);
        }
        events.write(event);
    }
}

fn end_with_the_link(mut events: MessageReader<LinkEvent>, mut exit: MessageWriter<AppExit>) {
    for event in events.read() {
        match event {
            LinkEvent::Finished => {
                info!("every frame published");
                exit.write(AppExit::Success);
            }
            LinkEvent::SessionEnded => {
                info!("the session was ended for everyone");
                exit.write(AppExit::Success);
            }
            LinkEvent::Failed(reason) => {
                error!(%reason, "the link to the relay failed");
                exit.write(AppExit::error());
            }
            _ => {}
        }
    }
}

/// Connects, publishes until the encoder says `End`, and reconnects in between as needed.
async fn run(
    options: &ConnectOptions,
    mut frames: mpsc::Receiver<Encoded>,
    mut replies: mpsc::UnboundedReceiver<ControlMessage>,
    events: &mpsc::UnboundedSender<LinkEvent>,
) -> Result<Ending, LinkError> {
    let mut backoff = Backoff::default();
    let mut conn = connect_with_backoff(options, &mut backoff, CONNECT_GIVE_UP)
        .await
        .map_err(|source| LinkError::Connect {
            server: options.server,
            source,
        })?;
    let _ = events.send(LinkEvent::Connected {
        session: conn.session,
        resumed: false,
    });
    let mut groups = Groups::new(&conn, GroupSeq(0));
    loop {
        let lost = match publish(&mut conn, &mut groups, &mut frames, &mut replies, events).await {
            Ok(Done::End) => {
                groups
                    .flush()
                    .await
                    .map_err(|e| LinkError::Flush(e.to_string()))?;
                conn.close();
                return Ok(Ending::Published);
            }
            Ok(Done::Ended) => {
                conn.close();
                return Ok(Ending::EndedForEveryone);
            }
            Ok(Done::EncoderStopped) => return Err(LinkError::EncoderStopped),
            Err(lost) => lost,
        };
        tracing::warn!(error = %lost, session = %conn.session, "lost the relay; reconnecting");
        let _ = events.send(LinkEvent::Lost(lost.to_string()));
        let resume = ConnectOptions {
            resume: conn.session,
            ..options.clone()
        };
        // Frames rendered meanwhile are dropped: nobody could see them live.
        let reconnect = connect_with_backoff(&resume, &mut backoff, RECONNECT_GIVE_UP);
        tokio::pin!(reconnect);
        conn = loop {
            tokio::select! {
                result = &mut reconnect => break result.map_err(|source| LinkError::Connect {
                    server: options.server,
                    source,
                })?,
                frame = frames.recv() => match frame {
                    Some(Encoded::Frame(_)) => {}
                    Some(Encoded::End) => return Ok(Ending::Published),
                    None => return Err(LinkError::EncoderStopped),
                },
            }
        };
        groups = Groups::new(&conn, groups.next);
        // The new connection's first group must open on a key frame.
        let _ = events.send(LinkEvent::KeyframeRequested);
        let _ = events.send(LinkEvent::Connected {
            session: conn.session,
            resumed: true,
        });
    }
}

enum Done {
    /// The encoder flushed its last frame; it has been sent.
    End,
    /// The session was ended for everyone.
    Ended,
    EncoderStopped,
}

/// How the link ended well.
enum Ending {
    /// Every frame the encoder made was published.
    Published,
    /// Someone in the session ended it for everyone.
    EndedForEveryone,
}

/// Publishes on one connection until the frames end or the connection is lost.
async fn publish(
    conn: &mut Connection,
    groups: &mut Groups,
    frames: &mut mpsc::Receiver<Encoded>,
    replies: &mut mpsc::UnboundedReceiver<ControlMessage>,
    events: &mpsc::UnboundedSender<LinkEvent>,
) -> Result<Done, ClientError> {
    loop {
        tokio::select! {
            frame = frames.recv() => match frame {
                Some(Encoded::Frame(object)) => groups.send(&object).await?,
                Some(Encoded::End) => return Ok(Done::End),
                None => return Ok(Done::EncoderStopped),
            },
            Some(reply) = replies.recv() => conn.send(&reply).await?,
            msg = conn.recv() => match msg {
                Some(Ok(ControlMessage::KeyframeRequest { .. })) => {
                    let _ = events.send(LinkEvent::KeyframeRequested);
                }
                Some(Ok(ControlMessage::BitrateHint { bits_per_second, .. })) => {
                    let _ = events.send(LinkEvent::Bitrate(bits_per_second));
                }
                Some(Ok(
                    msg @ (ControlMessage::Annotate(_)
                    | ControlMessage::Erase { .. }
                    | ControlMessage::Clear { .. }
                    | ControlMessage::Freeze { .. }
                    | ControlMessage::Unfreeze { .. }),
                )) => {
                    let _ = events.send(LinkEvent::Agent(msg));
                }
                Some(Ok(ControlMessage::End { .. })) => return Ok(Done::Ended),
                Some(Ok(ControlMessage::Presence { participant, present, .. })) => {
                    let _ = events.send(LinkEvent::Presence { participant, present });
                }
                Some(Ok(other)) => tracing::debug!(message = ?other, "control"),
                Some(Err(e)) => return Err(e),
                None => return Err(ClientError::Protocol("the relay closed the control stream".into())),
            },
        }
    }
}

/// One unidirectional stream per group of pictures, as `farsight_client::Publisher` sends
/// them, keeping hold of the open stream so the end of a run can wait until the relay has
/// every byte.
#[derive(Debug)]
struct Groups {
    conn: quinn::Connection,
    session: SessionId,
    next: GroupSeq,
    current: Option<quinn::SendStream>,
}

impl Groups {
    fn new(conn: &Connection, next: GroupSeq) -> Self {
        Self {
            conn: conn.quic().clone(),
            session: conn.session,
            next,
            current: None,
        }
    }

    /// Sends one frame; a key frame closes the current group and opens the next. Delta frames
    /// before the first key frame are dropped, since nobody could decode them.
    async fn send(&mut self, object: &Object) -> Result<(), ClientError> {
        if object.flags.keyframe {
            if let Some(mut old) = self.current.take() {
                // The relay may already have reset a group nobody wanted; that is fine.
                let _ = old.finish();
            }
            let mut stream = self.conn.open_uni().await?;
            // Newer groups first when the link is congested.
            stream.set_priority(self.next.0.min(i32::MAX as u64) as i32)?;
            let mut head = Vec::with_capacity(farsight_protocol::media::STREAM_HEADER_LEN);
            StreamHeader {
                session: self.session,
                track: TrackId(0),
                group: self.next,
            }
            .encode(&mut head);
            self.next = GroupSeq(self.next.0 + 1);
            stream.write_all(&head).await?;
            self.current = Some(stream);
        }
        if let Some(stream) = self.current.as_mut() {
            stream.write_all(&object.to_bytes()).await?;
        }
        // The head pose as a datagram too, for watchers that draw anchors between frames; a
        // path that cannot take it loses nothing the frame does not carry.
        let pose = PoseDatagram {
            session: self.session,
            at: object.capture,
            pose: object.camera.pose,
        };
        match self.conn.send_datagram(pose.to_bytes()) {
            Err(quinn::SendDatagramError::ConnectionLost(e)) => Err(e.into()),
            Ok(()) | Err(_) => Ok(()),
        }
    }

    /// Finishes the current group and waits until the relay has acknowledged all of it.
    async fn flush(&mut self) -> Result<(), ClientError> {
        let Some(mut stream) = self.current.take() else {
            return Ok(());
        };
        stream.finish()?;
        match tokio::time::timeout(FLUSH_TIMEOUT, stream.stopped()).await {
            Ok(Ok(None)) => Ok(()),
            Ok(Ok(Some(code))) => Err(ClientError::Protocol(format!(
                "the relay stopped the last group (code {code})"
            ))),
            Ok(Err(e)) => Err(ClientError::Protocol(format!(
                "finishing the last group: {e}"
            ))),
            Err(_) => Err(ClientError::Protocol(
                "the relay did not acknowledge the last group".into(),
            )),
        }
    }
}
