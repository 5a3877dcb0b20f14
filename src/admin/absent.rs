//! Envoy's admin paths for features legate does not have (CPU and heap profilers, tcmalloc's
//! heap dumps, the runtime's admin layer when the bootstrap has none): answered as an Envoy built without them answers, so
//! scripts written for Envoy get its status and message rather than a 404.

use http::StatusCode;

/// The `/cpuprofiler` and `/allocprofiler` query check: exactly one parameter, `enable=y|n`.
/// `None` when the query is refused.
fn enable(pairs: &[(String, String)]) -> Option<bool> {
    let mut keys: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
    keys.dedup();
    if keys.len() != 1 {
        return None;
    }
    match pairs.iter().find(|(k, _)| k == "enable").map(|(_, v)| v.as_str()) {
        Some("y") => Some(true),
        Some("n") => Some(false),
        _ => None,
    }
}

const ENABLE_USAGE: &str = "?enable=<y|n>\n";

/// `POST /cpuprofiler?enable=y|n`: Envoy without gperftools fails to start the profiler, and
/// stopping one that never ran is fine.
pub fn cpu_profiler(pairs: &[(String, String)]) -> (StatusCode, &'static str) {
    match enable(pairs) {
        None => (StatusCode::BAD_REQUEST, ENABLE_USAGE),
        Some(true) => (StatusCode::INTERNAL_SERVER_ERROR, "failure to start the profiler"),
        Some(false) => (StatusCode::OK, "OK\n"),
    }
}

/// `POST /heapprofiler`: refused before its query is read.
pub fn heap_profiler() -> (StatusCode, &'static str) {
    (StatusCode::NOT_IMPLEMENTED, "The current build does not support heap profiler")
}

/// `POST /allocprofiler?enable=y|n`: tcmalloc's allocation profiler.
pub fn alloc_profiler(pairs: &[(String, String)]) -> (StatusCode, &'static str) {
    match enable(pairs) {
        None => (StatusCode::BAD_REQUEST, ENABLE_USAGE),
        Some(_) => (StatusCode::BAD_REQUEST, "Allocation profile is not implemented in current build"),
    }
}

/// `GET /heap_dump`: tcmalloc's heap profile.
pub fn heap_dump() -> (StatusCode, &'static str) {
    (StatusCode::NOT_IMPLEMENTED, "Heap profile is not implemented in current build")
}

/// `POST /runtime_modify?key=value`: without parameters (in the query or a form body) the
/// usage; with them, Envoy's answer when the bootstrap has no runtime admin layer. (With one,
/// the query's parameters go to [`crate::runtime::Runtime::modify`]; a form body's are not read.)
pub fn runtime_modify(pairs: &[(String, String)], has_form_body: bool) -> (StatusCode, &'static str) {
    if pairs.is_empty() && !has_form_body {
        return (
            StatusCode::BAD_REQUEST,
            "usage: /runtime_modify?key1=value1&key2=value2&keyN=valueN\n       or send the parameters as form values\nuse an empty value to remove a previously added override",
        );
    }
    (StatusCode::SERVICE_UNAVAILABLE, "No admin layer specified")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn cpu_profiler_answers_as_envoy_without_gperftools() {
        assert_eq!(cpu_profiler(&q(&[])), (StatusCode::BAD_REQUEST, ENABLE_USAGE));
        assert_eq!(cpu_profiler(&q(&[("enable", "x")])).0, StatusCode::BAD_REQUEST);
        assert_eq!(cpu_profiler(&q(&[("enable", "y"), ("other", "1")])).0, StatusCode::BAD_REQUEST);
        assert_eq!(cpu_profiler(&q(&[("enable", "y")])).0, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(cpu_profiler(&q(&[("enable", "n")])), (StatusCode::OK, "OK\n"));
        // One key given twice is one parameter: its first value counts.
        assert_eq!(cpu_profiler(&q(&[("enable", "n"), ("enable", "y")])).0, StatusCode::OK);
    }

    #[test]
    fn runtime_modify_wants_parameters_then_has_no_admin_layer() {
        assert_eq!(runtime_modify(&[], false).0, StatusCode::BAD_REQUEST);
        assert_eq!(runtime_modify(&q(&[("a", "b")]), false).0, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(runtime_modify(&[], true).0, StatusCode::SERVICE_UNAVAILABLE);
    }
}
