//! Every runnable example under `examples/` runs to its end ("sandbox OK") with the built
//! binary. The scripts start their own upstreams on 127.0.0.1 and stop them.

use std::process::Command;
use std::time::Duration;

fn run_example(script: &str) {
    let root = env!("CARGO_MANIFEST_DIR");
    // Output to files, not pipes: a process the script leaves behind cannot block the test.
    let dir = tempfile::tempdir().expect("tempdir");
    let out_path = dir.path().join("stdout");
    let err_path = dir.path().join("stderr");
    // Free ports instead of the example's own, which a bench or another run may hold.
    let held: Vec<std::net::TcpListener> =
        (0..5).map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind")).collect();
    let ports: Vec<String> = held.iter().map(|l| l.local_addr().expect("local_addr").port().to_string()).collect();
    drop(held);
    let mut child = Command::new("bash")
        .arg(format!("{root}/examples/{script}"))
        .arg(env!("CARGO_BIN_EXE_legate"))
        .envs(["LISTEN_PORT", "UP1_PORT", "UP2_PORT", "UP3_PORT", "ADMIN_PORT"].into_iter().zip(&ports))
        .stdout(std::fs::File::create(&out_path).expect("stdout file"))
        .stderr(std::fs::File::create(&err_path).expect("stderr file"))
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
    let status = child.wait().expect("wait");
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    assert!(status.success() && stdout.contains("sandbox OK"), "{script} failed ({status}):\n{stdout}\n{stderr}");
}

#[test]
fn file_based_sandbox() {
    run_example("file-based/run.sh");
}
