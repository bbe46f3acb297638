//! PostgreSQL on CPUs of its own (`BENCH_PG_CPUS`), as on a database server
//! of its own: every PostgreSQL process is pinned to the CPUs named (the
//! postmaster too, so the backends it forks later inherit them), and this
//! process (the host, the load generator, the sandbox provider and the
//! pgbench it starts) and Redis to the others. The API's phases and their
//! pgbench ceilings then run on the same split, so a phase's share of its
//! ceiling says how close the host comes to what PostgreSQL alone can
//! commit, without the host's CPU coming out of PostgreSQL's. Undone when
//! the run ends (a run killed before that leaves the pinning in place:
//! `taskset -a -p -c 0-N <pid>` undoes it by hand).

use std::collections::BTreeSet;

/// The CPUs of a list such as `0`, `0-1` or `0,2-3`.
pub(crate) fn parse_cpus(text: &str) -> Result<BTreeSet<usize>, String> {
    let mut cpus = BTreeSet::new();
    for part in text.split(',').map(str::trim) {
        let bad = || format!("{part:?} is not a CPU or a range of CPUs such as 0-1");
        let (first, last) = match part.split_once('-') {
            Some((a, b)) => (a.trim().parse(), b.trim().parse()),
            None => (part.parse(), part.parse()),
        };
        let (first, last): (usize, usize) = (first.map_err(|_| bad())?, last.map_err(|_| bad())?);
        if first > last {
            return Err(bad());
        }
        cpus.extend(first..=last);
    }
    Ok(cpus)
}

/// The pinning in force; dropping it gives every process it touched the
/// CPUs this process had before.
pub(crate) struct Pinned {
    pub(crate) postgres: BTreeSet<usize>,
    pub(crate) rest: BTreeSet<usize>,
    all: BTreeSet<usize>,
}

impl Pinned {
    /// Pins PostgreSQL to `postgres` and everything else of the run to the
    /// CPUs this process may use besides them. Panics, naming the setting,
    /// when that leaves either side without a CPU or a process cannot be
    /// pinned (pinning another user's process needs root).
    pub(crate) fn apply(postgres: BTreeSet<usize>) -> Pinned {
        let all = affinity(0)
            .unwrap_or_else(|e| panic!("BENCH_PG_CPUS: reading this process's CPUs: {e}"));
        let rest: BTreeSet<usize> = all.difference(&postgres).copied().collect();
        assert!(
            postgres.is_subset(&all) && !postgres.is_empty() && !rest.is_empty(),
            "BENCH_PG_CPUS: {postgres:?} must be some, not all, of the CPUs this process may use ({all:?})"
        );
        let pinned = Pinned {
            postgres,
            rest,
            all,
        };
        pin(&pinned.postgres, &pinned.rest, true);
        pinned
    }

    /// The CPUs the run had before it split them (what
    /// `available_parallelism` said before it counted this process's alone).
    pub(crate) fn cpus(&self) -> usize {
        self.all.len()
    }

    /// How the CPUs were split, for the report.
    pub(crate) fn describe(&self) -> String {
        format!(
            "PostgreSQL on CPU {} and everything else (this process, pgbench, Redis) on CPU {} (`BENCH_PG_CPUS`)",
            list(&self.postgres),
            list(&self.rest)
        )
    }
}

/// Pins PostgreSQL's threads to `postgres`, and this process's and Redis's to
/// `rest`; a thread that cannot be pinned stops the run when `strict`, and
/// is reported otherwise.
fn pin(postgres: &BTreeSet<usize>, rest: &BTreeSet<usize>, strict: bool) {
    let fail = |what: String| {
        if strict {
            panic!("BENCH_PG_CPUS: {what}")
        } else {
            eprintln!("[bench-api] BENCH_PG_CPUS: {what}")
        }
    };
    for task in tasks("/proc/self") {
        if let Err(e) = set_affinity(task, rest) {
            fail(format!("pinning this process's thread {task}: {e}"));
        }
    }
    for (pid, comm) in processes() {
        let cpus = match comm.as_str() {
            "postgres" => postgres,
            c if c.starts_with("redis-server") => rest,
            _ => continue,
        };
        for task in tasks(&format!("/proc/{pid}")) {
            // A backend that exits meanwhile is no error.
            if let Err(e) = set_affinity(task, cpus)
                && e.raw_os_error() != Some(libc::ESRCH)
            {
                fail(format!("pinning {comm} (pid {pid}, thread {task}): {e}"));
            }
        }
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        pin(&self.all, &self.all, false);
    }
}

fn list(cpus: &BTreeSet<usize>) -> String {
    cpus.iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Every process's pid and command name.
fn processes() -> Vec<(i32, String)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|p| {
            let pid = p.file_name().to_str()?.parse().ok()?;
            let comm = std::fs::read_to_string(p.path().join("comm")).ok()?;
            Some((pid, comm.trim_end().to_owned()))
        })
        .collect()
}

/// The thread ids of a process (`/proc/<pid>`).
fn tasks(process: &str) -> Vec<i32> {
    std::fs::read_dir(format!("{process}/task"))
        .map(|dir| {
            dir.flatten()
                .filter_map(|t| t.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn affinity(task: i32) -> std::io::Result<BTreeSet<usize>> {
    // SAFETY: `set` is a plain bit set that sched_getaffinity fills; its
    // size is passed along.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(task, std::mem::size_of_val(&set), &mut set) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok((0..libc::CPU_SETSIZE as usize)
            .filter(|&cpu| libc::CPU_ISSET(cpu, &set))
            .collect())
    }
}

fn set_affinity(task: i32, cpus: &BTreeSet<usize>) -> std::io::Result<()> {
    // SAFETY: as in `affinity`; the set is built here and only read by the
    // kernel.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &cpu in cpus {
            libc::CPU_SET(cpu, &mut set);
        }
        if libc::sched_setaffinity(task, std::mem::size_of_val(&set), &set) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}
