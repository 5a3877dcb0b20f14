//! Text to `serde_yaml::Value`: YAML or JSON chosen by file extension (like Envoy: `.yaml` and
//! `.yml` are YAML, anything else JSON), with syntax errors reported with line and column.

use std::path::Path;

use serde_yaml::Value;

use super::error::ConfigError;

/// The format Envoy would pick for this file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Yaml,
    Json,
}

pub(crate) fn format_for(path: &Path) -> Format {
    match path.extension().and_then(|e| e.to_str()) {
        Some(e) if e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml") => Format::Yaml,
        _ => Format::Json,
    }
}

fn whole_file(file: &Path, message: String) -> ConfigError {
    ConfigError { file: file.to_path_buf(), path: String::new(), message }
}

/// Parses a file's bytes; an empty document reads as an empty mapping.
pub(crate) fn parse_value(file: &Path, bytes: &[u8], format: Format) -> Result<Value, ConfigError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| whole_file(file, format!("file is not valid UTF-8 (at byte {})", e.valid_up_to())))?;
    let value = match format {
        Format::Yaml => parse_yaml(file, text)?,
        Format::Json => serde_json::from_str::<Value>(text).map_err(|e| {
            let at = format!(" at line {} column {}", e.line(), e.column());
            whole_file(file, format!("JSON syntax error{at}: {}", e.to_string().replacen(&at, "", 1)))
        })?,
    };
    Ok(match value {
        Value::Null => Value::Mapping(Default::default()),
        v => v,
    })
}

/// Parses YAML text (also `--config-yaml`), resolving `<<` merge keys.
pub(crate) fn parse_yaml(file: &Path, text: &str) -> Result<Value, ConfigError> {
    let mut value: Value = serde_yaml::from_str(text).map_err(|e| {
        let msg = match e.location() {
            // The parser's text names the place too: once is enough.
            Some(loc) => {
                let at = format!(" at line {} column {}", loc.line(), loc.column());
                format!("YAML syntax error{at}: {}", e.to_string().replacen(&at, "", 1))
            }
            None => format!("YAML syntax error: {e}"),
        };
        whole_file(file, msg)
    })?;
    value.apply_merge().map_err(|e| whole_file(file, format!("YAML merge key error: {e}")))?;
    Ok(value)
}

/// Reads a file, reporting an unreadable one as a whole-file error.
pub(crate) fn read_file(file: &Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(file).map_err(|e| whole_file(file, format!("cannot read file: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_by_extension() {
        assert_eq!(format_for(Path::new("a.yaml")), Format::Yaml);
        assert_eq!(format_for(Path::new("a.YML")), Format::Yaml);
        assert_eq!(format_for(Path::new("a.json")), Format::Json);
        assert_eq!(format_for(Path::new("a")), Format::Json);
    }

    #[test]
    fn yaml_syntax_error_has_line_and_column() {
        let err = parse_value(Path::new("x.yaml"), b"a: 1\nb: [ {{{ x: : y\n", Format::Yaml).err();
        let Some(err) = err else { panic!("bad YAML accepted") };
        assert!(err.message.contains("line 2 column"), "{}", err.message);
        assert!(err.path.is_empty());
    }

    #[test]
    fn json_syntax_error_has_line_and_column() {
        let Some(err) = parse_value(Path::new("x.json"), b"{\n \"a\": }", Format::Json).err() else {
            panic!("bad JSON accepted")
        };
        assert!(err.message.contains("line 2 column"), "{}", err.message);
    }
}
