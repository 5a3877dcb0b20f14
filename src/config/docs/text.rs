//! The text side of parsing in pieces: the longest block sequence of a document, by its lines,
//! and the screening of bytes that would make its items depend on text outside them.

use std::ops::Range;

use super::PLACEHOLDER;

/// Below this many items a full parse is cheap enough.
const MIN_ITEMS: usize = 32;

/// The bytes [`screened`] looks at twice.
static SPECIAL: [bool; 256] = {
    let mut t = [false; 256];
    let bytes = [b'&', b'\t', b'\r', b'<', b'%', 0x85, 0xA8, 0xA9];
    let mut i = 0;
    while i < bytes.len() {
        t[bytes[i] as usize] = true;
        i += 1;
    }
    t
};

/// Whether `text` may be parsed in pieces at all (see the module docs), looking at the bytes
/// in `ranges` only: those of unchanged items passed when their document was parsed. Ranges
/// start at line starts, so nothing looked for spans two of them.
pub(super) fn screened(text: &str, ranges: &[Range<usize>]) -> bool {
    let b = text.as_bytes();
    let before = |i: usize, k: usize| i.checked_sub(k).and_then(|j| b.get(j)).copied();
    for r in ranges {
        let Some(part) = text.get(r.clone()) else { return false };
        if part.contains(PLACEHOLDER) {
            return false;
        }
        for (i, c) in part.bytes().enumerate().map(|(k, c)| (r.start + k, c)) {
            if SPECIAL[usize::from(c)] && !plain(c, i, b.get(i + 1).copied(), before) {
                return false;
            }
        }
    }
    true
}

/// Whether special byte `c` at `i` is harmless, given the byte after it and a look back.
fn plain(c: u8, i: usize, next: Option<u8>, before: impl Fn(usize, usize) -> Option<u8>) -> bool {
    match c {
        b'&' | b'\t' | b'\r' => false,
        b'<' => next != Some(b'<'),
        // A directive (`%TAG`) at the start of a line.
        b'%' => i > 0 && before(i, 1) != Some(b'\n'),
        // U+0085 NEL, U+2028 LS, U+2029 PS: line breaks to YAML 1.1.
        0x85 => before(i, 1) != Some(0xC2),
        0xA8 | 0xA9 => !(before(i, 1) == Some(0x80) && before(i, 2) == Some(0xE2)),
        _ => true,
    }
}

/// The longest run of block sequence items in `text`: its column and each item's bytes.
pub(super) fn longest_sequence(text: &str) -> Option<(usize, Vec<Range<usize>>)> {
    struct Run {
        column: usize,
        starts: Vec<usize>,
    }
    let mut open: Vec<Run> = Vec::new();
    let mut best: Option<(usize, Vec<Range<usize>>)> = None;
    let close = |run: Run, end: usize, best: &mut Option<(usize, Vec<Range<usize>>)>| {
        if best.as_ref().is_some_and(|(_, items)| items.len() >= run.starts.len()) {
            return;
        }
        let mut items = Vec::with_capacity(run.starts.len());
        for (k, s) in run.starts.iter().enumerate() {
            items.push(*s..run.starts.get(k + 1).copied().unwrap_or(end));
        }
        *best = Some((run.column, items));
    };
    let b = text.as_bytes();
    let mut start = 0;
    while start < b.len() {
        // A line's indentation and first character decide; the rest is skipped.
        let first = b[start..].iter().position(|&c| c != b' ').map_or(b.len(), |k| start + k);
        let indent = first - start;
        let end = b[first..].iter().position(|&c| c == b'\n').map_or(b.len(), |k| first + k + 1);
        if !matches!(b.get(first), None | Some(b'\n') | Some(b'#')) {
            let item = b[first] == b'-' && matches!(b.get(first + 1), None | Some(b' ') | Some(b'\n'));
            while let Some(top) = open.last() {
                if top.column > indent || (top.column == indent && !item) {
                    if let Some(run) = open.pop() {
                        close(run, start, &mut best);
                    }
                } else {
                    break;
                }
            }
            if item {
                match open.last_mut() {
                    Some(top) if top.column == indent => top.starts.push(start),
                    _ => open.push(Run { column: indent, starts: vec![start] }),
                }
            }
        }
        start = end;
    }
    while let Some(run) = open.pop() {
        close(run, text.len(), &mut best);
    }
    best.filter(|(_, items)| items.len() >= MIN_ITEMS)
}
