//! The `@type` URLs legate understands, one constant each, so that typed configs and discovery
//! resources are checked against exactly one spelling.

pub(crate) const HCM: &str =
    "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
pub(crate) const ROUTER: &str = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router";
pub(crate) const HEALTH_CHECK: &str = "type.googleapis.com/envoy.extensions.filters.http.health_check.v3.HealthCheck";
pub(crate) const FAULT: &str = "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault";
pub(crate) const BUFFER: &str = "type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer";
pub(crate) const BUFFER_PER_ROUTE: &str = "type.googleapis.com/envoy.extensions.filters.http.buffer.v3.BufferPerRoute";
pub(crate) const CORS: &str = "type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors";
pub(crate) const CORS_POLICY: &str = "type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy";
pub(crate) const CSRF_POLICY: &str = "type.googleapis.com/envoy.extensions.filters.http.csrf.v3.CsrfPolicy";
pub(crate) const LOCAL_RATELIMIT: &str =
    "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit";
pub(crate) const RBAC: &str = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC";
pub(crate) const RBAC_PER_ROUTE: &str = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute";
pub(crate) const COMPRESSOR: &str = "type.googleapis.com/envoy.extensions.filters.http.compressor.v3.Compressor";
pub(crate) const COMPRESSOR_PER_ROUTE: &str =
    "type.googleapis.com/envoy.extensions.filters.http.compressor.v3.CompressorPerRoute";
pub(crate) const GZIP_COMPRESSOR: &str = "type.googleapis.com/envoy.extensions.compression.gzip.compressor.v3.Gzip";
pub(crate) const BROTLI_COMPRESSOR: &str =
    "type.googleapis.com/envoy.extensions.compression.brotli.compressor.v3.Brotli";
pub(crate) const ZSTD_COMPRESSOR: &str = "type.googleapis.com/envoy.extensions.compression.zstd.compressor.v3.Zstd";
pub(crate) const DECOMPRESSOR: &str = "type.googleapis.com/envoy.extensions.filters.http.decompressor.v3.Decompressor";
pub(crate) const GZIP_DECOMPRESSOR: &str = "type.googleapis.com/envoy.extensions.compression.gzip.decompressor.v3.Gzip";
pub(crate) const BROTLI_DECOMPRESSOR: &str =
    "type.googleapis.com/envoy.extensions.compression.brotli.decompressor.v3.Brotli";
pub(crate) const ZSTD_DECOMPRESSOR: &str = "type.googleapis.com/envoy.extensions.compression.zstd.decompressor.v3.Zstd";
pub(crate) const EXT_AUTHZ: &str = "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz";
pub(crate) const EXT_AUTHZ_PER_ROUTE: &str =
    "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute";
pub(crate) const GRPC_HTTP1_BRIDGE: &str =
    "type.googleapis.com/envoy.extensions.filters.http.grpc_http1_bridge.v3.Config";
pub(crate) const GRPC_WEB: &str = "type.googleapis.com/envoy.extensions.filters.http.grpc_web.v3.GrpcWeb";
pub(crate) const SET_FILTER_STATE: &str =
    "type.googleapis.com/envoy.extensions.filters.http.set_filter_state.v3.Config";
pub(crate) const HEADER_TO_METADATA: &str =
    "type.googleapis.com/envoy.extensions.filters.http.header_to_metadata.v3.Config";
pub(crate) const FILTER_CONFIG: &str = "type.googleapis.com/envoy.config.route.v3.FilterConfig";
pub(crate) const FILE_ACCESS_LOG: &str = "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog";
pub(crate) const STDOUT_ACCESS_LOG: &str =
    "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog";
pub(crate) const STDERR_ACCESS_LOG: &str =
    "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StderrAccessLog";
pub(crate) const HTTP_PROTOCOL_OPTIONS_KEY: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";
pub(crate) const HTTP_PROTOCOL_OPTIONS: &str =
    "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions";
pub(crate) const CARES: &str =
    "type.googleapis.com/envoy.extensions.network.dns_resolver.cares.v3.CaresDnsResolverConfig";

/// Discovery resource types, with the v2 spelling a 2019 file would carry.
pub(crate) const LISTENER: &[&str] =
    &["type.googleapis.com/envoy.config.listener.v3.Listener", "type.googleapis.com/envoy.api.v2.Listener"];
pub(crate) const CLUSTER: &[&str] =
    &["type.googleapis.com/envoy.config.cluster.v3.Cluster", "type.googleapis.com/envoy.api.v2.Cluster"];
pub(crate) const ROUTE_CONFIGURATION: &[&str] = &[
    "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
    "type.googleapis.com/envoy.api.v2.RouteConfiguration",
];
pub(crate) const CLUSTER_LOAD_ASSIGNMENT: &[&str] = &[
    "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment",
    "type.googleapis.com/envoy.api.v2.ClusterLoadAssignment",
];
pub(crate) const TCP_PROXY: &str = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy";
pub(crate) const TLS_INSPECTOR: &str =
    "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector";
pub(crate) const HTTP_INSPECTOR: &str =
    "type.googleapis.com/envoy.extensions.filters.listener.http_inspector.v3.HttpInspector";
pub(crate) const DOWNSTREAM_TLS_CONTEXT: &str =
    "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext";
pub(crate) const UPSTREAM_TLS_CONTEXT: &str =
    "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext";
pub(crate) const RAW_BUFFER: &str = "type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer";
