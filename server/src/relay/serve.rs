//! What every stream transport does with what it reads: the control stream's messages
//! (the first as `Hello`) and each media stream's bytes, fed to the relay.

use std::future::Future;

use bytes::Bytes;
use tokio::io::AsyncRead;

use super::{MemberHandle, StopStream};
use crate::limits::Unauthenticated;
use crate::relay::control::ControlReader;
use farsight_relay::Input;

/// The most one read hands the relay.
pub const READ_CHUNK: usize = 64 * 1024;

/// A unidirectional stream from a member, read in chunks the relay may keep.
pub trait MediaRecv: Send + 'static {
    /// The next chunk, at most [`READ_CHUNK`] bytes; `None` once the stream ended or broke.
    fn next_chunk(&mut self) -> impl Future<Output = Option<Bytes>> + Send;
}

/// Feeds the control stream to the relay until it ends: a peer that finished it is said
/// goodbye to, one that broke the framing is closed by the relay. Either way the writer
/// closes the connection. The connection counts as unauthenticated until its `Hello` is
/// answered.
pub async fn read_control<R: AsyncRead + Unpin>(
    reader: &mut ControlReader<R>,
    member: &MemberHandle,
    unauthenticated: Unauthenticated,
) {
    let mut signing_in = Some(unauthenticated);
    loop {
        match reader.next().await {
            Ok(Some(msg)) if signing_in.is_some() => {
                member.hello(msg).await;
                signing_in = None;
            }
            Ok(Some(msg)) => member.control(msg).await,
            Ok(None) => return member.goodbye(),
            Err(fatal) => return member.fail(fatal.code, fatal.message),
        }
    }
}

/// Feeds one unidirectional stream to the relay until it ends or the relay refuses it;
/// then `stop` is called with the stream and the code.
pub async fn read_stream<R: MediaRecv>(
    mut recv: R,
    stream: u64,
    member: MemberHandle,
    stop: impl FnOnce(R, StopStream),
) {
    let refused = loop {
        let Some(data) = recv.next_chunk().await else {
            break None;
        };
        let input = Input::StreamData {
            member: member.member,
            stream,
            data,
        };
        if let Some(stop) = member.feed(input).await.into_iter().next() {
            break Some(stop);
        }
    };
    member
        .feed(Input::StreamEnd {
            member: member.member,
            stream,
        })
        .await;
    if let Some(s) = refused {
        stop(recv, s);
    }
}
