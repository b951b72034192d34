//! One live session: its publisher, its watchers with the groups each is being sent, the
//! current group cached from its key frame, and the marks on screen.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use farsight_protocol::control::Participant;
use farsight_protocol::{ControlMessage, GroupSeq, SessionId, StreamHeader};

use crate::relay::Stats;
use crate::schedule::{BitrateGovernor, ThroughputMeter, should_drop};
use crate::{Anchor, Mark, MediaOp, MemberId, Output, Persist, StoredSession};

/// Window over which a watcher's delivery rate is measured for bit-rate hints.
const DELIVERY_WINDOW: Duration = Duration::from_secs(2);
/// Least time between two bit-rate hints to the wearable.
const HINT_INTERVAL: Duration = Duration::from_secs(2);

/// A moment at which one watcher's group may have fallen behind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Deadline {
    pub at: Instant,
    pub member: MemberId,
    pub group: StreamHeader,
}

/// What one input's handling writes to, besides the session itself.
#[derive(Debug)]
pub(crate) struct Ctx<'a> {
    pub now: Instant,
    pub budget: Duration,
    pub out: &'a mut VecDeque<Output>,
    pub stats: &'a mut Stats,
    pub deadlines: &'a mut BinaryHeap<Reverse<Deadline>>,
}

impl Ctx<'_> {
    pub fn send(&mut self, member: MemberId, msg: ControlMessage) {
        self.out.push_back(Output::Control { member, msg });
    }

    fn media(&mut self, member: MemberId, op: MediaOp) {
        self.out.push_back(Output::Media { member, op });
    }
}

/// A group being sent to one watcher: objects handed to the transport and not yet written.
#[derive(Debug, Default)]
struct Sending {
    unwritten: VecDeque<(Instant, usize)>,
    finished: bool,
}

#[derive(Debug)]
pub(crate) struct Watch {
    pub participant: Participant,
    groups: HashMap<StreamHeader, Sending>,
    /// Priorities count from the first group this watcher saw, so they stay small.
    first_group: Option<GroupSeq>,
    delivered: ThroughputMeter,
}

/// The newest group, from its key frame, for watchers who join mid-group.
#[derive(Debug)]
struct Cached {
    header: StreamHeader,
    objects: Vec<(Instant, Bytes)>,
}

#[derive(Debug)]
pub(crate) struct Session {
    pub id: SessionId,
    pub name: String,
    pub publisher: Option<Participant>,
    pub watchers: BTreeMap<MemberId, Watch>,
    pub marks: Vec<Mark>,
    /// Ended for everyone: it takes no one in, and its wearable is on its way out.
    pub ended: bool,
    current: Option<Cached>,
    latest: Option<GroupSeq>,
    governor: BitrateGovernor,
}

impl Session {
    pub fn new(stored: StoredSession) -> Self {
        Self {
            id: stored.id,
            name: stored.name,
            publisher: None,
            watchers: BTreeMap::new(),
            marks: stored.marks,
            ended: stored.ended,
            current: None,
            latest: None,
            governor: BitrateGovernor::new(HINT_INTERVAL),
        }
    }

    pub fn is_idle(&self) -> bool {
        self.publisher.is_none() && self.watchers.is_empty()
    }

    /// Everyone in the session: the publisher first.
    pub fn participants(&self) -> impl Iterator<Item = &Participant> {
        self.publisher
            .iter()
            .chain(self.watchers.values().map(|w| &w.participant))
    }

    /// Sends `msg` to everyone in the session but `except`.
    pub fn broadcast(&self, ctx: &mut Ctx, msg: &ControlMessage, except: MemberId) {
        for p in self.participants().filter(|p| p.id != except) {
            ctx.send(p.id, msg.clone());
        }
    }

    pub fn presence(&self, ctx: &mut Ctx, participant: &Participant, present: bool) {
        let msg = ControlMessage::Presence {
            session: self.id,
            participant: participant.clone(),
            present,
        };
        self.broadcast(ctx, &msg, participant.id);
    }

    pub fn to_publisher(&self, ctx: &mut Ctx, msg: ControlMessage) {
        if let Some(p) = &self.publisher {
            ctx.send(p.id, msg);
        }
    }

    /// Replays the marks on screen to one member, each followed by its anchor.
    pub fn replay_marks(&self, ctx: &mut Ctx, member: MemberId) {
        for mark in &self.marks {
            ctx.send(member, ControlMessage::Annotate(mark.annotate.clone()));
            if let Some(anchor) = &mark.anchor {
                ctx.send(
                    member,
                    ControlMessage::AnchorResolved {
                        session: self.id,
                        id: mark.annotate.id,
                        depth: anchor.depth,
                        points: anchor.points.clone(),
                    },
                );
            }
        }
    }

    /// Keeps the marks on screen up to date with a mark message from `by`; returns the store
    /// write that makes it durable.
    pub fn update_marks(&mut self, msg: &ControlMessage, by: MemberId) -> Option<Persist> {
        let session = self.id;
        match msg {
            ControlMessage::Annotate(a) => {
                self.marks.retain(|m| m.annotate.id != a.id);
                self.marks.push(Mark {
                    annotate: a.clone(),
                    anchor: None,
                });
                Some(Persist::Annotation(a.clone()))
            }
            ControlMessage::AnchorResolved {
                id, depth, points, ..
            } => {
                if let Some(m) = self.marks.iter_mut().find(|m| m.annotate.id == *id) {
                    m.anchor = Some(Anchor {
                        depth: *depth,
                        points: points.clone(),
                    });
                }
                Some(Persist::Anchor {
                    session,
                    id: *id,
                    depth: *depth,
                    points: points.clone(),
                })
            }
            ControlMessage::Erase { id, .. } => {
                self.marks.retain(|m| m.annotate.id != *id);
                Some(Persist::Erase {
                    session,
                    id: *id,
                    by,
                })
            }
            ControlMessage::Clear { .. } => {
                self.marks.clear();
                Some(Persist::Clear { session, by })
            }
            _ => None,
        }
    }

    /// Adds a watcher and sends it the current group from its key frame. False when there
    /// is no picture to send yet.
    pub fn add_watcher(&mut self, ctx: &mut Ctx, participant: Participant) -> bool {
        let id = participant.id;
        self.watchers.insert(
            id,
            Watch {
                participant,
                groups: HashMap::new(),
                first_group: None,
                delivered: ThroughputMeter::new(DELIVERY_WINDOW),
            },
        );
        let Some(current) = &self.current else {
            return false;
        };
        let watch = self.watchers.get_mut(&id).expect("inserted above");
        open(ctx, id, watch, current.header);
        for (arrived, object) in &current.objects {
            write(ctx, id, watch, current.header, *arrived, object.clone());
        }
        true
    }

    /// A new group from the publisher, starting with its key frame: it goes to every
    /// watcher and becomes the current one unless a newer group got here first (group
    /// streams are read concurrently). Older groups still being sent may now be late.
    pub fn open_group(&mut self, ctx: &mut Ctx, header: StreamHeader, keyframe: Bytes) {
        let newest = self.latest.is_none_or(|l| l <= header.group);
        if newest {
            self.latest = Some(header.group);
            self.current = Some(Cached {
                header,
                objects: vec![(ctx.now, keyframe.clone())],
            });
        }
        for (&id, watch) in &mut self.watchers {
            open(ctx, id, watch, header);
            write(ctx, id, watch, header, ctx.now, keyframe.clone());
        }
        if newest {
            let late: Vec<_> = self
                .watchers
                .iter()
                .flat_map(|(&id, w)| w.groups.keys().map(move |g| (id, *g)))
                .filter(|(_, g)| g.group < header.group)
                .collect();
            for (member, group) in late {
                self.check_late(ctx, member, group);
            }
        }
    }

    /// The next object of a group already opened.
    pub fn push_object(&mut self, ctx: &mut Ctx, header: StreamHeader, object: Bytes) {
        if let Some(current) = self.current.as_mut().filter(|c| c.header == header) {
            current.objects.push((ctx.now, object.clone()));
        }
        for (&id, watch) in &mut self.watchers {
            if watch.groups.contains_key(&header) {
                write(ctx, id, watch, header, ctx.now, object.clone());
            }
        }
    }

    /// The publisher finished a group: each watcher's stream is finished after its objects.
    pub fn finish_group(&mut self, ctx: &mut Ctx, header: StreamHeader) {
        for (&id, watch) in &mut self.watchers {
            if let Some(sending) = watch.groups.get_mut(&header) {
                sending.finished = true;
                ctx.media(id, MediaOp::Finish { group: header });
                if sending.unwritten.is_empty() {
                    watch.groups.remove(&header);
                }
            }
        }
    }

    /// The transport wrote one object of `group` to `member`.
    pub fn written(&mut self, now: Instant, member: MemberId, group: StreamHeader, bytes: usize) {
        let Some(watch) = self.watchers.get_mut(&member) else {
            return;
        };
        watch.delivered.record(now, bytes);
        if let Some(sending) = watch.groups.get_mut(&group) {
            sending.unwritten.pop_front();
            if sending.finished && sending.unwritten.is_empty() {
                watch.groups.remove(&group);
            }
        }
    }

    /// Drops `group` for `member` if its oldest unwritten object is past the latency budget
    /// and a newer group exists; then maybe asks the wearable for a lower bit rate.
    pub fn check_late(&mut self, ctx: &mut Ctx, member: MemberId, group: StreamHeader) {
        let newer = self.latest.is_some_and(|l| l > group.group);
        let Some(watch) = self.watchers.get_mut(&member) else {
            return;
        };
        let late = watch.groups.get(&group).is_some_and(|s| {
            s.unwritten
                .front()
                .is_some_and(|(arrived, _)| should_drop(*arrived, ctx.now, ctx.budget, newer))
        });
        if !late {
            return;
        }
        watch.groups.remove(&group);
        ctx.media(member, MediaOp::Reset { group });
        ctx.stats.groups_dropped += 1;
        let now = ctx.now;
        let slowest = self
            .watchers
            .values_mut()
            .map(|w| w.delivered.bits_per_second(now))
            .min()
            .unwrap_or(0);
        if let Some(bits_per_second) = self.governor.on_drop(now, slowest) {
            let hint = ControlMessage::BitrateHint {
                session: self.id,
                bits_per_second,
            };
            self.to_publisher(ctx, hint);
        }
    }
}

fn open(ctx: &mut Ctx, member: MemberId, watch: &mut Watch, group: StreamHeader) {
    let first = *watch.first_group.get_or_insert(group.group);
    let priority = group.group.0.saturating_sub(first.0).min(i32::MAX as u64) as i32;
    watch.groups.insert(group, Sending::default());
    ctx.media(member, MediaOp::Open { group, priority });
}

fn write(
    ctx: &mut Ctx,
    member: MemberId,
    watch: &mut Watch,
    group: StreamHeader,
    arrived: Instant,
    object: Bytes,
) {
    let Some(sending) = watch.groups.get_mut(&group) else {
        return;
    };
    sending.unwritten.push_back((arrived, object.len()));
    ctx.deadlines.push(Reverse(Deadline {
        // `should_drop` wants strictly more than the budget.
        at: arrived + ctx.budget + Duration::from_millis(1),
        member,
        group,
    }));
    ctx.media(member, MediaOp::Write { group, object });
}
