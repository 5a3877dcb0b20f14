//! `POST /logging`: Envoy's named loggers, mapped onto legate's tracing targets, with levels
//! changed live.
//!
//! Each Envoy logger name stands for one or more module paths (`upstream` is
//! `legate::upstream`, `config` is `legate::config`, `legate::discovery` and
//! `legate::reload`, `main` is `legate` itself, so every module without a logger of its own).
//! The levels become one `EnvFilter` directive string ([`Loggers::filter`]); the binary builds
//! its subscriber behind a `tracing_subscriber::reload` layer and hands [`Loggers`] a closure
//! that swaps the filter ([`ApplyFilter`]). Run in-process without one, levels are recorded
//! but change nothing. Other crates log at `warn` (`off` when started with `-l off`).
//!
//! The query forms, answers and error texts are Envoy's: no parameter lists the loggers,
//! `?level=L` sets all, `?paths=a:L,b:L` sets some, `?NAME=L` sets one; a request with an
//! unknown name or level changes nothing and answers 400.

use std::sync::Mutex;

use http::StatusCode;

/// Replaces the process's tracing filter with these `EnvFilter` directives.
pub type ApplyFilter = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

/// Envoy's log levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    StreamInfo,
    Debug,
    Info,
    Warning,
    Error,
    Critical,
    Off,
}

impl Level {
    const ALL: [Level; 7] =
        [Level::StreamInfo, Level::Debug, Level::Info, Level::Warning, Level::Error, Level::Critical, Level::Off];

    /// Envoy's name for the level.
    pub fn name(self) -> &'static str {
        match self {
            Level::StreamInfo => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warning => "warning",
            Level::Error => "error",
            Level::Critical => "critical",
            Level::Off => "off",
        }
    }

    /// The level in an `EnvFilter` directive (tracing has no `critical`).
    fn directive(self) -> &'static str {
        match self {
            Level::StreamInfo => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warning => "warn",
            Level::Error | Level::Critical => "error",
            Level::Off => "off",
        }
    }

    /// One of Envoy's names, exactly (what the admin accepts).
    pub fn parse(s: &str) -> Option<Level> {
        Level::ALL.into_iter().find(|l| l.name() == s)
    }

    /// A command-line level: Envoy's names in any case, and tracing's `warn`.
    pub fn parse_lenient(s: &str) -> Option<Level> {
        let s = s.to_ascii_lowercase();
        if s == "warn" {
            return Some(Level::Warning);
        }
        Level::parse(&s)
    }
}

/// Envoy logger names and the tracing targets each one covers.
const LOGGERS: &[(&str, &[&str])] = &[
    ("admin", &["legate::admin"]),
    ("config", &["legate::config", "legate::discovery", "legate::reload"]),
    ("conn_handler", &["legate::listener"]),
    ("dns", &["legate::upstream::dns"]),
    ("file", &["legate::access_log"]),
    ("http", &["legate::proxy"]),
    ("main", &["legate"]),
    ("router", &["legate::routing"]),
    ("stats", &["legate::stats"]),
    ("upstream", &["legate::upstream"]),
];

const USAGE: &str = "usage: /logging?<name>=<level> (change single level)
usage: /logging?paths=name1:level1,name2:level2,... (change multiple levels)
usage: /logging?level=<level> (change all levels)
usage: /logging?group=<group_name>:<level> (change group of loggers)
levels: trace debug info warning error critical off 
";

/// Why a `/logging` request changed nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoggingError {
    #[error("unknown logger level")]
    UnknownLevel,
    #[error("unknown logger name")]
    UnknownName,
    #[error("empty logger name or empty logger level")]
    EmptyNameOrLevel,
    #[error("invalid number of parameters")]
    InvalidParameters,
    #[error("applying the log filter: {0}")]
    Apply(String),
}

/// The loggers' levels and the way to apply them.
pub struct Loggers {
    /// One level per entry of `LOGGERS`, same order.
    levels: Mutex<Vec<Level>>,
    /// The level of every crate that is not legate.
    others: Level,
    apply: Option<ApplyFilter>,
}

impl Loggers {
    /// Every logger at the `-l` level (`info` when the name is unknown).
    pub fn new(log_level: &str) -> Loggers {
        let level = Level::parse_lenient(log_level).unwrap_or(Level::Info);
        let others = if level == Level::Off { Level::Off } else { Level::Warning };
        Loggers { levels: Mutex::new(vec![level; LOGGERS.len()]), others, apply: None }
    }

    /// Applies `--component-log-level` (`upstream:debug,admin:info`) before anything runs.
    pub fn set_components(&self, spec: &str) -> Result<(), LoggingError> {
        let changes = parse_paths(spec, Level::parse_lenient)?;
        self.set(&changes)
    }

    /// Makes level changes take effect through `apply`.
    pub fn with_apply(mut self, apply: ApplyFilter) -> Loggers {
        self.apply = Some(apply);
        self
    }

    /// The `EnvFilter` directives for the current levels.
    pub fn filter(&self) -> String {
        let levels = self.levels();
        let mut out = self.others.directive().to_string();
        for ((_, targets), level) in LOGGERS.iter().zip(levels) {
            for target in *targets {
                out.push_str(&format!(",{target}={}", level.directive()));
            }
        }
        out
    }

    /// Every logger with its level, as `/logging` lists them.
    pub fn listing(&self) -> String {
        let mut out = String::from("active loggers:\n");
        for ((name, _), level) in LOGGERS.iter().zip(self.levels()) {
            out.push_str(&format!("  {name}: {}\n", level.name()));
        }
        out.push('\n');
        out
    }

    /// The level of one logger, by Envoy name.
    pub fn level(&self, name: &str) -> Option<Level> {
        let i = LOGGERS.iter().position(|(n, _)| *n == name)?;
        self.levels().get(i).copied()
    }

    /// Serves `POST /logging?QUERY` (already split into decoded pairs): status and body.
    pub fn handle(&self, params: &[(String, String)]) -> (StatusCode, String) {
        match self.change(params) {
            Ok(()) => (StatusCode::OK, self.listing()),
            Err(e @ LoggingError::Apply(_)) => {
                (StatusCode::INTERNAL_SERVER_ERROR, format!("error: {e}\n\n{}", self.listing()))
            }
            Err(e) => (StatusCode::BAD_REQUEST, format!("error: {e}\n\n{USAGE}{}", self.listing())),
        }
    }

    fn change(&self, params: &[(String, String)]) -> Result<(), LoggingError> {
        // Envoy ignores parameters without a value.
        let given: Vec<&(String, String)> = params.iter().filter(|(_, v)| !v.is_empty()).collect();
        let (key, value) = match given.as_slice() {
            [] => return Ok(()),
            [(k, v)] => (k.as_str(), v.as_str()),
            _ => return Err(LoggingError::InvalidParameters),
        };
        let changes = match key {
            "level" => {
                let level = Level::parse(value).ok_or(LoggingError::UnknownLevel)?;
                LOGGERS.iter().map(|(name, _)| (*name, level)).collect()
            }
            "paths" | "group" => parse_paths(value, Level::parse)?,
            name => {
                let level = Level::parse(value).ok_or(LoggingError::UnknownLevel)?;
                vec![(known_name(name)?, level)]
            }
        };
        self.set(&changes)
    }

    /// Sets these levels and applies the new filter; on failure the old levels stay.
    fn set(&self, changes: &[(&'static str, Level)]) -> Result<(), LoggingError> {
        let mut levels = self.levels.lock().unwrap_or_else(|e| e.into_inner());
        let before = levels.clone();
        for (name, level) in changes {
            if let Some(i) = LOGGERS.iter().position(|(n, _)| n == name) {
                levels[i] = *level;
            }
        }
        drop(levels);
        let Some(apply) = &self.apply else { return Ok(()) };
        apply(&self.filter()).map_err(|e| {
            *self.levels.lock().unwrap_or_else(|e| e.into_inner()) = before;
            LoggingError::Apply(e)
        })
    }

    fn levels(&self) -> Vec<Level> {
        self.levels.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

fn known_name(name: &str) -> Result<&'static str, LoggingError> {
    LOGGERS.iter().map(|(n, _)| *n).find(|n| *n == name).ok_or(LoggingError::UnknownName)
}

/// `name1:level1,name2:level2`, every pair checked before any is used.
fn parse_paths(spec: &str, parse_level: fn(&str) -> Option<Level>) -> Result<Vec<(&'static str, Level)>, LoggingError> {
    spec.split(',')
        .map(|pair| {
            let (name, level) = pair.split_once(':').unwrap_or((pair, ""));
            if name.is_empty() || level.is_empty() {
                return Err(LoggingError::EmptyNameOrLevel);
            }
            let level = parse_level(level).ok_or(LoggingError::UnknownLevel)?;
            Ok((known_name(name)?, level))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    fn params(q: &[(&str, &str)]) -> Vec<(String, String)> {
        q.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn recording() -> (Loggers, Arc<Mutex<Vec<String>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&seen);
        let loggers = Loggers::new("info").with_apply(Box::new(move |f: &str| {
            sink.lock().map_err(|e| e.to_string())?.push(f.to_string());
            Ok(())
        }));
        (loggers, seen)
    }

    #[test]
    fn filter_covers_every_target() {
        let l = Loggers::new("warning");
        let f = l.filter();
        assert!(f.starts_with("warn,"), "{f}");
        assert!(f.contains(",legate=warn,"), "{f}");
        assert!(f.contains(",legate::upstream::dns=warn"), "{f}");
        assert!(tracing_subscriber::EnvFilter::try_new(&f).is_ok(), "{f}");
        assert!(Loggers::new("off").filter().starts_with("off,"));
    }

    #[test]
    fn level_sets_all_and_applies() {
        let (l, seen) = recording();
        assert_eq!(l.handle(&params(&[("level", "debug")])).0, StatusCode::OK);
        assert!(LOGGERS.iter().all(|(n, _)| l.level(n) == Some(Level::Debug)));
        let applied = seen.lock().unwrap().last().cloned().unwrap_or_default();
        assert!(applied.contains("legate::admin=debug"), "{applied}");
    }

    #[test]
    fn paths_and_single_name_set_some() {
        let (l, _) = recording();
        assert_eq!(l.handle(&params(&[("paths", "admin:debug,upstream:critical")])).0, StatusCode::OK);
        assert_eq!(l.level("admin"), Some(Level::Debug));
        assert_eq!(l.level("upstream"), Some(Level::Critical));
        assert_eq!(l.level("http"), Some(Level::Info));
        assert_eq!(l.handle(&params(&[("http", "trace")])).0, StatusCode::OK);
        assert_eq!(l.level("http"), Some(Level::StreamInfo));
    }

    #[test]
    fn errors_change_nothing() {
        let (l, seen) = recording();
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("level", "bogus")], "error: unknown logger level\n\nusage:"),
            (&[("level", "warn")], "error: unknown logger level"),
            (&[("nope", "debug")], "error: unknown logger name"),
            (&[("paths", "admin:debug,nope:info")], "error: unknown logger name"),
            (&[("paths", "admin")], "error: empty logger name or empty logger level"),
            (&[("a", "b"), ("c", "d")], "error: invalid number of parameters"),
        ];
        for (q, want) in cases {
            let (status, body) = l.handle(&params(q));
            assert_eq!(status, StatusCode::BAD_REQUEST, "{q:?}");
            assert!(body.starts_with(want), "{q:?}: {body}");
            assert!(body.ends_with("  upstream: info\n\n"), "{q:?}: {body}");
        }
        assert_eq!(l.level("admin"), Some(Level::Info));
        assert!(seen.lock().unwrap().is_empty());
    }

    #[test]
    fn no_or_empty_parameters_list() {
        let l = Loggers::new("info");
        for q in [&[][..], &[("level", "")][..], &[("paths", "")][..]] {
            let (status, body) = l.handle(&params(q));
            assert_eq!(status, StatusCode::OK);
            assert!(body.starts_with("active loggers:\n  admin: info\n"), "{body}");
        }
    }

    #[test]
    fn a_failed_apply_keeps_the_old_levels() {
        let l = Loggers::new("info").with_apply(Box::new(|_: &str| Err("no".into())));
        assert_eq!(l.handle(&params(&[("level", "debug")])).0, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(l.level("admin"), Some(Level::Info));
    }

    #[test]
    fn components_accept_command_line_names() {
        let l = Loggers::new("INFO");
        assert_eq!(l.set_components("upstream:warn,admin:DEBUG"), Ok(()));
        assert_eq!(l.level("upstream"), Some(Level::Warning));
        assert_eq!(l.level("admin"), Some(Level::Debug));
        assert_eq!(l.set_components("bogus:info"), Err(LoggingError::UnknownName));
    }
}
