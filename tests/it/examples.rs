//! Every runnable example under `examples/` runs to its end ("sandbox OK") with the built
//! binary. The scripts start their own upstreams on 127.0.0.1 and stop them.

use std::process::Command;
use std::time::Duration;

fn run_example(script: &str) {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut child = Command::new("bash")
        .arg(format!("{root}/examples/{script}"))
        .arg(env!("CARGO_BIN_EXE_legate"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("bash runs");
    // Bounded: the scripts wait at most 10 s per step.
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    while child.try_wait().expect("try_wait").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("{script} did not finish within 90 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("sandbox OK"),
        "{script} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn file_based_sandbox() {
    run_example("file-based/run.sh");
}
