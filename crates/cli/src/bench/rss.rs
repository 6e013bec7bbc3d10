//! Resident memory of this process, from the kernel (Linux; `None` elsewhere).

/// Peak RSS in MiB since the process started or [`reset_peak`] (`VmHWM`).
pub fn peak_rss_mib() -> Option<f64> {
    status_mib("VmHWM:")
}

/// Current RSS in MiB (`VmRSS`).
pub fn current_rss_mib() -> Option<f64> {
    status_mib("VmRSS:")
}

/// Starts a new peak from the current RSS (writing 5 to `clear_refs`), so one phase of a
/// benchmark can be measured on its own. Returns whether the kernel allowed it.
pub fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn status_mib(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}
