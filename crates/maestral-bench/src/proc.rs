//! CPU use from `/proc` (Linux): a process's CPU time, and a whole-process load sample.

use std::time::Duration;

use serde_json::{Value, json};

/// USER_HZ, the unit of `/proc/*/stat` times: 100 on every Linux the project targets.
const TICKS_PER_S: u64 = 100;

/// User + system CPU ticks of a process (fields 14 and 15 of `/proc/<pid>/stat`).
fn ticks(stat_path: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(stat_path).ok()?;
    // The command name (in parentheses) may hold spaces: the fields start after the last ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

fn from_ticks(t: u64) -> Duration {
    Duration::from_millis(t * 1000 / TICKS_PER_S)
}

/// User + system CPU time of process `pid`, threads that have ended included.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    ticks(&format!("/proc/{pid}/stat")).map(from_ticks)
}

/// User + system CPU time of this process, threads that have ended included.
pub fn own_cpu_time() -> Option<Duration> {
    ticks("/proc/self/stat").map(from_ticks)
}

/// Busy ticks of all CPUs together, from the first line of `/proc/stat` (all but idle and
/// iowait).
fn machine_busy_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(cpu) = stat.lines().next().and_then(|l| l.strip_prefix("cpu ")) else {
        return 0;
    };
    let f: Vec<u64> = cpu.split_whitespace().map(|v| v.parse().unwrap_or(0)).collect();
    // user nice system idle iowait irq softirq steal (guest is already counted in user).
    f.iter().take(8).enumerate().filter(|(i, _)| *i != 3 && *i != 4).map(|(_, v)| v).sum()
}

/// This process's CPU use so far, from `/proc/self/task/*/{schedstat,status}`: time on a CPU,
/// time runnable but waiting for one, and context switches, summed over its live threads.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    cpu_ns: u64,
    wait_ns: u64,
    switches: u64,
    /// This process, threads that have ended included (`/proc/self/stat`).
    process_ticks: u64,
    /// The whole machine (`/proc/stat`, every process): busy ticks of all CPUs.
    machine_busy_ticks: u64,
}

impl Load {
    /// `None` where `/proc` is not there.
    pub fn sample() -> Option<Load> {
        let mut load = Load {
            cpu_ns: 0,
            wait_ns: 0,
            switches: 0,
            process_ticks: ticks("/proc/self/stat").unwrap_or(0),
            machine_busy_ticks: machine_busy_ticks(),
        };
        for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
            let dir = task.path();
            if let Ok(stat) = std::fs::read_to_string(dir.join("schedstat")) {
                let mut f = stat.split_whitespace().map(|v| v.parse::<u64>().unwrap_or(0));
                load.cpu_ns += f.next().unwrap_or(0);
                load.wait_ns += f.next().unwrap_or(0);
            }
            if let Ok(status) = std::fs::read_to_string(dir.join("status")) {
                for line in status.lines() {
                    if let Some(v) = line
                        .strip_prefix("voluntary_ctxt_switches:")
                        .or_else(|| line.strip_prefix("nonvoluntary_ctxt_switches:"))
                    {
                        load.switches += v.trim().parse::<u64>().unwrap_or(0);
                    }
                }
            }
        }
        Some(load)
    }

    /// What each of `turns` cost between the samples `before` and `after`, `elapsed` apart.
    pub fn per(
        before: Option<Load>,
        after: Option<Load>,
        elapsed: Duration,
        turns: usize,
    ) -> Option<LoadPer> {
        let (b, a) = (before?, after?);
        if turns == 0 {
            return None;
        }
        let t = turns as f64;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        // Per-thread counters miss threads that have ended; the process's own ticks do not.
        let machine_s =
            a.machine_busy_ticks.saturating_sub(b.machine_busy_ticks) as f64 / TICKS_PER_S as f64;
        let process_s = a.process_ticks.saturating_sub(b.process_ticks) as f64 / TICKS_PER_S as f64;
        let core_s = elapsed.as_secs_f64() * cores;
        Some(LoadPer {
            busy: process_s / core_s,
            others: ((machine_s - process_s) / core_s).max(0.0),
            cpu_ms: a.cpu_ns.saturating_sub(b.cpu_ns) as f64 / 1e6 / t,
            wait_ms: a.wait_ns.saturating_sub(b.wait_ns) as f64 / 1e6 / t,
            switches: a.switches.saturating_sub(b.switches) as f64 / t,
        })
    }
}

/// What one turn cost the whole process (every device it hosts together).
#[derive(Debug, Clone)]
pub struct LoadPer {
    pub cpu_ms: f64,
    pub wait_ms: f64,
    pub switches: f64,
    /// Busy fraction of all cores during the turns, from this process.
    pub busy: f64,
    /// Busy fraction of all cores during the turns, from everything else on the machine.
    pub others: f64,
}

impl LoadPer {
    pub fn json(&self) -> Value {
        json!({ "cpu_ms_per_turn": self.cpu_ms, "runqueue_wait_ms_per_turn": self.wait_ms,
                "context_switches_per_turn": self.switches, "cores_busy_fraction": self.busy,
                "cores_busy_fraction_other_processes": self.others })
    }

    /// One line for a table, starting on a new line.
    pub fn short(&self) -> String {
        format!(
            "\nwhole process per turn: CPU {:.2} ms, run-queue wait {:.2} ms, {:.0} context switches; \
             cores {:.0}% busy with this, {:.0}% with other processes",
            self.cpu_ms,
            self.wait_ms,
            self.switches,
            self.busy * 100.0,
            self.others * 100.0
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_a_cpu_time_and_a_load() {
        if std::path::Path::new("/proc/self/stat").exists() {
            assert!(own_cpu_time().is_some());
            assert!(cpu_time(std::process::id()).is_some());
            assert!(Load::sample().is_some());
        }
    }
}
