//! Reading and writing one connection's control stream (the browser gateways read theirs
//! with the same [`ControlReader`]).

use farsight_protocol::control::ControlDecoder;
use farsight_protocol::{ControlMessage, DecodeError, ErrorCode};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{mpsc, oneshot};

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

impl Fatal {
    /// The `Error` message that tells the peer.
    pub fn to_message(&self) -> ControlMessage {
        ControlMessage::Error {
            code: self.code,
            message: self.message.clone(),
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
                Ok(0) | Err(_) => return Ok(None),
                Ok(n) => self.decoder.push(&self.buf[..n]),
            }
        }
    }
}

/// Writes queued messages in order; on a fatal error, writes it last and closes the
/// connection with its code once the peer has had the chance to read it.
pub async fn write_control(
    conn: quinn::Connection,
    mut send: quinn::SendStream,
    mut queue: mpsc::Receiver<ControlMessage>,
    mut fatal: oneshot::Receiver<Fatal>,
) {
    loop {
        tokio::select! {
            biased;
            msg = queue.recv() => match msg {
                Some(msg) => {
                    if send.write_all(&msg.to_bytes()).await.is_err() {
                        return;
                    }
                }
                // Every sender is gone; a fatal error may still follow.
                None => break,
            },
            fatal = &mut fatal => {
                // `Err`: the connection ended without one; nothing more will be written.
                if let Ok(f) = fatal {
                    close_with(conn, send, f).await;
                }
                return;
            }
        }
    }
    if let Ok(f) = fatal.await {
        close_with(conn, send, f).await;
    }
}

/// Writes the error last, lets the peer acknowledge it, then closes with its code.
async fn close_with(conn: quinn::Connection, mut send: quinn::SendStream, f: Fatal) {
    if send.write_all(&f.to_message().to_bytes()).await.is_ok() && send.finish().is_ok() {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), send.stopped()).await;
    }
    conn.close((f.code as u32).into(), f.message.as_bytes());
}
