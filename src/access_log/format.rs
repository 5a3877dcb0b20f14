//! Envoy text access-log formats: parsed once at config time into literal pieces and operators.
//!
//! The grammar is Envoy's: `%NAME%`, `%NAME(ARG)%`, `%NAME(ARG):N%` with `NAME` made of
//! `A-Z`, `0-9` and `_`, `ARG` free of `)`, and `%%` for a literal `%`. Anything else after a
//! `%` is an error naming the operator, so a bad format fails config validation instead of
//! logging garbage. Like Envoy, a text format is printed exactly as written: no newline is
//! added (Envoy's default format ends with one; a custom one must carry its own, or the caller
//! asks for [`Format::with_trailing_newline`]).

#[cfg(test)]
mod tests;

use super::context::LogContext;
use super::operator::Operator;

/// Envoy's access-log format when none is configured.
pub const DEFAULT_FORMAT: &str = "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" \
%RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% \
\"%REQ(X-FORWARDED-FOR)%\" \"%REQ(USER-AGENT)%\" \"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\"\n";

/// A compiled text format.
#[derive(Debug, Clone)]
pub struct Format {
    pieces: Vec<Piece>,
}

#[derive(Debug, Clone)]
enum Piece {
    Literal(String),
    Operator(Operator),
}

impl Format {
    /// Compiles `spec`; the error names the offending operator (the caller adds the field path).
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut rest = spec;
        while let Some(at) = rest.find('%') {
            literal.push_str(&rest[..at]);
            let command = &rest[at..];
            if let Some(after) = command.strip_prefix("%%") {
                literal.push('%');
                rest = after;
                continue;
            }
            let (operator, used) = parse_command(command)?;
            if !literal.is_empty() {
                pieces.push(Piece::Literal(std::mem::take(&mut literal)));
            }
            pieces.push(Piece::Operator(operator));
            rest = &command[used..];
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            pieces.push(Piece::Literal(literal));
        }
        Ok(Format { pieces })
    }

    /// Envoy's default line ([`DEFAULT_FORMAT`]).
    pub fn envoy_default() -> Self {
        Self::parse(DEFAULT_FORMAT).expect("the default access-log format is valid")
    }

    /// Appends a `\n` literal unless the format already ends with one.
    pub fn with_trailing_newline(mut self) -> Self {
        match self.pieces.last_mut() {
            Some(Piece::Literal(text)) if text.ends_with('\n') => {}
            Some(Piece::Literal(text)) => text.push('\n'),
            _ => self.pieces.push(Piece::Literal("\n".to_string())),
        }
        self
    }

    /// Appends the rendered line to `out`, exactly as the format reads (missing values are `-`).
    pub fn render(&self, ctx: &LogContext<'_>, out: &mut String) {
        for piece in &self.pieces {
            match piece {
                Piece::Literal(text) => out.push_str(text),
                Piece::Operator(operator) => operator.eval(ctx).write_text(out),
            }
        }
    }

    /// Appends the value as a header formatter renders it: a missing value is empty, not `-`
    /// (Envoy's header values omit empty operators).
    pub fn render_header(&self, ctx: &LogContext<'_>, out: &mut String) {
        for piece in &self.pieces {
            match piece {
                Piece::Literal(text) => out.push_str(text),
                Piece::Operator(operator) => match operator.eval(ctx) {
                    super::operator::Value::Missing => {}
                    value => value.write_text(out),
                },
            }
        }
    }

    /// The text when the format has no operator (`%%` already unescaped).
    pub fn literal(&self) -> Option<&str> {
        match self.pieces.as_slice() {
            [] => Some(""),
            [Piece::Literal(text)] => Some(text),
            _ => None,
        }
    }

    /// Adds the response headers the format reads to `names`.
    pub(crate) fn response_headers(&self, names: &mut Vec<http::HeaderName>) {
        for piece in &self.pieces {
            if let Piece::Operator(operator) = piece {
                operator.response_headers(names);
            }
        }
    }

    /// The operator when the whole format is exactly one operator (typed JSON values).
    pub(crate) fn single_operator(&self) -> Option<&Operator> {
        match self.pieces.as_slice() {
            [Piece::Operator(operator)] => Some(operator),
            _ => None,
        }
    }
}

/// Parses one `%NAME(ARG):N%` at the start of `command`; returns it and the bytes it used.
fn parse_command(command: &str) -> Result<(Operator, usize), String> {
    let shown = |end: usize| {
        let end = (0..=end.min(command.len())).rev().find(|i| command.is_char_boundary(*i)).unwrap_or(0);
        format!("\"{}\"", &command[..end])
    };
    let body = &command[1..];
    let name_len =
        body.find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')).unwrap_or(body.len());
    if name_len == 0 {
        return Err(format!("malformed command operator {}: expected an operator name after '%'", shown(12)));
    }
    let name = &body[..name_len];
    let mut pos = 1 + name_len;
    let mut arg = None;
    if command[pos..].starts_with('(') {
        let Some(close) = command[pos..].find(')') else {
            return Err(format!("malformed command operator {}: missing ')'", shown(pos + 12)));
        };
        arg = Some(&command[pos + 1..pos + close]);
        pos += close + 1;
    }
    let mut max_len = None;
    if command[pos..].starts_with(':') {
        let digits = command[pos + 1..].find(|c: char| !c.is_ascii_digit()).unwrap_or(command.len() - pos - 1);
        let parsed = command[pos + 1..pos + 1 + digits].parse::<usize>();
        let Ok(len) = parsed else {
            return Err(format!("malformed command operator {}: bad max length", shown(pos + 1 + digits)));
        };
        max_len = Some(len);
        pos += 1 + digits;
    }
    if !command[pos..].starts_with('%') {
        return Err(format!("malformed command operator {}: missing closing '%'", shown(pos)));
    }
    let operator = Operator::build(name, arg, max_len).map_err(|err| format!("{err} in {}", shown(pos + 1)))?;
    Ok((operator, pos + 1))
}
