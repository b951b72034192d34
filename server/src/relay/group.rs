//! A group of pictures as the relay holds it: objects appended by the publisher, read by
//! any number of watcher writers, each at its own pace.

use std::sync::RwLock;
use std::time::Instant;

use bytes::Bytes;
use farsight_protocol::StreamHeader;
use tokio::sync::watch;

#[derive(Clone, Debug)]
pub struct GroupObject {
    /// When the relay received the whole object; the latency budget counts from here.
    pub arrived: Instant,
    /// The encoded object, forwarded byte for byte.
    pub bytes: Bytes,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    pub objects: usize,
    pub closed: bool,
}

#[derive(Debug)]
pub struct Group {
    pub header: StreamHeader,
    objects: RwLock<Vec<GroupObject>>,
    progress: watch::Sender<Progress>,
}

impl Group {
    /// A group begins with its key frame, so a watcher can start decoding at object 0.
    pub fn new(header: StreamHeader, keyframe: GroupObject) -> Self {
        let (progress, _) = watch::channel(Progress {
            objects: 1,
            closed: false,
        });
        Self {
            header,
            objects: RwLock::new(vec![keyframe]),
            progress,
        }
    }

    pub fn push(&self, object: GroupObject) {
        let n = {
            let mut objects = self.objects.write().expect("group lock poisoned");
            objects.push(object);
            objects.len()
        };
        self.progress.send_modify(|p| p.objects = n);
    }

    pub fn close(&self) {
        self.progress.send_modify(|p| p.closed = true);
    }

    pub fn get(&self, index: usize) -> Option<GroupObject> {
        self.objects
            .read()
            .expect("group lock poisoned")
            .get(index)
            .cloned()
    }

    pub fn len(&self) -> usize {
        self.progress.borrow().objects
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn subscribe(&self) -> watch::Receiver<Progress> {
        self.progress.subscribe()
    }
}
