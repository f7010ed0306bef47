//! The doctor's kernel checks (main thread): CPU frequency governor, preemption model,
//! realtime throttling and threaded interrupts, read from `/sys` and `/proc`.
//!
//! Each reader is split from its verdict so the verdicts are tested on fixed inputs; the
//! readers only gather text.

use std::path::Path;

use super::Check;

/// The fix that puts a kernel parameter on the boot command line (Debian/Ubuntu GRUB).
fn boot_param_fix(param: &str) -> String {
    format!(
        "add {param} to GRUB_CMDLINE_LINUX_DEFAULT in /etc/default/grub, then `sudo update-grub` and reboot"
    )
}

/// `cpu governor`: every CPU's `scaling_governor` should be `performance`.
pub(super) fn governor() -> Check {
    let mut found = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/sys/devices/system/cpu") {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(n) = name.strip_prefix("cpu") else {
                continue;
            };
            let Ok(n) = n.parse::<u32>() else { continue };
            let path = e.path().join("cpufreq/scaling_governor");
            if let Ok(g) = std::fs::read_to_string(&path) {
                found.push((n, g.trim().to_owned()));
            }
        }
    }
    found.sort();
    governor_verdict(&found)
}

fn governor_verdict(found: &[(u32, String)]) -> Check {
    const NAME: &str = "cpu governor";
    if found.is_empty() {
        return Check::warn(
            NAME,
            "no /sys/devices/system/cpu/cpu*/cpufreq/scaling_governor (a VM, or no cpufreq driver): the CPU clock policy cannot be checked; on real hardware a CPU that scales down wakes late",
            None,
        );
    }
    let slow: Vec<String> = found
        .iter()
        .filter(|(_, g)| g != "performance")
        .map(|(n, g)| format!("cpu{n} {g}"))
        .collect();
    if slow.is_empty() {
        return Check::pass(NAME, format!("performance on all {} CPUs", found.len()));
    }
    Check::warn(
        NAME,
        format!("{}: a CPU that clocks down wakes late", slow.join(", ")),
        Some(
            "echo performance | sudo tee /sys/devices/system/cpu/cpu*/cpufreq/scaling_governor"
                .into(),
        ),
    )
}

/// The preemption model, as far as it can be seen.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Preempt {
    /// `PREEMPT_RT`.
    Rt,
    /// Full preemption (static or chosen at boot).
    Full,
    /// Lazy preemption (RT tasks still preempt at once).
    Lazy,
    /// `voluntary` or `none`.
    Weak(String),
    /// `PREEMPT_DYNAMIC` whose choice is not visible.
    DynamicUnknown,
}

/// `preempt`: a fully preemptible or `PREEMPT_RT` kernel.
pub(super) fn preempt() -> Check {
    let debugfs = std::fs::read_to_string("/sys/kernel/debug/sched/preempt").ok();
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    preempt_verdict(&uname_version(), debugfs.as_deref(), &cmdline)
}

/// `uname -v`: the kernel's build string (`#1 SMP PREEMPT_DYNAMIC ...`).
fn uname_version() -> String {
    // SAFETY: utsname is plain data; uname fills it.
    unsafe {
        let mut u: libc::utsname = std::mem::zeroed();
        if libc::uname(&mut u) != 0 {
            return String::new();
        }
        std::ffi::CStr::from_ptr(u.version.as_ptr())
            .to_string_lossy()
            .into_owned()
    }
}

fn preempt_model(version: &str, debugfs: Option<&str>, cmdline: &str) -> Preempt {
    let words: Vec<&str> = version.split_whitespace().collect();
    if words.contains(&"PREEMPT_RT") {
        return Preempt::Rt;
    }
    let from_name = |m: &str| match m {
        "full" => Preempt::Full,
        "lazy" => Preempt::Lazy,
        "rt" => Preempt::Rt,
        other => Preempt::Weak(other.to_owned()),
    };
    // debugfs marks the model in force: `none voluntary (full) lazy`.
    if let Some(m) = debugfs.and_then(|t| {
        t.split_whitespace()
            .find_map(|w| w.strip_prefix('(').and_then(|w| w.strip_suffix(')')))
    }) {
        return from_name(m);
    }
    if words.contains(&"PREEMPT_DYNAMIC") {
        return match cmdline
            .split_whitespace()
            .find_map(|w| w.strip_prefix("preempt="))
        {
            Some(m) => from_name(m),
            None => Preempt::DynamicUnknown,
        };
    }
    if words.contains(&"PREEMPT") {
        Preempt::Full
    } else if words.contains(&"PREEMPT_LAZY") {
        Preempt::Lazy
    } else {
        Preempt::Weak("voluntary or none".into())
    }
}

fn preempt_verdict(version: &str, debugfs: Option<&str>, cmdline: &str) -> Check {
    const NAME: &str = "preempt";
    let rt_kernel =
        "or install a PREEMPT_RT kernel (Debian: `sudo apt install linux-image-rt-amd64`)";
    match preempt_model(version, debugfs, cmdline) {
        Preempt::Rt => Check::pass(NAME, "PREEMPT_RT kernel"),
        Preempt::Full => Check::pass(NAME, "full preemption"),
        Preempt::Lazy => Check::pass(
            NAME,
            "lazy preemption (realtime threads still preempt at once)",
        ),
        Preempt::DynamicUnknown => Check::warn(
            NAME,
            format!(
                "PREEMPT_DYNAMIC kernel ({}) without preempt= on the command line and no /sys/kernel/debug/sched/preempt: the model in force (often voluntary) is not visible",
                version.trim()
            ),
            Some(format!("{}; {rt_kernel}", boot_param_fix("preempt=full"))),
        ),
        Preempt::Weak(m) => Check::warn(
            NAME,
            format!(
                "preemption model {m}: a kernel path may delay an audio thread by milliseconds"
            ),
            Some(if version.contains("PREEMPT_DYNAMIC") {
                format!("{}; {rt_kernel}", boot_param_fix("preempt=full"))
            } else {
                format!("install a kernel with full preemption, {rt_kernel}")
            }),
        ),
    }
}

/// `rt throttling`: `/proc/sys/kernel/sched_rt_runtime_us`.
pub(super) fn rt_runtime() -> Check {
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .ok()
            .and_then(|t| t.trim().parse::<i64>().ok())
    };
    rt_runtime_verdict(
        read("/proc/sys/kernel/sched_rt_runtime_us"),
        read("/proc/sys/kernel/sched_rt_period_us"),
    )
}

fn rt_runtime_verdict(runtime: Option<i64>, period: Option<i64>) -> Check {
    const NAME: &str = "rt throttling";
    let period = period.unwrap_or(1_000_000);
    let fix = Some("echo 950000 | sudo tee /proc/sys/kernel/sched_rt_runtime_us".to_owned());
    match runtime {
        None => Check::warn(
            NAME,
            "/proc/sys/kernel/sched_rt_runtime_us is not readable",
            None,
        ),
        Some(-1) => Check::pass(
            NAME,
            "sched_rt_runtime_us -1: realtime threads are never throttled",
        ),
        Some(0) => Check::fail(
            NAME,
            "sched_rt_runtime_us 0: realtime threads get no CPU time at all",
            fix,
        ),
        Some(r) if r * 100 >= period * 95 => Check::pass(
            NAME,
            format!(
                "realtime threads may use {r} µs of every {period} µs (a runaway one cannot freeze the machine)"
            ),
        ),
        Some(r) => Check::warn(
            NAME,
            format!("sched_rt_runtime_us {r} of {period}: realtime threads are throttled early"),
            fix,
        ),
    }
}

/// `threadirqs`: interrupt handlers run as threads (so the sound card's can be raised).
pub(super) fn threadirqs() -> Check {
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    threadirqs_verdict(
        &cmdline,
        &uname_version(),
        Path::new("/proc/cmdline").exists(),
    )
}

fn threadirqs_verdict(cmdline: &str, version: &str, readable: bool) -> Check {
    const NAME: &str = "threadirqs";
    if version.split_whitespace().any(|w| w == "PREEMPT_RT") {
        return Check::pass(NAME, "PREEMPT_RT kernels always thread interrupts");
    }
    if cmdline.split_whitespace().any(|w| w == "threadirqs") {
        return Check::pass(NAME, "threadirqs is on the kernel command line");
    }
    Check::warn(
        NAME,
        if readable {
            "threadirqs is not on the kernel command line: the sound card's interrupt cannot be given a realtime priority (rtirq)"
        } else {
            "/proc/cmdline is not readable"
        },
        Some(boot_param_fix("threadirqs")),
    )
}

#[cfg(test)]
mod tests {
    use super::super::Status;
    use super::*;

    #[test]
    fn governor_verdicts() {
        assert_eq!(governor_verdict(&[]).status, Status::Warn);
        assert!(governor_verdict(&[]).detail.contains("cannot be checked"));
        let perf = [(0, "performance".to_owned()), (1, "performance".to_owned())];
        assert_eq!(governor_verdict(&perf).status, Status::Pass);
        let mixed = [(0, "performance".to_owned()), (1, "powersave".to_owned())];
        let c = governor_verdict(&mixed);
        assert_eq!(c.status, Status::Warn);
        assert!(c.detail.contains("cpu1 powersave"), "{}", c.detail);
        assert!(c.fix.unwrap().contains("scaling_governor"));
    }

    #[test]
    fn preemption_models() {
        let dynamic = "#1 SMP PREEMPT_DYNAMIC Debian 6.1.0";
        assert_eq!(
            preempt_model(dynamic, None, "quiet"),
            Preempt::DynamicUnknown
        );
        assert_eq!(preempt_model(dynamic, None, "preempt=full"), Preempt::Full);
        assert_eq!(
            preempt_model(dynamic, Some("none (voluntary) full\n"), "preempt=full"),
            Preempt::Weak("voluntary".into())
        );
        assert_eq!(
            preempt_model("#1 SMP PREEMPT_RT Debian", None, ""),
            Preempt::Rt
        );
        assert_eq!(
            preempt_model("#1 SMP PREEMPT Tue Jan", None, ""),
            Preempt::Full
        );
        assert_eq!(
            preempt_model("#1 SMP Tue Jan", None, ""),
            Preempt::Weak("voluntary or none".into())
        );
        let c = preempt_verdict(dynamic, None, "");
        assert_eq!(c.status, Status::Warn);
        assert!(c.fix.unwrap().contains("preempt=full"));
        assert_eq!(
            preempt_verdict(dynamic, None, "preempt=full").status,
            Status::Pass
        );
    }

    #[test]
    fn rt_runtime_verdicts() {
        assert_eq!(
            rt_runtime_verdict(Some(950_000), Some(1_000_000)).status,
            Status::Pass
        );
        assert_eq!(rt_runtime_verdict(Some(-1), None).status, Status::Pass);
        assert_eq!(rt_runtime_verdict(Some(0), None).status, Status::Fail);
        assert_eq!(rt_runtime_verdict(Some(500_000), None).status, Status::Warn);
        assert_eq!(rt_runtime_verdict(None, None).status, Status::Warn);
    }

    #[test]
    fn threadirqs_verdicts() {
        assert_eq!(
            threadirqs_verdict("quiet threadirqs", "#1 SMP", true).status,
            Status::Pass
        );
        assert_eq!(
            threadirqs_verdict("quiet", "#1 SMP PREEMPT_RT", true).status,
            Status::Pass
        );
        let c = threadirqs_verdict("quiet nothreadirqs", "#1 SMP", true);
        assert_eq!(c.status, Status::Warn);
        assert!(c.fix.unwrap().contains("update-grub"));
    }
}
