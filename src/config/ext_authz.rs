//! The model of `envoy.filters.http.ext_authz` (`ExtAuthz`) and of its per-route
//! `ExtAuthzPerRoute`, as `validate/ext_authz.rs` reads them.

use std::time::Duration;

use super::model::StringMatcher;

/// `envoy.extensions.filters.http.ext_authz.v3.ExtAuthz`
#[derive(Debug, Clone, PartialEq)]
pub struct ExtAuthzConfig {
    pub service: AuthzService,
    /// `failure_mode_allow`
    pub failure_mode_allow: bool,
    /// `failure_mode_allow_header_add`
    pub failure_mode_allow_header_add: bool,
    /// `with_request_body`
    pub with_request_body: Option<BufferSettings>,
    /// `status_on_error.code`: 403 unless set.
    pub status_on_error: u16,
    /// `stat_prefix`: the stats are `ext_authz.<stat_prefix>.*` when it is set.
    pub stat_prefix: String,
}

/// `grpc_service` or `http_service`.
#[derive(Debug, Clone, PartialEq)]
pub enum AuthzService {
    Http(Box<HttpService>),
    Grpc(GrpcService),
}

/// `envoy.extensions.filters.http.ext_authz.v3.HttpService`
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HttpService {
    /// `server_uri.cluster`
    pub cluster: String,
    /// `server_uri.timeout`
    pub timeout: Duration,
    /// `path_prefix`: put before the client's path in the check request.
    pub path_prefix: String,
    /// `authorization_request.allowed_headers`: client headers copied into the check request
    /// besides Envoy's always-sent `Authorization`, `:method`, `:path` and `Host`.
    pub allowed_headers: Vec<StringMatcher>,
    /// `authorization_request.headers_to_add`: Envoy format strings, evaluated per request.
    pub headers_to_add: Vec<(String, String)>,
    /// `authorization_response.allowed_upstream_headers`: set on the upstream request.
    pub allowed_upstream_headers: Vec<StringMatcher>,
    /// `authorization_response.allowed_upstream_headers_to_append`: added to it.
    pub allowed_upstream_headers_to_append: Vec<StringMatcher>,
    /// `authorization_response.allowed_client_headers`: sent with a denial (all but `Host`
    /// when empty).
    pub allowed_client_headers: Vec<StringMatcher>,
    /// `authorization_response.allowed_client_headers_on_success`: added to the response of
    /// an allowed request.
    pub allowed_client_headers_on_success: Vec<StringMatcher>,
}

/// `grpc_service` with `envoy_grpc`.
#[derive(Debug, Clone, PartialEq)]
pub struct GrpcService {
    /// `envoy_grpc.cluster_name`
    pub cluster: String,
    /// `envoy_grpc.authority`: the cluster name unless set.
    pub authority: String,
    /// `timeout`: Envoy's 200 ms unless set.
    pub timeout: Duration,
}

/// `envoy.extensions.filters.http.ext_authz.v3.BufferSettings`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferSettings {
    pub max_request_bytes: u32,
    pub allow_partial_message: bool,
    /// `pack_as_bytes`: the body goes in `raw_body` rather than `body` (gRPC).
    pub pack_as_bytes: bool,
}

/// `envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute`
#[derive(Debug, Clone, PartialEq)]
pub enum ExtAuthzPerRoute {
    /// `disabled: true`
    Disabled,
    /// `check_settings`
    Check(CheckSettings),
}

/// `envoy.extensions.filters.http.ext_authz.v3.CheckSettings`
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CheckSettings {
    /// `context_extensions`, sorted by key (gRPC service only).
    pub context_extensions: Vec<(String, String)>,
    /// `disable_request_body_buffering`
    pub disable_request_body_buffering: bool,
}
