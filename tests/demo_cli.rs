//! `slb-sync demo` runs the race lab built beside the binary, passing every argument on
//! and naming itself as the pods' `wait-drained`; without a lab beside it, it says how to
//! get one. (The lab itself is tested in mocks/cluster.)

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// One test at a time: a script written while another thread forks can fail to start
/// with "text file busy" (the child inherits the open file).
static SERIAL: Mutex<()> = Mutex::new(());

/// A copy of the slb-sync binary alone in a fresh directory.
fn lonely_binary(dir: &Path) -> PathBuf {
    let bin = dir.join("slb-sync");
    let built = env!("CARGO_BIN_EXE_slb-sync");
    if std::fs::hard_link(built, &bin).is_err() {
        std::fs::copy(built, &bin).unwrap();
    }
    bin
}

#[test]
fn without_a_lab_beside_it_demo_says_how_to_run_one() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(lonely_binary(dir.path()))
        .arg("demo")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cargo run -p mock-cluster --bin race-lab"),
        "{err}"
    );
}

#[test]
fn demo_passes_every_argument_on_and_returns_the_lab_status() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let bin = lonely_binary(dir.path());
    let seen = dir.path().join("seen");
    // A stand-in lab: records what it was given, fails with its own status.
    let lab = dir.path().join("race-lab");
    std::fs::write(
        &lab,
        format!(
            "#!/bin/sh\nprintf '%s|' \"$@\" > '{}'\necho \"$SLB_SYNC_BIN\" >> '{}'\nexit 3\n",
            seen.display(),
            seen.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&lab, std::fs::Permissions::from_mode(0o755)).unwrap();

    let status = Command::new(&bin)
        .args(["demo", "--seeds", "2", "--help"])
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(3), "the lab's status is the demo's");
    let seen = std::fs::read_to_string(seen).unwrap();
    assert_eq!(seen, format!("--seeds|2|--help|{}\n", bin.display()));
}
