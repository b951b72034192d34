//! Proactive outreach, prediction half, through the real HTTP API and storage: idempotent
//! ingest, rows rejected by number, features equal to a recomputation, a model that beats
//! the frequency baseline, and the same storage paths on PostgreSQL.

mod support;

#[path = "support/postgres.rs"]
mod postgres;

use std::collections::HashMap;

use farsight_outreach::event::{Event, EventKind, Tier};
use farsight_outreach::features::{Signal, TopicState};
use farsight_outreach::train::TrainConfig;
use farsight_protocol::Role;
use farsight_server::ServeConfig;
use farsight_server::outreach::service::{current_predictions, train_from_store};
use farsight_store::TokenRole;
use postgres::PgCluster;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use support::TestServer;

const DAY: i64 = 86_400_000;

async fn server_on(url: Option<String>) -> TestServer {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = ServeConfig::ephemeral(dir.path());
    if let Some(url) = url {
        config.database_url = url;
    }
    TestServer::start_in(dir, config).await
}

async fn service_token(server: &TestServer) -> String {
    let (_, secret) = server
        .running
        .shared
        .store
        .create_token(TokenRole::Service, "platform")
        .await
        .expect("token");
    secret
}

async fn post(server: &TestServer, path: &str, token: &str, body: String) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(server.http(path))
        .bearer_auth(token)
        .body(body)
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn ndjson(rows: &[Value]) -> String {
    rows.iter().map(|r| format!("{r}\n")).collect()
}

fn doc_view(id: &str, user: &str, ts: i64) -> Value {
    json!({"id": id, "user": user, "ts": ts, "kind": "doc_view", "topic": "live-streaming"})
}

async fn retried_batch_is_counted_once(url: Option<String>) {
    let server = server_on(url).await;
    let token = service_token(&server).await;
    let rows: Vec<Value> = (0..50)
        .map(|i| doc_view(&format!("e{i}"), "u1", i * 1000))
        .collect();
    let (status, first) = post(&server, "/v1/events", &token, ndjson(&rows)).await;
    assert_eq!(
        (status, &first["accepted"], &first["duplicates"]),
        (200, &json!(50), &json!(0))
    );
    let (status, again) = post(&server, "/v1/events", &token, ndjson(&rows)).await;
    assert_eq!(
        (status, &again["accepted"], &again["duplicates"]),
        (200, &json!(0), &json!(50))
    );

    let store = &server.running.shared.store;
    assert_eq!(store.event_count().await.expect("count"), 50);
    let rows = store.topic_rows().await.expect("rows");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].state.events, 50, "features saw each event once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retried_batch_is_counted_once_on_sqlite() {
    retried_batch_is_counted_once(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retried_batch_is_counted_once_on_postgres() {
    let pg = PgCluster::start();
    retried_batch_is_counted_once(Some(pg.url())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_rows_are_rejected_by_number_and_the_rest_kept() {
    let server = server_on(None).await;
    let token = service_token(&server).await;
    let body = [
        doc_view("a", "u1", 1_000).to_string(),
        String::new(),
        r#"{"id": "b", "user": "u1", "ts": 2000, "kind": "page_view", "topic": "maps"}"#.into(),
        "{not json".into(),
        doc_view("c", "u2", 3_000).to_string(),
    ]
    .join("\n");
    let (status, report) = post(&server, "/v1/events", &token, body).await;
    assert_eq!(status, 200);
    assert_eq!(report["accepted"], 2);
    let rejected = report["rejected"].as_array().expect("list");
    assert_eq!(rejected.len(), 2);
    assert_eq!(rejected[0]["row"], 3);
    assert!(
        rejected[0]["reason"]
            .as_str()
            .expect("text")
            .contains("page_view")
    );
    assert_eq!(rejected[1]["row"], 4);
    assert_eq!(
        server
            .running
            .shared
            .store
            .event_count()
            .await
            .expect("count"),
        2
    );
    let metrics = &server.running.shared.metrics;
    assert_eq!(
        (metrics.events_accepted.get(), metrics.rows_rejected.get()),
        (2, 2)
    );

    // Every row bad: nothing stored, 422. A JSON array numbers rows by position.
    let (status, report) = post(&server, "/v1/events", &token, r#"[{"id": "x"}, 7]"#.into()).await;
    assert_eq!(status, 422);
    assert_eq!(report["rejected"][1]["row"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_service_tokens_post_events_and_bodies_are_bounded() {
    let server = server_on(None).await;
    let agent = server.token(Role::Agent, "alice").await;
    let body = ndjson(&[doc_view("a", "u1", 1)]);
    assert_eq!(
        post(&server, "/v1/events", &agent, body.clone()).await.0,
        403
    );
    assert_eq!(post(&server, "/v1/events", "fst_nope", body).await.0, 401);
    let token = service_token(&server).await;
    let huge = "x".repeat(17 * 1024 * 1024);
    assert_eq!(post(&server, "/v1/events", &token, huge).await.0, 413);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_profiles_are_validated_and_stored() {
    let server = server_on(None).await;
    let token = service_token(&server).await;
    let client = reqwest::Client::new();
    let put = |body: Value| {
        client
            .put(server.http("/v1/users/u7"))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    let ok = put(
        json!({"tier": "gold", "tz": "Europe/Berlin", "phone": "+4930123456", "consent": true}),
    )
    .await
    .expect("request");
    assert_eq!(ok.status().as_u16(), 200);
    let bad = put(json!({"tz": "Mars/Base"})).await.expect("request");
    assert_eq!(bad.status().as_u16(), 400);
    let stored = server
        .running
        .shared
        .store
        .user("u7")
        .await
        .expect("db")
        .expect("stored");
    assert_eq!(
        (stored.tz.as_str(), stored.consent, stored.do_not_call),
        ("Europe/Berlin", true, false)
    );
}

/// From-scratch feature states: every event of each pair, in time order.
fn recompute(events: &[Event]) -> HashMap<(String, String), TopicState> {
    let mut sorted: Vec<&Event> = events.iter().collect();
    sorted.sort_by_key(|e| e.ts);
    let mut states: HashMap<(String, String), TopicState> = HashMap::new();
    for e in sorted {
        if let Some(signal) = Signal::of(e.kind) {
            states
                .entry((e.user.clone(), e.topic.clone()))
                .or_default()
                .observe(signal, e.ts);
        }
    }
    states
}

async fn features_match_recomputation_after_random_interleaving(url: Option<String>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let kinds = [
        EventKind::DocView,
        EventKind::ApiError,
        EventKind::FeatureUse,
        EventKind::SupportContact,
    ];
    let events: Vec<Event> = (0..600)
        .map(|i| Event {
            id: format!("e{i}"),
            user: format!("u{}", rng.random_range(0..5)),
            ts: 1_790_000_000_000 + rng.random_range(0..40 * DAY),
            kind: kinds[rng.random_range(0..kinds.len())],
            topic: ["maps", "payments", "push"][rng.random_range(0..3)].into(),
            attrs: Default::default(),
        })
        .collect();
    let expected = recompute(&events);

    let server = server_on(url).await;
    let store = &server.running.shared.store;
    let mut shuffled = events.clone();
    shuffled.shuffle(&mut rng);
    // Random batch sizes, and a few retries of earlier rows mixed in.
    let mut at = 0;
    while at < shuffled.len() {
        let n = rng.random_range(1..80).min(shuffled.len() - at);
        let mut batch = shuffled[at..at + n].to_vec();
        if at > 0 {
            batch.push(shuffled[rng.random_range(0..at)].clone());
        }
        store.ingest_events(&batch).await.expect("ingest");
        at += n;
    }
    let stored = store.topic_rows().await.expect("rows");
    assert_eq!(stored.len(), expected.len());
    for row in stored {
        let want = &expected[&(row.user.clone(), row.topic.clone())];
        let got = &row.state;
        assert_eq!(
            (got.events, got.reference_ms, got.last_ms),
            (want.events, want.reference_ms, want.last_ms)
        );
        for (g, w) in got
            .decayed
            .iter()
            .flatten()
            .zip(want.decayed.iter().flatten())
        {
            assert!(
                (g - w).abs() <= 1e-9 * w.abs().max(1.0),
                "{} {}: {g} vs {w}",
                row.user,
                row.topic
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn features_match_recomputation_after_random_interleaving_on_sqlite() {
    features_match_recomputation_after_random_interleaving(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn features_match_recomputation_after_random_interleaving_on_postgres() {
    let pg = PgCluster::start();
    features_match_recomputation_after_random_interleaving(Some(pg.url())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_trained_on_simulated_history_beats_the_frequency_baseline() {
    let server = server_on(None).await;
    let store = &server.running.shared.store;
    let users = support::store_simulated_history(store, 1500, 84, 11).await;

    let trained = train_from_store(store, &TrainConfig::default(), None)
        .await
        .expect("trains");
    let (model, baseline) = (&trained.report.test, &trained.report.baseline);
    let report = serde_json::to_string_pretty(&trained.report).expect("JSON");
    assert!(
        model.auc > baseline.auc + 0.03,
        "model vs frequency baseline: {report}"
    );
    assert!(
        model.precision_at_1pct > 3.0 * model.base_rate,
        "top 1% lift: {report}"
    );
    assert!(
        model.brier < model.base_rate * (1.0 - model.base_rate),
        "better than the base rate"
    );

    // The HTTP API lists the highest needs first, each with reasons in words.
    let agent = server.token(Role::Agent, "alice").await;
    let response = reqwest::Client::new()
        .get(server.http("/v1/predictions?top=25"))
        .bearer_auth(&agent)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 200);
    let listed: Vec<Value> = response.json().await.expect("JSON");
    assert_eq!(listed.len(), 25);
    let p: Vec<f64> = listed
        .iter()
        .map(|p| p["probability"].as_f64().expect("number"))
        .collect();
    assert!(p.windows(2).all(|w| w[0] >= w[1]), "sorted by need");
    assert!(
        listed
            .iter()
            .all(|p| !p["reasons"].as_array().expect("list").is_empty())
    );
    let same = current_predictions(store, 25, None).await.expect("scores");
    assert_eq!(same[0].user, listed[0]["user"].as_str().expect("user"));

    // Assist requests from wearables of known users are queued platinum first, each with
    // its user's tier and most likely need as the skill.
    let tier_of = |t: Tier| {
        users
            .iter()
            .find(|u| u.tier == t)
            .expect("the simulator has every tier")
            .user
            .clone()
    };
    let (free, platinum) = (tier_of(Tier::Free), tier_of(Tier::Platinum));
    let mut wearables = Vec::new();
    for user in [&free, &platinum] {
        let (record, secret) = store
            .create_token(Role::Wearable, &format!("glasses of {user}"))
            .await
            .expect("token");
        store
            .set_token_subject(record.id, user)
            .await
            .expect("subject");
        let options = server.options(Role::Wearable, &secret);
        wearables.push(farsight_client::connect(&options).await.expect("connects"));
    }
    let queue: Vec<Value> = reqwest::Client::new()
        .get(server.http("/v1/sessions"))
        .bearer_auth(&agent)
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("JSON");
    let same_all = current_predictions(store, usize::MAX, None)
        .await
        .expect("scores");
    let row = |i: usize| (queue[i]["tier"].clone(), queue[i]["skill"].clone());
    assert_eq!(queue.len(), 2, "{queue:?}");
    assert_eq!(
        queue[0]["name"],
        format!("glasses of {platinum}"),
        "platinum first, though newer"
    );
    assert_eq!(row(0).0, "platinum");
    assert_eq!(row(1).0, "free");
    for (i, user) in [(0, &platinum), (1, &free)] {
        let expected = same_all
            .iter()
            .find(|p| &p.user == user)
            .map(|p| p.topic.clone());
        assert_eq!(row(i).1.as_str().map(String::from), expected, "{user}");
    }
}

fn sdk(id: &str, ts: i64, version: &str) -> Event {
    Event {
        id: id.into(),
        user: "u1".into(),
        ts,
        kind: EventKind::SdkVersion,
        topic: String::new(),
        attrs: json!({"version": version})
            .as_object()
            .expect("object")
            .clone(),
    }
}

async fn sdk_version_keeps_the_newest_report_and_when_it_changed(url: Option<String>) {
    let server = server_on(url).await;
    let store = &server.running.shared.store;
    let seen = Event {
        kind: EventKind::DocView,
        topic: "push".into(),
        ..sdk("d", 0, "0.0.0")
    };
    store
        .ingest_events(&[seen, sdk("a", 10 * DAY, "3.1.0")])
        .await
        .expect("ingest");
    // A later batch upgrades; an old report arriving late changes nothing.
    store
        .ingest_events(&[sdk("b", 20 * DAY, "3.2.0"), sdk("c", 25 * DAY, "3.2.0")])
        .await
        .expect("ingest");
    store
        .ingest_events(&[sdk("old", 5 * DAY, "2.9.0")])
        .await
        .expect("ingest");
    let row = &store.topic_rows().await.expect("rows")[0];
    assert_eq!(row.sdk_version.map(|v| v.to_string()), Some("3.2.0".into()));
    assert_eq!(
        row.sdk_upgraded_at,
        20 * DAY,
        "upgraded when 3.2.0 was first reported"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_version_keeps_the_newest_report_and_when_it_changed_on_sqlite() {
    sdk_version_keeps_the_newest_report_and_when_it_changed(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_version_keeps_the_newest_report_and_when_it_changed_on_postgres() {
    let pg = PgCluster::start();
    sdk_version_keeps_the_newest_report_and_when_it_changed(Some(pg.url())).await;
}
