//! The scanner fed whole and split at every byte: what it flags, what it lets through, where it stops.

use super::*;

const LIMIT: usize = 8192;

/// Feeds `input` in pieces of `step` bytes; every report.
fn scan(input: &[u8], step: usize) -> (Vec<Flagged>, HeadScan) {
    let mut s = HeadScan::new(LIMIT, false);
    let mut input = input.to_vec();
    let found = input.chunks_mut(step).filter_map(|c| s.feed(c)).collect();
    (found, s)
}

fn feed(s: &mut HeadScan, bytes: &[u8]) -> Option<Flagged> {
    s.feed(&mut bytes.to_vec())
}

fn flagged(request: u64, flaw: HeadFlaw) -> Flagged {
    Flagged { request, flaw, target: None }
}

fn every_split(input: &[u8]) -> Vec<Flagged> {
    let (first, _) = scan(input, input.len());
    for step in 1..input.len() {
        assert_eq!(scan(input, step).0, first, "split every {step} bytes");
    }
    first
}

#[test]
fn both_framing_headers_are_flagged_in_either_order() {
    for head in [
        &b"POST /a HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"[..],
        b"POST /a HTTP/1.1\r\nhost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
    ] {
        let want = vec![flagged(0, HeadFlaw::ContentLengthAndChunked)];
        assert_eq!(every_split(head), want);
    }
}

#[test]
fn fragments_are_flagged() {
    for head in [&b"GET /a#frag HTTP/1.1\r\nhost: x\r\n\r\n"[..], b"GET /a?# HTTP/1.1\r\nhost: x\r\n\r\n"] {
        let target = std::str::from_utf8(&head[4..head.iter().position(|&b| b == b'H').unwrap_or(5) - 1]).ok();
        let want = Flagged { target: target.map(Into::into), ..flagged(0, HeadFlaw::Fragment) };
        assert_eq!(every_split(head), vec![want]);
    }
    // A `#` in a header value is no fragment.
    assert!(every_split(b"GET /a HTTP/1.1\r\nhost: x\r\nx-a: b#c\r\n\r\n").is_empty());
}

#[test]
fn framing_headers_envoy_refuses_are_flagged() {
    let cases: [(&[u8], HeadFlaw); 10] = [
        (b"GET / HTTP/1.1\r\ncontent-length: 0\r\nContent-Length: 0\r\n\r\n", HeadFlaw::RepeatedContentLength),
        (b"POST / HTTP/1.1\r\ntransfer-encoding: identity\r\n\r\nhello", HeadFlaw::TransferCoding),
        (b"POST / HTTP/1.1\r\ntransfer-encoding: gzip, chunked\r\n\r\n", HeadFlaw::TransferCoding),
        (
            b"POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\ntransfer-encoding: chunked\r\n\r\n",
            HeadFlaw::TransferCoding,
        ),
        (b"POST / HTTP/1.1\r\ntransfer-encoding: chunked;q=1\r\n\r\n", HeadFlaw::TransferCoding),
        // The framing headers come before the version, and CL+TE before the coding.
        (b"POST / HTTP/1.0\r\ntransfer-encoding: xchunked\r\n\r\n", HeadFlaw::TransferCoding),
        (b"POST / HTTP/9.9\r\ncontent-length: 1\r\ntransfer-encoding: gzip\r\n\r\n", HeadFlaw::ContentLengthAndChunked),
        (b"GET /#f HTTP/1.0\r\nhost: x\r\n\r\n", HeadFlaw::Version),
        // Any length beside a transfer-encoding, even one hyper would refuse alone.
        (
            b"POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n",
            HeadFlaw::ContentLengthAndChunked,
        ),
        (
            b"POST / HTTP/1.1\r\ncontent-length: abc\r\ntransfer-encoding: chunked\r\n\r\n",
            HeadFlaw::ContentLengthAndChunked,
        ),
    ];
    for (head, flaw) in cases {
        assert_eq!(every_split(head), vec![flagged(0, flaw)], "{}", String::from_utf8_lossy(head));
    }
    assert!(every_split(b"POST / HTTP/1.1\r\ntransfer-encoding: Chunked\r\n\r\n0\r\n\r\n").is_empty());
}

#[test]
fn versions_envoy_answers_426_are_flagged_unless_the_head_is_malformed() {
    for head in [
        &b"GET / HTTP/1.0\r\nhost: x\r\n\r\n"[..],
        b"GET / HTTP/9.9\r\nhost: x\r\n\r\n",
        b"GET / HTTP/2.0\r\nhost: x\r\n\r\n",
        b"GET /\r\n",
    ] {
        assert_eq!(every_split(head), vec![flagged(0, HeadFlaw::Version)], "{}", String::from_utf8_lossy(head));
    }
    let mut s = HeadScan::new(LIMIT, true);
    assert_eq!(feed(&mut s, b"GET / HTTP/1.0\r\nhost: x\r\n\r\n"), None);
    // A byte hyper refuses, or a malformed version, is hyper's 400, as it is Envoy's.
    for head in [
        &b"GET / HTTP/1.0\r\nho st: x\r\n\r\n"[..],
        b"GET / HTTP/9.9\r\nhost: x\r\nx: a\x01b\r\n\r\n",
        b"GET / HTTP/1\r\nhost: x\r\n\r\n",
        b"GET / HTTP/1.01\r\nhost: x\r\n\r\n",
        b"POST / HTTP/1.1\r\nx-\x7f: 1\r\ntransfer-encoding: gzip\r\n\r\n",
    ] {
        assert!(every_split(head).is_empty(), "{}", String::from_utf8_lossy(head));
    }
}

#[test]
fn a_refused_version_reaches_hyper_as_http_11_and_is_never_served() {
    let mut s = HeadScan::new(LIMIT, false);
    let mut head = b"GET / HTTP/9.9\r\nhost: x\r\n\r\n".to_vec();
    assert_eq!(s.feed(&mut head), Some(flagged(0, HeadFlaw::Version)));
    assert_eq!(head, b"GET / HTTP/1.1\r\nhost: x\r\n\r\n");
    // What the scanner gives up on, hyper might take: the head is still refused.
    let mut s = HeadScan::new(LIMIT, false);
    assert_eq!(feed(&mut s, b"GET / HTTP/1.0\r\ncontent-length: 1, 1\r\n\r\n"), Some(flagged(0, HeadFlaw::Version)));
    // A head hyper refuses is its 400.
    let mut s = HeadScan::new(LIMIT, false);
    assert_eq!(feed(&mut s, b"GET / HTTP/1.0\r\nhost x\r\n\r\n"), None);
    assert!(s.is_off());
}

#[test]
fn pipelined_requests_are_counted_past_bodies() {
    let input = b"\r\nPOST /1 HTTP/1.1\r\nhost: x\r\ncontent-length: 12\r\n\r\nGET /#x HTTP\
        POST /2 HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n\
        3;name=\"v\";x\r\n#ab\r\n10\r\nGET /#y HTTP/1.1\r\n0\r\nx-t: GET /#z\r\n\r\n\
        GET /3 HTTP/1.1\r\n\r\nGET /4?q#f HTTP/1.1\r\nhost: x\r\n\r\n";
    assert_eq!(every_split(input), vec![Flagged { target: Some("/4?q#f".into()), ..flagged(3, HeadFlaw::Fragment) }]);
}

#[test]
fn valid_requests_pass_and_keep_scanning() {
    let input = b"POST /1 HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n\
        GET /2 HTTP/1.1\r\nhost: x\r\n\r\n";
    let (found, s) = scan(input, input.len());
    assert!(found.is_empty());
    assert_eq!((s.requests, s.state), (2, State::RequestLine));
}

#[test]
fn garbage_and_upgrades_stop_the_scan() {
    for input in [
        &b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\nGET /#a HTTP/1.1\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\n\r\nGET /#a HTTP/1.1\r\n\r\n",
        b"CONNECT x:1 HTTP/1.1\r\nhost: x\r\n\r\nGET /#a HTTP/1.1\r\n\r\n",
        b"POST / HTTP/1.1\r\ncontent-length: 1, 1\r\n\r\nxGET /#a HTTP/1.1\r\n\r\n",
        b"POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nGET /#a HTTP/1.1\r\n\r\n",
        b"POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n1\r\nab\r\nGET /#a HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\n folded\r\n\r\nGET /#a HTTP/1.1\r\n\r\n",
    ] {
        let (found, s) = scan(input, input.len());
        assert!(found.is_empty(), "{}", String::from_utf8_lossy(input));
        assert!(s.is_off(), "{}", String::from_utf8_lossy(input));
    }
}

#[test]
fn heads_over_the_limit_stop_the_scan() {
    let mut s = HeadScan::new(64, false);
    let long = [b'a'; 100];
    assert_eq!(feed(&mut s, b"GET /#a HTTP/1.1\r\nx: "), None);
    assert_eq!(feed(&mut s, &long), None);
    assert_eq!(feed(&mut s, b"\r\n\r\n"), None);
    assert!(s.is_off());
    // The carried line keeps its allocation bounded by the limit.
    assert!(s.line.len() <= 64);
}

#[test]
fn large_bodies_are_skipped_in_bulk() {
    let mut s = HeadScan::new(LIMIT, false);
    assert_eq!(feed(&mut s, b"PUT /1 HTTP/1.1\r\ncontent-length: 1000000\r\n\r\n"), None);
    let body = vec![b'#'; 4096];
    for _ in 0..244 {
        assert_eq!(feed(&mut s, &body), None);
    }
    assert_eq!(s.state, State::Body(1_000_000 - 244 * 4096));
    assert_eq!(feed(&mut s, &vec![b'\n'; 576]), None);
    assert_eq!(
        feed(&mut s, b"GET /#a HTTP/1.1\r\n\r\n"),
        Some(Flagged { target: Some("/#a".into()), ..flagged(1, HeadFlaw::Fragment) })
    );
}
