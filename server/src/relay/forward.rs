//! Sending groups to one watcher: each group on its own uni stream, newer groups at higher
//! priority, and a group reset as soon as it falls behind the latency budget.

use std::sync::Arc;
use std::time::{Duration, Instant};

use farsight_client::GROUP_DROPPED;
use farsight_protocol::ParticipantId;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::group::Group;
use super::schedule::should_drop;
use super::session::SessionHub;
use crate::metrics::Metrics;

#[derive(Clone, Debug)]
pub struct Forwarding {
    pub hub: Arc<SessionHub>,
    pub watcher: ParticipantId,
    pub conn: quinn::Connection,
    pub budget: Duration,
    pub metrics: Arc<Metrics>,
}

/// Runs until the watcher leaves (its group channel closes); then aborts its streams.
pub async fn forward_groups(fwd: Forwarding, mut groups: mpsc::UnboundedReceiver<Arc<Group>>) {
    let mut tasks = JoinSet::new();
    let mut base = None;
    while let Some(group) = groups.recv().await {
        // Priorities are relative to the first group this watcher saw, so they stay small.
        let base = *base.get_or_insert(group.header.group.0);
        let priority = group
            .header
            .group
            .0
            .saturating_sub(base)
            .min(i32::MAX as u64) as i32;
        tasks.spawn(send_group(fwd.clone(), group, priority));
        while tasks.try_join_next().is_some() {}
    }
}

#[derive(Debug)]
enum Outcome {
    Complete,
    Dropped,
    Gone,
}

async fn send_group(fwd: Forwarding, group: Arc<Group>, priority: i32) {
    let outcome = match fwd.conn.open_uni().await {
        Ok(mut stream) => {
            let _ = stream.set_priority(priority);
            let outcome = write_group(&fwd, &group, &mut stream).await;
            match outcome {
                Outcome::Complete => {
                    let _ = stream.finish();
                }
                Outcome::Dropped => {
                    let _ = stream.reset(GROUP_DROPPED.into());
                }
                Outcome::Gone => {}
            }
            outcome
        }
        Err(_) => Outcome::Gone,
    };
    if let Outcome::Dropped = outcome {
        fwd.metrics.groups_dropped.inc();
        fwd.hub.on_group_dropped(Instant::now());
        tracing::debug!(session = %fwd.hub.id, watcher = %fwd.watcher, group = group.header.group.0, "group dropped for slow watcher");
    }
}

async fn write_group(fwd: &Forwarding, group: &Group, stream: &mut quinn::SendStream) -> Outcome {
    let seq = group.header.group.0;
    let mut latest = fwd.hub.latest_group();
    let mut progress = group.subscribe();
    let mut head = Vec::with_capacity(farsight_protocol::media::STREAM_HEADER_LEN);
    group.header.encode(&mut head);
    if stream.write_all(&head).await.is_err() {
        return Outcome::Gone;
    }
    let mut next = 0;
    loop {
        let p = *progress.borrow_and_update();
        if let Some(object) = (next < p.objects).then(|| group.get(next)).flatten() {
            tokio::select! {
                biased;
                () = overtaken(object.arrived, fwd.budget, seq, &mut latest) => return Outcome::Dropped,
                written = stream.write_all(&object.bytes) => {
                    if written.is_err() {
                        return Outcome::Gone;
                    }
                    next += 1;
                    fwd.metrics.objects_forwarded.inc();
                    fwd.metrics.bytes_forwarded.inc_by(object.bytes.len() as u64);
                    fwd.hub.delivered(fwd.watcher, Instant::now(), object.bytes.len());
                }
            }
        } else if p.closed {
            return Outcome::Complete;
        } else if progress.changed().await.is_err() {
            // The publisher vanished mid-group: end what was sent cleanly.
            return Outcome::Complete;
        }
    }
}

/// Resolves once an object that arrived at `arrived` should be dropped: past the budget
/// with a newer group than `seq` waiting (see [`should_drop`]).
async fn overtaken(
    arrived: Instant,
    budget: Duration,
    seq: u64,
    latest: &mut watch::Receiver<u64>,
) {
    let deadline = arrived + budget;
    loop {
        let newer = *latest.borrow_and_update() > seq;
        if should_drop(arrived, Instant::now(), budget, newer) {
            return;
        }
        if Instant::now() <= deadline {
            tokio::time::sleep_until((deadline + Duration::from_millis(1)).into()).await;
        } else if latest.changed().await.is_err() {
            // The session is gone; the write side ends the group.
            std::future::pending::<()>().await;
        }
    }
}
