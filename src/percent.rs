//! Percent-decoding, shared by the admin's query strings (form encoding) and the connection
//! manager's path normalization (only unreserved characters).

/// `s` with each `%XX` whose byte `decode` accepts replaced by that byte; every other byte
/// (malformed escapes included) goes through `raw`. Lossy where the result is not UTF-8.
pub fn decode_with(s: &str, decode: impl Fn(u8) -> bool, raw: impl Fn(u8) -> u8) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                if decode(h << 4 | l) {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
            }
        }
        out.push(raw(b[i]));
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// The byte `%HL` stands for, when `h` and `l` are hex digits.
pub fn hex_byte(h: u8, l: u8) -> Option<u8> {
    Some(hex(h)? << 4 | hex(l)?)
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::decode_with;

    #[test]
    fn decodes_what_is_asked_and_maps_the_rest() {
        let all = |s| decode_with(s, |_| true, |b| if b == b'+' { b' ' } else { b });
        assert_eq!(all("a%20b+c%2Bd%zz%4"), "a b c+d%zz%4");
        let letters = |s| decode_with(s, |b| b.is_ascii_alphabetic(), |b| b);
        assert_eq!(letters("%41%2f%7e"), "A%2f%7e");
    }
}
