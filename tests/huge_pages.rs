//! Transparent huge pages: off for a small run unless `RAC_HUGE_PAGES=1`, and the process's
//! flag as the kernel sees it (in a test binary of its own, as the flag is the whole process's).

mod common;

use std::path::Path;
use std::process::Command;

use common::{events, ok};

/// `rac compute` on the generated CSV data in `data`, with `RAC_HUGE_PAGES` set to `value`.
fn compute(data: &Path, out: &Path, value: Option<&str>) -> std::process::Output {
    let acts = data.join("acts.csv");
    let mut command = Command::new(env!("CARGO_BIN_EXE_rac"));
    command.args(common::compute_args(&acts, data, out, &[]));
    command.env_remove("RAC_HUGE_PAGES");
    if let Some(value) = value {
        command.env("RAC_HUGE_PAGES", value);
    }
    command.output().expect("rac runs")
}

#[test]
fn a_small_run_turns_huge_pages_off_unless_the_variable_keeps_them() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    common::generate(&data, 300, 40, 3, "csv");
    let huge_pages = |o: &std::process::Output| {
        let event = events(o)
            .into_iter()
            .find(|e| e.get("huge_pages").is_some())
            .expect("the choice is logged");
        (
            event["message"].as_str().unwrap().to_string(),
            event["huge_pages"].as_u64().unwrap(),
        )
    };

    let o = compute(&data, &tmp.path().join("default"), None);
    ok(&o, &[0]);
    #[cfg(target_os = "linux")]
    assert_eq!(huge_pages(&o), ("transparent huge pages off".into(), 0));

    let o = compute(&data, &tmp.path().join("kept"), Some("1"));
    ok(&o, &[0]);
    assert_eq!(huge_pages(&o), ("transparent huge pages kept".into(), 1));

    let o = compute(&data, &tmp.path().join("off"), Some("0"));
    ok(&o, &[0]);
    #[cfg(target_os = "linux")]
    assert_eq!(huge_pages(&o).1, 0);

    // Anything else is a usage error: exit 2, nothing written.
    let refused = tmp.path().join("refused");
    let o = compute(&data, &refused, Some("yes"));
    ok(&o, &[2]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("RAC_HUGE_PAGES=yes: 0 (off) or 1 (on)"),
        "{stderr}"
    );
    assert!(!refused.exists());
}

#[cfg(target_os = "linux")]
#[test]
fn huge_pages_turned_off_are_off_for_the_kernel() {
    /// `THP_enabled` in `/proc/self/status`: 1 unless the process turned them off.
    fn enabled() -> bool {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status
            .lines()
            .find(|l| l.starts_with("THP_enabled:"))
            .expect("THP_enabled in /proc/self/status");
        line.split_whitespace().nth(1) == Some("1")
    }
    // On first, whatever the test runner inherited.
    // SAFETY: PR_SET_THP_DISABLE takes plain integers and sets only this process's flag.
    assert_eq!(
        unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 0, 0, 0, 0) },
        0
    );
    assert!(enabled());
    assert!(rac::pipeline::turn_off_huge_pages());
    assert!(!enabled());
}
