//! Reading the long list of a document parsed in pieces (`docs.rs`): items unchanged since the
//! last load keep what their validator made of them then ([`Obj::objs_memo`]).

use std::any::Any;
use std::rc::Rc;

use serde_yaml::Value;

use super::{Ctx, FieldPath, Obj, Seg};

/// How the long list of a document parsed in pieces relates to the last document's: its items
/// `[0, head)` and `[len - tail, len)` have the text, and so the value, of the last document's
/// items `[0, head)` and `[old_len - tail, old_len)`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Splice {
    /// The address of the list's items in the new document.
    pub list: usize,
    pub len: usize,
    pub head: usize,
    pub tail: usize,
    pub old_len: usize,
}

impl Splice {
    /// The last document's index of item `i`, when it is one of the unchanged ones.
    fn old_index(&self, i: usize) -> Option<usize> {
        if i < self.head {
            Some(i)
        } else if i >= self.len - self.tail && i < self.len {
            Some(self.old_len - (self.len - i))
        } else {
            None
        }
    }
}

/// What one validator made of each item of a long list: `None` for an item that had errors or
/// read a file. Valid for the same validator (`site`) in the same `context` only.
pub(crate) struct ListMemo {
    site: &'static str,
    context: u64,
    /// `Vec<Option<T>>` of the validator's `T`.
    items: Box<dyn Any + Send + Sync>,
}

impl<'v> Obj<'v> {
    /// A repeated message field, each item read by `each` into a `T` (items it returns `None`
    /// for are left out), like [`Obj::objs`] then `filter_map`. When the list is the long list
    /// of a document parsed in pieces, items unchanged since the last load are not read again:
    /// their `T` is the one `each` made then (`site` and `context` say which validator in which
    /// setting; anything else `each` depends on must be in the item). Errors are reported as
    /// without the memo: an item with errors is never memoized, and so always read again.
    pub fn objs_memo<T: Clone + Send + Sync + 'static>(
        &mut self,
        ctx: &mut Ctx,
        name: &'static str,
        site: &'static str,
        context: u64,
        mut each: impl FnMut(&mut Ctx, Obj<'v>) -> Option<T>,
    ) -> Vec<T> {
        let Some(v) = self.take(name) else {
            return Vec::new();
        };
        let list = Rc::new(self.at(name));
        let (items, long) = match v {
            Value::Sequence(items) => {
                (items.as_slice(), ctx.memo_list != 0 && items.as_ptr() as usize == ctx.memo_list)
            }
            // Like protobuf's JSON parser (and so Envoy), a single value stands for a list of one.
            single => (std::slice::from_ref(single), false),
        };
        let mut old: Option<(Splice, Vec<Option<T>>)> = None;
        if long {
            if let Some((splice, memo)) = ctx.memo_in.take() {
                if splice.list == ctx.memo_list
                    && splice.len == items.len()
                    && memo.site == site
                    && memo.context == context
                {
                    if let Ok(values) = memo.items.downcast::<Vec<Option<T>>>() {
                        old = Some((splice, *values)).filter(|(s, v)| v.len() == s.old_len);
                    }
                }
            }
        }
        // Messages first, then their contents, as `objs` + `filter_map` report errors.
        let mut slots: Vec<(Option<T>, Option<Obj<'v>>)> = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let reused =
                old.as_mut().and_then(|(splice, values)| splice.old_index(i).and_then(|j| values.get_mut(j)?.take()));
            slots.push(match reused {
                Some(t) => {
                    ctx.reused += 1;
                    (Some(t), None)
                }
                None => (None, Obj::new(ctx, item, FieldPath::under(&list, Seg::Index(i)))),
            });
        }
        let mut out = Vec::with_capacity(items.len());
        let mut memo = long.then(|| Vec::with_capacity(items.len()));
        let schema_item = if long && ctx.schema { crate::config::schema::item_message(site) } else { None };
        if schema_item.is_some() {
            ctx.memo_checked = true;
        }
        for (i, slot) in slots.into_iter().enumerate() {
            let result = match slot {
                (Some(t), _) => Some(t),
                (None, Some(o)) => {
                    let (errors, reads, warnings) = (ctx.problem_count(), ctx.file_reads, ctx.warnings.len());
                    if let Some(message) = schema_item {
                        crate::config::schema::check(ctx, &items[i], message, &o.path.to_string(), 0);
                    }
                    let t = each(ctx, o);
                    // An item that warned is read again next time, so its warning is too.
                    if ctx.problem_count() != errors || ctx.file_reads != reads || ctx.warnings.len() != warnings {
                        if let Some(m) = &mut memo {
                            m.push(None);
                        }
                        if let Some(t) = t {
                            out.push(t);
                        }
                        continue;
                    }
                    t
                }
                (None, None) => None,
            };
            if let Some(m) = &mut memo {
                m.push(result.clone());
            }
            if let Some(t) = result {
                out.push(t);
            }
        }
        if let Some(items) = memo {
            ctx.memo_out = Some(ListMemo { site, context, items: Box::new(items) });
        }
        out
    }
}
