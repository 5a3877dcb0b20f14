//! Access loggers (`envoy.access_loggers.file|stdout|stderr`) and their `log_format`, used by
//! the connection manager and by `admin.access_log`.

use std::path::PathBuf;

use crate::config::model::{AccessLog, AccessLogFormat, AccessLogSink};
use crate::config::reader::{scalar_string, Ctx, Obj};
use crate::config::type_urls as t;

use super::common::{extension_by_type, typed_config};

pub(crate) fn access_log(ctx: &mut Ctx, mut o: Obj<'_>) -> Option<AccessLog> {
    let name = o.str(ctx, "name").unwrap_or_default();
    let path = o.path.clone();
    // Chosen by `@type`, as Envoy does; by name only without a (known) type.
    let known = [
        (t::FILE_ACCESS_LOG, "envoy.access_loggers.file"),
        (t::STDOUT_ACCESS_LOG, "envoy.access_loggers.stdout"),
        (t::STDERR_ACCESS_LOG, "envoy.access_loggers.stderr"),
    ];
    let kind = match extension_by_type(&o, &known) {
        Some("") => "(unsupported type)",
        Some(kind) => kind,
        None => name.as_str(),
    };
    let result = match kind {
        "envoy.access_loggers.file" => typed_config(ctx, &mut o, t::FILE_ACCESS_LOG).and_then(|mut c| {
            let file = c.str(ctx, "path");
            if file.is_none() {
                ctx.err(c.at("path"), "missing path");
            }
            let format = log_format(ctx, &mut c);
            c.finish(ctx, &[]);
            Some(AccessLog { sink: AccessLogSink::File(PathBuf::from(file?)), format: format? })
        }),
        "envoy.access_loggers.stdout" | "envoy.access_loggers.stderr" => {
            let (url, sink) = if kind.ends_with("stdout") {
                (t::STDOUT_ACCESS_LOG, AccessLogSink::Stdout)
            } else {
                (t::STDERR_ACCESS_LOG, AccessLogSink::Stderr)
            };
            typed_config(ctx, &mut o, url).and_then(|mut c| {
                let format = log_format(ctx, &mut c);
                c.finish(ctx, &[]);
                Some(AccessLog { sink, format: format? })
            })
        }
        _ => {
            ctx.err(&path, format!("unsupported access logger {name}"));
            let _ = o.get("typed_config");
            None
        }
    };
    o.finish(ctx, &[]);
    result
}

fn log_format(ctx: &mut Ctx, c: &mut Obj<'_>) -> Option<AccessLogFormat> {
    let Some(lf) = c.obj(ctx, "log_format") else {
        return Some(AccessLogFormat::Default);
    };
    format_string(ctx, lf).map(|(format, _)| format)
}

/// A `SubstitutionFormatString` and its `content_type` (which only a direct response's
/// `body_format` uses).
pub(crate) fn format_string(ctx: &mut Ctx, mut lf: Obj<'_>) -> Option<(AccessLogFormat, Option<String>)> {
    let before = ctx.error_count();
    let mut formats = Vec::new();
    if let Some(s) = lf.str(ctx, "text_format") {
        formats.push(AccessLogFormat::Text(s));
    }
    if let Some(mut src) = lf.obj(ctx, "text_format_source") {
        let s = src.str(ctx, "inline_string");
        if s.is_none() {
            ctx.err(&src.path, "only inline_string is supported");
        }
        src.finish(ctx, &[]);
        formats.extend(s.map(AccessLogFormat::Text));
    }
    let json_path = lf.at("json_format");
    let entries = lf.entries(ctx, "json_format");
    if lf.has("json_format") || !entries.is_empty() {
        let mut pairs = Vec::new();
        for (k, v, p) in entries {
            match scalar_string(v) {
                Some(s) => pairs.push((k, s)),
                None => ctx.err(&p, "only string values are supported in json_format"),
            }
        }
        if pairs.is_empty() && ctx.error_count() == before {
            ctx.err(&json_path, "must not be empty");
        }
        formats.push(AccessLogFormat::Json(pairs));
    }
    let content_type = lf.str(ctx, "content_type").filter(|c| !c.is_empty());
    lf.ignore(&["omit_empty_values"]);
    let path = lf.path.clone();
    lf.finish(ctx, &[]);
    if formats.len() > 1 {
        ctx.err(&path, "only one of text_format, text_format_source, json_format may be set");
    }
    if ctx.error_count() > before {
        return None;
    }
    Some((formats.pop().unwrap_or(AccessLogFormat::Default), content_type))
}
