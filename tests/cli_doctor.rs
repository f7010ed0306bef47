//! `izyrt doctor` as a user runs it: a real process on the `virtual` device, against a
//! real hub, a closed port, a wrong token, and as an unprivileged user.
//!
//! The device run's figures depend on the machine's load: they are printed, and only the
//! run's success is asserted (the `device` check passes on `virtual`). The exit status is
//! checked against the report itself (1 exactly when a check failed).
#![cfg(target_os = "linux")]

#[path = "common/procs.rs"]
mod procs;

use std::os::unix::process::CommandExt;
use std::process::{Command, Output};

use serde_json::Value;

/// Options that keep the doctor off shared ports and the machine's load.
const QUIET: &[&str] = &[
    "--device",
    "virtual",
    "--periods",
    "8",
    "--metrics",
    "127.0.0.1:0",
    "--listen",
    "127.0.0.1:0",
];

fn doctor(extra: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_izyrt"));
    cmd.arg("doctor").args(QUIET).args(extra);
    cmd.env_remove("IZYRT_TOKEN").env_remove("IZYRT_HUB");
    cmd
}

/// Runs `cmd` and parses its `--json` report; prints it for the log.
fn report(mut cmd: Command) -> (Output, Value) {
    let out = cmd.output().expect("run izyrt doctor");
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!(
        "doctor exit {:?}\n{stdout}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    let json: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("--json is not one JSON object ({e}):\n{stdout}"));
    let failed = json["summary"]["fail"].as_u64().expect("summary.fail");
    assert_eq!(
        out.status.code(),
        Some(if failed > 0 { 1 } else { 0 }),
        "exit status 1 exactly when a check failed"
    );
    (out, json)
}

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name:?} check in {report}"))
}

#[test]
fn virtual_device_passes_and_json_is_well_formed() {
    let (_, r) = report({
        let mut c = doctor(&["--json"]);
        c.env_remove("IZYRT_DEVICE");
        c
    });
    let checks = r["checks"].as_array().unwrap();
    for c in checks {
        assert!(
            ["PASS", "WARN", "FAIL"].contains(&c["status"].as_str().unwrap()),
            "{c}"
        );
        assert!(c["detail"].as_str().is_some_and(|d| !d.is_empty()), "{c}");
        assert!(c["fix"].is_null() || c["fix"].is_string(), "{c}");
    }
    let count = |s: &str| checks.iter().filter(|c| c["status"] == s).count() as u64;
    assert_eq!(r["summary"]["pass"], count("PASS"));
    assert_eq!(r["summary"]["warn"], count("WARN"));
    assert_eq!(r["summary"]["fail"], count("FAIL"));
    for name in [
        "realtime",
        "memlock",
        "cpu governor",
        "preempt",
        "rt throttling",
        "threadirqs",
        "audio group",
        "/dev/snd",
        "sound server",
        "listen port",
        "metrics port",
    ] {
        check(&r, name);
    }
    let device = check(&r, "device");
    assert_eq!(device["status"], "PASS", "{device}");
    assert!(
        device["detail"]
            .as_str()
            .unwrap()
            .starts_with("virtual: duplex")
    );
    let wakeup = check(&r, "wakeup");
    assert!(
        wakeup["detail"].as_str().unwrap().contains(" xrun"),
        "{wakeup}"
    );
    // Without --hub no hub is contacted.
    assert!(checks.iter().all(|c| c["name"] != "hub"));
}

#[test]
fn human_output_is_one_aligned_line_per_check() {
    let out = doctor(&[]).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    eprintln!("{text}");
    let lines: Vec<&str> = text.lines().collect();
    let (summary, checks) = lines.split_last().expect("output");
    assert!(summary.starts_with("doctor: "), "{summary}");
    assert!(checks.len() >= 12, "{text}");
    // Names hold single spaces at most: the first double space ends the name column.
    let detail_column = |l: &str| {
        let rest = &l[6..];
        let gap = rest.find("  ").unwrap();
        6 + gap + rest[gap..].find(|c: char| c != ' ').unwrap()
    };
    let column = detail_column(checks[0]);
    for l in checks {
        assert!(
            ["PASS  ", "WARN  ", "FAIL  "]
                .iter()
                .any(|s| l.starts_with(s)),
            "{l}"
        );
        assert_eq!(detail_column(l), column, "not aligned: {l}");
        if !l.starts_with("PASS") {
            continue;
        }
        assert!(!l.contains(" — fix: "), "a PASS has no fix: {l}");
    }
}

#[test]
fn a_running_hub_passes() {
    let (_hub, addr, _) = procs::hub(&["--token", "s3cret"]);
    let (_, r) = report(doctor(&[
        "--json",
        "--hub",
        &addr.to_string(),
        "--token",
        "s3cret",
    ]));
    let hub = check(&r, "hub");
    assert_eq!(hub["status"], "PASS", "{hub}");
    assert!(
        hub["detail"].as_str().unwrap().contains("token accepted"),
        "{hub}"
    );
    // A client's ports: the metrics port, not a hub's listen port.
    assert!(
        r["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["name"] != "listen port")
    );
}

#[test]
fn a_closed_port_fails_with_exit_1() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (out, r) = report(doctor(&["--json", "--hub", &format!("127.0.0.1:{port}")]));
    let hub = check(&r, "hub");
    assert_eq!(hub["status"], "FAIL", "{hub}");
    assert!(
        hub["detail"].as_str().unwrap().contains("cannot connect"),
        "{hub}"
    );
    assert!(
        hub["fix"].as_str().unwrap().contains("start the hub"),
        "{hub}"
    );
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn a_wrong_token_fails_naming_the_token() {
    let (_hub, addr, _) = procs::hub(&["--token", "right", "--rate", "44100"]);
    let hub_addr = addr.to_string();
    let (out, r) = report(doctor(&[
        "--json", "--hub", &hub_addr, "--token", "wrong", "--rate", "44100",
    ]));
    let hub = check(&r, "hub");
    assert_eq!(hub["status"], "FAIL", "{hub}");
    let detail = hub["detail"].as_str().unwrap();
    assert!(
        detail.contains("refused our token") && detail.contains("unauthorized"),
        "{hub}"
    );
    assert!(hub["fix"].as_str().unwrap().contains("token"), "{hub}");
    assert_eq!(out.status.code(), Some(1));
    // The right token at the wrong rate: the hub's reason is passed on.
    let (_, r) = report(doctor(&["--json", "--hub", &hub_addr, "--token", "right"]));
    let hub = check(&r, "hub");
    assert_eq!(hub["status"], "FAIL", "{hub}");
    assert!(
        hub["detail"].as_str().unwrap().contains("44100 Hz"),
        "{hub}"
    );
    assert!(hub["fix"].as_str().unwrap().contains("--rate"), "{hub}");
}

#[test]
fn an_unprivileged_user_is_told_how_to_get_realtime() {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        procs_skip("not root: cannot switch to an unprivileged user to compare");
        return;
    }
    let Some(setpriv) = ["/usr/bin/setpriv", "/bin/setpriv"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
    else {
        procs_skip("setpriv (util-linux) is not installed");
        return;
    };
    let mut cmd = Command::new(setpriv);
    cmd.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
        .arg(env!("CARGO_BIN_EXE_izyrt"))
        .arg("doctor")
        .args(QUIET)
        .arg("--json")
        .env_remove("IZYRT_TOKEN")
        .env_remove("IZYRT_HUB");
    // No rtprio allowance either, whatever the test runner's limits: only then is a
    // refusal certain.
    // SAFETY: setrlimit is async-signal-safe; the closure allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            let zero = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            if libc::setrlimit(libc::RLIMIT_RTPRIO, &zero) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let (out, r) = report(cmd);
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "the doctor must report, not crash"
    );
    let rt = check(&r, "realtime");
    assert!(rt["status"] == "FAIL" || rt["status"] == "WARN", "{rt}");
    let fix = rt["fix"].as_str().expect("a fix");
    assert!(
        fix.contains("rtprio 95") && fix.contains("usermod -aG audio"),
        "{fix}"
    );
    let group = check(&r, "audio group");
    assert_eq!(group["status"], "WARN", "{group}");
    assert!(
        group["detail"].as_str().unwrap().contains("nobody"),
        "{group}"
    );
    // The device still runs, as a normal thread.
    assert_eq!(check(&r, "device")["status"], "PASS");
    assert!(
        check(&r, "wakeup")["detail"]
            .as_str()
            .unwrap()
            .contains("realtime refused")
    );
}

/// Says why a test is skipped, where the test log shows it.
fn procs_skip(why: &str) {
    eprintln!("SKIPPED: {why}");
    println!("SKIPPED: {why}");
}
