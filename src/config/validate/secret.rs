//! SDS secrets of a TLS context (`tls_certificate_sds_secret_configs`,
//! `validation_context_sds_secret_config`): by name from a file-based SDS `DiscoveryResponse`
//! (`sds_config.path_config_source`, or the deprecated `sds_config.path`), or, without an
//! `sds_config`, from the bootstrap's `static_resources.secrets`. The secret's message is read
//! by the same code as an inline `tls_certificates` entry or `validation_context`; the files
//! read are recorded so that a change to any of them rebuilds the context.
//!
//! Envoy refuses an SDS file holding more than one secret; legate picks the named one, so one
//! file can carry a certificate and its CA.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_yaml::Value;

use crate::config::model::EdsConfigSource;
use crate::config::parse::{format_for, parse_value};
use crate::config::reader::{Ctx, FieldPath, Obj};
use crate::config::schema;
use crate::discovery::WatchSpec;
use crate::tls::config::{CertificateSource, ValidationConfig};
use crate::tls::secrets::{join_path, Reads, SdsRead, StaticSecrets};

use super::common::config_source;

pub(crate) const SECRET: &str = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret";

/// A `tls_certificate_sds_secret_configs` entry.
pub(super) fn tls_certificate(ctx: &mut Ctx, o: Obj<'_>, reads: &mut Reads) -> Option<CertificateSource> {
    // Envoy names a secret's certificate after the secret.
    with_secret(ctx, o, reads, "tls_certificate", super::tls::tls_certificate)
        .map(|(c, name)| CertificateSource { name, ..c })
}

/// `validation_context_sds_secret_config`.
pub(super) fn validation_context(ctx: &mut Ctx, o: Obj<'_>, reads: &mut Reads) -> Option<ValidationConfig> {
    with_secret(ctx, o, reads, "validation_context", |ctx, o, reads| {
        Some(super::tls::validation_context(ctx, o, reads))
    })
    .map(|(v, name)| ValidationConfig { ca_name: name, ..v })
}

/// The secret's message read by `read`, and the secret's name.
fn with_secret<T>(
    ctx: &mut Ctx,
    o: Obj<'_>,
    reads: &mut Reads,
    kind: &'static str,
    read: impl FnOnce(&mut Ctx, Obj<'_>, &mut Reads) -> Option<T>,
) -> Option<(T, String)> {
    let mut name = String::new();
    let out = secret_named(ctx, o, reads, kind, read, &mut name)?;
    Some((out, name))
}

fn secret_named<T>(
    ctx: &mut Ctx,
    mut o: Obj<'_>,
    reads: &mut Reads,
    kind: &'static str,
    read: impl FnOnce(&mut Ctx, Obj<'_>, &mut Reads) -> Option<T>,
    named: &mut String,
) -> Option<T> {
    let name = o.str(ctx, "name");
    let sds = o.obj(ctx, "sds_config");
    let name_at = o.at("name");
    o.finish(ctx, &[]);
    let Some(name) = name.filter(|n| !n.is_empty()) else {
        ctx.err(name_at, "missing: a secret is named");
        return None;
    };
    named.clone_from(&name);
    let Some(sds) = sds else {
        return static_secret(ctx, &name, &name_at, reads, kind, read);
    };
    let at = sds.path.clone();
    match config_source(ctx, sds, false)? {
        EdsConfigSource::File(f) => from_file(ctx, &name, &f.path, f.watched_directory, reads, kind, read),
        _ => {
            ctx.err(at, "only a file (path_config_source) is supported as an SDS source");
            None
        }
    }
}

/// A secret of `static_resources.secrets`, read where the context is.
fn static_secret<T>(
    ctx: &mut Ctx,
    name: &str,
    name_at: &FieldPath,
    reads: &mut Reads,
    kind: &'static str,
    read: impl FnOnce(&mut Ctx, Obj<'_>, &mut Reads) -> Option<T>,
) -> Option<T> {
    let found = ctx.static_secrets.as_ref().and_then(|s| s.get(name).cloned());
    let Some(value) = found else {
        ctx.err(name_at, format!("unknown static secret \"{name}\" (no sds_config, and static_resources.secrets has no secret of that name)"));
        return None;
    };
    let before = ctx.error_count();
    let mut secret = Obj::new(ctx, &value, FieldPath::root())?;
    let out = message(ctx, &mut secret, name, reads, kind, read);
    secret.ignore(&["name", "tls_certificate", "validation_context"]);
    secret.finish(ctx, &[]);
    for e in &mut ctx.errors[before..] {
        e.path = join_path(&format!("static_resources.secrets[\"{name}\"]"), &e.path);
    }
    out
}

/// The secret's `tls_certificate` or `validation_context`.
fn message<T>(
    ctx: &mut Ctx,
    secret: &mut Obj<'_>,
    name: &str,
    reads: &mut Reads,
    kind: &'static str,
    read: impl FnOnce(&mut Ctx, Obj<'_>, &mut Reads) -> Option<T>,
) -> Option<T> {
    let field = if kind == "tls_certificate" { "tls_certificate" } else { "validation_context" };
    match secret.obj(ctx, field) {
        Some(m) => read(ctx, m, reads),
        None => {
            ctx.err(&secret.path, format!("secret \"{name}\" has no {kind}"));
            None
        }
    }
}

/// The named secret of an SDS file; errors name the SDS file.
fn from_file<T>(
    ctx: &mut Ctx,
    name: &str,
    path: &Path,
    watched_directory: Option<PathBuf>,
    reads: &mut Reads,
    kind: &'static str,
    read: impl FnOnce(&mut Ctx, Obj<'_>, &mut Reads) -> Option<T>,
) -> Option<T> {
    ctx.file_reads += 1;
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            ctx.errors.push(crate::config::ConfigError {
                file: path.to_path_buf(),
                path: String::new(),
                message: format!("cannot read SDS file: {e}"),
            });
            return None;
        }
    };
    reads.file(WatchSpec { path: path.to_path_buf(), watched_directory }, &bytes);
    let doc = match parse_value(path, &bytes, format_for(path)) {
        Ok(v) => v,
        Err(e) => {
            ctx.errors.push(e);
            return None;
        }
    };
    let saved = std::mem::replace(&mut ctx.file, path.to_path_buf());
    let out = secret_in(ctx, &doc, name, reads, kind, read).map(|(version_info, out)| {
        reads.sds.retain(|s| s.name != name);
        reads.sds.push(SdsRead { name: name.to_string(), path: path.to_path_buf(), version_info });
        out
    });
    ctx.file = saved;
    out.flatten()
}

/// Finds and reads the secret in a `DiscoveryResponse`; `Some((version_info, _))` when found.
fn secret_in<T>(
    ctx: &mut Ctx,
    doc: &Value,
    name: &str,
    reads: &mut Reads,
    kind: &'static str,
    read: impl FnOnce(&mut Ctx, Obj<'_>, &mut Reads) -> Option<T>,
) -> Option<(String, Option<T>)> {
    let mut root = Obj::new(ctx, doc, FieldPath::root())?;
    let version_info = root.str(ctx, "version_info").unwrap_or_default();
    if let Some(url) = root.str(ctx, "type_url").filter(|u| u != SECRET) {
        ctx.err(root.at("type_url"), format!("wrong type_url \"{url}\": expected \"{SECRET}\""));
    }
    root.ignore(&["nonce", "canary", "control_plane"]);
    let items = root.list(ctx, "resources");
    root.finish(ctx, &[]);
    for (v, at) in items {
        if v.get("name").and_then(Value::as_str) != Some(name) {
            continue;
        }
        let mut secret = Obj::new(ctx, v, at)?;
        match secret.str(ctx, "@type") {
            Some(u) if u == SECRET => {}
            Some(u) => {
                ctx.err(secret.at("@type"), format!("wrong @type \"{u}\": expected \"{SECRET}\""));
                return None;
            }
            None => {
                ctx.err(&secret.path, format!("missing @type (expected \"{SECRET}\")"));
                return None;
            }
        }
        let _ = secret.str(ctx, "name");
        let path = secret.path.to_string();
        let out = message(ctx, &mut secret, name, reads, kind, read);
        secret.ignore(&["tls_certificate", "validation_context"]);
        secret.finish(ctx, &[]);
        if ctx.schema {
            schema::check(ctx, v, SECRET, &path, 0);
        }
        return Some((version_info, out));
    }
    ctx.err("resources", format!("no secret named \"{name}\""));
    None
}

/// `static_resources.secrets`: each one's errors at its own path, then the map by name.
pub(crate) fn static_secrets(ctx: &mut Ctx, items: Vec<(&Value, FieldPath)>) -> Arc<StaticSecrets> {
    let mut out = StaticSecrets::new();
    for (v, at) in items {
        let Some(mut s) = Obj::new(ctx, v, at) else { continue };
        let name = s.str(ctx, "name").filter(|n| !n.is_empty());
        let mut reads = Reads::default();
        match (s.obj(ctx, "tls_certificate"), s.obj(ctx, "validation_context")) {
            (Some(t), None) => {
                let _ = super::tls::tls_certificate(ctx, t, &mut reads);
            }
            (None, Some(vc)) => {
                let _ = super::tls::validation_context(ctx, vc, &mut reads);
            }
            (Some(_), Some(_)) => ctx.err(&s.path, "only one of tls_certificate and validation_context may be set"),
            (None, None) => ctx.err(&s.path, "a secret needs a tls_certificate or a validation_context"),
        }
        let at = s.at("name");
        s.finish(ctx, &[]);
        match name {
            Some(n) if out.contains_key(&n) => ctx.err(at, format!("duplicate secret name \"{n}\"")),
            Some(n) => {
                out.insert(n, v.clone());
            }
            None => ctx.err(at, "missing: a secret is named"),
        }
    }
    Arc::new(out)
}
