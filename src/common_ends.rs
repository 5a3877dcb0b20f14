//! How much two versions of a list share at their two ends: what an incremental reload keeps
//! (document items, compiled routes, hosts) when one item in a long list changed.

/// The lengths of the longest common prefix and suffix of two lists of `n` and `m` items,
/// by `same(i, j)` (item `i` of the first, `j` of the second). They do not overlap:
/// `head + tail <= min(n, m)`.
pub(crate) fn common_ends(n: usize, m: usize, same: impl Fn(usize, usize) -> bool) -> (usize, usize) {
    let mut head = 0;
    while head < n.min(m) && same(head, head) {
        head += 1;
    }
    let mut tail = 0;
    while tail < n.min(m) - head && same(n - 1 - tail, m - 1 - tail) {
        tail += 1;
    }
    (head, tail)
}

#[cfg(test)]
mod tests {
    use super::common_ends;

    fn ends(a: &str, b: &str) -> (usize, usize) {
        let (a, b) = (a.as_bytes(), b.as_bytes());
        common_ends(a.len(), b.len(), |i, j| a[i] == b[j])
    }

    #[test]
    fn prefix_and_suffix_do_not_overlap() {
        assert_eq!(ends("abcde", "abXde"), (2, 2));
        assert_eq!(ends("abc", "abc"), (3, 0));
        assert_eq!(ends("aa", "aaa"), (2, 0));
        assert_eq!(ends("", "abc"), (0, 0));
        assert_eq!(ends("xbc", "ybc"), (0, 2));
    }
}
