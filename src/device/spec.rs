//! Device strings (main thread): `virtual[:options]` or an ALSA PCM name such as `hw:1,0`.

use super::DeviceError;

/// The test signal the `virtual` device captures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Signal {
    /// Digital silence.
    Silence,
    /// A sine at this frequency (Hz), at -12 dBFS.
    Tone(f32),
    /// One full-scale single-sample click per second on every channel.
    Impulse,
}

/// Options of the `virtual` device.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VirtualOptions {
    /// What capture produces.
    pub signal: Signal,
    /// Clock error in parts per million (positive runs fast).
    pub skew_ppm: f64,
}

impl Default for VirtualOptions {
    fn default() -> Self {
        VirtualOptions {
            signal: Signal::Silence,
            skew_ppm: 0.0,
        }
    }
}

/// A parsed device string.
///
/// # Example
/// ```
/// use izyrt::device::{DeviceSpec, Signal};
/// let spec: DeviceSpec = "virtual:tone=440,skew=-150".parse().unwrap();
/// match spec {
///     DeviceSpec::Virtual(o) => { assert_eq!(o.signal, Signal::Tone(440.0)); assert_eq!(o.skew_ppm, -150.0); }
///     _ => unreachable!(),
/// }
/// assert_eq!("hw:1,0".parse::<DeviceSpec>().unwrap(), DeviceSpec::Alsa("hw:1,0".into()));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum DeviceSpec {
    /// The built-in clock-paced device.
    Virtual(VirtualOptions),
    /// An ALSA PCM name (`hw:CARD,DEV`, `plughw:…`, `default`, a name from asoundrc…).
    Alsa(String),
}

impl std::str::FromStr for DeviceSpec {
    type Err = DeviceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason: String| DeviceError::BadSpec {
            spec: s.to_string(),
            reason,
        };
        if s.is_empty() {
            return Err(bad("empty device name".into()));
        }
        let Some(rest) = s.strip_prefix("virtual") else {
            return Ok(DeviceSpec::Alsa(s.to_string()));
        };
        let opts = match rest {
            "" => "",
            r if r.starts_with(':') => &r[1..],
            // e.g. `virtualfoo` is an ALSA name, not ours.
            _ => return Ok(DeviceSpec::Alsa(s.to_string())),
        };
        let mut o = VirtualOptions::default();
        for opt in opts.split(',').filter(|p| !p.is_empty()) {
            let (key, value) = match opt.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (opt, None),
            };
            match (key, value) {
                ("tone", Some(v)) => {
                    let hz: f32 = v
                        .parse()
                        .map_err(|_| bad(format!("tone={v} is not a number of Hz")))?;
                    if !(hz > 0.0 && hz < 192_000.0) {
                        return Err(bad(format!("tone={v} must be between 0 and 192000 Hz")));
                    }
                    o.signal = Signal::Tone(hz);
                }
                ("tone", None) => o.signal = Signal::Tone(440.0),
                ("impulse", None) => o.signal = Signal::Impulse,
                ("silence", None) => o.signal = Signal::Silence,
                ("skew", Some(v)) => {
                    let ppm: f64 = v
                        .parse()
                        .map_err(|_| bad(format!("skew={v} is not a number of ppm")))?;
                    if !(-100_000.0..=100_000.0).contains(&ppm) {
                        return Err(bad(format!("skew={v} must be within ±100000 ppm")));
                    }
                    o.skew_ppm = ppm;
                }
                _ => {
                    return Err(bad(format!(
                        "unknown option '{opt}' (allowed: tone[=HZ], impulse, silence, skew=PPM)"
                    )));
                }
            }
        }
        Ok(DeviceSpec::Virtual(o))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_virtual_options() {
        let v = |s: &str| match s.parse::<DeviceSpec>().unwrap() {
            DeviceSpec::Virtual(o) => o,
            other => panic!("{other:?}"),
        };
        assert_eq!(v("virtual"), VirtualOptions::default());
        assert_eq!(v("virtual:impulse").signal, Signal::Impulse);
        assert_eq!(v("virtual:tone=1000").signal, Signal::Tone(1000.0));
        assert_eq!(v("virtual:skew=-150").skew_ppm, -150.0);
    }

    #[test]
    fn rejects_bad_virtual_options_by_name() {
        for (s, needle) in [
            ("virtual:tone=abc", "tone=abc"),
            ("virtual:skew=1e9", "skew=1e9"),
            ("virtual:loud", "unknown option 'loud'"),
            ("", "empty"),
        ] {
            let e = s.parse::<DeviceSpec>().unwrap_err().to_string();
            assert!(e.contains(needle), "{s}: {e}");
        }
    }

    #[test]
    fn other_names_are_alsa() {
        for s in ["hw:1,0", "default", "plughw:CARD=USB,DEV=0", "virtualfoo"] {
            assert_eq!(s.parse::<DeviceSpec>().unwrap(), DeviceSpec::Alsa(s.into()));
        }
    }
}
