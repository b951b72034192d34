//! What every stream transport does with what it reads: the control stream's messages
//! (the first as `Hello`) and each media stream's bytes, fed to the relay.

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt};

use super::{MemberHandle, StopStream};
use crate::relay::control::ControlReader;
use farsight_relay::Input;

const READ_CHUNK: usize = 64 * 1024;

/// Feeds the control stream to the relay until it ends: a peer that finished it is said
/// goodbye to, one that broke the framing is closed by the relay. Either way the writer
/// closes the connection.
pub async fn read_control<R: AsyncRead + Unpin>(
    reader: &mut ControlReader<R>,
    member: &MemberHandle,
) {
    let mut first = true;
    loop {
        match reader.next().await {
            Ok(Some(msg)) if first => {
                first = false;
                member.hello(msg).await;
            }
            Ok(Some(msg)) => member.control(msg).await,
            Ok(None) => return member.goodbye(),
            Err(fatal) => return member.fail(fatal.code, fatal.message),
        }
    }
}

/// Feeds one unidirectional stream to the relay until it ends or the relay refuses it;
/// then `stop` is called with the stream and the code.
pub async fn read_stream<R: AsyncRead + Unpin>(
    mut recv: R,
    stream: u64,
    member: MemberHandle,
    stop: impl FnOnce(R, StopStream),
) {
    let mut buf = vec![0u8; READ_CHUNK];
    let refused = loop {
        let n = match recv.read(&mut buf).await {
            Ok(0) | Err(_) => break None,
            Ok(n) => n,
        };
        let data = Bytes::copy_from_slice(&buf[..n]);
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
