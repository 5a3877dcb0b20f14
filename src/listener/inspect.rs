//! Listener filters: what a connection's first bytes say before a filter chain is chosen.
//! `tls_inspector` finds a TLS ClientHello (transport protocol `tls`, its SNI and ALPN) and
//! `http_inspector` a plaintext HTTP request (`http/1.1`, `http/1.0` or `h2c`). They read
//! without consuming: the bytes read here are replayed in front of the stream for whatever
//! the chosen chain runs.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

use super::tls_hello::{self, Hello, MAX_CLIENT_HELLO};
use crate::config::model::ListenerFilter;
use crate::stats::{Counter, Histogram, Store};

/// Envoy's `tls_inspector.*`: one set for the process (Envoy names them without the
/// listener), registered once a listener has a `tls_inspector`.
#[derive(Clone)]
pub struct TlsInspectorStats {
    pub client_hello_too_large: Counter,
    pub tls_found: Counter,
    pub tls_not_found: Counter,
    pub alpn_found: Counter,
    pub alpn_not_found: Counter,
    pub sni_found: Counter,
    pub sni_not_found: Counter,
    /// The bytes the inspector judged: the ClientHello's record, or the 5 bytes of a record
    /// header that is not TLS (what Envoy 1.40 records).
    pub bytes_processed: Histogram,
}

impl TlsInspectorStats {
    pub fn new(store: &Store) -> Self {
        let c = |s: &str| store.counter(&format!("tls_inspector.{s}"));
        TlsInspectorStats {
            client_hello_too_large: c("client_hello_too_large"),
            tls_found: c("tls_found"),
            tls_not_found: c("tls_not_found"),
            alpn_found: c("alpn_found"),
            alpn_not_found: c("alpn_not_found"),
            sni_found: c("sni_found"),
            sni_not_found: c("sni_not_found"),
            bytes_processed: store.histogram("tls_inspector.bytes_processed"),
        }
    }

    fn count(&self, verdict: &TlsVerdict) {
        match verdict {
            TlsVerdict::Tls { bytes, sni, alpn } => {
                self.tls_found.inc();
                if *sni { &self.sni_found } else { &self.sni_not_found }.inc();
                if *alpn { &self.alpn_found } else { &self.alpn_not_found }.inc();
                self.bytes_processed.record(*bytes);
            }
            TlsVerdict::NotTls { bytes } => {
                self.tls_not_found.inc();
                self.bytes_processed.record(*bytes);
            }
            TlsVerdict::TooLarge => self.client_hello_too_large.inc(),
        }
    }
}

/// What the TLS inspector concluded, counted once the filters are done.
enum TlsVerdict {
    Tls { bytes: u64, sni: bool, alpn: bool },
    NotTls { bytes: u64 },
    TooLarge,
}

/// What the listener filters found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detected {
    pub transport_protocol: &'static str,
    pub server_name: Option<String>,
    pub application_protocols: Vec<String>,
}

impl Default for Detected {
    fn default() -> Self {
        Detected { transport_protocol: "raw_buffer", server_name: None, application_protocols: Vec::new() }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Done(Detected),
    /// `listener_filters_timeout` passed first; what was found by then.
    TimedOut(Detected),
    /// The peer closed (or reset) before the filters were done.
    RemoteClose,
    /// A ClientHello larger than the inspector reads: Envoy closes the connection.
    Error,
}

/// The most an HTTP inspector reads looking for the end of the request line.
const MAX_HTTP_PEEK: usize = 8 * 1024;
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Runs `filters` over the first bytes of `io`, appending what it reads to `buf`; the TLS
/// inspector's verdict is counted in `stats`.
pub async fn run<R: AsyncRead + Unpin>(
    io: &mut R,
    filters: &[ListenerFilter],
    timeout: Option<Duration>,
    buf: &mut Vec<u8>,
    stats: Option<&TlsInspectorStats>,
) -> Outcome {
    let mut detected = Detected::default();
    let mut verdict = None;
    let outcome = run_filters(io, filters, timeout, buf, &mut detected, &mut verdict).await;
    if let (Some(stats), Some(v)) = (stats, &verdict) {
        stats.count(v);
    }
    outcome
}

async fn run_filters<R: AsyncRead + Unpin>(
    io: &mut R,
    filters: &[ListenerFilter],
    timeout: Option<Duration>,
    buf: &mut Vec<u8>,
    detected: &mut Detected,
    verdict: &mut Option<TlsVerdict>,
) -> Outcome {
    let work = async {
        loop {
            match evaluate(filters, buf, detected, verdict) {
                Step::Done => return Outcome::Done(detected.clone()),
                Step::Error => return Outcome::Error,
                Step::More => {}
            }
            buf.reserve(4096);
            match io.read_buf(buf).await {
                Ok(0) | Err(_) => return Outcome::RemoteClose,
                Ok(_) => {}
            }
        }
    };
    match timeout {
        None => work.await,
        Some(t) => match tokio::time::timeout(t, work).await {
            Ok(o) => o,
            Err(_) => Outcome::TimedOut(detected.clone()),
        },
    }
}

enum Step {
    Done,
    More,
    Error,
}

/// Every filter's verdict on the bytes so far, recorded in `d`; `More` while one needs more.
fn evaluate(filters: &[ListenerFilter], buf: &[u8], d: &mut Detected, verdict: &mut Option<TlsVerdict>) -> Step {
    let mut more = false;
    for f in filters {
        match f {
            ListenerFilter::TlsInspector => match tls_hello::parse(buf) {
                Hello::Incomplete if buf.len() < MAX_CLIENT_HELLO + 5 => more = true,
                Hello::Incomplete | Hello::TooLarge => {
                    *verdict = Some(TlsVerdict::TooLarge);
                    return Step::Error;
                }
                Hello::NotTls => {
                    *verdict = Some(TlsVerdict::NotTls { bytes: buf.len().min(5) as u64 });
                }
                Hello::Tls(h) => {
                    let record = buf.get(3..5).map_or(0, |l| u64::from(u16::from_be_bytes([l[0], l[1]])));
                    *verdict = Some(TlsVerdict::Tls {
                        bytes: 5 + record,
                        sni: h.server_name.is_some(),
                        alpn: !h.alpn.is_empty(),
                    });
                    d.transport_protocol = "tls";
                    d.server_name = h.server_name;
                    d.application_protocols = h.alpn;
                }
            },
            // As in Envoy, it does nothing once another filter found a transport.
            ListenerFilter::HttpInspector if d.transport_protocol != "raw_buffer" => {}
            ListenerFilter::HttpInspector => match http_protocol(buf) {
                Some(Some(p)) => d.application_protocols = vec![p.to_string()],
                Some(None) => {}
                None => more = true,
            },
        }
    }
    if more {
        Step::More
    } else {
        Step::Done
    }
}

/// The HTTP version a plaintext connection starts with: `None` until it can tell,
/// `Some(None)` when it is not HTTP.
pub fn http_protocol(buf: &[u8]) -> Option<Option<&'static str>> {
    let n = buf.len().min(H2_PREFACE.len());
    if buf[..n] == H2_PREFACE[..n] {
        return (n == H2_PREFACE.len()).then_some(Some("h2c"));
    }
    let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
        return (buf.len() >= MAX_HTTP_PEEK).then_some(None);
    };
    let line = &buf[..end];
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(_target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Some(None);
    };
    if method.is_empty() || !method.iter().all(|b| b.is_ascii_uppercase()) {
        return Some(None);
    }
    Some(match version {
        b"HTTP/1.1" => Some("http/1.1"),
        b"HTTP/1.0" => Some("http/1.0"),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::listener::tls_hello::client_hello_bytes;

    #[test]
    fn http_versions() {
        assert_eq!(http_protocol(b"GET / HTTP/1.1\r\n"), Some(Some("http/1.1")));
        assert_eq!(http_protocol(b"POST /x HTTP/1.0\r\nhost: a\r\n"), Some(Some("http/1.0")));
        assert_eq!(http_protocol(H2_PREFACE), Some(Some("h2c")));
        assert_eq!(http_protocol(b"PRI * HT"), None);
        assert_eq!(http_protocol(b"GET / HTTP/1.1"), None);
        assert_eq!(http_protocol(b"hello world\r\n"), Some(None));
        assert_eq!(http_protocol(&[0x16, 3, 1, 0, 5, b'\r', b'\n']), Some(None));
    }

    #[tokio::test]
    async fn tls_hello_read_in_pieces() {
        let hello = client_hello_bytes(Some("api.example.com"), &["h2"]);
        let (mut client, mut server) = tokio::io::duplex(64);
        let sent = hello.clone();
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            for chunk in sent.chunks(7) {
                let _ = client.write_all(chunk).await;
            }
            // Keep the connection open: the inspector must not wait for more.
            tokio::time::sleep(Duration::from_secs(5)).await;
        });
        let filters = [ListenerFilter::TlsInspector, ListenerFilter::HttpInspector];
        let mut buf = Vec::new();
        let got = run(&mut server, &filters, Some(Duration::from_secs(5)), &mut buf, None).await;
        let want = Detected {
            transport_protocol: "tls",
            server_name: Some("api.example.com".into()),
            application_protocols: vec!["h2".into()],
        };
        assert_eq!(got, Outcome::Done(want));
        assert_eq!(buf, hello, "everything read is kept for replay");
    }

    #[tokio::test(start_paused = true)]
    async fn times_out_with_what_it_found() {
        let (mut client, mut server) = tokio::io::duplex(64);
        use tokio::io::AsyncWriteExt;
        let _ = client.write_all(&[22, 3]).await;
        let mut buf = Vec::new();
        let got =
            run(&mut server, &[ListenerFilter::TlsInspector], Some(Duration::from_secs(15)), &mut buf, None).await;
        assert_eq!(got, Outcome::TimedOut(Detected::default()));
        drop(client);
        let (client, mut server) = tokio::io::duplex(64);
        drop(client);
        let got = run(&mut server, &[ListenerFilter::HttpInspector], None, &mut Vec::new(), None).await;
        assert_eq!(got, Outcome::RemoteClose);
    }

    #[tokio::test]
    async fn plaintext_http_is_found_at_its_first_line() {
        let (mut client, mut server) = tokio::io::duplex(64);
        use tokio::io::AsyncWriteExt;
        let _ = client.write_all(b"GET / HTTP/1.1\r\nho").await;
        let filters = [ListenerFilter::TlsInspector, ListenerFilter::HttpInspector];
        let got = run(&mut server, &filters, None, &mut Vec::new(), None).await;
        let want = Detected { application_protocols: vec!["http/1.1".into()], ..Detected::default() };
        assert_eq!(got, Outcome::Done(want));
    }
}
