//! `izyrt glitches FILE.wav [--freq HZ] [--json]`: counts what a listener hears as damage
//! in a recorded pure tone (main thread, after the fact).
//!
//! Record what a peer plays while it sends a tone (`izyrt peer --device
//! virtual:tone=441 --record out.wav` through a hub in `loopback` mix), then count its
//! steps, holes and events with [`tone_glitches`]: a measure independent of the engine's
//! own counters. The file may be mono or multichannel, integer or float, at any rate.

use std::path::PathBuf;

use serde_json::{Value, json};

use super::CliError;
use super::rt_session::print_json;
use crate::file::decode;
use crate::measure::{GlitchConfig, GlitchReport, tone_glitches};

/// Arguments of `izyrt glitches`.
#[derive(Debug, clap::Args)]
pub struct GlitchesArgs {
    /// The recording: a WAV file holding a pure tone.
    pub file: PathBuf,
    /// The tone's frequency, Hz, when known (estimates more than 2 % away are ignored).
    #[arg(long, value_name = "HZ")]
    pub freq: Option<f64>,
    /// Print one JSON object (with every event) instead of the summary line.
    #[arg(long)]
    pub json: bool,
}

/// Runs `izyrt glitches`: prints the summary line (or JSON) on standard output.
///
/// # Errors
/// [`CliError::Usage`] for a bad `--freq`; [`CliError::Data`] (exit status 2) for a file
/// that is not a readable WAV or holds no tone long enough to analyse.
pub fn run(args: &GlitchesArgs) -> Result<i32, CliError> {
    if let Some(f) = args.freq.filter(|f| !(*f > 0.0 && *f < 192_000.0)) {
        return Err(CliError::Usage(format!(
            "--freq {f} is not allowed (allowed: above 0 and below 192000 Hz)"
        )));
    }
    let (info, samples) = decode(&args.file).map_err(|e| CliError::Data(e.to_string()))?;
    let cfg = GlitchConfig {
        freq_hz: args.freq,
        ..GlitchConfig::default()
    };
    let report = tone_glitches(&samples, usize::from(info.channels), info.rate, &cfg)
        .map_err(|e| CliError::Data(format!("{}: {e}", args.file.display())))?;
    if args.json {
        let Value::Object(m) = to_json(&report) else {
            unreachable!("an object literal")
        };
        print_json(m)?;
    } else {
        println!("glitches:  {report}");
    }
    Ok(0)
}

/// The JSON object: the summary's figures and every event (seconds from the file's start).
fn to_json(r: &GlitchReport) -> Value {
    let secs = |frame: usize| frame as f64 / f64::from(r.rate);
    json!({
        "steps": r.steps,
        "holes": r.holes,
        "events": r.events.len(),
        "eventsPerMinute": r.events_per_minute(),
        "toneHz": r.tone_hz,
        "toneDbfs": 20.0 * r.amplitude.max(1e-10).log10(),
        "seconds": r.seconds(),
        "startSeconds": secs(r.start_frame),
        "rate": r.rate,
        "eventList": r.events.iter().map(|e| json!({
            "atSeconds": secs(e.frame),
            "kind": e.kind.name(),
            "steps": e.steps,
            "holes": e.holes,
            "step": e.step,
            "depth": e.depth,
            "holeMs": e.hole_ms,
            "jumpFrames": e.jump_frames,
            "zeroFrames": e.zero_frames,
        })).collect::<Vec<_>>(),
    })
}
