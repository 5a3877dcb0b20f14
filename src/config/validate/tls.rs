//! A filter chain's `transport_socket`: `envoy.transport_sockets.tls` with a
//! `DownstreamTlsContext` (read here, built by `crate::tls::server`, so a certificate that
//! does not load refuses the configuration at its field), or `raw_buffer`.

use std::path::PathBuf;
use std::sync::Arc;

use serde_yaml::Value;

use crate::config::reader::{scalar_string, Ctx, FieldPath, Obj};
use crate::config::type_urls as t;
use crate::config::{ConfigError, ConfigErrors};
use crate::discovery::WatchSpec;
use crate::tls::config::{
    CertificateSource, DownstreamTlsConfig, SanMatcher, SanType, TlsParams, TlsVersion, ValidationConfig,
};
use crate::tls::secrets::{join_path, Origin, Reads};
use crate::tls::server::Material;
use crate::tls::ServerTls;

use super::common::data_source;
use super::matcher::string_matcher;
use super::secret;

/// The chain's TLS context; `None` for plaintext (absent, or `raw_buffer`) and on errors.
pub(crate) fn transport_socket(ctx: &mut Ctx, mut o: Obj<'_>) -> Option<Arc<ServerTls>> {
    let _ = o.str(ctx, "name");
    let typed = o.get("typed_config");
    let path = o.path.clone();
    o.finish(ctx, &[]);
    let Some((value, at)) = typed else {
        ctx.err(&path, "missing typed_config: a transport socket is chosen by its @type");
        return None;
    };
    let mut typed = Obj::new(ctx, value, at)?;
    match typed.str(ctx, "@type").as_deref() {
        Some(t::DOWNSTREAM_TLS_CONTEXT) => downstream_tls(ctx, typed, value),
        Some(t::RAW_BUFFER) => {
            typed.finish(ctx, &[]);
            None
        }
        Some(other) => {
            ctx.err(typed.at("@type"), format!("unsupported transport socket \"{other}\""));
            None
        }
        None => {
            ctx.err(&typed.path, "missing @type");
            None
        }
    }
}

fn downstream_tls(ctx: &mut Ctx, o: Obj<'_>, value: &Value) -> Option<Arc<ServerTls>> {
    let path = o.path.to_string();
    let config = downstream_config(ctx, o, &path)?;
    let origin = (!config.reads.is_empty()).then(|| Origin {
        value: value.clone(),
        path: path.clone(),
        file: ctx.file.clone(),
        static_secrets: ctx.static_secrets.clone(),
    });
    let reads = config.reads.clone();
    match crate::tls::server::build_material(config) {
        Ok(m) => Some(Arc::new(ServerTls::new(m, origin))),
        Err(e) => {
            ctx.err(join_path(&path, &cert_field(value, &reads, &e.field)), e.message);
            None
        }
    }
}

/// The field of a build error as the configuration wrote it: the certificates after the
/// `tls_certificates` entries came from `tls_certificate_sds_secret_configs`.
pub(super) fn cert_field(value: &Value, reads: &Reads, field: &str) -> String {
    const LIST: &str = "common_tls_context.tls_certificates[";
    let direct = value.get("common_tls_context").and_then(|c| c.get("tls_certificates")).and_then(Value::as_sequence);
    let direct = direct.map_or(0, Vec::len);
    let Some((index, rest)) = field.strip_prefix(LIST).and_then(|r| r.split_once(']')) else {
        return field.to_string();
    };
    match index.parse::<usize>().ok().and_then(|i| i.checked_sub(direct)) {
        Some(i) => {
            let secret = reads
                .sds
                .get(i)
                .map_or_else(String::new, |s| format!(" (secret \"{}\" of {})", s.name, s.path.display()));
            format!("common_tls_context.tls_certificate_sds_secret_configs[{i}]{rest}{secret}")
        }
        None => field.to_string(),
    }
}

/// Reads a context built before again, from the files it names as they are now: the
/// configuration's checks, then the certificate's (a key that does not match, an expired
/// certificate). Errors carry the file and the field path in it.
pub(crate) fn rebuild(origin: &Origin) -> Result<Material, ConfigErrors> {
    let config = reread(origin, |ctx, o| downstream_config(ctx, o, &origin.path))?;
    let reads = config.reads.clone();
    let fail = |message: String, field: &str| {
        Err(fail_at(origin, message, join_path(&origin.path, &cert_field(&origin.value, &reads, field))))
    };
    let material = match crate::tls::server::build_material(config) {
        Ok(m) => m,
        Err(e) => return fail(e.message, &e.field),
    };
    let now = unix_now();
    for (i, chain) in material.certs.iter().enumerate() {
        if let Some(leaf) = chain.first().filter(|c| c.not_after <= now) {
            let at = format!("common_tls_context.tls_certificates[{i}].certificate_chain");
            return fail(
                format!("the certificate in \"{}\" (serial {}) has expired", leaf.path, leaf.serial_number),
                &at,
            );
        }
    }
    Ok(material)
}

/// Reads a context's message (`origin`) again with `read`, the errors' paths made whole.
pub(super) fn reread<C>(origin: &Origin, read: impl FnOnce(&mut Ctx, Obj<'_>) -> Option<C>) -> Result<C, ConfigErrors> {
    let mut ctx = Ctx::new(origin.file.clone());
    ctx.static_secrets = origin.static_secrets.clone();
    let config = Obj::new(&mut ctx, &origin.value, FieldPath::root()).and_then(|mut o| {
        let _ = o.str(&mut ctx, "@type");
        read(&mut ctx, o)
    });
    let mut errors = std::mem::take(&mut ctx.errors);
    for e in &mut errors {
        if e.file == origin.file {
            e.path = join_path(&origin.path, &e.path);
        }
    }
    match config {
        Some(c) if errors.is_empty() => Ok(c),
        _ if !errors.is_empty() => Err(ConfigErrors(errors)),
        _ => Err(fail_at(origin, "invalid TLS context".into(), origin.path.clone())),
    }
}

/// One error at `path` of `origin`'s file.
pub(super) fn fail_at(origin: &Origin, message: String, path: String) -> ConfigErrors {
    ConfigErrors(vec![ConfigError { file: origin.file.clone(), path, message }])
}

/// Seconds since the epoch (a certificate's expiry is compared with it).
pub(super) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The context's configuration, its files read (`path`: the context's field path).
fn downstream_config(ctx: &mut Ctx, mut o: Obj<'_>, path: &str) -> Option<DownstreamTlsConfig> {
    let before = ctx.error_count();
    let require_client_certificate = o.bool(ctx, "require_client_certificate").unwrap_or(false);
    let mut config = DownstreamTlsConfig { require_client_certificate, path: path.to_string(), ..Default::default() };
    let mut reads = Reads::default();
    if let Some(mut c) = o.obj(ctx, "common_tls_context") {
        for cert in c.objs(ctx, "tls_certificates") {
            if let Some(s) = tls_certificate(ctx, cert, &mut reads) {
                config.certificates.push(s);
            }
        }
        for sds in c.objs(ctx, "tls_certificate_sds_secret_configs") {
            if let Some(s) = secret::tls_certificate(ctx, sds, &mut reads) {
                config.certificates.push(s);
            }
        }
        config.alpn = c.strs(ctx, "alpn_protocols");
        if let Some(p) = c.obj(ctx, "tls_params") {
            config.params = tls_params(ctx, p);
        }
        if let Some(v) = c.obj(ctx, "validation_context") {
            config.validation = Some(validation_context(ctx, v, &mut reads));
        }
        if let Some(v) = c.obj(ctx, "validation_context_sds_secret_config") {
            if config.validation.is_some() {
                ctx.err(&v.path, "only one of validation_context and validation_context_sds_secret_config may be set");
            }
            config.validation = secret::validation_context(ctx, v, &mut reads);
        }
        c.finish(ctx, &[]);
    }
    config.resumption = super::tls_resumption::resumption(ctx, &mut o, &mut reads);
    o.finish(ctx, &[]);
    if config.certificates.is_empty() && ctx.error_count() == before {
        ctx.err(join_path(path, "common_tls_context.tls_certificates"), "a server TLS context needs a certificate");
    }
    if require_client_certificate && config.validation.is_none() {
        // As Envoy: a certificate is required, and any is accepted.
        config.validation = Some(ValidationConfig::default());
    }
    config.reads = reads;
    (ctx.error_count() == before).then_some(config)
}

/// A `DataSource` and, when it names a file, the file (for `/certs`); the file is recorded in
/// `reads`, watched with `watched` too.
fn source(
    ctx: &mut Ctx,
    o: &mut Obj<'_>,
    name: &'static str,
    reads: &mut Reads,
    watched: Option<&PathBuf>,
) -> Option<(bytes::Bytes, String)> {
    let Some((v, path)) = o.get(name) else {
        ctx.err(o.at(name), "missing");
        return None;
    };
    let file = v.get("filename").and_then(Value::as_str).map(str::to_string);
    let obj = Obj::new(ctx, v, path)?;
    let data = data_source(ctx, obj)?;
    if let Some(f) = &file {
        let spec = WatchSpec { path: PathBuf::from(f), watched_directory: watched.cloned() };
        reads.file(spec, &data);
    }
    Some((data, file.unwrap_or_else(|| INLINE.to_string())))
}

/// What `/certs` shows as the path of inline data.
const INLINE: &str = "<inline>";

/// `watched_directory` of a `TlsCertificate` or `CertificateValidationContext`.
fn watched_directory(ctx: &mut Ctx, o: &mut Obj<'_>) -> Option<PathBuf> {
    let mut w = o.obj(ctx, "watched_directory")?;
    let p = w.str(ctx, "path");
    if p.is_none() {
        ctx.err(w.at("path"), "missing path");
    }
    w.finish(ctx, &[]);
    p.map(PathBuf::from)
}

pub(super) fn tls_certificate(ctx: &mut Ctx, mut o: Obj<'_>, reads: &mut Reads) -> Option<CertificateSource> {
    let watched = watched_directory(ctx, &mut o);
    let chain = source(ctx, &mut o, "certificate_chain", reads, watched.as_ref());
    let key = source(ctx, &mut o, "private_key", reads, watched.as_ref());
    o.finish(ctx, &[]);
    let ((chain, chain_path), (key, _)) = (chain?, key?);
    let inline = (chain_path == INLINE).then_some(chain.as_ref());
    let name = crate::tls::config::unnamed("unnamed_cert_", inline);
    Some(CertificateSource { chain, key, chain_path, name })
}

fn version(ctx: &mut Ctx, o: &mut Obj<'_>, name: &'static str) -> Option<TlsVersion> {
    let at = o.at(name);
    let v = o.enumv(
        ctx,
        name,
        &[
            ("TLS_AUTO", Some(None)),
            ("TLSv1_0", Some(Some(None))),
            ("TLSv1_1", Some(Some(None))),
            ("TLSv1_2", Some(Some(Some(TlsVersion::V1_2)))),
            ("TLSv1_3", Some(Some(Some(TlsVersion::V1_3)))),
        ],
    )??;
    if v.is_none() {
        ctx.err(at, "TLS 1.0 and 1.1 are not implemented by legate (rustls speaks TLS 1.2 and 1.3)");
    }
    v
}

pub(super) fn tls_params(ctx: &mut Ctx, mut o: Obj<'_>) -> TlsParams {
    let min = version(ctx, &mut o, "tls_minimum_protocol_version");
    let max = version(ctx, &mut o, "tls_maximum_protocol_version");
    // OpenSSL's equal-preference groups (`[a|b]`) are flattened in order.
    let cipher_suites = o
        .strs(ctx, "cipher_suites")
        .iter()
        .flat_map(|s| s.trim_matches(|c| c == '[' || c == ']').split('|').map(str::to_string).collect::<Vec<_>>())
        .collect();
    let ecdh_curves = o.strs(ctx, "ecdh_curves");
    o.finish(ctx, &[]);
    TlsParams { min, max, cipher_suites, ecdh_curves }
}

pub(super) fn validation_context(ctx: &mut Ctx, mut o: Obj<'_>, reads: &mut Reads) -> ValidationConfig {
    let mut v = ValidationConfig::default();
    let watched = watched_directory(ctx, &mut o);
    if o.has("trusted_ca") {
        let ca = source(ctx, &mut o, "trusted_ca", reads, watched.as_ref());
        if let Some((b, path)) = &ca {
            v.ca_name = crate::tls::config::unnamed("unnamed_ca_cert_", (path == INLINE).then_some(b.as_ref()));
        }
        v.trusted_ca = ca.map(|(b, _)| b);
    }
    if o.has("crl") {
        v.crl = source(ctx, &mut o, "crl", reads, watched.as_ref()).map(|(b, _)| b);
    }
    v.only_verify_leaf_cert_crl = o.bool(ctx, "only_verify_leaf_cert_crl").unwrap_or(false);
    for mut m in o.objs(ctx, "match_typed_subject_alt_names") {
        let san_type = m.enumv(
            ctx,
            "san_type",
            &[
                ("SAN_TYPE_UNSPECIFIED", None),
                ("EMAIL", Some(SanType::Email)),
                ("DNS", Some(SanType::Dns)),
                ("URI", Some(SanType::Uri)),
                ("IP_ADDRESS", Some(SanType::IpAddress)),
                ("OTHER_NAME", None),
            ],
        );
        let at = m.at("san_type");
        let matcher = m.obj(ctx, "matcher").and_then(|s| string_matcher(ctx, s));
        m.finish(ctx, &[]);
        match (san_type, matcher) {
            (Some(san_type), Some(matcher)) => v.match_typed_subject_alt_names.push(SanMatcher { san_type, matcher }),
            (None, _) => ctx.err(at, "a san_type of DNS, EMAIL, URI or IP_ADDRESS is required"),
            _ => {}
        }
    }
    for (val, path) in o.list(ctx, "verify_certificate_hash") {
        match scalar_string(val).as_deref().and_then(parse_hash) {
            Some(h) => v.verify_certificate_hash.push(h),
            None => hash_err(ctx, &path),
        }
    }
    o.finish(ctx, &[]);
    v
}

fn hash_err(ctx: &mut Ctx, path: &FieldPath) {
    ctx.err(path, "expected a SHA-256 fingerprint: 64 hex digits, optionally colon-separated");
}

/// `DF:6F:...` or `df6f...`: a SHA-256 fingerprint.
fn parse_hash(s: &str) -> Option<[u8; 32]> {
    let hex: Vec<u8> = s.bytes().filter(|&b| b != b':').collect();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in hex.chunks(2).enumerate() {
        out[i] = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::{cert_field, parse_hash};
    use crate::tls::secrets::{Reads, SdsRead};

    #[test]
    fn build_errors_name_the_sds_secret() {
        let v: serde_yaml::Value = serde_yaml::from_str("common_tls_context: {tls_certificates: [{}]}").expect("yaml");
        let mut reads = Reads::default();
        reads.sds.push(SdsRead { name: "s".into(), path: "/x/sds.yaml".into(), version_info: String::new() });
        assert_eq!(
            cert_field(&v, &reads, "common_tls_context.tls_certificates[1].private_key"),
            "common_tls_context.tls_certificate_sds_secret_configs[0].private_key (secret \"s\" of /x/sds.yaml)"
        );
        let direct = "common_tls_context.tls_certificates[0].private_key";
        assert_eq!(cert_field(&v, &reads, direct), direct);
        assert_eq!(cert_field(&v, &reads, "common_tls_context.tls_params"), "common_tls_context.tls_params");
    }

    #[test]
    fn hashes_with_or_without_colons() {
        let plain = "df6ff72fe9116521268f6f2dd4966f51df479883fe7037b39f75916ac3049d1a";
        let colons =
            plain.as_bytes().chunks(2).map(|c| std::str::from_utf8(c).unwrap_or("")).collect::<Vec<_>>().join(":");
        assert_eq!(parse_hash(plain), parse_hash(&colons.to_uppercase()));
        assert!(parse_hash(plain).is_some());
        assert!(parse_hash("abc").is_none());
    }
}
