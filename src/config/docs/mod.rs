//! The last document parsed from each file, so that a new version of a long file that differs
//! from it only inside the items of its longest block sequence (the `routes:` of a 10,000-route
//! RDS file, the `lb_endpoints:` of a 10,000-endpoint EDS file) is parsed in pieces: the file
//! around that sequence, and only the items that changed. The unchanged items' values are moved
//! over from the last document, never copied: parsing, copying or dropping a 600 KB document
//! costs more than the whole reload budget.
//!
//! The result is exactly what a full parse ([`parse_value`]) gives, by construction:
//!
//! - the text is screened first: anything that can make an item's value depend on text outside
//!   it, or make a line that looks like an item be something else, means a full parse
//!   (anchors `&` and so aliases, merge keys `<<`, directives, tabs, `\r` and YAML 1.1's other
//!   line breaks);
//! - the sequence is found by its lines: an item starts with `-` at column `c`; its other lines
//!   are deeper, blank or comments. The file with those lines replaced by one placeholder item
//!   (the *skeleton*) is parsed in full, and the placeholder must come out as the only item of
//!   one sequence value, which is where the items go;
//! - the changed items are parsed on their own, as one block sequence, and must come out as
//!   exactly as many values as there are items: every item line began a value, so no quoted or
//!   flow scalar spans item lines;
//! - the first time, the full parse's sequence must hold as many values as the text has items,
//!   and the rest of it must equal the skeleton's.
//!
//! Whenever a check fails the file is parsed in full, which also reports any syntax error
//! exactly as before.
//!
//! Validation then skips the unchanged items too: the validator of the long list (routes,
//! lb_endpoints) leaves its results here ([`ListMemo`]), and the next document made in pieces
//! hands them back with which of its items are the old ones ([`Splice`]); see
//! `reader::Obj::objs_memo`.
//!
//! `text.rs` finds the long sequence in the text and screens it; `tree.rs` builds and checks the
//! skeleton's value and moves items in and out of it.

mod text;
mod tree;

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde_yaml::Value;

use super::error::ConfigError;
use super::parse::{format_for, parse_value, parse_yaml, Format};
use super::reader::{ListMemo, Splice};

use text::{longest_sequence, screened};
use tree::{at_mut, at_value, depth, same_outside, skeleton};

/// Nesting kept well below serde_yaml's recursion limit (128): the skeleton and the items are
/// parsed apart, so a document too deep for a full parse must not pass in pieces.
const MAX_DEPTH: usize = 96;

/// Stands for the items in the skeleton; a text that contains it is parsed in full.
const PLACEHOLDER: &str = "__legate_items_placeholder_7f3a__";

/// The last parsed document of each file (see the module docs). One per reloader.
#[derive(Default)]
pub struct DocCache {
    docs: HashMap<PathBuf, Doc>,
    /// Parses done in pieces and in full, and list items not validated again, for tests.
    pub(crate) pieces: u64,
    pub(crate) full: u64,
    pub(crate) reused: u64,
}

struct Doc {
    text: String,
    /// What [`parse_value`] gives for `text`.
    value: Value,
    seq: Option<Seq>,
    /// The validated items of the long list of this document, once read.
    memo: Option<ListMemo>,
    /// The last document's, with how its items map to this document's: handed to the reader.
    prev: Option<(Splice, ListMemo)>,
}

impl Doc {
    fn new(text: &str, value: Value, seq: Option<Seq>) -> Doc {
        Doc { text: text.to_string(), value, seq, memo: None, prev: None }
    }

    /// The address of the long list's items, which identifies it to the reader.
    fn list(&self) -> usize {
        match self.seq.as_ref().and_then(|s| at_value(&self.value, &s.at)) {
            Some(Value::Sequence(items)) if !items.is_empty() => items.as_ptr() as usize,
            _ => 0,
        }
    }
}

/// A parsed document, for reading.
pub(crate) struct Reading<'d> {
    pub value: &'d mut Value,
    /// See [`Doc::list`]; 0 when the document has no long list.
    pub list: usize,
    /// The last document's validated list items, when this one was made from it in pieces.
    pub memo: Option<(Splice, ListMemo)>,
}

/// The longest block sequence of a document.
struct Seq {
    /// Each item's bytes in the text: contiguous, in order.
    items: Vec<Range<usize>>,
    /// Where the sequence is in the value.
    at: Vec<Step>,
    /// Deepest nesting inside an item (an upper bound).
    depth: usize,
}

#[derive(Clone)]
enum Step {
    Key(Value),
    Index(usize),
}

impl DocCache {
    /// Parses a file's bytes like [`parse_value`], reusing the last document of `file` where
    /// it can. The value stays here: the caller reads (or normalises: then [`DocCache::forget`])
    /// it in place, and leaves what it validated of the long list with [`DocCache::keep_memo`].
    pub(crate) fn parse(&mut self, file: &Path, bytes: &[u8]) -> Result<Reading<'_>, ConfigError> {
        let format = format_for(file);
        let text = match std::str::from_utf8(bytes) {
            Ok(t) if format == Format::Yaml => t,
            // JSON, and what parse_value reports as not UTF-8.
            _ => {
                let value = parse_value(file, bytes, format)?;
                self.full += 1;
                let doc = self.insert(file, Doc::new("", value, None));
                return Ok(Reading { value: &mut doc.value, list: 0, memo: None });
            }
        };
        let same = self.docs.get(file).is_some_and(|d| d.text == text);
        if same {
            // Read again as it is (a file written back with the same bytes).
            if let Some(d) = self.docs.get_mut(file) {
                let (list, len) = (d.list(), d.seq.as_ref().map_or(0, |s| s.items.len()));
                d.prev = d.memo.take().map(|m| (Splice { list, len, head: len, tail: 0, old_len: len }, m));
            }
        } else {
            let pieces = self.docs.get_mut(file).and_then(|d| in_pieces(d, text).map(|p| (p, d.memo.take())));
            let doc = match pieces {
                Some(((value, seq, mut splice), memo)) => {
                    self.pieces += 1;
                    let mut doc = Doc::new(text, value, Some(seq));
                    splice.list = doc.list();
                    doc.prev = memo.map(|m| (splice, m));
                    doc
                }
                None => {
                    let value = parse_value(file, bytes, format)?;
                    self.full += 1;
                    let seq = locate(text, &value);
                    Doc::new(text, value, seq)
                }
            };
            self.insert(file, doc);
        }
        match self.docs.get_mut(file) {
            Some(d) => Ok(Reading { list: d.list(), memo: d.prev.take(), value: &mut d.value }),
            None => Err(ConfigError {
                file: file.to_path_buf(),
                path: String::new(),
                message: "internal error: parsed document missing".to_string(),
            }),
        }
    }

    /// What the reader validated of the long list of the document of `file` just parsed.
    pub(crate) fn keep_memo(&mut self, file: &Path, memo: Option<ListMemo>, reused: usize) {
        self.reused += reused as u64;
        if let Some(d) = self.docs.get_mut(file) {
            d.memo = memo;
        }
    }

    fn insert(&mut self, file: &Path, doc: Doc) -> &mut Doc {
        match self.docs.entry(file.to_path_buf()) {
            std::collections::hash_map::Entry::Occupied(mut e) => {
                e.insert(doc);
                e.into_mut()
            }
            std::collections::hash_map::Entry::Vacant(e) => e.insert(doc),
        }
    }

    /// Drops the document of `file` (its value was changed in place, or the file is gone).
    pub(crate) fn forget(&mut self, file: &Path) {
        self.docs.remove(file);
    }

    /// Keeps only the documents of files `keep` says are still in use.
    pub fn retain(&mut self, mut keep: impl FnMut(&Path) -> bool) {
        self.docs.retain(|p, _| keep(p));
    }
}

/// After a full parse: the longest sequence of `text`, checked against `value`.
fn locate(text: &str, value: &Value) -> Option<Seq> {
    let whole = 0..text.len();
    if !screened(text, std::slice::from_ref(&whole)) {
        return None;
    }
    let (column, items) = longest_sequence(text)?;
    let (skel, at) = skeleton(text, column, &items)?;
    let Value::Sequence(values) = at_value(value, &at)? else {
        return None;
    };
    if values.len() != items.len() || !same_outside(&skel, value, &at) {
        return None;
    }
    let depth = values.iter().map(depth).max().unwrap_or(0);
    (at.len() + 1 + depth <= MAX_DEPTH).then_some(Seq { items, at, depth })
}

/// `text` parsed in pieces against `doc`, the last document of the same file; `None` when
/// it must be parsed in full. `doc` is left without its items on success only. The splice
/// says which items are the old ones (its `list` is for the caller to fill in).
fn in_pieces(doc: &mut Doc, text: &str) -> Option<(Value, Seq, Splice)> {
    let old = doc.seq.as_ref()?;
    let (column, items) = longest_sequence(text)?;
    // Items equal to the old ones at the start and at the end keep their values.
    let (n, m) = (old.items.len(), items.len());
    let same = |a: usize, b: usize| doc.text.get(old.items[a].clone()) == text.get(items[b].clone());
    let (head, tail) = crate::common_ends::common_ends(n, m, same);
    let changed = &items[head..m - tail];
    // The text around the list, and the items that changed.
    let (first, last) = (items.first()?, items.last()?);
    let mut fresh_text = vec![0..first.start, last.end..text.len()];
    if let (Some(a), Some(b)) = (changed.first(), changed.last()) {
        fresh_text.push(a.start..b.end);
    }
    if !screened(text, &fresh_text) {
        return None;
    }
    let (mut skel, at) = skeleton(text, column, &items)?;
    let fresh = match (changed.first(), changed.last()) {
        (Some(first), Some(last)) => match serde_yaml::from_str::<Value>(&text[first.start..last.end]).ok()? {
            Value::Sequence(values) if values.len() == changed.len() => values,
            _ => return None,
        },
        _ => Vec::new(),
    };
    let depth = fresh.iter().map(depth).max().unwrap_or(0).max(old.depth);
    if at.len() + 1 + depth > MAX_DEPTH {
        return None;
    }
    // Every check passed: move the old values over (nothing is moved unless all of it can be).
    let slot = at_mut(&mut skel, &at)?;
    let Some(Value::Sequence(values)) = at_mut(&mut doc.value, &old.at) else {
        return None;
    };
    if values.len() != n {
        return None;
    }
    let mut values = std::mem::take(values);
    values.splice(head..n - tail, fresh);
    *slot = Value::Sequence(values);
    // The old document has lost its items: the caller replaces it.
    doc.seq = None;
    doc.text.clear();
    let splice = Splice { list: 0, len: m, head, tail, old_len: n };
    Some((skel, Seq { items, at, depth }, splice))
}
