//! Reading a control stream from any transport, and the error that ends a connection.

use farsight_protocol::control::ControlDecoder;
use farsight_protocol::{ControlMessage, DecodeError, ErrorCode};
use tokio::io::{AsyncRead, AsyncReadExt};

const READ_CHUNK: usize = 16 * 1024;

/// An error that ends the connection (or a browser's session), sent to the peer first.
#[derive(Debug, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct Fatal {
    pub code: ErrorCode,
    pub message: String,
}

impl Fatal {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl From<DecodeError> for Fatal {
    fn from(e: DecodeError) -> Self {
        let code = match e {
            DecodeError::TooLong { .. } => ErrorCode::TooLarge,
            _ => ErrorCode::Malformed,
        };
        Fatal::new(code, e.to_string())
    }
}

/// Control messages from any byte stream: a QUIC stream, a WebTransport stream.
#[derive(Debug)]
pub struct ControlReader<R = quinn::RecvStream> {
    recv: R,
    decoder: ControlDecoder,
    buf: Vec<u8>,
}

impl<R: AsyncRead + Unpin> ControlReader<R> {
    pub fn new(recv: R) -> Self {
        Self {
            recv,
            decoder: ControlDecoder::new(),
            buf: vec![0; READ_CHUNK],
        }
    }

    /// The next message; `Ok(None)` when the peer finished the stream or went away.
    pub async fn next(&mut self) -> Result<Option<ControlMessage>, Fatal> {
        loop {
            if let Some(msg) = self.decoder.poll()? {
                return Ok(Some(msg));
            }
            match self.recv.read(&mut self.buf).await {
                Ok(0) if self.decoder.buffered() > 0 => {
                    return Err(Fatal::new(
                        ErrorCode::Malformed,
                        "the control stream ended in the middle of a message",
                    ));
                }
                Ok(0) | Err(_) => return Ok(None),
                Ok(n) => self.decoder.push(&self.buf[..n]),
            }
        }
    }
}
