//! The agent console in Debian's Chromium, driven by Playwright (tests/console/console.mjs,
//! which speaks JSON lines with this test). The probe publishes GStreamer H.264 with a moving
//! pose as a wearable; the page must show it as moving video, an arrow drawn with the mouse
//! must reach the wearable as `Annotate` with the right normalised coordinates, and after the
//! wearable's `AnchorResolved` the page must draw the arrow where the displayed frame's camera
//! projects it, within 3 px.

#[path = "support/console_driver.rs"]
mod console_driver;
mod support;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use console_driver::{Driver, Run, STEP_TIMEOUT};
use farsight_protocol::{
    Annotate, AnnotationId, AnnotationKind, CameraModel, ControlMessage, FrameSeq, ParticipantId,
    Role, Style,
};
use farsight_server::ServeConfig;
use farsight_server::probe::{self, EncoderSettings, PublishOptions};
use nalgebra::Point3;
use serde_json::Value;
use support::TestServer;
use tokio::sync::mpsc;

/// The probe publishes its moving test picture as `wearable`, 640×360 at 15 fps, for
/// `seconds`; what agents do to the picture goes to `marks`. The task gives the connection
/// back when the time is up, still open.
fn publish_test_pattern(
    mut wearable: farsight_client::Connection,
    seconds: u64,
    marks: Option<mpsc::UnboundedSender<ControlMessage>>,
) -> tokio::task::JoinHandle<farsight_client::Connection> {
    tokio::spawn(async move {
        let options = PublishOptions {
            encoder: EncoderSettings {
                width: 640,
                height: 360,
                fps: 15,
                bitrate_kbps: 800,
                keyframe_interval: 15,
                ..EncoderSettings::default()
            },
            duration: Some(Duration::from_secs(seconds)),
            marks,
            reconnect: None,
        };
        if let Err(e) = probe::publish(&mut wearable, &options).await {
            eprintln!("publishing ended: {e}");
        }
        wearable
    })
}

/// A directory for one test's screenshots, under the build's temporary directory.
fn shots_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::create_dir_all(&dir).expect("screenshot directory");
    dir
}

/// The next thing an agent did to the picture, as the wearable received it.
async fn at_wearable(rx: &mut mpsc::UnboundedReceiver<ControlMessage>) -> ControlMessage {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("reaches the wearable within 10 s")
        .expect("still publishing")
}

/// A message in a few words, for comparing sequences.
fn describe(msg: &ControlMessage) -> String {
    match msg {
        ControlMessage::Annotate(a) => {
            let points = match a.points.len() {
                n @ 0..=2 => n.to_string(),
                _ => "many".into(),
            };
            format!("Annotate {:?} {points} {}", a.kind, a.text)
                .trim_end()
                .to_string()
        }
        ControlMessage::Freeze { frame, .. } => format!("Freeze {}", frame.0),
        other => format!("{other:?}")
            .split([' ', '{'])
            .next()
            .unwrap_or_default()
            .to_string(),
    }
}

fn point(v: &Value) -> [f64; 2] {
    [
        v[0].as_f64().expect("x is a number"),
        v[1].as_f64().expect("y is a number"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_webtransport_the_console_shows_live_video_and_draws_anchored_marks() {
    console_shows_live_video_and_draws_anchored_marks("WebTransport").await;
}

/// WebTransport's datagrams dropped, as by a firewall that blocks UDP: the page falls back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_udp_blocked_the_console_falls_back_to_websocket_and_works_the_same() {
    console_shows_live_video_and_draws_anchored_marks("WebSocket").await;
}

async fn console_shows_live_video_and_draws_anchored_marks(transport: &str) {
    let server = TestServer::start().await;
    let agent_token = server.token(Role::Agent, "Ada").await;
    let wearable = server.connect(Role::Wearable, "glasses").await;
    let session = wearable.session;
    let (marks_tx, mut marks_at_wearable) = mpsc::unbounded_channel();
    let publishing = publish_test_pattern(wearable, 90, Some(marks_tx));

    // A second agent over QUIC records every frame's camera and the anchors, to check the page
    // against.
    let mut observer = server.connect(Role::Agent, "observer").await;
    observer.join(session).await.expect("observer joins");
    let cameras: Arc<Mutex<HashMap<u64, CameraModel>>> = Arc::default();
    let mut watcher = observer.watcher();
    let seen = cameras.clone();
    tokio::spawn(async move {
        while let Some(r) = watcher.next_object().await {
            seen.lock()
                .expect("lock")
                .insert(r.object.frame.0, r.object.camera);
        }
    });
    let (anchors_tx, mut anchors) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(Ok(msg)) = observer.recv().await {
            if let ControlMessage::AnchorResolved { id, points, .. } = msg {
                let _ = anchors_tx.send((id.0, points));
            }
        }
    });

    // Screenshots stay in the build's temporary directory for a person to look at.
    let shots = shots_dir(&format!("console-{transport}"));
    let mut driver = Driver::start(
        &server.http("/"),
        &agent_token,
        session.0,
        &shots,
        Run {
            block_udp: transport == "WebSocket",
            ..Run::default()
        },
    );

    let video = driver.step("video").await;
    assert_eq!(video["transport"], transport, "{video}");
    // The other agent in the session is listed, as is the wearable.
    let participants = video["participants"].as_str().unwrap_or_default();
    assert!(
        participants.contains("observer") && participants.contains("glasses"),
        "{video}"
    );
    assert!(video["frames"].as_u64().unwrap_or(0) >= 10, "{video}");
    assert!(
        video["differing_bytes"].as_u64().unwrap_or(0) > 0,
        "the picture did not move: {video}"
    );

    let arrow = driver.step("arrow").await;
    let annotate = &arrow["annotate"];
    let id = annotate["id"].as_u64().expect("annotation id");
    let drawn_on = annotate["frame"].as_u64().expect("frame");
    let expected = [[0.3, 0.4], [0.6, 0.55]];
    let ControlMessage::Annotate(mark) = at_wearable(&mut marks_at_wearable).await else {
        panic!("the arrow should reach the wearable first");
    };
    assert_eq!((mark.id.0, mark.frame.0), (id, drawn_on));
    assert_eq!(mark.points.len(), 2);
    for (got, want) in mark.points.iter().zip(expected) {
        assert!(
            (f64::from(got[0]) - want[0]).abs() < 0.01
                && (f64::from(got[1]) - want[1]).abs() < 0.01,
            "arrow point {got:?}, drawn at {want:?}"
        );
    }

    driver
        .command(serde_json::json!({"cmd": "await-anchor", "id": id}))
        .await;
    let (anchored_id, world) = tokio::time::timeout(Duration::from_secs(10), anchors.recv())
        .await
        .expect("the wearable anchors the mark")
        .expect("observer");
    assert_eq!(anchored_id, id);
    driver.step("marked").await;
    let world: Vec<Point3<f64>> = world
        .iter()
        .map(|w| Point3::new(f64::from(w[0]), f64::from(w[1]), f64::from(w[2])))
        .collect();
    // Freeze once the head has moved: the arrow's head then projects well away from where it
    // was drawn, so a mark merely left in place would fail the check below.
    let moved = |camera: &CameraModel| {
        let original = cameras.lock().expect("lock")[&drawn_on];
        match (camera.project(&world[1]), original.project(&world[1])) {
            (Some(now), Some(then)) => (now - then).norm() > 20.0,
            _ => false,
        }
    };
    let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
    loop {
        let latest = {
            let cameras = cameras.lock().expect("lock");
            *cameras.iter().max_by_key(|(f, _)| **f).expect("frames").1
        };
        if moved(&latest) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the head never moved"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The browser shows frames a little behind the newest: freeze again until the frame it
    // holds shows the head moved.
    let (anchored, shown, camera) = loop {
        driver.command(serde_json::json!({"cmd": "freeze"})).await;
        let anchored = driver.step("anchored").await;
        let shown = anchored["frame"].as_u64().expect("displayed frame");
        let camera = cameras.lock().expect("lock")[&shown];
        if moved(&camera) {
            break (anchored, shown, camera);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "frozen frames never showed the head moved"
        );
        driver.step("pixels").await;
        driver.command(serde_json::json!({"cmd": "unfreeze"})).await;
        driver.step("unfrozen").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let drawn = anchored["points"].as_array().expect("projected points");
    assert_eq!(drawn.len(), 2, "{anchored}");
    for (p, w) in drawn.iter().zip(&world) {
        let want = camera.project(w).expect("in front of the camera");
        let [u, v] = point(p);
        let error = ((u - want.x).powi(2) + (v - want.y).powi(2)).sqrt();
        assert!(
            error <= 3.0,
            "drawn at ({u:.1}, {v:.1}) on frame {shown}, projects to ({:.1}, {:.1}): {error:.1} px",
            want.x,
            want.y
        );
    }
    let pixels = driver.step("pixels").await;
    assert!(
        pixels["head_rgba"][3].as_u64().unwrap_or(0) > 0,
        "nothing drawn at the arrow's head: {pixels}"
    );

    // The other tools, each as the wearable sees it, after the freezes and unfreezes above.
    driver.command(serde_json::json!({"cmd": "tools"})).await;
    let tools = driver.step("tools").await;
    assert_eq!(
        tools["snapshot"],
        serde_json::json!({"signature": "89504e470d0a1a0a", "width": 640, "height": 360}),
        "the snapshot is a PNG of the picture"
    );
    let mut freezes = Vec::new();
    let mut seen = Vec::new();
    while seen.len() < 8 {
        match at_wearable(&mut marks_at_wearable).await {
            m @ (ControlMessage::Freeze { .. } | ControlMessage::Unfreeze { .. }) => {
                freezes.push(describe(&m))
            }
            m => seen.push(m),
        }
    }
    assert_eq!(
        freezes.last().map(String::as_str),
        Some("Unfreeze"),
        "{freezes:?}"
    );
    assert_eq!(
        freezes.iter().rev().nth(1),
        Some(&format!("Freeze {shown}")),
        "{freezes:?}"
    );
    let kinds: Vec<String> = seen.iter().map(describe).collect();
    assert_eq!(
        kinds,
        [
            "Annotate Circle 2",
            "Annotate Ink many",
            "Annotate Text 1 open here",
            "Erase",
            "Clear",
            "Annotate Arrow 2",
            "Annotate Arrow 2",
            "Erase",
        ]
    );
    let (ControlMessage::Annotate(first_arrow), ControlMessage::Erase { id: deleted, .. }) =
        (&seen[5], &seen[7])
    else {
        unreachable!("checked above")
    };
    assert_eq!(*deleted, first_arrow.id, "Delete erases the selected mark");
    let (
        ControlMessage::Annotate(circle),
        ControlMessage::Annotate(text),
        ControlMessage::Erase { id: erased, .. },
    ) = (&seen[0], &seen[2], &seen[3])
    else {
        unreachable!("checked above")
    };
    assert_eq!(*erased, text.id, "undo erases the last own mark");
    for (got, want) in circle.points.iter().zip([[0.5, 0.5], [0.55, 0.5]]) {
        assert!(
            (f64::from(got[0]) - want[0]).abs() < 0.01
                && (f64::from(got[1]) - want[1]).abs() < 0.01,
            "circle point {got:?}, drawn at {want:?}"
        );
    }

    driver.finish().await;
    publishing.abort();
}

/// The outreach view of a server with a trained model and planned calls: its first need and
/// its calls are the API's, and the effect chart loads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outreach_view_shows_needs_calls_and_the_effect_chart() {
    use farsight_outreach::policy::PolicyConfig;
    use farsight_outreach::train::TrainConfig;
    use farsight_server::outreach::scheduler;
    use farsight_server::outreach::service::{current_predictions, train_from_store};

    let server = TestServer::start().await;
    let store = &server.running.shared.store;
    support::store_simulated_history(store, 600, 84, 5).await;
    train_from_store(store, &TrainConfig::default(), None)
        .await
        .expect("trains");
    let now = store.newest_event().await.expect("events").expect("some");
    let policy = PolicyConfig::default().validate().expect("policy");
    scheduler::plan(store, &policy, now).await.expect("plans");
    let calls = store.calls().await.expect("calls");
    assert!(!calls.is_empty(), "the scheduler planned calls");
    let top = current_predictions(store, 1, None).await.expect("scores");

    let agent = server.token(Role::Agent, "Ada").await;
    let shots = shots_dir("console-outreach");
    let run = Run {
        outreach: true,
        ..Run::default()
    };
    let mut driver = Driver::start(&server.http("/"), &agent, 0, &shots, run);
    let seen = driver.step("outreach").await;
    assert_eq!(seen["first_need"]["user"], top[0].user, "{seen}");
    assert_eq!(seen["first_need"]["topic"], top[0].topic, "{seen}");
    assert_eq!(seen["calls"], calls.len().min(50), "{seen}");
    assert_eq!(
        seen["planned"],
        calls.iter().filter(|c| !c.holdout).count().to_string(),
        "{seen}"
    );
    assert_eq!(seen["chart"], serde_json::json!([720, 480]), "{seen}");
    driver.finish().await;
}

/// Switching sessions in the page and back: join A, then B, then A again on one connection.
/// Each plays, and no error is shown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_switches_to_another_session_and_back() {
    let server = TestServer::start().await;
    let agent_token = server.token(Role::Agent, "Ada").await;
    let mut sessions = Vec::new();
    for name in ["glasses-a", "glasses-b"] {
        let wearable = server.connect(Role::Wearable, name).await;
        sessions.push(wearable.session);
        publish_test_pattern(wearable, 90, None);
    }
    // Both are playing before the page opens.
    for &session in &sessions {
        let mut observer = server.connect(Role::Agent, "observer").await;
        observer.join(session).await.expect("observer joins");
        let mut watcher = observer.watcher();
        tokio::time::timeout(Duration::from_secs(20), watcher.next_object())
            .await
            .expect("a frame within 20 s")
            .expect("publishing");
    }
    let shots = shots_dir("console-switch");
    let mut driver = Driver::start(
        &server.http("/"),
        &agent_token,
        sessions[0].0,
        &shots,
        Run {
            switch_to: Some(sessions[1].0),
            ..Run::default()
        },
    );
    let switched = driver.step("switched").await;
    assert_eq!(switched["errors"], serde_json::json!([]), "{switched}");
    assert_eq!(switched["title"], "glasses-a");
    let watching = |i: usize| {
        let view = server.running.shared.relay.session(sessions[i]);
        view.expect("live").watchers.len()
    };
    // The page says Joined only once the relay confirmed it, so the relay must agree now.
    assert_eq!(
        (watching(0), watching(1)),
        (1, 0),
        "the page is back in A only; relay: {:?}",
        server.running.shared.relay.stats()
    );
    driver.finish().await;
}

/// Every response carries the web's basic defences: the page may run only the server's own
/// scripts, may not be framed, and leaks no referrer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_is_served_with_its_security_headers() {
    let server = TestServer::start().await;
    let base = format!("http://{}", server.running.http_addr);
    let wt_port = server.running.shared.webtransport.port;
    for path in ["/", "/console/app.js", "/v1/sessions", "/no-such-page"] {
        let response = reqwest::get(format!("{base}{path}")).await.expect("served");
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_else(|| panic!("{path}: no {name} header"))
                .to_string()
        };
        let policy = header("content-security-policy");
        assert!(policy.contains("script-src 'self';"), "{path}: {policy}");
        assert!(
            policy.contains("frame-ancestors 'none'"),
            "{path}: {policy}"
        );
        assert!(!policy.contains("unsafe-inline"), "{path}: {policy}");
        assert!(
            policy.contains(&format!("https://127.0.0.1:{wt_port}")),
            "{path}: WebTransport allowed: {policy}"
        );
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(header("referrer-policy"), "no-referrer", "{path}");
        assert_eq!(header("x-frame-options"), "DENY", "{path}");
    }
}

/// With a certificate the console and API are HTTPS only, and tell browsers to keep to it
/// (HSTS); plain HTTP on that port gets no answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_certificate_the_console_is_served_over_https_with_hsts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let issued = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, issued.cert.pem()).expect("cert written");
    std::fs::write(&key, issued.key_pair.serialize_pem()).expect("key written");
    let config = ServeConfig {
        cert: Some((cert.clone(), key)),
        ..ServeConfig::ephemeral(&dir.path().join("data"))
    };
    let running = farsight_server::start(&config).await.expect("serves");
    let port = running.http_addr.port();
    let curl = |url: String| {
        let cert = cert.clone();
        tokio::process::Command::new("curl")
            .args([
                "-sS",
                "--max-time",
                "10",
                "-D",
                "-",
                "-o",
                "/dev/null",
                "--cacert",
            ])
            .arg(cert)
            .args(["--resolve", &format!("localhost:{port}:127.0.0.1")])
            .arg(url)
            .output()
    };
    for path in ["/", "/healthz"] {
        let out = curl(format!("https://localhost:{port}{path}"))
            .await
            .expect("curl runs");
        let headers = String::from_utf8_lossy(&out.stdout).to_lowercase();
        assert!(
            out.status.success(),
            "{path}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(headers.starts_with("http/1.1 200"), "{path}: {headers}");
        assert!(
            headers.contains("strict-transport-security: max-age=31536000"),
            "{path}: {headers}"
        );
        assert!(
            headers.contains("content-security-policy:"),
            "{path}: {headers}"
        );
    }
    let plain = curl(format!("http://localhost:{port}/healthz"))
        .await
        .expect("curl runs");
    assert!(!plain.status.success(), "plain HTTP was answered");
    running.shutdown().await;
}

/// Markup in a session's name, a participant's name and a text mark is shown as the text it
/// is: never parsed into elements, never run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_from_people_is_shown_as_text_and_never_runs() {
    const HOSTILE: &str = r#"<img src="x" onerror="window.__farsightInjected=1"><script>window.__farsightInjected=2</script>"#;
    let server = TestServer::start().await;
    // A session is named after its wearable's token.
    let wearable = server.connect(Role::Wearable, HOSTILE).await;
    let session = wearable.session;
    let publishing = publish_test_pattern(wearable, 90, None);
    let mut colleague = server.connect(Role::Agent, HOSTILE).await;
    colleague.join(session).await.expect("colleague joins");
    let label = ControlMessage::Annotate(Annotate {
        session,
        id: AnnotationId(1),
        author: ParticipantId(0),
        kind: AnnotationKind::Text,
        frame: FrameSeq(0),
        points: vec![[0.4, 0.4]],
        style: Style::default(),
        text: HOSTILE.into(),
    });
    colleague.send(&label).await.expect("label sent");

    let agent_token = server.token(Role::Agent, "Ada").await;
    let shots = shots_dir("console-hostile");
    let run = Run {
        hostile_text: true,
        ..Run::default()
    };
    let mut driver = Driver::start(&server.http("/"), &agent_token, session.0, &shots, run);
    let seen = driver.step("hostile").await;
    assert_eq!(seen["elements"], 0, "markup became elements: {seen}");
    assert_eq!(seen["ran"], Value::Null, "injected script ran: {seen}");
    assert_eq!(seen["queue_name"], HOSTILE, "{seen}");
    assert_eq!(seen["title"], HOSTILE, "{seen}");
    assert!(
        seen["participants"]
            .as_str()
            .is_some_and(|p| p.contains(HOSTILE)),
        "{seen}"
    );
    driver.finish().await;
    publishing.abort();
}

/// When the wearer's stream stops the console says the connection is lost, and when its
/// connection closes that the wearer left: each within 2 s, over a dimmed last picture.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_says_within_2_s_when_the_wearer_goes() {
    let server = TestServer::start().await;
    let wearable = server.connect(Role::Wearable, "glasses").await;
    let session = wearable.session;
    // The stream stops after 8 s with the connection still open, as on a lost link.
    let publishing = publish_test_pattern(wearable, 8, None);
    let agent = server.token(Role::Agent, "Ada").await;
    let shots = shots_dir("console-wearer-gone");
    let run = Run {
        wearer_gone: true,
        ..Run::default()
    };
    let mut driver = Driver::start(&server.http("/"), &agent, session.0, &shots, run);
    let watching = driver.step("watching").await;
    let stats = watching["stats"].as_str().unwrap_or_default();
    assert!(stats.contains("640×360"), "{watching}");
    assert!(stats.contains(" fps"), "{watching}");

    let expect = |text: &str| serde_json::json!({"cmd": "expect", "text": text});
    let connection = publishing.await.expect("published");
    let stopped = std::time::Instant::now();
    driver
        .command(expect("connection lost — reconnecting…"))
        .await;
    let lost = driver.step("shown").await;
    let lost_after = stopped.elapsed();
    assert!(
        lost_after <= Duration::from_secs(2),
        "{lost_after:?}: {lost}"
    );
    assert!(
        lost["stats"]
            .as_str()
            .is_some_and(|s| s.contains("delay – ms")),
        "no stale delay: {lost}"
    );

    let closed = std::time::Instant::now();
    connection.quic().close(0u32.into(), b"gone");
    driver.command(expect("the wearer left")).await;
    let left = driver.step("shown").await;
    let left_after = closed.elapsed();
    assert!(
        left_after <= Duration::from_secs(2),
        "{left_after:?}: {left}"
    );
    eprintln!("connection lost said after {lost_after:?}, wearer left after {left_after:?}");
    driver.finish().await;
}

/// Single sign-on against a real OpenID provider (the certified `oidc-provider` from npm, its
/// development login form): an account without a Farsight group is told so; a support lead
/// lands in the console as a supervisor and watches a session; the sign-in lives in a cookie
/// the page cannot read; signing out ends it; each step is in the audit log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_sign_in_with_single_sign_on() {
    use farsight_server::sso::SsoConfig;
    use tokio::io::AsyncBufReadExt;

    // The provider must know Farsight's callback, so Farsight's port is chosen first.
    let http_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let redirect = format!("http://127.0.0.1:{http_port}/v1/auth/callback");
    let mut provider = tokio::process::Command::new("node")
        .arg(console_driver::console_dir().join("oidc.mjs"))
        .env("REDIRECT_URI", &redirect)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs");
    let mut lines = tokio::io::BufReader::new(provider.stdout.take().expect("piped")).lines();
    let first = tokio::time::timeout(STEP_TIMEOUT, lines.next_line())
        .await
        .expect("the provider starts")
        .expect("readable")
        .expect("a line");
    let issuer = serde_json::from_str::<Value>(&first).expect("JSON")["issuer"]
        .as_str()
        .expect("issuer")
        .to_string();

    let dir = tempfile::tempdir().expect("temp dir");
    let config = ServeConfig {
        http_listen: ([127, 0, 0, 1], http_port).into(),
        oidc: Some(SsoConfig {
            issuer,
            client_id: "farsight".into(),
            client_secret: Some("farsight-test-secret".into()),
            redirect_url: redirect,
            scopes: vec!["openid".into(), "profile".into(), "groups".into()],
            roles_claim: "groups".into(),
            agent: vec!["support-agents".into()],
            supervisor: vec!["support-leads".into()],
            session_hours: 8,
        }),
        ..ServeConfig::ephemeral(&dir.path().join("data"))
    };
    let server = TestServer::start_in(dir, config).await;
    let wearable = server.connect(Role::Wearable, "glasses").await;
    let session = wearable.session;
    let publishing = publish_test_pattern(wearable, 90, None);

    let shots = shots_dir("console-sso");
    let run = Run {
        sso: true,
        ..Run::default()
    };
    let mut driver = Driver::start(&server.http("/"), "", session.0, &shots, run);
    let refused = driver.step("refused").await;
    assert!(
        refused["text"]
            .as_str()
            .is_some_and(|t| t.contains("sam") && t.contains("no Farsight role")),
        "{refused}"
    );
    let signed_in = driver.step("signed-in").await;
    assert_eq!(signed_in["me"], "Grace Hopper · supervisor", "{signed_in}");
    assert_eq!(signed_in["cookie"]["httpOnly"], true, "{signed_in}");
    assert_eq!(signed_in["cookie"]["sameSite"], "Strict", "{signed_in}");
    assert_eq!(signed_in["page_sees_cookie"], false, "{signed_in}");
    assert_eq!(
        signed_in["stored"],
        Value::Null,
        "nothing in sessionStorage"
    );
    let watchers = server
        .running
        .shared
        .relay
        .session(session)
        .expect("live")
        .watchers;
    assert_eq!(
        watchers.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
        ["Grace Hopper"]
    );

    driver.command(serde_json::json!({"cmd": "sign-out"})).await;
    let signed_out = driver.step("signed-out").await;
    assert_eq!(signed_out["logout_status"], 204, "{signed_out}");
    assert_eq!(signed_out["sent_cookie"], true, "{signed_out}");
    let store = &server.running.shared.store;
    let tokens = store.list_tokens().await.expect("tokens");
    let graces: Vec<_> = tokens.iter().filter(|t| t.name == "Grace Hopper").collect();
    assert_eq!(graces.len(), 1, "one sign-in: {graces:?}");
    let grace = graces[0];
    assert!(
        grace.revoked_at.is_some(),
        "signing out revoked it: {grace:?}"
    );
    assert!(grace.expires_at.is_some(), "a sign-in expires");
    let log = store.audit_log(50).await.expect("audit");
    let did = |action: &str, actor: &str| {
        log.iter()
            .any(|e| e.action.as_str() == action && e.actor == actor)
    };
    assert!(did("sign_in_refused", "127.0.0.1"), "{log:?}");
    assert!(did("sign_in", "Grace Hopper"), "{log:?}");
    assert!(did("join", "Grace Hopper"), "{log:?}");
    assert!(did("sign_out", "Grace Hopper"), "{log:?}");
    driver.finish().await;
    publishing.abort();
}

/// Clear takes other agents' marks only when asked twice: the page asks, Escape keeps them,
/// Enter clears, and Ctrl+Z brings every mark back, anchored again by the wearable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clearing_a_colleagues_marks_asks_first_and_can_be_undone() {
    let server = TestServer::start().await;
    let wearable = server.connect(Role::Wearable, "glasses").await;
    let session = wearable.session;
    let (marks_tx, mut at_glasses) = mpsc::unbounded_channel();
    let publishing = publish_test_pattern(wearable, 90, Some(marks_tx));
    let mut colleague = server.connect(Role::Agent, "Grace").await;
    colleague.join(session).await.expect("colleague joins");
    // Drawn on a frame the colleague saw, which the wearable still holds to anchor it.
    let seen = tokio::time::timeout(Duration::from_secs(20), colleague.watcher().next_object())
        .await
        .expect("a frame within 20 s")
        .expect("publishing");
    let circle = ControlMessage::Annotate(Annotate {
        session,
        id: AnnotationId(7),
        author: ParticipantId(0),
        kind: AnnotationKind::Circle,
        frame: seen.object.frame,
        points: vec![[0.6, 0.6], [0.65, 0.6]],
        style: Style::default(),
        text: String::new(),
    });
    colleague.send(&circle).await.expect("sent");

    let agent = server.token(Role::Agent, "Ada").await;
    let shots = shots_dir("console-clear-undo");
    let run = Run {
        clear_undo: true,
        ..Run::default()
    };
    let mut driver = Driver::start(&server.http("/"), &agent, session.0, &shots, run);
    let asked = driver.step("asked").await;
    assert_eq!(asked["text"], "Clear all 2 marks, 1 of them by others?");
    let kept = driver.step("kept").await;
    assert_eq!(kept["marks"], 2, "Escape keeps them");
    // Each mark says whose it is and where the wearable anchored it: the probe measures no
    // depth, so on the fallback plane.
    let mut list: Vec<&str> = kept["list"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    list.sort();
    assert_eq!(
        list,
        [
            "Arrow by youon the fallback plane",
            "Circle by Graceon the fallback plane"
        ],
        "{kept}"
    );
    driver.step("restored").await;

    // The arrow was drawn green and 8 pt thick, and comes back so.
    let mut seen = Vec::new();
    while seen.len() < 5 {
        match at_wearable(&mut at_glasses).await {
            ControlMessage::Annotate(a) if a.kind == AnnotationKind::Arrow => {
                assert_eq!((a.style.rgba, a.style.width), (0x34c759ff, 8.0));
                seen.push("Arrow".to_string());
            }
            ControlMessage::Annotate(a) => seen.push(format!("{:?}", a.kind)),
            ControlMessage::Clear { .. } => seen.push("Clear".into()),
            _ => {}
        }
    }
    seen[3..].sort();
    assert_eq!(seen, ["Circle", "Arrow", "Clear", "Arrow", "Circle"]);
    driver.finish().await;
    publishing.abort();
}

/// A refused sign-in is told what happened and what to do, not the protocol's words.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_sign_in_says_what_happened_and_what_to_do() {
    let server = TestServer::start().await;
    let store = &server.running.shared.store;
    let (revoked_id, revoked) = server.token_with_id(Role::Agent, "gone").await;
    store.revoke_token(revoked_id).await.expect("db");
    let (expired_id, expired) = server.token_with_id(Role::Agent, "last-year").await;
    let past = farsight_store::now_micros() - 1;
    store.set_token_expiry(expired_id, past).await.expect("db");
    let wearable = server.token(Role::Wearable, "glasses").await;
    let tokens = serde_json::json!(["fst_never-issued", revoked, expired, wearable]).to_string();

    let shots = shots_dir("console-signin-errors");
    // Over WebSocket: over WebTransport the close can overtake the refusal, and the page
    // then says it could not reach the server (a known fault, not what this test is about).
    let run = Run {
        block_udp: true,
        signin_tokens: Some(tokens.leak()),
        ..Run::default()
    };
    let mut driver = Driver::start(&server.http("/"), "", 0, &shots, run);
    let seen = driver.step("signin-errors").await;
    let texts: Vec<&str> = seen["texts"]
        .as_array()
        .expect("texts")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let starts = [
        "This token is not known. Check that it was pasted whole",
        "This token was revoked. Ask your administrator",
        "This token has expired. Ask your administrator",
        "This token is not for the console",
    ];
    assert_eq!(texts.len(), starts.len(), "{seen}");
    for (text, start) in texts.iter().zip(starts) {
        assert!(
            text.starts_with(start),
            "{text:?} should start with {start:?}"
        );
    }
    driver.finish().await;
}

/// Zoomed in, a mark drawn on the enlarged picture reaches the wearable where it was drawn on
/// the image; panning moves the picture and draws nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mark_drawn_zoomed_in_lands_where_it_was_drawn() {
    let server = TestServer::start().await;
    let wearable = server.connect(Role::Wearable, "glasses").await;
    let session = wearable.session;
    let (marks_tx, mut at_glasses) = mpsc::unbounded_channel();
    let publishing = publish_test_pattern(wearable, 90, Some(marks_tx));
    let agent = server.token(Role::Agent, "Ada").await;
    let shots = shots_dir("console-zoom");
    let run = Run {
        zoom: true,
        ..Run::default()
    };
    let mut driver = Driver::start(&server.http("/"), &agent, session.0, &shots, run);
    let seen = driver.step("zoomed").await;
    assert!(
        seen["zoomed"]
            .as_str()
            .is_some_and(|t| t.contains("scale(2)")),
        "{seen}"
    );
    assert_ne!(seen["zoomed"], seen["panned"], "the drag panned: {seen}");
    assert_eq!(seen["drew_while_panning"], false, "{seen}");
    let ControlMessage::Annotate(arrow) = at_wearable(&mut at_glasses).await else {
        panic!("the arrow first");
    };
    for (got, want) in arrow.points.iter().zip([[0.4, 0.4], [0.6, 0.55]]) {
        assert!(
            (got[0] - want[0]).abs() < 0.01 && (got[1] - want[1]).abs() < 0.01,
            "{:?} drawn at {want:?}",
            arrow.points
        );
    }
    driver.finish().await;
    publishing.abort();
}

/// Ending a session for everyone: a colleague's `End` shows as "session ended" and the
/// session leaves the queue; the page's own End (asked first) stops the wearable's stream;
/// both sessions are stored as ended and in the audit log with who ended them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_is_ended_for_everyone() {
    let server = TestServer::start().await;
    let mut sessions = Vec::new();
    let mut publishing = Vec::new();
    for name in ["glasses-a", "glasses-b"] {
        let wearable = server.connect(Role::Wearable, name).await;
        sessions.push(wearable.session);
        publishing.push(publish_test_pattern(wearable, 90, None));
    }
    let mut colleague = server.connect(Role::Agent, "Grace").await;
    colleague.join(sessions[0]).await.expect("colleague joins");
    let agent = server.token(Role::Agent, "Ada").await;
    let shots = shots_dir("console-end");
    let run = Run {
        end_then: Some(sessions[1].0),
        ..Run::default()
    };
    let mut driver = Driver::start(&server.http("/"), &agent, sessions[0].0, &shots, run);
    driver.step("watching").await;

    let end = ControlMessage::End {
        session: sessions[0],
    };
    colleague.send(&end).await.expect("sent");
    driver
        .command(serde_json::json!({"cmd": "ended-by-other"}))
        .await;
    let ended = driver.step("ended").await;
    assert_eq!(ended["end_button"], false, "{ended}");
    let i_ended = driver.step("i-ended").await;
    assert!(
        i_ended["question"]
            .as_str()
            .is_some_and(|q| q.starts_with("End this session for the wearer and every agent?")),
        "{i_ended}"
    );

    for (task, session) in publishing.into_iter().zip(&sessions) {
        let connection = tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("the wearable stops within 10 s of the End")
            .expect("published");
        drop(connection);
        let stored = server.running.shared.store.session(*session).await;
        let stored = stored.expect("db").expect("stored");
        assert!(
            stored.ended_at.is_some(),
            "session {session} stored as ended"
        );
    }
    let log = server
        .running
        .shared
        .store
        .audit_log(100)
        .await
        .expect("audit");
    for (who, session) in [("Grace", sessions[0]), ("Ada", sessions[1])] {
        assert!(
            log.iter().any(|e| e.action.as_str() == "end"
                && e.actor == who
                && e.session == Some(session.0 as i64)),
            "{who} ended {session}: {log:?}"
        );
    }
    driver.finish().await;
}

/// An agent invites a colleague from the console: the token shown opens that session, and
/// no other, for the colleague's own client; the invitation is in the audit log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invited_colleague_opens_that_session_only() {
    let server = TestServer::start().await;
    let mut sessions = Vec::new();
    let mut publishing = Vec::new();
    for name in ["glasses-a", "glasses-b"] {
        let wearable = server.connect(Role::Wearable, name).await;
        sessions.push(wearable.session);
        publishing.push(publish_test_pattern(wearable, 90, None));
    }
    let agent = server.token(Role::Agent, "Ada").await;
    let run = Run {
        invite: true,
        ..Run::default()
    };
    let shots = shots_dir("console-invite");
    let mut driver = Driver::start(&server.http("/"), &agent, sessions[0].0, &shots, run);
    let invited = driver.step("invited").await;
    let token = invited["token"].as_str().expect("a token").to_string();
    assert!(
        invited["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("A token for guest of Ada: it opens this session only")),
        "{invited}"
    );

    let mut guest = farsight_client::connect(&server.options(Role::Agent, &token))
        .await
        .expect("the guest signs in");
    guest.join(sessions[0]).await.expect("joins the session");
    match guest.join(sessions[1]).await {
        Err(farsight_client::ClientError::Refused { code, .. }) => {
            assert_eq!(code, farsight_protocol::ErrorCode::Unauthorized);
        }
        other => panic!("another session: {other:?}"),
    }
    let log = server
        .running
        .shared
        .store
        .audit_log(50)
        .await
        .expect("audit");
    assert!(
        log.iter().any(|e| e.action.as_str() == "token_create"
            && e.actor == "Ada"
            && e.session == Some(sessions[0].0 as i64)),
        "{log:?}"
    );
    driver.finish().await;
    publishing.iter().for_each(|p| p.abort());
}
