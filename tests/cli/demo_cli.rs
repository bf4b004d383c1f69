//! `slb-sync demo` runs the race lab built beside the binary, passing every argument on
//! and naming itself as the pods' `wait-drained`; without a lab beside it, it says how to
//! get one. (The lab itself is tested in mocks/cluster.)

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Executables are written by another process, never through a descriptor of this one:
/// a child that another test forks while such a descriptor is open inherits it, and
/// executing the file then fails with "text file busy".
fn write_script(path: &Path, text: &str) {
    let mut child = Command::new("/bin/sh")
        .args(["-c", r#"cat > "$1" && chmod 755 "$1""#, "sh"])
        .arg(path)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    assert!(
        child.wait().unwrap().success(),
        "cannot write {}",
        path.display()
    );
}

/// A copy of the slb-sync binary alone in a fresh directory.
fn lonely_binary(dir: &Path) -> PathBuf {
    let bin = dir.join("slb-sync");
    let built = env!("CARGO_BIN_EXE_slb-sync");
    if std::fs::hard_link(built, &bin).is_err() {
        let copied = Command::new("cp").arg(built).arg(&bin).status().unwrap();
        assert!(copied.success(), "cannot copy {built}");
    }
    bin
}

#[test]
fn without_a_lab_beside_it_demo_says_how_to_run_one() {
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
    let dir = tempfile::tempdir().unwrap();
    let bin = lonely_binary(dir.path());
    let seen = dir.path().join("seen");
    // A stand-in lab: records what it was given, fails with its own status.
    let lab = dir.path().join("race-lab");
    write_script(
        &lab,
        &format!(
            "#!/bin/sh\nprintf '%s|' \"$@\" > '{}'\necho \"$SLB_SYNC_BIN\" >> '{}'\nexit 3\n",
            seen.display(),
            seen.display()
        ),
    );

    let status = Command::new(&bin)
        .args(["demo", "--seeds", "2", "--help"])
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(3), "the lab's status is the demo's");
    let seen = std::fs::read_to_string(seen).unwrap();
    assert_eq!(seen, format!("--seeds|2|--help|{}\n", bin.display()));
}
