//! [`PrivateRedis`]: the harness's own Redis server, to kill and restart.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tasktrail_bench::services::free_port;

/// A Redis server of the harness's own (the machine's is not ours to kill), on a free port,
/// with an append-only file so that a kill -9 loses nothing acknowledged.
#[derive(Debug)]
pub(crate) struct PrivateRedis {
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl PrivateRedis {
    pub(crate) fn start(dir: &Path) -> anyhow::Result<Self> {
        let _ignored = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir)?;
        let mut redis = Self {
            dir: dir.canonicalize()?,
            port: free_port()?,
            child: None,
        };
        redis.restart()?;
        Ok(redis)
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub(crate) fn restart(&mut self) -> anyhow::Result<()> {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting redis-server (apt: redis-server)")?;
        self.child = Some(child);
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(10),
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ignored = child.kill();
            let _ignored = child.wait();
        }
    }

    pub(crate) fn stop(&mut self) {
        self.kill();
        let _ignored = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}
