//! Fuzzes the streamproto1 decoder: arbitrary bytes, split at arbitrary points, through a
//! small read zone (so the end-of-zone path runs often), and every payload through the
//! parser a receiver would use. Any panic, or a decoder that stops taking bytes without
//! an error, is a bug.
#![no_main]

use izyrt::wire::{AudioView, Decoder, ErrorMsg, Hello, Kind, QosMetrics, Welcome, parse_object};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, data)) = data.split_first() else { return };
    let zone = 16 + usize::from(ctl) * 8;
    let step = 1 + usize::from(ctl % 61);
    let mut dec = Decoder::with_zone(zone);
    let mut rest = data;
    loop {
        match dec.next_frame() {
            Ok(Some(f)) => {
                match f.kind() {
                    Some(Kind::Audio) => {
                        let v = AudioView::parse(f.payload).expect("decoder validated it");
                        let mut out = [0f32; 256];
                        v.read_f32(&mut out);
                        let _ = v.peak();
                    }
                    Some(Kind::Hello) => drop(Hello::parse(f.payload)),
                    Some(Kind::Welcome) => drop(Welcome::parse(f.payload)),
                    Some(Kind::Qos) => drop(QosMetrics::parse(f.payload)),
                    Some(Kind::Error) => drop(ErrorMsg::parse(f.payload)),
                    Some(Kind::Metadata) => drop(parse_object(f.payload)),
                    Some(Kind::Ping | Kind::Pong) => assert!(f.clock_ns().is_some()),
                    _ => {}
                }
                continue;
            }
            Ok(None) => {}
            Err(_) => return,
        }
        if rest.is_empty() {
            return;
        }
        let n = dec.feed(&rest[..rest.len().min(step)]);
        assert!(n > 0, "decoder stalled without an error");
        rest = &rest[n..];
    }
});
