//! ALSA `hw:` device names (main thread): `hw:1,0` and the stable `hw:CARD=<id>,DEV=<n>`.
//!
//! Design: a `hw:` name opens a kernel PCM device directly: no plugin, no sound server, the
//! lowest latency ALSA has, which is what izyrt's RT threads want. Its card may be given by
//! index (`hw:1,0`), which changes when USB cards are replugged or probed in another order,
//! or by the card's id (`hw:CARD=USB,DEV=0`, the id in `/proc/asound/cardN/id`), which does
//! not. ALSA itself takes both; izyrt parses them only to check them before opening (a
//! typo is refused with the forms allowed rather than by alsa-lib's "No such file or
//! directory") and to know a direct device from a plugin without opening it.
//!
//! The grammar is alsa-lib's for the `hw` PCM: up to three arguments `CARD`, `DEV`,
//! `SUBDEV`, given by position (`hw:1,0,0`), by name (`hw:CARD=1,DEV=0`) or both (positions
//! first). `DEV` defaults to 0 and `SUBDEV` to any.

use std::fmt;

/// Which card a `hw:` name means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CardRef {
    /// By index (`hw:1,0`): changes when cards are replugged.
    Index(u32),
    /// By id (`hw:CARD=USB,DEV=0`): stable.
    Id(String),
}

/// A parsed `hw:` device name.
///
/// # Example
/// ```
/// use izyrt::device::hw_name::{CardRef, HwName};
/// let stable: HwName = "hw:CARD=PCH,DEV=3".parse().unwrap();
/// assert_eq!(stable.card, CardRef::Id("PCH".into()));
/// assert_eq!(stable.device, 3);
/// assert_eq!(stable.to_string(), "hw:CARD=PCH,DEV=3");
/// let by_index: HwName = "hw:1,0".parse().unwrap();
/// assert_eq!(by_index.card, CardRef::Index(1));
/// assert_eq!(HwName::stable("USB", 0), "hw:CARD=USB,DEV=0");
/// assert!("hw:CARD=PCH,DEV=x".parse::<HwName>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HwName {
    /// The card.
    pub card: CardRef,
    /// The PCM device on the card (`DEV`, default 0).
    pub device: u32,
    /// The subdevice (`SUBDEV`), when one is named.
    pub subdevice: Option<u32>,
}

/// Why a `hw:` name was refused (the forms allowed follow in the message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{reason} (allowed: hw:CARD,DEV such as hw:1,0, or hw:CARD=<id>,DEV=<n> such as hw:CARD=PCH,DEV=0; `izyrt devices` lists them)"
)]
pub struct HwNameError {
    /// What is wrong.
    pub reason: String,
}

impl HwName {
    /// The stable name of device `device` on the card whose id is `card_id`.
    ///
    /// # Example
    /// See [`HwName`].
    pub fn stable(card_id: &str, device: u32) -> String {
        format!("hw:CARD={card_id},DEV={device}")
    }

    /// Whether `name` is a `hw:` name at all (well formed or not).
    ///
    /// # Example
    /// ```
    /// use izyrt::device::hw_name::HwName;
    /// assert!(HwName::is_hw("hw:CARD=PCH,DEV=0") && HwName::is_hw("hw:0"));
    /// assert!(!HwName::is_hw("plughw:0,0") && !HwName::is_hw("hwfoo"));
    /// ```
    pub fn is_hw(name: &str) -> bool {
        name == "hw" || name.starts_with("hw:")
    }
}

impl std::str::FromStr for HwName {
    type Err = HwNameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason: String| HwNameError { reason };
        let args = s
            .strip_prefix("hw:")
            .ok_or_else(|| bad(format!("'{s}' is not a hw: name")))?;
        let (mut card, mut device, mut subdevice) = (None, None, None);
        let mut position = 0;
        for arg in args.split(',') {
            let (key, value) = match arg.split_once('=') {
                Some((k, v)) => (k.trim(), v.trim()),
                None => {
                    let key = ["CARD", "DEV", "SUBDEV"]
                        .get(position)
                        .ok_or_else(|| bad(format!("too many arguments in '{s}'")))?;
                    position += 1;
                    (*key, arg.trim())
                }
            };
            let value = value.trim_matches('"').trim_matches('\'');
            if value.is_empty() {
                return Err(bad(format!("an empty {key} in '{s}'")));
            }
            let number = |what: &str| {
                value
                    .parse::<u32>()
                    .map_err(|_| bad(format!("{what}={value} is not a number in '{s}'")))
            };
            match key {
                "CARD" => {
                    card = Some(match value.parse::<u32>() {
                        Ok(i) => CardRef::Index(i),
                        Err(_)
                            if value
                                .chars()
                                .all(|c| c.is_ascii_alphanumeric() || "_-".contains(c)) =>
                        {
                            CardRef::Id(value.to_owned())
                        }
                        Err(_) => {
                            return Err(bad(format!(
                                "CARD={value} is not a card index or id in '{s}'"
                            )));
                        }
                    })
                }
                "DEV" => device = Some(number("DEV")?),
                "SUBDEV" => subdevice = Some(number("SUBDEV")?),
                other => return Err(bad(format!("unknown argument '{other}' in '{s}'"))),
            }
        }
        Ok(HwName {
            card: card.ok_or_else(|| bad(format!("no card in '{s}'")))?,
            device: device.unwrap_or(0),
            subdevice,
        })
    }
}

impl fmt::Display for HwName {
    /// `hw:CARD=<id>,DEV=<n>` or `hw:<index>,<n>` (with `,SUBDEV` when named).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.card {
            CardRef::Id(id) => write!(f, "hw:CARD={id},DEV={}", self.device)?,
            CardRef::Index(i) => write!(f, "hw:{i},{}", self.device)?,
        }
        match (self.subdevice, &self.card) {
            (Some(sub), CardRef::Id(_)) => write!(f, ",SUBDEV={sub}"),
            (Some(sub), CardRef::Index(_)) => write!(f, ",{sub}"),
            (None, _) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hw(s: &str) -> HwName {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn parses_every_form_alsa_takes() {
        let pch0 = HwName {
            card: CardRef::Id("PCH".into()),
            device: 0,
            subdevice: None,
        };
        for s in [
            "hw:CARD=PCH,DEV=0",
            "hw:PCH,0",
            "hw:PCH",
            "hw:CARD=PCH",
            "hw:DEV=0,CARD=PCH",
            "hw:CARD=\"PCH\",DEV=0",
        ] {
            assert_eq!(hw(s), pch0, "{s}");
        }
        assert_eq!(hw("hw:1,0").card, CardRef::Index(1));
        assert_eq!(hw("hw:CARD=1,DEV=2").device, 2);
        assert_eq!(hw("hw:0,1,2").subdevice, Some(2));
        assert_eq!(hw("hw:CARD=USB-Audio_2,DEV=1,SUBDEV=0").subdevice, Some(0));
        for s in [
            "hw:CARD=PCH,DEV=0",
            "hw:1,0",
            "hw:0,1,2",
            "hw:CARD=X,DEV=1,SUBDEV=3",
        ] {
            assert_eq!(hw(s).to_string(), s);
        }
    }

    #[test]
    fn refuses_malformed_names_with_the_forms_allowed() {
        for (s, needle) in [
            ("hw:CARD=PCH,DEV=x", "DEV=x is not a number"),
            ("hw:", "an empty CARD"),
            ("hw:0,0,0,0", "too many arguments"),
            ("hw:CARD=PCH,DEVICE=0", "unknown argument 'DEVICE'"),
            ("hw:DEV=0", "no card"),
            ("hw:CARD=a b", "not a card index or id"),
        ] {
            let e = s.parse::<HwName>().unwrap_err().to_string();
            assert!(e.contains(needle), "{s}: {e}");
            assert!(e.contains("hw:CARD=<id>,DEV=<n>"), "{s}: {e}");
        }
    }
}
