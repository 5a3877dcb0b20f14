#!/usr/bin/env python3
"""Sorts the classes of a difffuzz run (differences.jsonl) into known families of differences,
each triaged: (a) being fixed by the `protocol` branch's items, (b) a legate bug not covered
there, (c) an acceptable difference (why given), (h) the harness's own noise, and prints a
markdown report: the families, then every class with its family.

    python3 benches/difffuzz_triage.py DIR/differences.jsonl DIR/summary.md > report.md

A class no rule claims is listed under `?` (untriaged): add a rule when one shows up.
"""

import json
import sys


def has(labels, *prefixes):
    return any(l.startswith(p) for l in labels for p in prefixes)


def only(labels, *prefixes):
    return all(any(l.startswith(p) for p in prefixes) for l in labels)


VERSION_ODD = ("version='HTTP/1'", "version='HTTP/11'", "version='HTTP/1.01'")
VERSION_OTHER = ("version='HTTP/1.0'", "version='HTTP/0.9'", "version='HTTP/1.2'", "version='HTTP/2.0'",
                 "version='HTTP/9.9'", "version=None", "transfer-encoding='chunked-http10'")

# (id, triage, title, explanation, rule(kind, labels, example) -> bool). First match wins.
FAMILIES = [
    ("crash", "b", "a proxy exited", "A crash: see the example.",
     lambda k, l, ex: k.startswith("crash")),
    ("rechunk", "c", "a chunked body forwarded with Content-Length",
     "When the whole chunked body arrived with the head, legate (which keeps the body for "
     "retries) forwards it with `content-length`; Envoy keeps `transfer-encoding: chunked`. "
     "The same message (RFC 9112 7); timing-dependent.",
     lambda k, l, ex: "header content-length legate-only" in k and "transfer-encoding envoy-only" in k),
    ("flaky", "h", "did not reproduce",
     "The difference did not come back when the same bytes were sent again: timing (an answer "
     "after the 0.4 s idle limit, a request reaching the echo upstream late), not the input. "
     "One is worth knowing: an empty chunked body (`0\\r\\n\\r\\n`) that arrived with the head "
     "is sometimes forwarded by legate with no framing at all (Envoy keeps chunked): the "
     "same message, see post-cl0 and rechunk.",
     lambda k, l, ex: k.startswith("flaky")),
    ("connect", "b", "CONNECT forwarded upstream, client connection closed unanswered",
     "`CONNECT / HTTP/1.1` (no connect_matcher / upgrade config) is sent to the upstream as an "
     "ordinary request and the client's connection is then closed with no answer. Envoy answers "
     "400 and sends nothing upstream. legate must not open a tunnel-looking request upstream.",
     lambda k, l, ex: has(l, "method=CONNECT")),
    ("upgrade", "b", "`Upgrade` without `Connection: upgrade` refused with 403",
     "`Upgrade: websocket` alone (no `Connection: upgrade`) is not an upgrade request (RFC 9110 "
     "7.8: Upgrade is only meaningful when listed in Connection). Envoy ignores it, strips the "
     "hop-by-hop Upgrade header and proxies (200); legate answers 403 as for a refused upgrade.",
     lambda k, l, ex: has(l, "hop=upgrade-no-conn", "hop=upgrade-ws") and "403" in k),
    ("te-codings", "b", "transfer-codings other than a single `chunked`",
     "Envoy answers 501 to any Transfer-Encoding but exactly `chunked` (`gzip, chunked`, "
     "`chunked, chunked`, two TE lines, `identity`, `xchunked`, empty, `chunked;q=1`). legate "
     "forwards `gzip, chunked` as plain `chunked`, dropping `gzip` so the upstream takes a "
     "compressed body for identity (a correctness bug), accepts repeated `chunked`, and answers "
     "400 instead of 501 to the others. Nearest `protocol` item: request framing; not listed.",
     lambda k, l, ex: "501" in k),
    ("cl-te", "a", "Content-Length and Transfer-Encoding together",
     "Envoy answers 400 to CL+TE (either order, or TE with an invalid CL); legate proxies. "
     "`protocol` item: CL+TE.",
     lambda k, l, ex: has(l, "transfer-encoding='te-and", "duplicate=cl-differ")
     and has(l, "transfer-encoding", "chunked=", "duplicate=te-twice")),
    ("chunked", "a", "malformed chunked bodies",
     "Bad chunk sizes (`zz`, `-1`, `0x5`, `+5`, size larger than the data), bare-LF chunk "
     "lines, data not followed by CRLF, an invalid trailer line: Envoy answers 400 before "
     "anything reaches the upstream; legate forwards the head, then answers 503 (or 200 when "
     "the upstream answered first). `protocol` item: chunked errors.",
     lambda k, l, ex: has(l, "chunked=size-", "chunked=lf-only", "chunked=data-no-crlf", "chunked=trailer-bad",
                      "chunked=no-final-crlf") and ("400" in k or "503" in k)),
    ("fragment", "a", "fragment in the request target",
     "`/a#frag`, `/a?#`, `#f`: Envoy answers 400; legate proxies. `protocol` item: fragments.",
     lambda k, l, ex: any("#" in x for x in l if x.startswith("target="))),
    ("absolute", "a", "absolute-form and authority-form targets",
     "`http://other.host:8080/abs` (Envoy forwards Host `other.host:8080` from the target, "
     "legate keeps the Host header), `HTTP://EXAMPLE.COM/`, `ftp://...`, `example.com:80` "
     "(Envoy 400 to a non-http scheme and to authority-form outside CONNECT; legate proxies). "
     "`protocol` item: absolute-form URIs.",
     lambda k, l, ex: has(l, "target='http", "target='HTTP", "target='ftp", "target='example.com:80")),
    ("header-size", "a", "header section over 60 KiB",
     "A 61 KiB header value: Envoy 431 (max_request_headers_kb 60); legate proxies. `protocol` "
     "item: 400/431 replies.",
     lambda k, l, ex: has(l, "size=value-61k") and "major" in k),
    ("version", "b", "malformed HTTP version answered 426",
     "`HTTP/1`, `HTTP/11`, `HTTP/1.01` and request lines a flipped byte makes unparseable: "
     "Envoy answers 400, legate 426 Upgrade Required (it takes them for an old version). "
     "Combined with another error, legate's version check also runs first (426 where Envoy "
     "reports the other error with 400). Both refuse; only the code differs. Not in "
     "`protocol`'s list unless its 400 replies item covers it.",
     lambda k, l, ex: ("426" in k and "envoy [400" in k) or ("426" in k and "envoy [431" in k)
     or ("426" in k and "envoy [501" in k) or ("legate [400] envoy [426]" in k)),
    ("limits-order", "c", "two errors at once: which one is reported",
     "Over 100 headers (or 60 KiB) plus another malformation: legate reports 431, Envoy the "
     "other error with 400 (or the reverse). Both refuse the request.",
     lambda k, l, ex: has(l, "size=") and ("431" in k) and "major" not in k),
    ("dup-cl", "b", "duplicate identical Content-Length",
     "`Content-Length: 0` twice (same value): Envoy 400, legate proxies. RFC 9112 6.3 allows "
     "either, but Envoy's choice is the safer one against smuggling and the oracle's. Not in "
     "`protocol`'s list unless its framing item covers it.",
     lambda k, l, ex: has(l, "duplicate=cl-same")),
    ("host-chars", "b", "Host values Envoy refuses",
     "`Host: a.com, b.com`, `Host: exa mple.com`, `Host: e{ample.com`, `Host: |xample.com`: "
     "Envoy 400 (not a valid authority); legate proxies them unchanged.",
     lambda k, l, ex: (has(l, "host=comma", "host=space") and "envoy [400]" in k)
     or (has(l, "byteflip=header-value") and "\r\nHost: " in ex and "legate [200] envoy [400]" in k)),
    ("dup-host", "c", "two Host headers",
     "Envoy joins them (`example.com,other.example`) and proxies; legate proxies the first. "
     "RFC 9112 3.2 requires 400: both are wrong, Envoy's joined value is the worse (an "
     "authority with a comma); left as is.",
     lambda k, l, ex: has(l, "duplicate=host-") and "host value" in k),
    ("method", "c", "`M-SEARCH` refused by Envoy",
     "Envoy's parser refuses the (SSDP) method `M-SEARCH` with 400; legate proxies it as it "
     "does any token method (`FOO` is proxied by both). An Envoy parser limit.",
     lambda k, l, ex: has(l, "method=M-SEARCH")),
    ("obs-fold", "c", "obs-fold and a header line starting with whitespace",
     "Envoy unfolds (`X-Fold: a\\r\\n b` becomes `a b`); legate answers 400. RFC 9112 5.2 "
     "allows either (reject with 400, or replace with SP); obs-fold is deprecated and a "
     "smuggling vector.",
     lambda k, l, ex: has(l, "obs-fold", "header-name-char=' '@start")),
    ("rl-space", "c", "extra whitespace in the request line",
     "Double spaces, tabs, a trailing space after the version: Envoy is lenient (200), legate "
     "400. RFC 9112 3 lets a server reject them; lenient whitespace parsing is a known "
     "smuggling source.",
     lambda k, l, ex: has(l, "request-line=double", "request-line=tab", "request-line=trailing-space",
                      "version='HTTP/1.1 '")),
    ("target-chars", "c", "characters RFC 3986 does not allow in the target",
     "`\"`, `{`, `}`, `|`, `\\\\`, `^`, `` ` ``: Envoy proxies them raw, legate answers 400 "
     "(hyper's parser). Clients percent-encode these; acceptable.",
     lambda k, l, ex: has(l, "target='/a?x=\"q\"'", "target='/{}") or (has(l, "byteflip=request-line") and "legate [400] envoy [200]" in k)),
    ("bare-cr", "c", "CR inside a header value",
     "`X-Val: a\\rb`: Envoy proxies (dropping or keeping the CR), legate 400. RFC 9110 5.5 "
     "requires rejecting or replacing CR/LF/NUL; legate's 400 is the safe reading, Envoy's is "
     "a flaw.",
     lambda k, l, ex: has(l, "header-value-char='\\r'")
     or (has(l, "byteflip=header-name", "byteflip=header-value", "bare-lf=bare-cr") and "legate [400] envoy [200" in k)),
    ("target-form", "b", "targets neither origin-form nor absolute-form",
     "`GET * HTTP/1.1`, `GET $ HTTP/1.1`, `GET a/b HTTP/1.1`: Envoy 400; legate routes them "
     "(404 for `*`, which no prefix matches; 200 for `$` and `a/b`, which the `/` prefix "
     "route does not match in Envoy's eyes either: the path must start with `/`). Nearest "
     "`protocol` item: absolute-form URIs; not listed.",
     lambda k, l, ex: "target='*'" in l or "target='a/b'" in l
     or (has(l, "byteflip=request-line") and ("legate [404] envoy [400]" in k or "legate [200] envoy [400]" in k))),
    ("post-cl0", "b", "a body-less POST/PUT/PATCH/OPTIONS loses `content-length: 0`",
     "Envoy sends `content-length: 0` upstream for a request with a body-allowing method and "
     "no body; legate sends neither Content-Length nor Transfer-Encoding. Upstreams that insist "
     "on a length for POST (411 Length Required) differ.",
     lambda k, l, ex: "header content-length envoy-only" in k or
     ("transfer-encoding envoy-only" in k and "content-length" not in k)),
    ("expect", "b", "`Expect` other than 100-continue dropped",
     "`Expect: foo`: Envoy forwards it, legate drops it (it treats every Expect as its own). "
     "Minor; RFC 9110 10.1.1 lets a proxy answer 417 or forward.",
     lambda k, l, ex: "header expect envoy-only" in k),
    ("x-envoy", "b", "client x-envoy-* headers stripped beyond Envoy's list",
     "With `use_remote_address: false` and no internal XFF, legate removes every `x-envoy-*` "
     "request header (`x-envoy-original-path`, `x-envoy-decorator-operation`, ...). Envoy "
     "(ConnectionManagerUtility::cleanInternalHeaders) removes only its named list (retry, "
     "timeout, alt-stat-name, force-trace, ip-tags, original-url, hedge headers; the "
     "decorator/downstream-service ones only on edge requests) and forwards the rest. "
     "src/proxy/headers.rs mutate_forwarding.",
     lambda k, l, ex: "x-envoy" in k and "envoy-only" in k),
    ("connection-lines", "b", "tokens of a second `Connection` line forwarded (fixed here)",
     "Only the first Connection line's tokens were stripped, and none of a line holding a "
     "non-ASCII byte: `Connection: keep-alive` + `Connection: x-secret` forwarded x-secret. "
     "Fixed on this branch (commits 04ca65f, 69ac296; unit test "
     "tokens_of_every_connection_line_go); seen in the run before the fix.",
     lambda k, l, ex: "legate-only" in k and "x-secret" in k),
    ("h2c-settings", "b", "`HTTP2-Settings` of an h2c upgrade request forwarded",
     "`Connection: Upgrade, <anything>` + `Upgrade: h2c` + `HTTP2-Settings: ...`: Envoy takes "
     "it for an h2c upgrade and removes HTTP2-Settings even when Connection does not name it "
     "(here its token has a stray byte); legate forwards it. Minor.",
     lambda k, l, ex: "http2-settings legate-only" in k),
    ("te-header", "b", "the `TE` request header",
     "Envoy forwards `te: trailers` whenever a TE line or list holds the `trailers` token "
     "(`TE: gzip` + `TE: trailers` -> `te: trailers`; two `TE: trailers` lines -> one); "
     "legate keeps TE only when its first line is exactly `trailers` (and then every line). "
     "Minor: only gRPC-style `te: trailers` matters upstream.",
     lambda k, l, ex: "header te " in k),
    ("garbage", "c", "bytes after a body-less request",
     "A flipped byte in `Transfer-Encoding` leaves a POST without framing, so its chunked "
     "body is a second, malformed request: legate answers it 400, Envoy closes the connection "
     "without an answer. Both refuse it.",
     lambda k, l, ex: has(l, "byteflip=header-name") and "legate [200, 400] envoy [200]" in k),
    ("pipeline", "c", "a pipelined request meeting one of the families above",
     "The second request of a pipeline hits a family above (a malformed version: legate 426, "
     "Envoy 400; an invalid Host; garbage) or the first is refused and the second never read: "
     "see each example.",
     lambda k, l, ex: has(l, "pipeline=")),
]


def family(c):
    for fid, tri, title, why, rule in FAMILIES:
        try:
            if rule(c["kind"], c["labels"], c["example"]):
                return fid
        except (KeyError, TypeError):
            continue
    return "?"


def main():
    classes = [json.loads(l) for l in open(sys.argv[1])]
    head = open(sys.argv[2]).read().splitlines()[2] if len(sys.argv) > 2 else ""
    by = {}
    for c in classes:
        c["family"] = family(c)
        by.setdefault(c["family"], []).append(c)
    out = ["# difffuzz: legate vs Envoy 1.40, HTTP/1 requests", "", head, "",
           "Triage: (a) being fixed by the `protocol` branch's items; (b) a legate bug not "
           "covered there; (c) acceptable, with the reason; (h) the harness's own noise.", "",
           "## Families", "",
           "| family | triage | what | classes | cases | smallest example |",
           "|--------|--------|------|---------|---------|------------------|"]
    order = [f[0] for f in FAMILIES] + ["?"]
    meta = {f[0]: f for f in FAMILIES}
    for fid in order:
        cs = by.get(fid)
        if not cs:
            continue
        tri = meta[fid][1] if fid in meta else "?"
        title = meta[fid][2] if fid in meta else "untriaged"
        ex = min(cs, key=lambda c: (len(c["labels"]), len(c["example"])))["example"][:140]
        ex = ex.encode("unicode_escape").decode().replace("|", "\\|").replace("`", "'")
        out.append(f"| {fid} | ({tri}) | {title} | {len(cs)} | {sum(c['count'] for c in cs)} | `{ex}` |")
    out += ["", "## What each family is", ""]
    for fid in order:
        if fid in by and fid in meta:
            _, tri, title, why, _ = meta[fid]
            out.append(f"- **{fid}** ({tri}) {title}. {why}")
    if "?" in by:
        out.append("- **?** untriaged: no rule claims these yet.")
    out += ["", "## Every class", "",
            "Reproduce one with `python3 benches/difffuzz.py --replay '<case>'`.", "",
            "| family | kind | minimal mutations | cases | case |",
            "|--------|------|-------------------|-------|------|"]
    for c in sorted(classes, key=lambda c: (order.index(c["family"]), c["kind"], c["labels"])):
        kind = c["kind"].replace("|", "\\|")
        labels = ", ".join(c["labels"]).replace("|", "\\|").replace("`", "'")
        out.append(f"| {c['family']} | {kind} | {labels} | {c['count']} | `{json.dumps(c['case'])}` |")
    print("\n".join(out))


if __name__ == "__main__":
    main()
