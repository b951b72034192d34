//! A relay on loopback and the real `farsight-wearable` binary publishing to it, for the
//! tests that go through the relay.
#![allow(dead_code)]

pub mod display;

use std::fs::File;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use farsight_client::{ConnectOptions, Received, Trust, Watcher, connect, parse_fingerprint};
use farsight_protocol::{Object, Role, SessionId};
use farsight_server::probe::{self, EncoderSettings, PublishOptions, PublishReport};
use farsight_server::{Running, ServeConfig};

pub const WIDTH: u32 = 640;
pub const HEIGHT: u32 = 360;
/// The most any test here waits for the wearable (software rendering is slow).
pub const RUN_LIMIT: Duration = Duration::from_secs(300);

/// The next frame `watcher` receives, by `deadline`.
pub async fn next_frame(watcher: &mut Watcher, deadline: tokio::time::Instant) -> Result<Object> {
    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
    Ok(tokio::time::timeout(left, watcher.next_object())
        .await
        .context("no frame in time")?
        .context("the agent's connection closed")?
        .object)
}

pub fn options(running: &Running, role: Role, token: &str) -> Result<ConnectOptions> {
    options_at(running.quic_addr, &running.fingerprint, role, token)
}

/// How to reach a relay at `server` whose certificate has `fingerprint`.
pub fn options_at(
    server: SocketAddr,
    fingerprint: &str,
    role: Role,
    token: &str,
) -> Result<ConnectOptions> {
    Ok(ConnectOptions {
        server,
        server_name: "localhost".into(),
        trust: Trust::Fingerprint(parse_fingerprint(fingerprint)?),
        role,
        token: token.to_owned(),
        resume: SessionId(0),
        receive_window: None,
    })
}

/// A relay on loopback in a temporary directory, and a wearable token for it.
pub struct Relay {
    pub running: Running,
    dir: tempfile::TempDir,
    pub wearable_token: String,
}

impl Relay {
    pub async fn start() -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let running = farsight_server::start(&ServeConfig::ephemeral(dir.path())).await?;
        let (_, wearable_token) = running
            .shared
            .store
            .create_token(Role::Wearable, "glasses")
            .await?;
        Ok(Self {
            running,
            dir,
            wearable_token,
        })
    }

    /// Stops the relay and starts it again on the same ports, certificate and database.
    pub async fn restart(self) -> Result<Self> {
        let mut config = ServeConfig::ephemeral(self.dir.path());
        config.quic_listen = self.running.quic_addr;
        config.http_listen = self.running.http_addr;
        self.running.shutdown().await;
        Ok(Self {
            running: farsight_server::start(&config).await?,
            ..self
        })
    }

    /// Runs `farsight-wearable --sim --headless` publishing here; its output goes to a log.
    pub fn wearable(&self, token: &str, extra: &[&str]) -> Result<Wearable> {
        self.wearable_sized(token, (WIDTH, HEIGHT), extra)
    }

    /// The same, rendering and publishing at `size`.
    pub fn wearable_sized(
        &self,
        token: &str,
        size: (u32, u32),
        extra: &[&str],
    ) -> Result<Wearable> {
        let mut args = vec!["--sim", "--headless"];
        args.extend_from_slice(extra);
        self.spawn_wearable(token, size, &args, None)
    }

    /// Runs `farsight-wearable` publishing here with `args` (its source among them), its
    /// window on `display` when given; its output goes to a log.
    pub fn spawn_wearable(
        &self,
        token: &str,
        size: (u32, u32),
        args: &[&str],
        display: Option<&str>,
    ) -> Result<Wearable> {
        let relay = (self.running.quic_addr, self.running.fingerprint.as_str());
        spawn_wearable(relay, self.dir.path(), token, size, args, display)
    }

    /// The probe publishing GStreamer's test video at `size` (nothing rendered), as a
    /// reference for the simulator; it publishes until the task is aborted.
    pub async fn probe(
        &self,
        size: (u32, u32),
    ) -> Result<(
        SessionId,
        tokio::task::JoinHandle<Result<PublishReport, farsight_server::probe::ProbeError>>,
    )> {
        let mut conn = connect(&options(
            &self.running,
            Role::Wearable,
            &self.wearable_token,
        )?)
        .await?;
        let session = conn.session;
        let publishing = tokio::spawn(async move {
            let options = PublishOptions {
                encoder: EncoderSettings {
                    width: size.0,
                    height: size.1,
                    ..EncoderSettings::default()
                },
                duration: None,
                marks: None,
                reconnect: None,
            };
            probe::publish(&mut conn, &options).await
        });
        Ok((session, publishing))
    }

    /// A directory that lives as long as the relay, for a test's files.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// The session the wearable opened, once it has.
    pub async fn session(
        &self,
        wearable: &mut Wearable,
        deadline: tokio::time::Instant,
    ) -> Result<SessionId> {
        loop {
            if let Some(open) = self.running.shared.store.open_sessions().await?.first() {
                return Ok(SessionId(u64::try_from(open.id)?));
            }
            wearable.ensure_running()?;
            ensure!(
                tokio::time::Instant::now() < deadline,
                "no session in time; log:\n{}",
                wearable.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// An agent watching `session`; the connection lives as long as the watcher is read.
    pub async fn watch(
        &self,
        session: SessionId,
    ) -> Result<(farsight_client::Connection, Watcher)> {
        let (_, token) = self
            .running
            .shared
            .store
            .create_token(Role::Agent, "alice")
            .await?;
        let mut agent = connect(&options(&self.running, Role::Agent, &token)?).await?;
        agent.join(session).await?;
        let watcher = agent.watcher();
        Ok((agent, watcher))
    }
}

pub struct Wearable {
    pub child: tokio::process::Child,
    log_path: PathBuf,
}

impl Wearable {
    /// Runs `farsight-wearable` with `args`, its window on `display` when given, logging
    /// into `dir`.
    pub fn spawn(args: &[&str], dir: &std::path::Path, display: Option<&str>) -> Result<Self> {
        let log_path = dir.join("wearable.log");
        let log = File::create(&log_path)?;
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_farsight-wearable"));
        command
            .args(args)
            .env_remove("WAYLAND_DISPLAY")
            .stdout(log.try_clone()?)
            .stderr(log)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        match display {
            Some(display) => command.env("DISPLAY", display),
            None => command.env_remove("DISPLAY"),
        };
        let child = command.spawn().context("starting farsight-wearable")?;
        Ok(Self { child, log_path })
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// An error carrying the log once the wearable has exited.
    pub fn ensure_running(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("farsight-wearable exited ({status}); log:\n{}", self.log());
        }
        Ok(())
    }

    /// Kills the wearable, which must still be running: a test's wearable outlives its checks.
    pub async fn stop_still_running(&mut self) -> Result<()> {
        self.ensure_running()?;
        self.child.kill().await?;
        Ok(())
    }

    /// Frames from `watcher` until `done` says so.
    pub async fn receive(
        &self,
        watcher: &mut Watcher,
        deadline: tokio::time::Instant,
        mut done: impl FnMut(&[Received]) -> bool,
    ) -> Result<Vec<Received>> {
        let mut frames = Vec::new();
        while !done(&frames) {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, watcher.next_object()).await {
                Ok(Some(received)) => frames.push(received),
                Ok(None) => bail!("the agent's connection closed; log:\n{}", self.log()),
                Err(_) => bail!("only {} frames in time; log:\n{}", frames.len(), self.log()),
            }
        }
        Ok(frames)
    }
}

/// Runs `farsight-wearable` publishing to `relay` (its QUIC address and certificate
/// fingerprint) with `args`, its window on `display` when given; it logs into `dir`.
pub fn spawn_wearable(
    (server, fingerprint): (SocketAddr, &str),
    dir: &std::path::Path,
    token: &str,
    size: (u32, u32),
    args: &[&str],
    display: Option<&str>,
) -> Result<Wearable> {
    let (server, width, height) = (server.to_string(), size.0.to_string(), size.1.to_string());
    let mut all = vec![
        "--server",
        &server,
        "--token",
        token,
        "--fingerprint",
        fingerprint,
        "--width",
        &width,
        "--height",
        &height,
    ];
    all.extend_from_slice(args);
    Wearable::spawn(&all, dir, display)
}
