//! The byte-level pieces of HTTP/1 the scanner reads: line ends, tokens, header value bytes,
//! decimal lengths and chunk-size lines, as hyper's parser judges them.

use super::State;

/// The first `\n`: the bytes of a head are mostly scanned for this.
pub(super) fn memchr_nl(buf: &[u8]) -> Option<usize> {
    buf.iter().position(|&b| b == b'\n')
}

/// Rewrites a request line's version (its last 8 bytes before the line end) to `HTTP/1.1`.
pub(super) fn as_http_11(line: &mut [u8]) {
    let end = line.len() - 1 - usize::from(line.len() >= 2 && line[line.len() - 2] == b'\r');
    if let Some(version) = end.checked_sub(8).map(|start| &mut line[start..end]) {
        version.copy_from_slice(b"HTTP/1.1");
    }
}

/// RFC 9110 `tchar`, as hyper's parser checks header names and methods. A table: every byte
/// of every header name of every HTTP/1 request is looked up.
pub(super) fn tchar(b: u8) -> bool {
    TCHAR[usize::from(b)]
}

static TCHAR: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    // Bounded: 256 turns.
    while i < 256 {
        let b = i as u8;
        t[i] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~'
            );
        i += 1;
    }
    t
};

/// A header value byte hyper's parser takes: visible ASCII, space, tab and obs-text.
pub(super) fn value_byte(b: u8) -> bool {
    b == b'\t' || (b >= 0x20 && b != 0x7f)
}

pub(super) fn parse_decimal(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(v.iter().fold(0u64, |n, &d| n * 10 + u64::from(d - b'0')))
}

/// A chunk-size line: hex digits, then optional whitespace and `;extensions`.
pub(super) fn chunk_size(line: &[u8]) -> State {
    let end = line.iter().position(|&b| !b.is_ascii_hexdigit()).unwrap_or(line.len());
    let (digits, rest) = line.split_at(end);
    if digits.is_empty() || digits.len() > 15 || !matches!(rest.trim_ascii_start().first(), None | Some(b';')) {
        return State::Off;
    }
    let size = digits.iter().fold(0u64, |n, &d| n * 16 + u64::from((d as char).to_digit(16).unwrap_or(0)));
    if size == 0 {
        State::Trailers
    } else {
        State::ChunkData(size)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_tchar_table_is_rfc_9110s_list() {
        for b in 0..=255u8 {
            let listed = b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
            assert_eq!(super::tchar(b), listed, "byte {b}");
        }
    }
}
