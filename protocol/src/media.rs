//! Media streams: one unidirectional QUIC stream per group of pictures.
//!
//! A stream is a header (`session, track, group`) then objects, each one encoded frame with
//! its capture time, camera pose and intrinsics. A group starts with a key frame, so a
//! watcher can start decoding at the first byte of any group.

use bytes::{BufMut, Bytes, BytesMut};

use crate::camera::{CameraModel, Intrinsics, Pose};
use crate::ids::{FrameSeq, GroupSeq, Micros, SessionId, TrackId};
use crate::wire::{DecodeError, Reader, wire_rotation};
use nalgebra::{Quaternion, Vector3};

/// First byte of every unidirectional stream that carries media.
pub const MEDIA_STREAM_TYPE: u8 = 0x4d;
/// Stream header: type (1), session (8), track (4), group (8).
pub const STREAM_HEADER_LEN: usize = 21;
/// Object header before the payload: frame (8), capture time (8), flags (1), pose (7 × 4),
/// intrinsics (4 × 4 + 2 × 2), payload length (4).
pub const OBJECT_HEADER_LEN: usize = 69;
/// Largest encoded frame accepted, in bytes.
pub const MAX_OBJECT_PAYLOAD: usize = 4 * 1024 * 1024;
/// Application code with which a relay resets a group stream a watcher fell behind on;
/// not an error, the watcher simply skips to a newer group.
pub const GROUP_DROPPED: u32 = 0x100;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamHeader {
    pub session: SessionId,
    pub track: TrackId,
    pub group: GroupSeq,
}

impl StreamHeader {
    pub fn encode(&self, out: &mut impl BufMut) {
        out.put_u8(MEDIA_STREAM_TYPE);
        out.put_u64(self.session.0);
        out.put_u32(self.track.0);
        out.put_u64(self.group.0);
    }

    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(buf);
        let ty = r.u8("StreamHeader.type")?;
        if ty != MEDIA_STREAM_TYPE {
            return Err(DecodeError::InvalidValue {
                field: "StreamHeader.type",
                value: ty.into(),
            });
        }
        let header = StreamHeader {
            session: SessionId(r.u64("StreamHeader.session")?),
            track: TrackId(r.u32("StreamHeader.track")?),
            group: GroupSeq(r.u64("StreamHeader.group")?),
        };
        r.finish("StreamHeader")?;
        Ok(header)
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ObjectFlags {
    pub keyframe: bool,
}

impl ObjectFlags {
    const KEYFRAME: u8 = 0x01;

    fn bits(self) -> u8 {
        if self.keyframe { Self::KEYFRAME } else { 0 }
    }

    fn from_bits(bits: u8) -> Result<Self, DecodeError> {
        if bits & !Self::KEYFRAME != 0 {
            return Err(DecodeError::InvalidValue {
                field: "Object.flags",
                value: bits.into(),
            });
        }
        Ok(Self {
            keyframe: bits & Self::KEYFRAME != 0,
        })
    }
}

/// One encoded frame with the camera that captured it.
#[derive(Clone, Debug, PartialEq)]
pub struct Object {
    pub frame: FrameSeq,
    pub capture: Micros,
    pub flags: ObjectFlags,
    pub camera: CameraModel,
    /// H.264 access unit in Annex B byte-stream format.
    pub payload: Bytes,
}

impl Object {
    pub fn encoded_len(&self) -> usize {
        OBJECT_HEADER_LEN + self.payload.len()
    }

    pub fn encode(&self, out: &mut impl BufMut) {
        out.put_u64(self.frame.0);
        out.put_u64(self.capture.0);
        out.put_u8(self.flags.bits());
        let pose = &self.camera.pose;
        for v in pose.translation.iter() {
            out.put_f32(*v as f32);
        }
        let q = pose.rotation.quaternion();
        for v in [q.i, q.j, q.k, q.w] {
            out.put_f32(v as f32);
        }
        let k = &self.camera.intrinsics;
        for v in [k.fx, k.fy, k.cx, k.cy] {
            out.put_f32(v as f32);
        }
        out.put_u16(k.width.min(u16::MAX as u32) as u16);
        out.put_u16(k.height.min(u16::MAX as u32) as u16);
        out.put_u32(self.payload.len() as u32);
        out.put_slice(&self.payload);
    }

    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.encoded_len());
        self.encode(&mut out);
        out.freeze()
    }

    /// Decodes the fixed-size header; returns the object (with an empty payload) and the
    /// payload length that follows.
    pub fn decode_header(buf: &[u8; OBJECT_HEADER_LEN]) -> Result<(Object, usize), DecodeError> {
        let mut r = Reader::new(buf);
        let frame = FrameSeq(r.u64("Object.frame")?);
        let capture = Micros(r.u64("Object.capture")?);
        let flags = ObjectFlags::from_bits(r.u8("Object.flags")?)?;
        let t = [
            r.f32("Object.pose.t")?,
            r.f32("Object.pose.t")?,
            r.f32("Object.pose.t")?,
        ];
        let q = [
            r.f32("Object.pose.q")?,
            r.f32("Object.pose.q")?,
            r.f32("Object.pose.q")?,
            r.f32("Object.pose.q")?,
        ];
        let quat = Quaternion::new(q[3] as f64, q[0] as f64, q[1] as f64, q[2] as f64);
        let norm = quat.norm();
        if !(0.99..=1.01).contains(&norm) {
            return Err(DecodeError::InvalidValue {
                field: "Object.pose.q (norm must be 1)",
                value: (norm * 1000.0) as u64,
            });
        }
        let f = [
            r.f32("Object.intrinsics.fx")?,
            r.f32("Object.intrinsics.fy")?,
            r.f32("Object.intrinsics.cx")?,
            r.f32("Object.intrinsics.cy")?,
        ];
        let width = r.u16("Object.intrinsics.width")? as u32;
        let height = r.u16("Object.intrinsics.height")? as u32;
        // Zero focal lengths or image sizes would turn every projection into inf or NaN.
        for (field, bad) in [
            ("Object.intrinsics.fx", f[0] <= 0.0),
            ("Object.intrinsics.fy", f[1] <= 0.0),
            ("Object.intrinsics.width", width == 0),
            ("Object.intrinsics.height", height == 0),
        ] {
            if bad {
                return Err(DecodeError::InvalidValue { field, value: 0 });
            }
        }
        let len = r.u32("Object.payload_length")? as usize;
        if len > MAX_OBJECT_PAYLOAD {
            return Err(DecodeError::TooLong {
                field: "Object.payload",
                len,
                limit: MAX_OBJECT_PAYLOAD,
            });
        }
        let camera = CameraModel {
            pose: Pose::new(
                Vector3::new(t[0] as f64, t[1] as f64, t[2] as f64),
                wire_rotation(quat),
            ),
            intrinsics: Intrinsics {
                fx: f[0] as f64,
                fy: f[1] as f64,
                cx: f[2] as f64,
                cy: f[3] as f64,
                width,
                height,
            },
        };
        let object = Object {
            frame,
            capture,
            flags,
            camera,
            payload: Bytes::new(),
        };
        Ok((object, len))
    }
}

/// What a media stream yields, in order: its header once, then objects.
#[derive(Clone, Debug, PartialEq)]
pub enum MediaEvent {
    Header(StreamHeader),
    Object {
        object: Object,
        /// The object as it was on the wire, header and payload (which `object.payload`
        /// shares): a relay forwards it without encoding it again.
        encoded: Bytes,
    },
}

/// Incremental decoder for one media stream.
#[derive(Debug, Default)]
pub struct MediaDecoder {
    buf: BytesMut,
    header_seen: bool,
    pending: Option<(Object, usize)>,
}

impl MediaDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// True when no partial object or header is buffered: a clean place for the stream to end.
    pub fn is_idle(&self) -> bool {
        self.buf.is_empty() && self.pending.is_none()
    }

    pub fn poll(&mut self) -> Result<Option<MediaEvent>, DecodeError> {
        if !self.header_seen {
            if self.buf.len() < STREAM_HEADER_LEN {
                return Ok(None);
            }
            let header = StreamHeader::decode(&self.buf.split_to(STREAM_HEADER_LEN))?;
            self.header_seen = true;
            return Ok(Some(MediaEvent::Header(header)));
        }
        if self.pending.is_none() {
            if self.buf.len() < OBJECT_HEADER_LEN {
                return Ok(None);
            }
            let mut head = [0u8; OBJECT_HEADER_LEN];
            head.copy_from_slice(&self.buf[..OBJECT_HEADER_LEN]);
            self.pending = Some(Object::decode_header(&head)?);
        }
        // The header stays in the buffer until the payload is complete, so the object
        // leaves as one contiguous slice of what was received.
        let Some((_, len)) = &self.pending else {
            return Ok(None);
        };
        if self.buf.len() < OBJECT_HEADER_LEN + *len {
            return Ok(None);
        }
        let (mut object, len) = self.pending.take().expect("checked above");
        let encoded = self.buf.split_to(OBJECT_HEADER_LEN + len).freeze();
        object.payload = encoded.slice(OBJECT_HEADER_LEN..);
        Ok(Some(MediaEvent::Object { object, encoded }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(frame: u64, payload: &[u8]) -> Object {
        Object {
            frame: FrameSeq(frame),
            capture: Micros(1_700_000_000_000_000 + frame),
            flags: ObjectFlags {
                keyframe: frame == 0,
            },
            camera: CameraModel {
                pose: Pose::IDENTITY,
                intrinsics: Intrinsics::from_hfov(1280, 720, 1.2),
            },
            payload: Bytes::copy_from_slice(payload),
        }
    }

    #[test]
    fn object_header_has_documented_length() {
        let o = object(3, b"xyz");
        assert_eq!(o.to_bytes().len(), OBJECT_HEADER_LEN + 3);
    }

    #[test]
    fn decodes_a_stream_fed_one_byte_at_a_time() {
        let header = StreamHeader {
            session: SessionId(7),
            track: TrackId(0),
            group: GroupSeq(2),
        };
        let mut wire = Vec::new();
        header.encode(&mut wire);
        let objects = [object(0, b"key"), object(1, b""), object(2, b"delta")];
        objects.iter().for_each(|o| o.encode(&mut wire));

        let mut d = MediaDecoder::new();
        let mut events = Vec::new();
        for b in wire {
            d.push(&[b]);
            while let Some(e) = d.poll().expect("valid stream") {
                events.push(e);
            }
        }
        assert_eq!(events[0], MediaEvent::Header(header));
        let got: Vec<_> = events[1..]
            .iter()
            .map(|e| match e {
                MediaEvent::Object { object, encoded } => {
                    assert_eq!(encoded, &object.to_bytes());
                    object.clone()
                }
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(got.len(), 3);
        assert_eq!(got[2].payload, Bytes::from_static(b"delta"));
        assert!(got[0].flags.keyframe && !got[1].flags.keyframe);
        assert!(d.is_idle());
    }

    #[test]
    fn oversize_payload_is_rejected_from_the_header() {
        let mut wire = BytesMut::new();
        object(0, b"").encode(&mut wire);
        let len_at = OBJECT_HEADER_LEN - 4;
        wire[len_at..OBJECT_HEADER_LEN].copy_from_slice(&(64u32 << 20).to_be_bytes());
        let head: [u8; OBJECT_HEADER_LEN] = wire[..].try_into().expect("exact length");
        assert!(matches!(
            Object::decode_header(&head),
            Err(DecodeError::TooLong {
                field: "Object.payload",
                ..
            })
        ));
    }
}
