//! Proactive calls through the real store, a real HTTP webhook receiver and the real
//! binary: lawful planning, signed webhooks with retries and dispositions, no second dial
//! after a crash, exactly-once dialling by three scheduler processes on one PostgreSQL, and
//! the hold-out report.

mod support;

#[path = "support/postgres.rs"]
mod postgres;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use farsight_outreach::calls::NewCall;
use farsight_outreach::event::{Event, EventKind, Tier, UserProfile};
use farsight_outreach::ids::{CallId, Millis};
use farsight_outreach::policy::{Policy, PolicyConfig};
use farsight_outreach::train::TrainConfig;
use farsight_server::outreach::report;
use farsight_server::outreach::scheduler::{self, Dialer};
use farsight_server::outreach::service::train_from_store;
use farsight_server::outreach::webhook::{WebhookDialer, signature};
use farsight_store::Store;
use jiff::tz::TimeZone;

const DAY: i64 = 86_400_000;
const SECRET: &str = "shared-secret";

/// Every call the receiver accepted, by Call-ID, and how many requests it failed on purpose.
#[derive(Clone, Default)]
struct Receiver {
    calls: Arc<Mutex<HashMap<String, usize>>>,
    fail_first: Arc<Mutex<usize>>,
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: String) -> StatusCode {
    {
        let mut fail = r.fail_first.lock().expect("lock");
        if *fail > 0 {
            *fail -= 1;
            return StatusCode::SERVICE_UNAVAILABLE;
        }
    }
    let header = |k: &str| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let expected = format!(
        "sha256={}",
        signature(SECRET, &header("x-farsight-timestamp"), body.as_bytes())
    );
    if header("x-farsight-signature") != expected {
        return StatusCode::UNAUTHORIZED;
    }
    let call: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let id = call["call_id"].as_str().expect("call_id").to_string();
    *r.calls.lock().expect("lock").entry(id).or_default() += 1;
    StatusCode::ACCEPTED
}

async fn receiver() -> (Receiver, String) {
    let r = Receiver::default();
    let app = axum::Router::new()
        .route("/calls", post(receive))
        .with_state(r.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/calls", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    (r, url)
}

/// Always inside the window, so tests do not depend on the hour they run at.
fn any_time_policy() -> Policy {
    PolicyConfig {
        days: ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
            .map(String::from)
            .to_vec(),
        start: "00:00".into(),
        end: "23:59:59".into(),
        ..PolicyConfig::default()
    }
    .validate()
    .expect("valid")
}

fn profile(user: &str, tz: &str) -> UserProfile {
    UserProfile {
        user: user.into(),
        tier: Tier::Gold,
        tz: tz.into(),
        phone: Some("+4930123456".into()),
        consent: true,
        do_not_call: false,
    }
}

fn due_call(user: &str, due_at: Millis) -> NewCall {
    NewCall {
        user: user.into(),
        topic: "payments".into(),
        probability: 0.4,
        priority: 0.8,
        reasons: "about 5 payments API errors in the last day".into(),
        holdout: false,
        due_at,
    }
}

fn now() -> Millis {
    Millis::now()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planned_calls_respect_window_consent_do_not_call_and_holdout() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(&format!("sqlite://{}", dir.path().join("db").display()))
        .await
        .expect("store");
    let users = support::store_simulated_history(&store, 400, 70, 3).await;
    train_from_store(&store, &TrainConfig::default(), None)
        .await
        .expect("model");

    let mut policy = PolicyConfig {
        min_probability: 0.0,
        daily_budget: 10_000,
        holdout_fraction: 0.2,
        ..PolicyConfig::default()
    }
    .validate()
    .expect("valid");
    policy.capacity_per_hour.insert("default".into(), 10_000);
    // A Tuesday at 03:00 UTC: day time in Asia, night in the Americas.
    let at = "2026-11-24T03:00:00Z"
        .parse::<jiff::Timestamp>()
        .expect("time")
        .as_millisecond();
    let report = scheduler::plan(&store, &policy, Millis(at))
        .await
        .expect("plans");
    assert!(report.planned > 0 && report.holdout_twins > 0, "{report:?}");

    let profiles: HashMap<String, UserProfile> =
        users.iter().map(|u| (u.user.clone(), u.clone())).collect();
    let calls = store.calls().await.expect("calls");
    let groups = store.holdout_groups(&[], |_| false).await.expect("groups");
    for call in &calls {
        let p = &profiles[call.user.as_str()];
        let tz = TimeZone::get(&p.tz).expect("zone");
        assert!(
            policy.in_window(&tz, call.due_at),
            "{} due outside {}'s window",
            call.id,
            p.tz
        );
        if call.holdout {
            assert_eq!(call.state, "holdout");
            assert!(groups[call.user.as_str()], "twins only for hold-out users");
        } else {
            assert!(
                !groups[call.user.as_str()],
                "no hold-out user is planned a call"
            );
            assert!(
                p.consent && !p.do_not_call && p.phone.is_some(),
                "{} may not be called",
                p.user
            );
        }
    }
    // A second pass plans nothing new for pairs already planned.
    let again = scheduler::plan(&store, &policy, Millis(at))
        .await
        .expect("plans");
    assert_eq!(again.planned, 0, "{again:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_is_signed_retried_and_its_dispositions_drive_retries() {
    let server = support::TestServer::start().await;
    let store = &server.running.shared.store;
    let (receiver, url) = receiver().await;
    *receiver.fail_first.lock().expect("lock") = 1;
    store
        .upsert_users(&[profile("u1", "Europe/Berlin")])
        .await
        .expect("user");
    store
        .insert_calls(&[due_call("u1", now() - 1000)])
        .await
        .expect("call");

    let mut webhook = WebhookDialer::new(url, SECRET.into());
    webhook.backoff = std::time::Duration::from_millis(50);
    let policy = any_time_policy();
    let report = scheduler::dial_due(store, &policy, &Dialer::Webhook(webhook), "n1", now())
        .await
        .expect("dials");
    assert_eq!(report.outcomes.get("placed"), Some(&1), "{report:?}");
    assert_eq!(
        receiver.calls.lock().expect("lock").len(),
        1,
        "posted once after one 503"
    );
    let call = store.calls().await.expect("calls").pop().expect("one call");
    assert_eq!((call.state.as_str(), call.attempts), ("placed", 1));

    // The platform reports busy: the call is retried later; then answered.
    let token = server.token(farsight_protocol::Role::Agent, "x").await;
    let (_, service) = store
        .create_token(farsight_store::TokenRole::Service, "cc")
        .await
        .expect("token");
    let client = reqwest::Client::new();
    let dispose = |id: CallId, d: &str, token: &str| {
        client
            .post(server.http(&format!("/v1/calls/{id}/disposition")))
            .bearer_auth(token)
            .json(&serde_json::json!({"disposition": d}))
            .send()
    };
    assert_eq!(
        dispose(call.id, "busy", &token)
            .await
            .expect("request")
            .status()
            .as_u16(),
        403
    );
    let busy: serde_json::Value = dispose(call.id, "busy", &service)
        .await
        .expect("request")
        .json()
        .await
        .expect("JSON");
    assert_eq!(busy["state"], "retry");
    assert!(
        busy["due_at"].as_i64().expect("due") > (now() + 50 * 60_000).0,
        "backs off an hour"
    );
    let again = dispose(call.id, "answered", &service)
        .await
        .expect("request");
    assert_eq!(
        again.status().as_u16(),
        409,
        "only a placed call takes a disposition"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_interrupted_by_a_crash_is_never_dialled_again() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(&format!("sqlite://{}", dir.path().join("db").display()))
        .await
        .expect("store");
    store
        .upsert_users(&[profile("u1", "Asia/Tokyo")])
        .await
        .expect("user");
    store
        .insert_calls(&[due_call("u1", now() - 1000)])
        .await
        .expect("call");
    // A scheduler claims the call (its Call-ID is stored) and dies before the outcome.
    let claimed = store
        .claim_due_calls(now(), 10, "crashed")
        .await
        .expect("claims");
    assert_eq!(claimed.len(), 1);
    let call_id = store.calls().await.expect("calls")[0].call_id.clone();
    assert_eq!(
        call_id.as_deref(),
        Some(claimed[0].call_id.as_str()),
        "Call-ID written before dialling"
    );

    let (receiver, url) = receiver().await;
    let dialer = Dialer::Webhook(WebhookDialer::new(url, SECRET.into()));
    let later = now() + 11 * 60_000;
    let report = scheduler::dial_due(&store, &any_time_policy(), &dialer, "n2", later)
        .await
        .expect("dials");
    assert_eq!((report.dialled, report.interrupted), (0, 1));
    assert!(
        receiver.calls.lock().expect("lock").is_empty(),
        "not dialled twice"
    );
    assert_eq!(store.calls().await.expect("calls")[0].state, "interrupted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_scheduler_processes_dial_each_call_exactly_once_on_postgres() {
    let pg = postgres::PgCluster::start();
    let store = Store::open(&pg.url()).await.expect("store");
    let users: Vec<UserProfile> = (0..1000)
        .map(|i| profile(&format!("u{i}"), "UTC"))
        .collect();
    store.upsert_users(&users).await.expect("users");
    let calls: Vec<NewCall> = users
        .iter()
        .map(|u| due_call(&u.user, now() - 1000))
        .collect();
    store.insert_calls(&calls).await.expect("calls");

    let (receiver, url) = receiver().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("farsight.toml");
    std::fs::write(
        &config,
        format!(
            "[outreach]\ndays = [\"mon\", \"tue\", \"wed\", \"thu\", \"fri\", \"sat\", \"sun\"]\nstart = \"00:00\"\nend = \"23:59:59\"\n\n[dialer]\nkind = \"webhook\"\nurl = \"{url}\"\nsecret = \"{SECRET}\"\n"
        ),
    )
    .expect("config");
    let bin = env!("CARGO_BIN_EXE_farsight");
    // Three processes, each running passes until nothing is left to dial.
    let nodes: Vec<_> = (1..=3)
        .map(|n| {
            let (config, url) = (config.clone(), pg.url());
            std::thread::spawn(move || {
                for _ in 0..40 {
                    let out = std::process::Command::new(bin)
                        .args(["--database-url", &url, "--config"])
                        .arg(&config)
                        .args(["outreach", "run-once", "--node", &format!("n{n}")])
                        .env("RUST_LOG", "error")
                        .output()
                        .expect("runs");
                    assert!(
                        out.status.success(),
                        "{}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                    let report: serde_json::Value =
                        serde_json::from_slice(&out.stdout).expect("JSON");
                    if report["dialled"]["dialled"] == 0 {
                        break;
                    }
                }
            })
        })
        .collect();
    for n in nodes {
        n.join().expect("node finished");
    }
    let posted = receiver.calls.lock().expect("lock").clone();
    assert_eq!(posted.len(), 1000, "every call dialled");
    assert!(posted.values().all(|n| *n == 1), "none dialled twice");
    let stored = store.calls().await.expect("calls");
    assert!(
        stored
            .iter()
            .all(|c| c.state == "placed" && c.attempts == 1)
    );
    let by_node = stored.iter().fold(HashMap::new(), |mut m, c| {
        *m.entry(c.claimed_by.clone().unwrap_or_default())
            .or_insert(0) += 1;
        m
    });
    assert!(by_node.len() >= 2, "the work was shared: {by_node:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_compares_called_users_with_their_holdout_twins() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(&format!("sqlite://{}", dir.path().join("db").display()))
        .await
        .expect("store");
    let t0 = now() - 40 * DAY;
    let mut calls = Vec::new();
    let mut contacts = Vec::new();
    // 200 called users, 20 of whom contact support within 14 days; 200 hold-out twins, 40.
    for i in 0..400 {
        let user = format!("u{i}");
        let holdout = i >= 200;
        calls.push(NewCall {
            holdout,
            ..due_call(&user, t0)
        });
        let contacted = if holdout { i < 240 } else { i < 20 };
        if contacted {
            contacts.push(Event {
                id: format!("c{i}"),
                user: user.clone(),
                ts: (t0 + 5 * DAY).0,
                kind: EventKind::SupportContact,
                topic: "payments".into(),
                attrs: Default::default(),
            });
        }
    }
    store.insert_calls(&calls).await.expect("calls");
    store.ingest_events(&contacts).await.expect("contacts");
    let (receiver, url) = receiver().await;
    let dialer = Dialer::Webhook(WebhookDialer::new(url, SECRET.into()));
    scheduler::dial_due(&store, &any_time_policy(), &dialer, "n", t0)
        .await
        .expect("dials");
    for _ in 0..3 {
        scheduler::dial_due(&store, &any_time_policy(), &dialer, "n", t0)
            .await
            .expect("dials");
    }
    assert_eq!(receiver.calls.lock().expect("lock").len(), 200);

    let r = report::build(&store, now()).await.expect("report");
    assert_eq!((r.called.pairs, r.called.contacted), (200, 20));
    assert_eq!((r.holdout.pairs, r.holdout.contacted), (200, 40));
    assert!((r.reduction.expect("defined") - 0.5).abs() < 1e-9);
    let (lo, hi) = r.reduction_ci.expect("interval");
    assert!(lo < 0.5 && 0.5 < hi && lo > 0.0, "({lo}, {hi})");
    assert!(farsight_outreach::report::render(&r).contains("reduction 50.0%"));
    let png = dir.path().join("report.png");
    report::chart(&r, &png).expect("chart");
    let bytes = std::fs::read(&png).expect("png");
    assert_eq!(&bytes[1..4], b"PNG");
}
