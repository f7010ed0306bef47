//! Errors a person can act on, one test per case, each against the real binary: a DNS
//! failure said as such, `--hub HOST` on the default port, environment values named by
//! their variable, one line per fatal error with its fix, "did you mean" for config keys
//! and device names, a takeover said on both sides and in the hub's log, one exit status
//! for every bad option, no internal names, alsa-lib's own lines folded into izyrt's,
//! the metrics port bound before the hub is joined, `--cpu` checked.
#![cfg(target_os = "linux")]

#[path = "common/procs.rs"]
mod procs;

use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

use procs::{Proc, metrics, scratch};

const SECS: fn(u64) -> Duration = Duration::from_secs;

/// Runs `izyrt ARGS` to completion: (exit code, stderr).
fn run(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_izyrt"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Asserts that `izyrt ARGS` exits with `code` and prints exactly one line, an `izyrt:`
/// line holding every needle; returns it.
fn one_line(args: &[&str], env: &[(&str, &str)], code: i32, needles: &[&str]) -> String {
    let (got, err) = run(args, env);
    assert_eq!(got, Some(code), "{args:?}: {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{args:?}: one line, got {err:?}");
    assert!(lines[0].starts_with("izyrt: "), "{args:?}: {err}");
    for n in needles {
        assert!(lines[0].contains(n), "{args:?}: {n:?} missing in {err}");
    }
    lines[0].to_owned()
}

/// Waits for `p` to exit, then for its output to hold `needle`; the exit code and the
/// line.
fn exit_saying(p: &mut Proc, needle: &str) -> (Option<i32>, String) {
    let status = procs::wait_for("the exit", SECS(20), || p.child.try_wait().unwrap());
    let line = procs::wait_for(needle, SECS(5), || {
        p.output()
            .lines()
            .find(|l| l.contains(needle))
            .map(str::to_owned)
    });
    (status.code(), line)
}

#[test]
fn an_unresolvable_host_is_said_as_such() {
    one_line(
        &[
            "peer",
            "--hub",
            "nosuch.invalid:7100",
            "--user",
            "a",
            "--device",
            "virtual",
        ],
        &[],
        64,
        &["--hub nosuch.invalid:7100: cannot resolve host 'nosuch.invalid': "],
    );
    // Not a port: said as that, not as a host.
    one_line(
        &[
            "peer",
            "--hub",
            "127.0.0.1:http",
            "--user",
            "a",
            "--device",
            "virtual",
        ],
        &[],
        64,
        &["port 'http' is not allowed (allowed: 0..=65535)"],
    );
}

#[test]
fn a_hub_without_a_port_is_on_7100() {
    let mut peer = Proc::start(
        "peer",
        &[
            "peer",
            "--hub",
            "127.0.0.1",
            "--user",
            "p7100",
            "--device",
            "virtual",
            "--metrics",
            "none",
        ],
    );
    peer.wait_line(
        "connecting to 127.0.0.1 (127.0.0.1:7100) as p7100",
        SECS(20),
    );
    peer.kill();
}

#[test]
fn an_environment_value_is_named_by_its_variable() {
    one_line(
        &["hub"],
        &[("IZYRT_RATE", "abc")],
        64,
        &["IZYRT_RATE=abc is not allowed for --rate: invalid digit"],
    );
    one_line(
        &["hub"],
        &[("IZYRT_MIX", "loud")],
        64,
        &["IZYRT_MIX=loud", "[possible values: minus, full, loopback]"],
    );
    // The same value given as a flag is named by the flag.
    let line = one_line(
        &["hub", "--rate", "abc"],
        &[("IZYRT_RATE", "48000")],
        64,
        &["'--rate"],
    );
    assert!(!line.contains("IZYRT_RATE"), "{line}");
}

#[test]
fn a_refusal_is_one_line_with_its_fix_and_in_the_hubs_log() {
    let (mut hub, addr, _) = procs::hub(&["--token", "s3cret"]);
    let hub_addr = addr.to_string();
    // (extra arguments, what the one line says, its fix)
    let cases = [
        (
            vec!["--token", "wrong"],
            "unauthorized",
            "--token or IZYRT_TOKEN",
        ),
        (
            vec!["--token", "s3cret", "--rate", "44100"],
            "format_unsupported",
            "start with the hub's --rate and --channels",
        ),
    ];
    for (extra, code, fix) in cases {
        let mut args = vec![
            "peer",
            "--hub",
            &hub_addr,
            "--user",
            "bob",
            "--device",
            "virtual",
            "--metrics",
            "none",
        ];
        args.extend(extra);
        let (status, err) = run(&args, &[]);
        assert_eq!(status, Some(1), "{err}");
        let said: Vec<&str> = err.lines().filter(|l| l.contains(code)).collect();
        assert_eq!(said.len(), 1, "said once: {err}");
        assert!(
            said[0].starts_with("izyrt: the hub refused user bob: "),
            "{err}"
        );
        assert!(said[0].contains(fix), "{err}");
        hub.wait_line(&format!("(user bob): {code}"), SECS(10));
    }
    let log = hub.wait_line("refused HELLO from 127.0.0.1:", SECS(10));
    assert!(log.contains("izyrt hub: "), "{log}");
}

#[test]
fn a_typod_config_key_gets_did_you_mean() {
    let cfg = scratch("errors-typo").join("typo.json");
    std::fs::write(&cfg, r#"{"latencyTresholdMs": 50}"#).unwrap();
    let line = one_line(
        &["hub", "--config", cfg.to_str().unwrap()],
        &[],
        64,
        &["unknown option \"latencyTresholdMs\"; did you mean \"latencyThresholdMs\"?"],
    );
    assert!(
        !line.contains("enableQOSMetrics"),
        "no list of every key: {line}"
    );
}

#[test]
fn a_typod_device_gets_did_you_mean_and_no_alsa_lib_lines() {
    one_line(
        &[
            "peer",
            "--hub",
            "127.0.0.1:1",
            "--user",
            "a",
            "--device",
            "virtal",
            "--metrics",
            "none",
        ],
        &[],
        64,
        &["cannot open device 'virtal'", "did you mean 'virtual'?"],
    );
    // A card that is not there: izyrt's one line holds what alsa-lib said.
    let out = scratch("errors-hw").join("out.wav");
    one_line(
        &[
            "record",
            out.to_str().unwrap(),
            "--device",
            "hw:9,0",
            "--seconds",
            "1",
        ],
        &[],
        1,
        &["cannot open device 'hw:9,0'", "alsa-lib: "],
    );
}

#[test]
fn a_takeover_is_said_on_both_sides_and_in_the_hubs_log() {
    let (mut hub, addr, hub_metrics) = procs::hub(&[]);
    let (mut first, _) = procs::peer(addr, "alice", "virtual", &[]);
    first.wait_line("joined the hub", SECS(20));
    let (mut second, _) = procs::peer(addr, "alice", "virtual", &[]);
    let took = second.wait_line("took over user alice from 127.0.0.1:", SECS(20));
    assert!(took.contains("the hub closed that connection"), "{took}");
    let log = hub.wait_line("user alice taken over by 127.0.0.1:", SECS(10));
    assert!(
        log.contains("; the previous connection from 127.0.0.1:") && log.ends_with(" closed"),
        "{log}"
    );
    let (code, gone) = exit_saying(&mut first, "izyrt: user alice taken over");
    assert_eq!(code, Some(1), "{}", first.output());
    assert!(
        gone.contains("by a new connection from 127.0.0.1:") && gone.contains("give each its own"),
        "{gone}"
    );
    // Replacement itself stays: alice is connected, from the second peer.
    procs::wait_for("alice connected once", SECS(10), || {
        let m = metrics(hub_metrics);
        (m["hub"]["clients"] == 1 && m["connections"]["alice"]["connected"] == true).then_some(())
    });
    second.kill();
}

#[test]
fn every_bad_option_exits_64_and_help_exits_0() {
    one_line(
        &["peer", "--tokn", "x"],
        &[],
        64,
        &["unexpected argument '--tokn'", "(see izyrt peer --help)"],
    );
    one_line(&["nosuchcommand"], &[], 64, &["nosuchcommand"]);
    one_line(
        &["hub", "--rate", "7"],
        &[],
        64,
        &["--rate 7 is not allowed"],
    );
    for args in [&["--help"][..], &["--version"], &["peer", "--help"]] {
        let out = Command::new(env!("CARGO_BIN_EXE_izyrt"))
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert!(!out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn messages_carry_no_internal_names() {
    // alsa-lib's `null` PCM does not pace time: refused, in words.
    let out = scratch("errors-names").join("out.wav");
    let args = [
        "record",
        out.to_str().unwrap(),
        "--device",
        "null",
        "--seconds",
        "1",
    ];
    let (code, err) = run(&args, &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("refused for realtime use"), "{err}");
    assert!(!err.contains("::") && !err.contains("OpenOptions"), "{err}");
    // Nothing in the sources (their unit tests aside) spells a Rust path or error type
    // into a message.
    for entry in walk(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src"
    ))) {
        let all = std::fs::read_to_string(&entry).unwrap();
        let text = all.split("#[cfg(test)]\nmod tests").next().unwrap_or("");
        for needle in ["OpenOptions::", "AudioThreadPriorityError"] {
            let in_string = text
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .any(|l| l.contains('"') && l.contains(needle));
            assert!(!in_string, "{needle} in a string in {}", entry.display());
        }
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out
}

#[test]
fn a_taken_metrics_port_stops_the_peer_before_the_hub_sees_it() {
    let (mut hub, addr, hub_metrics) = procs::hub(&[]);
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().to_string();
    one_line(
        &[
            "peer",
            "--hub",
            &addr.to_string(),
            "--user",
            "portless",
            "--device",
            "virtual",
            "--metrics",
            &port,
        ],
        &[],
        64,
        &[format!("--metrics {port}: ").as_str()],
    );
    // The hub never saw the user (a peer joins within a second when it does).
    std::thread::sleep(SECS(2));
    let m = metrics(hub_metrics);
    assert!(m["connections"].get("portless").is_none(), "{m}");
    assert!(!hub.output().contains("portless"), "{}", hub.output());
    hub.kill();
}

#[test]
fn cpu_is_checked_against_the_cpus_online() {
    // SAFETY: sysconf has no preconditions.
    let online = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    let allowed = format!("(allowed: 0..={}, the CPUs online)", online - 1);
    let cpu = online.to_string();
    one_line(
        &["hub", "--cpu", &cpu],
        &[],
        64,
        &[format!("--cpu {cpu} is not allowed").as_str(), &allowed],
    );
    let out = scratch("errors-cpu").join("out.wav");
    one_line(
        &[
            "record",
            out.to_str().unwrap(),
            "--device",
            "virtual",
            "--seconds",
            "1",
            "--cpu",
            &cpu,
        ],
        &[],
        64,
        &[allowed.as_str()],
    );
}
