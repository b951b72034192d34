//! Watching: accept the relay's group streams and decode their objects as they arrive.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use farsight_protocol::{MediaDecoder, MediaEvent, Object, StreamHeader};
use tokio::sync::mpsc;

use crate::{ClientError, GROUP_DROPPED};

/// One object as received, with the local time it was complete.
#[derive(Clone, Debug)]
pub struct Received {
    pub header: StreamHeader,
    pub object: Object,
    pub at: Instant,
}

/// How a group stream ended.
#[derive(Clone, Debug, PartialEq)]
pub enum GroupEnd {
    /// The sender finished it: every object arrived.
    Complete {
        header: StreamHeader,
        objects: usize,
    },
    /// The relay dropped it because this watcher fell behind.
    Dropped {
        header: StreamHeader,
        objects: usize,
    },
    /// Anything else: reset with another code, malformed data, connection loss.
    Failed { reason: String },
}

#[derive(Debug)]
pub enum WatchEvent {
    Object(Received),
    End(GroupEnd),
}

/// Receives groups on its own tasks; read events with [`Watcher::next`].
#[derive(Debug)]
pub struct Watcher {
    rx: mpsc::UnboundedReceiver<WatchEvent>,
}

impl Watcher {
    pub(crate) fn spawn(conn: quinn::Connection, bytes_per_second: Option<u64>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let pacer = bytes_per_second.map(|rate| Arc::new(Pacer::new(rate)));
        tokio::spawn(async move {
            while let Ok(recv) = conn.accept_uni().await {
                tokio::spawn(read_group(recv, tx.clone(), pacer.clone()));
            }
        });
        Self { rx }
    }

    /// The next object or end of group; `None` when the connection is gone.
    pub async fn next(&mut self) -> Option<WatchEvent> {
        self.rx.recv().await
    }

    /// The next object, skipping group ends.
    pub async fn next_object(&mut self) -> Option<Received> {
        loop {
            match self.next().await? {
                WatchEvent::Object(r) => return Some(r),
                WatchEvent::End(_) => continue,
            }
        }
    }
}

/// Limits the read rate of all of one connection's streams together.
#[derive(Debug)]
struct Pacer {
    bytes_per_second: u64,
    next: Mutex<Instant>,
}

impl Pacer {
    fn new(bytes_per_second: u64) -> Self {
        Self {
            bytes_per_second: bytes_per_second.max(1),
            next: Mutex::new(Instant::now()),
        }
    }

    /// Waits until `bytes` more may be read.
    async fn take(&self, bytes: usize) {
        let cost = Duration::from_secs_f64(bytes as f64 / self.bytes_per_second as f64);
        let at = {
            let mut next = self.next.lock().expect("pacer lock poisoned");
            *next = (*next).max(Instant::now()) + cost;
            *next
        };
        tokio::time::sleep_until(at.into()).await;
    }
}

/// Reads are capped at this many bytes so a throttled watcher takes data in small bites.
const PACED_CHUNK: usize = 4 * 1024;

async fn read_group(
    mut recv: quinn::RecvStream,
    tx: mpsc::UnboundedSender<WatchEvent>,
    pacer: Option<Arc<Pacer>>,
) {
    let end = read_objects(&mut recv, &tx, pacer.as_deref()).await;
    let _ = tx.send(WatchEvent::End(end));
}

async fn read_objects(
    recv: &mut quinn::RecvStream,
    tx: &mpsc::UnboundedSender<WatchEvent>,
    pacer: Option<&Pacer>,
) -> GroupEnd {
    let mut decoder = MediaDecoder::new();
    let mut header = None;
    let mut objects = 0;
    let mut buf = vec![
        0u8;
        if pacer.is_some() {
            PACED_CHUNK
        } else {
            64 * 1024
        }
    ];
    loop {
        let n = match recv.read(&mut buf).await {
            Ok(Some(n)) => n,
            Ok(None) => {
                return match (header, decoder.is_idle()) {
                    (Some(header), true) => GroupEnd::Complete { header, objects },
                    _ => GroupEnd::Failed {
                        reason: "stream ended inside a header or object".into(),
                    },
                };
            }
            Err(quinn::ReadError::Reset(code)) if code.into_inner() == GROUP_DROPPED as u64 => {
                return match header {
                    Some(header) => GroupEnd::Dropped { header, objects },
                    None => GroupEnd::Failed {
                        reason: "dropped before its header".into(),
                    },
                };
            }
            Err(e) => {
                return GroupEnd::Failed {
                    reason: ClientError::from(e).to_string(),
                };
            }
        };
        decoder.push(&buf[..n]);
        if let Some(pacer) = pacer {
            pacer.take(n).await;
        }
        loop {
            match decoder.poll() {
                Ok(Some(MediaEvent::Header(h))) => header = Some(h),
                Ok(Some(MediaEvent::Object { object, .. })) => {
                    objects += 1;
                    let Some(header) = header else {
                        return GroupEnd::Failed {
                            reason: "object before header".into(),
                        };
                    };
                    let at = Instant::now();
                    let _ = tx.send(WatchEvent::Object(Received { header, object, at }));
                }
                Ok(None) => break,
                Err(e) => {
                    return GroupEnd::Failed {
                        reason: e.to_string(),
                    };
                }
            }
        }
    }
}
