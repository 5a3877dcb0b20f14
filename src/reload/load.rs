//! Reads one configuration file for the role it plays into a copy of the sources. Discovery
//! files go through the reloader's [`DocCache`], so a long file with one changed line is
//! parsed in pieces; [`FileResult`] is one file's outcome inside a batch.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use crate::config::{self, ConfigError, ConfigErrors, DocCache};

use super::sources::{Loaded, Role, Sources};
use super::stats::Outcome;

/// Why a file was not taken.
#[derive(Debug)]
pub enum LoadError {
    /// Unreadable or not YAML/JSON: Envoy's `update_failure`.
    Failure(ConfigErrors),
    /// Parsed, but invalid: Envoy's `update_rejected`.
    Rejected(ConfigErrors),
}

impl LoadError {
    pub fn outcome(&self) -> Outcome {
        match self {
            LoadError::Failure(_) => Outcome::Failure,
            LoadError::Rejected(_) => Outcome::Rejected,
        }
    }

    pub fn errors(&self) -> &ConfigErrors {
        match self {
            LoadError::Failure(e) | LoadError::Rejected(e) => e,
        }
    }
}

fn classify(e: ConfigErrors) -> LoadError {
    // Syntax and read errors concern the file as a whole: no field path.
    if e.0.iter().all(|err| err.path.is_empty()) {
        LoadError::Failure(e)
    } else {
        LoadError::Rejected(e)
    }
}

/// Nothing but whitespace, YAML comments and document markers: what an emptied file or a
/// write not yet begun looks like.
pub fn is_blank(bytes: &[u8]) -> bool {
    bytes.split(|&b| b == b'\n').all(|line| {
        let line = line.trim_ascii();
        line.is_empty() || line.starts_with(b"#") || line == b"---" || line == b"..."
    })
}

fn loaded<T>(value: T, version_info: String, path: &Path, bytes: &[u8]) -> Arc<Loaded<T>> {
    Arc::new(Loaded {
        value,
        version_info,
        last_updated: SystemTime::now(),
        path: path.to_path_buf(),
        raw: bytes::Bytes::copy_from_slice(bytes),
    })
}

/// Takes `bytes` as the new content of `path` for `role`; returns the outcome and the
/// version it carried. What a discovery file got away with (an unknown enum name) goes to
/// `warnings`.
pub fn load(
    sources: &mut Sources,
    docs: &mut DocCache,
    role: &Role,
    path: &Path,
    bytes: &[u8],
    warnings: &mut Vec<ConfigError>,
) -> Result<(Outcome, String), LoadError> {
    if is_blank(bytes) {
        // A truncation, or a redirect whose generator has not written yet, is not "nothing
        // configured": removing everything takes `resources: []` or empty lists.
        return Err(LoadError::Failure(ConfigErrors(vec![ConfigError {
            file: path.to_path_buf(),
            path: String::new(),
            message: "the file is empty (only whitespace or comments); an empty update is never taken".to_string(),
        }])));
    }
    match role {
        Role::Bootstrap => {
            let (b, json) =
                config::load_bootstrap_with_json(Some(path), sources.config_yaml.as_deref()).map_err(classify)?;
            let changed = b != sources.bootstrap;
            // LDS listeners may name the bootstrap's static secrets: read afresh when they change.
            let dynamic_changed =
                b.dynamic != sources.bootstrap.dynamic || b.static_secrets != sources.bootstrap.static_secrets;
            sources.bootstrap = b;
            sources.bootstrap_json = json;
            if dynamic_changed {
                // New LDS/CDS paths are read afresh.
                sources.lds = None;
                sources.cds = None;
            }
            Ok((Outcome::Success { changed }, String::new()))
        }
        Role::Lds => {
            let secrets = sources.bootstrap.static_secrets.clone();
            let mut d = docs.listeners(path, bytes, secrets).map_err(classify)?;
            warnings.append(&mut d.warnings);
            let changed = sources.lds.as_ref().is_none_or(|l| l.value != d.resources);
            let v = d.version_info.clone();
            sources.lds = Some(loaded(d.resources, d.version_info, path, bytes));
            Ok((Outcome::Success { changed }, v))
        }
        Role::Cds => {
            let mut d = docs.clusters(path, bytes).map_err(classify)?;
            warnings.append(&mut d.warnings);
            let changed = sources.cds.as_ref().is_none_or(|c| c.value != d.resources);
            let v = d.version_info.clone();
            sources.cds = Some(loaded(d.resources, d.version_info, path, bytes));
            Ok((Outcome::Success { changed }, v))
        }
        Role::Rds(name) => {
            let mut d = docs.route_config(path, bytes, name).map_err(classify)?;
            warnings.append(&mut d.warnings);
            let v = d.version_info.clone();
            let Some(rc) = d.resources.into_iter().next() else {
                return Ok((Outcome::Empty, v));
            };
            // Unchanged content keeps its Arc: what follows compares by pointer.
            let (changed, rc) = match sources.rds.get(name) {
                Some(r) if *r.value == rc => (false, Arc::clone(&r.value)),
                _ => (true, Arc::new(rc)),
            };
            sources.rds.insert(name.clone(), loaded(rc, d.version_info, path, bytes));
            Ok((Outcome::Success { changed }, v))
        }
        Role::Eds(service) => {
            let mut d = docs.endpoints(path, bytes, service).map_err(classify)?;
            warnings.append(&mut d.warnings);
            let v = d.version_info.clone();
            if d.resources.is_empty() {
                // Envoy's update_empty: the endpoints the cluster has stay.
                return Ok((Outcome::Empty, v));
            }
            let endpoints: Vec<_> = d.resources.into_iter().flat_map(|cla| cla.endpoints).collect();
            let (changed, endpoints) = match sources.eds.get(service) {
                Some(e) if *e.value == endpoints => (false, Arc::clone(&e.value)),
                _ => (true, Arc::new(endpoints)),
            };
            sources.eds.insert(service.clone(), loaded(endpoints, d.version_info, path, bytes));
            Ok((Outcome::Success { changed }, v))
        }
    }
}

/// One file's result inside a batch.
pub struct FileResult {
    pub role: Role,
    pub path: PathBuf,
    /// `content_hash` of the bytes loaded.
    pub hash: u64,
    pub result: Result<(Outcome, String), LoadError>,
    /// Tolerated values (`server.dynamic_unknown_fields`).
    pub warnings: Vec<config::ConfigError>,
    /// The clusters a rejected CDS file or bootstrap lists: routes naming them are not
    /// reported as `unknown cluster` on top of the clusters' own errors.
    pub broken_clusters: Vec<String>,
}

impl FileResult {
    pub fn new(
        role: Role,
        path: &Path,
        bytes: &[u8],
        hash: u64,
        result: Result<(Outcome, String), LoadError>,
        warnings: Vec<config::ConfigError>,
    ) -> FileResult {
        let broken_clusters = match (&role, &result) {
            (Role::Cds, Err(_)) => config::listed_cluster_names(path, bytes, false),
            (Role::Bootstrap, Err(_)) => config::listed_cluster_names(path, bytes, true),
            _ => Vec::new(),
        };
        FileResult { role, path: path.to_path_buf(), hash, result, warnings, broken_clusters }
    }
}

#[cfg(test)]
mod tests {
    use super::is_blank;

    #[test]
    fn blank_is_whitespace_comments_and_markers_only() {
        for blank in ["", " \n\t\r\n", "# generated\n  # nothing yet\n", "---\n# x\n...\n"] {
            assert!(is_blank(blank.as_bytes()), "{blank:?} is blank");
        }
        for full in ["resources: []", "{}", "# c\nresources: []\n", "--- {}"] {
            assert!(!is_blank(full.as_bytes()), "{full:?} is not blank");
        }
    }
}
