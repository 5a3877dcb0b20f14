//! The executable's read-only pages that startup touched: given back once startup is done.
//!
//! Starting runs much code the serving proxy never runs again (Envoy's schema, the YAML and
//! protobuf readers, every configuration check, TLS and runtime setup). Its pages stay mapped,
//! and counted in the process's resident memory, until the kernel needs them: 8.8 of the 15.9
//! MiB resident at idle on the load benchmark's config were code, 2.9 more read-only data.
//! Once the first configuration is applied, the executable's segments that are never written
//! are reclaimed; the code the proxy runs afterwards is read back on its first use, once (the
//! kernel maps it back in pieces of up to 64 KiB). Idle RSS on that config: 14.9 -> 10.7 MiB.
//!
//! Only the segments the ELF file maps without write permission qualify: their pages are the
//! file's own (a position-independent Rust executable has no text relocations), so dropping
//! them loses nothing. The part made read-only after relocation (RELRO) lies in a writable
//! segment, and a private page written by relocation would be lost: it is never touched. With
//! the fallback for kernels before 5.4, a breakpoint a debugger had set there is lost, once.

/// Drops the pages of the executable's read-only segments from the process's page tables;
/// returns the bytes advised (0 where this is not supported).
pub fn release() -> usize {
    imp::read_only_ranges().into_iter().map(|(start, end)| imp::drop_pages(start, end)).sum()
}

#[cfg(target_os = "linux")]
mod imp {
    use std::ffi::c_void;

    /// The page-aligned address ranges inside the main executable's read-only `PT_LOAD`
    /// segments: only whole pages of a segment, so that no page of another is included.
    pub(super) fn read_only_ranges() -> Vec<(usize, usize)> {
        let mut ranges = Vec::new();
        // SAFETY: the callback only reads the program headers glibc hands it, for the length
        // it gives, and writes to the Vec passed as `data`, which outlives the call.
        unsafe {
            libc::dl_iterate_phdr(Some(visit), (&mut ranges as *mut Vec<(usize, usize)>).cast());
        }
        ranges
    }

    /// One loaded object; the first one visited is the main program, and only its segments
    /// are collected (returning non-zero stops the walk).
    unsafe extern "C" fn visit(info: *mut libc::dl_phdr_info, _size: libc::size_t, data: *mut c_void) -> libc::c_int {
        // SAFETY: glibc passes a valid `dl_phdr_info` whose `dlpi_phdr` points to `dlpi_phnum`
        // headers; `data` is the Vec `read_only_ranges` passed.
        let (info, ranges) = unsafe { (&*info, &mut *data.cast::<Vec<(usize, usize)>>()) };
        if info.dlpi_phdr.is_null() {
            return 1;
        }
        // SAFETY: see above.
        let headers = unsafe { std::slice::from_raw_parts(info.dlpi_phdr, usize::from(info.dlpi_phnum)) };
        let page = page_size();
        for h in headers.iter().filter(|h| h.p_type == libc::PT_LOAD && h.p_flags & libc::PF_W == 0) {
            let start = (info.dlpi_addr as usize).wrapping_add(h.p_vaddr as usize);
            let end = start.wrapping_add(h.p_memsz as usize);
            let (first, last) = (start.next_multiple_of(page), end / page * page);
            if first < last {
                ranges.push((first, last));
            }
        }
        1
    }

    fn page_size() -> usize {
        // SAFETY: sysconf has no preconditions.
        let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        usize::try_from(n).ok().filter(|&n| n.is_power_of_two()).unwrap_or(4096)
    }

    /// Reclaims a range of a read-only file mapping (`MADV_PAGEOUT`, Linux 5.4): its pages
    /// leave the process's page tables, and the page cache unless another process maps them,
    /// and are read again when used. A page the kernel cannot write back (one a debugger wrote
    /// a breakpoint into, without swap) stays, so nothing is lost. Older kernels refuse the
    /// advice; there `MADV_DONTNEED` drops the pages from the page tables only, which loses
    /// nothing either in segments nothing writes.
    pub(super) fn drop_pages(start: usize, end: usize) -> usize {
        let advise = |advice| {
            // SAFETY: the range is page-aligned and lies in a segment of the executable that
            // is mapped read-only and never written: neither advice changes its content.
            unsafe { libc::madvise(start as *mut c_void, end - start, advice) == 0 }
        };
        if advise(libc::MADV_PAGEOUT) || advise(libc::MADV_DONTNEED) {
            end - start
        } else {
            0
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    pub(super) fn read_only_ranges() -> Vec<(usize, usize)> {
        Vec::new()
    }
    pub(super) fn drop_pages(_start: usize, _end: usize) -> usize {
        0
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::io::{Read, Seek, SeekFrom};

    /// The permissions of the mapping holding `addr`, from `/proc/self/maps`.
    fn perms_at(maps: &str, addr: usize) -> Option<String> {
        maps.lines().find_map(|line| {
            let (range, rest) = line.split_once(' ')?;
            let (a, b) = range.split_once('-')?;
            let (a, b) = (usize::from_str_radix(a, 16).ok()?, usize::from_str_radix(b, 16).ok()?);
            (a <= addr && addr < b).then(|| rest.split(' ').next().unwrap_or_default().to_string())
        })
    }

    /// Read-only data nothing else reads: its pages are present only when this test reads them.
    static COLD: [u8; 64 * 4096] = [0xa5; 64 * 4096];

    /// How many of the pages wholly inside `[start, end)` are in the process's page tables
    /// (`/proc/self/pagemap`: one word per page, bit 63 set when present), and how many there are.
    fn present_pages(start: usize, end: usize) -> (u64, u64) {
        let (first, last) = (start.next_multiple_of(4096), end / 4096 * 4096);
        let mut words = vec![0u8; (last - first) / 4096 * 8];
        let mut pagemap = std::fs::File::open("/proc/self/pagemap").expect("pagemap");
        pagemap.seek(SeekFrom::Start((first / 4096 * 8) as u64)).expect("seek");
        pagemap.read_exact(&mut words).expect("read");
        let present = words.chunks_exact(8).map(|w| u64::from_ne_bytes(w.try_into().expect("8 bytes")) >> 63).sum();
        (present, words.len() as u64 / 8)
    }

    #[test]
    fn only_pages_mapped_without_write_permission_are_chosen() {
        let ranges = super::imp::read_only_ranges();
        assert!(!ranges.is_empty(), "the executable has read-only segments");
        let maps = std::fs::read_to_string("/proc/self/maps").expect("maps");
        for &(start, end) in &ranges {
            for addr in (start..end).step_by(4096) {
                let perms = perms_at(&maps, addr).unwrap_or_else(|| panic!("{addr:#x} is mapped"));
                assert!(!perms.contains('w'), "{addr:#x} is in a {perms} mapping");
            }
        }
        // The code and the read-only data are among them.
        assert!(ranges.iter().any(|&(s, _)| perms_at(&maps, s).is_some_and(|p| p.starts_with("r-x"))));
        let cold = COLD.as_ptr() as usize;
        assert!(ranges.iter().any(|&(s, e)| s <= cold && cold < e));
    }

    #[test]
    fn released_pages_leave_the_page_tables_and_come_back_when_read() {
        let (start, end) = (COLD.as_ptr() as usize, COLD.as_ptr() as usize + COLD.len());
        // Through an opaque reference: the compiler knows the static's bytes, and would not read them.
        let sum = |c: &[u8]| std::hint::black_box(c).iter().map(|&b| u64::from(b)).sum::<u64>();
        assert_eq!(sum(&COLD), 0xa5 * COLD.len() as u64);
        let (present, pages) = present_pages(start, end);
        assert_eq!(present, pages, "read, every page is present");
        assert!(super::release() > 0);
        // A fault near them may bring a few back with it (the kernel maps pages around a fault).
        let (present, _) = present_pages(start, end);
        assert!(present * 2 < pages, "{present} of {pages} pages still present");
        assert_eq!(sum(&COLD), 0xa5 * COLD.len() as u64, "the content is the file's");
        assert_eq!(present_pages(start, end).0, pages);
    }
}
