//! What one load collects (errors, warnings, fields nobody read) and what it may reuse of the
//! last load of the same file.

use std::fmt;
use std::path::PathBuf;

use super::{ConfigError, ListMemo, Splice};

/// Where errors of one load go, and what it may reuse of the last load of the same file.
pub(crate) struct Ctx {
    pub file: PathBuf,
    pub errors: Vec<ConfigError>,
    /// The long list of the document (`docs.rs`), by the address of its items; 0 for none.
    pub memo_list: usize,
    /// The last document's validated items of that list, and which items are the same.
    pub memo_in: Option<(Splice, ListMemo)>,
    /// This document's validated items of that list, for the next load.
    pub memo_out: Option<ListMemo>,
    /// Files read while validating (`DataSource.filename`): what read one is not memoized,
    /// the file may change without the configuration changing.
    pub file_reads: usize,
    /// Items taken from `memo_in` (for tests).
    pub reused: usize,
    /// Discovery files only: an enum name Envoy does not know either becomes a warning and
    /// the field's default, as Envoy treats a dynamic resource it cannot fully parse.
    pub lenient_enums: bool,
    /// What was tolerated under `lenient_enums`: logged and counted by the caller
    /// (`server.dynamic_unknown_fields`).
    pub warnings: Vec<ConfigError>,
    /// The schema pass (`config::schema`) checked this document: a field nobody read is then
    /// one Envoy knows and legate does not implement, and goes to `unread`.
    pub schema: bool,
    /// Errors of the schema pass, merged into `errors` by `schema::merge`.
    pub schema_errors: Vec<ConfigError>,
    /// Fields nobody read, when `schema` is on (see `schema::merge`).
    pub unread: Vec<ConfigError>,
    /// The long list's items were checked against the schema one by one (`objs_memo`), so the
    /// check of the resource around them leaves the list out.
    pub memo_checked: bool,
    /// The bootstrap's `static_resources.secrets` by name, for TLS contexts that name one
    /// without an `sds_config` (set while the bootstrap is read).
    pub static_secrets: Option<std::sync::Arc<crate::tls::secrets::StaticSecrets>>,
}

impl Ctx {
    pub fn new(file: impl Into<PathBuf>) -> Self {
        Ctx {
            file: file.into(),
            errors: Vec::new(),
            memo_list: 0,
            memo_in: None,
            memo_out: None,
            file_reads: 0,
            reused: 0,
            lenient_enums: false,
            warnings: Vec::new(),
            schema: false,
            schema_errors: Vec::new(),
            unread: Vec::new(),
            memo_checked: false,
            static_secrets: None,
        }
    }

    /// Records an error of the schema pass.
    pub fn schema_err(&mut self, path: String, message: String) {
        self.schema_errors.push(ConfigError { file: self.file.clone(), path, message });
    }

    /// Every problem recorded so far, of the validators and of the schema pass: what tells
    /// whether reading something found one.
    pub fn problem_count(&self) -> usize {
        self.errors.len() + self.schema_errors.len() + self.unread.len()
    }

    /// Records an error at `path` (anything that renders as a field path: a [`FieldPath`],
    /// a `String` built for the occasion, a literal).
    pub fn err(&mut self, path: impl fmt::Display, message: impl Into<String>) {
        self.errors.push(ConfigError { file: self.file.clone(), path: path.to_string(), message: message.into() });
    }

    pub fn error_count(&self) -> usize {
        self.errors.len()
    }
}
