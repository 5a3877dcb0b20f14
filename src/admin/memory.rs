//! `GET /memory`: Envoy's allocator summary, approximated from `/proc/self/status`.
//!
//! Envoy reports tcmalloc's figures; legate uses the system allocator and reads the kernel's
//! view instead:
//!
//! | Envoy field            | legate's source                                        |
//! |------------------------|--------------------------------------------------------|
//! | `allocated`            | `RssAnon` (resident anonymous memory: the heap in use) |
//! | `heap_size`            | `VmData` (data segment and anonymous mappings)         |
//! | `pageheap_unmapped`    | 0 (no allocator statistics)                            |
//! | `pageheap_free`        | 0                                                      |
//! | `total_thread_cache`   | 0                                                      |
//! | `total_physical_bytes` | `VmRSS`                                                |
//!
//! Every figure is a decimal string of bytes, as in Envoy; a field the kernel does not
//! report (not Linux, or an old kernel) is 0.

use serde::Serialize;

/// The `/memory` body, fields in Envoy's order.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct Memory {
    pub allocated: String,
    pub heap_size: String,
    pub pageheap_unmapped: String,
    pub pageheap_free: String,
    pub total_thread_cache: String,
    pub total_physical_bytes: String,
}

/// Reads this process's figures now.
pub fn read() -> Memory {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    parse_status(&status)
}

/// Builds the figures from the text of `/proc/<pid>/status`.
pub fn parse_status(status: &str) -> Memory {
    let bytes = |key: &str| status_bytes(status, key).unwrap_or(0).to_string();
    Memory {
        allocated: bytes("RssAnon"),
        heap_size: bytes("VmData"),
        pageheap_unmapped: "0".into(),
        pageheap_free: "0".into(),
        total_thread_cache: "0".into(),
        total_physical_bytes: bytes("VmRSS"),
    }
}

/// One `Key:   123 kB` line of `/proc/<pid>/status`, in bytes.
fn status_bytes(status: &str, key: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))?;
    let mut parts = line.split_whitespace();
    let value: u64 = parts.next()?.parse().ok()?;
    match parts.next() {
        Some("kB") => value.checked_mul(1024),
        None => Some(value),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_kilobyte_lines() {
        let status = "Name:\tlegate\nVmData:\t  2048 kB\nVmRSS:\t    100 kB\nRssAnon:\t     40 kB\n";
        let m = parse_status(status);
        assert_eq!(m.allocated, "40960");
        assert_eq!(m.heap_size, "2097152");
        assert_eq!(m.total_physical_bytes, "102400");
        assert_eq!(m.pageheap_free, "0");
    }

    #[test]
    fn missing_or_garbled_lines_are_zero() {
        let m = parse_status("VmRSS: lots\nVmDataX: 5 kB\n");
        assert_eq!(m.total_physical_bytes, "0");
        assert_eq!(m.heap_size, "0");
    }

    #[test]
    fn this_process_has_a_resident_size() {
        if std::path::Path::new("/proc/self/status").exists() {
            assert_ne!(read().total_physical_bytes, "0");
        }
    }
}
