//! The 3PCC state machine driven by hand: no sockets, time passed in explicitly.

use super::*;
use crate::message::StartLine;

const T1: Duration = Duration::from_millis(500);

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn params(transport: Transport) -> CallParams {
    CallParams {
        call_id: "c1".into(),
        agent: Party {
            uri: "sip:agent@pbx".into(),
            addr: addr(5070),
            display: "Agent".into(),
        },
        customer: Party {
            uri: "sip:+15551234@trunk".into(),
            addr: addr(5080),
            display: "Grace\r\nHopper".into(),
        },
        reason: "reason ".repeat(100),
        local: addr(5060),
        transport,
        credentials: Some(Credentials {
            username: "farsight".into(),
            password: "pw".into(),
        }),
        timers: Timers {
            t1: T1,
            t2: Duration::from_secs(4),
            no_answer: Duration::from_secs(20),
            max_call: Duration::from_secs(600),
        },
    }
}

fn sent(call: &mut Call) -> Vec<(Role, Message)> {
    std::iter::from_fn(|| call.poll_transmit())
        .map(|t| {
            (
                t.role,
                Message::parse(&t.payload).expect("we send valid SIP"),
            )
        })
        .collect()
}

/// The response a phone would send to `req`.
fn reply(req: &Message, status: u16, body: &str) -> Message {
    let mut m = Message::response(status, "X");
    for v in req.headers("Via") {
        m.push("Via", v.to_string());
    }
    m.push("From", req.header("From").unwrap_or_default().to_string());
    let to = req.header("To").unwrap_or_default();
    let to = if to.contains("tag=") {
        to.to_string()
    } else {
        format!("{to};tag=phone")
    };
    m.push("To", to);
    m.push("Call-ID", req.call_id().unwrap_or_default().to_string());
    m.push("CSeq", req.header("CSeq").unwrap_or_default().to_string());
    m.push("Contact", "<sip:phone@127.0.0.1:7000>");
    if status == 401 {
        m.push(
            "WWW-Authenticate",
            "Digest realm=\"r\", nonce=\"n\", qop=\"auth\"",
        );
    }
    m.body = body.as_bytes().to_vec();
    m
}

fn method(m: &Message) -> Option<&str> {
    m.method().map(Method::as_str)
}

fn only(msgs: Vec<(Role, Message)>) -> (Role, Message) {
    assert_eq!(msgs.len(), 1, "{msgs:#?}");
    msgs.into_iter().next().expect("one")
}

/// Answers the agent with offer "A" and returns the customer INVITE that follows.
fn agent_answers(call: &mut Call, now: Instant) -> Message {
    let (_, invite) = only(sent(call));
    call.handle_input(now, addr(5070), reply(&invite, 200, "offer-A"));
    let (role, inv2) = only(sent(call));
    assert_eq!(role, Role::Customer);
    inv2
}

#[test]
fn udp_invite_is_retransmitted_at_t1_doubling_until_timer_b() {
    let t0 = Instant::now();
    let mut call = Call::new(params(Transport::Udp), t0, 1).expect("valid");
    let (_, first) = only(sent(&mut call));
    let mut at = Vec::new();
    while let Some(wake) = call.poll_timeout() {
        call.handle_timeout(wake);
        for (_, m) in sent(&mut call) {
            if method(&m) == Some("INVITE") {
                assert_eq!(m, first, "a retransmission is the same request");
                at.push(wake - t0);
            }
        }
        if call.outcome().is_some() {
            break;
        }
    }
    let expect: Vec<Duration> = [1, 3, 7, 15, 31, 63].iter().map(|k| T1 * *k).collect();
    assert_eq!(at, expect);
    assert!(matches!(
        call.outcome(),
        Some(Disposition::AgentUnavailable(d)) if matches!(*d, Disposition::Transport(_))
    ));
}

#[test]
fn tcp_invite_is_never_retransmitted() {
    let t0 = Instant::now();
    let mut p = params(Transport::Tcp);
    p.timers.no_answer = Duration::from_secs(60);
    let mut call = Call::new(p, t0, 1).expect("valid");
    sent(&mut call);
    assert_eq!(call.poll_timeout(), Some(t0 + T1 * 64)); // only Timer B
    call.handle_timeout(t0 + T1 * 64);
    assert!(sent(&mut call).is_empty());
    assert!(matches!(
        call.outcome(),
        Some(Disposition::AgentUnavailable(d)) if matches!(*d, Disposition::Transport(_))
    ));
}

#[test]
fn provisional_response_stops_invite_retransmission() {
    let t0 = Instant::now();
    let mut call = Call::new(params(Transport::Udp), t0, 1).expect("valid");
    let (_, invite) = only(sent(&mut call));
    call.handle_input(t0, addr(5070), reply(&invite, 180, ""));
    // Only the no-answer timer remains.
    assert_eq!(call.poll_timeout(), Some(t0 + Duration::from_secs(20)));
}

#[test]
fn flow_i_hands_each_phone_the_others_sdp_and_relays_the_hang_up() {
    let t0 = Instant::now();
    let mut call = Call::new(params(Transport::Udp), t0, 1).expect("valid");
    let inv = agent_answers(&mut call, t0);
    assert_eq!(inv.body, b"offer-A");
    assert_eq!(inv.call_id(), Some("c1-customer"));
    let t1 = t0 + Duration::from_secs(3);
    call.handle_input(t1, addr(5080), reply(&inv, 200, "answer-B"));
    let out = sent(&mut call);
    assert_eq!(out.len(), 2);
    assert_eq!((out[0].0, method(&out[0].1)), (Role::Customer, Some("ACK")));
    assert!(out[0].1.body.is_empty());
    assert_eq!((out[1].0, method(&out[1].1)), (Role::Agent, Some("ACK")));
    assert_eq!(out[1].1.body, b"answer-B");
    // ACK for a 2xx goes to the Contact and carries the phone's tag.
    assert!(
        matches!(&out[1].1.start, StartLine::Request { uri, .. } if uri == "sip:phone@127.0.0.1:7000")
    );
    assert!(
        out[1]
            .1
            .header("To")
            .is_some_and(|t| t.ends_with("tag=phone"))
    );

    // The customer hangs up after 42 s: 200 to them, BYE to the agent.
    let bye = Message::request(Method::Bye, "sip:farsight@127.0.0.1:5060")
        .with("Via", "SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bKbye")
        .with("From", "<sip:+15551234@trunk>;tag=phone")
        .with("To", out[0].1.header("From").unwrap_or_default())
        .with("Call-ID", "c1-customer")
        .with("CSeq", "1 BYE");
    let t2 = t1 + Duration::from_secs(42);
    call.handle_input(t2, addr(5080), bye);
    let out = sent(&mut call);
    assert_eq!(out[0].1.status(), Some(200));
    assert_eq!((out[1].0, method(&out[1].1)), (Role::Agent, Some("BYE")));
    assert_eq!(call.outcome(), None, "waits for the agent's 200");
    call.handle_input(t2, addr(5070), reply(&out[1].1, 200, ""));
    assert_eq!(
        call.outcome(),
        Some(Disposition::Answered {
            talk: Duration::from_secs(42)
        })
    );
}

#[test]
fn retransmitted_2xx_is_acked_again() {
    let t0 = Instant::now();
    let mut call = Call::new(params(Transport::Udp), t0, 1).expect("valid");
    let inv = agent_answers(&mut call, t0);
    let ok = reply(&inv, 200, "answer-B");
    call.handle_input(t0, addr(5080), ok.clone());
    let acks = sent(&mut call);
    call.handle_input(t0, addr(5080), ok);
    let (_, again) = only(sent(&mut call));
    assert_eq!(again, acks[0].1);
}

#[test]
fn no_answer_sends_cancel_then_acks_the_487() {
    let t0 = Instant::now();
    let mut call = Call::new(params(Transport::Udp), t0, 1).expect("valid");
    let inv = agent_answers(&mut call, t0);
    call.handle_input(t0, addr(5080), reply(&inv, 180, ""));
    let deadline = call.poll_timeout().expect("no-answer timer");
    assert_eq!(deadline, t0 + Duration::from_secs(20));
    call.handle_timeout(deadline);
    let (role, cancel) = only(sent(&mut call));
    assert_eq!((role, method(&cancel)), (Role::Customer, Some("CANCEL")));
    assert_eq!(
        cancel.branch(),
        inv.branch(),
        "CANCEL shares the INVITE's branch"
    );
    assert_eq!(cancel.cseq().map(|c| c.seq), inv.cseq().map(|c| c.seq));
    call.handle_input(deadline, addr(5080), reply(&cancel, 200, ""));
    call.handle_input(deadline, addr(5080), reply(&inv, 487, ""));
    let out = sent(&mut call);
    let ack = &out[0].1;
    assert_eq!(method(ack), Some("ACK"));
    assert_eq!(
        ack.branch(),
        inv.branch(),
        "non-2xx ACK is in the INVITE's transaction"
    );
    // The agent, who had answered, is released: declining ACK then BYE.
    assert_eq!(method(&out[1].1), Some("ACK"));
    assert_eq!(method(&out[2].1), Some("BYE"));
    call.handle_input(deadline, addr(5070), reply(&out[2].1, 200, ""));
    assert_eq!(call.outcome(), Some(Disposition::NoAnswer));
}

#[test]
fn agent_no_answer_is_agent_unavailable_and_customer_never_rung() {
    let t0 = Instant::now();
    let mut call = Call::new(params(Transport::Tcp), t0, 1).expect("valid");
    let (_, inv) = only(sent(&mut call));
    call.handle_input(t0, addr(5070), reply(&inv, 183, ""));
    call.handle_timeout(t0 + Duration::from_secs(20));
    let (_, cancel) = only(sent(&mut call));
    call.handle_input(t0, addr(5070), reply(&cancel, 200, ""));
    call.handle_input(t0, addr(5070), reply(&inv, 487, ""));
    let out = sent(&mut call);
    assert!(out.iter().all(|(r, _)| *r == Role::Agent));
    assert_eq!(
        call.outcome(),
        Some(Disposition::AgentUnavailable(Box::new(
            Disposition::NoAnswer
        )))
    );
}

#[test]
fn final_responses_map_to_dispositions() {
    for (status, want) in [
        (486, Disposition::Busy),
        (600, Disposition::Busy),
        (603, Disposition::Declined),
        (404, Disposition::NotFound),
        (484, Disposition::NotFound),
        (604, Disposition::NotFound),
        (502, Disposition::ServerError(502)),
        (488, Disposition::Rejected(488)),
    ] {
        let t0 = Instant::now();
        let mut call = Call::new(params(Transport::Udp), t0, 1).expect("valid");
        let inv = agent_answers(&mut call, t0);
        call.handle_input(t0, addr(5080), reply(&inv, status, ""));
        let out = sent(&mut call);
        assert_eq!(method(&out[0].1), Some("ACK"), "{status} is ACKed");
        let bye = &out[2].1;
        call.handle_input(t0, addr(5070), reply(bye, 200, ""));
        assert_eq!(call.outcome(), Some(want), "{status}");
    }
}

#[test]
fn challenge_is_answered_once_and_a_second_is_auth_failed() {
    let t0 = Instant::now();
    let mut call = Call::new(params(Transport::Udp), t0, 1).expect("valid");
    let (_, inv) = only(sent(&mut call));
    call.handle_input(t0, addr(5070), reply(&inv, 401, ""));
    let out = sent(&mut call);
    assert_eq!(method(&out[0].1), Some("ACK"));
    let retry = &out[1].1;
    assert_eq!(method(retry), Some("INVITE"));
    assert_ne!(retry.branch(), inv.branch());
    assert_eq!(retry.cseq().map(|c| c.seq), Some(2));
    let auth = retry.header("Authorization").expect("credentials sent");
    assert!(auth.starts_with("Digest username=\"farsight\"") && auth.contains("qop=auth"));
    call.handle_input(t0, addr(5070), reply(retry, 401, ""));
    let out = sent(&mut call);
    assert_eq!(out.len(), 1, "only the ACK; no third INVITE");
    assert_eq!(
        call.outcome(),
        Some(Disposition::AgentUnavailable(Box::new(
            Disposition::AuthFailed
        )))
    );
}

#[test]
fn max_call_duration_hangs_up_both_phones() {
    let t0 = Instant::now();
    let mut call = Call::new(params(Transport::Udp), t0, 1).expect("valid");
    let inv = agent_answers(&mut call, t0);
    call.handle_input(t0, addr(5080), reply(&inv, 200, "answer-B"));
    sent(&mut call);
    let end = call.poll_timeout().expect("max call timer");
    assert_eq!(end, t0 + Duration::from_secs(600));
    call.handle_timeout(end);
    let out = sent(&mut call);
    assert_eq!(out.len(), 2);
    for (_, bye) in &out {
        assert_eq!(method(bye), Some("BYE"));
        call.handle_input(end, addr(5070), reply(bye, 200, ""));
    }
    assert_eq!(
        call.outcome(),
        Some(Disposition::Answered {
            talk: Duration::from_secs(600)
        })
    );
}

#[test]
fn agent_invite_shows_who_and_why_on_one_bounded_line() {
    let mut call = Call::new(params(Transport::Udp), Instant::now(), 1).expect("valid");
    let (_, inv) = only(sent(&mut call));
    assert!(inv.body.is_empty(), "flow I: the agent INVITE has no SDP");
    assert_eq!(inv.call_id(), Some("c1-agent"));
    assert!(
        inv.header("From")
            .is_some_and(|f| f.starts_with("\"Grace Hopper\" <sip:+15551234@trunk>"))
    );
    let reason = inv.header("X-Farsight-Reason").expect("reason");
    assert!(reason.len() <= MAX_REASON_BYTES && reason.starts_with("reason reason"));
    assert!(
        inv.header("Subject")
            .is_some_and(|s| s.contains("Grace Hopper"))
    );
}

#[test]
fn bad_uris_and_call_ids_are_refused_before_anything_is_sent() {
    let mut p = params(Transport::Udp);
    p.customer.uri = "sip:x@y>\r\nEvil: 1".into();
    assert!(matches!(
        Call::new(p, Instant::now(), 1),
        Err(RequestError::BadUri(_))
    ));
    let mut p = params(Transport::Udp);
    p.call_id = "a b".into();
    assert!(matches!(
        Call::new(p, Instant::now(), 1),
        Err(RequestError::BadCallId(_))
    ));
}

#[test]
fn sanitize_keeps_one_line_and_cuts_on_a_char_boundary() {
    assert_eq!(sanitize("a\r\nb\tc\u{7}d", 100), "a b c d");
    assert_eq!(sanitize("ééé", 3), "é");
}
