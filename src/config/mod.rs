//! The configuration: Envoy's v3 bootstrap and file-based xDS resources, plus the v2 (2018-2019)
//! spellings tutorials still show.
//!
//! Pipeline, all in here and nowhere else (this is the only module that touches YAML):
//!
//! ```text
//! bytes --parse (yaml/json by extension; `--config-yaml` merged by `merge`)--> serde_yaml::Value
//!       --v2::normalise_*--> Value in v3 spelling
//!       --schema (proto-JSON -> Envoy's own message, `@type` resolving `typed_config`:
//!         what Envoy refuses; then the support table: set fields legate does not implement)
//!       --validate (reader::Obj walks each message, marking the fields it reads; every
//!         error is collected with its field path)--> model
//!       --validate::checks (duplicates, cluster references)--> model::Bootstrap / Discovery
//!       --schema::merge (one message per problem; the validators' where both spoke)
//! ```
//!
//! Envoy's schema (`schema/`) says which fields exist and parses values as Envoy does; its
//! support table (`schema/support.rs`, printed by `--print-support-matrix`) says which of them
//! legate implements, and refuses any other that is set, generically, at its path
//! (`static_resources.clusters[0].health_checks: not implemented by legate`). The reader plays
//! the part of typed serde structs, but keeps going after an error, so one load reports every
//! problem, each with the file and field path
//! (`static_resources.clusters[1].lb_policy: unknown value "round_robbin"`).
//!
//! Discovery files read through a [`DocCache`] (the reloader keeps one) are parsed and
//! validated incrementally: a new version that differs from the last one only inside some
//! items of its longest block sequence (the `routes:` of a 10,000-route file) parses those
//! items only, and validates those items only (`docs.rs`, `reader::Obj::objs_memo`), with the
//! same value, model and errors as a full load.

pub mod compressor;
pub mod cors_csrf;
pub mod ext_authz;
pub mod filters;
pub mod model;

mod discovery;
mod docs;
mod duration;
mod error;
mod lines;
mod merge;
mod parse;
mod reader;
mod schema;
mod type_urls;
mod v2;
mod validate;

#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

pub use discovery::{
    listed_cluster_names, parse_clusters, parse_endpoints, parse_listeners, parse_route_config, resources_json,
    validate_discovery_file,
};
pub use docs::DocCache;
pub use error::{ConfigError, ConfigErrors};
pub use lines::located;

use discovery::single;
use reader::Ctx;

/// Reads and validates a bootstrap; `config_yaml` is Envoy's `--config-yaml`, merged over the file
/// with proto MergeFrom semantics (scalars replace, maps/messages merge recursively, lists append).
/// Either argument may be absent, not both (path None + yaml Some is allowed, like Envoy).
pub fn load_bootstrap(path: Option<&Path>, config_yaml: Option<&str>) -> Result<model::Bootstrap, ConfigErrors> {
    load_bootstrap_with_json(path, config_yaml).map(|(b, _)| b)
}

/// [`load_bootstrap`], plus the bootstrap as JSON in v3 spelling (after v2 normalisation and
/// the `--config-yaml` merge), which `/config_dump` shows.
pub fn load_bootstrap_with_json(
    path: Option<&Path>,
    config_yaml: Option<&str>,
) -> Result<(model::Bootstrap, serde_json::Value), ConfigErrors> {
    let file = path.map_or_else(|| PathBuf::from("--config-yaml"), Path::to_path_buf);
    let mut value = match path {
        Some(p) => {
            let bytes = parse::read_file(p).map_err(single)?;
            parse::parse_value(p, &bytes, parse::format_for(p)).map_err(single)?
        }
        None if config_yaml.is_none() => {
            return Err(single(ConfigError {
                file,
                path: String::new(),
                message: "no configuration: give a config file (-c) or --config-yaml".to_string(),
            }))
        }
        None => serde_yaml::Value::Mapping(Default::default()),
    };
    if let Some(text) = config_yaml {
        let over = parse::parse_yaml(Path::new("--config-yaml"), text).map_err(single)?;
        merge::merge_from(&mut value, over);
    }
    v2::normalise_bootstrap(&mut value);
    let mut ctx = Ctx::new(file.clone());
    ctx.schema = true;
    schema::check(&mut ctx, &value, schema::BOOTSTRAP, "", 0);
    let bootstrap = validate::bootstrap(&mut ctx, &value);
    schema::merge(&mut ctx);
    match bootstrap {
        Some(b) if ctx.errors.is_empty() => Ok((b, serde_json::to_value(&value).unwrap_or_default())),
        _ if ctx.errors.is_empty() => {
            Err(single(ConfigError { file, path: String::new(), message: "invalid configuration".to_string() }))
        }
        _ => Err(ConfigErrors(ctx.errors)),
    }
}

/// Builds a TLS context again from the files it names as they are now (certificate
/// rotation); the errors name the file and the field.
pub fn rebuild_tls(origin: &crate::tls::secrets::Origin) -> Result<crate::tls::server::Material, ConfigErrors> {
    validate::tls::rebuild(origin)
}

/// Builds a cluster's TLS context again from the files it names as they are now.
pub fn rebuild_client_tls(
    origin: &crate::tls::client::ClientOrigin,
) -> Result<crate::tls::client::ClientMaterial, ConfigErrors> {
    validate::upstream_tls::rebuild(origin)
}

/// The support matrix as markdown (`legate --print-support-matrix`, `docs/support-matrix.md`),
/// from the table the validation uses.
pub fn support_matrix() -> String {
    schema::support::matrix()
}

/// What legate does not support yet, as markdown (`legate --print-not-supported`,
/// `docs/not-supported.md`): generated from the same table and Envoy's API.
pub fn not_supported() -> String {
    schema::not_supported()
}

/// Releases Envoy's schema (the descriptor pool configurations are checked with) now rather
/// than when it has been idle for a while: startup calls this once its configuration is
/// applied. A later parse decodes it again.
pub fn release_schema() {
    schema::release()
}

/// Cross-resource checks usable after an LDS/CDS update too: route configs (inline) naming
/// clusters that do not exist (unless `validate_clusters` is false) -> one error each, with the
/// field path under `root` (`resources`, `static_resources.listeners`). The errors' `file` is
/// empty: the caller knows which file the listeners came from.
pub fn check_cluster_refs(listeners: &[model::Listener], clusters: &HashSet<String>, root: &str) -> Vec<ConfigError> {
    listeners
        .iter()
        .enumerate()
        .flat_map(|(i, l)| validate::checks::listener_cluster_refs(&format!("{root}[{i}]"), l, clusters))
        .collect()
}
