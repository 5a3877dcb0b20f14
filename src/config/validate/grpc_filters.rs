//! The configurations of the filters that translate or annotate requests without policy:
//! `grpc_http1_bridge.v3.Config`, `grpc_web.v3.GrpcWeb` (which has no fields) and
//! `header_to_metadata.v3.Config` (its rules by `header`; `cookie`, `regex_value_rewrite` and
//! `encode` are refused by the support table).

use crate::config::filters::{
    GrpcBridgeConfig, HeaderToMetadataConfig, HttpFilterKind, MetadataKeyValue, MetadataRule, MetadataType,
};
use crate::config::reader::{Ctx, Obj};

/// `envoy.extensions.filters.http.grpc_http1_bridge.v3.Config`
pub(crate) fn bridge(ctx: &mut Ctx, mut o: Obj<'_>) -> HttpFilterKind {
    let upgrade_protobuf = o.bool(ctx, "upgrade_protobuf_to_grpc").unwrap_or(false);
    let ignore_query = o.bool(ctx, "ignore_query_parameters").unwrap_or(false);
    o.finish(ctx, &[]);
    HttpFilterKind::GrpcHttp1Bridge(GrpcBridgeConfig { upgrade_protobuf, ignore_query })
}

/// `envoy.extensions.filters.http.grpc_web.v3.GrpcWeb`
pub(crate) fn grpc_web(ctx: &mut Ctx, o: Obj<'_>) -> HttpFilterKind {
    o.finish(ctx, &[]);
    HttpFilterKind::GrpcWeb
}

/// `envoy.extensions.filters.http.header_to_metadata.v3.Config` (its rules by header).
pub(crate) fn header_to_metadata(ctx: &mut Ctx, mut o: Obj<'_>) -> Option<HttpFilterKind> {
    let before = ctx.error_count();
    let request_rules = o.objs(ctx, "request_rules").into_iter().filter_map(|r| metadata_rule(ctx, r)).collect();
    let response_rules = o.objs(ctx, "response_rules").into_iter().filter_map(|r| metadata_rule(ctx, r)).collect();
    o.finish(ctx, &[]);
    (ctx.error_count() == before)
        .then(|| HttpFilterKind::HeaderToMetadata(Box::new(HeaderToMetadataConfig { request_rules, response_rules })))
}

fn metadata_rule(ctx: &mut Ctx, mut o: Obj<'_>) -> Option<MetadataRule> {
    let header = o.str(ctx, "header").unwrap_or_default();
    let on_present = o.obj(ctx, "on_header_present").and_then(|k| key_value(ctx, k));
    let on_missing = o.obj(ctx, "on_header_missing").and_then(|k| key_value(ctx, k));
    let remove = o.bool(ctx, "remove").unwrap_or(false);
    let path = o.path.clone();
    o.finish(ctx, &[]);
    let Ok(header) = http::HeaderName::from_bytes(header.as_bytes()) else {
        ctx.err(format!("{path}.header"), "expected a header name");
        return None;
    };
    if on_present.is_none() && on_missing.is_none() {
        ctx.err(&path, "one of on_header_present, on_header_missing is required");
        return None;
    }
    if on_missing.as_ref().is_some_and(|k| k.value.is_none()) {
        ctx.err(format!("{path}.on_header_missing"), "Cannot specify on_header_missing rule with empty value");
        return None;
    }
    Some(MetadataRule { header, on_present, on_missing, remove })
}

fn key_value(ctx: &mut Ctx, mut o: Obj<'_>) -> Option<MetadataKeyValue> {
    let namespace = o
        .str(ctx, "metadata_namespace")
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "envoy.filters.http.header_to_metadata".to_string());
    let key = o.str(ctx, "key").unwrap_or_default();
    let value = o.str(ctx, "value").filter(|v| !v.is_empty());
    let kind = o
        .enumv(
            ctx,
            "type",
            &[("STRING", Some(MetadataType::String)), ("NUMBER", Some(MetadataType::Number)), ("PROTOBUF_VALUE", None)],
        )
        .unwrap_or(MetadataType::String);
    let path = o.path.clone();
    o.finish(ctx, &[]);
    if key.is_empty() {
        ctx.err(format!("{path}.key"), "must not be empty");
        return None;
    }
    Some(MetadataKeyValue { namespace, key, value, kind })
}
