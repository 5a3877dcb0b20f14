//! Which encoding a response gets: the client's `Accept-Encoding` (q-values, `*`,
//! `identity`, `q=0`) against the compressor filters of the chain that allow the response's
//! content type, the way Envoy's compressor decides it once for every compressor filter of a
//! request.

/// The encoding chosen and which `header_*` stat it counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision<'a> {
    /// `header_not_valid`: nothing acceptable but identity, or nothing parseable.
    NotValid,
    /// `header_identity`: the client prefers no compression.
    Identity,
    /// `header_wildcard`: `*` won; the first registered compressor is used.
    Wildcard(&'a str),
    /// `header_compressor_used` for the compressor with this encoding,
    /// `header_compressor_overshadowed` for the others.
    Compressor(&'a str),
}

/// A compressor filter of the chain as the decision sees it.
pub struct Candidate<'a> {
    pub encoding: &'a str,
    pub choose_first: bool,
    /// Whether its content types allow the response's.
    pub allows: bool,
}

/// The best of `accept_encoding` among `candidates` (in chain order), as Envoy's
/// `chooseEncoding`: a token's q-value defaults to 1, an unparseable one drops the token, `q=0`
/// rules a compressor out even under `*`, the highest q wins and the first of equals unless a
/// later one has `choose_first`.
pub fn choose<'a>(accept_encoding: &str, candidates: &[Candidate<'a>]) -> Decision<'a> {
    // (encoding, registration order, choose_first); duplicates of an encoding are ignored.
    let mut allowed: Vec<(&'a str, bool)> = Vec::with_capacity(candidates.len());
    for c in candidates.iter().filter(|c| c.allows) {
        if !allowed.iter().any(|(e, _)| *e == c.encoding) {
            allowed.push((c.encoding, c.choose_first));
        }
    }
    // Bounded by the header's length: one pass over its tokens.
    let mut pairs: Vec<(&str, f32)> = Vec::new();
    for token in accept_encoding.split(',') {
        if token.trim().is_empty() {
            continue;
        }
        let (name, params) = match token.split_once(';') {
            Some((n, p)) => (n.trim(), Some(p)),
            None => (token.trim(), None),
        };
        let mut q = 1.0f32;
        if let Some(params) = params {
            if let Some((k, v)) = params.split_once('=') {
                if k.trim().eq_ignore_ascii_case("q") {
                    match v.trim().parse::<f32>() {
                        Ok(v) if v.is_finite() => q = v,
                        _ => continue,
                    }
                }
            }
        }
        pairs.push((name, q));
        if q == 0.0 {
            allowed.retain(|(e, _)| *e != name);
        }
    }
    if pairs.is_empty() || allowed.is_empty() {
        return Decision::NotValid;
    }
    let mut choice: (&str, f32) = ("identity", 0.0);
    for &(name, q) in &pairs {
        let known = allowed.iter().find(|(e, _)| *e == name);
        if known.is_some() || name == "identity" || name == "*" {
            let first = known.is_some_and(|(_, f)| *f);
            if q > choice.1 || (q == choice.1 && first) {
                choice = (name, q);
            }
        }
    }
    if choice.1 == 0.0 {
        return Decision::NotValid;
    }
    match choice.0 {
        "identity" => Decision::Identity,
        "*" => Decision::Wildcard(allowed[0].0),
        name => allowed.iter().find(|(e, _)| *e == name).map_or(Decision::NotValid, |(e, _)| Decision::Compressor(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GZIP: Candidate<'static> = Candidate { encoding: "gzip", choose_first: false, allows: true };
    const BR: Candidate<'static> = Candidate { encoding: "br", choose_first: false, allows: true };

    /// Each answer below is what Envoy 1.40 did with one gzip compressor (its stats).
    #[test]
    fn one_gzip_compressor_as_envoy() {
        let c = [GZIP];
        assert_eq!(choose("gzip", &c), Decision::Compressor("gzip"));
        assert_eq!(choose("*", &c), Decision::Wildcard("gzip"));
        assert_eq!(choose("deflate, *;q=0.1", &c), Decision::Wildcard("gzip"));
        assert_eq!(choose("br, *;q=0.5", &c), Decision::Wildcard("gzip"));
        assert_eq!(choose("identity", &c), Decision::Identity);
        assert_eq!(choose("gzip;q=0.5, identity", &c), Decision::Identity);
        for not_valid in ["br", "gzip;q=0", "identity;q=0", "GZIP", "x-gzip", "gzip;q=abc", "*;q=0", "gzip;q=0, *", ""]
        {
            assert_eq!(choose(not_valid, &c), Decision::NotValid, "{not_valid}");
        }
    }

    /// Envoy 1.40 with a gzip then a brotli compressor: the first listed of equal q-values.
    #[test]
    fn several_compressors_by_q_value() {
        let c = [GZIP, BR];
        assert_eq!(choose("gzip, br", &c), Decision::Compressor("gzip"));
        assert_eq!(choose("br, gzip", &c), Decision::Compressor("br"));
        assert_eq!(choose("gzip;q=0.5, br;q=0.8", &c), Decision::Compressor("br"));
        assert_eq!(choose("*", &c), Decision::Wildcard("gzip"));
        assert_eq!(choose("gzip;q=0, *", &c), Decision::Wildcard("br"));
        let first = [GZIP, Candidate { choose_first: true, ..BR }];
        assert_eq!(choose("gzip, br", &first), Decision::Compressor("br"));
        let only_br = [Candidate { allows: false, ..GZIP }, BR];
        assert_eq!(choose("gzip, br;q=0.1", &only_br), Decision::Compressor("br"));
    }
}
