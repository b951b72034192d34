//! Publishing: each group of pictures goes on a new unidirectional stream.

use farsight_protocol::{GroupSeq, Object, PoseDatagram, SessionId, StreamHeader, TrackId};

use crate::ClientError;

#[derive(Debug)]
pub struct Publisher {
    conn: quinn::Connection,
    session: SessionId,
    track: TrackId,
    next_group: u64,
    current: Option<quinn::SendStream>,
}

impl Publisher {
    pub(crate) fn new(conn: quinn::Connection, session: SessionId) -> Self {
        Self {
            conn,
            session,
            track: TrackId(0),
            next_group: 0,
            current: None,
        }
    }

    /// Continues group numbering after a reconnect, so watchers see groups keep increasing.
    pub fn starting_at(mut self, group: GroupSeq) -> Self {
        self.next_group = group.0;
        self
    }

    /// The sequence the next group will carry.
    pub fn next_group(&self) -> GroupSeq {
        GroupSeq(self.next_group)
    }

    /// Sends one frame. A key frame closes the current group and opens the next; delta
    /// frames before the first key frame are dropped, since nobody could decode them.
    pub async fn send(&mut self, object: &Object) -> Result<(), ClientError> {
        if object.flags.keyframe {
            if let Some(mut old) = self.current.take() {
                // The relay may already have reset a group nobody wanted; that is fine.
                let _ = old.finish();
            }
            let mut stream = self.conn.open_uni().await?;
            let header = StreamHeader {
                session: self.session,
                track: self.track,
                group: GroupSeq(self.next_group),
            };
            // Newer groups first when the link is congested.
            stream.set_priority(self.next_group.min(i32::MAX as u64) as i32)?;
            self.next_group += 1;
            let mut head = Vec::with_capacity(farsight_protocol::media::STREAM_HEADER_LEN);
            header.encode(&mut head);
            stream.write_all(&head).await?;
            self.current = Some(stream);
        }
        let Some(stream) = self.current.as_mut() else {
            return Ok(());
        };
        stream.write_all(&object.to_bytes()).await?;
        Ok(())
    }

    /// Sends the head pose as a datagram; dropped silently when the path cannot take it.
    pub fn send_pose(&self, pose: &PoseDatagram) -> Result<(), ClientError> {
        match self.conn.send_datagram(pose.to_bytes()) {
            Ok(()) | Err(quinn::SendDatagramError::TooLarge) => Ok(()),
            Err(quinn::SendDatagramError::ConnectionLost(e)) => Err(e.into()),
            Err(e) => Err(ClientError::Protocol(e.to_string())),
        }
    }

    /// Ends the current group cleanly.
    pub fn finish(&mut self) {
        if let Some(mut s) = self.current.take() {
            let _ = s.finish();
        }
    }
}
