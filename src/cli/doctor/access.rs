//! The doctor's access checks (main thread): membership of the `audio` group (which the
//! limits.d file and `/dev/snd`'s permissions name) and access to the sound devices.

use std::ffi::{CStr, CString};

use super::Check;

const GROUP_FIX: &str = "sudo usermod -aG audio $USER, then log out and in again";

/// `audio group`: this process runs with the `audio` group (or as root).
pub(super) fn audio_group() -> Check {
    const NAME: &str = "audio group";
    // SAFETY: geteuid cannot fail.
    let euid = unsafe { libc::geteuid() };
    let user = user_name(euid).unwrap_or_else(|| format!("uid {euid}"));
    let Some((gid, members)) = group("audio") else {
        return Check::warn(
            NAME,
            "this system has no audio group: the limits.d file's @audio lines apply to no one",
            Some("sudo groupadd --system audio && sudo usermod -aG audio $USER".into()),
        );
    };
    if process_groups().contains(&gid) {
        return Check::pass(NAME, format!("{user} runs with the audio group"));
    }
    if euid == 0 {
        return Check::pass(NAME, "root: needs no group");
    }
    if members.contains(&user) {
        return Check::warn(
            NAME,
            format!(
                "{user} is in the audio group in /etc/group, but not in this session: log out and in again"
            ),
            Some("log out and in again (or `newgrp audio` in this shell)".into()),
        );
    }
    Check::warn(
        NAME,
        format!(
            "{user} is not in the audio group: the @audio realtime limits and /dev/snd's group do not apply"
        ),
        Some(GROUP_FIX.into()),
    )
}

/// `/dev/snd`: the sound devices exist and this process may read and write them. With
/// `card_wanted` (an ALSA `hw:` device was given), a missing `/dev/snd` is a FAIL.
pub(super) fn dev_snd(card_wanted: bool) -> Check {
    const NAME: &str = "/dev/snd";
    let entries = match std::fs::read_dir("/dev/snd") {
        Ok(e) => e,
        Err(_) if card_wanted => {
            return Check::fail(
                NAME,
                "no /dev/snd: no sound card is visible to this machine (or container)",
                Some(
                    "check the card with `aplay -l`; in a container pass --device /dev/snd".into(),
                ),
            );
        }
        Err(_) => {
            return Check::warn(
                NAME,
                "no /dev/snd: no sound card is visible; only virtual and jack: devices open",
                None,
            );
        }
    };
    let mut names: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("pcm") || n.starts_with("control"))
        .collect();
    names.sort();
    let denied: Vec<&String> = names
        .iter()
        .filter(|n| !read_write(&format!("/dev/snd/{n}")))
        .collect();
    if names.is_empty() {
        return Check::warn(NAME, "/dev/snd holds no PCM or control device", None);
    }
    if denied.is_empty() {
        return Check::pass(
            NAME,
            format!("{} devices, all readable and writable", names.len()),
        );
    }
    let shown: Vec<&str> = denied.iter().take(4).map(|s| s.as_str()).collect();
    Check::fail(
        NAME,
        format!(
            "no read/write access to {} of {} devices ({}{}); see `ls -l /dev/snd`",
            denied.len(),
            names.len(),
            shown.join(", "),
            if denied.len() > shown.len() {
                ", ..."
            } else {
                ""
            }
        ),
        Some(GROUP_FIX.into()),
    )
}

/// Whether this process (its effective ids) may open `path` for reading and writing.
fn read_write(path: &str) -> bool {
    let Ok(c) = CString::new(path) else {
        return false;
    };
    // SAFETY: a valid NUL-terminated path; AT_EACCESS checks the effective ids.
    unsafe {
        libc::faccessat(
            libc::AT_FDCWD,
            c.as_ptr(),
            libc::R_OK | libc::W_OK,
            libc::AT_EACCESS,
        ) == 0
    }
}

/// The effective and supplementary group ids of this process.
fn process_groups() -> Vec<libc::gid_t> {
    // SAFETY: getgroups(0, NULL) returns the count; the second call fills at most `n`.
    unsafe {
        let n = libc::getgroups(0, std::ptr::null_mut());
        let mut groups = vec![0; n.max(0) as usize];
        let got = libc::getgroups(n, groups.as_mut_ptr());
        groups.truncate(got.max(0) as usize);
        groups.push(libc::getegid());
        groups
    }
}

/// The name of the user `uid`.
fn user_name(uid: libc::uid_t) -> Option<String> {
    // SAFETY: getpwuid returns NULL or a pointer to static storage, read at once on this
    // (the main) thread.
    unsafe {
        let pw = libc::getpwuid(uid);
        if pw.is_null() {
            return None;
        }
        Some(CStr::from_ptr((*pw).pw_name).to_string_lossy().into_owned())
    }
}

/// The id and listed members of group `name`.
fn group(name: &str) -> Option<(libc::gid_t, Vec<String>)> {
    let c = CString::new(name).ok()?;
    // SAFETY: getgrnam returns NULL or a pointer to static storage whose member list is a
    // NULL-terminated array of C strings; read at once on this (the main) thread.
    unsafe {
        let gr = libc::getgrnam(c.as_ptr());
        if gr.is_null() {
            return None;
        }
        let mut members = Vec::new();
        let mut p = (*gr).gr_mem;
        while !p.is_null() && !(*p).is_null() {
            members.push(CStr::from_ptr(*p).to_string_lossy().into_owned());
            p = p.add(1);
        }
        Some(((*gr).gr_gid, members))
    }
}
