//! A cluster's upstream `Http1ProtocolOptions`: `header_key_format.proper_case_words` and
//! `enable_trailers` as read (off by default, as in Envoy; `auto_config` shares the reader);
//! `stateful_formatter` refused at its path.

use super::{load_text, messages, v3, A_SVC, ROUTE_A};

const OPTS: &str = "static_resources.clusters[0].typed_extension_protocol_options\
                    .envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

/// (`proper_case_words`, `enable_trailers`) as read.
fn h1(config: &str, h1: &str) -> Result<(bool, bool), Vec<String>> {
    let extra = format!(
        "    typed_extension_protocol_options:\n      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:\n        \
         \"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions\n        \
         {config}: {{http_protocol_options: {h1}}}\n"
    );
    load_text("c.yaml", &v3(ROUTE_A, &format!("{A_SVC}{extra}")))
        .map(|b| (b.clusters[0].h1_proper_case, b.clusters[0].h1_trailers))
        .map_err(|e| messages(&e))
}

#[test]
fn proper_case_words_and_enable_trailers_are_read_where_envoy_reads_them() {
    assert_eq!(h1("explicit_http_config", "{}"), Ok((false, false)));
    assert_eq!(h1("explicit_http_config", "{header_key_format: {}, enable_trailers: false}"), Ok((false, false)));
    assert_eq!(h1("explicit_http_config", "{header_key_format: {proper_case_words: {}}}"), Ok((true, false)));
    assert_eq!(h1("explicit_http_config", "{enable_trailers: true}"), Ok((false, true)));
}

#[test]
fn stateful_formatter_is_refused_at_its_path() {
    let e = h1(
        "explicit_http_config",
        "{header_key_format: {stateful_formatter: {name: preserve_case, typed_config: \
         {\"@type\": type.googleapis.com/envoy.extensions.http.header_formatters.preserve_case.v3.PreserveCaseFormatterConfig}}}}",
    )
    .expect_err("refused");
    let want = format!(
        "{OPTS}.explicit_http_config.http_protocol_options.header_key_format.stateful_formatter: not implemented by legate"
    );
    assert!(e.contains(&want), "missing {want:?} in {e:#?}");
}
