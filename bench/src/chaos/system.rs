//! The three services (command API, projector, query API) as child processes: started on fixed
//! ports, killed and restarted, and revived when one exits on its own.

use std::path::{Path, PathBuf};

use tasktrail_bench::services::{Service, Target, free_port};

use crate::say;

/// One of the three services.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Role {
    Command,
    Projector,
    Query,
}

const ROLES: [Role; 3] = [Role::Command, Role::Projector, Role::Query];

/// The three services, restartable on their ports, and restarted (as docker-compose's
/// `restart: unless-stopped` would) when one exits on its own.
#[derive(Debug)]
pub(crate) struct System {
    pub(crate) command: Service,
    pub(crate) projector: Service,
    pub(crate) query: Service,
    ports: [u16; 3],
    target: Target,
    logs: PathBuf,
    /// Exits nobody caused (each one fails the run).
    pub(crate) exits: Vec<String>,
}

impl System {
    pub(crate) async fn start(target: &Target, logs: &Path) -> anyhow::Result<Self> {
        let ports = [free_port()?, free_port()?, free_port()?];
        Ok(Self {
            command: start(Role::Command, target, logs, ports[0]).await?,
            projector: start(Role::Projector, target, logs, ports[1]).await?,
            query: start(Role::Query, target, logs, ports[2]).await?,
            ports,
            target: target.clone(),
            logs: logs.to_owned(),
            exits: Vec::new(),
        })
    }

    fn service(&mut self, role: Role) -> &mut Service {
        match role {
            Role::Command => &mut self.command,
            Role::Projector => &mut self.projector,
            Role::Query => &mut self.query,
        }
    }

    /// Kills `role` with SIGKILL and starts it again on its port.
    pub(crate) async fn kill_and_restart(&mut self, role: Role) -> anyhow::Result<()> {
        self.service(role).kill_now();
        let port = self.ports[role as usize];
        let service = start(role, &self.target, &self.logs, port).await?;
        *self.service(role) = service;
        Ok(())
    }

    /// Restarts every service that exited on its own, and records the exit.
    pub(crate) async fn revive(&mut self) -> anyhow::Result<()> {
        for role in ROLES {
            let Some(status) = self.service(role).exited() else {
                continue;
            };
            let what = format!("{role:?} exited ({status}) on its own; restarted");
            say(&what);
            self.exits.push(what);
            self.kill_and_restart(role).await?;
        }
        Ok(())
    }
}

async fn start(role: Role, target: &Target, logs: &Path, port: u16) -> anyhow::Result<Service> {
    match role {
        Role::Command => {
            let extra = [("TASKTRAIL_RELAY__POLL_INTERVAL_MS", "200".to_owned())];
            Service::start_at("command-api", &[], target, &extra, logs, port).await
        }
        Role::Projector => {
            let extra = [("TASKTRAIL_LOG__FILTER", "info".to_owned())];
            Service::start_at("projector", &["run"], target, &extra, logs, port).await
        }
        Role::Query => Service::start_at("query-api", &[], target, &[], logs, port).await,
    }
}
