//! Shared by the end-to-end tests: a real server on loopback in a temporary directory,
//! tokens, connected clients and synthetic frames.
#![allow(dead_code)]

use std::time::Duration;

use bytes::Bytes;
use farsight_client::{ConnectOptions, Connection, Trust, connect, parse_fingerprint};
use farsight_protocol::{
    CameraModel, FrameSeq, Intrinsics, Micros, Object, ObjectFlags, Pose, Role, SessionId,
};
use farsight_server::{Running, ServeConfig};
use nalgebra::{UnitQuaternion, Vector3};

pub const TIMEOUT: Duration = Duration::from_secs(10);

pub struct TestServer {
    pub running: Running,
    pub config: ServeConfig,
    pub dir: tempfile::TempDir,
}

impl TestServer {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = ServeConfig::ephemeral(dir.path());
        Self::start_in(dir, config).await
    }

    pub async fn start_in(dir: tempfile::TempDir, config: ServeConfig) -> Self {
        let running = farsight_server::start(&config)
            .await
            .expect("server starts");
        Self {
            running,
            config,
            dir,
        }
    }

    /// Stops the server and starts it again on the same ports, data and database.
    pub async fn restart(self) -> Self {
        let mut config = self.config.clone();
        config.quic_listen = self.running.quic_addr;
        config.http_listen = self.running.http_addr;
        self.running.shutdown().await;
        Self::start_in(self.dir, config).await
    }

    pub async fn token(&self, role: Role, name: &str) -> String {
        self.token_with_id(role, name).await.1
    }

    /// A new token's id (to change it in the store) and secret.
    pub async fn token_with_id(&self, role: Role, name: &str) -> (i64, String) {
        let (record, secret) = self
            .running
            .shared
            .store
            .create_token(role, name)
            .await
            .expect("token created");
        (record.id, secret)
    }

    pub fn options(&self, role: Role, token: &str) -> ConnectOptions {
        ConnectOptions {
            server: self.running.quic_addr,
            server_name: "localhost".into(),
            trust: Trust::Fingerprint(
                parse_fingerprint(&self.running.fingerprint).expect("fingerprint"),
            ),
            role,
            token: token.to_string(),
            resume: SessionId(0),
            receive_window: None,
        }
    }

    /// A new token of `role` and a connection with it.
    pub async fn connect(&self, role: Role, name: &str) -> Connection {
        let token = self.token(role, name).await;
        connect(&self.options(role, &token))
            .await
            .expect("connects")
    }

    pub fn http(&self, path: &str) -> String {
        format!("http://{}{}", self.running.http_addr, path)
    }
}

/// A frame whose payload encodes its own sequence number, with a pose that moves with it.
pub fn frame(seq: u64, keyframe: bool, size: usize) -> Object {
    let mut payload = vec![(seq % 251) as u8; size.max(8)];
    payload[..8].copy_from_slice(&seq.to_be_bytes());
    Object {
        frame: FrameSeq(seq),
        capture: Micros::now(),
        flags: ObjectFlags { keyframe },
        camera: CameraModel {
            pose: pose_for(seq),
            intrinsics: Intrinsics::from_hfov(1280, 720, 1.0),
        },
        payload: Bytes::from(payload),
    }
}

pub fn pose_for(seq: u64) -> Pose {
    Pose::new(
        Vector3::new(seq as f64 * 0.01, -0.5, 1.0),
        UnitQuaternion::from_euler_angles(0.0, seq as f64 * 0.02, 0.0),
    )
}

/// Waits for a condition polled every 10 ms, failing the test after `TIMEOUT`.
pub async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Simulated usage history (`farsight simulate`) for `users` users over `days` days, stored:
/// profiles upserted, events ingested. Returns the profiles.
pub async fn store_simulated_history(
    store: &farsight_store::Store,
    users: usize,
    days: u32,
    seed: u64,
) -> Vec<farsight_outreach::event::UserProfile> {
    use farsight_outreach::simulate::{SimulateOptions, simulate};
    const DAY: i64 = 86_400_000;
    let options = SimulateOptions {
        users,
        days,
        seed,
        start_ms: 1_790_000_000_000 - 1_790_000_000_000 % DAY,
    };
    let (mut profiles, mut events) = (Vec::new(), Vec::new());
    simulate(
        &options,
        |u| profiles.push(u.clone()),
        |e| events.push(e.clone()),
    );
    store.upsert_users(&profiles).await.expect("users");
    store.ingest_events(&events).await.expect("events");
    profiles
}
