//! Device strings (main thread): `virtual[:options]`, `jack:[options]` (a native JACK
//! client) or an ALSA PCM name such as `hw:1,0` or `hw:CARD=PCH,DEV=0` (`hw:` names are
//! checked here, see [`super::hw_name`]).

use super::DeviceError;
use super::hw_name::HwName;

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

/// Options of a native JACK client (`jack:[name=CLIENT][,noconnect]`).
///
/// # Example
/// ```
/// use izyrt::device::{DeviceSpec, JackOptions};
/// let spec: DeviceSpec = "jack:name=alice,noconnect".parse().unwrap();
/// let o = JackOptions { name: "alice".into(), connect: false };
/// assert_eq!(spec, DeviceSpec::Jack(o.clone()));
/// assert_eq!(o.to_string(), "jack:name=alice,noconnect");
/// assert_eq!(JackOptions::default().to_string(), "jack:");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JackOptions {
    /// The JACK client name (the server adds a suffix when it is taken).
    pub name: String,
    /// Connect the ports to the server's physical ports.
    pub connect: bool,
}

impl Default for JackOptions {
    fn default() -> Self {
        JackOptions {
            name: "izyrt".into(),
            connect: true,
        }
    }
}

impl std::fmt::Display for JackOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let d = JackOptions::default();
        let mut parts = Vec::new();
        if self.name != d.name {
            parts.push(format!("name={}", self.name));
        }
        if !self.connect {
            parts.push("noconnect".into());
        }
        write!(f, "jack:{}", parts.join(","))
    }
}

/// JACK's limit on client names, bytes (`jack_client_name_size()` is 64 with the NUL).
const JACK_NAME_MAX: usize = 63;

fn parse_jack(opts: &str, bad: impl Fn(String) -> DeviceError) -> Result<JackOptions, DeviceError> {
    let mut o = JackOptions::default();
    for opt in opts.split(',').filter(|p| !p.is_empty()) {
        match opt.split_once('=') {
            Some(("name", v)) => {
                if v.is_empty() || v.len() > JACK_NAME_MAX || v.contains([':', '\0']) {
                    return Err(bad(format!(
                        "name={v} must be 1 to {JACK_NAME_MAX} bytes without ':'"
                    )));
                }
                o.name = v.to_string();
            }
            None if opt == "noconnect" => o.connect = false,
            _ => {
                return Err(bad(format!(
                    "unknown option '{opt}' (allowed: name=CLIENT, noconnect)"
                )));
            }
        }
    }
    Ok(o)
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
    /// A native JACK client.
    Jack(JackOptions),
}

impl DeviceSpec {
    /// The `hw:` name when this is a direct ALSA hardware device (`hw:1,0`,
    /// `hw:CARD=PCH,DEV=0`): no plugin or sound server between izyrt and the card.
    ///
    /// # Example
    /// ```
    /// use izyrt::device::DeviceSpec;
    /// let stable: DeviceSpec = "hw:CARD=USB,DEV=0".parse().unwrap();
    /// assert_eq!(stable.hw_name().unwrap().device, 0);
    /// assert!("plughw:0,0".parse::<DeviceSpec>().unwrap().hw_name().is_none());
    /// ```
    pub fn hw_name(&self) -> Option<HwName> {
        match self {
            DeviceSpec::Alsa(name) => name.parse().ok(),
            _ => None,
        }
    }
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
        if let Some(opts) = s.strip_prefix("jack:") {
            return parse_jack(opts, bad).map(DeviceSpec::Jack);
        }
        if s.starts_with("hw:") {
            // Checked here, opened by ALSA: `hw:1,0` and the stable `hw:CARD=<id>,DEV=<n>`.
            return match s.parse::<HwName>() {
                Ok(_) => Ok(DeviceSpec::Alsa(s.to_string())),
                Err(e) => Err(bad(e.to_string())),
            };
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
    fn parses_jack_options_and_names_what_is_wrong() {
        let j = |s: &str| match s.parse::<DeviceSpec>().unwrap() {
            DeviceSpec::Jack(o) => o,
            other => panic!("{other:?}"),
        };
        assert_eq!(j("jack:"), JackOptions::default());
        assert!(!j("jack:noconnect").connect);
        assert_eq!(j("jack:name=bob").name, "bob");
        for s in [
            "jack:",
            "jack:name=bob",
            "jack:noconnect",
            "jack:name=a-b,noconnect",
        ] {
            assert_eq!(j(s).to_string(), s);
        }
        for (s, needle) in [
            ("jack:name=", "name= must be 1 to 63 bytes"),
            ("jack:name=a:b", "without ':'"),
            (
                "jack:loud",
                "unknown option 'loud' (allowed: name=CLIENT, noconnect)",
            ),
        ] {
            let e = s.parse::<DeviceSpec>().unwrap_err().to_string();
            assert!(e.contains(needle), "{s}: {e}");
            assert!(e.contains(s), "{s}: {e}");
        }
        let long = format!("jack:name={}", "x".repeat(64));
        assert!(long.parse::<DeviceSpec>().is_err());
    }

    #[test]
    fn hw_names_are_checked_and_stable_names_accepted() {
        for s in [
            "hw:CARD=PCH,DEV=0",
            "hw:1,0",
            "hw:USB",
            "hw:CARD=USB-2,DEV=1,SUBDEV=0",
        ] {
            let spec = s.parse::<DeviceSpec>().unwrap();
            assert_eq!(spec, DeviceSpec::Alsa(s.into()));
            assert!(spec.hw_name().is_some(), "{s} is a direct hw device");
        }
        let e = "hw:CARD=PCH,DEV=one"
            .parse::<DeviceSpec>()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("hw:CARD=PCH,DEV=one") && e.contains("DEV=one is not a number"),
            "{e}"
        );
        for s in ["plughw:CARD=PCH,DEV=0", "default", "pulse"] {
            assert!(s.parse::<DeviceSpec>().unwrap().hw_name().is_none(), "{s}");
        }
    }

    #[test]
    fn other_names_are_alsa() {
        for s in [
            "hw:1,0",
            "default",
            "plughw:CARD=USB,DEV=0",
            "virtualfoo",
            "jack",
        ] {
            assert_eq!(s.parse::<DeviceSpec>().unwrap(), DeviceSpec::Alsa(s.into()));
        }
    }
}
