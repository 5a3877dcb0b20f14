//! A TLS ClientHello reader for the TLS inspector: from the first bytes of a connection, is it
//! TLS, and which server name (SNI) and application protocols (ALPN) does it ask for.
//!
//! [`parse`] is a pure function of the bytes read so far, so that it can be fuzzed and called
//! again as more bytes arrive. Handshake messages split over several records are reassembled.

/// What the bytes read so far say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hello {
    /// Not enough bytes to tell.
    Incomplete,
    /// Not a TLS handshake (or not a readable ClientHello: Envoy then treats the connection as
    /// not TLS).
    NotTls,
    /// A ClientHello longer than the inspector reads.
    TooLarge,
    Tls(ClientHello),
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClientHello {
    /// The `host_name` of the SNI extension, lowercased.
    pub server_name: Option<String>,
    /// The ALPN extension's protocols, in the client's order.
    pub alpn: Vec<String>,
}

/// Envoy's default `max_client_hello_size`.
pub const MAX_CLIENT_HELLO: usize = 16 * 1024;

const HANDSHAKE: u8 = 22;
const CLIENT_HELLO: u8 = 1;
const EXT_SERVER_NAME: u16 = 0;
const EXT_ALPN: u16 = 16;

/// Reads a ClientHello from the start of a connection.
pub fn parse(buf: &[u8]) -> Hello {
    // Record layer: type, version (3.x), length. Handshake bytes are gathered across records.
    let mut handshake = Vec::new();
    let mut rest = buf;
    loop {
        if rest.is_empty() {
            return Hello::Incomplete;
        }
        if rest[0] != HANDSHAKE {
            return Hello::NotTls;
        }
        if rest.get(1).is_some_and(|&major| major != 3) || rest.get(2).is_some_and(|&minor| minor > 4) {
            return Hello::NotTls;
        }
        if rest.len() < 5 {
            return Hello::Incomplete;
        }
        let len = usize::from(u16::from_be_bytes([rest[3], rest[4]]));
        if len == 0 {
            return Hello::NotTls;
        }
        let Some(body) = rest.get(5..5 + len) else {
            // What the handshake header says, before the whole record is here.
            let mut head = handshake;
            head.extend_from_slice(&rest[5.min(rest.len())..]);
            return match head.first() {
                Some(&t) if t != CLIENT_HELLO => Hello::NotTls,
                _ if head.len() >= 4 && handshake_len(&head) + 4 > MAX_CLIENT_HELLO => Hello::TooLarge,
                _ => Hello::Incomplete,
            };
        };
        handshake.extend_from_slice(body);
        rest = &rest[5 + len..];
        if handshake[0] != CLIENT_HELLO {
            return Hello::NotTls;
        }
        if handshake.len() < 4 {
            continue;
        }
        let msg_len = handshake_len(&handshake);
        if msg_len + 4 > MAX_CLIENT_HELLO {
            return Hello::TooLarge;
        }
        if handshake.len() >= msg_len + 4 {
            return match client_hello(&handshake[4..4 + msg_len]) {
                Some(h) => Hello::Tls(h),
                None => Hello::NotTls,
            };
        }
    }
}

/// The length a handshake message's 4-byte header gives.
fn handshake_len(h: &[u8]) -> usize {
    (usize::from(h[1]) << 16) | (usize::from(h[2]) << 8) | usize::from(h[3])
}

/// A cursor over a message; every read is bounds-checked.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
    fn vec8(&mut self) -> Option<&'a [u8]> {
        let n = self.u8()?;
        self.take(usize::from(n))
    }
    fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }
}

fn client_hello(body: &[u8]) -> Option<ClientHello> {
    let mut r = Reader(body);
    r.take(2 + 32)?; // client_version, random
    r.vec8()?; // session_id
    r.vec16()?; // cipher_suites
    r.vec8()?; // compression_methods
    let mut out = ClientHello::default();
    if r.0.is_empty() {
        return Some(out);
    }
    let mut exts = Reader(r.vec16()?);
    while !exts.0.is_empty() {
        let kind = exts.u16()?;
        let mut data = Reader(exts.vec16()?);
        match kind {
            EXT_SERVER_NAME => {
                let mut names = Reader(data.vec16()?);
                while !names.0.is_empty() {
                    let name_type = names.u8()?;
                    let name = names.vec16()?;
                    if name_type == 0 && out.server_name.is_none() {
                        out.server_name = Some(String::from_utf8_lossy(name).to_ascii_lowercase());
                    }
                }
            }
            EXT_ALPN => {
                let mut protos = Reader(data.vec16()?);
                while !protos.0.is_empty() {
                    out.alpn.push(String::from_utf8_lossy(protos.vec8()?).into_owned());
                }
            }
            _ => {}
        }
    }
    Some(out)
}

/// A ClientHello as a client sends it, for tests.
#[cfg(test)]
pub fn client_hello_bytes(server_name: Option<&str>, alpn: &[&str]) -> Vec<u8> {
    fn vec16(b: &[u8]) -> Vec<u8> {
        let mut v = (b.len() as u16).to_be_bytes().to_vec();
        v.extend_from_slice(b);
        v
    }
    let mut exts = Vec::new();
    if let Some(n) = server_name {
        let mut entry = vec![0u8];
        entry.extend(vec16(n.as_bytes()));
        exts.extend(EXT_SERVER_NAME.to_be_bytes());
        exts.extend(vec16(&vec16(&entry)));
    }
    if !alpn.is_empty() {
        let mut list = Vec::new();
        for p in alpn {
            list.push(p.len() as u8);
            list.extend_from_slice(p.as_bytes());
        }
        exts.extend(EXT_ALPN.to_be_bytes());
        exts.extend(vec16(&vec16(&list)));
    }
    let mut body = vec![3, 3];
    body.extend([7u8; 32]);
    body.push(0); // session id
    body.extend(vec16(&[0x13, 0x01, 0xc0, 0x2f])); // cipher suites
    body.extend([1, 0]); // compression: null
    body.extend(vec16(&exts));
    let mut hs = vec![CLIENT_HELLO];
    hs.extend(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend(body);
    let mut rec = vec![HANDSHAKE, 3, 1];
    rec.extend(vec16(&hs));
    rec
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_sni_and_alpn() {
        let b = client_hello_bytes(Some("WWW.Example.com"), &["h2", "http/1.1"]);
        let want =
            ClientHello { server_name: Some("www.example.com".into()), alpn: vec!["h2".into(), "http/1.1".into()] };
        assert_eq!(parse(&b), Hello::Tls(want));
        assert_eq!(parse(&client_hello_bytes(None, &[])), Hello::Tls(ClientHello::default()));
    }

    #[test]
    fn every_prefix_is_incomplete() {
        let b = client_hello_bytes(Some("a.example"), &["h2"]);
        for n in 0..b.len() {
            assert_eq!(parse(&b[..n]), Hello::Incomplete, "prefix of {n} bytes");
        }
    }

    #[test]
    fn plain_text_is_not_tls_at_once() {
        assert_eq!(parse(b"GET / HTTP/1.1\r\n"), Hello::NotTls);
        assert_eq!(parse(b"PRI * HTTP/2.0"), Hello::NotTls);
        assert_eq!(parse(&[22, 9]), Hello::NotTls);
        // A handshake record that is not a ClientHello (a ServerHello).
        assert_eq!(parse(&[22, 3, 3, 0, 40, 2]), Hello::NotTls);
    }

    #[test]
    fn reassembles_a_hello_split_over_records() {
        let b = client_hello_bytes(Some("split.example"), &["h2"]);
        let hs = &b[5..];
        let (a, c) = hs.split_at(10);
        let mut two = vec![22, 3, 1, 0, a.len() as u8];
        two.extend_from_slice(a);
        two.extend([22, 3, 1, 0, c.len() as u8]);
        two.extend_from_slice(c);
        let Hello::Tls(h) = parse(&two) else { panic!("not parsed") };
        assert_eq!(h.server_name.as_deref(), Some("split.example"));
    }

    #[test]
    fn bad_lengths_never_panic() {
        let b = client_hello_bytes(Some("x.example"), &["h2"]);
        for i in 5..b.len() {
            for v in [0u8, 1, 0x7f, 0xff] {
                let mut m = b.clone();
                m[i] = v;
                let _ = parse(&m);
            }
        }
        let mut huge = vec![22, 3, 1, 0x40, 0, 1, 0x01, 0, 0];
        huge.resize(100, 0);
        assert_eq!(parse(&huge), Hello::TooLarge);
    }
}
