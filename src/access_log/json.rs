//! Envoy's `json_format`: one JSON object per line, keys sorted by name as Envoy prints them
//! (its config holds them in a protobuf `Struct`, a map, so the configured order is gone).
//!
//! Values are typed as in Envoy's v3 `json_format`: a value that is exactly one numeric operator
//! (`%RESPONSE_CODE%`, `%BYTES_SENT%`, `%DURATION%`, ...) is a JSON number, a value that is
//! exactly one operator with nothing to show is `null`, and anything else (several operators,
//! literals around one) is a string in which a missing value reads `-`.

use super::context::LogContext;
use super::format::Format;
use super::operator::Value;

/// A compiled `json_format`.
#[derive(Debug, Clone)]
pub struct JsonFormat {
    fields: Vec<(String, Format)>,
}

impl JsonFormat {
    /// Compiles each value; an error names the key whose format is bad.
    pub fn parse(fields: &[(String, String)]) -> Result<Self, String> {
        let mut fields: Vec<(String, Format)> = fields
            .iter()
            .map(|(key, spec)| {
                Format::parse(spec).map(|format| (key.clone(), format)).map_err(|err| format!("{key}: {err}"))
            })
            .collect::<Result<_, _>>()?;
        fields.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(JsonFormat { fields })
    }

    /// Adds the response headers the format reads to `names`.
    pub(crate) fn response_headers(&self, names: &mut Vec<http::HeaderName>) {
        for (_, format) in &self.fields {
            format.response_headers(names);
        }
    }

    /// Appends `{"key":value,...}\n` to `out`.
    pub fn render(&self, ctx: &LogContext<'_>, out: &mut String) {
        let mut scratch = String::new();
        out.push('{');
        for (i, (key, format)) in self.fields.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            push_json_string(key, out);
            out.push(':');
            scratch.clear();
            match format.single_operator() {
                Some(operator) => match operator.eval(ctx) {
                    Value::Missing => out.push_str("null"),
                    number @ Value::Number(_) => number.write_text(out),
                    value => {
                        value.write_text(&mut scratch);
                        push_json_string(&scratch, out);
                    }
                },
                None => {
                    format.render(ctx, &mut scratch);
                    push_json_string(&scratch, out);
                }
            }
        }
        out.push_str("}\n");
    }
}

/// Appends `text` as a quoted JSON string.
fn push_json_string(text: &str, out: &mut String) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = std::fmt::Write::write_fmt(out, format_args!("\\u{:04x}", u32::from(c)));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}
