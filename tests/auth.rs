//! Bad input over real QUIC: each gets its typed error, and the server keeps serving others.

mod support;

use std::time::Duration;

use farsight_client::{ClientError, Connection, connect, quic_client_config};
use farsight_protocol::media::{OBJECT_HEADER_LEN, STREAM_HEADER_LEN};
use farsight_protocol::{
    Annotate, AnnotationId, AnnotationKind, ControlMessage, ErrorCode, FrameSeq, GroupSeq,
    ParticipantId, Role, SessionId, StreamHeader, Style, TrackId,
};
use support::{TIMEOUT, TestServer, frame};

fn refused(result: Result<Connection, ClientError>) -> ErrorCode {
    match result {
        Err(ClientError::Refused { code, .. }) => code,
        Err(other) => panic!("expected a typed refusal, got {other}"),
        Ok(_) => panic!("expected a refusal, got a connection"),
    }
}

async fn next_error(conn: &mut Connection) -> ErrorCode {
    conn.wait_for(TIMEOUT, |m| match m {
        ControlMessage::Error { code, .. } => Some(*code),
        _ => None,
    })
    .await
    .expect("an Error message")
}

/// A healthy wearable and agent still work: the agent sees the wearable's frames.
async fn still_serving(server: &TestServer) {
    let wearable = server.connect(Role::Wearable, "healthy").await;
    let mut agent = server.connect(Role::Agent, "healthy-agent").await;
    agent.join(wearable.session).await.expect("joins");
    let mut watcher = agent.watcher();
    let mut publisher = wearable.publisher();
    support::eventually("the watcher to join", || {
        server
            .running
            .shared
            .relay
            .session(wearable.session)
            .is_some_and(|s| !s.watchers.is_empty())
    })
    .await;
    publisher.send(&frame(0, true, 100)).await.expect("sent");
    let got = tokio::time::timeout(TIMEOUT, watcher.next_object())
        .await
        .expect("in time")
        .expect("open");
    assert_eq!(got.object.frame, FrameSeq(0));
}

fn annotate(session: SessionId) -> ControlMessage {
    ControlMessage::Annotate(Annotate {
        session,
        id: AnnotationId(1),
        author: ParticipantId(0),
        kind: AnnotationKind::Circle,
        frame: FrameSeq(0),
        points: vec![[0.5, 0.5], [0.6, 0.5]],
        style: Style::default(),
        text: String::new(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_and_revoked_tokens_are_unauthorized() {
    let server = TestServer::start().await;
    let opts = server.options(Role::Agent, "fst_not-a-real-token");
    assert_eq!(refused(connect(&opts).await), ErrorCode::Unauthorized);

    let (id, token) = server.token_with_id(Role::Agent, "leaver").await;
    let store = &server.running.shared.store;
    assert!(store.revoke_token(id).await.expect("db"));
    let opts = server.options(Role::Agent, &token);
    assert_eq!(refused(connect(&opts).await), ErrorCode::Unauthorized);
    still_serving(&server).await;
}

/// An expired or revoked token is refused over QUIC and HTTP alike, each with its reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_and_revoked_tokens_are_refused_with_their_reason() {
    let server = TestServer::start().await;
    let store = &server.running.shared.store;
    let (id, expired) = server.token_with_id(Role::Agent, "last-year").await;
    let past = farsight_store::now_micros() - 1;
    store.set_token_expiry(id, past).await.expect("db");
    let (id, revoked) = server.token_with_id(Role::Agent, "gone").await;
    store.revoke_token(id).await.expect("db");

    let http = format!("http://{}/v1/sessions", server.running.http_addr);
    for (token, reason) in [
        (expired, "the token has expired"),
        (revoked, "the token was revoked"),
        ("fst_never-issued".to_string(), "unknown token"),
    ] {
        match connect(&server.options(Role::Agent, &token)).await {
            Err(ClientError::Refused { code, message }) => {
                assert_eq!(code, ErrorCode::Unauthorized);
                assert_eq!(message, reason);
            }
            Err(other) => panic!("expected a typed refusal, got {other}"),
            Ok(_) => panic!("{reason}: connected"),
        }
        let response = reqwest::Client::new()
            .get(&http)
            .bearer_auth(&token)
            .send()
            .await
            .expect("HTTP answers");
        assert_eq!(response.status(), reqwest::StatusCode::UNAUTHORIZED);
        let body: serde_json::Value = response.json().await.expect("JSON error");
        assert_eq!(body["error"], reason);
    }
    still_serving(&server).await;
}

/// A token limited to one session: its holder joins that one and sees only it in the queue;
/// another session, or what spans the installation, is refused with the reason.
#[tokio::test]
async fn a_token_limited_to_one_session_reaches_only_that_session() {
    let server = TestServer::start().await;
    let store = &server.running.shared.store;
    let invited = server.connect(Role::Wearable, "invited-to").await;
    let other = server.connect(Role::Wearable, "not-invited-to").await;
    let (id, guest) = server.token_with_id(Role::Agent, "guest").await;
    store
        .set_token_session(id, invited.session.0 as i64)
        .await
        .expect("db");
    let reason = format!("the token is limited to session {}", invited.session);

    let mut agent = connect(&server.options(Role::Agent, &guest))
        .await
        .expect("connects");
    match agent.join(other.session).await {
        Err(ClientError::Refused { code, message }) => {
            assert_eq!(code, ErrorCode::Unauthorized);
            assert_eq!(message, reason);
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    agent
        .join(invited.session)
        .await
        .expect("joins its session");

    let get = |path: String| {
        reqwest::Client::new()
            .get(server.http(&path))
            .bearer_auth(&guest)
            .send()
    };
    let queue: Vec<serde_json::Value> = get("/v1/sessions".into())
        .await
        .expect("HTTP answers")
        .json()
        .await
        .expect("JSON");
    let ids: Vec<u64> = queue.iter().filter_map(|s| s["id"].as_u64()).collect();
    assert_eq!(ids, vec![invited.session.0]);
    for path in [
        format!("/v1/sessions/{}", other.session),
        "/v1/predictions".to_string(),
    ] {
        let response = get(path.clone()).await.expect("HTTP answers");
        assert_eq!(response.status(), reqwest::StatusCode::FORBIDDEN, "{path}");
        let body: serde_json::Value = response.json().await.expect("JSON");
        assert_eq!(body["error"], reason);
    }
    let own = get(format!("/v1/sessions/{}", invited.session))
        .await
        .expect("HTTP answers");
    assert_eq!(own.status(), reqwest::StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_used_for_another_role_is_refused() {
    let server = TestServer::start().await;
    let token = server.token(Role::Agent, "alice").await;
    let opts = server.options(Role::Wearable, &token);
    assert_eq!(refused(connect(&opts).await), ErrorCode::WrongRole);

    // A wearable cannot annotate, even its own session; its connection stays up.
    let mut wearable = server.connect(Role::Wearable, "glasses").await;
    wearable
        .send(&annotate(wearable.session))
        .await
        .expect("sent");
    assert_eq!(next_error(&mut wearable).await, ErrorCode::WrongRole);
    still_serving(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_sessions_are_refused() {
    let server = TestServer::start().await;
    let theirs = server.connect(Role::Wearable, "theirs").await;

    // Another wearable cannot take over someone else's session.
    let token = server.token(Role::Wearable, "mine").await;
    let mut opts = server.options(Role::Wearable, &token);
    opts.resume = theirs.session;
    assert_eq!(refused(connect(&opts).await), ErrorCode::NotJoined);
    opts.resume = SessionId(12345);
    assert_eq!(refused(connect(&opts).await), ErrorCode::NoSuchSession);

    // An agent cannot annotate a session it has not joined, nor join one that is not there.
    let mut agent = server.connect(Role::Agent, "alice").await;
    agent.send(&annotate(theirs.session)).await.expect("sent");
    assert_eq!(next_error(&mut agent).await, ErrorCode::NotJoined);
    let err = agent
        .join(SessionId(999))
        .await
        .expect_err("no such session");
    assert!(matches!(
        err,
        ClientError::Refused {
            code: ErrorCode::NoSuchSession,
            ..
        }
    ));

    // After joining, the same connection may.
    agent.join(theirs.session).await.expect("joins");
    agent.send(&annotate(theirs.session)).await.expect("sent");
    let store = &server.running.shared.store;
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while store
        .annotations(theirs.session)
        .await
        .expect("db")
        .is_empty()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the annotation was not stored"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    still_serving(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_control_message_closes_only_that_connection() {
    let server = TestServer::start().await;
    let mut agent = server.connect(Role::Agent, "fuzzer").await;
    // An Annotate (type 0x10) whose kind byte, after session, id and author, is 9.
    let mut bad = vec![0x00, 0x10, 0, 0, 0, 25];
    bad.extend_from_slice(&[0; 24]);
    bad.push(9);
    agent.send_raw(&bad).await.expect("sent");
    assert_eq!(next_error(&mut agent).await, ErrorCode::Malformed);
    let closed = tokio::time::timeout(TIMEOUT, agent.quic().closed())
        .await
        .expect("closes");
    assert!(
        matches!(closed, quinn::ConnectionError::ApplicationClosed(ref c) if c.error_code == (ErrorCode::Malformed as u32).into()),
        "{closed}"
    );
    still_serving(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_control_message_is_too_large() {
    let server = TestServer::start().await;
    let mut agent = server.connect(Role::Agent, "big").await;
    // Declares a 1 MiB payload: refused from the header, before the payload is buffered.
    agent
        .send_raw(&[0x00, 0x10, 0x00, 0x10, 0x00, 0x00])
        .await
        .expect("sent");
    assert_eq!(next_error(&mut agent).await, ErrorCode::TooLarge);
    still_serving(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_media_stream_is_stopped_and_the_wearable_keeps_publishing() {
    let server = TestServer::start().await;
    let mut wearable = server.connect(Role::Wearable, "glasses").await;

    // A group that claims a 64 MiB frame.
    let mut stream = wearable.quic().open_uni().await.expect("stream");
    let mut bytes = Vec::new();
    StreamHeader {
        session: wearable.session,
        track: TrackId(0),
        group: GroupSeq(0),
    }
    .encode(&mut bytes);
    let mut object = frame(0, true, 10).to_bytes().to_vec();
    object[OBJECT_HEADER_LEN - 4..OBJECT_HEADER_LEN].copy_from_slice(&(64u32 << 20).to_be_bytes());
    bytes.extend_from_slice(&object[..OBJECT_HEADER_LEN]);
    stream.write_all(&bytes).await.expect("written");
    assert_eq!(next_error(&mut wearable).await, ErrorCode::TooLarge);

    // A group for somebody else's session.
    let mut stream = wearable.quic().open_uni().await.expect("stream");
    let mut bytes = Vec::new();
    StreamHeader {
        session: SessionId(1),
        track: TrackId(0),
        group: GroupSeq(1),
    }
    .encode(&mut bytes);
    assert_eq!(bytes.len(), STREAM_HEADER_LEN);
    stream.write_all(&bytes).await.expect("written");
    assert_eq!(next_error(&mut wearable).await, ErrorCode::NotJoined);

    // A group that starts with a delta frame cannot be decoded: refused, key frame asked.
    let mut publisher = wearable.publisher();
    let mut stream = wearable.quic().open_uni().await.expect("stream");
    let mut bytes = Vec::new();
    StreamHeader {
        session: wearable.session,
        track: TrackId(0),
        group: GroupSeq(2),
    }
    .encode(&mut bytes);
    frame(1, false, 10).encode(&mut bytes);
    stream.write_all(&bytes).await.expect("written");
    assert_eq!(next_error(&mut wearable).await, ErrorCode::Malformed);

    // The same connection still publishes to a watcher.
    let mut agent = server.connect(Role::Agent, "alice").await;
    agent.join(wearable.session).await.expect("joins");
    let mut watcher = agent.watcher();
    tokio::time::sleep(Duration::from_millis(100)).await;
    publisher.send(&frame(5, true, 100)).await.expect("sent");
    let got = tokio::time::timeout(TIMEOUT, watcher.next_object())
        .await
        .expect("in time");
    assert_eq!(got.expect("open").object.frame, FrameSeq(5));
}

/// A bare QUIC connection to the relay, speaking only what a test writes.
async fn raw_connection(server: &TestServer) -> quinn::Connection {
    let opts = server.options(Role::Agent, "unused");
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().expect("addr")).expect("bind");
    endpoint.set_default_client_config(quic_client_config(&opts.trust).expect("config"));
    endpoint
        .connect(opts.server, "localhost")
        .expect("connect")
        .await
        .expect("handshake")
}

/// Every control message the server sends until it finishes the stream.
async fn replies(recv: &mut quinn::RecvStream) -> Vec<ControlMessage> {
    let bytes = tokio::time::timeout(Duration::from_secs(15), recv.read_to_end(1 << 20))
        .await
        .expect("in time")
        .unwrap_or_default();
    let mut decoder = farsight_protocol::ControlDecoder::new();
    decoder.push(&bytes);
    std::iter::from_fn(|| decoder.poll().expect("valid reply")).collect()
}

/// The application code the server closed the connection with.
async fn close_code(conn: &quinn::Connection) -> u64 {
    match tokio::time::timeout(Duration::from_secs(15), conn.closed())
        .await
        .expect("closed in time")
    {
        quinn::ConnectionError::ApplicationClosed(c) => c.error_code.into_inner(),
        other => panic!("closed by {other}"),
    }
}

fn error_codes(messages: &[ControlMessage]) -> Vec<ErrorCode> {
    messages
        .iter()
        .filter_map(|m| match m {
            ControlMessage::Error { code, .. } => Some(*code),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_protocol_version_is_refused() {
    let server = TestServer::start().await;
    let token = server.token(Role::Agent, "old-client").await;
    let conn = raw_connection(&server).await;
    let (mut send, mut recv) = conn.open_bi().await.expect("stream");
    let hello = ControlMessage::Hello {
        version: 99,
        role: Role::Agent,
        token,
        resume: SessionId(0),
    };
    send.write_all(&hello.to_bytes()).await.expect("sent");
    match &replies(&mut recv).await[..] {
        [ControlMessage::Error { code, message }] => {
            assert_eq!(*code, ErrorCode::UnsupportedVersion);
            assert!(message.contains("99"), "{message}");
        }
        other => panic!("expected Error, got {other:?}"),
    }
}

/// One limit for the whole handshake, counted from connecting: a connection that never
/// opens its control stream and one that opens it but never says Hello are both closed
/// with `UnexpectedMessage` after 10 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handshake_has_ten_seconds_from_connecting() {
    let server = TestServer::start().await;
    let start = tokio::time::Instant::now();
    let silent = raw_connection(&server).await;
    let mute = raw_connection(&server).await;
    let (mut send, mut recv) = mute.open_bi().await.expect("stream");
    // A stream is only seen by the server once something is written on it: an unknown
    // message type, which is skipped.
    send.write_all(&[0x77, 0x77, 0, 0, 0, 0])
        .await
        .expect("sent");
    let (silent_code, mute_code, mute_replies) =
        tokio::join!(close_code(&silent), close_code(&mute), replies(&mut recv));
    let waited = start.elapsed();
    assert_eq!(silent_code, ErrorCode::UnexpectedMessage as u64);
    assert_eq!(mute_code, ErrorCode::UnexpectedMessage as u64);
    assert_eq!(error_codes(&mute_replies), [ErrorCode::UnexpectedMessage]);
    assert!(
        waited >= Duration::from_secs(9) && waited < Duration::from_secs(12),
        "{waited:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_message_before_hello_is_skipped() {
    let server = TestServer::start().await;
    let token = server.token(Role::Agent, "tolerant").await;
    let conn = raw_connection(&server).await;
    let (mut send, mut recv) = conn.open_bi().await.expect("stream");
    let mut bytes = vec![0x7f, 0x01, 0, 0, 0, 2, 0xab, 0xcd];
    bytes.extend(
        ControlMessage::Hello {
            version: 1,
            role: Role::Agent,
            token,
            resume: SessionId(0),
        }
        .to_bytes(),
    );
    send.write_all(&bytes).await.expect("sent");
    send.finish().expect("finished");
    let got = replies(&mut recv).await;
    assert!(
        matches!(got[..], [ControlMessage::Welcome { .. }]),
        "{got:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_control_stream_ending_mid_message_is_malformed() {
    let server = TestServer::start().await;
    let token = server.token(Role::Agent, "cut-short").await;
    let hello = ControlMessage::Hello {
        version: 1,
        role: Role::Agent,
        token,
        resume: SessionId(0),
    }
    .to_bytes();
    let join = ControlMessage::Join {
        session: SessionId(1),
    }
    .to_bytes();
    // Cut inside the Hello, then inside a message after Welcome.
    for bytes in [hello[..10].to_vec(), [&hello[..], &join[..4]].concat()] {
        let conn = raw_connection(&server).await;
        let (mut send, mut recv) = conn.open_bi().await.expect("stream");
        send.write_all(&bytes).await.expect("sent");
        send.finish().expect("finished");
        let got = replies(&mut recv).await;
        assert_eq!(error_codes(&got), [ErrorCode::Malformed], "{got:?}");
        assert_eq!(close_code(&conn).await, ErrorCode::Malformed as u64);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_may_not_resume_a_session() {
    let server = TestServer::start().await;
    let token = server.token(Role::Agent, "resumer").await;
    let mut opts = server.options(Role::Agent, &token);
    opts.resume = SessionId(5);
    assert_eq!(refused(connect(&opts).await), ErrorCode::Malformed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watchers_stream_is_stopped_with_wrong_role() {
    let server = TestServer::start().await;
    let mut agent = server.connect(Role::Agent, "streamer").await;
    let mut stream = agent.quic().open_uni().await.expect("stream");
    stream.write_all(&[0x4d; 64]).await.expect("sent");
    assert_eq!(next_error(&mut agent).await, ErrorCode::WrongRole);
    let stopped = tokio::time::timeout(TIMEOUT, stream.stopped())
        .await
        .expect("in time");
    assert_eq!(
        stopped.expect("stopped"),
        Some((ErrorCode::WrongRole as u32).into())
    );
    still_serving(&server).await;
}

/// A wearable sending a watcher's message gets `WrongRole` whatever session it names;
/// only a message it may send, about another session, is `NotJoined`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wearables_refusals_name_the_role_before_the_session() {
    let server = TestServer::start().await;
    let mut wearable = server.connect(Role::Wearable, "glasses").await;
    let own = wearable.session;
    let other = SessionId(own.0 + 1);
    for (msg, code) in [
        (
            ControlMessage::Join { session: other },
            ErrorCode::WrongRole,
        ),
        (annotate(other), ErrorCode::WrongRole),
        (
            ControlMessage::Freeze {
                session: other,
                frame: FrameSeq(1),
            },
            ErrorCode::WrongRole,
        ),
        (
            ControlMessage::KeyframeRequest { session: other },
            ErrorCode::WrongRole,
        ),
        (ControlMessage::Leave { session: own }, ErrorCode::WrongRole),
        (
            ControlMessage::BitrateHint {
                session: own,
                bits_per_second: 1,
            },
            ErrorCode::WrongRole,
        ),
        (
            ControlMessage::Clear { session: other },
            ErrorCode::NotJoined,
        ),
    ] {
        wearable.send(&msg).await.expect("sent");
        assert_eq!(next_error(&mut wearable).await, code, "{msg:?}");
    }
    still_serving(&server).await;
}

/// A bare QUIC connection from `local` (any 127.x.y.z address is loopback on Linux, so each
/// stands for another client address).
async fn raw_connection_from(
    server: &TestServer,
    local: &str,
) -> Result<quinn::Connection, quinn::ConnectionError> {
    let opts = server.options(Role::Agent, "unused");
    let bind = format!("{local}:0").parse().expect("addr");
    let mut endpoint = quinn::Endpoint::client(bind).expect("bind");
    endpoint.set_default_client_config(quic_client_config(&opts.trust).expect("config"));
    endpoint
        .connect(opts.server, "localhost")
        .expect("connect")
        .await
}

/// Signs in on a bare connection; the server's first answer.
async fn sign_in(conn: &quinn::Connection, token: &str) -> ControlMessage {
    let (mut send, mut recv) = conn.open_bi().await.expect("control stream");
    let hello = ControlMessage::Hello {
        version: 1,
        role: Role::Agent,
        token: token.into(),
        resume: SessionId(0),
    };
    send.write_all(&hello.to_bytes()).await.expect("Hello sent");
    let mut decoder = farsight_protocol::ControlDecoder::new();
    let mut buf = vec![0u8; 4096];
    loop {
        if let Some(msg) = decoder.poll().expect("valid reply") {
            return msg;
        }
        let n = tokio::time::timeout(TIMEOUT, recv.read(&mut buf))
            .await
            .expect("an answer in time")
            .expect("readable")
            .expect("an answer before the stream ends");
        decoder.push(&buf[..n]);
    }
}

/// One address that fails sign-in ten times must wait, even with a good token, over QUIC and
/// HTTP alike; another address is served all the while.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_sign_ins_make_one_address_wait_while_another_is_served() {
    let server = TestServer::start().await;
    let good = server.token(Role::Agent, "ada").await;
    for _ in 0..farsight_server::limits::MAX_FAILURES {
        let conn = raw_connection_from(&server, "127.0.0.2")
            .await
            .expect("handshake");
        match sign_in(&conn, "fst_guess").await {
            ControlMessage::Error { code, message } => {
                assert_eq!(
                    (code, message.as_str()),
                    (ErrorCode::Unauthorized, "unknown token")
                );
            }
            other => panic!("expected an error, got {other:?}"),
        }
    }
    let conn = raw_connection_from(&server, "127.0.0.2")
        .await
        .expect("handshake");
    match sign_in(&conn, &good).await {
        ControlMessage::Error { code, message } => {
            assert_eq!(code, ErrorCode::Unauthorized);
            assert!(message.starts_with("too many failed sign-ins"), "{message}");
        }
        other => panic!("expected the address to wait, got {other:?}"),
    }
    let http = format!("http://{}/v1/sessions", server.running.http_addr);
    let from = |ip: &str| {
        reqwest::Client::builder()
            .local_address(ip.parse::<std::net::IpAddr>().expect("ip"))
            .build()
            .expect("client")
    };
    let waiting = from("127.0.0.2")
        .get(&http)
        .bearer_auth(&good)
        .send()
        .await
        .expect("answered");
    assert_eq!(waiting.status(), reqwest::StatusCode::TOO_MANY_REQUESTS);
    assert!(waiting.headers().contains_key("retry-after"));

    let other = raw_connection_from(&server, "127.0.0.1")
        .await
        .expect("handshake");
    assert!(matches!(
        sign_in(&other, &good).await,
        ControlMessage::Welcome { .. }
    ));
    let served = from("127.0.0.1")
        .get(&http)
        .bearer_auth(&good)
        .send()
        .await
        .expect("answered");
    assert_eq!(served.status(), reqwest::StatusCode::OK);
    let metrics = server.running.shared.metrics.render();
    assert!(
        metrics.contains(
            r#"farsight_address_limited_total{transport="quic",limit="failed_sign_ins"} 1"#
        ),
        "{metrics}"
    );
}

/// One address may hold only so many connections that have not signed in; the next is
/// refused before its handshake, another address is served, and a place freed is reused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_holds_a_bounded_number_of_unauthenticated_connections() {
    use farsight_server::limits::MAX_UNAUTHENTICATED;
    let server = TestServer::start().await;
    let mut silent = Vec::new();
    for _ in 0..MAX_UNAUTHENTICATED {
        silent.push(
            raw_connection_from(&server, "127.0.0.3")
                .await
                .expect("within the cap"),
        );
    }
    let refused = raw_connection_from(&server, "127.0.0.3").await;
    assert!(
        matches!(&refused, Err(quinn::ConnectionError::ConnectionClosed(c)) if c.error_code == quinn::TransportErrorCode::CONNECTION_REFUSED),
        "{refused:?}"
    );
    let good = server.token(Role::Agent, "ada").await;
    let other = raw_connection_from(&server, "127.0.0.4")
        .await
        .expect("handshake");
    assert!(matches!(
        sign_in(&other, &good).await,
        ControlMessage::Welcome { .. }
    ));

    // One that signs in frees its place.
    assert!(matches!(
        sign_in(&silent[0], &good).await,
        ControlMessage::Welcome { .. }
    ));
    let again = raw_connection_from(&server, "127.0.0.3")
        .await
        .expect("a place is free");
    assert!(matches!(
        sign_in(&again, &good).await,
        ControlMessage::Welcome { .. }
    ));
    let metrics = server.running.shared.metrics.render();
    assert!(
        metrics.contains(
            r#"farsight_address_limited_total{transport="quic",limit="unauthenticated"} 1"#
        ),
        "{metrics}"
    );
}

/// Sign-ins (and refusals), joins and marks land in the audit log with who did them, which
/// supervisors read over HTTP and agents may not; entries past the retention are removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_log_records_who_signed_in_joined_and_marked() {
    let server = TestServer::start().await;
    let wearable = server.connect(Role::Wearable, "glasses-3").await;
    let mut agent = server.connect(Role::Agent, "Ada").await;
    agent.join(wearable.session).await.expect("joins");
    agent.send(&annotate(wearable.session)).await.expect("sent");
    let erase = ControlMessage::Erase {
        session: wearable.session,
        id: AnnotationId(1),
    };
    agent.send(&erase).await.expect("sent");
    assert_eq!(
        refused(connect(&server.options(Role::Agent, "fst_never-issued")).await),
        ErrorCode::Unauthorized
    );
    let supervisor = server.token(Role::Supervisor, "Sam").await;

    let server = &server;
    let read = |token: String| async move {
        reqwest::Client::new()
            .get(server.http("/v1/audit"))
            .bearer_auth(token)
            .send()
            .await
            .expect("HTTP answers")
    };
    let mut entries = Vec::new();
    for _ in 0..500 {
        entries = read(supervisor.clone())
            .await
            .json::<Vec<serde_json::Value>>()
            .await
            .expect("JSON");
        if entries.iter().any(|e| e["action"] == "erase") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let seen: Vec<(String, String)> = entries
        .iter()
        .rev()
        .map(|e| {
            let field = |k: &str| e[k].as_str().unwrap_or_default().to_string();
            (field("action"), field("actor"))
        })
        .collect();
    let expected = [
        ("sign_in", "glasses-3"),
        ("join", "glasses-3"),
        ("sign_in", "Ada"),
        ("join", "Ada"),
        ("annotate", "Ada"),
        ("erase", "Ada"),
    ];
    for (action, actor) in expected {
        assert!(
            seen.iter().any(|(a, b)| a == action && b == actor),
            "{action} by {actor} missing from {seen:?}"
        );
    }
    let refusal = entries
        .iter()
        .find(|e| e["action"] == "sign_in_refused")
        .expect("the refused sign-in is recorded");
    assert_eq!(refusal["actor"], "127.0.0.1");
    assert!(
        refusal["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with("unknown token")),
        "{refusal}"
    );
    let annotated = entries
        .iter()
        .find(|e| e["action"] == "annotate")
        .expect("annotate");
    assert_eq!(annotated["session"], wearable.session.0);
    assert_eq!(annotated["detail"], "circle mark 1");

    let ada = server.token(Role::Agent, "Ada-2").await;
    assert_eq!(read(ada).await.status(), reqwest::StatusCode::FORBIDDEN);

    let store = &server.running.shared.store;
    let removed = store
        .prune_audit(farsight_store::now_micros() + 1)
        .await
        .expect("db");
    assert!(removed >= expected.len() as u64, "removed {removed}");
    assert_eq!(store.audit_log(10).await.expect("db"), vec![]);
}

/// An invitation is only for a session that is open, for a sensible time, by someone who may
/// open that session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invitations_are_refused_with_their_reason() {
    let server = TestServer::start().await;
    let open = server.connect(Role::Wearable, "open").await.session;
    let ended = server.connect(Role::Wearable, "ended").await.session;
    let store = &server.running.shared.store;
    store.end_session(ended).await.expect("db");
    let agent = server.token(Role::Agent, "Ada").await;
    let (guest_id, guest) = server.token_with_id(Role::Agent, "guest").await;
    store
        .set_token_session(guest_id, open.0 as i64)
        .await
        .expect("db");
    let invite = |token: String, session: u64, body: serde_json::Value| {
        let url = server.http(&format!("/v1/sessions/{session}/invitations"));
        async move {
            let response = reqwest::Client::new()
                .post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .expect("HTTP answers");
            let status = response.status().as_u16();
            let body: serde_json::Value = response.json().await.expect("JSON");
            (status, body)
        }
    };
    let none = serde_json::json!({});
    let (status, body) = invite(agent.clone(), open.0, serde_json::json!({"hours": 2})).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["session"], open.0);
    assert_eq!(body["name"], "guest of Ada");
    let (status, body) = invite(agent.clone(), open.0, serde_json::json!({"hours": 0})).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("hours must be 1 to 72, not 0"))
    );
    let (status, _) = invite(agent.clone(), 424_242, none.clone()).await;
    assert_eq!(status, 404);
    let (status, body) = invite(agent, ended.0, none.clone()).await;
    assert_eq!(status, 409, "{body}");
    let (status, body) = invite(guest, ended.0, none).await;
    assert_eq!(status, 403, "{body}");
}
