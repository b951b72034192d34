//! End-to-end tests of the SIP 3PCC dialer against real `sipp` processes (Debian package
//! `sip-tester`) playing the agent's and the customer's phones. Scenarios live in tests/sipp/.

#[path = "support/sipp.rs"]
mod sipp;

use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use farsight_sip::{CallRequest, Disposition, Party, SipConfig, Transport, dial};
use sipp::{Phone, free_port};

/// What the agent's phone must be told about a call: whom (From) and why (X-Farsight-Reason),
/// as XML-escaped regular expressions.
struct Expected {
    who: &'static str,
    why: &'static str,
}

/// `request`'s call.
const ADA: Expected = Expected {
    who: "From: &quot;Ada Lovelace&quot; &lt;sip:ada@",
    why: "read live-push docs 9 times Injected: no",
};

/// The call `store_with_a_due_call` plans.
const U1: Expected = Expected {
    who: "From: &quot;u1&quot; &lt;sip:\\+4930123456@",
    why: "payments \\(40%\\): about 5 payments API errors in the last day",
};

fn agent_phone(transport: Transport, expected: Expected) -> Phone {
    Phone::start(
        "agent",
        "agent.xml",
        transport,
        &[("who", expected.who), ("why", expected.why)],
    )
}

fn config(transport: Transport) -> SipConfig {
    SipConfig {
        transport,
        local: "127.0.0.1:0".parse().expect("literal"),
        username: None,
        password: None,
        no_answer: Duration::from_secs(2),
        max_call: Duration::from_secs(10),
        t1: Duration::from_millis(100),
    }
}

fn request(call_id: &str, agent: SocketAddr, customer: SocketAddr) -> CallRequest {
    CallRequest {
        call_id: call_id.to_string(),
        agent: Party {
            uri: format!("sip:agent7@{agent}"),
            addr: agent,
            display: "Agent Seven".into(),
        },
        customer: Party {
            uri: format!("sip:ada@{customer}"),
            addr: customer,
            display: "Ada \"Lovelace".into(),
        },
        reason: "read live-push docs\r\n9 times\r\nInjected: no".into(),
    }
}

/// The SIP message blocks in a sipp trace whose first line starts with `start`.
fn messages_starting(trace: &str, start: &str) -> Vec<String> {
    trace
        .split("\n\n")
        .filter_map(|block| {
            let at = block.find(start)?;
            let line_start = block[..at].rfind('\n').map_or(0, |i| i + 1);
            (block[line_start..at].trim().is_empty()).then(|| block[at..].to_string())
        })
        .collect()
}

fn sdp_session(msg: &str) -> Option<&str> {
    msg.lines().find_map(|l| l.trim().strip_prefix("s="))
}

async fn answered_call_joins_each_side_to_the_others_sdp(transport: Transport) {
    let agent = agent_phone(transport, ADA);
    let customer = Phone::start("customer", "customer_answers.xml", transport, &[]);
    let call = request("join-1", agent.addr, customer.addr);
    let started = Instant::now();
    let d = dial(&config(transport), &call).await;
    assert!(
        matches!(d, Disposition::Answered { talk } if talk >= Duration::from_millis(250)),
        "{d:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    let agent_trace = agent.assert_passed();
    let customer_trace = customer.assert_passed();

    // The customer was offered the agent's SDP; the agent got the customer's answer in the ACK.
    let invites = messages_starting(&customer_trace, "INVITE sip:ada@");
    assert_eq!(invites.len(), 1, "{customer_trace}");
    assert_eq!(sdp_session(&invites[0]), Some("agent-offer-7f3a"));
    let acks = messages_starting(&agent_trace, "ACK sip:agent@");
    assert_eq!(acks.len(), 1, "{agent_trace}");
    assert_eq!(sdp_session(&acks[0]), Some("customer-answer-9c2e"));
    // The two legs use the documented derived Call-IDs.
    assert!(agent_trace.contains("Call-ID: join-1-agent"));
    assert!(customer_trace.contains("Call-ID: join-1-customer"));
    // The customer hung up; the dialer relayed it to the agent.
    assert_eq!(messages_starting(&agent_trace, "BYE ").len(), 1);
}

#[tokio::test]
async fn udp_answered_call_joins_agent_and_customer_media() {
    answered_call_joins_each_side_to_the_others_sdp(Transport::Udp).await;
}

#[tokio::test]
async fn tcp_answered_call_joins_agent_and_customer_media() {
    answered_call_joins_each_side_to_the_others_sdp(Transport::Tcp).await;
}

async fn customer_rejects_with(status: &str, reason: &str) -> (Disposition, String, String) {
    let agent = agent_phone(Transport::Udp, ADA);
    let customer = Phone::start(
        "customer",
        "customer_rejects.xml",
        Transport::Udp,
        &[("status", status), ("reason", reason)],
    );
    let call = request(&format!("reject-{status}"), agent.addr, customer.addr);
    let d = dial(&config(Transport::Udp), &call).await;
    let agent_trace = agent.assert_passed();
    let customer_trace = customer.assert_passed();
    (d, agent_trace, customer_trace)
}

#[tokio::test]
async fn busy_customer_is_busy_and_agent_is_released() {
    let (d, agent_trace, customer_trace) = customer_rejects_with("486", "Busy Here").await;
    assert_eq!(d, Disposition::Busy);
    // The 486 was ACKed, and the agent's answered leg got a declining ACK and a BYE.
    assert_eq!(messages_starting(&customer_trace, "ACK ").len(), 1);
    let acks = messages_starting(&agent_trace, "ACK ");
    assert!(acks[0].contains("m=audio 0 RTP/AVP"), "{}", acks[0]);
    assert_eq!(messages_starting(&agent_trace, "BYE ").len(), 1);
}

#[tokio::test]
async fn declining_customer_is_declined() {
    let (d, ..) = customer_rejects_with("603", "Decline").await;
    assert_eq!(d, Disposition::Declined);
}

#[tokio::test]
async fn unknown_customer_number_is_not_found() {
    let (d, ..) = customer_rejects_with("404", "Not Found").await;
    assert_eq!(d, Disposition::NotFound);
}

#[tokio::test]
async fn trunk_failure_is_a_server_error() {
    let (d, ..) = customer_rejects_with("503", "Service Unavailable").await;
    assert_eq!(d, Disposition::ServerError(503));
}

#[tokio::test]
async fn unanswered_customer_is_cancelled_within_the_no_answer_timeout() {
    let agent = agent_phone(Transport::Udp, ADA);
    let customer = Phone::start("customer", "customer_rings.xml", Transport::Udp, &[]);
    let call = request("noanswer-1", agent.addr, customer.addr);
    let mut cfg = config(Transport::Udp);
    cfg.no_answer = Duration::from_millis(800);
    let started = Instant::now();
    let d = dial(&cfg, &call).await;
    let took = started.elapsed();
    assert_eq!(d, Disposition::NoAnswer);
    assert!(
        took >= Duration::from_millis(800) && took < Duration::from_secs(3),
        "{took:?}"
    );
    let customer_trace = customer.assert_passed();
    assert_eq!(messages_starting(&customer_trace, "CANCEL ").len(), 1);
    agent.assert_passed();
}

#[tokio::test]
async fn digest_challenge_is_answered_with_valid_credentials() {
    let agent = agent_phone(Transport::Udp, ADA);
    let customer = Phone::start("customer", "customer_auth.xml", Transport::Udp, &[]);
    let call = request("auth-1", agent.addr, customer.addr);
    let mut cfg = config(Transport::Udp);
    cfg.username = Some("farsight".into());
    cfg.password = Some("s3cret".into());
    let d = dial(&cfg, &call).await;
    assert!(matches!(d, Disposition::Answered { .. }), "{d:?}");
    let customer_trace = customer.assert_passed();
    let invites = messages_starting(&customer_trace, "INVITE ");
    assert_eq!(invites.len(), 2);
    assert!(invites[1].contains("Authorization: Digest username=\"farsight\""));
    assert!(invites[1].contains("qop=auth"));
    agent.assert_passed();
}

#[tokio::test]
async fn digest_challenge_without_credentials_is_auth_failed() {
    let agent = agent_phone(Transport::Udp, ADA);
    let customer = Phone::start(
        "customer",
        "customer_rejects.xml",
        Transport::Udp,
        &[
            ("status", "407"),
            ("reason", "Proxy Authentication Required"),
        ],
    );
    let call = request("auth-2", agent.addr, customer.addr);
    let d = dial(&config(Transport::Udp), &call).await;
    assert_eq!(d, Disposition::AuthFailed);
    customer.assert_passed();
    agent.assert_passed();
}

/// A UDP relay in front of a phone that drops the first INVITE it sees.
struct LossyRelay {
    addr: SocketAddr,
    invites: Arc<AtomicUsize>,
    first_gap: Arc<std::sync::Mutex<Option<Duration>>>,
}

fn lossy_relay(phone: SocketAddr) -> LossyRelay {
    let front = UdpSocket::bind("127.0.0.1:0").expect("bind relay");
    let back = UdpSocket::bind("127.0.0.1:0").expect("bind relay");
    front
        .set_read_timeout(Some(Duration::from_millis(10)))
        .expect("timeout");
    back.set_read_timeout(Some(Duration::from_millis(10)))
        .expect("timeout");
    let addr = front.local_addr().expect("addr");
    let invites = Arc::new(AtomicUsize::new(0));
    let first_gap = Arc::new(std::sync::Mutex::new(None));
    let (count, gap) = (invites.clone(), first_gap.clone());
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        let mut client: Option<SocketAddr> = None;
        let mut first_at: Option<Instant> = None;
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(20) {
            if let Ok((n, from)) = front.recv_from(&mut buf) {
                client = Some(from);
                if buf[..n].starts_with(b"INVITE ") {
                    let seen = count.fetch_add(1, Ordering::SeqCst);
                    if seen == 0 {
                        first_at = Some(Instant::now());
                        continue; // lost
                    }
                    if seen == 1
                        && let Some(t) = first_at
                    {
                        *gap.lock().expect("lock") = Some(t.elapsed());
                    }
                }
                let _ = back.send_to(&buf[..n], phone);
            }
            if let (Ok((n, _)), Some(c)) = (back.recv_from(&mut buf), client) {
                let _ = front.send_to(&buf[..n], c);
            }
        }
    });
    LossyRelay {
        addr,
        invites,
        first_gap,
    }
}

#[tokio::test]
async fn lost_udp_invite_is_retransmitted_after_t1_and_the_call_completes() {
    let agent = agent_phone(Transport::Udp, ADA);
    let customer = Phone::start("customer", "customer_answers.xml", Transport::Udp, &[]);
    let relay = lossy_relay(agent.addr);
    let mut call = request("lossy-1", agent.addr, customer.addr);
    call.agent.addr = relay.addr;
    let cfg = config(Transport::Udp);
    let d = dial(&cfg, &call).await;
    assert!(matches!(d, Disposition::Answered { .. }), "{d:?}");
    assert_eq!(relay.invites.load(Ordering::SeqCst), 2);
    let gap = relay
        .first_gap
        .lock()
        .expect("lock")
        .expect("retransmitted");
    // The relay polls its two sockets in turn (10 ms each), so its timestamps jitter a little.
    assert!(
        gap >= cfg.t1 - Duration::from_millis(25) && gap < cfg.t1 * 3,
        "retransmitted after {gap:?}, T1 is {:?}",
        cfg.t1
    );
    agent.assert_passed();
    customer.assert_passed();
}

#[tokio::test]
async fn unreachable_agent_over_tcp_is_agent_unavailable() {
    let closed = SocketAddr::from(([127, 0, 0, 1], free_port(Transport::Tcp)));
    let call = request("tcp-down", closed, closed);
    let d = dial(&config(Transport::Tcp), &call).await;
    assert!(
        matches!(&d, Disposition::AgentUnavailable(inner) if matches!(**inner, Disposition::Transport(_))),
        "{d:?}"
    );
}

/// The scheduler places a due call through SIP: the agent's phone learns who and why, the
/// call is joined, and the call record ends `answered` with its Call-ID.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduler_places_a_due_call_through_sip_and_records_it_answered() {
    use farsight_outreach::policy::PolicyConfig;
    use farsight_server::outreach::scheduler::{self, Dialer, SipDialer};

    let agent = agent_phone(Transport::Udp, U1);
    let customer = Phone::start("customer", "customer_answers.xml", Transport::Udp, &[]);
    let dir = tempfile::tempdir().expect("temp dir");
    let store = store_with_a_due_call(&dir.path().join("db")).await;
    let now = jiff::Timestamp::now().as_millisecond();
    let policy = PolicyConfig {
        days: ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
            .map(String::from)
            .to_vec(),
        start: "00:00".into(),
        end: "23:59:59".into(),
        ..PolicyConfig::default()
    }
    .validate()
    .expect("policy");
    let dialer = Dialer::Sip(SipDialer {
        config: config(Transport::Udp),
        agent: Party {
            uri: format!("sip:agent7@{}", agent.addr),
            addr: agent.addr,
            display: "Farsight outreach".into(),
        },
        trunk: customer.addr,
        domain: customer.addr.ip().to_string(),
    });
    let report = scheduler::dial_due(
        &store,
        &policy,
        &dialer,
        "n1",
        farsight_outreach::ids::Millis(now),
    )
    .await
    .expect("dials");
    assert_eq!(report.outcomes.get("answered"), Some(&1), "{report:?}");
    let call = store.calls().await.expect("calls").pop().expect("one call");
    assert_eq!((call.state.as_str(), call.attempts), ("answered", 1));
    let call_id = call.call_id.expect("Call-ID stored");
    let agent_trace = agent.assert_passed();
    customer.assert_passed();
    assert!(agent_trace.contains(&format!("Call-ID: {call_id}-agent")));
}

/// A SQLite store at `path` holding one consenting user, `u1`, and one call to them due now.
async fn store_with_a_due_call(path: &std::path::Path) -> farsight_store::Store {
    use farsight_outreach::calls::NewCall;
    use farsight_outreach::event::{Tier, UserProfile};
    use farsight_store::Store;

    let store = Store::open(&format!("sqlite://{}", path.display()))
        .await
        .expect("store");
    let user = UserProfile {
        user: "u1".into(),
        tier: Tier::Gold,
        tz: "UTC".into(),
        phone: Some("+4930123456".into()),
        consent: true,
        do_not_call: false,
    };
    store.upsert_users(&[user]).await.expect("user");
    store
        .insert_calls(&[NewCall {
            user: "u1".into(),
            topic: "payments".into(),
            probability: 0.4,
            priority: 0.8,
            reasons: "about 5 payments API errors in the last day".into(),
            holdout: false,
            due_at: farsight_outreach::ids::Millis::now() - 1000,
        }])
        .await
        .expect("call");
    store
}

/// A `farsight serve` process, killed (SIGKILL) when dropped, so a failing test leaves none.
struct Served(Child);

impl Served {
    fn kill(mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `farsight serve` with the SIP dialer on a 1 s tick, logging to `log`.
fn serve_dialling(
    data: &std::path::Path,
    config: &std::path::Path,
    log: &std::path::Path,
) -> Served {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("log file");
    Command::new(env!("CARGO_BIN_EXE_farsight"))
        .arg("--data-dir")
        .arg(data)
        .arg("--config")
        .arg(config)
        .args([
            "serve",
            "--quic-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
            "--webtransport-listen",
            "127.0.0.1:0",
        ])
        .env("RUST_LOG", "farsight_server=info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map(Served)
        .expect("serve starts")
}

/// The Call-IDs of the INVITEs a phone received, retransmissions included.
fn invite_call_ids(trace: &str) -> Vec<String> {
    messages_starting(trace, "INVITE sip:")
        .iter()
        .filter_map(|m| {
            m.lines()
                .find_map(|l| l.trim().strip_prefix("Call-ID:"))
                .map(|id| id.trim().to_string())
        })
        .collect()
}

async fn wait_for(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The server is killed (SIGKILL) while the customer's phone rings. Restarted, it ticks on
/// but never dials that call again: its record and Call-ID were committed before the INVITE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_mid_call_restarts_without_dialling_the_call_again() {
    let agent = agent_phone(Transport::Udp, U1);
    let customer = Phone::start("customer", "customer_rings.xml", Transport::Udp, &[]);
    let dir = tempfile::tempdir().expect("temp dir");
    let store = store_with_a_due_call(&dir.path().join("farsight.db")).await;
    let config = dir.path().join("farsight.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[outreach]
days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
start = "00:00"
end = "23:59:59"

[dialer]
kind = "sip"
trunk = "{trunk}"
agent_uri = "sip:agent7@{agent}"
agent_addr = "{agent}"
no_answer_seconds = 30
interval_seconds = 1
"#,
            trunk = customer.addr,
            agent = agent.addr
        ),
    )
    .expect("config");
    let log = dir.path().join("serve.log");
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();

    let server = serve_dialling(dir.path(), &config, &log);
    wait_for(
        "the customer's phone to ring",
        Duration::from_secs(15),
        || !invite_call_ids(&customer.messages()).is_empty(),
    )
    .await;
    server.kill();
    let ticks_before = read_log().matches("outreach planned").count();

    let restarted = serve_dialling(dir.path(), &config, &log);
    wait_for(
        "three ticks of the restarted scheduler",
        Duration::from_secs(15),
        || read_log().matches("outreach planned").count() >= ticks_before + 3,
    )
    .await;
    restarted.kill();

    let call = store.calls().await.expect("calls").pop().expect("one call");
    assert_eq!(
        (call.state.as_str(), call.attempts),
        ("dialing", 1),
        "{call:?}"
    );
    let call_id = call.call_id.expect("Call-ID stored before dialling");
    for (phone, leg) in [(&agent, "agent"), (&customer, "customer")] {
        let ids = invite_call_ids(&phone.messages());
        assert!(!ids.is_empty(), "{leg} never rang");
        assert!(
            ids.iter().all(|id| *id == format!("{call_id}-{leg}")),
            "{leg} was dialled again: {ids:?}\n{}",
            read_log()
        );
    }
}
