//! Decoding a WAV/RIFF file into interleaved f32 at the file's own rate and channel count.
//!
//! Design: `hound` does the parsing; this file decides what the engine accepts and turns
//! hound's terse errors into one line that names the file and the reason. hound reports
//! "unsupported" without saying what the file holds, and reports a truncated file as a bare
//! end-of-file I/O error, so on the error path only (never when a file loads) the header is
//! probed again here to name the coding (ADPCM, A-law, 64-bit float, …) or the place where
//! the file ends. The samples are collected with a reservation capped by the file's size,
//! so a header that lies about its length cannot make the loader allocate gigabytes.

use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::resample::ResampleError;

/// How the samples of a WAV file are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WavSampleFormat {
    /// Signed integer PCM (8-bit files store unsigned bytes; they read the same way).
    Int {
        /// Valid bits per sample: 8, 16, 24 or 32.
        bits: u16,
    },
    /// 32-bit IEEE float.
    Float32,
}

impl fmt::Display for WavSampleFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WavSampleFormat::Int { bits } => write!(f, "{bits}-bit integer"),
            WavSampleFormat::Float32 => f.write_str("32-bit float"),
        }
    }
}

/// What a WAV file holds, as stored (before any conversion to the engine's format).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WavInfo {
    /// Frames per second.
    pub rate: u32,
    /// Interleaved channels.
    pub channels: u16,
    /// Sample coding.
    pub format: WavSampleFormat,
    /// Frames in the data chunk.
    pub frames: u64,
}

/// Why a WAV file could not be loaded. The `Display` text is one line that names the file
/// and the reason.
///
/// # Example
/// ```
/// use izyrt::file::{Clip, LoadError};
/// let err = Clip::load("/nonexistent/song.wav", 48_000, 2).unwrap_err();
/// assert!(matches!(err, LoadError::Io { .. }));
/// assert!(err.to_string().starts_with("cannot read WAV file '/nonexistent/song.wav': "));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The file could not be opened or read (missing, permission, I/O error).
    #[error("cannot read WAV file '{}': {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// The file is not RIFF/WAVE at all.
    #[error("'{}' is not a RIFF/WAVE file: {reason}", path.display())]
    NotWav {
        /// The file.
        path: PathBuf,
        /// What was found instead.
        reason: String,
    },
    /// A WAV file whose coding the engine does not decode (ADPCM, A-law, 64-bit float, …).
    #[error(
        "'{}' uses an unsupported format: {what}; supported are 8/16/24/32-bit integer PCM \
         and 32-bit float",
        path.display()
    )]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// The format found.
        what: String,
    },
    /// The file ends before its header or its data chunk does.
    #[error("'{}' is truncated: {what}", path.display())]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Where it ends.
        what: String,
    },
    /// The header is inconsistent.
    #[error("'{}' is a malformed WAV file: {reason}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A valid file without a single frame.
    #[error("'{}' holds no audio frames", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// The engine format asked for is impossible (0 Hz or 0 channels).
    #[error(
        "cannot load '{}' for {rate} Hz and {channels} channels: both must be positive",
        path.display()
    )]
    Target {
        /// The file.
        path: PathBuf,
        /// The rate asked for.
        rate: u32,
        /// The channel count asked for.
        channels: u16,
    },
    /// The resampler refused the rate pair.
    #[error("'{}': {source}", path.display())]
    Resample {
        /// The file.
        path: PathBuf,
        /// The resampler's error.
        source: ResampleError,
    },
}

/// Reads a whole WAV file into interleaved f32 in [-1, 1) at its own rate and channel
/// count (integers are scaled by 2^(bits−1); floats are taken as they are).
///
/// Accepts integer PCM of 8, 16, 24 (3- or 4-byte containers) and 32 bits and 32-bit float,
/// in plain or `WAVE_FORMAT_EXTENSIBLE` headers, with any number of channels.
///
/// # Errors
/// A [`LoadError`] naming the file: missing or unreadable, not RIFF/WAVE, an unsupported
/// coding, truncated, malformed, or holding no frames.
///
/// # Example
/// ```no_run
/// let (info, samples) = izyrt::file::decode("song.wav")?;
/// assert_eq!(samples.len() as u64, info.frames * info.channels as u64);
/// # Ok::<(), izyrt::file::LoadError>(())
/// ```
pub fn decode(path: impl AsRef<Path>) -> Result<(WavInfo, Vec<f32>), LoadError> {
    let path = path.as_ref();
    let io_err = |source| LoadError::Io {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(io_err)?;
    let file_len = file.metadata().map_err(io_err)?.len();
    let mut reader =
        hound::WavReader::new(BufReader::new(file)).map_err(|e| classify(path, e, None))?;
    let spec = reader.spec();
    let channels = spec.channels;
    let declared = reader.len() as usize; // samples, all channels
    let frames = declared as u64 / channels as u64;
    if frames == 0 {
        return Err(LoadError::Empty {
            path: path.to_owned(),
        });
    }
    let mut samples = Vec::with_capacity(declared.min(file_len as usize));
    let format = match spec.sample_format {
        hound::SampleFormat::Float => {
            for s in reader.samples::<f32>() {
                match s {
                    Ok(v) => samples.push(v),
                    Err(e) => {
                        return Err(classify(path, e, Some((samples.len(), declared, channels))));
                    }
                }
            }
            WavSampleFormat::Float32
        }
        hound::SampleFormat::Int => {
            let scale = 1.0 / (1u64 << (spec.bits_per_sample - 1)) as f64;
            for s in reader.samples::<i32>() {
                match s {
                    Ok(v) => samples.push((v as f64 * scale) as f32),
                    Err(e) => {
                        return Err(classify(path, e, Some((samples.len(), declared, channels))));
                    }
                }
            }
            WavSampleFormat::Int {
                bits: spec.bits_per_sample,
            }
        }
    };
    let info = WavInfo {
        rate: spec.sample_rate,
        channels,
        format,
        frames,
    };
    Ok((info, samples))
}

/// Turns a hound error into a [`LoadError`], probing the header for detail. `reading` is
/// `(samples read, samples declared, channels)` when the error came while reading data.
fn classify(path: &Path, err: hound::Error, reading: Option<(usize, usize, u16)>) -> LoadError {
    let path_buf = path.to_owned();
    let probe = probe(path);
    match &probe {
        Probe::NotRiff(found) => {
            return LoadError::NotWav {
                path: path_buf,
                reason: found.clone(),
            };
        }
        Probe::NotWave(form) => {
            return LoadError::NotWav {
                path: path_buf,
                reason: format!("its RIFF form type is '{form}', not 'WAVE'"),
            };
        }
        Probe::Fmt { fmt, .. } => {
            if let Some(what) = fmt.unsupported() {
                return LoadError::Unsupported {
                    path: path_buf,
                    what,
                };
            }
        }
        Probe::Ends(_) | Probe::Nothing => {}
    }
    match err {
        hound::Error::IoError(e) if is_eof(&e) => {
            let what = match (reading, &probe) {
                (Some((read, declared, channels)), _) => format!(
                    "its data chunk declares {} frames but the file ends after {}",
                    declared / channels as usize,
                    read / channels as usize
                ),
                (None, Probe::Fmt { data: false, .. }) => {
                    "the file ends before its data chunk".to_owned()
                }
                (None, Probe::Ends(place)) => format!("the file ends {place}"),
                _ => "the file ends inside its header".to_owned(),
            };
            LoadError::Truncated {
                path: path_buf,
                what,
            }
        }
        hound::Error::IoError(source) => LoadError::Io {
            path: path_buf,
            source,
        },
        hound::Error::Unsupported => LoadError::Unsupported {
            path: path_buf,
            what: "a sample layout hound cannot decode".to_owned(),
        },
        hound::Error::FormatError(reason) => LoadError::Malformed {
            path: path_buf,
            reason: reason.to_owned(),
        },
        other => LoadError::Malformed {
            path: path_buf,
            reason: other.to_string(),
        },
    }
}

/// End of file as hound reports it: `UnexpectedEof` from `read_exact`, or its own
/// `Other` error when a read returns no bytes.
fn is_eof(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::UnexpectedEof
        || (e.kind() == io::ErrorKind::Other && e.to_string() == "Failed to read enough bytes.")
}

/// The `fmt ` chunk fields that matter for naming an unsupported coding.
#[derive(Debug, Clone, Copy)]
struct Fmt {
    tag: u16,
    channels: u16,
    block_align: u16,
    bits: u16,
    /// For `WAVE_FORMAT_EXTENSIBLE`: valid bits and the sub-format's tag (the first two
    /// bytes of a GUID of the form xxxxxxxx-0000-0010-8000-00aa00389b71), if it is one.
    ext: Option<(u16, Option<u16>)>,
}

const TAG_PCM: u16 = 0x0001;
const TAG_FLOAT: u16 = 0x0003;
const TAG_EXTENSIBLE: u16 = 0xFFFE;

fn tag_name(tag: u16) -> Option<&'static str> {
    Some(match tag {
        0x0001 => "integer PCM",
        0x0002 => "Microsoft ADPCM",
        0x0003 => "IEEE float",
        0x0006 => "A-law",
        0x0007 => "µ-law",
        0x0011 => "IMA ADPCM",
        0x0031 => "GSM 6.10",
        0x0050 => "MPEG",
        0x0055 => "MPEG layer 3",
        0x00FF | 0x1610 => "AAC",
        0xF1AC => "FLAC",
        _ => return None,
    })
}

impl Fmt {
    /// `Some(description)` when this coding is one the engine does not decode.
    fn unsupported(&self) -> Option<String> {
        let (tag, bits, via) = match self.ext {
            None => (Some(self.tag), self.bits, ""),
            Some((valid, sub)) => (
                sub,
                if valid > 0 { valid } else { self.bits },
                " (WAVE_FORMAT_EXTENSIBLE)",
            ),
        };
        let container = self.block_align.checked_div(self.channels).unwrap_or(0);
        match tag {
            Some(TAG_PCM) => match (container, bits) {
                (1, 8) | (2, 16) | (3, 24) | (4, 24) | (4, 32) => None,
                _ => Some(format!(
                    "{bits}-bit integer PCM in {container}-byte containers{via}"
                )),
            },
            Some(TAG_FLOAT) => match (container, bits) {
                (4, 32) => None,
                _ => Some(format!("{bits}-bit float{via}")),
            },
            Some(t) => Some(match tag_name(t) {
                Some(name) => format!("{name} (format tag 0x{t:04X}){via}"),
                None => format!("format tag 0x{t:04X}{via}"),
            }),
            None => Some(format!("an unknown sub-format GUID{via}")),
        }
    }
}

/// What a second look at the header found.
#[derive(Debug)]
enum Probe {
    /// Nothing more to say (unreadable, or odd in a way hound describes better).
    Nothing,
    /// No `RIFF` tag: what was found instead.
    NotRiff(String),
    /// `RIFF` with another form type.
    NotWave(String),
    /// The file ends before a complete `fmt ` chunk: where.
    Ends(&'static str),
    /// A `fmt ` chunk; `data` says whether a data chunk header follows.
    Fmt { fmt: Fmt, data: bool },
}

fn probe(path: &Path) -> Probe {
    let Ok(mut f) = File::open(path) else {
        return Probe::Nothing;
    };
    let mut head = [0u8; 12];
    let mut got = 0;
    while got < head.len() {
        match f.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(_) => return Probe::Nothing,
        }
    }
    if got < 4 || &head[..4] != b"RIFF" {
        return Probe::NotRiff(if got == 0 {
            "the file is empty".to_owned()
        } else {
            format!(
                "it starts with {} instead of 'RIFF'",
                printable(&head[..got.min(4)])
            )
        });
    }
    if got < 12 {
        return Probe::Ends("inside its RIFF header");
    }
    if &head[8..12] != b"WAVE" {
        return Probe::NotWave(String::from_utf8_lossy(&head[8..12]).into_owned());
    }
    let mut fmt = None;
    loop {
        let mut chunk = [0u8; 8];
        if f.read_exact(&mut chunk).is_err() {
            return match fmt {
                Some(fmt) => Probe::Fmt { fmt, data: false },
                None => Probe::Ends("before its fmt chunk"),
            };
        }
        let len = u32::from_le_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]);
        match &chunk[..4] {
            b"data" => {
                return match fmt {
                    Some(fmt) => Probe::Fmt { fmt, data: true },
                    None => Probe::Nothing,
                };
            }
            b"fmt " => {
                let mut body = [0u8; 40];
                let n = (len as usize).min(body.len());
                if n < 16 || f.read_exact(&mut body[..n]).is_err() {
                    return Probe::Ends("inside its fmt chunk");
                }
                let u16_at = |i: usize| u16::from_le_bytes([body[i], body[i + 1]]);
                let tag = u16_at(0);
                let ext = (tag == TAG_EXTENSIBLE && n >= 40).then(|| {
                    const TAIL: [u8; 14] =
                        [0, 0, 0, 0, 0x10, 0, 0x80, 0, 0, 0xAA, 0, 0x38, 0x9B, 0x71];
                    let sub = (body[26..40] == TAIL).then(|| u16_at(24));
                    (u16_at(18), sub)
                });
                fmt = Some(Fmt {
                    tag,
                    channels: u16_at(2),
                    block_align: u16_at(12),
                    bits: u16_at(14),
                    ext,
                });
                // Chunks are word-aligned; skip the rest of this one.
                let rest = len as i64 + (len & 1) as i64 - n as i64;
                if f.seek(SeekFrom::Current(rest)).is_err() {
                    return Probe::Nothing;
                }
            }
            _ => {
                if f.seek(SeekFrom::Current(len as i64 + (len & 1) as i64))
                    .is_err()
                {
                    return Probe::Nothing;
                }
            }
        }
    }
}

fn printable(bytes: &[u8]) -> String {
    if bytes.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
        format!("'{}'", String::from_utf8_lossy(bytes))
    } else {
        let hex: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
        format!("bytes {}", hex.join(" "))
    }
}
