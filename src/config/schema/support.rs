//! What legate implements of Envoy's API: for each message (by full name), the fields it
//! honours and the fields it accepts with no effect by design. A field that is set in a
//! configuration and in neither list is refused at its path ("not implemented by legate");
//! an `Any` (`typed_config`) whose type is not a message of this table is refused as an
//! unsupported extension. `--print-support-matrix` prints this table (`docs/support-matrix.md`).
//!
//! Adding a field legate now honours is one change: its name in the `honoured` list of its
//! message (`m("envoy.config.listener.v3.FilterChainMatch", &["server_names"], &[])`); a new
//! extension type is one new line. The field must then have an observable effect and a test,
//! and the validator (`validate/*.rs`) must read it: a field in the table that the validator
//! does not read is still refused there (the safety net of `reader::Obj::finish`).
//!
//! The honoured fields of each message are the ones `validate/*.rs` reads; where the same
//! message is read in several places (`Http1ProtocolOptions` for the connection manager and
//! for clusters), the union, the validator refusing what one place does not do.

use std::collections::HashMap;
use std::sync::OnceLock;

/// One message of Envoy's API that legate reads.
pub(crate) struct Message {
    pub name: &'static str,
    /// Fields with an effect.
    pub honoured: &'static [&'static str],
    /// Fields accepted and ignored by design (names, metadata, descriptive fields).
    pub inert: &'static [&'static str],
}

const fn m(name: &'static str, honoured: &'static [&'static str], inert: &'static [&'static str]) -> Message {
    Message { name, honoured, inert }
}

/// How legate treats one field of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Field {
    Honoured,
    Inert,
    NotImplemented,
}

impl Message {
    pub fn field(&self, name: &str) -> Field {
        if self.honoured.contains(&name) {
            Field::Honoured
        } else if self.inert.contains(&name) {
            Field::Inert
        } else {
            Field::NotImplemented
        }
    }
}

/// The table, grouped as `validate/*.rs` is.
pub(crate) static TABLE: &[Message] = &[
    // validate.rs: the bootstrap.
    m(
        "envoy.config.bootstrap.v3.Bootstrap",
        &[
            "node",
            "admin",
            "static_resources",
            "dynamic_resources",
            "layered_runtime",
            // The default resolver of DNS clusters without their own (validate/dns.rs).
            "typed_dns_resolver_config",
            "dns_resolution_config",
            "use_tcp_for_dns_lookups",
        ],
        &[],
    ),
    m(
        "envoy.config.core.v3.Node",
        &[
            "id", "cluster",
            // Shown in /server_info (admin/server_info.rs), `--service-zone` over the zone.
            "metadata", "locality",
        ],
        &[],
    ),
    m("envoy.config.core.v3.Locality", &["region", "zone", "sub_zone"], &[]),
    // The node's metadata, shown as given; typed entries are not read.
    m("envoy.config.core.v3.Metadata", &["filter_metadata"], &["typed_filter_metadata"]),
    m(
        "envoy.config.bootstrap.v3.Admin",
        &["address", "access_log_path", "access_log"],
        &["profile_path", "ignore_global_conn_limit"],
    ),
    m(
        "envoy.config.bootstrap.v3.Bootstrap.StaticResources",
        &[
            "listeners",
            "clusters",
            "secrets", // validate/secret.rs
        ],
        &[],
    ),
    m("envoy.config.bootstrap.v3.Bootstrap.DynamicResources", &["lds_config", "cds_config"], &[]),
    m("envoy.config.bootstrap.v3.LayeredRuntime", &["layers"], &[]),
    m("envoy.config.bootstrap.v3.RuntimeLayer", &["name", "static_layer", "disk_layer", "admin_layer"], &[]),
    m(
        "envoy.config.bootstrap.v3.RuntimeLayer.DiskLayer",
        &["symlink_root", "subdirectory", "append_service_cluster"],
        &[],
    ),
    // validate/common.rs: addresses, config sources, data sources, regexes.
    m("envoy.config.core.v3.Address", &["socket_address"], &[]),
    m("envoy.config.core.v3.SocketAddress", &["address", "port_value", "protocol"], &["ipv4_compat"]),
    m(
        "envoy.config.core.v3.ConfigSource",
        &["resource_api_version", "path", "path_config_source", "api_config_source"],
        &["initial_fetch_timeout", "authorities"],
    ),
    m("envoy.config.core.v3.PathConfigSource", &["path", "watched_directory"], &[]),
    m("envoy.config.core.v3.WatchedDirectory", &["path"], &[]),
    m(
        "envoy.config.core.v3.ApiConfigSource",
        &["api_type", "cluster_names", "refresh_delay", "request_timeout", "transport_api_version"],
        &["set_node_on_first_message_only"],
    ),
    m("envoy.config.core.v3.DataSource", &["inline_string", "inline_bytes", "filename"], &[]),
    m("envoy.type.matcher.v3.RegexMatcher", &["regex"], &["google_re2"]),
    // validate/listener.rs
    m(
        "envoy.config.listener.v3.Listener",
        &[
            "name",
            "address",
            "per_connection_buffer_limit_bytes",
            "traffic_direction",
            "stat_prefix",
            "filter_chains",
            "default_filter_chain",
            "listener_filters",
            "listener_filters_timeout",
            "continue_on_listener_filters_timeout",
        ],
        &["metadata"],
    ),
    m("envoy.config.listener.v3.FilterChain", &["filters", "filter_chain_match", "transport_socket"], &["name"]),
    m(
        "envoy.config.listener.v3.FilterChainMatch",
        &[
            "destination_port",
            "prefix_ranges",
            "server_names",
            "transport_protocol",
            "application_protocols",
            "direct_source_prefix_ranges",
            "source_type",
            "source_prefix_ranges",
            "source_ports",
        ],
        &[],
    ),
    m("envoy.config.listener.v3.Filter", &["name", "typed_config"], &[]),
    m("envoy.config.listener.v3.ListenerFilter", &["typed_config"], &["name"]),
    m("envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector", &[], &[]),
    m("envoy.extensions.filters.listener.http_inspector.v3.HttpInspector", &[], &[]),
    // validate/tls.rs: a filter chain's transport socket (downstream TLS).
    m("envoy.config.core.v3.TransportSocket", &["typed_config"], &["name"]),
    m("envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer", &[], &[]),
    m(
        "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
        &[
            "common_tls_context",
            "require_client_certificate",
            "session_ticket_keys",                  // tls/tickets.rs
            "disable_stateless_session_resumption", // tls/tickets.rs
            "disable_stateful_session_resumption",  // tls/tickets.rs
        ],
        &[],
    ),
    m("envoy.extensions.transport_sockets.tls.v3.TlsSessionTicketKeys", &["keys"], &[]),
    m(
        "envoy.extensions.transport_sockets.tls.v3.CommonTlsContext",
        &[
            "tls_certificates",
            "alpn_protocols",
            "tls_params",
            "validation_context",
            "tls_certificate_sds_secret_configs",
            "validation_context_sds_secret_config",
        ],
        &[],
    ),
    // validate/upstream_tls.rs: a cluster's transport socket (upstream TLS).
    m("envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext", &["common_tls_context", "sni"], &[]),
    m(
        "envoy.extensions.transport_sockets.tls.v3.TlsCertificate",
        &[
            "certificate_chain",
            "private_key",
            "watched_directory", // tls/rotation.rs
        ],
        &[],
    ),
    // validate/secret.rs: SDS secrets (file-based SDS and static_resources.secrets).
    m("envoy.extensions.transport_sockets.tls.v3.SdsSecretConfig", &["name", "sds_config"], &[]),
    m("envoy.extensions.transport_sockets.tls.v3.Secret", &["name", "tls_certificate", "validation_context"], &[]),
    m(
        "envoy.extensions.transport_sockets.tls.v3.TlsParameters",
        &["tls_minimum_protocol_version", "tls_maximum_protocol_version", "cipher_suites", "ecdh_curves"],
        &[],
    ),
    m(
        "envoy.extensions.transport_sockets.tls.v3.CertificateValidationContext",
        &[
            "trusted_ca",
            "match_typed_subject_alt_names",
            "verify_certificate_hash",
            "watched_directory",         // tls/rotation.rs
            "crl",                       // tls/verify.rs, tls/client_verify.rs
            "only_verify_leaf_cert_crl", // tls/verify.rs, tls/client_verify.rs
        ],
        &[],
    ),
    m("envoy.extensions.transport_sockets.tls.v3.SubjectAltNameMatcher", &["san_type", "matcher"], &[]),
    // validate/tcp_proxy.rs
    m(
        "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
        &["stat_prefix", "cluster", "weighted_clusters", "idle_timeout", "max_connect_attempts", "access_log"],
        &[],
    ),
    m("envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy.WeightedCluster", &["clusters"], &[]),
    m("envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy.WeightedCluster.ClusterWeight", &["name", "weight"], &[]),
    // validate/hcm.rs
    m(
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        &[
            "stat_prefix",
            "codec_type",
            "route_config",
            "rds",
            "http_filters",
            "server_name",
            "server_header_transformation",
            "use_remote_address",
            "add_user_agent", // proxy/headers.rs add_user_agent
            "xff_num_trusted_hops",
            "skip_xff_append",
            "internal_address_config",
            "generate_request_id",
            "preserve_external_request_id",
            "max_request_headers_kb",
            "common_http_protocol_options",
            "http_protocol_options",
            "http2_protocol_options",
            "stream_idle_timeout",
            "request_timeout",
            "drain_timeout",
            "access_log",
            "normalize_path",
            "merge_slashes",
            "upgrade_configs",
            "forward_client_cert_details",     // tls/xfcc.rs
            "set_current_client_cert_details", // tls/xfcc.rs
        ],
        &[],
    ),
    m(
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.SetCurrentClientCertDetails",
        &["subject", "cert", "chain", "dns", "uri"],
        &[],
    ),
    m(
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.UpgradeConfig",
        &["upgrade_type", "enabled"],
        &[],
    ),
    m(
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.InternalAddressConfig",
        &["cidr_ranges"],
        &[],
    ),
    m("envoy.config.core.v3.CidrRange", &["address_prefix", "prefix_len"], &[]),
    m("envoy.extensions.filters.network.http_connection_manager.v3.Rds", &["route_config_name", "config_source"], &[]),
    m(
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter",
        &["name", "typed_config", "disabled", "is_optional"],
        &[],
    ),
    m("envoy.config.core.v3.HttpProtocolOptions", &["idle_timeout", "max_headers_count"], &[]),
    // tls/auto_sni.rs
    m(
        "envoy.config.core.v3.UpstreamHttpProtocolOptions",
        &["auto_sni", "auto_san_validation", "override_auto_sni_header"],
        &[],
    ),
    m(
        "envoy.config.core.v3.Http1ProtocolOptions",
        // `header_key_format` and `enable_trailers`: upstream only (validate/cluster.rs,
        // upstream/pool.rs, proxy/body.rs).
        &["accept_http_10", "default_host_for_http_10", "header_key_format", "enable_trailers"],
        &[],
    ),
    // Only `proper_case_words`; `stateful_formatter` (preserve_case) is not implemented.
    m("envoy.config.core.v3.Http1ProtocolOptions.HeaderKeyFormat", &["proper_case_words"], &[]),
    m("envoy.config.core.v3.Http1ProtocolOptions.HeaderKeyFormat.ProperCaseWords", &[], &[]),
    m(
        "envoy.config.core.v3.Http2ProtocolOptions",
        &[
            "max_concurrent_streams",
            "initial_stream_window_size",
            "initial_connection_window_size",
            "hpack_table_size",
            "allow_connect",
        ],
        &[],
    ),
    m("envoy.extensions.filters.http.router.v3.Router", &[], &[]),
    // filters/: the HTTP filters before the router, and their per-route configuration.
    m(
        "envoy.extensions.filters.http.fault.v3.HTTPFault",
        &[
            "delay",
            "abort",
            "upstream_cluster",
            "headers",
            "downstream_nodes",
            "max_active_faults",
            "disable_downstream_cluster_stats",
            "delay_percent_runtime",
            "abort_percent_runtime",
            "delay_duration_runtime",
            "abort_http_status_runtime",
            "max_active_faults_runtime",
            "abort_grpc_status_runtime",
        ],
        &[],
    ),
    m(
        "envoy.extensions.filters.http.fault.v3.FaultAbort",
        &["http_status", "grpc_status", "header_abort", "percentage"],
        &[],
    ),
    m("envoy.extensions.filters.http.fault.v3.FaultAbort.HeaderAbort", &[], &[]),
    m("envoy.extensions.filters.common.fault.v3.FaultDelay", &["fixed_delay", "header_delay", "percentage"], &[]),
    m("envoy.extensions.filters.common.fault.v3.FaultDelay.HeaderDelay", &[], &[]),
    m("envoy.extensions.filters.http.buffer.v3.Buffer", &["max_request_bytes"], &[]),
    m("envoy.extensions.filters.http.buffer.v3.BufferPerRoute", &["disabled", "buffer"], &[]),
    m("envoy.config.route.v3.FilterConfig", &["config", "disabled", "is_optional"], &[]),
    // validate/compressor.rs
    m(
        "envoy.extensions.filters.http.compressor.v3.Compressor",
        &[
            "compressor_library",
            "response_direction_config",
            "request_direction_config",
            "choose_first",
            "content_length",
            "content_type",
            "disable_on_etag_header",
            "remove_accept_encoding_header",
            "runtime_enabled",
        ],
        &[],
    ),
    m(
        "envoy.extensions.filters.http.compressor.v3.Compressor.ResponseDirectionConfig",
        &["common_config", "disable_on_etag_header", "remove_accept_encoding_header", "uncompressible_response_codes"],
        &[],
    ),
    m("envoy.extensions.filters.http.compressor.v3.Compressor.RequestDirectionConfig", &["common_config"], &[]),
    m(
        "envoy.extensions.filters.http.compressor.v3.Compressor.CommonDirectionConfig",
        &["enabled", "min_content_length", "content_type"],
        &[],
    ),
    m("envoy.extensions.filters.http.compressor.v3.CompressorPerRoute", &["disabled", "overrides"], &[]),
    m("envoy.extensions.filters.http.compressor.v3.CompressorOverrides", &["response_direction_config"], &[]),
    m(
        "envoy.extensions.filters.http.compressor.v3.ResponseDirectionOverrides",
        &["remove_accept_encoding_header"],
        &[],
    ),
    // validate/grpc_filters.rs
    m(
        "envoy.extensions.filters.http.grpc_http1_bridge.v3.Config",
        &["upgrade_protobuf_to_grpc", "ignore_query_parameters"],
        &[],
    ),
    m("envoy.extensions.filters.http.grpc_web.v3.GrpcWeb", &[], &[]),
    m("envoy.extensions.filters.http.header_to_metadata.v3.Config", &["request_rules", "response_rules"], &[]),
    m(
        "envoy.extensions.filters.http.header_to_metadata.v3.Config.Rule",
        &["header", "on_header_present", "on_header_missing", "remove"],
        &[],
    ),
    m(
        "envoy.extensions.filters.http.header_to_metadata.v3.Config.KeyValuePair",
        &["metadata_namespace", "key", "value", "type"],
        &[],
    ),
    // validate/filter_state.rs
    m("envoy.extensions.filters.http.set_filter_state.v3.Config", &["on_request_headers"], &[]),
    m(
        "envoy.extensions.filters.common.set_filter_state.v3.FilterStateValue",
        &["object_key", "factory_key", "format_string", "skip_if_empty", "shared_with_upstream"],
        // Envoy 1.40 replaces a read-only value all the same; nothing in legate changes one.
        &["read_only"],
    ),
    // validate/decompressor.rs
    m(
        "envoy.extensions.filters.http.decompressor.v3.Decompressor",
        &["decompressor_library", "request_direction_config", "response_direction_config"],
        &[],
    ),
    m(
        "envoy.extensions.filters.http.decompressor.v3.Decompressor.RequestDirectionConfig",
        &["common_config", "advertise_accept_encoding"],
        &[],
    ),
    m("envoy.extensions.filters.http.decompressor.v3.Decompressor.ResponseDirectionConfig", &["common_config"], &[]),
    m(
        "envoy.extensions.filters.http.decompressor.v3.Decompressor.CommonDirectionConfig",
        &["enabled", "ignore_no_transform_header"],
        &[],
    ),
    m(
        "envoy.extensions.compression.gzip.decompressor.v3.Gzip",
        &["window_bits", "chunk_size", "max_inflate_ratio"],
        &[],
    ),
    m("envoy.extensions.compression.brotli.decompressor.v3.Brotli", &["chunk_size"], &[]),
    m("envoy.extensions.compression.zstd.decompressor.v3.Zstd", &["chunk_size"], &[]),
    m("envoy.config.core.v3.RuntimeFeatureFlag", &["default_value", "runtime_key"], &[]),
    m(
        "envoy.extensions.compression.gzip.compressor.v3.Gzip",
        &["compression_level", "window_bits", "chunk_size", "compression_strategy"],
        &["memory_level"],
    ),
    m(
        "envoy.extensions.compression.brotli.compressor.v3.Brotli",
        &[
            "quality",
            "window_bits",
            "input_block_bits",
            "encoder_mode",
            "disable_literal_context_modeling",
            "chunk_size",
        ],
        &[],
    ),
    m(
        "envoy.extensions.compression.zstd.compressor.v3.Zstd",
        &["compression_level", "enable_checksum", "strategy", "chunk_size"],
        &[],
    ),
    m("envoy.extensions.filters.http.cors.v3.Cors", &[], &[]),
    m(
        "envoy.extensions.filters.http.cors.v3.CorsPolicy",
        &[
            "allow_origin_string_match",
            "allow_methods",
            "allow_headers",
            "expose_headers",
            "max_age",
            "allow_credentials",
            "filter_enabled",
            "shadow_enabled",
            "allow_private_network_access",
            "forward_not_matching_preflights",
        ],
        &[],
    ),
    m(
        "envoy.config.route.v3.CorsPolicy",
        &[
            "allow_origin_string_match",
            "allow_methods",
            "allow_headers",
            "expose_headers",
            "max_age",
            "allow_credentials",
            "filter_enabled",
            "shadow_enabled",
            "allow_private_network_access",
            "forward_not_matching_preflights",
        ],
        &[],
    ),
    m(
        "envoy.extensions.filters.http.csrf.v3.CsrfPolicy",
        &["filter_enabled", "shadow_enabled", "additional_origins"],
        &[],
    ),
    // runtime/mod.rs: FractionKey
    m("envoy.config.core.v3.RuntimeFractionalPercent", &["default_value", "runtime_key"], &[]),
    // filters/local_ratelimit: validate/local_ratelimit.rs
    m(
        "envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
        &[
            "stat_prefix",
            "status",
            "token_bucket",
            "filter_enabled",
            "filter_enforced",
            "response_headers_to_add",
            "request_headers_to_add_when_not_enforced",
            "descriptors",
            "stage",
            "local_rate_limit_per_downstream_connection",
            "enable_x_ratelimit_headers",
            "vh_rate_limits",
            "always_consume_default_token_bucket",
        ],
        &[],
    ),
    m("envoy.type.v3.HttpStatus", &["code"], &[]),
    m("envoy.type.v3.TokenBucket", &["max_tokens", "tokens_per_fill", "fill_interval"], &[]),
    m("envoy.extensions.common.ratelimit.v3.LocalRateLimitDescriptor", &["entries", "token_bucket"], &[]),
    m("envoy.extensions.common.ratelimit.v3.RateLimitDescriptor.Entry", &["key", "value"], &[]),
    m("envoy.config.route.v3.RateLimit", &["stage", "disable_key", "actions"], &[]),
    m(
        "envoy.config.route.v3.RateLimit.Action",
        &["request_headers", "remote_address", "generic_key", "header_value_match", "destination_cluster"],
        &[],
    ),
    m(
        "envoy.config.route.v3.RateLimit.Action.RequestHeaders",
        &["header_name", "descriptor_key", "skip_if_absent"],
        &[],
    ),
    m("envoy.config.route.v3.RateLimit.Action.RemoteAddress", &[], &[]),
    m("envoy.config.route.v3.RateLimit.Action.DestinationCluster", &[], &[]),
    m("envoy.config.route.v3.RateLimit.Action.GenericKey", &["descriptor_value", "descriptor_key"], &[]),
    m(
        "envoy.config.route.v3.RateLimit.Action.HeaderValueMatch",
        &["descriptor_key", "descriptor_value", "expect_match", "headers"],
        &[],
    ),
    // filters/ext_authz: validate/ext_authz.rs
    m(
        "envoy.extensions.filters.http.ext_authz.v3.ExtAuthz",
        &[
            "grpc_service",
            "http_service",
            "transport_api_version",
            "failure_mode_allow",
            "failure_mode_allow_header_add",
            "with_request_body",
            "status_on_error",
            "stat_prefix",
        ],
        &[],
    ),
    m(
        "envoy.extensions.filters.http.ext_authz.v3.HttpService",
        &["server_uri", "path_prefix", "authorization_request", "authorization_response"],
        &[],
    ),
    m("envoy.config.core.v3.HttpUri", &["cluster", "timeout"], &["uri"]),
    m("envoy.extensions.filters.http.ext_authz.v3.AuthorizationRequest", &["allowed_headers", "headers_to_add"], &[]),
    m(
        "envoy.extensions.filters.http.ext_authz.v3.AuthorizationResponse",
        &[
            "allowed_upstream_headers",
            "allowed_upstream_headers_to_append",
            "allowed_client_headers",
            "allowed_client_headers_on_success",
        ],
        &[],
    ),
    m("envoy.type.matcher.v3.ListStringMatcher", &["patterns"], &[]),
    m("envoy.config.core.v3.GrpcService", &["envoy_grpc", "timeout"], &[]),
    m("envoy.config.core.v3.GrpcService.EnvoyGrpc", &["cluster_name", "authority"], &[]),
    m(
        "envoy.extensions.filters.http.ext_authz.v3.BufferSettings",
        &["max_request_bytes", "allow_partial_message", "pack_as_bytes"],
        &[],
    ),
    m("envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute", &["disabled", "check_settings"], &[]),
    m(
        "envoy.extensions.filters.http.ext_authz.v3.CheckSettings",
        &["context_extensions", "disable_request_body_buffering"],
        &[],
    ),
    // filters/rbac: validate/rbac.rs
    m(
        "envoy.extensions.filters.http.rbac.v3.RBAC",
        &[
            "rules",
            "shadow_rules",
            "rules_stat_prefix",
            "shadow_rules_stat_prefix",
            "track_per_rule_stats",
            "matcher",        // validate/rbac_matcher.rs
            "shadow_matcher", // validate/rbac_matcher.rs
        ],
        &[],
    ),
    // validate/rbac_matcher.rs: the xDS matcher API as the RBAC filter uses it.
    m("xds.type.matcher.v3.Matcher", &["matcher_list", "matcher_tree", "on_no_match"], &[]),
    m("xds.type.matcher.v3.Matcher.OnMatch", &["matcher", "action"], &[]),
    m("xds.type.matcher.v3.Matcher.MatcherList", &["matchers"], &[]),
    m("xds.type.matcher.v3.Matcher.MatcherList.FieldMatcher", &["predicate", "on_match"], &[]),
    m(
        "xds.type.matcher.v3.Matcher.MatcherList.Predicate",
        &["single_predicate", "or_matcher", "and_matcher", "not_matcher"],
        &[],
    ),
    m(
        "xds.type.matcher.v3.Matcher.MatcherList.Predicate.SinglePredicate",
        &["input", "value_match", "custom_match"],
        &[],
    ),
    m("xds.type.matcher.v3.Matcher.MatcherList.Predicate.PredicateList", &["predicate"], &[]),
    m("xds.type.matcher.v3.Matcher.MatcherTree", &["input", "exact_match_map", "prefix_match_map"], &[]),
    m("xds.type.matcher.v3.Matcher.MatcherTree.MatchMap", &["map"], &[]),
    m("xds.core.v3.TypedExtensionConfig", &["typed_config"], &["name"]),
    m(
        "xds.type.matcher.v3.StringMatcher",
        &["exact", "prefix", "suffix", "safe_regex", "contains", "ignore_case"],
        &[],
    ),
    m("xds.type.matcher.v3.RegexMatcher", &["regex"], &["google_re2"]),
    m("envoy.type.matcher.v3.HttpRequestHeaderMatchInput", &["header_name"], &[]),
    m("envoy.extensions.matching.common_inputs.network.v3.SourceIPInput", &[], &[]),
    m("envoy.extensions.matching.common_inputs.network.v3.DirectSourceIPInput", &[], &[]),
    m("envoy.extensions.matching.common_inputs.network.v3.DestinationIPInput", &[], &[]),
    m("envoy.extensions.matching.common_inputs.network.v3.DestinationPortInput", &[], &[]),
    m("envoy.extensions.matching.common_inputs.network.v3.SourcePortInput", &[], &[]),
    m("envoy.extensions.matching.common_inputs.network.v3.ServerNameInput", &[], &[]),
    m("envoy.extensions.matching.input_matchers.ip.v3.Ip", &["cidr_ranges"], &["stat_prefix"]),
    m("envoy.config.rbac.v3.Action", &["name", "action"], &[]),
    m("envoy.extensions.filters.http.rbac.v3.RBACPerRoute", &["rbac"], &[]),
    m("envoy.config.rbac.v3.RBAC", &["action", "policies"], &[]),
    m("envoy.config.rbac.v3.Policy", &["permissions", "principals"], &[]),
    m(
        "envoy.config.rbac.v3.Permission",
        &[
            "any",
            "and_rules",
            "or_rules",
            "not_rule",
            "header",
            "url_path",
            "destination_ip",
            "destination_port",
            "destination_port_range",
            "requested_server_name",
        ],
        &[],
    ),
    m("envoy.config.rbac.v3.Permission.Set", &["rules"], &[]),
    m(
        "envoy.config.rbac.v3.Principal",
        &[
            "any",
            "and_ids",
            "or_ids",
            "not_id",
            "header",
            "url_path",
            "remote_ip",
            "direct_remote_ip",
            "source_ip",
            "authenticated",
        ],
        &[],
    ),
    m("envoy.config.rbac.v3.Principal.Set", &["ids"], &[]),
    m("envoy.config.rbac.v3.Principal.Authenticated", &["principal_name"], &[]),
    m("envoy.type.matcher.v3.PathMatcher", &["path"], &[]),
    m("envoy.type.v3.Int32Range", &["start", "end"], &[]),
    m("envoy.type.v3.FractionalPercent", &["numerator", "denominator"], &[]),
    m("envoy.extensions.filters.http.health_check.v3.HealthCheck", &["pass_through_mode", "headers"], &[]),
    // validate/access_log.rs
    m("envoy.config.accesslog.v3.AccessLog", &["name", "typed_config"], &[]),
    m("envoy.extensions.access_loggers.file.v3.FileAccessLog", &["path", "log_format"], &[]),
    m("envoy.extensions.access_loggers.stream.v3.StdoutAccessLog", &["log_format"], &[]),
    m("envoy.extensions.access_loggers.stream.v3.StderrAccessLog", &["log_format"], &[]),
    m(
        "envoy.config.core.v3.SubstitutionFormatString",
        // `content_type`: a direct response's `body_format` (access logs have no use for it).
        // `omit_empty_values`: a set_filter_state value's (access logs accept and ignore it).
        &["text_format", "text_format_source", "json_format", "content_type", "omit_empty_values"],
        &[],
    ),
    // validate/cluster.rs
    m(
        "envoy.config.cluster.v3.Cluster",
        &[
            "name",
            "type",
            "lb_policy",
            "connect_timeout",
            "dns_refresh_rate",
            "dns_lookup_family",
            "dns_resolvers",
            "typed_dns_resolver_config",
            "dns_resolution_config",
            "use_tcp_for_dns_lookups",
            "respect_dns_ttl",
            "dns_failure_refresh_rate",
            "load_assignment",
            "typed_extension_protocol_options",
            "per_connection_buffer_limit_bytes",
            "circuit_breakers",
            "eds_cluster_config",
            "alt_stat_name",
            // validate/upstream_tls.rs: upstream TLS.
            "transport_socket",
            // validate/health.rs (issue 14).
            "health_checks",
            "outlier_detection",
            "common_lb_config",
            // tls/auto_sni.rs (deprecated; Envoy honours it without a typed HttpProtocolOptions).
            "upstream_http_protocol_options",
            // validate/hash_lb.rs: RING_HASH and MAGLEV (issue 14).
            "ring_hash_lb_config",
            "maglev_lb_config",
            // validate/lb_config.rs: LEAST_REQUEST and ROUND_ROBIN tuning, slow start.
            "least_request_lb_config",
            "round_robin_lb_config",
        ],
        &["metadata", "ignore_health_on_host_removal", "close_connections_on_host_health_failure"],
    ),
    // validate/hash_lb.rs (issue 14): consistent hashing.
    m(
        "envoy.config.cluster.v3.Cluster.RingHashLbConfig",
        &["minimum_ring_size", "maximum_ring_size", "hash_function"],
        &[],
    ),
    m("envoy.config.cluster.v3.Cluster.MaglevLbConfig", &["table_size"], &[]),
    // validate/lb_config.rs (issue 14).
    m(
        "envoy.config.cluster.v3.Cluster.LeastRequestLbConfig",
        &["choice_count", "active_request_bias", "slow_start_config"],
        &[],
    ),
    m("envoy.config.cluster.v3.Cluster.RoundRobinLbConfig", &["slow_start_config"], &[]),
    m(
        "envoy.config.cluster.v3.Cluster.SlowStartConfig",
        &["slow_start_window", "aggression", "min_weight_percent"],
        &[],
    ),
    // runtime_key: read when the cluster rebuilds its host choice (upstream/mod.rs).
    m("envoy.config.core.v3.RuntimeDouble", &["default_value", "runtime_key"], &[]),
    m(
        "envoy.config.route.v3.RouteAction.HashPolicy",
        &["header", "cookie", "connection_properties", "query_parameter", "filter_state", "terminal"],
        &[],
    ),
    m("envoy.config.route.v3.RouteAction.HashPolicy.Header", &["header_name", "regex_rewrite"], &[]),
    m("envoy.config.route.v3.RouteAction.HashPolicy.Cookie", &["name", "ttl", "path", "attributes"], &[]),
    m("envoy.config.route.v3.RouteAction.HashPolicy.CookieAttribute", &["name", "value"], &[]),
    m("envoy.config.route.v3.RouteAction.HashPolicy.ConnectionProperties", &["source_ip"], &[]),
    m("envoy.config.route.v3.RouteAction.HashPolicy.QueryParameter", &["name"], &[]),
    m("envoy.config.route.v3.RouteAction.HashPolicy.FilterState", &["key"], &[]),
    // validate/health.rs (issue 14)
    m(
        "envoy.config.core.v3.HealthCheck",
        &[
            "timeout",
            "interval",
            "initial_jitter",
            "interval_jitter",
            "interval_jitter_percent",
            "unhealthy_threshold",
            "healthy_threshold",
            "reuse_connection",
            "http_health_check",
            "tcp_health_check",
            "grpc_health_check",
            "no_traffic_interval",
            "no_traffic_healthy_interval",
            "always_log_health_check_failures",
            "event_log_path",
            "unhealthy_interval",
            "unhealthy_edge_interval",
            "healthy_edge_interval",
        ],
        &[],
    ),
    m(
        "envoy.config.core.v3.HealthCheck.HttpHealthCheck",
        &[
            "host",
            "path",
            "request_headers_to_add",
            "request_headers_to_remove",
            "expected_statuses",
            "retriable_statuses",
            "codec_client_type",
        ],
        &[],
    ),
    m("envoy.config.core.v3.HealthCheck.TcpHealthCheck", &["send", "receive"], &[]),
    m("envoy.config.core.v3.HealthCheck.GrpcHealthCheck", &["service_name", "authority"], &[]),
    m("envoy.config.core.v3.HealthCheck.Payload", &["text"], &[]),
    m("envoy.type.v3.Int64Range", &["start", "end"], &[]),
    m(
        "envoy.config.cluster.v3.OutlierDetection",
        &[
            "consecutive_5xx",
            "consecutive_gateway_failure",
            "interval",
            "base_ejection_time",
            "max_ejection_time",
            "max_ejection_percent",
            "enforcing_consecutive_5xx",
            "enforcing_consecutive_gateway_failure",
            // upstream/outlier/ (issue 14): rates, local origin, jitter, active-check uneject.
            "enforcing_success_rate",
            "success_rate_minimum_hosts",
            "success_rate_request_volume",
            "success_rate_stdev_factor",
            "split_external_local_origin_errors",
            "consecutive_local_origin_failure",
            "enforcing_consecutive_local_origin_failure",
            "enforcing_local_origin_success_rate",
            "failure_percentage_threshold",
            "enforcing_failure_percentage",
            "enforcing_failure_percentage_local_origin",
            "failure_percentage_minimum_hosts",
            "failure_percentage_request_volume",
            "max_ejection_time_jitter",
            "successful_active_health_check_uneject_host",
            "always_eject_one_host",
        ],
        &[],
    ),
    m(
        "envoy.config.cluster.v3.Cluster.CommonLbConfig",
        &[
            "healthy_panic_threshold",
            // issue 14: lb_state.rs splits each priority between its localities.
            "locality_weighted_lb_config",
            // validate/hash_lb.rs (issue 14): RING_HASH / MAGLEV keys and bounded loads.
            "consistent_hashing_lb_config",
        ],
        &[],
    ),
    m("envoy.config.cluster.v3.Cluster.CommonLbConfig.LocalityWeightedLbConfig", &[], &[]),
    m(
        "envoy.config.cluster.v3.Cluster.CommonLbConfig.ConsistentHashingLbConfig",
        &["use_hostname_for_hashing", "hash_balance_factor"],
        &[],
    ),
    m("envoy.type.v3.Percent", &["value"], &[]),
    m("envoy.config.cluster.v3.Cluster.EdsClusterConfig", &["service_name", "eds_config"], &[]),
    m("envoy.config.cluster.v3.Cluster.RefreshRate", &["base_interval", "max_interval"], &[]),
    m("envoy.config.core.v3.TypedExtensionConfig", &["name", "typed_config"], &[]),
    m(
        "envoy.extensions.network.dns_resolver.cares.v3.CaresDnsResolverConfig",
        &["resolvers", "dns_resolver_options", "use_resolvers_as_fallback", "filter_unroutable_families"],
        &[],
    ),
    m("envoy.config.core.v3.DnsResolutionConfig", &["resolvers", "dns_resolver_options"], &[]),
    m("envoy.config.core.v3.DnsResolverOptions", &["use_tcp_for_dns_lookups", "no_default_search_domain"], &[]),
    m(
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
        &[
            "explicit_http_config",
            "common_http_protocol_options",
            // HTTP/2 or HTTP/1.1 by ALPN (upstream TLS).
            "auto_config",
            // tls/auto_sni.rs: SNI and SAN check from each request.
            "upstream_http_protocol_options",
        ],
        &[],
    ),
    m(
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions.AutoHttpConfig",
        &["http_protocol_options", "http2_protocol_options"],
        &[],
    ),
    m(
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions.ExplicitHttpConfig",
        &["http_protocol_options", "http2_protocol_options"],
        &[],
    ),
    m("envoy.config.cluster.v3.CircuitBreakers", &["thresholds"], &[]),
    m(
        "envoy.config.cluster.v3.CircuitBreakers.Thresholds",
        &["priority", "max_connections", "max_pending_requests", "max_requests", "max_retries", "track_remaining"],
        &[],
    ),
    m("envoy.config.endpoint.v3.ClusterLoadAssignment", &["cluster_name", "endpoints"], &[]),
    m(
        "envoy.config.endpoint.v3.LocalityLbEndpoints",
        &[
            "priority",
            "load_balancing_weight",
            "lb_endpoints",
            // issue 14: named in health check events.
            "locality",
        ],
        &["metadata"],
    ),
    m(
        "envoy.config.endpoint.v3.LbEndpoint",
        &[
            "load_balancing_weight",
            "endpoint",
            // issue 14: UNHEALTHY/TIMEOUT/DRAINING excluded, DEGRADED when healthy hosts are short.
            "health_status",
            // issue 14: `envoy.lb` `hash_key` keys the host on RING_HASH / MAGLEV tables; the
            // rest is descriptive.
            "metadata",
        ],
        &[],
    ),
    m(
        "envoy.config.endpoint.v3.Endpoint",
        &[
            "hostname",
            "address",
            // issue 14: where and how health checks reach the endpoint.
            "health_check_config",
        ],
        &[],
    ),
    m(
        "envoy.config.endpoint.v3.Endpoint.HealthCheckConfig",
        &["port_value", "address", "hostname", "disable_active_health_check"],
        &[],
    ),
    // validate/route.rs, headers.rs, matcher.rs
    m(
        "envoy.config.route.v3.RouteConfiguration",
        &[
            "name",
            "validate_clusters",
            "max_direct_response_body_size_bytes",
            "request_headers_to_add",
            "request_headers_to_remove",
            "response_headers_to_add",
            "response_headers_to_remove",
            "typed_per_filter_config",
            "internal_only_headers",
            "ignore_port_in_host_matching",
            "virtual_hosts",
            "request_mirror_policies", // routing/compile.rs (issue 16)
        ],
        &[],
    ),
    m(
        "envoy.config.route.v3.VirtualHost",
        &[
            "name",
            "domains",
            "request_headers_to_add",
            "request_headers_to_remove",
            "response_headers_to_add",
            "response_headers_to_remove",
            "typed_per_filter_config",
            "retry_policy",
            "include_request_attempt_count",
            "include_attempt_count_in_response",
            "routes",
            "cors",
            // The local rate limit filter's descriptors (validate/local_ratelimit.rs).
            "rate_limits",
            "require_tls",             // routing/mod.rs (issue 16)
            "request_mirror_policies", // routing/compile.rs (issue 16)
            "hedge_policy",            // proxy/forward/hedge.rs (issue 14)
        ],
        &[],
    ),
    // validate/route.rs: `initial_requests` and `additional_request_chance` are not
    // implemented by Envoy either; only their defaults are accepted.
    m(
        "envoy.config.route.v3.HedgePolicy",
        &["hedge_on_per_try_timeout", "initial_requests", "additional_request_chance"],
        &[],
    ),
    m(
        "envoy.config.route.v3.Route",
        &[
            "name",
            "match",
            "route",
            "redirect",
            "direct_response",
            "request_headers_to_add",
            "request_headers_to_remove",
            "response_headers_to_add",
            "response_headers_to_remove",
            "typed_per_filter_config",
        ],
        &["decorator"],
    ),
    m(
        "envoy.config.route.v3.RouteAction",
        &[
            "cluster",
            "weighted_clusters",
            "cluster_header",
            "cluster_not_found_response_code",
            "prefix_rewrite",
            "regex_rewrite",
            "host_rewrite_literal",
            "auto_host_rewrite",
            "host_rewrite_header",
            "host_rewrite_path_regex",
            "timeout",
            "retry_policy",
            // validate/hash_lb.rs (issue 14).
            "hash_policy",
            "priority",
            "upgrade_configs",
            // The local rate limit filter's descriptors (validate/local_ratelimit.rs).
            "rate_limits",
            "include_vh_rate_limits",
            "request_mirror_policies", // proxy/mirror.rs
            "append_x_forwarded_host", // proxy/headers.rs
            // proxy/stream_duration.rs
            "max_stream_duration",
            "max_grpc_timeout",
            "grpc_timeout_offset",
            "idle_timeout",
            "hedge_policy", // proxy/forward/hedge.rs (issue 14)
            // validate/internal_redirect.rs, proxy/internal_redirect.rs (issue 16).
            "internal_redirect_policy",
            "internal_redirect_action",
            "max_internal_redirects",
        ],
        &[],
    ),
    m(
        "envoy.config.route.v3.InternalRedirectPolicy",
        &[
            "max_internal_redirects",
            "redirect_response_codes",
            "predicates",
            "allow_cross_scheme_redirect",
            "response_headers_to_copy",
        ],
        &[],
    ),
    m(
        "envoy.extensions.internal_redirect.allow_listed_routes.v3.AllowListedRoutesConfig",
        &["allowed_route_names"],
        &[],
    ),
    m("envoy.extensions.internal_redirect.previous_routes.v3.PreviousRoutesConfig", &[], &[]),
    m("envoy.extensions.internal_redirect.safe_cross_scheme.v3.SafeCrossSchemeConfig", &[], &[]),
    m(
        "envoy.config.route.v3.RouteAction.MaxStreamDuration",
        &["max_stream_duration", "grpc_timeout_header_max", "grpc_timeout_header_offset"],
        &[],
    ),
    m("envoy.config.route.v3.RouteAction.UpgradeConfig", &["upgrade_type", "enabled"], &[]),
    m(
        "envoy.config.route.v3.RouteAction.RequestMirrorPolicy",
        &["cluster", "cluster_header", "runtime_fraction", "disable_shadow_host_suffix_append", "host_rewrite_literal"],
        &[],
    ),
    m(
        "envoy.config.route.v3.WeightedCluster",
        // routing/mod.rs `Target::pick` (issue 16): header_name, use_hash_policy.
        &["clusters", "total_weight", "header_name", "use_hash_policy"],
        &[],
    ),
    m(
        "envoy.config.route.v3.WeightedCluster.ClusterWeight",
        &[
            "name",
            "weight",
            // routing/mod.rs, proxy/dispatch.rs (issue 16).
            "cluster_header",
            "host_rewrite_literal",
            "request_headers_to_add",
            "request_headers_to_remove",
            "response_headers_to_add",
            "response_headers_to_remove",
            "typed_per_filter_config",
        ],
        &[],
    ),
    m("envoy.type.matcher.v3.RegexMatchAndSubstitute", &["pattern", "substitution"], &[]),
    m(
        "envoy.config.route.v3.RetryPolicy",
        &[
            "retry_on",
            "num_retries",
            "per_try_timeout",
            "per_try_idle_timeout",
            "retriable_status_codes",
            "retry_back_off",
            "rate_limited_retry_back_off",
            "retriable_headers",
            "retriable_request_headers",
            "retry_host_predicate",
            "host_selection_retry_max_attempts",
            // validate/route.rs, proxy/retry_hosts.rs (issue 14).
            "retry_priority",
        ],
        &[],
    ),
    m("envoy.config.route.v3.RetryPolicy.RetryBackOff", &["base_interval", "max_interval"], &[]),
    m("envoy.config.route.v3.RetryPolicy.RateLimitedRetryBackOff", &["reset_headers", "max_interval"], &[]),
    m("envoy.config.route.v3.RetryPolicy.ResetHeader", &["name", "format"], &[]),
    m("envoy.config.route.v3.RetryPolicy.RetryHostPredicate", &["name", "typed_config"], &[]),
    m("envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate", &[], &[]),
    m("envoy.config.route.v3.RetryPolicy.RetryPriority", &["name", "typed_config"], &[]),
    m("envoy.extensions.retry.priority.previous_priorities.v3.PreviousPrioritiesConfig", &["update_frequency"], &[]),
    m(
        "envoy.config.route.v3.RedirectAction",
        &[
            "https_redirect",
            "scheme_redirect",
            "host_redirect",
            "port_redirect",
            "path_redirect",
            "prefix_rewrite",
            "regex_rewrite", // proxy/rewrite.rs (issue 16)
            "strip_query",
            "response_code",
        ],
        &[],
    ),
    // body_format: routing/compile.rs, proxy/dispatch.rs (issue 16).
    m("envoy.config.route.v3.DirectResponseAction", &["status", "body", "body_format"], &[]),
    m("envoy.config.core.v3.HeaderValueOption", &["header", "append", "append_action", "keep_empty_value"], &[]),
    m("envoy.config.core.v3.HeaderValue", &["key", "value"], &[]),
    m(
        "envoy.config.route.v3.RouteMatch",
        &[
            "prefix",
            "path",
            "safe_regex",
            "path_separated_prefix",
            "case_sensitive",
            "headers",
            "query_parameters",
            "grpc",        // routing/matcher.rs
            "tls_context", // routing/matcher.rs (issue 16)
            "runtime_fraction",
        ],
        &[],
    ),
    m("envoy.config.route.v3.RouteMatch.TlsContextMatchOptions", &["presented", "validated"], &[]),
    m("envoy.config.route.v3.RouteMatch.GrpcRouteMatchOptions", &[], &[]),
    m(
        "envoy.type.matcher.v3.StringMatcher",
        &["exact", "prefix", "suffix", "contains", "safe_regex", "ignore_case"],
        &[],
    ),
    m(
        "envoy.config.route.v3.HeaderMatcher",
        &[
            "name",
            "invert_match",
            "string_match",
            "present_match",
            "exact_match",
            "prefix_match",
            "suffix_match",
            "contains_match",
            "safe_regex_match",
            // routing/matcher.rs (issue 16).
            "range_match",
            "treat_missing_header_as_empty",
        ],
        &[],
    ),
    m("envoy.config.route.v3.QueryParameterMatcher", &["name", "string_match", "present_match"], &[]),
    // discovery.rs: a discovery file.
    m(
        "envoy.service.discovery.v3.DiscoveryResponse",
        &["version_info", "resources", "type_url"],
        &["nonce", "canary", "control_plane"],
    ),
];

/// The table's entry for a message (by full name).
pub(crate) fn find(name: &str) -> Option<&'static Message> {
    static INDEX: OnceLock<HashMap<&'static str, &'static Message>> = OnceLock::new();
    INDEX.get_or_init(|| TABLE.iter().map(|m| (m.name, m)).collect()).get(name).copied()
}

/// The support matrix (`legate --print-support-matrix`, `docs/support-matrix.md`): the table
/// as markdown, one section per message.
pub(crate) fn matrix() -> String {
    let mut out = String::from(
        "# Support matrix\n\n\
         Generated by `legate --print-support-matrix` from the table validation uses \
         (`src/config/schema/support.rs`); do not edit by hand.\n\n\
         For each message of Envoy's v3 API that legate reads: the fields it honours, and the \
         fields it accepts with no effect by design. Any other field, when set, is refused at \
         its path with \"not implemented by legate\"; a `typed_config` of a type not listed here \
         is refused as an unsupported extension. A validator may still refuse some values of \
         an honoured field (each such refusal names the field and says why).\n",
    );
    for m in TABLE {
        out.push_str(&format!("\n## `{}`\n\n", m.name));
        let list = |fields: &[&str]| fields.iter().map(|f| format!("`{f}`")).collect::<Vec<_>>().join(", ");
        if m.honoured.is_empty() {
            out.push_str("- honoured: (no fields; the message itself is implemented)\n");
        } else {
            out.push_str(&format!("- honoured: {}\n", list(m.honoured)));
        }
        if !m.inert.is_empty() {
            out.push_str(&format!("- accepted, no effect: {}\n", list(m.inert)));
        }
    }
    out
}
