//! Property tests: encode→decode round trips, and any split of a valid stream decodes
//! identically whatever the read zone.

use std::io::Read;

use izyrt::wire::*;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum F {
    Audio {
        track: u16,
        seq: u32,
        h: AudioHeader,
        samples: Vec<i16>,
    },
    Json {
        kind: Kind,
        seq: u32,
        value: serde_json::Value,
    },
    Ping {
        kind: Kind,
        seq: u32,
        clock: u64,
    },
    Bye {
        seq: u32,
    },
    Unknown {
        kind: u8,
        payload: Vec<u8>,
    },
}

fn audio() -> impl Strategy<Value = F> {
    (
        any::<u16>(),
        any::<u32>(),
        8_000u32..=384_000,
        1u16..=4,
        any::<bool>(),
        1u32..=200,
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
    )
        .prop_flat_map(
            |(track, seq, rate, ch, f32, frames, position, origin_ns, echo_ns)| {
                let format = if f32 {
                    AudioFormat::F32
                } else {
                    AudioFormat::S16
                };
                let h = AudioHeader {
                    sample_rate: rate,
                    channels: ch,
                    format,
                    frames,
                    position,
                    origin_ns,
                    echo_ns,
                };
                proptest::collection::vec(any::<i16>(), h.samples()).prop_map(move |samples| {
                    F::Audio {
                        track,
                        seq,
                        h,
                        samples,
                    }
                })
            },
        )
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        "[a-zé{}\\[\\]\"\\\\ ]{0,12}".prop_map(serde_json::Value::from),
    ];
    let tree = leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            proptest::collection::btree_map("[a-z]{1,6}", inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    });
    proptest::collection::btree_map("[a-zA-Z]{1,8}", tree, 0..5)
        .prop_map(|m| serde_json::Value::Object(m.into_iter().collect()))
}

fn frame() -> impl Strategy<Value = F> {
    prop_oneof![
        4 => audio(),
        2 => (prop::sample::select(vec![Kind::Hello, Kind::Welcome, Kind::Metadata, Kind::Qos, Kind::Error]), any::<u32>(), json_value())
            .prop_map(|(kind, seq, value)| F::Json { kind, seq, value }),
        1 => (prop::sample::select(vec![Kind::Ping, Kind::Pong]), any::<u32>(), any::<u64>())
            .prop_map(|(kind, seq, clock)| F::Ping { kind, seq, clock }),
        1 => any::<u32>().prop_map(|seq| F::Bye { seq }),
        1 => (10u8.., proptest::collection::vec(any::<u8>(), 0..3000)).prop_map(|(kind, payload)| F::Unknown { kind, payload }),
    ]
}

/// What the decoder reports for one frame: offset, header, payload.
type Decoded = (u64, Header, Vec<u8>);

/// Encodes the frames; returns the stream and what the decoder must report for each.
fn encode(frames: &[F]) -> (Vec<u8>, Vec<Decoded>) {
    let mut stream = Vec::new();
    let mut want = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    for f in frames {
        let n = match f {
            F::Audio {
                track,
                seq,
                h,
                samples,
            } => encode_audio(&mut buf, *track, *seq, h, Samples::S16(samples)).unwrap(),
            F::Json { kind, seq, value } => encode_json(&mut buf, *kind, 0, *seq, value).unwrap(),
            F::Ping { kind, seq, clock } => encode_ping(&mut buf, *kind, *seq, *clock).unwrap(),
            F::Bye { seq } => encode_bye(&mut buf, *seq).unwrap(),
            F::Unknown { kind, payload } => {
                let h = Header {
                    kind: *kind,
                    track: 1,
                    flags: 0xffff,
                    seq: 9,
                    len: payload.len() as u32,
                };
                h.write((&mut buf[..16]).try_into().unwrap());
                buf[16..16 + payload.len()].copy_from_slice(payload);
                16 + payload.len()
            }
        };
        let header = Header::parse(buf[..16].try_into().unwrap()).unwrap();
        let payload = if header.kind().is_some() {
            buf[16..n].to_vec()
        } else {
            Vec::new()
        };
        want.push((stream.len() as u64, header, payload));
        stream.extend_from_slice(&buf[..n]);
    }
    (stream, want)
}

/// A reader that hands out the stream in the given chunk sizes, cycling.
struct Chunked<'a> {
    data: &'a [u8],
    sizes: Vec<usize>,
    i: usize,
}

impl Read for Chunked<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let n = self.sizes[self.i % self.sizes.len()]
            .min(out.len())
            .min(self.data.len());
        self.i += 1;
        out[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

fn decode(stream: &[u8], zone: usize, sizes: Vec<usize>) -> Vec<Decoded> {
    let mut dec = Decoder::with_zone(zone);
    let mut r = Chunked {
        data: stream,
        sizes,
        i: 0,
    };
    let mut got = Vec::new();
    loop {
        while let Some(f) = dec.next_frame().unwrap() {
            if f.kind() == Some(Kind::Audio) {
                f.audio().expect("decoder hands out only valid audio");
            }
            got.push((f.offset, f.header, f.payload.to_vec()));
        }
        if dec.read_from(&mut r).unwrap() == 0 {
            assert_eq!(dec.partial(), None);
            return got;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn any_split_decodes_identically(
        frames in proptest::collection::vec(frame(), 1..12),
        zone in 16usize..3000,
        sizes in proptest::collection::vec(1usize..700, 1..8),
    ) {
        let (stream, want) = encode(&frames);
        prop_assert_eq!(decode(&stream, zone, sizes), want.clone());
        prop_assert_eq!(decode(&stream, DEFAULT_ZONE, vec![usize::MAX]), want);
    }

    #[test]
    fn audio_round_trips(f in audio()) {
        let F::Audio { track, seq, h, samples } = f else { unreachable!() };
        let mut buf = vec![0u8; 16 + h.payload_len()];
        // Through f32 samples: exact for f32, and for s16 since k/32768 is exact in f32.
        let floats: Vec<f32> = samples.iter().map(|s| *s as f32 / 32768.0).collect();
        let n = encode_audio(&mut buf, track, seq, &h, Samples::F32(&floats)).unwrap();
        let mut dec = Decoder::new();
        prop_assert_eq!(dec.feed(&buf[..n]), n);
        let frame = dec.next_frame().unwrap().unwrap();
        prop_assert_eq!(frame.header, Header::new(Kind::Audio, track, seq, h.payload_len() as u32));
        let view = frame.audio().unwrap();
        prop_assert_eq!(view.header, h);
        let mut out = vec![0f32; h.samples()];
        view.read_f32(&mut out);
        prop_assert_eq!(out, floats);
    }

    /// Any f32 bit patterns: kept exactly when zero or normal; NaN, ±∞ and subnormals
    /// become 0 and are counted (the receive path's sanitising, written without branches).
    #[test]
    fn f32_samples_keep_zero_and_normals_only(
        bits in proptest::collection::vec(prop_oneof![
            any::<u32>(),
            // The edges of every class, both signs.
            prop::sample::select(vec![0u32, 1, 0x007F_FFFF, 0x0080_0000, 0x7F7F_FFFF,
                0x7F80_0000, 0x7F80_0001, 0x7FC0_0000, 0x7FFF_FFFF]),
            (0u32..0x0080_0000),
        ].prop_flat_map(|b| prop_oneof![Just(b), Just(b | 0x8000_0000)]), 1..300),
    ) {
        let floats: Vec<f32> = bits.iter().map(|&b| f32::from_bits(b)).collect();
        let h = AudioHeader { sample_rate: 48_000, channels: 1, format: AudioFormat::F32,
            frames: floats.len() as u32, position: 0, origin_ns: 0, echo_ns: 0 };
        let mut buf = vec![0u8; 16 + h.payload_len()];
        let n = encode_audio(&mut buf, 0, 0, &h, Samples::F32(&floats)).unwrap();
        let mut dec = Decoder::new();
        dec.feed(&buf[..n]);
        let frame = dec.next_frame().unwrap().unwrap();
        let mut out = vec![1f32; floats.len()];
        let got = frame.audio().unwrap().read_f32_counted(&mut out);
        let keep = |x: f32| x == 0.0 || x.is_normal();
        prop_assert_eq!(got.written, floats.len());
        prop_assert_eq!(got.zeroed, floats.iter().filter(|&&x| !keep(x)).count());
        for (&x, &o) in floats.iter().zip(&out) {
            let want = if keep(x) { x.to_bits() } else { 0 };
            prop_assert_eq!(o.to_bits(), want, "{:#010x}", x.to_bits());
        }
    }

    #[test]
    fn json_round_trips(value in json_value()) {
        let mut buf = vec![0u8; 64 * 1024];
        let n = encode_json(&mut buf, Kind::Metadata, 2, 3, &value).unwrap();
        let mut dec = Decoder::new();
        dec.feed(&buf[..n]);
        let f = dec.next_frame().unwrap().unwrap();
        prop_assert_eq!(serde_json::Value::Object(parse_object(f.payload).unwrap()), value);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4000), zone in 16usize..512) {
        let mut dec = Decoder::with_zone(zone);
        let mut rest = &bytes[..];
        loop {
            match dec.next_frame() {
                Ok(Some(f)) => { if f.kind().is_some_and(Kind::is_json) { let _ = parse_object(f.payload); } continue; }
                Ok(None) => {}
                Err(_) => break,
            }
            if rest.is_empty() { break; }
            let n = dec.feed(rest);
            prop_assert!(n > 0);
            rest = &rest[n..];
        }
    }
}
