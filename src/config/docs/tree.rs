//! The value side of parsing in pieces: the skeleton (the document with its items replaced by
//! one placeholder), where the placeholder ended up, and comparisons and moves at that place.

use std::ops::Range;
use std::path::Path;

use serde_yaml::Value;

use super::{parse_yaml, Step, PLACEHOLDER};

/// `text` with the items replaced by one placeholder item, parsed, and where the placeholder
/// ended up.
pub(super) fn skeleton(text: &str, column: usize, items: &[Range<usize>]) -> Option<(Value, Vec<Step>)> {
    let (first, last) = (items.first()?, items.last()?);
    let mut s = String::with_capacity(first.start + (text.len() - last.end) + column + PLACEHOLDER.len() + 4);
    s.push_str(&text[..first.start]);
    s.extend(std::iter::repeat_n(' ', column));
    s.push_str("- ");
    s.push_str(PLACEHOLDER);
    s.push('\n');
    s.push_str(&text[last.end..]);
    let value = parse_yaml(Path::new(""), &s).ok()?;
    let mut found = Vec::new();
    find_placeholder(&value, &mut Vec::new(), &mut found);
    match <[_; 1]>::try_from(found) {
        Ok([at]) => Some((value, at)),
        Err(_) => None,
    }
}

fn find_placeholder(v: &Value, path: &mut Vec<Step>, found: &mut Vec<Vec<Step>>) {
    match v {
        Value::Sequence(items) if items.len() == 1 && items[0].as_str() == Some(PLACEHOLDER) => {
            found.push(path.clone());
        }
        Value::Sequence(items) => {
            for (i, item) in items.iter().enumerate() {
                path.push(Step::Index(i));
                find_placeholder(item, path, found);
                path.pop();
            }
        }
        Value::Mapping(m) => {
            for (k, item) in m {
                path.push(Step::Key(k.clone()));
                find_placeholder(item, path, found);
                path.pop();
            }
        }
        _ => {}
    }
}

pub(super) fn at_mut<'v>(mut v: &'v mut Value, path: &[Step]) -> Option<&'v mut Value> {
    for step in path {
        v = match (step, v) {
            (Step::Key(k), Value::Mapping(m)) => m.get_mut(k)?,
            (Step::Index(i), Value::Sequence(s)) => s.get_mut(*i)?,
            _ => return None,
        };
    }
    Some(v)
}

/// Nesting depth of a value (a scalar is 0).
pub(super) fn depth(v: &Value) -> usize {
    match v {
        Value::Sequence(s) => 1 + s.iter().map(depth).max().unwrap_or(0),
        Value::Mapping(m) => 1 + m.values().map(depth).max().unwrap_or(0),
        Value::Tagged(t) => 1 + depth(&t.value),
        _ => 0,
    }
}

/// Whether `full` equals `skel` everywhere but at `path`, where `skel` has the placeholder.
pub(super) fn same_outside(skel: &Value, full: &Value, path: &[Step]) -> bool {
    let Some((step, rest)) = path.split_first() else {
        return true;
    };
    match (step, skel, full) {
        (Step::Key(k), Value::Mapping(a), Value::Mapping(b)) => {
            a.len() == b.len()
                && a.iter()
                    .zip(b.iter())
                    .all(|((ka, va), (kb, vb))| ka == kb && if ka == k { same_outside(va, vb, rest) } else { va == vb })
        }
        (Step::Index(i), Value::Sequence(a), Value::Sequence(b)) => {
            a.len() == b.len()
                && a.iter().zip(b.iter()).enumerate().all(
                    |(j, (va, vb))| {
                        if j == *i {
                            same_outside(va, vb, rest)
                        } else {
                            va == vb
                        }
                    },
                )
        }
        _ => false,
    }
}

pub(super) fn at_value<'v>(mut v: &'v Value, path: &[Step]) -> Option<&'v Value> {
    for step in path {
        v = match (step, v) {
            (Step::Key(k), Value::Mapping(m)) => m.get(k)?,
            (Step::Index(i), Value::Sequence(s)) => s.get(*i)?,
            _ => return None,
        };
    }
    Some(v)
}
