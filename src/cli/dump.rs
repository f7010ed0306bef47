//! `izyrt dump [FILE|-]`: prints a streamproto1 byte stream as one JSON object per frame.
//!
//! It reads through the same [`Decoder`] the net thread uses, so memory stays constant
//! whatever the input size, and a fault is reported exactly as a receiver would see it.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};

use serde_json::{Map, Value, json};

use super::{CliError, EXIT_DATA};
use crate::wire::{Decoder, FLAG_CLOCK_LOCKED, Frame, Kind, ProtocolError, parse_object};

/// Arguments of `izyrt dump`.
#[derive(Debug, clap::Args)]
pub struct DumpArgs {
    /// The stream to read: a file, or `-` for standard input.
    #[arg(default_value = "-")]
    pub input: String,
}

/// Runs `izyrt dump`; returns the exit code (0, or 2 for a malformed stream).
///
/// # Errors
/// [`CliError::Io`] when the input cannot be opened or read.
pub fn run(args: &DumpArgs) -> Result<i32, CliError> {
    let mut input: Box<dyn Read> = if args.input == "-" {
        Box::new(io::stdin().lock())
    } else {
        let f = File::open(&args.input).map_err(|source| CliError::Io {
            context: format!("cannot open {}", args.input),
            source,
        })?;
        Box::new(f)
    };
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let result = dump(&mut *input, &mut out);
    let flushed = out.flush();
    match result {
        Ok(()) => {}
        // A closed pipe (`izyrt dump | head`) is not an error of the stream.
        Err(Fault::Io(e)) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(0),
        Err(Fault::Io(source)) => {
            return Err(CliError::Io {
                context: format!("reading {}", args.input),
                source,
            });
        }
        Err(Fault::Stream {
            code,
            offset,
            detail,
        }) => {
            eprintln!("izyrt dump: {code} at byte offset {offset}: {detail}");
            return Ok(EXIT_DATA);
        }
    }
    match flushed {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(CliError::Io {
            context: "writing standard output".into(),
            source: e,
        }),
        _ => Ok(0),
    }
}

enum Fault {
    Io(io::Error),
    Stream {
        code: String,
        offset: u64,
        detail: String,
    },
}

impl From<io::Error> for Fault {
    fn from(e: io::Error) -> Self {
        Fault::Io(e)
    }
}

fn dump(input: &mut dyn Read, out: &mut dyn Write) -> Result<(), Fault> {
    let mut dec = Decoder::new();
    loop {
        loop {
            let offset = dec.offset();
            let frame = match dec.next_frame() {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => return Err(stream_fault(&e, offset)),
            };
            let line = describe(&frame).map_err(|e| stream_fault(&e, frame.offset))?;
            serde_json::to_writer(&mut *out, &line).map_err(io::Error::from)?;
            out.write_all(b"\n")?;
        }
        let n = match dec.read_from(input) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        if n == 0 {
            return match dec.partial() {
                Some(offset) => Err(Fault::Stream {
                    code: "truncated".into(),
                    offset,
                    detail: "the stream ends inside a frame".into(),
                }),
                None => Ok(()),
            };
        }
    }
}

fn stream_fault(e: &ProtocolError, offset: u64) -> Fault {
    Fault::Stream {
        code: e.code.to_string(),
        offset,
        detail: e.detail.clone(),
    }
}

/// The JSON line for one frame.
fn describe(frame: &Frame<'_>) -> Result<Value, ProtocolError> {
    let h = frame.header;
    let mut m = Map::new();
    m.insert("offset".into(), json!(frame.offset));
    m.insert(
        "kind".into(),
        json!(frame.kind().map_or("unknown", Kind::name)),
    );
    m.insert("track".into(), json!(h.track));
    m.insert("flags".into(), json!(h.flags));
    m.insert("seq".into(), json!(h.seq));
    m.insert("len".into(), json!(h.len));
    match frame.kind() {
        Some(Kind::Audio) => {
            let a = frame.audio()?;
            let ah = a.header;
            m.insert("sampleRate".into(), json!(ah.sample_rate));
            m.insert("channels".into(), json!(ah.channels));
            m.insert("format".into(), json!(ah.format.name()));
            m.insert("frames".into(), json!(ah.frames));
            m.insert("position".into(), json!(ah.position));
            m.insert("originNs".into(), json!(ah.origin_ns));
            m.insert("echoNs".into(), json!(ah.echo_ns));
            m.insert(
                "clockLocked".into(),
                json!(h.flags & FLAG_CLOCK_LOCKED != 0),
            );
            m.insert("peak".into(), json!(a.peak()));
        }
        Some(Kind::Ping | Kind::Pong) => {
            m.insert("clockNs".into(), json!(frame.clock_ns()));
        }
        Some(k) if k.is_json() => {
            m.insert("json".into(), Value::Object(parse_object(frame.payload)?));
        }
        _ => {}
    }
    Ok(Value::Object(m))
}
