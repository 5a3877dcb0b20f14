//! Field paths (`resources[0].virtual_hosts[0].routes[7]`) as errors name them, built cheaply
//! and rendered only when reported.

use std::fmt;
use std::rc::Rc;

/// The dotted field path of a message or field (`resources[0].virtual_hosts[0].routes[7]`),
/// rendered only when an error is reported. Building one is a copy of its parent's `Rc` and a
/// segment, no formatting: a 10,000-route file builds a path for every message it reads,
/// and renders the few that are wrong.
#[derive(Clone, Default)]
pub(crate) struct FieldPath {
    parent: Option<Rc<FieldPath>>,
    last: Seg,
}

#[derive(Clone, Default)]
pub(super) enum Seg {
    /// The document itself: the empty path.
    #[default]
    Root,
    /// A field, by the name the validator asked for (`per_try_timeout` also when the file
    /// wrote `perTryTimeout`).
    Field(&'static str),
    /// A key of a map-typed field, as written.
    Key(Rc<str>),
    Index(usize),
}

impl FieldPath {
    /// The path of the document (renders as the empty string).
    pub fn root() -> FieldPath {
        FieldPath::default()
    }

    /// A top-level field (`resources`, `static_resources`).
    #[cfg(test)]
    pub fn top(name: &'static str) -> FieldPath {
        FieldPath { parent: None, last: Seg::Field(name) }
    }

    pub(super) fn under(parent: &Rc<FieldPath>, last: Seg) -> FieldPath {
        FieldPath { parent: Some(Rc::clone(parent)), last }
    }

    /// `self[i]` (a list's path is shared by its items: see [`Obj::list`]).
    pub fn index(&self, i: usize) -> FieldPath {
        FieldPath::under(&Rc::new(self.clone()), Seg::Index(i))
    }

    /// `self.name`
    #[cfg(test)]
    pub fn field(&self, name: &'static str) -> FieldPath {
        FieldPath::under(&Rc::new(self.clone()), Seg::Field(name))
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let root = match &self.parent {
            Some(p) => {
                fmt::Display::fmt(p, f)?;
                matches!(p.last, Seg::Root)
            }
            None => true,
        };
        match &self.last {
            Seg::Root => Ok(()),
            Seg::Field(name) if root => f.write_str(name),
            Seg::Key(name) if root => f.write_str(name),
            Seg::Field(name) => write!(f, ".{name}"),
            Seg::Key(name) => write!(f, ".{name}"),
            Seg::Index(i) => write!(f, "[{i}]"),
        }
    }
}

impl fmt::Debug for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}
