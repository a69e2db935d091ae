//! The process's resident memory, as the OS reports it (for the progress and result lines).

/// The process's peak resident memory in MiB, where the OS reports it.
pub fn peak_memory_mib() -> Option<f64> {
    status_mib("VmHWM:")
}

/// The process's current resident memory in MiB, where the OS reports it.
pub fn current_memory_mib() -> Option<f64> {
    status_mib("VmRSS:")
}

fn status_mib(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}
