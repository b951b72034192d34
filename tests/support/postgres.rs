//! A throw-away PostgreSQL cluster for tests: Debian's binaries, `initdb` into a temporary
//! directory, `pg_ctl` on a free loopback port, stopped and removed when dropped. A watchdog
//! process stops it too if the test binary is killed before it can drop the cluster.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};

/// Where Debian's `postgresql-NN` packages put their server binaries.
const DEBIAN_PG_ROOT: &str = "/usr/lib/postgresql";
/// The superuser `initdb` creates; trust authentication lets any local client use it.
const SUPERUSER: &str = "postgres";
/// The system account of the Debian package, which runs the server when tests run as root.
const SYSTEM_USER: &str = "postgres";
const DATABASE: &str = "farsight";
/// A port picked free may be taken before the server binds it; try again a few times.
const START_ATTEMPTS: usize = 3;

#[derive(Debug)]
pub struct PgCluster {
    bin: PathBuf,
    // Holds the data directory, the socket directory and the server log; removed last.
    dir: tempfile::TempDir,
    port: u16,
    /// `initdb` refuses to run as root; then every server command runs as `postgres`.
    as_system_user: bool,
    watchdog: Option<Child>,
}

impl PgCluster {
    /// Creates, starts and opens a cluster with one empty database, [`PgCluster::url`].
    pub fn start() -> Self {
        let bin = newest_bin_dir();
        let as_system_user = running_as_root();
        let dir = tempfile::Builder::new()
            .prefix("farsight-pg-")
            .tempdir()
            .expect("temp dir for the PostgreSQL cluster");
        if as_system_user {
            run_checked(
                Command::new("chown")
                    .arg("-R")
                    .arg(format!("{SYSTEM_USER}:"))
                    .arg(dir.path()),
                "chown the cluster directory to the postgres system user",
            );
        }
        let mut cluster = Self {
            bin,
            dir,
            port: 0,
            as_system_user,
            watchdog: None,
        };
        run_checked(
            cluster
                .command("initdb")
                .arg("--pgdata")
                .arg(cluster.data_dir())
                .args(["--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync"])
                .arg(format!("--username={SUPERUSER}")),
            "initdb",
        );
        std::fs::create_dir_all(cluster.socket_dir()).expect("socket directory");
        if as_system_user {
            run_checked(
                Command::new("chown")
                    .arg(format!("{SYSTEM_USER}:"))
                    .arg(cluster.socket_dir()),
                "chown the socket directory",
            );
        }
        cluster.start_server();
        cluster.watchdog = Some(cluster.spawn_watchdog());
        run_checked(
            cluster
                .command("createdb")
                .args(["--host=127.0.0.1", &format!("--port={}", cluster.port)])
                .arg(format!("--username={SUPERUSER}"))
                .arg(DATABASE),
            "createdb",
        );
        cluster
    }

    /// `postgres://postgres@127.0.0.1:PORT/farsight`
    pub fn url(&self) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{DATABASE}", self.port)
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn socket_dir(&self) -> PathBuf {
        self.dir.path().join("socket")
    }

    fn log_file(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// One of the PostgreSQL binaries, as the user that owns the cluster.
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.as_system_user {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", SYSTEM_USER, "--"]).arg(path);
            cmd
        } else {
            Command::new(path)
        }
    }

    fn start_server(&mut self) {
        let mut last = None;
        for _ in 0..START_ATTEMPTS {
            self.port = free_port();
            let options = format!(
                "-c listen_addresses=127.0.0.1 -c port={} -c unix_socket_directories={} \
                 -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
                self.port,
                self.socket_dir().display()
            );
            let output = self
                .command("pg_ctl")
                .arg("start")
                .arg("--pgdata")
                .arg(self.data_dir())
                .arg("--log")
                .arg(self.log_file())
                .args(["--wait", "--timeout=60", "-o", &options])
                .stdin(Stdio::null())
                .output()
                .expect("pg_ctl runs");
            if output.status.success() {
                return;
            }
            last = Some(output);
        }
        let log = std::fs::read_to_string(self.log_file()).unwrap_or_default();
        panic!(
            "pg_ctl start failed {START_ATTEMPTS} times; last: {}\nserver log:\n{log}",
            describe(&last.expect("at least one attempt"))
        );
    }

    /// A detached shell that waits for this process to end and then stops the cluster, so
    /// a killed test binary leaves no postgres behind. Its own process group keeps it alive
    /// through a Ctrl-C sent to the test's group.
    fn spawn_watchdog(&self) -> Child {
        let prefix = if self.as_system_user {
            format!("runuser -u {SYSTEM_USER} -- ")
        } else {
            String::new()
        };
        let script = format!(
            "while [ -d /proc/{pid} ]; do sleep 0.5; done; \
             {prefix}'{pg_ctl}' stop --pgdata='{data}' --mode=immediate --wait; \
             rm -rf '{dir}'",
            pid = std::process::id(),
            pg_ctl = self.bin.join("pg_ctl").display(),
            data = self.data_dir().display(),
            dir = self.dir.path().display(),
        );
        use std::os::unix::process::CommandExt;
        Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("watchdog shell starts")
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
        let stopped = self
            .command("pg_ctl")
            .arg("stop")
            .arg("--pgdata")
            .arg(self.data_dir())
            .args(["--mode=immediate", "--wait"])
            .stdin(Stdio::null())
            .output();
        match stopped {
            Ok(out) if out.status.success() => {}
            Ok(out) => eprintln!("pg_ctl stop failed: {}", describe(&out)),
            Err(e) => eprintln!("pg_ctl stop did not run: {e}"),
        }
        // The temporary directory removes itself after this.
    }
}

/// The `bin` directory of the newest PostgreSQL installed from Debian packages.
fn newest_bin_dir() -> PathBuf {
    let newest = std::fs::read_dir(DEBIAN_PG_ROOT)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version: u32 = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            (bin.join("initdb").is_file() && bin.join("pg_ctl").is_file()).then_some((version, bin))
        })
        .max_by_key(|(version, _)| *version);
    match newest {
        Some((_, bin)) => bin,
        None => panic!(
            "no PostgreSQL server binaries under {DEBIAN_PG_ROOT}/*/bin: these tests run a \
             real PostgreSQL; install the `postgresql` Debian package \
             (apt-get install postgresql)"
        ),
    }
}

fn running_as_root() -> bool {
    let out = Command::new("id").arg("-u").output().expect("`id -u` runs");
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

fn run_checked(cmd: &mut Command, what: &str) -> Output {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: could not run {cmd:?}: {e}"));
    assert!(out.status.success(), "{what} failed: {}", describe(&out));
    out
}

fn describe(out: &Output) -> String {
    format!(
        "{}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
