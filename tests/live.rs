//! The browsers' `/v1/live` over real sockets. WebSocket: one control frame or one media
//! object per message, with a typed `Error` for every bad input while the server goes on
//! serving the others. WebTransport: the native stream layout, pinned by certificate hash.

mod support;

use std::time::Duration;

use farsight_protocol::control::{AnnotationKind, ControlDecoder, Style};
use farsight_protocol::media::STREAM_HEADER_LEN;
use farsight_protocol::{
    AnnotationId, ControlMessage, ErrorCode, FrameSeq, Object, PROTOCOL_VERSION, ParticipantId,
    Role, SessionId, StreamHeader,
};
use futures::{SinkExt, StreamExt};
use support::{TIMEOUT, TestServer, frame};
use tokio_tungstenite::tungstenite::Message;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn open(server: &TestServer) -> Socket {
    let url = format!("ws://{}/v1/live", server.running.http_addr);
    let (socket, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("WebSocket opens");
    socket
}

fn hello(role: Role, token: &str) -> Message {
    let hello = ControlMessage::Hello {
        version: PROTOCOL_VERSION,
        role,
        token: token.into(),
        resume: SessionId(0),
    };
    Message::binary(hello.to_bytes())
}

/// What the server sent next: a control message, a media object, or the end.
#[derive(Debug)]
enum Got {
    Control(ControlMessage),
    Media(StreamHeader, Object),
    Closed,
}

async fn next(socket: &mut Socket) -> Got {
    loop {
        let msg = tokio::time::timeout(TIMEOUT, socket.next())
            .await
            .expect("the server answers");
        let data = match msg {
            None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return Got::Closed,
            Some(Ok(Message::Binary(data))) => data,
            Some(Ok(other)) => panic!("unexpected {other:?}"),
        };
        if data[0] == 0x4d {
            let header = StreamHeader::decode(&data[..STREAM_HEADER_LEN]).expect("stream header");
            let mut decoder = farsight_protocol::MediaDecoder::new();
            decoder.push(&data);
            let _ = decoder.poll().expect("header event");
            loop {
                match decoder.poll().expect("object") {
                    Some(farsight_protocol::MediaEvent::Object { object: o, .. }) => {
                        return Got::Media(header, o);
                    }
                    Some(_) => continue,
                    None => panic!("a media message holds one whole object"),
                }
            }
        }
        let mut decoder = ControlDecoder::new();
        decoder.push(&data);
        if let Some(m) = decoder.poll().expect("control frame") {
            return Got::Control(m);
        }
    }
}

async fn expect_error(socket: &mut Socket, code: ErrorCode) {
    match next(socket).await {
        Got::Control(ControlMessage::Error { code: got, message }) => {
            assert_eq!(got, code, "{message}");
        }
        other => panic!("expected Error {code:?}, got {other:?}"),
    }
    assert!(matches!(next(socket).await, Got::Closed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_typed_error_and_the_server_serves_the_next_browser() {
    let server = TestServer::start().await;
    let agent = server.token(Role::Agent, "Ada").await;
    let wearable = server.token(Role::Wearable, "glasses").await;

    let cases: Vec<(Message, ErrorCode)> = vec![
        (hello(Role::Agent, "not-a-token"), ErrorCode::Unauthorized),
        (hello(Role::Supervisor, &agent), ErrorCode::WrongRole),
        (hello(Role::Wearable, &wearable), ErrorCode::WrongRole),
        (Message::text("hello"), ErrorCode::Malformed),
        (
            Message::binary(
                ControlMessage::Join {
                    session: SessionId(1),
                }
                .to_bytes(),
            ),
            ErrorCode::UnexpectedMessage,
        ),
        (
            Message::binary(vec![0u8, 1, 0, 1, 0, 1]),
            ErrorCode::TooLarge,
        ),
        (
            Message::binary([hello(Role::Agent, &agent).into_data(), vec![0; 3].into()].concat()),
            ErrorCode::Malformed,
        ),
    ];
    for (msg, code) in cases {
        let mut socket = open(&server).await;
        socket.send(msg).await.expect("sent");
        expect_error(&mut socket, code).await;
    }

    // Over the WebSocket's own limit: closed by the socket layer, the server unharmed.
    let mut socket = open(&server).await;
    let _ = socket.send(Message::binary(vec![0u8; 2 << 20])).await;
    assert!(matches!(next(&mut socket).await, Got::Closed));

    let mut socket = open(&server).await;
    socket.send(hello(Role::Agent, &agent)).await.expect("sent");
    assert!(
        matches!(
            next(&mut socket).await,
            Got::Control(ControlMessage::Welcome { .. })
        ),
        "a good browser is still welcome"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_agent_watches_frames_and_its_marks_reach_the_wearable() {
    let server = TestServer::start().await;
    let agent = server.token(Role::Agent, "Ada").await;
    let mut wearable = server.connect(Role::Wearable, "glasses").await;
    let session = wearable.session;

    let mut socket = open(&server).await;
    socket.send(hello(Role::Agent, &agent)).await.expect("sent");
    assert!(matches!(
        next(&mut socket).await,
        Got::Control(ControlMessage::Welcome { .. })
    ));
    let join = ControlMessage::Join { session };
    socket
        .send(Message::binary(join.to_bytes()))
        .await
        .expect("sent");
    loop {
        match next(&mut socket).await {
            Got::Control(ControlMessage::Joined { session: s, .. }) if s == session => break,
            Got::Control(_) => continue,
            other => panic!("expected Joined, got {other:?}"),
        }
    }

    let mut publisher = wearable.publisher();
    for seq in 0..5 {
        publisher
            .send(&frame(seq, seq == 0, 2000))
            .await
            .expect("published");
    }
    for seq in 0..5 {
        match next(&mut socket).await {
            Got::Media(header, object) => {
                assert_eq!(header.session, session);
                assert_eq!(object.frame, FrameSeq(seq));
                let moved = object.camera.pose.translation - support::pose_for(seq).translation;
                assert!(moved.norm() < 1e-6, "frame {seq} keeps its pose");
                assert_eq!(object.payload, frame(seq, seq == 0, 2000).payload);
            }
            Got::Control(_) => continue,
            Got::Closed => panic!("closed"),
        }
    }

    let mark = ControlMessage::Annotate(farsight_protocol::control::Annotate {
        session,
        id: AnnotationId(42),
        author: ParticipantId(0),
        kind: AnnotationKind::Arrow,
        frame: FrameSeq(3),
        points: vec![[0.3, 0.4], [0.6, 0.55]],
        style: Style::default(),
        text: String::new(),
    });
    socket
        .send(Message::binary(mark.to_bytes()))
        .await
        .expect("sent");
    let got = wearable
        .wait_for(Duration::from_secs(5), |m| match m {
            ControlMessage::Annotate(a) => Some(a.clone()),
            _ => None,
        })
        .await
        .expect("the wearable gets the mark");
    assert_eq!((got.id, got.frame), (AnnotationId(42), FrameSeq(3)));
    assert_eq!(got.points, vec![[0.3, 0.4], [0.6, 0.55]]);
    assert_ne!(got.author, ParticipantId(0), "the relay names the author");
}

async fn webtransport(server: &TestServer) -> wtransport::Connection {
    let hash = farsight_client::parse_fingerprint(&server.running.fingerprint).expect("hex");
    let config = wtransport::ClientConfig::builder()
        .with_bind_default()
        .with_server_certificate_hashes([wtransport::tls::Sha256Digest::new(hash)])
        .build();
    let url = format!(
        "https://localhost:{}/v1/live",
        server.running.webtransport_addr.port()
    );
    wtransport::Endpoint::client(config)
        .expect("client endpoint")
        .connect(url)
        .await
        .expect("WebTransport session")
}

async fn read_control(recv: &mut wtransport::RecvStream) -> Option<ControlMessage> {
    let mut decoder = ControlDecoder::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(m) = decoder.poll().expect("control frame") {
            return Some(m);
        }
        match tokio::time::timeout(TIMEOUT, recv.read(&mut buf)).await {
            Ok(Ok(Some(n))) => decoder.push(&buf[..n]),
            _ => return None,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_webtransport_a_bad_token_is_refused_and_an_agent_gets_groups_on_their_own_streams() {
    let server = TestServer::start().await;
    let agent = server.token(Role::Agent, "Ada").await;

    let session = webtransport(&server).await;
    let (mut send, mut recv) = session
        .open_bi()
        .await
        .expect("opening")
        .await
        .expect("control stream");
    send.write_all(&hello(Role::Agent, "not-a-token").into_data())
        .await
        .expect("sent");
    match read_control(&mut recv).await {
        Some(ControlMessage::Error { code, .. }) => assert_eq!(code, ErrorCode::Unauthorized),
        other => panic!("expected Unauthorized, got {other:?}"),
    }

    let wearable = server.connect(Role::Wearable, "glasses").await;
    let session_id = wearable.session;
    let browser = webtransport(&server).await;
    let (mut send, mut recv) = browser
        .open_bi()
        .await
        .expect("opening")
        .await
        .expect("control stream");
    send.write_all(&hello(Role::Agent, &agent).into_data())
        .await
        .expect("sent");
    assert!(matches!(
        read_control(&mut recv).await,
        Some(ControlMessage::Welcome { .. })
    ));
    send.write_all(
        &ControlMessage::Join {
            session: session_id,
        }
        .to_bytes(),
    )
    .await
    .expect("sent");
    loop {
        match read_control(&mut recv).await {
            Some(ControlMessage::Joined { .. }) => break,
            Some(_) => continue,
            None => panic!("no Joined"),
        }
    }
    let mut publisher = wearable.publisher();
    for seq in 0..3 {
        publisher
            .send(&frame(seq, seq == 0, 1500))
            .await
            .expect("published");
    }
    let mut group = tokio::time::timeout(TIMEOUT, browser.accept_uni())
        .await
        .expect("a group stream")
        .expect("stream");
    let mut decoder = farsight_protocol::MediaDecoder::new();
    let mut buf = [0u8; 8192];
    let mut frames = Vec::new();
    while frames.len() < 3 {
        let n = tokio::time::timeout(TIMEOUT, group.read(&mut buf))
            .await
            .expect("group data")
            .expect("readable")
            .expect("not finished before three frames");
        decoder.push(&buf[..n]);
        while let Some(event) = decoder.poll().expect("valid group") {
            match event {
                farsight_protocol::MediaEvent::Header(h) => assert_eq!(h.session, session_id),
                farsight_protocol::MediaEvent::Object { object: o, .. } => frames.push(o.frame),
            }
        }
    }
    assert_eq!(frames, vec![FrameSeq(0), FrameSeq(1), FrameSeq(2)]);
}
