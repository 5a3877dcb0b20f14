//! The bootstrap reader: text in YAML or JSON, v2 or v3 spellings, through parsing, the v2
//! rewrite and validation (as `--config-yaml`, and as a `.yaml` or `.json` file). A config
//! that loads also goes through the runtime checks of `--mode validate`, and loads the same
//! way a second time.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

/// A file of this process's own under the temp dir, for the file-reading path.
fn scratch(ext: &str) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("legate-fuzz-bootstrap-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("scratch dir");
        d
    });
    dir.join(format!("bootstrap.{ext}"))
}

fuzz_target!(|data: &[u8]| {
    let Some((&how, rest)) = data.split_first() else { return };
    let loaded = match how % 3 {
        0 => {
            let Ok(text) = std::str::from_utf8(rest) else { return };
            legate::config::load_bootstrap(None, Some(text))
        }
        n => {
            let path = scratch(if n == 1 { "yaml" } else { "json" });
            std::fs::write(&path, rest).expect("write scratch file");
            legate::config::load_bootstrap(Some(&path), None)
        }
    };
    match loaded {
        Ok(bootstrap) => {
            let _ = legate::validate_runtime(&bootstrap);
        }
        Err(errors) => {
            // Every error renders (the CLI prints them all).
            let _ = errors.to_string();
        }
    }
});
