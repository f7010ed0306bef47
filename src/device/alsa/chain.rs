//! What an ALSA PCM really is (main thread): the chain of plugins behind a name, whether it
//! paces time, and whether it goes through a sound server.
//!
//! Design: a PCM name says little (`default` may be a card, dmix or PulseAudio), so an
//! opened PCM is judged by its chain as alsa-lib itself describes it: `snd_pcm_dump` prints
//! one header line per layer (`Plug PCM: …`, `Slave: Null PCM`, `Hardware PCM card 0 …`,
//! `ALSA <-> JACK PCM I/O Plugin`). The `alsa` crate exposes neither `snd_pcm_type` nor the
//! raw handle, and the type of the top layer alone would miss a `file` wrapping `null`, so
//! the dump is the complete, public source. Names are the fallback for PCMs we must not
//! open just to list them (opening `pulse` may autospawn a daemon).

/// One layer of a PCM chain, as recognised from its `snd_pcm_dump` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layer {
    /// A kernel PCM device (`Hardware PCM card …`): paced by the sound card.
    Hardware,
    /// `null`: discards playback, captures silence, never waits.
    Null,
    /// `file`: copies the audio to a file and passes the rest to its slave.
    File,
    /// `hooks`: runs configuration hooks, transparent for audio.
    Hooks,
    /// An external I/O plugin that talks to a sound server (JACK, PulseAudio, PipeWire).
    Server(&'static str),
    /// dmix / dsnoop / dshare: sharing a card between processes through IPC.
    Direct(&'static str),
    /// Any other plugin (plug, rate, route, softvol, other I/O plugins…), with its reason.
    Plugin(String),
}

impl Layer {
    /// Recognises one dump header line (without the `Slave: ` prefix).
    fn from_header(h: &str) -> Layer {
        let lower = h.to_ascii_lowercase();
        if h.starts_with("Hardware PCM") {
            Layer::Hardware
        } else if h.starts_with("Null PCM") {
            Layer::Null
        } else if h.starts_with("File PCM") || h.starts_with("Final file PCM") {
            Layer::File
        } else if h.starts_with("Hooks PCM") {
            Layer::Hooks
        } else if lower.contains("jack") {
            Layer::Server("JACK")
        } else if lower.contains("pulseaudio") {
            Layer::Server("PulseAudio")
        } else if lower.contains("pipewire") {
            Layer::Server("PipeWire")
        } else if h.starts_with("Direct Stream Mixing PCM") {
            Layer::Direct("dmix")
        } else if h.starts_with("Direct Snoop PCM") {
            Layer::Direct("dsnoop")
        } else if h.starts_with("Direct Share PCM") {
            Layer::Direct("dshare")
        } else if h.starts_with("Plug PCM") {
            Layer::Plugin("plug converts format, rate and channels in software".into())
        } else if h.starts_with("Rate conversion PCM") {
            Layer::Plugin("rate resamples in software".into())
        } else if h.starts_with("Soft volume PCM") {
            Layer::Plugin("softvol scales in software".into())
        } else if lower.contains("conversion pcm") {
            Layer::Plugin(format!("{h} converts samples in software"))
        } else {
            Layer::Plugin(format!("plugin '{h}'"))
        }
    }

    /// True for a layer that paces time by itself (a clock behind it).
    fn paces(&self) -> bool {
        matches!(self, Layer::Hardware | Layer::Server(_) | Layer::Direct(_))
    }

    fn reason(&self) -> Option<String> {
        match self {
            Layer::Hardware | Layer::Hooks => None,
            Layer::Null => Some("null discards audio and does not pace time".into()),
            Layer::File => Some("file copies the audio to a file".into()),
            Layer::Server(s) => Some(format!("goes through the {s} sound server")),
            Layer::Direct(d) => Some(format!(
                "{d} shares the card with other processes (adds latency, takes a semaphore)"
            )),
            Layer::Plugin(r) => Some(r.clone()),
        }
    }
}

/// The layers of an opened PCM, top first.
///
/// # Example
/// ```
/// use izyrt::device::alsa::PcmChain;
/// let chain = PcmChain::from_dump("File PCM (file=/tmp/x.raw)\nSlave: Null PCM\n");
/// assert!(!chain.paces_time());
/// let jack = PcmChain::from_dump("ALSA <-> JACK PCM I/O Plugin\nIts setup is:\n  stream : PLAYBACK\n");
/// assert!(jack.paces_time());
/// assert!(jack.sound_server().unwrap().contains("JACK"));
/// assert_eq!(PcmChain::from_dump("Hardware PCM card 0 'HDA' device 0 subdevice 0\n").sound_server(), None);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PcmChain {
    /// The recognised layers, top first.
    pub layers: Vec<Layer>,
    /// The header line of each layer, as alsa-lib printed it.
    pub headers: Vec<String>,
}

impl PcmChain {
    /// Parses the text of `snd_pcm_dump`: every unindented line naming a PCM or plugin is a
    /// layer; `Slave: ` prefixes and the `Plug PCM: <slave>` one-liner are split.
    pub fn from_dump(text: &str) -> PcmChain {
        let mut chain = PcmChain {
            layers: Vec::new(),
            headers: Vec::new(),
        };
        for line in text.lines() {
            if line.starts_with(char::is_whitespace) {
                continue; // setup details of the layer above
            }
            let mut rest = line.trim_end();
            while !rest.is_empty() {
                rest = rest.strip_prefix("Slave: ").unwrap_or(rest);
                let (head, tail) = match rest.strip_prefix("Plug PCM: ") {
                    Some(tail) => ("Plug PCM", tail),
                    None => (rest, ""),
                };
                if head.contains("PCM") || head.contains("Plugin") {
                    chain.layers.push(Layer::from_header(head));
                    chain.headers.push(head.to_string());
                }
                rest = tail;
            }
        }
        chain
    }

    /// False when the chain ends in `null` with no clock anywhere: an RT loop on it would
    /// spin. An unrecognised chain is given the benefit of the doubt.
    pub fn paces_time(&self) -> bool {
        let null = self.layers.contains(&Layer::Null);
        !null || self.layers.iter().any(Layer::paces)
    }

    /// `Some(why)` when anything but a plain card (and transparent hooks) is in the way.
    pub fn sound_server(&self) -> Option<String> {
        let reasons: Vec<String> = self.layers.iter().filter_map(Layer::reason).collect();
        if reasons.is_empty() {
            return None;
        }
        Some(format!(
            "{} [chain: {}]",
            reasons.join("; "),
            self.headers.join(" -> ")
        ))
    }
}

/// Judges a PCM by its name only, for PCMs listed but not opened. Returns `Some(why)` when
/// the name is known to (or may) go through a sound server or a plugin.
///
/// # Example
/// ```
/// use izyrt::device::alsa::sound_server_by_name;
/// assert_eq!(sound_server_by_name("hw:CARD=PCH,DEV=0"), None);
/// assert!(sound_server_by_name("pulse").unwrap().contains("PulseAudio"));
/// assert!(sound_server_by_name("dmix:CARD=PCH,DEV=0").unwrap().contains("dmix"));
/// ```
pub fn sound_server_by_name(name: &str) -> Option<String> {
    let kind = name.split(':').next().unwrap_or(name).trim_matches('\'');
    let why = match kind {
        "hw" => return None,
        "pulse" => "goes through the PulseAudio sound server",
        "pipewire" => "goes through the PipeWire sound server",
        "jack" => "goes through the JACK sound server",
        "dmix" => "dmix shares the card with other processes (adds latency)",
        "dsnoop" => "dsnoop shares capture with other processes (adds latency)",
        "dshare" => "dshare shares the card's channels with other processes",
        "plughw" | "plug" => "plug converts format, rate and channels in software",
        "default" | "sysdefault" => {
            "the default PCM: the ALSA configuration may route it through a sound server, dmix or plug"
        }
        "null" => "null discards audio and does not pace time",
        "file" | "tee" => "file copies the audio to a file",
        "front" | "rear" | "center_lfe" | "side" | "iec958" | "spdif" | "hdmi" | "dmic" => {
            "an alsa-lib alias over the card (usually hooks or route plugins)"
        }
        k if k.starts_with("surround") => "an alsa-lib alias over the card (route plugins)",
        _ => "a PCM defined in the ALSA configuration: plugin chain unknown until opened",
    };
    Some(why.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_the_layers_alsa_lib_prints() {
        let file_null = PcmChain::from_dump(
            "File PCM (file=/tmp/x.raw)\nIts setup is:\n  stream       : PLAYBACK\nSlave: Null PCM\n",
        );
        assert_eq!(file_null.layers, [Layer::File, Layer::Null]);
        assert!(!file_null.paces_time());
        let why = file_null.sound_server().unwrap();
        assert!(why.contains("null") && why.contains("File PCM"), "{why}");

        let plug =
            PcmChain::from_dump("Plug PCM: Hardware PCM card 1 'USB' device 0 subdevice 0\n");
        assert_eq!(plug.layers.len(), 2);
        assert_eq!(plug.layers[1], Layer::Hardware);
        assert!(plug.paces_time());
        assert!(plug.sound_server().unwrap().starts_with("plug"));

        let hw = PcmChain::from_dump(
            "Hardware PCM card 0 'HDA Intel PCH' device 0 subdevice 0\nIts setup is:\n  stream : CAPTURE\n",
        );
        assert_eq!(hw.layers, [Layer::Hardware]);
        assert_eq!(hw.sound_server(), None);

        let dmix = PcmChain::from_dump(
            "Direct Stream Mixing PCM\nHardware PCM card 0 'x' device 0 subdevice 0\n",
        );
        assert_eq!(dmix.layers[0], Layer::Direct("dmix"));
        assert!(dmix.sound_server().unwrap().contains("dmix"));

        for (header, server) in [
            ("ALSA <-> JACK PCM I/O Plugin", "JACK"),
            ("ALSA <-> PulseAudio PCM I/O Plugin", "PulseAudio"),
            ("ALSA <-> PipeWire PCM I/O Plugin", "PipeWire"),
        ] {
            let c = PcmChain::from_dump(header);
            assert_eq!(c.layers, [Layer::Server(server)]);
            assert!(c.paces_time());
            assert!(c.sound_server().unwrap().contains(server));
        }

        let lfloat = PcmChain::from_dump(
            "Linear Integer <-> Linear Float conversion PCM (FLOAT_LE)\nSlave: Null PCM\n",
        );
        assert!(!lfloat.paces_time());
        assert_eq!(lfloat.layers.len(), 2);
    }

    #[test]
    fn setup_lines_and_tables_are_not_layers() {
        let c = PcmChain::from_dump(
            "Route conversion PCM (sformat=S16_LE)\n  Transformation table:\n    0 <- 0\nIts setup is:\n  format : S16_LE\nSlave: Hooks PCM\nSlave: Hardware PCM card 0 'x' device 0 subdevice 0\n",
        );
        assert_eq!(c.layers.len(), 3);
        assert_eq!(c.layers[1..], [Layer::Hooks, Layer::Hardware]);
    }

    #[test]
    fn an_empty_dump_is_not_refused() {
        let c = PcmChain::from_dump("");
        assert!(c.paces_time());
        assert_eq!(c.sound_server(), None);
    }

    #[test]
    fn names_are_flagged_by_kind() {
        assert_eq!(sound_server_by_name("hw:0,0"), None);
        for (name, needle) in [
            ("jack", "JACK"),
            ("pipewire", "PipeWire"),
            ("dsnoop:CARD=X,DEV=0", "dsnoop"),
            ("plughw:1,0", "plug"),
            ("default", "default"),
            ("null", "does not pace"),
            ("surround51:CARD=X", "alias"),
            ("mything", "unknown"),
        ] {
            let why = sound_server_by_name(name).unwrap();
            assert!(why.contains(needle), "{name}: {why}");
        }
    }
}
