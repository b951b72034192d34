//! The `farsight` binary as a person runs it: tokens, `serve`, and the probe publishing real
//! GStreamer H.264 to a probe watching it.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_farsight");

fn farsight(data: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("farsight runs")
}

fn ok_stdout(out: Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

fn token(data: &Path, role: &str, name: &str) -> String {
    let out = ok_stdout(farsight(
        data,
        &["token", "create", "--role", role, "--name", name],
    ));
    out.trim().to_string()
}

/// Kills the server when the test ends, however it ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Started {
    _server: Server,
    quic: String,
    http: String,
    fingerprint: String,
}

fn serve(data: &Path) -> Started {
    serve_on(data, "127.0.0.1:0")
}

/// `farsight serve` with its QUIC relay on `quic` (a fixed port survives a restart).
fn serve_on(data: &Path, quic: &str) -> Started {
    let mut child = Command::new(BIN)
        .arg("--data-dir")
        .arg(data)
        .args([
            "serve",
            "--quic-listen",
            quic,
            "--http-listen",
            "127.0.0.1:0",
            "--webtransport-listen",
            "127.0.0.1:0",
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("serve starts");
    let stdout = child.stdout.take().expect("piped");
    let server = Server(child);
    let mut lines = BufReader::new(stdout).lines();
    let mut field = |prefix: &str| {
        let line = lines.next().expect("a line").expect("readable");
        line.strip_prefix(prefix)
            .unwrap_or_else(|| panic!("{line:?} should start with {prefix:?}"))
            .trim()
            .to_string()
    };
    let quic = field("QUIC");
    let http = field("HTTP");
    let fingerprint = field("certificate SHA-256");
    // Keep reading, so the server never writes into a closed pipe.
    std::thread::spawn(move || lines.for_each(drop));
    Started {
        _server: server,
        quic: quic.split_whitespace().next().expect("address").to_string(),
        http,
        fingerprint,
    }
}

#[test]
fn tokens_are_created_listed_and_revoked() {
    let dir = tempfile::tempdir().expect("temp dir");
    let secret = token(dir.path(), "supervisor", "sam");
    assert!(secret.starts_with("fst_") && secret.len() == 68, "{secret}");
    let list = ok_stdout(farsight(dir.path(), &["token", "list"]));
    let line = list.lines().find(|l| l.ends_with("sam")).expect("listed");
    assert!(
        line.contains("supervisor") && line.contains("active"),
        "{line}"
    );
    assert!(!list.contains(&secret), "secrets are never listed");
    let id = line.split_whitespace().next().expect("id");
    ok_stdout(farsight(dir.path(), &["token", "revoke", id]));
    let list = ok_stdout(farsight(dir.path(), &["token", "list"]));
    assert!(
        list.lines()
            .any(|l| l.ends_with("sam") && l.contains("revoked"))
    );
    let again = farsight(dir.path(), &["token", "revoke", id]);
    assert!(!again.status.success(), "revoking twice is an error");
    let bad_role = farsight(
        dir.path(),
        &["token", "create", "--role", "pilot", "--name", "x"],
    );
    assert!(String::from_utf8_lossy(&bad_role.stderr).contains("unknown role"));
}

#[test]
fn tokens_expire_and_rotate() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path();
    let create = |lifetime: &str| {
        ok_stdout(farsight(
            data,
            &[
                "token",
                "create",
                "--role",
                "agent",
                "--name",
                "ann",
                "--expires-in",
                lifetime,
            ],
        ))
        .trim()
        .to_string()
    };
    let bad = farsight(
        data,
        &[
            "token",
            "create",
            "--role",
            "agent",
            "--name",
            "x",
            "--expires-in",
            "soon",
        ],
    );
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("e.g. 90d"),
        "a bad lifetime says what to give"
    );
    create("1s");
    create("90d");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let list = ok_stdout(farsight(data, &["token", "list"]));
    let states: Vec<&str> = list
        .lines()
        .filter(|l| l.ends_with("ann"))
        .map(|l| l.split_whitespace().nth(2).expect("state"))
        .collect();
    assert_eq!(states, ["expired", "active"], "{list}");
    let live = list
        .lines()
        .find(|l| l.ends_with("ann") && l.contains("active"))
        .expect("listed");
    let id = live.split_whitespace().next().expect("id");
    let rotated = ok_stdout(farsight(data, &["token", "rotate", id]));
    assert!(rotated.trim().starts_with("fst_"), "{rotated}");
    let list = ok_stdout(farsight(data, &["token", "list"]));
    let row = |id: &str| list.lines().find(|l| l.starts_with(id)).expect("row");
    assert!(
        row(id).contains("revoked"),
        "the old secret is revoked: {list}"
    );
    let new = list
        .lines()
        .filter(|l| l.ends_with("ann") && l.contains("active"))
        .count();
    assert_eq!(new, 1, "one replacement, with the same lifetime: {list}");
    assert!(!farsight(data, &["token", "rotate", id]).status.success());
}

/// A token limited to one session says so in the list, keeps it when rotated, and every
/// change to credentials is in the audit log, by the command line's user.
#[test]
fn a_session_token_is_listed_rotated_and_audited() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path();
    let args = [
        "token",
        "create",
        "--role",
        "agent",
        "--name",
        "carol",
        "--session",
        "8312",
    ];
    ok_stdout(farsight(data, &args));
    let service = farsight(
        data,
        &[
            "token",
            "create",
            "--role",
            "service",
            "--name",
            "s",
            "--session",
            "1",
        ],
    );
    assert!(!service.status.success(), "a service token has no session");
    let list = ok_stdout(farsight(data, &["token", "list"]));
    let row = list.lines().find(|l| l.ends_with("carol")).expect("listed");
    assert_eq!(row.split_whitespace().nth(4), Some("8312"), "{list}");
    let id = row.split_whitespace().next().expect("id").to_string();
    ok_stdout(farsight(data, &["token", "rotate", &id]));
    let list = ok_stdout(farsight(data, &["token", "list"]));
    let active = list
        .lines()
        .find(|l| l.ends_with("carol") && l.contains("active"))
        .expect("the replacement");
    assert_eq!(active.split_whitespace().nth(4), Some("8312"), "{list}");
    let new_id = active.split_whitespace().next().expect("id").to_string();
    ok_stdout(farsight(data, &["token", "revoke", &new_id]));

    let audit = ok_stdout(farsight(data, &["audit"]));
    let actions: Vec<&str> = audit
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(2))
        .collect();
    assert_eq!(
        actions,
        ["token_revoke", "token_rotate", "token_create"],
        "{audit}"
    );
    assert!(audit.contains("command line ("), "{audit}");
    assert!(audit.contains("limited to session 8312"), "{audit}");
}

#[test]
fn the_data_directory_and_the_database_are_readable_by_their_owner_alone() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("fresh").join("farsight-data");
    ok_stdout(farsight(&data, &["migrate"]));
    let mode = |p: &Path| std::fs::metadata(p).expect("exists").permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700, "data directory");
    assert_eq!(mode(&data.join("farsight.db")), 0o600, "database");
    for side in ["farsight.db-wal", "farsight.db-shm"] {
        let path = data.join(side);
        if path.exists() {
            assert_eq!(mode(&path), 0o600, "{side}");
        }
    }
    // A database made world-readable before this version is closed to others on open.
    std::fs::set_permissions(data.join("farsight.db"), PermissionsExt::from_mode(0o644))
        .expect("chmod");
    ok_stdout(farsight(&data, &["migrate"]));
    assert_eq!(
        mode(&data.join("farsight.db")),
        0o600,
        "database after reopening"
    );
}

#[test]
fn a_probe_without_a_token_says_how_to_give_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = Command::new(BIN)
        .arg("--data-dir")
        .arg(dir.path())
        .args(["probe", "watch", "--session", "1", "--fingerprint"])
        .arg("00".repeat(32))
        .env_remove("FARSIGHT_TOKEN")
        .output()
        .expect("farsight runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--token-file"), "{err}");
}

#[test]
fn probe_watch_sees_probe_publish_through_a_served_relay() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path();
    ok_stdout(farsight(data, &["migrate"]));
    let wearable = token(data, "wearable", "glasses");
    let agent = token(data, "agent", "alice");
    let server = serve(data);

    let health = reqwest::blocking_get(&format!("{}/healthz", server.http));
    assert_eq!(health.trim(), "ok");

    let mut publish = Command::new(BIN)
        .args(["--data-dir"])
        .arg(data)
        .args(["probe", "publish", "--server", &server.quic])
        .args(["--fingerprint", &server.fingerprint])
        .args(["--width", "640", "--height", "360", "--seconds", "8"])
        // The token from the environment, out of the process list.
        .env("FARSIGHT_TOKEN", &wearable)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("publish starts");
    let mut out = BufReader::new(publish.stdout.take().expect("piped")).lines();
    let first = out.next().expect("a line").expect("readable");
    let session = first
        .strip_prefix("publishing session ")
        .unwrap_or_else(|| panic!("unexpected {first:?}"))
        .to_string();

    let token_file = data.join("agent-token");
    std::fs::write(&token_file, format!("{agent}\n")).expect("token file");
    let watched = ok_stdout(
        Command::new(BIN)
            .args(["--data-dir"])
            .arg(data)
            .args(["probe", "watch", "--server", &server.quic, "--token-file"])
            .arg(&token_file)
            .args(["--session", &session, "--frames", "60", "--json"])
            .env("RUST_LOG", "warn")
            .output()
            .expect("watch runs"),
    );
    let lines: Vec<serde_json::Value> = watched
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON lines"))
        .collect();
    let (summary, frames) = lines.split_last().expect("output");
    assert_eq!(summary["frames"], 60);
    assert_eq!(summary["first_frame_keyframe"], true);
    assert_eq!(frames.len(), 60);
    let xs: Vec<f64> = frames
        .iter()
        .map(|f| f["position"][0].as_f64().expect("number"))
        .collect();
    let spread =
        xs.iter().cloned().fold(f64::MIN, f64::max) - xs.iter().cloned().fold(f64::MAX, f64::min);
    assert!(spread > 0.05, "the synthetic head moved ({spread} m)");
    // Each line carries the pose's rotation too: a unit quaternion, x, y, z, w.
    for f in frames {
        let q: Vec<f64> = f["rotation"]
            .as_array()
            .expect("a rotation")
            .iter()
            .map(|c| c.as_f64().expect("number"))
            .collect();
        let norm = q.iter().map(|c| c * c).sum::<f64>().sqrt();
        assert!(q.len() == 4 && (norm - 1.0).abs() < 0.01, "{f}");
    }
    // Every frame carries an encoded picture.
    assert!(
        frames
            .iter()
            .all(|f| f["bytes"].as_u64().expect("size") > 0)
    );

    let metrics = reqwest::blocking_get(&format!("{}/metrics", server.http));
    let forwarded = metrics
        .lines()
        .find_map(|l| l.strip_prefix("farsight_objects_forwarded_total "))
        .expect("metric present");
    assert!(forwarded.parse::<u64>().expect("number") >= 60);

    let report: serde_json::Value =
        serde_json::from_str(&out.next().expect("a report").expect("readable")).expect("JSON");
    assert!(report["frames"].as_u64().expect("count") >= 60, "{report}");
    assert!(
        report["keyframes"].as_u64().expect("count") >= 2,
        "{report}"
    );
    assert!(publish.wait().expect("publish ends").success());
}

/// A tiny blocking GET so this test needs no async runtime.
mod reqwest {
    pub fn blocking_get(url: &str) -> String {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            ::reqwest::get(url)
                .await
                .expect("request")
                .text()
                .await
                .expect("body")
        })
    }
}

#[test]
fn acknowledged_events_survive_a_killed_server() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path();
    let service = token(data, "service", "platform");
    let body: String = (0..100)
        .map(|i| {
            format!(
                "{{\"id\":\"e{i}\",\"user\":\"u{}\",\"ts\":{},\"kind\":\"api_error\",\"topic\":\"payments\"}}\n",
                i % 7,
                1_790_000_000_000i64 + i * 60_000
            )
        })
        .collect();
    let post = |server: &Started| -> serde_json::Value {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            ::reqwest::Client::new()
                .post(format!("{}/v1/events", server.http))
                .bearer_auth(&service)
                .body(body.clone())
                .send()
                .await
                .expect("request")
                .json()
                .await
                .expect("JSON")
        })
    };

    let mut server = serve(data);
    let first = post(&server);
    assert_eq!(first["accepted"], 100, "{first}");
    // SIGKILL: no shutdown path runs; only what was committed before the reply remains.
    server._server.0.kill().expect("killed");
    server._server.0.wait().expect("reaped");

    let server = serve(data);
    let again = post(&server);
    assert_eq!(
        (&again["accepted"], &again["duplicates"]),
        (&serde_json::json!(0), &serde_json::json!(100)),
        "every acknowledged event was still there: {again}"
    );
}

/// A wearable (the probe, with the client's reconnect) whose server is SIGKILLed and started
/// again on the same port and data: it reconnects within 5 s of the restart and resumes its
/// session, and an agent joining then sees new frames with group numbers still increasing.
#[test]
fn a_killed_and_restarted_server_is_reconnected_within_5_s_and_the_session_resumes() {
    use farsight_client::{ConnectOptions, Trust, connect, parse_fingerprint};
    use farsight_protocol::{Role, SessionId};
    use farsight_server::probe::{self, EncoderSettings, PublishOptions};
    use std::time::{Duration, Instant};

    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path();
    ok_stdout(farsight(data, &["migrate"]));
    let wearable = token(data, "wearable", "glasses");
    let agent = token(data, "agent", "alice");
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("a free port")
        .port();
    let quic = format!("127.0.0.1:{port}");
    let server = serve_on(data, &quic);
    let fingerprint = parse_fingerprint(&server.fingerprint).expect("hex");
    let options = |role, token: &str| ConnectOptions {
        server: quic.parse().expect("address"),
        server_name: "localhost".into(),
        trust: Trust::Fingerprint(fingerprint),
        role,
        token: token.into(),
        resume: SessionId(0),
        receive_window: None,
    };
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let publish_options = PublishOptions {
        encoder: EncoderSettings {
            width: 320,
            height: 240,
            fps: 15,
            bitrate_kbps: 300,
            keyframe_interval: 15,
            ..EncoderSettings::default()
        },
        duration: Some(Duration::from_secs(30)),
        marks: None,
        reconnect: Some(options(Role::Wearable, &wearable)),
    };
    let mut conn = runtime
        .block_on(connect(&options(Role::Wearable, &wearable)))
        .expect("wearable connects");
    let session = conn.session;
    let publishing =
        runtime.spawn(async move { probe::publish(&mut conn, &publish_options).await });

    // The last group an agent sees before the kill, then the first after the restart.
    let watch_one = |started: Instant| {
        runtime.block_on(async {
            let mut watcher_conn = connect(&options(Role::Agent, &agent))
                .await
                .expect("agent connects");
            watcher_conn
                .join(session)
                .await
                .expect("joins the same session");
            let mut watcher = watcher_conn.watcher();
            let r = tokio::time::timeout(Duration::from_secs(10), watcher.next_object())
                .await
                .expect("a frame within 10 s")
                .expect("a frame");
            (r.header.group, started.elapsed())
        })
    };
    let (before, _) = watch_one(Instant::now());
    drop(server); // SIGKILL: nothing is closed cleanly.
    std::thread::sleep(Duration::from_millis(500));

    let restarted = serve_on(data, &quic);
    let ready = Instant::now();
    let (after, took) = watch_one(ready);
    assert!(
        took < Duration::from_secs(5),
        "frames flowed again {took:?} after the restart"
    );
    assert!(
        after > before,
        "groups keep increasing: {before:?} then {after:?}"
    );

    publishing.abort();
    drop(restarted);
}

/// Beyond loopback the console and API are not served as plain HTTP unless asked for: the
/// server refuses to start and says what to give; with `--insecure-http` it serves.
#[test]
fn plain_http_beyond_loopback_is_refused_unless_asked_for() {
    let dir = tempfile::tempdir().expect("temp dir");
    let serve = |extra: &[&str]| {
        let child = Command::new(BIN)
            .arg("--data-dir")
            .arg(dir.path())
            .args([
                "serve",
                "--http-listen",
                "0.0.0.0:0",
                "--quic-listen",
                "127.0.0.1:0",
            ])
            .args(["--webtransport-listen", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("farsight runs");
        Server(child)
    };
    let mut refused = serve(&[]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let status = loop {
        if let Some(status) = refused.0.try_wait().expect("wait") {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the server started on 0.0.0.0 with plain HTTP"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut refused.0.stderr.take().expect("stderr"), &mut stderr)
        .expect("stderr read");
    assert!(!status.success());
    for words in ["beyond loopback", "--cert and --key", "--insecure-http"] {
        assert!(stderr.contains(words), "{words:?} in {stderr}");
    }

    let mut insecure = serve(&["--insecure-http"]);
    let stdout = insecure.0.stdout.take().expect("stdout");
    let http = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find(|l| l.starts_with("HTTP"))
        .expect("serving");
    assert!(http.contains("http://0.0.0.0:"), "{http}");
}
