//! The Playwright driver of the console (tests/console/console.mjs) as a child process that
//! speaks JSON lines: the console tests and the console benchmark use it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

pub const STEP_TIMEOUT: Duration = Duration::from_secs(60);

pub fn console_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/console")
}

/// How the driver runs: through a firewall that drops UDP (the console must fall back to
/// WebSocket), as the benchmark (only join and measure delays for that many seconds), or on
/// the outreach view.
#[derive(Clone, Copy, Debug, Default)]
pub struct Run {
    pub block_udp: bool,
    pub bench_seconds: Option<u64>,
    pub outreach: bool,
    /// Switch to this session and back once the first one plays.
    pub switch_to: Option<u64>,
    /// Report how the page shows people's text (names, a text mark) once a mark is drawn.
    pub hostile_text: bool,
    /// Report how soon the page says the wearer is gone, when told to expect it.
    pub wearer_gone: bool,
    /// Sign in through the single sign-on button, not with the token.
    pub sso: bool,
    /// Draw beside a colleague's mark, clear both (asked first) and bring them back.
    pub clear_undo: bool,
    /// Zoom in, draw, and pan.
    pub zoom: bool,
    /// Invite a colleague into the session.
    pub invite: bool,
    /// See the session ended by a colleague, then join this one and end it.
    pub end_then: Option<u64>,
    /// Sign in with each of these (a JSON list) and report what the page says.
    pub signin_tokens: Option<&'static str>,
}

/// The Playwright driver, started with its inputs; its steps are read as JSON lines.
pub struct Driver {
    pub child: tokio::process::Child,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    stdin: tokio::process::ChildStdin,
}

impl Driver {
    pub fn start(url: &str, token: &str, session: u64, shots: &Path, run: Run) -> Driver {
        let dir = console_dir();
        assert!(
            dir.join("node_modules/playwright-core").exists(),
            "run `npm ci --prefix tests/console` (scripts/setup.sh does)"
        );
        let mut cmd = Command::new("node");
        // Each mode is an environment variable of console.mjs.
        let flags = [
            ("OUTREACH", run.outreach),
            ("HOSTILE_TEXT", run.hostile_text),
            ("WEARER_GONE", run.wearer_gone),
            ("SSO", run.sso),
            ("CLEAR_UNDO", run.clear_undo),
            ("ZOOM", run.zoom),
            ("INVITE", run.invite),
        ];
        for (name, _) in flags.iter().filter(|(_, on)| *on) {
            cmd.env(name, "1");
        }
        let values = [
            ("BENCH_SECONDS", run.bench_seconds.map(|s| s.to_string())),
            ("SWITCH_SESSION", run.switch_to.map(|s| s.to_string())),
            ("END_SESSION", run.end_then.map(|s| s.to_string())),
            ("SIGNIN_TOKENS", run.signin_tokens.map(str::to_string)),
        ];
        for (name, value) in values {
            if let Some(value) = value {
                cmd.env(name, value);
            }
        }
        let mut child = cmd
            .arg(dir.join("console.mjs"))
            .env("CONSOLE_URL", url)
            .env("AGENT_TOKEN", token)
            .env("SESSION_ID", session.to_string())
            .env("SHOTS_DIR", shots)
            .env("BLOCK_UDP", if run.block_udp { "1" } else { "0" })
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("node is installed");
        let lines = BufReader::new(child.stdout.take().expect("piped")).lines();
        let stdin = child.stdin.take().expect("piped");
        Driver {
            child,
            lines,
            stdin,
        }
    }

    /// The next step named `name`, echoing browser console output on the way.
    pub async fn step(&mut self, name: &str) -> Value {
        loop {
            let line = tokio::time::timeout(STEP_TIMEOUT, self.lines.next_line())
                .await
                .unwrap_or_else(|_| panic!("no {name:?} step within {STEP_TIMEOUT:?}"))
                .expect("driver output")
                .unwrap_or_else(|| panic!("driver ended before {name:?}"));
            let Ok(step) = serde_json::from_str::<Value>(&line) else {
                eprintln!("driver: {line}");
                continue;
            };
            match step["step"].as_str() {
                Some(s) if s == name => return step,
                Some("error") => panic!("console driver failed: {}", step["message"]),
                _ => eprintln!("driver: {line}"),
            }
        }
    }

    pub async fn command(&mut self, cmd: Value) {
        let mut line = cmd.to_string();
        line.push('\n');
        self.stdin
            .write_all(line.as_bytes())
            .await
            .expect("driver stdin");
    }

    /// Tells the driver the test is done and checks that it exits cleanly.
    pub async fn finish(mut self) {
        self.command(serde_json::json!({"cmd": "done"})).await;
        let status = tokio::time::timeout(STEP_TIMEOUT, self.child.wait())
            .await
            .expect("driver exits")
            .expect("driver status");
        assert!(status.success(), "driver exited with {status}");
    }
}
