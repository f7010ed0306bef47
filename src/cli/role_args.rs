//! Options every networked role takes (hub, peer, monitor, dev mode), resolved against
//! the `--config` file and the `IZYRT_*` environment (main thread).

use std::net::{SocketAddr, ToSocketAddrs};

use super::CliError;
use crate::config::{CommonArgs, ConfigFile, Settings, pick};
use crate::device::DeviceSpec;
use crate::rt::thread::DEFAULT_PRIORITY;

/// Shared options of the networked roles.
#[derive(Debug, Clone, clap::Args)]
pub struct RoleArgs {
    /// Rate, period, channels, config file.
    #[command(flatten)]
    pub common: CommonArgs,
    /// Shared secret: the hub requires it in HELLO; a client sends it.
    #[arg(long, value_name = "T", env = "IZYRT_TOKEN")]
    pub token: Option<String>,
    /// Read the token from this file (one line; kept out of `ps` and shell history).
    #[arg(long = "token-file", value_name = "PATH", env = "IZYRT_TOKEN_FILE")]
    pub token_file: Option<std::path::PathBuf>,
    /// Where the metrics HTTP server listens (`none` to disable; binding beyond
    /// 127.0.0.1 exposes unauthenticated metrics).
    #[arg(long, value_name = "ADDR", env = "IZYRT_METRICS")]
    pub metrics: Option<String>,
    /// Periods in each device buffer (default 2).
    #[arg(long, value_name = "N", env = "IZYRT_PERIODS")]
    pub periods: Option<u32>,
    /// SCHED_FIFO priority of the RT threads (default 80).
    #[arg(long, value_name = "P", env = "IZYRT_PRIORITY")]
    pub priority: Option<u8>,
    /// Pin the RT threads to this CPU.
    #[arg(long, value_name = "N", env = "IZYRT_CPU")]
    pub cpu: Option<usize>,
    /// A connection silent for this long is dead, ms (default 5000).
    #[arg(long = "liveness-ms", value_name = "MS", env = "IZYRT_LIVENESS_MS")]
    pub liveness_ms: Option<u32>,
    /// A track whose seq has not advanced for this long is disconnected, ms (default 100).
    #[arg(
        long = "latency-threshold-ms",
        value_name = "MS",
        env = "IZYRT_LATENCY_THRESHOLD_MS"
    )]
    pub latency_threshold_ms: Option<u32>,
    /// Below this level audio counts as silence, dBFS (default -60).
    #[arg(
        long = "silence-threshold-db",
        value_name = "DB",
        allow_negative_numbers = true,
        env = "IZYRT_SILENCE_THRESHOLD_DB"
    )]
    pub silence_threshold_db: Option<f64>,
    /// Audio must stay below the threshold this long to be silent, ms (default 1000).
    #[arg(
        long = "silence-hold-ms",
        value_name = "MS",
        env = "IZYRT_SILENCE_HOLD_MS"
    )]
    pub silence_hold_ms: Option<u32>,
    /// Cap on the adaptive jitter buffers, ms: a late packet grows a buffer by a period
    /// up to this, trading glitches for a bounded latency (default: 16 packets at the
    /// hub, 32 periods at a client).
    #[arg(long = "jitter-max-ms", value_name = "MS", env = "IZYRT_JITTER_MAX_MS")]
    pub jitter_max_ms: Option<u32>,
    /// Floor of the adaptive jitter buffers, ms: they start there and never shrink
    /// below it, trading latency for fewer glitches on a host or network that stalls
    /// (default: one packet).
    #[arg(long = "jitter-min-ms", value_name = "MS", env = "IZYRT_JITTER_MIN_MS")]
    pub jitter_min_ms: Option<u32>,
}

/// [`RoleArgs`] resolved.
#[derive(Debug, Clone)]
pub struct Role {
    /// What the role's threads are built with.
    pub settings: Settings,
    /// The config file (for role-specific keys).
    pub file: ConfigFile,
    /// Token.
    pub token: Option<String>,
    /// Metrics address, `None` when disabled.
    pub metrics: Option<SocketAddr>,
}

fn usage(e: impl std::fmt::Display) -> CliError {
    CliError::Usage(e.to_string())
}

impl RoleArgs {
    /// Resolves every option: flag or `IZYRT_*`, then the config file, then the default.
    ///
    /// # Errors
    /// [`CliError::Usage`] naming the first refused option.
    pub fn resolve(&self, default_metrics: &str) -> Result<Role, CliError> {
        let (common, file) = self.common.resolve().map_err(usage)?;
        let metrics_text = self
            .metrics
            .clone()
            .or(file.string("metrics").map_err(usage)?)
            .unwrap_or_else(|| default_metrics.to_owned());
        let metrics = if metrics_text == "none" {
            None
        } else {
            let port = default_metrics
                .rsplit_once(':')
                .and_then(|(_, p)| p.parse().ok());
            Some(resolve_addr("--metrics", &metrics_text, port)?)
        };
        let silence = pick(
            "silenceThresholdDb",
            self.silence_threshold_db,
            file.f64("silenceThresholdDb").map_err(usage)?,
            -60.0,
            -150.0..=0.0,
        )
        .map_err(usage)?;
        let jitter_ms = |key: &str, flag: Option<u32>| {
            flag.or(file.u32(key).map_err(usage)?)
                .map(|ms| pick(key, Some(ms), None, ms, 1..=2_000))
                .transpose()
                .map_err(usage)
        };
        let jitter_max_ms = jitter_ms("jitterMaxMs", self.jitter_max_ms)?;
        let jitter_min_ms = jitter_ms("jitterMinMs", self.jitter_min_ms)?;
        if let (Some(min), Some(max)) = (jitter_min_ms, jitter_max_ms)
            && min > max
        {
            return Err(usage(format!(
                "--jitter-min-ms {min} is above --jitter-max-ms {max}: the jitter buffers' floor cannot be above their cap"
            )));
        }
        let settings = Settings {
            rate: common.rate,
            period: common.period,
            channels: common.channels,
            periods: pick(
                "periods",
                self.periods,
                file.u32("periods").map_err(usage)?,
                2,
                2..=16,
            )
            .map_err(usage)?,
            priority: pick(
                "priority",
                self.priority.map(u32::from),
                file.u32("priority").map_err(usage)?,
                u32::from(DEFAULT_PRIORITY),
                1..=99,
            )
            .map_err(usage)? as u8,
            cpu: check_cpu(self.cpu)?,
            liveness_ms: pick(
                "livenessMs",
                self.liveness_ms,
                file.u32("livenessMs").map_err(usage)?,
                5_000,
                100..=600_000,
            )
            .map_err(usage)?,
            latency_threshold_ms: pick(
                "latencyThresholdMs",
                self.latency_threshold_ms,
                file.u32("latencyThresholdMs").map_err(usage)?,
                100,
                1..=60_000,
            )
            .map_err(usage)?,
            silence_threshold_db: silence as f32,
            silence_hold_ms: pick(
                "silenceHoldMs",
                self.silence_hold_ms,
                file.u32("silenceHoldMs").map_err(usage)?,
                1_000,
                1..=600_000,
            )
            .map_err(usage)?,
            jitter_max_ms,
            jitter_min_ms,
        };
        Ok(Role {
            settings,
            token: self.token(&file)?,
            metrics,
            file,
        })
    }
}

impl RoleArgs {
    /// The token: `--token`, else `--token-file`, else the config file's `token`, else
    /// its `tokenFile`. Both flags at once are refused (which one was meant?).
    fn token(&self, file: &ConfigFile) -> Result<Option<String>, CliError> {
        if let Some(path) = &self.token_file {
            if self.token.is_some() {
                return Err(usage(
                    "--token and --token-file (or IZYRT_TOKEN and IZYRT_TOKEN_FILE) are both set: give one",
                ));
            }
            return super::token::read_token_file("--token-file", path).map(Some);
        }
        if let Some(t) = self.token.clone().or(file.string("token").map_err(usage)?) {
            return Ok(Some(t));
        }
        file.string("tokenFile")
            .map_err(usage)?
            .map(|p| super::token::read_token_file("tokenFile", p.as_ref()))
            .transpose()
    }
}

impl Role {
    /// A device option: the flag, else the config `key`, else `default`.
    ///
    /// # Errors
    /// [`CliError::Usage`] for a bad device string.
    pub fn device(
        &self,
        option: &str,
        flag: Option<&str>,
        key: &str,
        default: Option<&str>,
    ) -> Result<Option<DeviceSpec>, CliError> {
        let text = match flag {
            Some(t) => Some(t.to_owned()),
            None => self
                .file
                .string(key)
                .map_err(usage)?
                .or(default.map(str::to_owned)),
        };
        text.map(|t| {
            t.parse::<DeviceSpec>()
                .map_err(|e| CliError::Usage(format!("{option} {t}: {e}")))
        })
        .transpose()
    }
}

/// The port a hub listens on, and a client connects to, when the address names none.
pub const DEFAULT_HUB_PORT: u16 = 7100;

/// Resolves `HOST:PORT`, or `HOST` alone with `default_port` (the first address). `HOST`
/// is an IP address (`[::1]` for IPv6 with a port) or a name looked up in DNS.
///
/// # Errors
/// [`CliError::Usage`] naming `option`: a missing or bad port, or a host that does not
/// resolve ("cannot resolve host '...': ..." with the resolver's reason).
pub fn resolve_addr(
    option: &str,
    text: &str,
    default_port: Option<u16>,
) -> Result<SocketAddr, CliError> {
    let bad = |why: String| CliError::Usage(format!("{option} {text}: {why}"));
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let (host, port) = match text.rsplit_once(':') {
        // `::1` is an IPv6 address without a port, not host `:` port `1`.
        Some((h, p)) if !h.contains(':') || h.ends_with(']') => {
            let port = p
                .parse::<u16>()
                .map_err(|_| bad(format!("port '{p}' is not allowed (allowed: 0..=65535)")))?;
            (h, port)
        }
        _ => match default_port {
            Some(port) => (text, port),
            None => return Err(bad("give HOST:PORT".into())),
        },
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(bad("the host is missing".into()));
    }
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    match (host, port).to_socket_addrs() {
        Ok(mut addrs) => addrs
            .next()
            .ok_or_else(|| bad(format!("cannot resolve host '{host}': no address"))),
        Err(e) => {
            let reason = crate::net::socket::os_reason(&e);
            let reason = reason
                .strip_prefix("failed to lookup address information: ")
                .map_or(reason.clone(), lower_first);
            Err(bad(format!("cannot resolve host '{host}': {reason}")))
        }
    }
}

/// `Name or service not known` → `name or service not known`.
fn lower_first(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map_or(String::new(), |c| c.to_lowercase().chain(chars).collect())
}

/// The CPUs online, `0..n` (at least 1).
pub fn online_cpus() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    usize::try_from(n).unwrap_or(1).max(1)
}

/// Checks `--cpu` against the CPUs online.
///
/// # Errors
/// [`CliError::Usage`] naming the value and the allowed range.
pub fn check_cpu(cpu: Option<usize>) -> Result<Option<usize>, CliError> {
    let n = online_cpus();
    match cpu {
        Some(c) if c >= n => Err(CliError::Usage(format!(
            "--cpu {c} is not allowed (allowed: 0..={}, the CPUs online)",
            n - 1
        ))),
        c => Ok(c),
    }
}
