//! A REST EDS management server's answer, as legate reads it for a cluster's service name,
//! and the host specs taken from the endpoints it names.
#![no_main]

use legate::upstream::eds_rest::{parse_response, specs_from_assignment};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some((_version, endpoints))) = parse_response(data, "myservice") {
        let specs = specs_from_assignment(&endpoints);
        let named: usize = endpoints.iter().map(|l| l.endpoints.len()).sum();
        assert!(specs.len() <= named, "more hosts than endpoints");
    }
});
