//! What the soak samples outside its own requests: the gateway process's resident
//! memory, open files (sockets counted apart), threads and CPU from `/proc`, the machine's CPU and load, and
//! `gateway_audit_queue_depth` from the gateway's `/metrics`.

use std::path::Path;

/// Linux reports process and machine CPU time in `USER_HZ` ticks, 100 a second on every
/// architecture the gateway is built for.
const TICKS_PER_S: f64 = 100.0;

/// One reading of a process.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct ProcessReading {
    pub(super) rss_kib: u64,
    pub(super) threads: u64,
    /// Open file descriptors other than sockets: files, pipes, event fds. A leak of
    /// any of these grows this count.
    pub(super) fds: u64,
    /// Open sockets: the load client's connections (as many as it keeps open), the
    /// departments', the stores'.
    pub(super) sockets: u64,
    /// User + system CPU so far, in ticks.
    pub(super) cpu_ticks: u64,
}

/// Reads `/proc/PID/status`, `/proc/PID/fd` and `/proc/PID/stat`.
pub(super) fn process(pid: u32) -> Result<ProcessReading, String> {
    let dir = Path::new("/proc").join(pid.to_string());
    let status = std::fs::read_to_string(dir.join("status"))
        .map_err(|e| format!("process {pid} is gone ({e})"))?;
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    let (mut fds, mut sockets) = (0_u64, 0_u64);
    for entry in std::fs::read_dir(dir.join("fd")).map_err(|e| format!("/proc/{pid}/fd: {e}"))? {
        let Ok(entry) = entry else { continue };
        // A descriptor closed between the listing and the link reads as neither.
        match std::fs::read_link(entry.path()) {
            Ok(target) if target.to_string_lossy().starts_with("socket:") => sockets += 1,
            Ok(_) => fds += 1,
            Err(_) => {}
        }
    }
    Ok(ProcessReading {
        rss_kib: field("VmRSS:"),
        threads: field("Threads:"),
        fds,
        sockets,
        cpu_ticks: cpu_ticks(&dir.join("stat")),
    })
}

/// User + system ticks of a process (`/proc/PID/stat` fields 14 and 15); 0 when gone.
pub(super) fn cpu_ticks(stat: &Path) -> u64 {
    let Ok(text) = std::fs::read_to_string(stat) else {
        return 0;
    };
    // Past "pid (comm) ": the name may hold spaces and parentheses.
    let Some((_, rest)) = text.rsplit_once(") ") else {
        return 0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| -> u64 { fields.get(i).and_then(|f| f.parse().ok()).unwrap_or(0) };
    // rest starts at field 3 (state): utime is field 14, stime 15.
    tick(11) + tick(12)
}

/// The machine's CPU time so far, in ticks summed over every core: (busy, total).
pub(super) fn machine_ticks() -> (u64, u64) {
    let Ok(text) = std::fs::read_to_string("/proc/stat") else {
        return (0, 0);
    };
    let Some(line) = text.lines().find(|l| l.starts_with("cpu ")) else {
        return (0, 0);
    };
    let values: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is inside user).
    let total: u64 = values.iter().take(8).sum();
    let idle = values.get(3).copied().unwrap_or(0) + values.get(4).copied().unwrap_or(0);
    (total.saturating_sub(idle), total)
}

/// The 1-minute load average.
pub(super) fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|t| t.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0.0)
}

/// CPU ticks as a percentage of one core over `seconds`.
pub(super) fn percent_of_core(ticks: u64, seconds: f64) -> f64 {
    if seconds <= 0.0 {
        return 0.0;
    }
    ticks as f64 / TICKS_PER_S / seconds * 100.0
}

/// The sum of a metric's samples in an OpenMetrics text (one per label set), or
/// `None` when the exposition has no such metric.
pub(super) fn metric(exposition: &str, name: &str) -> Option<f64> {
    let mut found = None;
    for line in exposition.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        // The name itself, not a longer one that starts with it.
        let rest = match rest.chars().next() {
            Some('{') => rest.split_once('}').map_or("", |(_, v)| v),
            Some(' ') => rest,
            _ => continue,
        };
        if let Some(value) = rest
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
        {
            found = Some(found.unwrap_or(0.0) + value);
        }
    }
    found
}

/// What the machine is: CPU model, cores, memory, kernel.
pub(super) fn machine() -> Vec<(String, String)> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or_else(|| "unknown".to_owned(), |(_, m)| m.trim().to_owned());
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map_or_else(
            || "unknown".to_owned(),
            |kib| format!("{:.1} GiB", kib / 1_048_576.0),
        );
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or_else(|_| "unknown".to_owned(), |k| format!("Linux {}", k.trim()));
    vec![
        (
            "CPU".to_owned(),
            format!("{model}, {cores} cores available"),
        ),
        ("memory".to_owned(), memory),
        ("kernel".to_owned(), kernel),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_metric_is_summed_over_its_label_sets_and_not_confused_with_longer_names() {
        let text = "# TYPE gateway_audit_queue_depth gauge\n\
            gateway_audit_queue_depth{chain=\"a\"} 2\n\
            gateway_audit_queue_depth{chain=\"b\"} 3\n\
            gateway_audit_queue_depth_max 99\n";
        assert_eq!(metric(text, "gateway_audit_queue_depth"), Some(5.0));
        assert_eq!(
            metric("gateway_audit_queue_depth 0\n", "gateway_audit_queue_depth"),
            Some(0.0)
        );
        assert_eq!(metric(text, "gateway_missing"), None);
    }

    #[test]
    fn this_process_can_be_read() {
        let me = process(std::process::id()).expect("our own /proc entry");
        assert!(me.rss_kib > 0 && me.threads > 0 && me.fds > 0);
    }
}
