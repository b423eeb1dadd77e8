//! Memory available to this process: Linux `MemAvailable` capped by the
//! cgroup (v2 `memory.max - memory.current`, v1 `limit - usage`); macOS sysctl.
//! `TANTO_MEMORY_AVAILABLE` (bytes, or with a K/M/G suffix) overrides the
//! measurement, for containers that lie and for tests.

use std::fs;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct HostMemory {
    /// Total memory this process may use (physical RAM capped by the cgroup limit).
    pub total_bytes: Option<u64>,
    /// Memory available now (MemAvailable capped by the cgroup headroom).
    pub available_bytes: Option<u64>,
    /// Where the numbers came from: `meminfo`, `cgroup-v2`, `cgroup-v1`, `sysctl`, `override`, `unknown`.
    pub source: &'static str,
}

/// Parse sizes such as `8589934592`, `8G`, `512M`, `1.5GiB`.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" | "kib" => 1024.0,
        "m" | "mb" | "mib" => 1024.0 * 1024.0,
        "g" | "gb" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tb" | "tib" => 1024.0f64.powi(4),
        _ => return None,
    };
    (n >= 0.0).then_some((n * mult) as u64)
}

fn meminfo_field(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(key)?.strip_prefix(':')?;
        let kb: u64 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
        Some(kb * 1024)
    })
}

fn read_u64(path: &str) -> Option<u64> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// (limit, usage) of the cgroup this process is in, if limited.
fn cgroup_limit() -> Option<(u64, u64, &'static str)> {
    // v2: find our cgroup path from /proc/self/cgroup ("0::/path").
    let rel = fs::read_to_string("/proc/self/cgroup")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("0::").map(|p| p.trim().to_string()))
        })
        .unwrap_or_else(|| "/".into());
    for base in [format!("/sys/fs/cgroup{rel}"), "/sys/fs/cgroup".to_string()] {
        let max = fs::read_to_string(format!("{base}/memory.max")).ok();
        if let Some(max) = max {
            let max = max.trim();
            if max != "max" {
                if let Ok(limit) = max.parse::<u64>() {
                    let usage = read_u64(&format!("{base}/memory.current")).unwrap_or(0);
                    return Some((limit, usage, "cgroup-v2"));
                }
            }
            return None;
        }
    }
    let limit = read_u64("/sys/fs/cgroup/memory/memory.limit_in_bytes")?;
    // v1 reports a huge number (page-aligned i64::MAX) when unlimited.
    if limit >= (1u64 << 60) {
        return None;
    }
    let usage = read_u64("/sys/fs/cgroup/memory/memory.usage_in_bytes").unwrap_or(0);
    Some((limit, usage, "cgroup-v1"))
}

#[cfg(target_os = "macos")]
fn sysctl_u64(name: &str) -> Option<u64> {
    let out = std::process::Command::new("sysctl")
        .args(["-n", name])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// Measure memory now.
pub fn detect() -> HostMemory {
    if let Some(v) = std::env::var("TANTO_MEMORY_AVAILABLE")
        .ok()
        .and_then(|s| parse_size(&s))
    {
        return HostMemory {
            total_bytes: Some(v),
            available_bytes: Some(v),
            source: "override",
        };
    }
    #[cfg(target_os = "macos")]
    {
        let total = sysctl_u64("hw.memsize");
        // macOS has no MemAvailable; unified memory makes total the honest budget.
        return HostMemory {
            total_bytes: total,
            available_bytes: total,
            source: "sysctl",
        };
    }
    #[allow(unreachable_code)]
    {
        let Ok(text) = fs::read_to_string("/proc/meminfo") else {
            return HostMemory {
                total_bytes: None,
                available_bytes: None,
                source: "unknown",
            };
        };
        let mut total = meminfo_field(&text, "MemTotal");
        let mut avail = meminfo_field(&text, "MemAvailable");
        let mut source = "meminfo";
        if let Some((limit, usage, src)) = cgroup_limit() {
            let headroom = limit.saturating_sub(usage);
            if total.is_none_or(|t| limit < t) {
                total = Some(limit);
                source = src;
            }
            if avail.is_none_or(|a| headroom < a) {
                avail = Some(headroom);
                source = src;
            }
        }
        HostMemory {
            total_bytes: total,
            available_bytes: avail,
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1024"), Some(1024));
        assert_eq!(parse_size("2K"), Some(2048));
        assert_eq!(parse_size("1.5G"), Some(1610612736));
        assert_eq!(parse_size("8GiB"), Some(8 << 30));
        assert_eq!(parse_size("x"), None);
        assert_eq!(parse_size("5Q"), None);
    }

    #[test]
    fn meminfo_parse() {
        let t = "MemTotal:       24576000 kB\nMemFree: 1 kB\nMemAvailable:   20000000 kB\n";
        assert_eq!(meminfo_field(t, "MemTotal"), Some(24576000 * 1024));
        assert_eq!(meminfo_field(t, "MemAvailable"), Some(20000000 * 1024));
        assert_eq!(meminfo_field(t, "Nope"), None);
    }

    #[test]
    fn detect_reports_something_on_linux() {
        let m = detect();
        if cfg!(target_os = "linux") {
            assert!(m.available_bytes.is_some_and(|a| a > 0));
            assert!(m.total_bytes >= m.available_bytes || m.source.starts_with("cgroup"));
        }
    }
}
