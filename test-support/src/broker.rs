//! A Kafka broker of one test's own, for fault tests that pause, restart or empty the broker
//! without disturbing the other tests that share the one `scripts/services up` started.
//!
//! It is the same nisshi binary (built by `scripts/services up` into its cache and named in
//! `.services/env` as `TASKTRAIL_NISSHI_BIN`), on a free port of 127.0.0.1, with SQLite storage
//! in a folder of its own. The test owns the child process: it pauses it (SIGSTOP), resumes it
//! (SIGCONT), restarts it (keeping its data), empties it (a restart after deleting its data)
//! and kills it, and deletes its folder, when dropped.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::START_SERVERS;

/// A nisshi broker started by this test.
#[derive(Debug)]
pub struct PrivateBroker {
    port: u16,
    dir: PathBuf,
    child: Child,
}

impl PrivateBroker {
    /// Starts a broker on a free port and waits until it accepts connections.
    pub fn start() -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!(
            "tasktrail-broker-{port}-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        let child = spawn(port, &dir);
        let broker = Self { port, dir, child };
        broker.wait_until_listening();
        broker
    }

    /// `bootstrap.servers` for clients.
    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// SIGSTOP: the broker keeps its sockets but answers nothing (a hung broker).
    pub fn pause(&self) {
        signal("STOP", self.child.id());
    }

    /// SIGCONT after [`pause`](Self::pause).
    pub fn resume(&self) {
        signal("CONT", self.child.id());
    }

    /// Kills the broker and starts it again on the same port and storage: its topics, messages
    /// and committed offsets are kept.
    pub fn restart(&mut self) {
        self.kill();
        self.child = spawn(self.port, &self.dir);
        self.wait_until_listening();
    }

    /// Kills the broker, deletes its storage and starts it again on the same port: every topic,
    /// message and committed offset is gone (a broker that lost its data).
    pub fn lose_data(&mut self) {
        self.kill();
        let _gone = std::fs::remove_dir_all(&self.dir);
        std::fs::create_dir_all(&self.dir)
            .unwrap_or_else(|e| panic!("creating {}: {e}", self.dir.display()));
        self.child = spawn(self.port, &self.dir);
        self.wait_until_listening();
    }

    fn kill(&mut self) {
        // A stopped process cannot die of SIGKILL until it runs again on some kernels' views of
        // it; continue it first so the kill takes effect at once.
        signal("CONT", self.child.id());
        let _already_dead = self.child.kill();
        let _status = self.child.wait();
    }

    fn wait_until_listening(&self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "the private nisshi broker did not listen on 127.0.0.1:{} within 30 s",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        self.kill();
        let _gone = std::fs::remove_dir_all(&self.dir);
    }
}

fn spawn(port: u16, dir: &std::path::Path) -> Child {
    let url = format!("tcp://127.0.0.1:{port}");
    // nisshi mangles an absolute sqlite:/// path: it runs in its folder with a relative one.
    Command::new(nisshi_binary())
        .current_dir(dir)
        .args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
            "--storage-engine",
            "sqlite://nisshi.db",
            "--group-initial-rebalance-delay",
            "0s",
        ])
        .env_remove("CLUSTER_ID")
        .env_remove("SCHEMA_REGISTRY")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("starting a private nisshi broker on port {port}: {e}"))
}

/// The nisshi binary `scripts/services up` built (`TASKTRAIL_NISSHI_BIN` in `.services/env`).
fn nisshi_binary() -> PathBuf {
    let path = std::env::var_os("TASKTRAIL_NISSHI_BIN").map(PathBuf::from);
    match path {
        Some(path) if path.is_file() => path,
        _ => panic!(
            "TASKTRAIL_NISSHI_BIN does not name the nisshi binary: the broker fault tests start \
             their own broker from it; build it and load its path with `{START_SERVERS}`"
        ),
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

fn signal(name: &str, pid: u32) {
    let status = Command::new("kill")
        .args([format!("-{name}"), pid.to_string()])
        .status()
        .unwrap_or_else(|e| panic!("kill -{name} {pid}: {e}"));
    assert!(status.success(), "kill -{name} {pid} failed");
}
