//! A relay killed with SIGKILL, mid-stream, and started again on the same ports and data: the
//! wearable notices at once (the restarted relay answers its packets with a stateless reset,
//! its key kept in the data directory), reconnects and resumes its session, and an agent
//! watching it sees new frames within 5 s of the restart. The relay runs as a process of its
//! own: this test binary again, running only `relay_process`.

mod support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use farsight_client::connect;
use farsight_protocol::{Role, SessionId};
use farsight_server::ServeConfig;
use support::{HEIGHT, RUN_LIMIT, WIDTH, next_frame, options_at, spawn_wearable};

/// How soon after the restart an agent must see the wearable's frames again.
const RECONNECT_LIMIT: Duration = Duration::from_secs(5);

/// Not a test: the relay `a_killed_relay_is_reconnected_within_seconds` starts and kills. It
/// serves `FARSIGHT_RELAY_DIR` (on `FARSIGHT_RELAY_QUIC` and `FARSIGHT_RELAY_HTTP` when set),
/// prints its addresses, fingerprint and fresh tokens on one line, and runs until killed.
#[tokio::test]
#[ignore = "the relay another test kills; it starts this itself"]
async fn relay_process() -> Result<()> {
    let Some(dir) = std::env::var_os("FARSIGHT_RELAY_DIR") else {
        return Ok(());
    };
    let mut config = ServeConfig::ephemeral(Path::new(&dir));
    if let Ok(addr) = std::env::var("FARSIGHT_RELAY_QUIC") {
        config.quic_listen = addr.parse()?;
    }
    if let Ok(addr) = std::env::var("FARSIGHT_RELAY_HTTP") {
        config.http_listen = addr.parse()?;
    }
    let running = farsight_server::start(&config).await?;
    let store = &running.shared.store;
    let (_, wearable) = store.create_token(Role::Wearable, "glasses").await?;
    let (_, agent) = store.create_token(Role::Agent, "alice").await?;
    println!(
        "relay {} {} {} {wearable} {agent}",
        running.quic_addr, running.http_addr, running.fingerprint
    );
    std::future::pending::<()>().await;
    Ok(())
}

/// A relay process, and what it printed.
struct RelayProcess {
    child: Child,
    quic: SocketAddr,
    http: SocketAddr,
    fingerprint: String,
    wearable_token: String,
    agent_token: String,
}

impl RelayProcess {
    fn start(dir: &Path, ports: Option<(SocketAddr, SocketAddr)>) -> Result<Self> {
        let mut command = Command::new(std::env::current_exe()?);
        command
            .args([
                "relay_process",
                "--exact",
                "--ignored",
                "--nocapture",
                "--quiet",
            ])
            .env("FARSIGHT_RELAY_DIR", dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some((quic, http)) = ports {
            command
                .env("FARSIGHT_RELAY_QUIC", quic.to_string())
                .env("FARSIGHT_RELAY_HTTP", http.to_string());
        }
        let mut child = command.spawn().context("starting the relay process")?;
        let stdout = child.stdout.take().context("the relay's output")?;
        let line = BufReader::new(stdout)
            .lines()
            .find_map(|line| line.ok().filter(|l| l.starts_with("relay ")))
            .context("the relay process printed no addresses")?;
        let words: Vec<&str> = line.split_whitespace().collect();
        let [_, quic, http, fingerprint, wearable, agent] = words[..] else {
            bail!("the relay process printed {line:?}");
        };
        Ok(Self {
            quic: quic.parse()?,
            http: http.parse()?,
            fingerprint: fingerprint.to_owned(),
            wearable_token: wearable.to_owned(),
            agent_token: agent.to_owned(),
            child,
        })
    }

    /// The next frame an agent that joins `session` now receives, by `deadline`.
    async fn watch_one(
        &self,
        session: SessionId,
        deadline: tokio::time::Instant,
    ) -> Result<farsight_protocol::Object> {
        let options = options_at(self.quic, &self.fingerprint, Role::Agent, &self.agent_token)?;
        let mut agent = connect(&options).await?;
        agent.join(session).await?;
        next_frame(&mut agent.watcher(), deadline).await
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_relay_is_reconnected_within_seconds() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let deadline = tokio::time::Instant::now() + RUN_LIMIT;
    let mut relay = RelayProcess::start(dir.path(), None)?;
    let mut wearable = spawn_wearable(
        (relay.quic, &relay.fingerprint),
        dir.path(),
        &relay.wearable_token,
        (WIDTH, HEIGHT),
        &["--sim", "--headless"],
        None,
    )?;
    let session = loop {
        let log = wearable.log();
        if let Some(id) = log
            .lines()
            .find_map(|l| l.strip_prefix("publishing session "))
        {
            break SessionId(id.trim().parse()?);
        }
        wearable.ensure_running()?;
        ensure!(
            tokio::time::Instant::now() < deadline,
            "no session; log:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let before = relay.watch_one(session, deadline).await?;

    // SIGKILL: no goodbye reaches the wearable.
    let ports = (relay.quic, relay.http);
    relay.child.kill()?;
    relay.child.wait()?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    relay = RelayProcess::start(dir.path(), Some(ports))?;
    let restarted = tokio::time::Instant::now();
    let after = loop {
        let attempt = tokio::time::Instant::now() + Duration::from_secs(2);
        match relay.watch_one(session, attempt).await {
            Ok(frame) => break frame,
            // The session is not back yet.
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
        ensure!(
            restarted.elapsed() < RECONNECT_LIMIT * 4,
            "no frames after the restart; log:\n{}",
            wearable.log()
        );
    };
    let back = restarted.elapsed();
    println!("frames came back {back:?} after the restart");
    ensure!(
        back < RECONNECT_LIMIT,
        "frames came back {back:?} after the restart (limit {RECONNECT_LIMIT:?}); log:\n{}",
        wearable.log()
    );
    ensure!(
        after.frame.0 > before.frame.0,
        "frame {} after the restart, {} before it",
        after.frame.0,
        before.frame.0
    );
    wearable.stop_still_running().await?;
    Ok(())
}
