//! Injecting a fault and undoing it: services killed, the broker paused, restarted or emptied,
//! MongoDB stopped, Redis killed.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::cli::Cli;
use crate::faults::Fault;
use crate::private_redis::PrivateRedis;
use crate::system::{Role, System};

/// Injects one fault and undoes it; what happened, for the report.
pub(crate) async fn inject(
    fault: Fault,
    system: &mut System,
    redis: &mut PrivateRedis,
    cli: &Cli,
) -> anyhow::Result<String> {
    Ok(match fault {
        Fault::KillCommandApi => {
            system.kill_and_restart(Role::Command).await?;
            "command-api (with the relay) killed -9 and restarted".to_owned()
        }
        Fault::KillProjector => {
            system.kill_and_restart(Role::Projector).await?;
            "projector killed -9 and restarted".to_owned()
        }
        Fault::KillQueryApi => {
            system.kill_and_restart(Role::Query).await?;
            "query-api killed -9 and restarted".to_owned()
        }
        Fault::PauseBroker => {
            if !services_script(&["pause-broker"]) {
                return Ok(
                    "broker pause skipped (not a broker scripts/services started)".to_owned(),
                );
            }
            tokio::time::sleep(Duration::from_secs(3)).await;
            anyhow::ensure!(services_script(&["resume-broker"]), "resume-broker failed");
            "broker paused (SIGSTOP) for 3 s and resumed".to_owned()
        }
        Fault::RestartBroker => {
            // The broker keeps its log and the group's offsets: clients reconnect and go on.
            if !services_script(&["restart-broker"]) {
                return Ok(
                    "broker restart skipped (not a broker scripts/services started)".to_owned(),
                );
            }
            "broker restarted (log and offsets kept)".to_owned()
        }
        Fault::LoseBrokerData => {
            // Every topic, message and committed offset is gone. The relay notices the lost
            // topics and re-publishes from PostgreSQL; the projector re-reads the new log,
            // re-applying nothing (ADR 0004).
            if !services_script(&["lose-broker-data"]) {
                return Ok(
                    "broker data loss skipped (not a broker scripts/services started)".to_owned(),
                );
            }
            "broker stopped, its storage deleted, started (every topic, message and offset lost)"
                .to_owned()
        }
        Fault::RestartMongo => {
            let Some(pid) = pid_of(&cli.services_dir.join("mongo.pid")) else {
                return Ok(
                    "MongoDB restart skipped (not a server scripts/services started)".to_owned(),
                );
            };
            signal(pid, "TERM")?;
            wait_gone(pid, Duration::from_secs(30)).await?;
            tokio::time::sleep(Duration::from_secs(1)).await;
            anyhow::ensure!(services_script(&["up"]), "scripts/services up failed");
            "MongoDB stopped (SIGTERM), down 1 s, started again".to_owned()
        }
        Fault::KillRedis => {
            redis.kill();
            tokio::time::sleep(Duration::from_secs(1)).await;
            redis.restart()?;
            "Redis killed -9, down 1 s, restarted (append-only file kept)".to_owned()
        }
    })
}

fn services_script(args: &[&str]) -> bool {
    Command::new("bash")
        .arg("scripts/services")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

fn pid_of(file: &Path) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(file).ok()?.trim().parse().ok()?;
    Path::new(&format!("/proc/{pid}")).exists().then_some(pid)
}

fn signal(pid: u32, name: &str) -> anyhow::Result<()> {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()?;
    anyhow::ensure!(status.success(), "kill -{name} {pid} failed");
    Ok(())
}

async fn wait_gone(pid: u32, timeout: Duration) -> anyhow::Result<()> {
    let started = Instant::now();
    while Path::new(&format!("/proc/{pid}")).exists() {
        anyhow::ensure!(
            started.elapsed() < timeout,
            "pid {pid} still running after {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}
