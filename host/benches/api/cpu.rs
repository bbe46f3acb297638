//! Where the CPU went: /proc readings per thread group and the machine's
//! load, so each part's share of a phase can be told apart.

use super::*;

/// `VmRSS`, `VmHWM`, ... of this process, in KiB.
pub(crate) fn proc_status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(&format!("{field}:")))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

pub(crate) fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

pub(crate) fn clock_ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// The command name and the fields after it of a `/proc/.../stat` file
/// (index 0 is the state, 11 utime, 12 stime, 13 cutime, 14 cstime).
pub(crate) fn parse_stat(text: &str) -> Option<(&str, Vec<u64>)> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = &text[open + 1..close];
    let fields: Vec<u64> = text[close + 1..]
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // Every field the callers read (up to cstime) is there.
    (fields.len() > 14).then_some((comm, fields))
}

/// Cumulative CPU clock ticks of each part.
#[derive(Clone, Copy, Default)]
pub(crate) struct CpuTicks {
    pub(crate) at: Option<Instant>,
    pub(crate) machine_busy: u64,
    /// This process, every thread, alive or gone.
    pub(crate) process: u64,
    pub(crate) loadgen: u64,
    pub(crate) sandbox: u64,
    /// Children of this process that were waited for (pgbench, psql).
    pub(crate) children: u64,
    /// Every `postgres` process, with the backends that already exited
    /// (counted into the postmaster's children times).
    pub(crate) postgres: u64,
    pub(crate) redis: u64,
}

impl CpuTicks {
    pub(crate) fn sample() -> Self {
        let mut t = CpuTicks {
            at: Some(Instant::now()),
            ..Default::default()
        };
        if let Ok(stat) = std::fs::read_to_string("/proc/stat")
            && let Some(line) = stat.lines().next()
        {
            let v: Vec<u64> = line
                .split_whitespace()
                .skip(1)
                .map(|f| f.parse().unwrap_or(0))
                .collect();
            // user nice system idle iowait irq softirq steal
            t.machine_busy = [0, 1, 2, 5, 6, 7]
                .iter()
                .map(|&i| v.get(i).copied().unwrap_or(0))
                .sum();
        }
        if let Ok(text) = std::fs::read_to_string("/proc/self/stat")
            && let Some((_, f)) = parse_stat(&text)
        {
            t.process = f[11] + f[12];
            t.children = f[13] + f[14];
        }
        if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
            for task in tasks.flatten() {
                let Ok(text) = std::fs::read_to_string(task.path().join("stat")) else {
                    continue;
                };
                if let Some((comm, f)) = parse_stat(&text) {
                    match comm {
                        "loadgen" => t.loadgen += f[11] + f[12],
                        "sandbox" => t.sandbox += f[11] + f[12],
                        _ => {}
                    }
                }
            }
        }
        if let Ok(procs) = std::fs::read_dir("/proc") {
            for p in procs.flatten() {
                if !p
                    .file_name()
                    .to_string_lossy()
                    .bytes()
                    .all(|b| b.is_ascii_digit())
                {
                    continue;
                }
                let Ok(text) = std::fs::read_to_string(p.path().join("stat")) else {
                    continue;
                };
                if let Some((comm, f)) = parse_stat(&text) {
                    if comm == "postgres" {
                        t.postgres += f[11] + f[12] + f[13] + f[14];
                    } else if comm.starts_with("redis-server") {
                        t.redis += f[11] + f[12];
                    }
                }
            }
        }
        t
    }

    /// Cores each part used on average since `before`.
    pub(crate) fn since(&self, before: &CpuTicks) -> CpuShare {
        let wall = self
            .at
            .zip(before.at)
            .map_or(f64::NAN, |(a, b)| (a - b).as_secs_f64());
        let hz = clock_ticks_per_second();
        let cores = |a: u64, b: u64| a.saturating_sub(b) as f64 / hz / wall;
        let machine = cores(self.machine_busy, before.machine_busy);
        let loadgen = cores(self.loadgen, before.loadgen);
        let sandbox = cores(self.sandbox, before.sandbox);
        let host = cores(self.process, before.process) - loadgen - sandbox;
        let children = cores(self.children, before.children);
        let postgres = cores(self.postgres, before.postgres);
        let redis = cores(self.redis, before.redis);
        CpuShare {
            wall,
            machine,
            host,
            loadgen,
            sandbox,
            children,
            postgres,
            redis,
            other: machine - host - loadgen - sandbox - children - postgres - redis,
        }
    }
}

/// Average cores in use over a phase.
#[derive(Clone, Copy, serde::Serialize)]
pub(crate) struct CpuShare {
    pub(crate) wall: f64,
    pub(crate) machine: f64,
    pub(crate) host: f64,
    pub(crate) loadgen: f64,
    pub(crate) sandbox: f64,
    pub(crate) children: f64,
    pub(crate) postgres: f64,
    pub(crate) redis: f64,
    pub(crate) other: f64,
}

// ---------------------------------------------------------------------------
// PostgreSQL: administration and the pgbench ceiling.
