//! Options shared by every role, and the JSON config file (main thread).
//!
//! Design: a value comes from, in order of precedence, the command-line flag, the
//! `IZYRT_*` environment variable (clap reads both), the `--config` JSON file, then the
//! default. The file uses the seed system's option names (`enableQOSMetrics`,
//! `downsampleRatio`, `upsampleRatio`, thresholds) so an existing configuration keeps
//! working; a key the program does not know is an error rather than silently ignored (a
//! misspelt threshold would otherwise do nothing, with no one the wiser). Every refusal is
//! one line naming the option, the value and what is allowed.

pub mod suggest;

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

/// Every key a config file may hold (one file can serve every role).
pub const KNOWN_KEYS: &[&str] = &[
    "rate",
    "period",
    "channels",
    "periods",
    "device",
    "capture",
    "playback",
    "hub",
    "user",
    "token",
    "tokenFile",
    "listen",
    "metrics",
    "mix",
    "files",
    "maxClients",
    "enableQOSMetrics",
    "qosIntervalMs",
    "downsampleRatio",
    "upsampleRatio",
    "latencyThresholdMs",
    "silenceThresholdDb",
    "silenceHoldMs",
    "livenessMs",
    "priority",
    "jitterMaxMs",
    "jitterMinMs",
];

/// A refused option value or config file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// A loaded `--config` file (or none).
///
/// # Example
/// ```
/// use izyrt::config::ConfigFile;
/// let f = ConfigFile::from_json("cfg.json", r#"{"rate": 44100, "enableQOSMetrics": true}"#).unwrap();
/// assert_eq!(f.u32("rate").unwrap(), Some(44100));
/// assert_eq!(f.bool("enableQOSMetrics").unwrap(), Some(true));
/// assert_eq!(f.u32("period").unwrap(), None);
/// assert!(ConfigFile::from_json("cfg.json", r#"{"rte": 1}"#).is_err());
/// ```
#[derive(Debug, Clone, Default)]
pub struct ConfigFile {
    name: String,
    map: Map<String, Value>,
}

impl ConfigFile {
    /// Loads `path`, or an empty file for `None`.
    ///
    /// # Errors
    /// [`ConfigError`] when the file cannot be read, is not a JSON object, or holds a key
    /// not in [`KNOWN_KEYS`].
    pub fn load(path: Option<&Path>) -> Result<ConfigFile, ConfigError> {
        let Some(path) = path else {
            return Ok(ConfigFile::default());
        };
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("--config {name}: {e}")))?;
        ConfigFile::from_json(&name, &text)
    }

    /// Parses `text` as the config file called `name`.
    ///
    /// # Errors
    /// As [`ConfigFile::load`].
    pub fn from_json(name: &str, text: &str) -> Result<ConfigFile, ConfigError> {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| ConfigError(format!("--config {name}: not valid JSON: {e}")))?;
        let Value::Object(map) = value else {
            return Err(ConfigError(format!(
                "--config {name}: must be a JSON object"
            )));
        };
        if let Some(key) = map.keys().find(|k| !KNOWN_KEYS.contains(&k.as_str())) {
            let hint = match suggest::nearest(key, KNOWN_KEYS.iter().copied()) {
                Some(near) => format!("did you mean \"{near}\"?"),
                None => "see the README's config file section for the keys".into(),
            };
            return Err(ConfigError(format!(
                "--config {name}: unknown option \"{key}\"; {hint}"
            )));
        }
        Ok(ConfigFile {
            name: name.to_owned(),
            map,
        })
    }

    fn bad(&self, key: &str, v: &Value, allowed: &str) -> ConfigError {
        ConfigError(format!(
            "--config {}: \"{key}\" {v} is not allowed (allowed: {allowed})",
            self.name
        ))
    }

    /// A whole number no larger than `u32::MAX`.
    ///
    /// # Errors
    /// [`ConfigError`] when present but not such a number.
    pub fn u32(&self, key: &str) -> Result<Option<u32>, ConfigError> {
        match self.map.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| self.bad(key, v, "a whole number")),
        }
    }

    /// A number.
    ///
    /// # Errors
    /// [`ConfigError`] when present but not a number.
    pub fn f64(&self, key: &str) -> Result<Option<f64>, ConfigError> {
        match self.map.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| self.bad(key, v, "a number")),
        }
    }

    /// `true` or `false`.
    ///
    /// # Errors
    /// [`ConfigError`] when present but not a boolean.
    pub fn bool(&self, key: &str) -> Result<Option<bool>, ConfigError> {
        match self.map.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_bool()
                .map(Some)
                .ok_or_else(|| self.bad(key, v, "true or false")),
        }
    }

    /// A string.
    ///
    /// # Errors
    /// [`ConfigError`] when present but not a string.
    pub fn string(&self, key: &str) -> Result<Option<String>, ConfigError> {
        match self.map.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_str()
                .map(|s| Some(s.to_owned()))
                .ok_or_else(|| self.bad(key, v, "a string")),
        }
    }

    /// A list of strings.
    ///
    /// # Errors
    /// [`ConfigError`] when present but not an array of strings.
    pub fn strings(&self, key: &str) -> Result<Option<Vec<String>>, ConfigError> {
        match self.map.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_array()
                .and_then(|a| {
                    a.iter()
                        .map(|s| s.as_str().map(str::to_owned))
                        .collect::<Option<Vec<_>>>()
                })
                .map(Some)
                .ok_or_else(|| self.bad(key, v, "an array of strings")),
        }
    }
}

/// The settings every role's threads are built with (resolved options).
///
/// # Example
/// ```
/// let s = izyrt::config::Settings::default();
/// assert_eq!((s.rate, s.period, s.channels, s.periods), (48_000, 64, 2, 2));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Stream rate, Hz (a client's device runs at this × its resampling ratio).
    pub rate: u32,
    /// Frames per period and per AUDIO packet.
    pub period: u32,
    /// Channels.
    pub channels: u16,
    /// Periods in each device buffer.
    pub periods: u32,
    /// SCHED_FIFO priority of the RT threads (net threads run 10 below).
    pub priority: u8,
    /// CPU to pin the RT threads to.
    pub cpu: Option<usize>,
    /// A connection silent for this long is dead, ms.
    pub liveness_ms: u32,
    /// A track whose seq has not advanced for this long is disconnected, ms.
    pub latency_threshold_ms: u32,
    /// Below this level audio counts as silence, dBFS.
    pub silence_threshold_db: f32,
    /// Audio must stay below the threshold this long to be silent, ms.
    pub silence_hold_ms: u32,
    /// Cap on what the adaptive jitter buffers may grow to, ms (`None`: the hub's 16
    /// packets, a client's 32 periods).
    pub jitter_max_ms: Option<u32>,
    /// Floor of the adaptive jitter buffers, ms: their start and lowest target (`None`:
    /// one packet).
    pub jitter_min_ms: Option<u32>,
}

impl Default for Settings {
    /// 48 kHz, 64-frame periods, stereo, 2 periods, priority 80, 5 s liveness, 100 ms
    /// latency threshold, silence below -60 dBFS for 1 s.
    fn default() -> Self {
        Settings {
            rate: 48_000,
            period: 64,
            channels: 2,
            periods: 2,
            priority: crate::rt::thread::DEFAULT_PRIORITY,
            cpu: None,
            liveness_ms: 5_000,
            latency_threshold_ms: 100,
            silence_threshold_db: -60.0,
            silence_hold_ms: 1_000,
            jitter_max_ms: None,
            jitter_min_ms: None,
        }
    }
}

impl Settings {
    /// The meter settings for streams of these settings at `rate`.
    pub fn meter(&self, rate: u32) -> crate::dsp::meter::MeterConfig {
        crate::dsp::meter::MeterConfig {
            rate,
            channels: self.channels,
            silence_threshold_dbfs: self.silence_threshold_db,
            silence_hold_ms: self.silence_hold_ms,
            ..Default::default()
        }
    }
}

/// `--rate`, `--period`, `--channels` and `--config`, which every role takes.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct CommonArgs {
    /// Stream rate, Hz (default 48000).
    #[arg(long, value_name = "HZ", env = "IZYRT_RATE")]
    pub rate: Option<u32>,
    /// Frames per period and per AUDIO packet (default 64).
    #[arg(long, value_name = "FRAMES", env = "IZYRT_PERIOD")]
    pub period: Option<u32>,
    /// Interleaved channels (default 2).
    #[arg(long, value_name = "C", env = "IZYRT_CHANNELS")]
    pub channels: Option<u16>,
    /// A JSON file of options (the seed's names: `enableQOSMetrics`, `downsampleRatio`,
    /// `upsampleRatio`, thresholds, ...); flags and `IZYRT_*` variables override it.
    #[arg(long, value_name = "FILE", env = "IZYRT_CONFIG")]
    pub config: Option<PathBuf>,
}

/// The resolved common options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Common {
    /// Hz.
    pub rate: u32,
    /// Frames per period and per packet.
    pub period: u32,
    /// Channels.
    pub channels: u16,
}

impl CommonArgs {
    /// Loads the config file and resolves the common options against it.
    ///
    /// # Errors
    /// [`ConfigError`] naming the first refused option.
    ///
    /// # Example
    /// ```
    /// let args = izyrt::config::CommonArgs { period: Some(128), ..Default::default() };
    /// let (common, _file) = args.resolve().unwrap();
    /// assert_eq!((common.rate, common.period, common.channels), (48000, 128, 2));
    /// let bad = izyrt::config::CommonArgs { rate: Some(7), ..Default::default() };
    /// assert!(bad.resolve().unwrap_err().to_string().contains("--rate 7"));
    /// ```
    pub fn resolve(&self) -> Result<(Common, ConfigFile), ConfigError> {
        let file = ConfigFile::load(self.config.as_deref())?;
        let rate = pick(
            "rate",
            self.rate,
            file.u32("rate")?,
            48_000,
            8_000..=384_000,
        )?;
        let period = pick("period", self.period, file.u32("period")?, 64, 1..=4096)?;
        let channels = pick(
            "channels",
            self.channels.map(u32::from),
            file.u32("channels")?,
            2,
            1..=64,
        )?;
        Ok((
            Common {
                rate,
                period,
                channels: channels as u16,
            },
            file,
        ))
    }
}

/// Flag (or environment) first, then the file, then `default`; checked against `allowed`.
///
/// # Errors
/// [`ConfigError`] naming `--{name}` and the value when it is outside `allowed`.
///
/// # Example
/// ```
/// use izyrt::config::pick;
/// assert_eq!(pick("period", None, Some(32), 64, 1..=4096).unwrap(), 32);
/// assert_eq!(pick("period", Some(16), Some(32), 64, 1..=4096).unwrap(), 16);
/// assert!(pick("period", Some(0), None, 64, 1..=4096).is_err());
/// ```
pub fn pick<T>(
    name: &str,
    flag: Option<T>,
    file: Option<T>,
    default: T,
    allowed: std::ops::RangeInclusive<T>,
) -> Result<T, ConfigError>
where
    T: PartialOrd + std::fmt::Display + Copy,
{
    let v = flag.or(file).unwrap_or(default);
    if !allowed.contains(&v) {
        let option = kebab(name);
        return Err(ConfigError(format!(
            "--{option} {v} is not allowed (allowed: {}..={})",
            allowed.start(),
            allowed.end()
        )));
    }
    Ok(v)
}

/// `latencyThresholdMs` → `latency-threshold-ms`.
fn kebab(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            out.push('-');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_types_are_checked_by_name() {
        let f = ConfigFile::from_json("c.json", r#"{"rate":"fast","files":["a.wav",3]}"#).unwrap();
        let e = f.u32("rate").unwrap_err().to_string();
        assert!(
            e.contains("\"rate\" \"fast\"") && e.contains("c.json"),
            "{e}"
        );
        assert!(
            f.strings("files")
                .unwrap_err()
                .to_string()
                .contains("files")
        );
        assert!(ConfigFile::from_json("c.json", "[1]").is_err());
        assert!(ConfigFile::from_json("c.json", "{").is_err());
    }

    #[test]
    fn precedence_and_names() {
        assert_eq!(kebab("downsampleRatio"), "downsample-ratio");
        let e = pick("latencyThresholdMs", Some(0u32), None, 100, 1..=60_000).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--latency-threshold-ms 0 is not allowed (allowed: 1..=60000)"
        );
        let missing = CommonArgs {
            config: Some("/nonexistent/izyrt.json".into()),
            ..Default::default()
        };
        assert!(missing.resolve().unwrap_err().0.contains("/nonexistent"));
    }
}
