//! Upstream TLS names taken from each request, as Envoy's router sets them: with
//! `upstream_http_protocol_options.auto_sni` the SNI is the request's host (`:authority` or
//! `Host` after the route's host rewrite, without its port; or the value of
//! `override_auto_sni_header` when the request has it, non-empty), and with
//! `auto_san_validation` the server's certificate must carry that name in a SAN. An IP
//! literal is never sent as SNI (the configured `sni`, if any, is sent instead) but is still
//! the SAN checked. [`AutoSni`] is the rule, [`Target`] one name's handshake settings; the
//! pool keeps one set of connections per name (`upstream::pool::named`), so a connection
//! opened for `a.example` never carries a request for `b.example`.

use std::net::IpAddr;
use std::sync::Arc;

use http::{HeaderName, Request};
use rustls_pki_types::ServerName;

use super::client::{ClientMaterial, ClientTls};

/// `UpstreamHttpProtocolOptions` (a cluster's, or its `HttpProtocolOptions`').
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AutoSni {
    /// `auto_sni`.
    pub sni: bool,
    /// `auto_san_validation`.
    pub san: bool,
    /// `override_auto_sni_header`: the header whose value, when present and not empty, is
    /// used in place of the host.
    pub header: Option<HeaderName>,
}

impl AutoSni {
    pub fn enabled(&self) -> bool {
        self.sni || self.san
    }

    /// The name a request's connection is for (its host without the port), or `None` when
    /// the cluster's own settings apply (nothing to send nor check for this request).
    pub fn name_of<'a, B>(&self, req: &'a Request<B>) -> Option<&'a str> {
        let overridden = self
            .header
            .as_ref()
            .and_then(|h| req.headers().get(h))
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty());
        let value = match overridden {
            Some(v) => v,
            None => match req.uri().authority() {
                Some(a) => a.as_str(),
                None => req.headers().get(http::header::HOST)?.to_str().ok()?,
            },
        };
        let host = host_of(value);
        // Only a name sent as SNI or checked as a SAN needs its own connections.
        let sent = self.sni && host.parse::<IpAddr>().is_err();
        (!host.is_empty() && (sent || self.san)).then_some(host)
    }
}

/// An authority's host: `[v6]:port` and `host:port` lose the port (and the brackets).
fn host_of(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split_once(']').map_or(authority, |(h, _)| h);
    }
    match authority.rsplit_once(':') {
        Some((h, port)) if !h.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => authority,
    }
}

/// The handshake settings of the connections for one name: built from the context's
/// current certificates, and again after they rotate.
pub struct Target {
    name: String,
    /// The context version the cached settings were built from, and those settings.
    cached: arc_swap::ArcSwapOption<(Arc<ClientMaterial>, Arc<rustls::ClientConfig>)>,
}

impl Target {
    pub fn new(name: &str) -> Target {
        Target { name: name.to_string(), cached: arc_swap::ArcSwapOption::empty() }
    }

    /// `name`'s settings under `tls`'s current version: what rustls is given as the name
    /// (SNI `name` with `auto_sni`, unless an IP literal or not a DNS name; else the
    /// context's `sni`; an IP address to send none), and with `auto_san_validation` a
    /// context whose verifier also requires `name` among the certificate's SANs.
    pub fn connector(&self, tls: &ClientTls) -> (tokio_rustls::TlsConnector, Option<ServerName<'static>>) {
        let m = tls.material();
        let auto = &tls.auto_sni;
        let own = if auto.sni && self.name.parse::<IpAddr>().is_err() {
            ServerName::try_from(self.name.clone()).ok()
        } else {
            None
        };
        let server_name = own.or_else(|| m.server_name.clone());
        if !auto.san {
            return (tokio_rustls::TlsConnector::from(Arc::clone(&m.rustls)), server_name);
        }
        if let Some(c) = self.cached.load().as_ref().filter(|c| Arc::ptr_eq(&c.0, &m)) {
            return (tokio_rustls::TlsConnector::from(Arc::clone(&c.1)), server_name);
        }
        let mut config = (*m.rustls).clone();
        config.dangerous().set_certificate_verifier(Arc::new(m.verifier.with_san_list(vec![self.name.clone()])));
        let config = Arc::new(config);
        self.cached.store(Some(Arc::new((Arc::clone(&m), Arc::clone(&config)))));
        (tokio_rustls::TlsConnector::from(config), server_name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(host: &str, extra: Option<(&str, &str)>) -> Request<()> {
        let mut b = Request::builder().uri("/").header("host", host);
        if let Some((k, v)) = extra {
            b = b.header(k, v);
        }
        b.body(()).unwrap_or_default()
    }

    #[test]
    fn the_host_without_its_port() {
        assert_eq!(host_of("a.example:8080"), "a.example");
        assert_eq!(host_of("a.example"), "a.example");
        assert_eq!(host_of("[::1]:80"), "::1");
        assert_eq!(host_of("[::1]"), "::1");
        assert_eq!(host_of("::1"), "::1");
    }

    #[test]
    fn a_name_per_request() {
        let sni = AutoSni { sni: true, ..Default::default() };
        assert_eq!(sni.name_of(&req("a.example:99", None)), Some("a.example"));
        assert_eq!(sni.name_of(&req("127.0.0.1", None)), None, "an IP is not sent as SNI");
        let san = AutoSni { san: true, ..Default::default() };
        assert_eq!(san.name_of(&req("127.0.0.1:80", None)), Some("127.0.0.1"), "but is checked");
        let h = AutoSni { sni: true, header: Some(HeaderName::from_static("x-sni")), ..Default::default() };
        assert_eq!(h.name_of(&req("a.example", Some(("x-sni", "b.example:1")))), Some("b.example"));
        assert_eq!(h.name_of(&req("a.example", Some(("x-sni", "")))), Some("a.example"), "empty: the host");
        assert_eq!(h.name_of(&req("a.example", Some(("x-sni", "10.0.0.1")))), None, "an IP: the configured sni");
    }
}
