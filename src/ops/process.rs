//! The process's own memory, as `/metrics` reports it: what an operator compares
//! with the container's limit and watches for growth under steady load.
//!
//! Read from `/proc/self/statm` at each scrape (one small read, no parsing crate);
//! elsewhere than Linux the metrics are left out rather than made up.

/// The process's memory, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    /// Resident set size: the pages in RAM.
    pub resident: u64,
    /// Virtual memory size.
    pub virtual_size: u64,
}

/// The process's memory now, where `/proc/self/statm` tells it.
pub fn memory() -> Option<Memory> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    parse_statm(&statm, page_size()?)
}

/// `statm`'s first two fields are the virtual and resident sizes, in pages.
fn parse_statm(statm: &str, page_size: u64) -> Option<Memory> {
    let mut fields = statm.split_ascii_whitespace();
    let virtual_pages: u64 = fields.next()?.parse().ok()?;
    let resident_pages: u64 = fields.next()?.parse().ok()?;
    Some(Memory {
        resident: resident_pages.checked_mul(page_size)?,
        virtual_size: virtual_pages.checked_mul(page_size)?,
    })
}

fn page_size() -> Option<u64> {
    // SAFETY: sysconf reads a constant of the system; it has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).ok().filter(|&s| s > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statm_is_read_in_pages() {
        assert_eq!(
            parse_statm("1000 250 30 1 0 400 0\n", 4096),
            Some(Memory {
                resident: 250 * 4096,
                virtual_size: 1000 * 4096
            })
        );
        assert_eq!(parse_statm("garbage", 4096), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_has_resident_memory() {
        let memory = memory().expect("statm on Linux");
        assert!(memory.resident > 0 && memory.virtual_size >= memory.resident);
    }
}
