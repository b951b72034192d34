//! The IO shell: moves SIP messages over one UDP socket, or over TCP connections (one per
//! peer address, opened on first send, plus any the peers open to our listener). Framing and
//! size limits come from [`Message`]; nothing here knows the protocol.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::Transport;
use super::message::{MAX_MESSAGE_BYTES, Message, ParseError};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What a receive yields: the peer and its message, or why its bytes were not one.
pub type Received = (SocketAddr, Result<Message, ParseError>);

/// A bound transport.
#[derive(Debug)]
pub enum Shell {
    Udp(UdpShell),
    Tcp(TcpShell),
}

#[derive(Debug)]
pub struct UdpShell {
    socket: UdpSocket,
    local: SocketAddr,
    buf: Vec<u8>,
}

#[derive(Debug)]
pub struct TcpShell {
    local: SocketAddr,
    writers: HashMap<SocketAddr, OwnedWriteHalf>,
    tx: mpsc::Sender<Received>,
    rx: mpsc::Receiver<Received>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for TcpShell {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The local IP the OS would use towards `peer`, for an unspecified bind address.
fn route_ip(local: SocketAddr, peer: SocketAddr) -> io::Result<SocketAddr> {
    if !local.ip().is_unspecified() {
        return Ok(local);
    }
    let probe = std::net::UdpSocket::bind(SocketAddr::new(local.ip(), 0))?;
    probe.connect(peer)?;
    Ok(SocketAddr::new(probe.local_addr()?.ip(), local.port()))
}

impl Shell {
    /// Binds `local`; `peer` (the trunk) only decides the advertised IP when `local` is 0.0.0.0.
    pub async fn bind(
        transport: Transport,
        local: SocketAddr,
        peer: SocketAddr,
    ) -> io::Result<Shell> {
        match transport {
            Transport::Udp => {
                let socket = UdpSocket::bind(local).await?;
                let bound = socket.local_addr()?;
                Ok(Shell::Udp(UdpShell {
                    socket,
                    local: route_ip(bound, peer)?,
                    buf: vec![0; MAX_MESSAGE_BYTES + 1],
                }))
            }
            Transport::Tcp => {
                let listener = TcpListener::bind(local).await?;
                let bound = listener.local_addr()?;
                let (tx, rx) = mpsc::channel(64);
                let mut shell = TcpShell {
                    local: route_ip(bound, peer)?,
                    writers: HashMap::new(),
                    tx,
                    rx,
                    tasks: Vec::new(),
                };
                let accept_tx = shell.tx.clone();
                shell.tasks.push(tokio::spawn(async move {
                    // Peers may open their own connection for in-dialog requests; we read them,
                    // and answer over the connection we opened to that address.
                    while let Ok((stream, peer)) = listener.accept().await {
                        let (read, write) = stream.into_split();
                        let tx = accept_tx.clone();
                        tokio::spawn(async move {
                            let _keep_open = write;
                            read_stream(read, peer, tx).await;
                        });
                    }
                }));
                Ok(Shell::Tcp(shell))
            }
        }
    }

    /// The address to advertise in Via and Contact.
    pub fn local_addr(&self) -> SocketAddr {
        match self {
            Shell::Udp(u) => u.local,
            Shell::Tcp(t) => t.local,
        }
    }

    pub async fn send(&mut self, dest: SocketAddr, payload: &[u8]) -> io::Result<()> {
        match self {
            Shell::Udp(u) => u.socket.send_to(payload, dest).await.map(|_| ()),
            Shell::Tcp(t) => {
                if !t.writers.contains_key(&dest) {
                    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(dest))
                        .await
                        .map_err(|_| {
                            io::Error::new(io::ErrorKind::TimedOut, "connect timed out")
                        })??;
                    stream.set_nodelay(true)?;
                    let (read, write) = stream.into_split();
                    t.tasks
                        .push(tokio::spawn(read_stream(read, dest, t.tx.clone())));
                    t.writers.insert(dest, write);
                }
                let writer = t.writers.get_mut(&dest).expect("inserted above");
                let result = writer.write_all(payload).await;
                if result.is_err() {
                    t.writers.remove(&dest);
                }
                result
            }
        }
    }

    /// The next message from any peer. Cancel-safe.
    pub async fn recv(&mut self) -> io::Result<Received> {
        match self {
            Shell::Udp(u) => {
                let (n, from) = u.socket.recv_from(&mut u.buf).await?;
                if n > MAX_MESSAGE_BYTES {
                    return Ok((
                        from,
                        Err(ParseError::TooLarge {
                            len: n,
                            limit: MAX_MESSAGE_BYTES,
                        }),
                    ));
                }
                Ok((from, Message::parse(&u.buf[..n])))
            }
            Shell::Tcp(t) => {
                t.rx.recv()
                    .await
                    .ok_or_else(|| io::Error::other("TCP reader channel closed"))
            }
        }
    }
}

/// Frames messages off one TCP connection until EOF or a framing error (which closes it:
/// after a bad message the stream cannot be resynchronised).
async fn read_stream(
    mut read: tokio::net::tcp::OwnedReadHalf,
    peer: SocketAddr,
    tx: mpsc::Sender<Received>,
) {
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        loop {
            match Message::parse_stream(&buf) {
                Ok(Some((msg, used))) => {
                    buf.drain(..used);
                    if tx.send((peer, Ok(msg))).await.is_err() {
                        return;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    let _ = tx.send((peer, Err(e))).await;
                    return;
                }
            }
        }
        match read.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}
