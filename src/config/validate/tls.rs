//! A filter chain's `transport_socket`: `envoy.transport_sockets.tls` with a
//! `DownstreamTlsContext` (read here, built by `crate::tls::server`, so a certificate that
//! does not load refuses the configuration at its field), or `raw_buffer`.

use std::sync::Arc;

use serde_yaml::Value;

use crate::config::reader::{scalar_string, Ctx, FieldPath, Obj};
use crate::config::type_urls as t;
use crate::tls::config::{
    CertificateSource, DownstreamTlsConfig, SanMatcher, SanType, TlsParams, TlsVersion, ValidationConfig,
};
use crate::tls::ServerTls;

use super::common::data_source;
use super::matcher::string_matcher;

/// The chain's TLS context; `None` for plaintext (absent, or `raw_buffer`) and on errors.
pub(crate) fn transport_socket(ctx: &mut Ctx, mut o: Obj<'_>) -> Option<Arc<ServerTls>> {
    let _ = o.str(ctx, "name");
    let typed = o.obj(ctx, "typed_config");
    let path = o.path.clone();
    o.finish(ctx, &[]);
    let Some(mut typed) = typed else {
        ctx.err(&path, "missing typed_config: a transport socket is chosen by its @type");
        return None;
    };
    match typed.str(ctx, "@type").as_deref() {
        Some(t::DOWNSTREAM_TLS_CONTEXT) => downstream_tls(ctx, typed),
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

fn downstream_tls(ctx: &mut Ctx, mut o: Obj<'_>) -> Option<Arc<ServerTls>> {
    let before = ctx.error_count();
    let path = o.path.clone();
    let require_client_certificate = o.bool(ctx, "require_client_certificate").unwrap_or(false);
    let mut config = DownstreamTlsConfig { require_client_certificate, path: path.to_string(), ..Default::default() };
    if let Some(mut c) = o.obj(ctx, "common_tls_context") {
        for cert in c.objs(ctx, "tls_certificates") {
            if let Some(s) = tls_certificate(ctx, cert) {
                config.certificates.push(s);
            }
        }
        config.alpn = c.strs(ctx, "alpn_protocols");
        if let Some(p) = c.obj(ctx, "tls_params") {
            config.params = tls_params(ctx, p);
        }
        if let Some(v) = c.obj(ctx, "validation_context") {
            config.validation = Some(validation_context(ctx, v));
        }
        c.finish(ctx, &[]);
    }
    o.finish(ctx, &[]);
    if config.certificates.is_empty() && ctx.error_count() == before {
        ctx.err(format!("{path}.common_tls_context.tls_certificates"), "a server TLS context needs a certificate");
    }
    if require_client_certificate && config.validation.is_none() {
        // As Envoy: a certificate is required, and any is accepted.
        config.validation = Some(ValidationConfig::default());
    }
    if ctx.error_count() != before {
        return None;
    }
    match crate::tls::server::build(config) {
        Ok(tls) => Some(Arc::new(tls)),
        Err(e) => {
            ctx.err(format!("{path}.{}", e.field), e.message);
            None
        }
    }
}

/// A `DataSource` and, when it names a file, the file (for `/certs`).
fn source(ctx: &mut Ctx, o: &mut Obj<'_>, name: &'static str) -> Option<(bytes::Bytes, String)> {
    let Some((v, path)) = o.get(name) else {
        ctx.err(o.at(name), "missing");
        return None;
    };
    let file = v.get("filename").and_then(Value::as_str).map_or_else(|| "<inline>".to_string(), str::to_string);
    let obj = Obj::new(ctx, v, path)?;
    let data = data_source(ctx, obj)?;
    Some((data, file))
}

pub(super) fn tls_certificate(ctx: &mut Ctx, mut o: Obj<'_>) -> Option<CertificateSource> {
    let chain = source(ctx, &mut o, "certificate_chain");
    let key = source(ctx, &mut o, "private_key");
    o.finish(ctx, &[]);
    let ((chain, chain_path), (key, _)) = (chain?, key?);
    Some(CertificateSource { chain, key, chain_path })
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

pub(super) fn validation_context(ctx: &mut Ctx, mut o: Obj<'_>) -> ValidationConfig {
    let mut v = ValidationConfig::default();
    if o.has("trusted_ca") {
        v.trusted_ca = source(ctx, &mut o, "trusted_ca").map(|(b, _)| b);
    }
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
    use super::parse_hash;

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
