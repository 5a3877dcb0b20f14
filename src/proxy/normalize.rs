//! The connection manager's `normalize_path` and `merge_slashes`: the request path as Envoy
//! rewrites it before any filter or route sees it (and as it is forwarded). Checked against
//! Envoy 1.40: backslashes become slashes, percent-encoded unreserved characters are decoded
//! (`%41` is `A`, `%2e` is `.`), dot segments are removed as RFC 3986 section 5.2.4 says, and
//! then runs of slashes become one. The query is left alone; other escapes (`%2f`, `%20`)
//! are kept as written.

/// The normalized path and query, or `None` when it is already normal.
pub fn normalize(path_and_query: &str, dots: bool, merge_slashes: bool) -> Option<String> {
    let (path, query) = match path_and_query.find('?') {
        Some(i) => path_and_query.split_at(i),
        None => (path_and_query, ""),
    };
    let needs_dots = dots && path.bytes().any(|b| matches!(b, b'%' | b'\\' | b'.'));
    let needs_merge = merge_slashes && path.contains("//");
    if !needs_dots && !needs_merge {
        return None;
    }
    let mut out = if needs_dots { remove_dot_segments(&decode_unreserved(path)) } else { path.to_string() };
    if merge_slashes {
        out = merge(&out);
    }
    out.push_str(query);
    (out != path_and_query).then_some(out)
}

/// Backslashes as slashes and `%XX` of an unreserved character (RFC 3986 section 2.3) as
/// that character; every other byte as it is, except a stray `%` that decoding has put in
/// front of two hex digits (`%4%41` -> `%4A`): Envoy writes it `%25` there, so that the path
/// it forwards cannot be decoded again into another one (`/a%4%41` goes up as `/a%254A`).
fn decode_unreserved(path: &str) -> String {
    let b = path.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut strays = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if let Some(escape) = b.get(i..i + 3).filter(|e| e[1].is_ascii_hexdigit() && e[2].is_ascii_hexdigit()) {
                match crate::percent::hex_byte(escape[1], escape[2]).filter(|&c| unreserved(c)) {
                    Some(c) => out.push(c),
                    None => out.extend_from_slice(escape),
                }
                i += 3;
                continue;
            }
            strays.push(out.len());
        }
        out.push(if b[i] == b'\\' { b'/' } else { b[i] });
        i += 1;
    }
    for &at in strays.iter().rev() {
        let hex = |k: usize| out.get(k).is_some_and(u8::is_ascii_hexdigit);
        if hex(at + 1) && hex(at + 2) {
            out.splice(at + 1..at + 1, *b"25");
        }
    }
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// RFC 3986 section 5.2.4 on an absolute path: `.` and `..` segments go, `..` taking the
/// segment before it (never past the root).
fn remove_dot_segments(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    let mut parts = path.strip_prefix('/').unwrap_or(path).split('/').peekable();
    // A path ending in a dot segment ends in a slash: `/a/b/..` is `/a/`.
    let mut trailing_slash = false;
    while let Some(seg) = parts.next() {
        let last = parts.peek().is_none();
        match seg {
            "." => trailing_slash = last,
            ".." => {
                segments.pop();
                trailing_slash = last;
            }
            s => {
                segments.push(s);
                trailing_slash = false;
            }
        }
    }
    let mut out = String::with_capacity(path.len());
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if trailing_slash || out.is_empty() {
        out.push('/');
    }
    out
}

fn merge(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if !(c == '/' && out.ends_with('/')) {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::normalize;

    /// What Envoy 1.40 forwarded for each path with `normalize_path` and `merge_slashes`.
    #[test]
    fn paths_come_out_as_envoy_forwards_them() {
        let cases = [
            ("/a/../b", "/b"),
            ("/a/./b", "/a/b"),
            ("/a//b", "/a/b"),
            ("/%2e%2e/b", "/b"),
            ("/a/%2E%2e/b", "/b"),
            ("/a/%2E/b", "/a/b"),
            ("/a\\b", "/a/b"),
            ("/a/b/..", "/a/"),
            ("/../a", "/a"),
            ("/a%2fb", "/a%2fb"),
            ("/%41%7e", "/A~"),
            ("/a?x=/../y", "/a?x=/../y"),
            ("//a///b/", "/a/b/"),
            ("/a/b/../../..", "/"),
            ("/a/%2e./b", "/b"),
            ("/a/.%2e/b", "/b"),
            ("/a%20b", "/a%20b"),
            ("/a/b;c/../d", "/a/d"),
            ("/%zz", "/%zz"),
            ("/%7E", "/~"),
            ("/a/..%2fb", "/a/..%2fb"),
            ("/a/b/.", "/a/b/"),
            ("/a/b/./", "/a/b/"),
            ("/a%5c..%5cb", "/a%5c..%5cb"),
            ("/a/b%2F..%2Fc", "/a/b%2F..%2Fc"),
            ("/.", "/"),
            ("/..", "/"),
            ("/a/...", "/a/..."),
            ("/a/b?", "/a/b?"),
            ("/x/%2e%2E/", "/"),
            ("/%", "/%"),
            ("/%4", "/%4"),
            // Envoy 1.40: a stray `%` that decoding puts before two hex digits is escaped.
            ("/a%4%41/x", "/a%254A/x"),
            ("/%%41%41", "/%25AA"),
            ("/%4%2e%2e/b", "/%4../b"),
            ("/%4%2f", "/%4%2f"),
        ];
        for (path, want) in cases {
            assert_eq!(normalize(path, true, true).as_deref().unwrap_or(path), want, "{path}");
        }
    }

    #[test]
    fn each_option_alone() {
        assert_eq!(normalize("//a/../b", true, false).as_deref(), Some("//b"));
        assert_eq!(normalize("//a/../b", false, true).as_deref(), Some("/a/../b"));
        assert_eq!(normalize("/a/b", true, true), None);
    }
}
