//! A cluster's `transport_socket`: `envoy.transport_sockets.tls` with an
//! `UpstreamTlsContext` (read here, built by `crate::tls::client`, so a certificate that does
//! not load refuses the configuration at its field), or `raw_buffer`. The certificate, ALPN,
//! `tls_params` and `validation_context` readers are the downstream ones (`tls.rs`).

use std::sync::Arc;

use crate::config::model::UpstreamProtocol;
use crate::config::reader::{Ctx, FieldPath, Obj};
use crate::config::type_urls as t;
use crate::tls::auto_sni::AutoSni;
use crate::tls::client::UpstreamTlsConfig;
use crate::tls::secrets::Reads;
use crate::tls::ClientTls;

/// The cluster's TLS context; `None` for plaintext (absent, or `raw_buffer`) and on errors.
/// `protocol` and `auto_config` choose the ALPN offered when `alpn_protocols` is empty, as
/// Envoy's: `http/1.1`, `h2`, or `h2,http/1.1` with `auto_config`.
pub(crate) fn transport_socket(
    ctx: &mut Ctx,
    mut o: Obj<'_>,
    protocol: UpstreamProtocol,
    auto_config: bool,
    auto_sni: Option<(AutoSni, FieldPath)>,
) -> Option<Arc<ClientTls>> {
    let _ = o.str(ctx, "name");
    let typed = o.obj(ctx, "typed_config");
    let path = o.path.clone();
    o.finish(ctx, &[]);
    let Some(mut typed) = typed else {
        ctx.err(&path, "missing typed_config: a transport socket is chosen by its @type");
        return None;
    };
    match typed.str(ctx, "@type").as_deref() {
        Some(t::UPSTREAM_TLS_CONTEXT) => {
            upstream_tls(ctx, typed, protocol, auto_config, auto_sni.map(|(a, _)| a).unwrap_or_default())
        }
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

fn upstream_tls(
    ctx: &mut Ctx,
    mut o: Obj<'_>,
    protocol: UpstreamProtocol,
    auto_config: bool,
    auto_sni: AutoSni,
) -> Option<Arc<ClientTls>> {
    let before = ctx.error_count();
    let path = o.path.clone();
    let sni = o.str(ctx, "sni").filter(|s| !s.is_empty());
    let mut config = UpstreamTlsConfig { sni, path: path.to_string(), auto_sni, ..Default::default() };
    if let Some(mut c) = o.obj(ctx, "common_tls_context") {
        let mut certs = c.objs(ctx, "tls_certificates").into_iter();
        if let Some(cert) = certs.next() {
            // A cluster's certificates are read once: rotation covers listeners only so far.
            if cert.has("watched_directory") {
                ctx.err(cert.at("watched_directory"), "not implemented by legate for an upstream TLS context");
            }
            config.certificate = super::tls::tls_certificate(ctx, cert, &mut Reads::default());
        }
        if let Some(extra) = certs.next() {
            // Envoy's own refusal.
            ctx.err(&extra.path, "Multiple TLS certificates are not supported for client contexts");
        }
        config.alpn = c.strs(ctx, "alpn_protocols");
        if let Some(p) = c.obj(ctx, "tls_params") {
            config.params = super::tls::tls_params(ctx, p);
        }
        if let Some(v) = c.obj(ctx, "validation_context") {
            if v.has("watched_directory") {
                ctx.err(v.at("watched_directory"), "not implemented by legate for an upstream TLS context");
            }
            config.validation = Some(super::tls::validation_context(ctx, v, &mut Reads::default()));
        }
        c.finish(ctx, &[]);
    }
    o.finish(ctx, &[]);
    if config.alpn.is_empty() {
        config.alpn = match (auto_config, protocol) {
            (true, _) => vec!["h2".into(), "http/1.1".into()],
            (false, UpstreamProtocol::Http2) => vec!["h2".into()],
            (false, UpstreamProtocol::Http1) => vec!["http/1.1".into()],
        };
    }
    if ctx.error_count() != before {
        return None;
    }
    match crate::tls::client::build(config) {
        Ok(tls) => Some(Arc::new(tls)),
        Err(e) => {
            ctx.err(format!("{path}.{}", e.field), e.message);
            None
        }
    }
}
