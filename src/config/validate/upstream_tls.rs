//! A cluster's `transport_socket`: `envoy.transport_sockets.tls` with an
//! `UpstreamTlsContext` (read here, built by `crate::tls::client`, so a certificate that does
//! not load refuses the configuration at its field), or `raw_buffer`. The certificate, ALPN,
//! `tls_params`, `validation_context` and SDS readers are the downstream ones (`tls.rs`,
//! `secret.rs`), and so is the rebuild when a file the context read changes ([`rebuild`]).

use std::sync::Arc;

use serde_yaml::Value;

use crate::config::model::UpstreamProtocol;
use crate::config::reader::{Ctx, FieldPath, Obj};
use crate::config::type_urls as t;
use crate::config::ConfigErrors;
use crate::tls::auto_sni::AutoSni;
use crate::tls::client::{ClientMaterial, ClientOrigin, UpstreamTlsConfig};
use crate::tls::secrets::{join_path, Origin, Reads};
use crate::tls::ClientTls;

use super::secret;
use super::tls::{cert_field, reread, tls_certificate, tls_params, validation_context};

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
    let typed = o.get("typed_config");
    let path = o.path.clone();
    o.finish(ctx, &[]);
    let Some((value, at)) = typed else {
        ctx.err(&path, "missing typed_config: a transport socket is chosen by its @type");
        return None;
    };
    let mut typed = Obj::new(ctx, value, at)?;
    match typed.str(ctx, "@type").as_deref() {
        Some(t::UPSTREAM_TLS_CONTEXT) => {
            let default_alpn = match (auto_config, protocol) {
                (true, _) => vec!["h2".into(), "http/1.1".into()],
                (false, UpstreamProtocol::Http2) => vec!["h2".into()],
                (false, UpstreamProtocol::Http1) => vec!["http/1.1".into()],
            };
            let auto_sni = auto_sni.map(|(a, _)| a).unwrap_or_default();
            upstream_tls(ctx, typed, value, default_alpn, auto_sni)
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
    o: Obj<'_>,
    value: &Value,
    default_alpn: Vec<String>,
    auto_sni: AutoSni,
) -> Option<Arc<ClientTls>> {
    let path = o.path.to_string();
    let config = upstream_config(ctx, o, &path, &default_alpn, &auto_sni)?;
    let origin = (!config.reads.is_empty()).then(|| ClientOrigin {
        origin: Origin {
            value: value.clone(),
            path: path.clone(),
            file: ctx.file.clone(),
            static_secrets: ctx.static_secrets.clone(),
        },
        default_alpn,
        auto_sni,
    });
    let reads = config.reads.clone();
    match crate::tls::client::build(config) {
        Ok(m) => Some(Arc::new(ClientTls::new(m, origin))),
        Err(e) => {
            ctx.err(join_path(&path, &cert_field(value, &reads, &e.field)), e.message);
            None
        }
    }
}

/// The context's configuration, its files read (`path`: the context's field path).
fn upstream_config(
    ctx: &mut Ctx,
    mut o: Obj<'_>,
    path: &str,
    default_alpn: &[String],
    auto_sni: &AutoSni,
) -> Option<UpstreamTlsConfig> {
    let before = ctx.error_count();
    let sni = o.str(ctx, "sni").filter(|s| !s.is_empty());
    let mut config =
        UpstreamTlsConfig { sni, path: path.to_string(), auto_sni: auto_sni.clone(), ..Default::default() };
    let mut reads = Reads::default();
    if let Some(mut c) = o.obj(ctx, "common_tls_context") {
        let mut certs = Vec::new();
        for cert in c.objs(ctx, "tls_certificates") {
            certs.push((cert.path.clone(), tls_certificate(ctx, cert, &mut reads)));
        }
        for sds in c.objs(ctx, "tls_certificate_sds_secret_configs") {
            certs.push((sds.path.clone(), secret::tls_certificate(ctx, sds, &mut reads)));
        }
        if let Some((extra, _)) = certs.get(1) {
            // Envoy's own refusal.
            ctx.err(extra, "Multiple TLS certificates are not supported for client contexts");
        }
        config.certificate = certs.into_iter().next().and_then(|(_, c)| c);
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
    o.finish(ctx, &[]);
    if config.alpn.is_empty() {
        config.alpn = default_alpn.to_vec();
    }
    config.reads = reads;
    (ctx.error_count() == before).then_some(config)
}

/// Reads an upstream context built before again, from the files it names as they are now:
/// the configuration's checks, then the certificate's (a key that does not match its
/// certificate, an expired client certificate). Errors carry the file and the field path.
pub(crate) fn rebuild(origin: &ClientOrigin) -> Result<ClientMaterial, ConfigErrors> {
    let o = &origin.origin;
    let config = reread(o, |ctx, obj| upstream_config(ctx, obj, &o.path, &origin.default_alpn, &origin.auto_sni))?;
    let reads = config.reads.clone();
    let fail = |message: String, field: &str| {
        Err(super::tls::fail_at(o, message, join_path(&o.path, &cert_field(&o.value, &reads, field))))
    };
    let material = match crate::tls::client::build(config) {
        Ok(m) => m,
        Err(e) => return fail(e.message, &e.field),
    };
    if let Some(leaf) = material.certs.first().filter(|c| c.not_after <= super::tls::unix_now()) {
        let at = "common_tls_context.tls_certificates[0].certificate_chain";
        return fail(format!("the certificate in \"{}\" (serial {}) has expired", leaf.path, leaf.serial_number), at);
    }
    Ok(material)
}
