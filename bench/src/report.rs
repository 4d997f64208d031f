//! The results: `latest.json` (everything), `latest.md` (the table the README shows) and
//! `latency.csv` (the open loop's latency over time, for the chart).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::Serialize;

use crate::load::{OpenLoop, Percentiles};
use crate::services::{CpuUse, Service, rss_mib};

/// One line of progress on stderr.
pub fn progress(what: &str) {
    let _ignored = writeln!(std::io::stderr(), "bench: {what}");
}

#[derive(Debug, Serialize)]
pub struct Figure {
    pub name: String,
    pub value: f64,
    pub unit: String,
    /// `(baseline name, product ÷ baseline)`.
    pub ratios: Vec<(String, f64)>,
}

#[derive(Debug, Serialize)]
pub struct Memory {
    pub idle_mib: f64,
    pub load_mib: f64,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub machine: BTreeMap<String, String>,
    /// What each server said it is ([`crate::services::server_versions`]).
    pub servers: BTreeMap<String, String>,
    pub quick: bool,
    pub phase_seconds: u64,
    pub clients: usize,
    pub baselines: Vec<Figure>,
    pub product: Vec<Figure>,
    pub latency: Option<(String, Percentiles, f64)>,
    /// The lag, and the rate of the creates running alongside.
    pub read_your_writes: Option<(Percentiles, f64)>,
    pub memory: BTreeMap<String, Memory>,
    pub stored: Vec<(String, usize, f64)>,
    pub errors: BTreeMap<String, u64>,
    pub notes: Vec<String>,
}

impl Report {
    pub fn new(quick: bool, phase: Duration, clients: usize) -> Self {
        Self {
            machine: machine(),
            servers: BTreeMap::new(),
            quick,
            phase_seconds: phase.as_secs(),
            clients,
            baselines: Vec::new(),
            product: Vec::new(),
            latency: None,
            read_your_writes: None,
            memory: BTreeMap::new(),
            stored: Vec::new(),
            errors: BTreeMap::new(),
            notes: Vec::new(),
        }
    }

    pub fn baseline(&mut self, name: &str, value: f64, unit: &str) {
        self.baselines.push(Figure {
            name: name.to_owned(),
            value,
            unit: unit.to_owned(),
            ratios: Vec::new(),
        });
    }

    /// A product figure, with its ratio to `baseline` (name, value).
    pub fn product(&mut self, name: &str, value: f64, unit: &str, baseline: Option<(&str, f64)>) {
        let ratios = baseline
            .filter(|(_, b)| *b > 0.0)
            .map(|(b, v)| vec![(b.to_owned(), value / v)])
            .unwrap_or_default();
        self.product.push(Figure {
            name: name.to_owned(),
            value,
            unit: unit.to_owned(),
            ratios,
        });
    }

    /// One more ratio for the product figure `name`.
    pub fn ratio_extra(&mut self, name: &str, baseline: &str, baseline_value: f64) {
        if let Some(figure) = self.product.iter_mut().find(|f| f.name == name)
            && baseline_value > 0.0
        {
            figure
                .ratios
                .push((baseline.to_owned(), figure.value / baseline_value));
        }
    }

    pub fn latency(&mut self, name: &str, open: &OpenLoop) {
        self.latency = Some((name.to_owned(), open.latency, open.rate));
    }

    pub fn read_your_writes(&mut self, lag: &Percentiles, rate: f64) {
        self.read_your_writes = Some((*lag, rate));
    }

    pub fn errors(&mut self, phase: &str, errors: u64) {
        if errors > 0 {
            self.errors.insert(phase.to_owned(), errors);
        }
    }

    /// Something the reader of the table must know (printed under it).
    pub fn note(&mut self, note: String) {
        progress(&note);
        self.notes.push(note);
    }

    /// Where the CPU went while `commands` commands were accepted: each program's CPU time
    /// per command (the profile of the command path under load, relay and projector included).
    pub fn cpu_per_command(&mut self, phase: &str, cpu: &CpuUse, commands: u64) {
        #[expect(clippy::cast_precision_loss, reason = "a command count")]
        let per_command = |seconds: f64| seconds * 1000.0 / commands.max(1) as f64;
        let total: f64 = cpu.programs.iter().map(|(_, seconds)| seconds).sum();
        self.note(format!(
            "{phase}: CPU per command {:.2} ms in all, the machine {:.0}% busy; by program: {}",
            per_command(total),
            cpu.busy * 100.0,
            cpu.programs
                .iter()
                .take(8)
                .map(|(name, seconds)| format!("{name} {:.2} ms", per_command(*seconds)))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }

    pub fn memory_idle(&mut self, services: &[&Service]) {
        for service in services {
            self.memory.insert(
                service.name.to_owned(),
                Memory {
                    idle_mib: service.rss_mib(),
                    load_mib: 0.0,
                },
            );
        }
    }

    pub fn memory_load(&mut self, peaks: BTreeMap<String, f64>) {
        for (name, peak) in peaks {
            if let Some(memory) = self.memory.get_mut(&name) {
                memory.load_mib = peak;
            }
        }
    }

    pub fn stored(&mut self, rates: &[(&str, usize, f64)]) {
        self.stored = rates
            .iter()
            .map(|(label, events, rate)| ((*label).to_owned(), *events, *rate))
            .collect();
    }

    /// Writes `latest.json` and `latest.md` under `out` and prints the table.
    pub fn finish(&self, out: &Path) -> anyhow::Result<()> {
        std::fs::write(
            out.join("latest.json"),
            serde_json::to_string_pretty(self)? + "\n",
        )?;
        let table = self.markdown();
        std::fs::write(out.join("latest.md"), &table)?;
        std::io::stdout().write_all(table.as_bytes())?;
        Ok(())
    }

    fn markdown(&self) -> String {
        let mut s = String::new();
        let m = |k: &str| self.machine.get(k).map_or("?", String::as_str);
        let _ = writeln!(
            s,
            "Machine: {} · {} cores · {} RAM · {} · {}{}\n",
            m("cpu"),
            m("cores"),
            m("memory"),
            m("kernel"),
            m("date"),
            if self.quick {
                " · **quick run (rough figures)**"
            } else {
                ""
            }
        );
        let server = |k: &str| self.servers.get(k).map_or("?", String::as_str);
        let _ = writeln!(
            s,
            "Commit {} · {} s per load phase · {} clients · servers (as they report themselves): {} · {} · Kafka protocol: {} · MongoDB protocol: {}\n",
            m("commit"),
            self.phase_seconds,
            self.clients,
            server("postgres"),
            server("redis"),
            server("kafka"),
            server("mongo"),
        );
        let _ = writeln!(s, "| Baseline | Value |\n|---|---:|");
        for figure in &self.baselines {
            let _ = writeln!(
                s,
                "| {} | {} {} |",
                figure.name,
                number(figure.value),
                figure.unit
            );
        }
        let _ = writeln!(
            s,
            "\n| tasktrail | Value | Ratio to baseline |\n|---|---:|---|"
        );
        for figure in &self.product {
            let ratios = figure
                .ratios
                .iter()
                .map(|(name, ratio)| format!("{ratio:.2}× {name}"))
                .collect::<Vec<_>>()
                .join("; ");
            let _ = writeln!(
                s,
                "| {} | {} {} | {} |",
                figure.name,
                number(figure.value),
                figure.unit,
                ratios
            );
        }
        if let Some((name, p, rate)) = &self.latency {
            let _ = writeln!(
                s,
                "| {name}: p50 / p99 / p999 at {rate:.0} cmd/s | {:.2} / {:.2} / {:.2} ms | |",
                p.p50_ms, p.p99_ms, p.p999_ms
            );
        }
        if let Some((p, rate)) = &self.read_your_writes {
            let _ = writeln!(
                s,
                "| read-your-writes lag (command accepted → `GET ?min_version=` answers it), {} changes, each while creates ran at {rate:.0} cmd/s alongside: p50 / p99 | {:.1} / {:.1} ms | |",
                p.count, p.p50_ms, p.p99_ms
            );
        }
        if let [(_, _, empty), (_, events, full)] = self.stored.as_slice() {
            let _ = writeln!(
                s,
                "| create task with {} events stored (relay off, median of the samples in the note) | {} cmd/s | {:.2}× the empty store ({} cmd/s) |",
                number(*events as f64),
                number(*full),
                if *empty > 0.0 { full / empty } else { 0.0 },
                number(*empty)
            );
        }
        let _ = writeln!(
            s,
            "\n| Resident memory | idle | under load |\n|---|---:|---:|"
        );
        for (name, memory) in &self.memory {
            let _ = writeln!(
                s,
                "| {name} | {:.0} MiB | {:.0} MiB |",
                memory.idle_mib, memory.load_mib
            );
        }
        if !self.errors.is_empty() {
            let _ = writeln!(s, "\nFailed requests: {:?}", self.errors);
        }
        for note in &self.notes {
            let _ = writeln!(s, "\nNote: {note}");
        }
        s
    }
}

fn number(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
    }
}

/// Samples the services' resident memory every 200 ms; `stop` returns each one's peak.
#[derive(Debug)]
pub struct MemorySampler {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<BTreeMap<String, f64>>,
}

impl MemorySampler {
    pub fn start(services: &[&Service]) -> Self {
        let pids: Vec<(String, u32)> = services
            .iter()
            .map(|s| (s.name.to_owned(), s.pid()))
            .collect();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let task = tokio::spawn(async move {
            let mut peaks = BTreeMap::new();
            while !stopping.load(Ordering::Relaxed) {
                for (name, pid) in &pids {
                    let rss = rss_mib(*pid).unwrap_or(0.0);
                    let peak = peaks.entry(name.clone()).or_insert(0.0_f64);
                    *peak = peak.max(rss);
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            peaks
        });
        Self { stop, task }
    }

    pub async fn stop(self) -> BTreeMap<String, f64> {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap_or_default()
    }
}

/// `seconds,latency_ms` per request of the open loop.
pub fn write_timeline(path: &Path, timeline: &[(f64, f64)]) -> anyhow::Result<()> {
    let mut csv = String::from("seconds,latency_ms\n");
    for (at, latency) in timeline {
        let _ = writeln!(csv, "{at:.4},{latency:.3}");
    }
    std::fs::write(path, csv)?;
    Ok(())
}

/// What the figures ran on.
fn machine() -> BTreeMap<String, String> {
    let mut machine = BTreeMap::new();
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    if let Some(model) = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split(':').nth(1))
    {
        machine.insert("cpu".to_owned(), model.trim().to_owned());
    }
    machine.insert(
        "cores".to_owned(),
        std::thread::available_parallelism()
            .map_or(0, usize::from)
            .to_string(),
    );
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    if let Some(kib) = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
    {
        machine.insert(
            "memory".to_owned(),
            format!("{:.0} GiB", kib / 1024.0 / 1024.0),
        );
    }
    let command = |program: &str, args: &[&str]| {
        std::process::Command::new(program)
            .args(args)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default()
    };
    machine.insert(
        "kernel".to_owned(),
        format!("Linux {}", command("uname", &["-r"])),
    );
    machine.insert(
        "commit".to_owned(),
        command("git", &["rev-parse", "--short", "HEAD"]),
    );
    machine.insert(
        "date".to_owned(),
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
    );
    machine
}
