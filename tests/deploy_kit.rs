//! The deployment kit (`scripts/deploy/`) and what it relies on: the systemd units pass
//! `systemd-analyze verify`, `--token-file` joins a hub and refuses a missing file, a hub
//! beyond loopback without a token warns, `--version` names the commit, and the man page
//! and completions are generated. Real processes throughout.
#![cfg(target_os = "linux")]

#[path = "common/procs.rs"]
mod procs;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_izyrt");

fn kit(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts/deploy")
        .join(file)
}

fn izyrt(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .env_remove("IZYRT_TOKEN")
        .env_remove("IZYRT_TOKEN_FILE")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn units_pass_systemd_analyze_verify() {
    let analyze = Path::new("/usr/bin/systemd-analyze");
    if !analyze.exists() {
        println!("SKIPPED: /usr/bin/systemd-analyze is not installed");
        eprintln!("SKIPPED: /usr/bin/systemd-analyze is not installed");
        return;
    }
    // verify checks that ExecStart's binary exists: the copies run the one just built.
    let dir = procs::scratch("units");
    for unit in ["izyrt-hub.service", "izyrt-peer@.service"] {
        let text = std::fs::read_to_string(kit(unit)).unwrap();
        assert!(text.contains("ExecStart=/usr/bin/izyrt "), "{unit}");
        for needed in [
            "--token-file /etc/izyrt/token",
            "LimitRTPRIO=95",
            "LimitMEMLOCK=infinity",
            "Restart=on-failure",
            "User=izyrt",
            "SupplementaryGroups=audio",
            "DeviceAllow=char-alsa rw",
            "NoNewPrivileges=yes",
        ] {
            assert!(text.contains(needed), "{unit} lacks {needed}");
        }
        std::fs::write(dir.join(unit), text.replace("/usr/bin/izyrt", BIN)).unwrap();
    }
    let out = Command::new(analyze)
        .args(["verify", "--man=no"])
        .arg(dir.join("izyrt-hub.service"))
        // A template is verified through an instance of it.
        .arg(dir.join("izyrt-peer@alice.service"))
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "systemd-analyze verify failed:\n{said}"
    );
    assert_eq!(said.trim(), "", "systemd-analyze verify warned");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn limits_file_grants_the_audio_group() {
    let text = std::fs::read_to_string(kit("99-izyrt.conf")).unwrap();
    let lines: Vec<Vec<&str>> = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert!(
        lines.contains(&vec!["@audio", "-", "rtprio", "95"]),
        "{text}"
    );
    assert!(
        lines.contains(&vec!["@audio", "-", "memlock", "unlimited"]),
        "{text}"
    );
}

#[test]
fn token_file_joins_and_a_missing_one_is_refused() {
    let dir = procs::scratch("token-file");
    let path = dir.join("token");
    std::fs::write(&path, "s3cret\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let file = path.to_str().unwrap();
    let (mut hub, addr, hub_metrics) = procs::hub(&["--token-file", file]);
    let (peer, _) = procs::peer(addr, "alice", "virtual", &["--token-file", file]);
    procs::wait_for(
        "alice joined with the token from the file",
        Duration::from_secs(20),
        || (procs::metrics(hub_metrics)["connections"]["alice"]["connected"] == true).then_some(()),
    );
    drop(peer);
    // The token the hub read is the file's line without its newline: the same token on
    // the command line joins too.
    let (bob, _) = procs::peer(addr, "bob", "virtual", &["--token", "s3cret"]);
    procs::wait_for("bob joined with --token", Duration::from_secs(20), || {
        (procs::metrics(hub_metrics)["connections"]["bob"]["connected"] == true).then_some(())
    });
    drop(bob);
    assert!(
        !hub.output().contains("without a token"),
        "{}",
        hub.output()
    );
    hub.interrupt(Duration::from_secs(10));

    let missing = dir.join("missing");
    let (code, _, err) = izyrt(&[
        "hub",
        "--listen",
        "127.0.0.1:0",
        "--metrics",
        "none",
        "--token-file",
        missing.to_str().unwrap(),
    ]);
    assert_eq!(code, 64, "{err}");
    assert!(
        err.contains(&format!("--token-file {}", missing.display()))
            && err.contains("cannot read the token file"),
        "{err}"
    );
    // Both at once: which one was meant?
    let (code, _, err) = izyrt(&[
        "peer",
        "--hub",
        "127.0.0.1:1",
        "--user",
        "x",
        "--token",
        "a",
        "--token-file",
        file,
    ]);
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("--token and --token-file"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_hub_beyond_loopback_without_a_token_warns() {
    let mut open = procs::Proc::start(
        "open hub",
        &["hub", "--listen", "0.0.0.0:0", "--metrics", "none"],
    );
    let line = open.wait_line("without a token", Duration::from_secs(20));
    assert!(
        line.contains("hub listens on 0.0.0.0:")
            && line.contains("anyone who can reach it can join; set --token-file"),
        "{line}"
    );
    assert!(
        !line.contains("0.0.0.0:0 "),
        "the bound port is named: {line}"
    );
    open.interrupt(Duration::from_secs(10));

    let mut local = procs::Proc::start(
        "loopback hub",
        &["hub", "--listen", "127.0.0.1:0", "--metrics", "none"],
    );
    local.wait_line("listening on", Duration::from_secs(20));
    local.interrupt(Duration::from_secs(10));
    assert!(
        !local.output().contains("without a token"),
        "{}",
        local.output()
    );
}

#[test]
fn version_names_the_commit() {
    let (code, out, _) = izyrt(&["--version"]);
    assert_eq!(code, 0);
    let git = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    match git {
        Some(commit) => assert_eq!(
            out.trim(),
            format!("izyrt {} (commit {commit})", env!("CARGO_PKG_VERSION"))
        ),
        None => assert!(out.contains("(commit unknown)"), "{out}"),
    }
}

#[test]
fn completions_and_man_page_are_generated() {
    let (code, bash, _) = izyrt(&["completions", "bash"]);
    assert_eq!(code, 0);
    assert!(
        bash.contains("_izyrt()") && bash.contains("doctor"),
        "{bash}"
    );
    let (code, zsh, _) = izyrt(&["completions", "zsh"]);
    assert_eq!(code, 0);
    assert!(zsh.starts_with("#compdef izyrt"), "{zsh}");
    let (code, man, _) = izyrt(&["man"]);
    assert_eq!(code, 0);
    // roff: the title line, and the subcommands listed.
    assert!(
        man.contains("\n.TH izyrt 1 ") && man.contains("izyrt\\-doctor"),
        "{man}"
    );
    let (code, _, err) = izyrt(&["completions", "tcsh"]);
    assert_ne!(code, 0, "{err}");
}
