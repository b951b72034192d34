//! Dialing benchmark: complete third-party calls per second sustained against sipp phones
//! (the agent's answers, the customer's answers and hangs up at once), with a fixed number
//! of calls in flight. Reference in the same run: sipp calling sipp directly (one plain
//! INVITE–200–ACK–BYE call per attempt, same concurrency), the rate the phones themselves
//! sustain. A 3PCC attempt is two such calls, so half the reference is the ceiling.
//!
//! `cargo bench -p farsight-server --bench dialing`; FARSIGHT_BENCH_CALLS and
//! FARSIGHT_BENCH_IN_FLIGHT set the load.

#[path = "common/mod.rs"]
mod common;
#[path = "../../tests/support/sipp.rs"]
mod sipp;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use farsight_sip::{CallRequest, Disposition, Party, SipConfig, Transport, dial};
use serde_json::json;
use sipp::{Load, Phone, free_port, port_taken};

/// The agent's phone checks nothing about whom it is asked to call, or why.
const ANY_CALL: [(&str, &str); 2] = [("who", "From: "), ("why", "")];

/// Farsight's dialer: `calls` 3PCC calls, `in_flight` at a time.
async fn farsight_rate(calls: usize, in_flight: usize) -> (f64, BTreeMap<String, usize>) {
    let load = bench_load(calls);
    let agent = Phone::start_with("agent", "agent.xml", Transport::Udp, &ANY_CALL, load);
    let customer = Phone::start_with(
        "customer",
        "customer_answers.xml",
        Transport::Udp,
        &[],
        load,
    );
    let config = Arc::new(SipConfig {
        local: "127.0.0.1:0".parse().expect("literal"),
        ..SipConfig::default()
    });
    let gate = Arc::new(tokio::sync::Semaphore::new(in_flight));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(calls);
    for i in 0..calls {
        let permit = gate.clone().acquire_owned().await.expect("semaphore");
        let config = config.clone();
        let call = CallRequest {
            call_id: format!("bench-{i}"),
            agent: Party {
                uri: format!("sip:agent@{}", agent.addr),
                addr: agent.addr,
                display: "Farsight outreach".into(),
            },
            customer: Party {
                uri: format!("sip:+4930{i:07}@{}", customer.addr),
                addr: customer.addr,
                display: format!("u{i}"),
            },
            reason: "payments (40%): about 5 payments API errors in the last day".into(),
        };
        tasks.push(tokio::spawn(async move {
            let d = dial(&config, &call).await;
            drop(permit);
            d
        }));
    }
    let mut outcomes = BTreeMap::new();
    for t in tasks {
        let d = t.await.expect("dial task");
        let name = match d {
            Disposition::Answered { .. } => "answered".to_string(),
            other => format!("{other:?}"),
        };
        *outcomes.entry(name).or_insert(0) += 1;
    }
    let rate = calls as f64 / started.elapsed().as_secs_f64();
    agent.assert_passed();
    customer.assert_passed();
    (rate, outcomes)
}

/// Untraced phones that talk for no time and take `calls` calls.
fn bench_load(calls: usize) -> Load {
    Load {
        calls,
        talk: Duration::ZERO,
        trace: false,
        timeout: Duration::from_secs(300),
    }
}

/// sipp's built-in caller against its built-in callee, same count and concurrency.
fn sipp_rate(calls: usize, in_flight: usize) -> f64 {
    let sipp = |scenario: &str, port: u16| {
        let mut cmd = Command::new("sipp");
        cmd.args(["-sn", scenario, "-i", "127.0.0.1", "-t", "u1"])
            .args(["-p", &port.to_string(), "-m", &calls.to_string()])
            .args(["-d", "0", "-nostdin", "-timeout", "300s", "-timeout_error"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd
    };
    let callee_port = free_port(Transport::Udp);
    let mut callee = sipp("uas", callee_port).spawn().expect("sipp runs");
    while !port_taken(Transport::Udp, callee_port) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let started = Instant::now();
    let status = sipp("uac", free_port(Transport::Udp))
        .args(["-l", &in_flight.to_string(), "-r", "100000"])
        .arg(format!("127.0.0.1:{callee_port}"))
        .status()
        .expect("sipp runs");
    let rate = calls as f64 / started.elapsed().as_secs_f64();
    assert!(status.success(), "sipp caller failed: {status}");
    assert!(
        callee.wait().expect("sipp callee").success(),
        "sipp callee failed"
    );
    rate
}

#[tokio::main]
async fn main() {
    let calls = common::env_or("FARSIGHT_BENCH_CALLS", 20_000);
    let in_flight = common::env_or("FARSIGHT_BENCH_IN_FLIGHT", 50);
    let reference = sipp_rate(calls, in_flight);
    let (rate, outcomes) = farsight_rate(calls, in_flight).await;
    println!(
        "{calls} calls, {in_flight} in flight: Farsight {rate:.0} 3PCC calls/s, sipp→sipp {reference:.0} calls/s (ratio {:.2}); {outcomes:?}",
        rate / reference
    );
    common::write_json(
        "dialing",
        &json!({"date": common::today(), "commit": common::git_commit(), "machine": common::machine(),
            "calls": calls, "in_flight": in_flight, "farsight_calls_per_s": rate,
            "sipp_to_sipp_calls_per_s": reference, "outcomes": outcomes}),
    )
    .expect("writing benchmarks/dialing.json");
    let answered = outcomes.get("answered").copied().unwrap_or(0);
    common::write_section(
        "dialing",
        &format!(
            "## Dialing\n\n`cargo bench -p farsight-server --bench dialing` on {} ({}, commit {}): \
             {calls} calls over SIP/UDP on loopback, {in_flight} in flight, sipp playing the agent's \
             phone (answers with an offer, is hung up with BYE) and the customer's (answers with the \
             agent's offer, hangs up at once). Each Farsight attempt is a full RFC 3725 call: two \
             INVITE transactions, two ACKs, two BYEs. The reference, in the same run, is sipp calling \
             sipp directly with one INVITE, ACK and BYE per call. Each phone process handles the \
             same six messages per call in both runs, and on this machine the sipp processes are \
             what saturate the cores: a ratio near 1 says the dialer keeps pace with the phones, \
             not where its own ceiling lies.\n\n\
             | measure | Farsight | reference (same run) | ratio |\n|---|---|---|---|\n\
             | dial attempts sustained | {rate:.0} calls/s ({answered} of {calls} answered) | sipp→sipp {reference:.0} calls/s | {:.2} |\n",
            common::today(),
            common::machine(),
            common::git_commit(),
            rate / reference
        ),
    )
    .expect("writing BENCHMARKS.md");
}
