//! `izyrt doctor [--device DEV] [--hub ADDR] [--json]`: checks that this machine can run
//! izyrt with low latency, and says how to fix what it cannot (main thread; one probe
//! thread is realtime).
//!
//! Design: each group of checks lives in its own file and returns [`Check`]s: a name, a
//! status (PASS, WARN or FAIL), what was found, and — when not PASS — the exact command
//! that fixes it. Nothing is assumed: the realtime and memory checks go through the very
//! calls the engine makes (`rt::thread::spawn`, `rt::memory::lock_memory`), the device
//! check opens the device with the role's options and drives it for two seconds through
//! the engine's RT runner, and the hub check sends a real HELLO and reads the answer. The
//! doctor takes every option a role takes (flags, `IZYRT_*`, `--config`), so running it
//! under a service's environment file checks what that service will get.
//!
//! FAIL means the role will not work as configured (no realtime, a device that does not
//! open or xruns, a hub that refuses us); WARN means it works but latency or reliability
//! is at risk, or the check could not see (no cpufreq on a VM). The exit status is 1 when
//! any check failed, 0 otherwise.
//!
//! Which role is checked: with `--hub` (or `IZYRT_HUB`, or `hub` in the config file) a
//! client — the hub is contacted and the peer's metrics port (127.0.0.1:7181) must be
//! free; without, a hub — its listen port (0.0.0.0:7100) and metrics port (127.0.0.1:7180)
//! must be free.

mod access;
mod device;
mod kernel;
mod net;
mod rights;
mod server;

use serde_json::{Value, json};

use super::CliError;
use super::role_args::RoleArgs;
use crate::device::DeviceSpec;

/// Arguments of `izyrt doctor`.
#[derive(Debug, clap::Args)]
pub struct DoctorArgs {
    /// The device to open and run for two seconds (default: the config file's `device`,
    /// else `virtual`).
    #[arg(long, value_name = "DEV", env = "IZYRT_DEVICE")]
    pub device: Option<String>,
    /// A hub to greet with a real HELLO (token, rate and channels must agree); also
    /// makes the doctor check a client's ports rather than a hub's.
    #[arg(long, value_name = "ADDR", env = "IZYRT_HUB")]
    pub hub: Option<String>,
    /// The hub's listen address whose port must be free (checked without `--hub`;
    /// default 0.0.0.0:7100).
    #[arg(long, value_name = "ADDR", env = "IZYRT_LISTEN")]
    pub listen: Option<String>,
    /// Print one JSON object `{checks:[{name,status,detail,fix}], summary:{pass,warn,fail}}`
    /// on standard output instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Options every role takes (`--rate`, `--period`, `--periods`, `--token`, ...).
    #[command(flatten)]
    pub role: RoleArgs,
}

/// A check's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// As it should be.
    Pass,
    /// Works, but latency or reliability is at risk (or the check could not see).
    Warn,
    /// The role will not work as configured.
    Fail,
}

impl Status {
    /// `PASS`, `WARN` or `FAIL`.
    pub fn name(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        }
    }
}

/// One line of the doctor's report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// Short name (`realtime`, `memlock`, ...).
    pub name: &'static str,
    /// The verdict.
    pub status: Status,
    /// What was found.
    pub detail: String,
    /// The command (or setting) that fixes it, when not PASS and one exists.
    pub fix: Option<String>,
}

impl Check {
    /// A PASS.
    pub fn pass(name: &'static str, detail: impl Into<String>) -> Check {
        Check {
            name,
            status: Status::Pass,
            detail: detail.into(),
            fix: None,
        }
    }

    /// A WARN with an optional fix.
    pub fn warn(name: &'static str, detail: impl Into<String>, fix: Option<String>) -> Check {
        Check {
            name,
            status: Status::Warn,
            detail: detail.into(),
            fix,
        }
    }

    /// A FAIL with an optional fix.
    pub fn fail(name: &'static str, detail: impl Into<String>, fix: Option<String>) -> Check {
        Check {
            name,
            status: Status::Fail,
            detail: detail.into(),
            fix,
        }
    }
}

/// The fix for missing realtime rights or memory locking: the limits.d file izyrt ships
/// (`scripts/deploy/99-izyrt.conf`) and the audio group.
pub(crate) const LIMITS_FIX: &str = "printf '@audio - rtprio 95\\n@audio - memlock unlimited\\n' | sudo tee /etc/security/limits.d/99-izyrt.conf && sudo usermod -aG audio $USER, then log in again (systemd units: LimitRTPRIO=95, LimitMEMLOCK=infinity)";

/// Runs every check and prints the report; returns 1 when a check failed, else 0.
///
/// # Errors
/// [`CliError::Usage`] for an option the roles would refuse too (bad rate, bad config
/// file); [`CliError::Io`] when the report cannot be written.
pub fn run(args: &DoctorArgs) -> Result<i32, CliError> {
    let hub = hub_text(args)?;
    // A peer's default metrics port with a hub to join, a hub's without.
    let role = args.role.resolve(if hub.is_some() {
        "127.0.0.1:7181"
    } else {
        "127.0.0.1:7180"
    })?;
    let device_text = match &args.device {
        Some(d) => d.clone(),
        None => role
            .file
            .string("device")
            .map_err(|e| CliError::Usage(e.to_string()))?
            .unwrap_or_else(|| "virtual".into()),
    };
    let spec: DeviceSpec = device_text
        .parse()
        .map_err(|e| CliError::Usage(format!("--device {device_text}: {e}")))?;
    // The doctor reports refusals itself, as checks with their fix.
    crate::rt::thread::silence_refusal_warnings();

    let mut checks = vec![
        rights::realtime(&role.settings),
        rights::memlock(),
        kernel::governor(),
        kernel::preempt(),
        kernel::rt_runtime(),
        kernel::threadirqs(),
    ];
    let card = server::card_of(&spec);
    checks.push(access::audio_group());
    checks.push(access::dev_snd(card.is_some()));
    checks.push(server::sound_server(card));
    checks.extend(device::open_and_run(&spec, &device_text, &role.settings));
    match &hub {
        Some(hub) => {
            checks.push(net::port_free("metrics port", role.metrics));
            checks.push(net::hub(hub, &role));
        }
        None => {
            let listen = match &args.listen {
                Some(l) => l.clone(),
                None => role
                    .file
                    .string("listen")
                    .map_err(|e| CliError::Usage(e.to_string()))?
                    .unwrap_or_else(|| "0.0.0.0:7100".into()),
            };
            checks.push(net::listen_port(&listen));
            checks.push(net::port_free("metrics port", role.metrics));
        }
    }
    if args.json {
        print_json(&checks)?;
    } else {
        print_table(&checks);
    }
    Ok(if checks.iter().any(|c| c.status == Status::Fail) {
        1
    } else {
        0
    })
}

/// `--hub`, else the config file's `hub`.
fn hub_text(args: &DoctorArgs) -> Result<Option<String>, CliError> {
    match &args.hub {
        Some(h) => Ok(Some(h.clone())),
        None => {
            let file = crate::config::ConfigFile::load(args.role.common.config.as_deref())
                .map_err(|e| CliError::Usage(e.to_string()))?;
            file.string("hub")
                .map_err(|e| CliError::Usage(e.to_string()))
        }
    }
}

/// How many checks passed, warned and failed.
fn summary(checks: &[Check]) -> (usize, usize, usize) {
    let count = |s| checks.iter().filter(|c| c.status == s).count();
    (
        count(Status::Pass),
        count(Status::Warn),
        count(Status::Fail),
    )
}

/// The report as one JSON value.
///
/// # Example (shape)
/// `{"checks":[{"name":"realtime","status":"PASS","detail":"...","fix":null}],
///   "summary":{"pass":1,"warn":0,"fail":0}}`
pub fn report_json(checks: &[Check]) -> Value {
    let (pass, warn, fail) = summary(checks);
    json!({
        "checks": checks.iter().map(|c| json!({
            "name": c.name,
            "status": c.status.name(),
            "detail": c.detail,
            "fix": c.fix,
        })).collect::<Vec<_>>(),
        "summary": {"pass": pass, "warn": warn, "fail": fail},
    })
}

fn print_json(checks: &[Check]) -> Result<(), CliError> {
    let Value::Object(map) = report_json(checks) else {
        unreachable!("report_json builds an object");
    };
    super::rt_session::print_json(map)
}

/// The report as aligned lines, one per check, then the summary.
pub fn report_table(checks: &[Check]) -> String {
    let width = checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
    let mut out = String::new();
    for c in checks {
        out.push_str(&format!(
            "{}  {:<width$}  {}",
            c.status.name(),
            c.name,
            c.detail
        ));
        if let Some(fix) = &c.fix {
            out.push_str(&format!(" — fix: {fix}"));
        }
        out.push('\n');
    }
    let (pass, warn, fail) = summary(checks);
    out.push_str(&format!("doctor: {pass} pass, {warn} warn, {fail} fail\n"));
    out
}

fn print_table(checks: &[Check]) {
    print!("{}", report_table(checks));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_and_counts() {
        let checks = [
            Check::pass("realtime", "SCHED_FIFO 80"),
            Check::warn("cpu governor", "powersave", Some("echo performance".into())),
            Check::fail("hub", "refused", None),
        ];
        let t = report_table(&checks);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "PASS  realtime      SCHED_FIFO 80");
        assert_eq!(
            lines[1],
            "WARN  cpu governor  powersave — fix: echo performance"
        );
        assert_eq!(lines[2], "FAIL  hub           refused");
        assert_eq!(lines[3], "doctor: 1 pass, 1 warn, 1 fail");
        let j = report_json(&checks);
        assert_eq!(j["summary"], json!({"pass": 1, "warn": 1, "fail": 1}));
        assert_eq!(j["checks"][1]["fix"], "echo performance");
        assert_eq!(j["checks"][2]["status"], "FAIL");
        assert!(j["checks"][0]["fix"].is_null());
    }
}
