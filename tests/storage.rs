//! Storage on both backends: every scenario runs once on the embedded SQLite file and once
//! on a throw-away PostgreSQL cluster, through the store's API and end to end through QUIC,
//! a server restart and the HTTP API.

mod support;

#[path = "support/postgres.rs"]
mod postgres;

use std::time::Duration;

use farsight_client::connect;
use farsight_protocol::control::{DepthSource, Participant};
use farsight_protocol::{
    Annotate, AnnotationId, AnnotationKind, ControlMessage, FrameSeq, ParticipantId, Role,
    SessionId, Style,
};
use farsight_server::ServeConfig;
use farsight_store::{Actor, AuditAction, Backend, Store, StoredAnnotation, hash_token};
use postgres::PgCluster;
use sqlx::Row;
use support::{TIMEOUT, TestServer, frame};

/// A database URL for an SQLite file in `dir`.
fn sqlite_url(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}", dir.path().join("farsight.db").display())
}

async fn open(url: &str) -> Store {
    Store::open(url).await.expect("store opens and migrates")
}

// --- tokens ---------------------------------------------------------------------------

async fn tokens_are_stored_hashed_and_revocable(url: &str) {
    let store = open(url).await;
    let (agent, agent_secret) = store
        .create_token(Role::Agent, "Ada (support)")
        .await
        .expect("agent token");
    let (wearable, wearable_secret) = store
        .create_token(Role::Wearable, "pump-7 glasses")
        .await
        .expect("wearable token");
    assert_eq!(agent.name, "Ada (support)");
    assert_eq!(agent.role, Role::Agent);
    assert_eq!(agent.revoked_at, None);
    assert_ne!(agent_secret, wearable_secret);

    // Each secret finds its own token, and only a created secret finds anything.
    let verify = |secret: String| {
        let store = store.clone();
        async move { store.verify_token(&secret).await.expect("verify") }
    };
    assert_eq!(verify(agent_secret.clone()).await, Some(agent.clone()));
    assert_eq!(
        verify(wearable_secret.clone()).await,
        Some(wearable.clone())
    );
    assert_eq!(verify(format!("{agent_secret}0")).await, None);
    assert_eq!(verify(hash_token(&agent_secret)).await, None);
    assert_eq!(verify(String::new()).await, None);

    // The listing shows both tokens and never a secret.
    let mut listed = store.list_tokens().await.expect("list");
    listed.sort_by_key(|t| t.id);
    let mut expected = vec![agent.clone(), wearable.clone()];
    expected.sort_by_key(|t| t.id);
    assert_eq!(listed, expected);
    let json = serde_json::to_string(&listed).expect("records serialise");
    for secret in [&agent_secret, &wearable_secret] {
        assert!(
            !json.contains(secret.as_str()),
            "listing shows a secret: {json}"
        );
    }

    // What lies in the table is the hash; no stored field holds a secret.
    let mut stored_hashes = Vec::new();
    for row in raw_rows(url, "SELECT id, name, role, hash FROM tokens").await {
        let id: i64 = row.try_get("id").expect("id");
        let texts: Vec<String> = ["name", "role", "hash"]
            .iter()
            .map(|c| row.try_get(*c).expect("text column"))
            .collect();
        for text in &texts {
            for secret in [&agent_secret, &wearable_secret] {
                assert!(
                    !text.contains(secret.as_str()),
                    "token {id} stores a secret"
                );
            }
        }
        stored_hashes.push((id, texts[2].clone()));
    }
    stored_hashes.sort();
    let mut expected_hashes = vec![
        (agent.id, hash_token(&agent_secret)),
        (wearable.id, hash_token(&wearable_secret)),
    ];
    expected_hashes.sort();
    assert_eq!(stored_hashes, expected_hashes);

    // Revoking shuts out that token only, is recorded, and happens once.
    assert!(store.revoke_token(agent.id).await.expect("revoke"));
    assert_eq!(verify(agent_secret.clone()).await, None);
    assert_eq!(
        verify(wearable_secret.clone()).await,
        Some(wearable.clone())
    );
    let revoked = store
        .list_tokens()
        .await
        .expect("list")
        .into_iter()
        .find(|t| t.id == agent.id)
        .expect("a revoked token is still listed");
    assert!(
        revoked.revoked_at.is_some_and(|at| at >= agent.created_at),
        "revoked_at recorded: {revoked:?}"
    );
    assert!(!store.revoke_token(agent.id).await.expect("revoke again"));
    assert!(
        !store
            .revoke_token(agent.id + 1)
            .await
            .expect("revoke unknown")
    );
    assert_eq!(verify(agent_secret).await, None);
    store.close().await;
}

/// Every row of a query, on a connection of the test's own (to look under the store).
async fn raw_rows(url: &str, query: &str) -> Vec<sqlx::any::AnyRow> {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.expect("raw connection");
    let rows = sqlx::query(query)
        .fetch_all(&pool)
        .await
        .expect("raw query");
    pool.close().await;
    rows
}

#[tokio::test]
async fn tokens_are_stored_hashed_and_revocable_on_sqlite() {
    let dir = tempfile::tempdir().expect("temp dir");
    tokens_are_stored_hashed_and_revocable(&sqlite_url(&dir)).await;
}

#[tokio::test]
async fn tokens_are_stored_hashed_and_revocable_on_postgres() {
    let pg = PgCluster::start();
    tokens_are_stored_hashed_and_revocable(&pg.url()).await;
}

/// A token's session scope survives rotation; the audit log keeps entries newest first,
/// names a participant as it joined, and loses only what is past the retention.
async fn scopes_and_the_audit_log(url: &str) {
    let store = open(url).await;
    let (guest, _) = store
        .create_token(Role::Agent, "guest")
        .await
        .expect("token");
    store
        .set_token_session(guest.id, 8312)
        .await
        .expect("scope");
    let (rotated, secret) = store
        .rotate_token(guest.id)
        .await
        .expect("rotate")
        .expect("live");
    assert_eq!(rotated.session, Some(8312));
    let check = store.check_token(&secret).await.expect("check");
    assert_eq!(check.valid().and_then(|t| t.session), Some(8312));

    let (wearable, _) = store
        .create_token(Role::Wearable, "pump-7")
        .await
        .expect("token");
    let session = store
        .create_session(wearable.id, "pump-7")
        .await
        .expect("session");
    let id = SessionId(session.id as u64);
    let participant = Participant {
        id: ParticipantId(41),
        role: Role::Agent,
        name: "Ada".into(),
    };
    store
        .add_participant(id, &participant, rotated.id)
        .await
        .expect("participant");
    let cli = Actor {
        token: None,
        name: "command line (ops)".into(),
    };
    store
        .audit(&cli, AuditAction::TokenCreate, None, "agent token 1")
        .await
        .expect("audit");
    store
        .audit_participant(id, participant.id, AuditAction::Clear, "every mark")
        .await
        .expect("audit");
    let log = store.audit_log(10).await.expect("log");
    let seen: Vec<_> = log
        .iter()
        .map(|e| (e.action, e.actor.as_str(), e.token, e.session))
        .collect();
    assert_eq!(
        seen,
        [
            (
                AuditAction::Clear,
                "Ada",
                Some(rotated.id),
                Some(session.id)
            ),
            (AuditAction::TokenCreate, "command line (ops)", None, None),
        ]
    );
    let cutoff = log[0].at;
    assert_eq!(store.prune_audit(cutoff).await.expect("prune"), 1);
    assert_eq!(store.audit_log(10).await.expect("log").len(), 1);
    store.close().await;
}

#[tokio::test]
async fn scopes_and_the_audit_log_on_sqlite() {
    let dir = tempfile::tempdir().expect("temp dir");
    scopes_and_the_audit_log(&sqlite_url(&dir)).await;
}

#[tokio::test]
async fn scopes_and_the_audit_log_on_postgres() {
    let pg = PgCluster::start();
    scopes_and_the_audit_log(&pg.url()).await;
}

// --- sessions and annotations ---------------------------------------------------------

fn mark(
    session: SessionId,
    id: u64,
    kind: AnnotationKind,
    points: Vec<[f32; 2]>,
    style: Style,
    text: &str,
) -> Annotate {
    Annotate {
        session,
        id: AnnotationId(id),
        author: ParticipantId(12),
        kind,
        frame: FrameSeq(840 + id),
        points,
        style,
        text: text.to_string(),
    }
}

async fn sessions_keep_live_annotations_with_anchors(url: &str) {
    let store = open(url).await;
    let (owner, _) = store
        .create_token(Role::Wearable, "pump-7 glasses")
        .await
        .expect("wearable token");
    let (agent, _) = store
        .create_token(Role::Agent, "Ada")
        .await
        .expect("agent token");

    let session = store
        .create_session(owner.id, "pump-7 glasses")
        .await
        .expect("session");
    assert_eq!(session.owner_token, owner.id);
    assert_eq!(session.name, "pump-7 glasses");
    assert_eq!((session.last_group, session.ended_at), (0, None));
    assert!(
        session.id > 0 && session.id < 1 << 53,
        "id fits a JS number"
    );
    let id = SessionId(session.id as u64);
    assert_eq!(
        store.session(id).await.expect("read"),
        Some(session.clone())
    );
    assert_eq!(store.session(SessionId(424_242)).await.expect("read"), None);
    // Creation times are in microseconds; keep the two sessions apart.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let other = store
        .create_session(owner.id, "pump-8 glasses")
        .await
        .expect("second session");
    let other_id = SessionId(other.id as u64);
    assert_eq!(
        store.open_sessions().await.expect("open sessions"),
        vec![other.clone(), session.clone()],
        "open sessions, newest first"
    );

    // Participants are counted, including those who left.
    let wearer = Participant {
        id: ParticipantId(11),
        role: Role::Wearable,
        name: "pump-7 glasses".into(),
    };
    let ada = Participant {
        id: ParticipantId(12),
        role: Role::Agent,
        name: "Ada".into(),
    };
    store
        .add_participant(id, &wearer, owner.id)
        .await
        .expect("wearer joins");
    store
        .add_participant(id, &ada, agent.id)
        .await
        .expect("agent joins");
    store
        .add_participant(other_id, &ada, agent.id)
        .await
        .expect("agent joins the other session");
    store.participant_left(id, ada.id).await.expect("leaves");
    assert_eq!(store.participant_count(id).await.expect("count"), 2);
    assert_eq!(store.participant_count(other_id).await.expect("count"), 1);

    // All four kinds, with their points, styles and text.
    let arrow = mark(
        id,
        101,
        AnnotationKind::Arrow,
        vec![[0.25, 0.5], [0.375, 0.625]],
        Style {
            rgba: 0xff3b_30ff,
            width: 4.0,
        },
        "",
    );
    let circle = mark(
        id,
        102,
        AnnotationKind::Circle,
        vec![[0.5, 0.5], [0.6, 0.55]],
        Style {
            rgba: 0x34c7_59ff,
            width: 2.5,
        },
        "",
    );
    let ink = mark(
        id,
        103,
        AnnotationKind::Ink,
        (0..40)
            .map(|i| [i as f32 / 40.0, 0.5 + (i as f32 * 0.3).sin() * 0.1])
            .collect(),
        Style {
            rgba: 0x007a_ffcc,
            width: 1.25,
        },
        "",
    );
    let label = mark(
        id,
        104,
        AnnotationKind::Text,
        vec![[0.75, 0.125]],
        Style {
            rgba: 0xffff_ffff,
            width: 18.0,
        },
        "Turn the red valve ↻ 90° — \"gently\"",
    );
    // Same annotation id in another session: a different mark.
    let elsewhere = mark(
        other_id,
        101,
        AnnotationKind::Circle,
        vec![[0.1, 0.9], [0.2, 0.8]],
        Style::default(),
        "",
    );
    for a in [&arrow, &circle, &ink, &label, &elsewhere] {
        store.save_annotation(a).await.expect("saved");
    }
    let stored = |a: &Annotate, anchor: Option<(DepthSource, Vec<[f32; 3]>)>| StoredAnnotation {
        annotate: a.clone(),
        anchor,
    };
    assert_eq!(
        store.annotations(id).await.expect("annotations"),
        vec![
            stored(&arrow, None),
            stored(&circle, None),
            stored(&ink, None),
            stored(&label, None),
        ]
    );

    // Anchors: measured and median-plane depth both come back as resolved.
    let arrow_world = vec![[0.12, -0.05, 0.8], [0.15, -0.02, 0.79]];
    let label_world = vec![[0.3, 0.1, 1.2]];
    assert!(
        store
            .resolve_anchor(id, arrow.id, DepthSource::Measured, &arrow_world)
            .await
            .expect("resolve")
    );
    assert!(
        store
            .resolve_anchor(id, label.id, DepthSource::MedianPlane, &label_world)
            .await
            .expect("resolve")
    );
    assert!(
        !store
            .resolve_anchor(id, AnnotationId(999), DepthSource::Measured, &label_world)
            .await
            .expect("resolve unknown"),
        "no such mark"
    );

    // An erased mark is gone and can no longer be anchored.
    store.erase_annotation(id, ink.id).await.expect("erase");
    assert!(
        !store
            .resolve_anchor(id, ink.id, DepthSource::Measured, &label_world)
            .await
            .expect("resolve erased"),
        "erased mark anchored"
    );
    assert_eq!(
        store.annotations(id).await.expect("annotations"),
        vec![
            stored(&arrow, Some((DepthSource::Measured, arrow_world.clone()))),
            stored(&circle, None),
            stored(&label, Some((DepthSource::MedianPlane, label_world))),
        ]
    );
    assert_eq!(
        store.annotations(other_id).await.expect("annotations"),
        vec![stored(&elsewhere, None)],
        "the other session is untouched"
    );

    // A repeated id replaces the mark; its old anchor no longer applies.
    let relabel = Annotate {
        text: "Now back 45°".into(),
        ..label.clone()
    };
    store.save_annotation(&relabel).await.expect("replaced");
    assert_eq!(
        store.annotations(id).await.expect("annotations"),
        vec![
            stored(&arrow, Some((DepthSource::Measured, arrow_world))),
            stored(&circle, None),
            stored(&relabel, None),
        ]
    );

    // Clear empties this session only.
    store.clear_annotations(id).await.expect("clear");
    assert_eq!(store.annotations(id).await.expect("annotations"), vec![]);
    assert_eq!(
        store.annotations(other_id).await.expect("annotations"),
        vec![stored(&elsewhere, None)]
    );

    // The last group only moves forward.
    let last_group = |s: SessionId| {
        let store = store.clone();
        async move {
            store
                .session(s)
                .await
                .expect("read")
                .expect("session exists")
                .last_group
        }
    };
    store.set_last_group(id, 5).await.expect("set");
    assert_eq!(last_group(id).await, 5);
    store.set_last_group(id, 3).await.expect("set");
    assert_eq!(last_group(id).await, 5, "moved backwards");
    store.set_last_group(id, 9).await.expect("set");
    assert_eq!(last_group(id).await, 9);
    assert_eq!(last_group(other_id).await, 0);
    store.close().await;
}

#[tokio::test]
async fn sessions_keep_live_annotations_with_anchors_on_sqlite() {
    let dir = tempfile::tempdir().expect("temp dir");
    sessions_keep_live_annotations_with_anchors(&sqlite_url(&dir)).await;
}

#[tokio::test]
async fn sessions_keep_live_annotations_with_anchors_on_postgres() {
    let pg = PgCluster::start();
    sessions_keep_live_annotations_with_anchors(&pg.url()).await;
}

// --- end to end through QUIC and a restart --------------------------------------------

/// The annotation messages a connection receives until it has been quiet for a while:
/// what a replay delivered, in order.
async fn annotation_messages(conn: &mut farsight_client::Connection) -> Vec<ControlMessage> {
    let mut out = Vec::new();
    while let Some(msg) = conn.recv_timeout(Duration::from_millis(500)).await {
        match msg.expect("control stream healthy") {
            msg @ (ControlMessage::Annotate(_)
            | ControlMessage::AnchorResolved { .. }
            | ControlMessage::Erase { .. }
            | ControlMessage::Clear { .. }) => out.push(msg),
            ControlMessage::Error { code, message } => panic!("refused: {code:?}: {message}"),
            _ => {}
        }
    }
    out
}

async fn annotations_survive_a_server_restart(url: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = ServeConfig::ephemeral(dir.path());
    config.database_url = url.to_string();
    let server = TestServer::start_in(dir, config).await;
    let wearable_token = server.token(Role::Wearable, "pump-7 glasses").await;
    let agent_token = server.token(Role::Agent, "Ada").await;

    let mut wearable = connect(&server.options(Role::Wearable, &wearable_token))
        .await
        .expect("wearable connects");
    let session = wearable.session;
    assert_ne!(session, SessionId(0), "a new session");
    assert_eq!(wearable.name, "pump-7 glasses");
    let mut agent = connect(&server.options(Role::Agent, &agent_token))
        .await
        .expect("agent connects");
    agent.join(session).await.expect("agent joins");

    // Four groups (0..=3), so the session has a last group to keep across the restart.
    let mut publisher = wearable.publisher();
    for seq in 0..8 {
        publisher
            .send(&frame(seq, seq % 2 == 0, 1200))
            .await
            .expect("frame sent");
    }
    publisher.finish();
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let record = server
            .running
            .shared
            .store
            .session(session)
            .await
            .expect("read")
            .expect("session stored");
        if record.last_group == 3 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "last group stays {}",
            record.last_group
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // The agent draws an arrow and a note, then erases the note.
    let arrow = Annotate {
        session,
        id: AnnotationId(7),
        author: ParticipantId(0),
        kind: AnnotationKind::Arrow,
        frame: FrameSeq(6),
        points: vec![[0.25, 0.5], [0.4, 0.45]],
        style: Style {
            rgba: 0xff3b_30ff,
            width: 6.0,
        },
        text: "this screw".into(),
    };
    let note = Annotate {
        id: AnnotationId(8),
        kind: AnnotationKind::Text,
        points: vec![[0.7, 0.2]],
        text: "wrong one".into(),
        ..arrow.clone()
    };
    let arrow_seen = Annotate {
        author: agent.participant,
        ..arrow.clone()
    };
    for a in [&arrow, &note] {
        agent
            .send(&ControlMessage::Annotate(a.clone()))
            .await
            .expect("annotate sent");
    }
    let seen = wearable
        .wait_for(TIMEOUT, |m| match m {
            ControlMessage::Annotate(a) if a.id == arrow.id => Some(a.clone()),
            _ => None,
        })
        .await
        .expect("wearable sees the arrow");
    assert_eq!(seen, arrow_seen);
    let erase = ControlMessage::Erase {
        session,
        id: note.id,
    };
    agent.send(&erase).await.expect("erase sent");
    wearable
        .wait_for(TIMEOUT, |m| (*m == erase).then_some(()))
        .await
        .expect("wearable sees the erase");

    // The wearable anchors the arrow in the world.
    let anchored = ControlMessage::AnchorResolved {
        session,
        id: arrow.id,
        depth: DepthSource::Measured,
        points: vec![[0.12, -0.05, 0.8], [0.2, -0.07, 0.82]],
    };
    wearable.send(&anchored).await.expect("anchor sent");
    let got = agent
        .wait_for(TIMEOUT, |m| {
            matches!(m, ControlMessage::AnchorResolved { .. }).then(|| m.clone())
        })
        .await
        .expect("agent sees the anchor");
    assert_eq!(got, anchored);

    // The server goes down and comes back on the same ports and database.
    let server = server.restart().await;
    drop((wearable, agent));
    let replayed = vec![ControlMessage::Annotate(arrow_seen), anchored];

    let mut options = server.options(Role::Wearable, &wearable_token);
    options.resume = session;
    let mut wearable = connect(&options).await.expect("wearable resumes");
    assert_eq!(wearable.session, session, "the same session resumed");
    assert_eq!(wearable.name, "pump-7 glasses");
    assert_eq!(annotation_messages(&mut wearable).await, replayed);

    let grace_token = server.token(Role::Agent, "Grace").await;
    let mut grace = connect(&server.options(Role::Agent, &grace_token))
        .await
        .expect("second agent connects");
    grace.join(session).await.expect("second agent joins");
    assert_eq!(annotation_messages(&mut grace).await, replayed);

    // The first agent's token, made before the restart, still reads the session list.
    let response = reqwest::Client::new()
        .get(server.http("/v1/sessions"))
        .bearer_auth(&agent_token)
        .send()
        .await
        .expect("HTTP request");
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    let sessions: serde_json::Value = response.json().await.expect("JSON body");
    let listed = sessions.as_array().expect("a JSON array");
    assert_eq!(listed.len(), 1, "{sessions}");
    let s = &listed[0];
    assert_eq!(s["id"], serde_json::json!(session.0));
    assert_eq!(s["name"], "pump-7 glasses");
    assert_eq!(s["live"], true, "the resumed wearable publishes");
    assert_eq!(s["watchers"], serde_json::json!(["Grace"]));
    assert_eq!(s["last_group"], 3);

    drop((wearable, grace));
    server.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn annotations_survive_a_server_restart_on_sqlite() {
    let dir = tempfile::tempdir().expect("temp dir");
    annotations_survive_a_server_restart(&sqlite_url(&dir)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn annotations_survive_a_server_restart_on_postgres() {
    let pg = PgCluster::start();
    annotations_survive_a_server_restart(&pg.url()).await;
}

// --- migrations -----------------------------------------------------------------------

async fn migrations_can_run_again(url: &str, backend: Backend) {
    let first = open(url).await;
    assert_eq!(first.backend(), backend);
    let (token, secret) = first.create_token(Role::Agent, "Ada").await.expect("token");
    first.close().await;

    let second = Store::open(url)
        .await
        .expect("opening a migrated database again");
    second.migrate().await.expect("migrating again");
    assert_eq!(
        second.verify_token(&secret).await.expect("verify"),
        Some(token),
        "data kept"
    );
    second.close().await;

    // What operators run: `farsight migrate`, twice.
    let data = tempfile::tempdir().expect("temp dir");
    for run in 1..=2 {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_farsight"))
            .arg("--data-dir")
            .arg(data.path())
            .args(["--database-url", url, "migrate"])
            .env_remove("FARSIGHT_CONFIG")
            .output()
            .expect("farsight runs");
        assert!(
            out.status.success(),
            "farsight migrate, run {run}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "migrations applied"
        );
    }

    // Each migration is recorded once.
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../migrations"))
        .expect("migrations directory")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "sql"))
        })
        .count();
    let applied = raw_rows(url, "SELECT version FROM _sqlx_migrations").await;
    assert_eq!(applied.len(), files);
}

#[tokio::test]
async fn migrations_can_run_again_on_sqlite() {
    let dir = tempfile::tempdir().expect("temp dir");
    migrations_can_run_again(&sqlite_url(&dir), Backend::Sqlite).await;
}

#[tokio::test]
async fn migrations_can_run_again_on_postgres() {
    let pg = PgCluster::start();
    migrations_can_run_again(&pg.url(), Backend::Postgres).await;
}
