//! Pose datagrams: the head pose at display rate, sent as unreliable QUIC datagrams (the
//! latest wins), so a watcher's view of the anchors stays smooth between video frames.

use bytes::{BufMut, Bytes, BytesMut};
use nalgebra::{Quaternion, Vector3};

use crate::camera::Pose;
use crate::ids::{Micros, SessionId};
use crate::wire::{DecodeError, Reader, wire_rotation};

pub const POSE_DATAGRAM_TYPE: u8 = 0x50;
/// type (1), session (8), time (8), translation (3 × 4), rotation (4 × 4).
pub const POSE_DATAGRAM_LEN: usize = 45;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PoseDatagram {
    pub session: SessionId,
    pub at: Micros,
    pub pose: Pose,
}

impl PoseDatagram {
    pub fn to_bytes(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(POSE_DATAGRAM_LEN);
        b.put_u8(POSE_DATAGRAM_TYPE);
        b.put_u64(self.session.0);
        b.put_u64(self.at.0);
        self.pose
            .translation
            .iter()
            .for_each(|v| b.put_f32(*v as f32));
        let q = self.pose.rotation.quaternion();
        [q.i, q.j, q.k, q.w]
            .iter()
            .for_each(|v| b.put_f32(*v as f32));
        b.freeze()
    }

    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(buf);
        let ty = r.u8("PoseDatagram.type")?;
        if ty != POSE_DATAGRAM_TYPE {
            return Err(DecodeError::InvalidValue {
                field: "PoseDatagram.type",
                value: ty.into(),
            });
        }
        let session = SessionId(r.u64("PoseDatagram.session")?);
        let at = Micros(r.u64("PoseDatagram.at")?);
        let mut v = [0f64; 7];
        for x in &mut v {
            *x = r.f32("PoseDatagram.pose")? as f64;
        }
        r.finish("PoseDatagram")?;
        let q = Quaternion::new(v[6], v[3], v[4], v[5]);
        if !(0.99..=1.01).contains(&q.norm()) {
            return Err(DecodeError::InvalidValue {
                field: "PoseDatagram.rotation (norm must be 1)",
                value: (q.norm() * 1000.0) as u64,
            });
        }
        Ok(Self {
            session,
            at,
            pose: Pose::new(Vector3::new(v[0], v[1], v[2]), wire_rotation(q)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_has_documented_length() {
        let d = PoseDatagram {
            session: SessionId(9),
            at: Micros(123),
            pose: Pose::IDENTITY,
        };
        let bytes = d.to_bytes();
        assert_eq!(bytes.len(), POSE_DATAGRAM_LEN);
        assert_eq!(PoseDatagram::decode(&bytes), Ok(d));
    }
}
