//! Big-endian primitives with bounds checks, shared by every decoder.
//!
//! Every read names the field it was reading, so an error says what was wrong and where
//! (`Annotate.points: count 5000 exceeds limit 4096`).

use bytes::BufMut;
use nalgebra::{Quaternion, UnitQuaternion};

/// Why a message could not be decoded. Each variant names the field involved.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    #[error("{field}: needs {needed} bytes at offset {offset}, only {available} left")]
    Truncated {
        field: &'static str,
        offset: usize,
        needed: usize,
        available: usize,
    },
    #[error("{field}: length {len} exceeds limit {limit}")]
    TooLong {
        field: &'static str,
        len: usize,
        limit: usize,
    },
    #[error("{field}: not valid UTF-8")]
    InvalidUtf8 { field: &'static str },
    #[error("{field}: invalid value {value}")]
    InvalidValue { field: &'static str, value: u64 },
    #[error("{field}: not a finite number")]
    NotFinite { field: &'static str },
    #[error("{message}: {extra} trailing bytes")]
    TrailingBytes { message: &'static str, extra: usize },
}

/// A cursor over a complete message body.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn bytes(&mut self, field: &'static str, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < n {
            return Err(DecodeError::Truncated {
                field,
                offset: self.pos,
                needed: n,
                available: self.remaining(),
            });
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], DecodeError> {
        let mut out = [0; N];
        out.copy_from_slice(self.bytes(field, N)?);
        Ok(out)
    }

    pub fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(field)?[0])
    }

    pub fn u16(&mut self, field: &'static str) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array(field)?))
    }

    pub fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }

    pub fn u64(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array(field)?))
    }

    /// An IEEE-754 single; NaN and infinities are rejected so the math never sees them.
    pub fn f32(&mut self, field: &'static str) -> Result<f32, DecodeError> {
        let v = f32::from_be_bytes(self.array(field)?);
        if v.is_finite() {
            Ok(v)
        } else {
            Err(DecodeError::NotFinite { field })
        }
    }

    /// A string with a u16 byte length, at most `limit` bytes.
    pub fn string(&mut self, field: &'static str, limit: usize) -> Result<String, DecodeError> {
        let len = self.u16(field)? as usize;
        if len > limit {
            return Err(DecodeError::TooLong { field, len, limit });
        }
        let raw = self.bytes(field, len)?;
        String::from_utf8(raw.to_vec()).map_err(|_| DecodeError::InvalidUtf8 { field })
    }

    /// A u16 element count, at most `limit`.
    pub fn count(&mut self, field: &'static str, limit: usize) -> Result<usize, DecodeError> {
        let len = self.u16(field)? as usize;
        if len > limit {
            return Err(DecodeError::TooLong { field, len, limit });
        }
        Ok(len)
    }

    pub fn finish(self, message: &'static str) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            extra => Err(DecodeError::TrailingBytes { message, extra }),
        }
    }
}

/// Writes a string with its u16 length. Callers keep strings within their documented limit;
/// longer ones are cut at a character boundary rather than producing an undecodable message.
pub fn put_string(out: &mut impl BufMut, s: &str, limit: usize) {
    let mut end = s.len().min(limit).min(u16::MAX as usize);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    out.put_u16(end as u16);
    out.put_slice(&s.as_bytes()[..end]);
}

/// The rotation of a decoded pose. A quaternion that is already unit to f32 precision is kept
/// as sent, so that re-encoding a decoded pose (the relay does, for every object) reproduces
/// the sender's bytes; renormalising would move a component by one ulp now and then, on every
/// hop. Anything further from unit (decoders accept a norm in 0.99..=1.01) is normalised.
pub(crate) fn wire_rotation(q: Quaternion<f64>) -> UnitQuaternion<f64> {
    if (q.norm() - 1.0).abs() <= 1e-6 {
        UnitQuaternion::new_unchecked(q)
    } else {
        UnitQuaternion::from_quaternion(q)
    }
}
