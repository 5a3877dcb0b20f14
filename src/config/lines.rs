//! The line of a field path in a configuration file's text, for error messages
//! (`static_resources.clusters[1].lb_policy: unknown value "ROUND_ROBBIN" ... (line 14)`).
//!
//! serde_yaml's `Value` keeps no positions, and its parser's events are not public, so the path
//! is looked up in the text itself, by indentation, the way a reader would: a field is a
//! `key:` line among the shallowest lines of its parent's block (`- key:` counts, the key
//! being after the dash; quoted and lowerCamelCase keys too), an index is the n-th `-` item
//! of the block. Flow collections (`{...}`, `[...]`) are not entered: a field inside one, or
//! one spelt differently in the file (a v2 name the path gives in v3), gets the line of the
//! deepest part of its path that was found. A path whose first field is not found gets none.

use std::collections::HashMap;
use std::path::PathBuf;

use super::error::ConfigErrors;

/// Every error as `Display` renders it, with ` (line N)` where its path is found in its file.
/// Files are read again here (once each): the errors are all that is kept of a load.
pub fn located(errors: &ConfigErrors) -> Vec<String> {
    let mut texts: HashMap<PathBuf, Option<String>> = HashMap::new();
    errors
        .0
        .iter()
        .map(|e| {
            let text = texts.entry(e.file.clone()).or_insert_with(|| std::fs::read_to_string(&e.file).ok());
            match text.as_deref().filter(|_| !e.path.is_empty()).and_then(|t| line_of(t, &e.path)) {
                Some(n) => format!("{e} (line {n})"),
                None => e.to_string(),
            }
        })
        .collect()
}

#[derive(Debug, PartialEq)]
enum Seg<'p> {
    Field(&'p str),
    Index(usize),
}

fn segments(path: &str) -> Vec<Seg<'_>> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let (name, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !name.is_empty() {
            out.push(Seg::Field(name));
        }
        while let Some(end) = rest.find(']') {
            if let Ok(i) = rest[1..end].parse() {
                out.push(Seg::Index(i));
            }
            rest = &rest[end + 1..];
        }
    }
    out
}

/// One line of the text: its number (from 1), the column of its key (after any `- `), the
/// column of its first `-` when it starts an item, and its key.
struct Line<'t> {
    number: usize,
    key_col: usize,
    dash_col: Option<usize>,
    key: Option<&'t str>,
}

fn parse_line(number: usize, raw: &str) -> Option<Line<'_>> {
    let indent = raw.len() - raw.trim_start_matches(' ').len();
    let mut rest = &raw[indent..];
    if rest.is_empty() || rest.starts_with('#') {
        return None;
    }
    let mut col = indent;
    let mut dash_col = None;
    while rest == "-" || rest.starts_with("- ") {
        dash_col.get_or_insert(col);
        let after = rest[1..].trim_start_matches(' ');
        col += rest.len() - after.len();
        rest = after;
    }
    let key = key_of(rest);
    Some(Line { number, key_col: col, dash_col, key })
}

/// The key a line starts with (`name:`, `"name":`, `'name':`), unquoted.
fn key_of(text: &str) -> Option<&str> {
    let (key, after) = match text.as_bytes().first() {
        Some(q @ (b'"' | b'\'')) => {
            let end = text[1..].find(*q as char)? + 1;
            (&text[1..end], &text[end + 1..])
        }
        _ => {
            let end = text.find(':')?;
            (text[..end].trim_end(), &text[end..])
        }
    };
    let after = after.trim_start();
    (after.starts_with(':') && (after.len() == 1 || after[1..].starts_with([' ', '\t']))).then_some(key)
}

/// Whether `key` as written is the path's `name` (`perTryTimeout` for `per_try_timeout`).
fn same_key(key: &str, name: &str) -> bool {
    if key == name {
        return true;
    }
    let mut snake = String::with_capacity(name.len());
    for c in key.chars() {
        if c.is_ascii_uppercase() {
            snake.push('_');
        }
        snake.push(c.to_ascii_lowercase());
    }
    snake == name
}

/// The line of `path` in `text` (see the module docs).
pub(crate) fn line_of(text: &str, path: &str) -> Option<usize> {
    let lines: Vec<Line<'_>> = text.lines().enumerate().filter_map(|(i, l)| parse_line(i + 1, l)).collect();
    let segs = segments(path);
    // The block being searched: lines [start, end), and the line that owns it (for its number).
    let (mut start, mut end) = (0, lines.len());
    let mut found: Option<usize> = None;
    let mut i = 0;
    while i < segs.len() {
        let block = &lines[start..end];
        let col = block.iter().map(|l| l.key_col).min()?;
        let at = match segs[i] {
            Seg::Field(_) => {
                // A map key may hold dots (`envoy.extensions...`): the longest run of fields
                // that spells a key wins.
                let mut hit = None;
                for take in (1..=segs.len() - i).rev() {
                    let names: Option<Vec<&str>> = segs[i..i + take]
                        .iter()
                        .map(|s| match s {
                            Seg::Field(n) => Some(*n),
                            Seg::Index(_) => None,
                        })
                        .collect();
                    let Some(names) = names else { continue };
                    let joined = names.join(".");
                    if let Some(k) =
                        block.iter().position(|l| l.key_col == col && l.key.is_some_and(|k| same_key(k, &joined)))
                    {
                        hit = Some((k, take));
                        break;
                    }
                }
                let Some((k, take)) = hit else { break };
                i += take;
                let line = &block[k];
                // The field's block: the lines after it up to the next one as shallow, items
                // at its own column included (`clusters:` then `- name:` below it).
                let from = start + k + 1;
                let to = lines[from..end]
                    .iter()
                    .position(|l| {
                        let indent = l.dash_col.unwrap_or(l.key_col);
                        indent < line.key_col || (indent == line.key_col && l.dash_col != Some(indent))
                    })
                    .map_or(end, |p| from + p);
                found = Some(line.number);
                (from, to)
            }
            Seg::Index(n) => {
                let dash = block.iter().filter_map(|l| l.dash_col).min();
                let Some(dash) = dash else { break };
                let items: Vec<usize> = block
                    .iter()
                    .enumerate()
                    .filter(|(_, l)| l.dash_col == Some(dash))
                    .map(|(k, _)| start + k)
                    .collect();
                let Some(&item) = items.get(n) else { break };
                i += 1;
                found = Some(lines[item].number);
                let to = items.get(n + 1).copied().unwrap_or(end);
                // The item's own first line holds its first key: the block starts there.
                (item, to)
            }
        };
        (start, end) = at;
        if start >= end {
            break;
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
static_resources:
  listeners: []
  clusters:
  - name: a
    type: STATIC
  - name: b   # the second
    connectTimeout: 1s
    lb_policy: ROUND_ROBBIN
    load_assignment:
      cluster_name: b
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 1}}}
        - endpoint:
            address:
              socket_address: {address: 127.0.0.1, port_value: 2}
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        explicit_http_config: {}
";

    #[test]
    fn fields_and_items_by_indentation() {
        assert_eq!(line_of(TEXT, "static_resources"), Some(1));
        assert_eq!(line_of(TEXT, "static_resources.clusters[0].type"), Some(5));
        assert_eq!(line_of(TEXT, "static_resources.clusters[1].lb_policy"), Some(8));
        assert_eq!(line_of(TEXT, "static_resources.clusters[1]"), Some(6));
        assert_eq!(line_of(TEXT, "static_resources.clusters[1].name"), Some(6));
    }

    #[test]
    fn camel_case_and_dotted_keys() {
        assert_eq!(line_of(TEXT, "static_resources.clusters[1].connect_timeout"), Some(7));
        let p = "static_resources.clusters[1].typed_extension_protocol_options.envoy.extensions.upstreams.http.v3.HttpProtocolOptions.explicit_http_config";
        assert_eq!(line_of(TEXT, p), Some(19));
    }

    #[test]
    fn nested_items_and_flow_values() {
        let p = "static_resources.clusters[1].load_assignment.endpoints[0].lb_endpoints[1].endpoint.address";
        assert_eq!(line_of(TEXT, p), Some(15));
        // Inside a flow mapping: the deepest line found.
        let p = "static_resources.clusters[1].load_assignment.endpoints[0].lb_endpoints[0].endpoint.address";
        assert_eq!(line_of(TEXT, p), Some(13));
    }

    #[test]
    fn not_found() {
        assert_eq!(line_of(TEXT, "admin.address"), None);
        assert_eq!(line_of(TEXT, "static_resources.clusters[7].name"), Some(3));
    }
}
