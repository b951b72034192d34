//! sipp processes playing phones, for the SIP tests and the dialing benchmark (Debian package
//! `sip-tester`). Scenarios live in tests/sipp/.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use farsight_sip::Transport;

/// How many calls a phone takes before it exits, how long it talks (the scenarios' `<pause/>`)
/// and whether it keeps a message trace.
#[derive(Clone, Copy)]
pub struct Load {
    pub calls: usize,
    pub talk: Duration,
    pub trace: bool,
    pub timeout: Duration,
}

impl Load {
    /// One traced call: what the tests use.
    pub const ONE: Load = Load {
        calls: 1,
        talk: Duration::from_millis(300),
        trace: true,
        timeout: Duration::from_secs(20),
    };
}

/// One sipp process playing a phone, with its message trace.
pub struct Phone {
    child: Child,
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
    name: &'static str,
    timeout: Duration,
}

pub fn scenario(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/sipp")
        .join(name)
}

pub fn free_port(transport: Transport) -> u16 {
    match transport {
        Transport::Udp => UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .expect("free UDP port")
            .port(),
        Transport::Tcp => TcpListener::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .expect("free TCP port")
            .port(),
    }
}

pub fn port_taken(transport: Transport, port: u16) -> bool {
    match transport {
        Transport::Udp => UdpSocket::bind(("127.0.0.1", port)).is_err(),
        Transport::Tcp => TcpListener::bind(("127.0.0.1", port)).is_err(),
    }
}

impl Phone {
    /// A phone for one traced call.
    pub fn start(
        name: &'static str,
        file: &str,
        transport: Transport,
        substitutions: &[(&str, &str)],
    ) -> Phone {
        Self::start_with(name, file, transport, substitutions, Load::ONE)
    }

    pub fn start_with(
        name: &'static str,
        file: &str,
        transport: Transport,
        substitutions: &[(&str, &str)],
        load: Load,
    ) -> Phone {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port(transport);
        // sipp reads a response's status code when it loads the scenario, so `-key` cannot set
        // it: template scenarios are filled in here instead.
        let mut path = scenario(file);
        if !substitutions.is_empty() {
            let mut text = std::fs::read_to_string(&path).expect("scenario");
            for (k, v) in substitutions {
                text = text.replace(&format!("[{k}]"), v);
            }
            path = dir.path().join(file);
            std::fs::write(&path, text).expect("write scenario");
        }
        let mut cmd = Command::new("sipp");
        cmd.arg("-sf")
            .arg(path)
            .args(["-i", "127.0.0.1", "-p", &port.to_string()])
            .args(["-m", &load.calls.to_string()])
            .args(["-d", &load.talk.as_millis().to_string()])
            .args([
                "-t",
                if transport == Transport::Udp {
                    "u1"
                } else {
                    "t1"
                },
            ])
            .args(["-nostdin", "-timeout_error", "-timeout"])
            .arg(format!("{}s", load.timeout.as_secs()))
            .arg("-trace_err")
            .arg("-error_file")
            .arg(dir.path().join("errors.log"));
        if load.trace {
            cmd.arg("-trace_msg")
                .arg("-message_file")
                .arg(dir.path().join("messages.log"));
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sipp is installed (apt-get install sip-tester)");
        let started = Instant::now();
        while !port_taken(transport, port) {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "sipp {name} did not bind port {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Phone {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            dir,
            name,
            timeout: load.timeout,
        }
    }

    pub fn messages(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("messages.log")).unwrap_or_default()
    }

    /// Waits for sipp to finish and asserts its scenario passed (exit status 0).
    pub fn assert_passed(mut self) -> String {
        let started = Instant::now();
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("wait for sipp") {
                break s;
            }
            if started.elapsed() > self.timeout + Duration::from_secs(5) {
                let _ = self.child.kill();
                panic!("sipp {} still running:\n{}", self.name, self.messages());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let errors =
            std::fs::read_to_string(self.dir.path().join("errors.log")).unwrap_or_default();
        assert!(
            status.success(),
            "sipp {} scenario failed ({status}):\n{errors}\n{}",
            self.name,
            self.messages()
        );
        self.messages()
    }
}

impl Drop for Phone {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
