//! The test vectors of streamproto1.md, byte for byte, both ways.

#[path = "common/hex.rs"]
mod hex;

use hex::unhex;
use izyrt::wire::*;

const A1: &str = "495a010300000000070000003800000080bb00000200010002000000000000008000000000000000
e80300000000000000000000000000000000003f000000bf0000803e000080be";
const A2: &str =
    "495a010303000000ffffffff2e000000803e0000010002000300000000000000000000000000000015
cd5b0700000000b168de3a000000000000ff7f0080";
const H1: &str = "495a01010000000000000000910000007b2270726f746f223a2273747265616d70726f746f31222c
22726f6c65223a2270656572222c2275736572223a22616c696365222c2273616d706c6552617465
223a34383030302c226368616e6e656c73223a322c22666f726d6174223a22663332222c22667261
6d65735065725061636b6574223a36342c22656e61626c65514f534d657472696373223a74727565
7d";
const H1_JSON: &str = r#"{"proto":"streamproto1","role":"peer","user":"alice","sampleRate":48000,"channels":2,"format":"f32","framesPerPacket":64,"enableQOSMetrics":true}"#;
const P1: &str = "495a01060000000001000000080000002a00000000000000";

fn decode_one(bytes: &[u8]) -> (Header, Vec<u8>) {
    let mut dec = Decoder::new();
    assert_eq!(dec.feed(bytes), bytes.len());
    let f = dec.next_frame().unwrap().expect("one frame");
    assert_eq!(f.offset, 0);
    let out = (f.header, f.payload.to_vec());
    assert!(dec.next_frame().unwrap().is_none());
    assert_eq!(dec.partial(), None);
    out
}

#[test]
fn a1_encodes_and_decodes() {
    let want = unhex(A1);
    assert_eq!(want.len(), 72);
    let h = AudioHeader {
        sample_rate: 48_000,
        channels: 2,
        format: AudioFormat::F32,
        frames: 2,
        position: 128,
        origin_ns: 1000,
        echo_ns: 0,
    };
    let mut out = [0u8; 128];
    let n = encode_audio(&mut out, 0, 7, &h, Samples::F32(&[0.5, -0.5, 0.25, -0.25])).unwrap();
    assert_eq!(&out[..n], &want[..]);

    let (head, payload) = decode_one(&want);
    assert_eq!(head, Header::new(Kind::Audio, 0, 7, 56));
    let view = AudioView::parse(&payload).unwrap();
    assert_eq!(view.header, h);
    let mut s = [0f32; 4];
    assert_eq!(view.read_f32(&mut s), 4);
    assert_eq!(s, [0.5, -0.5, 0.25, -0.25]);
    assert_eq!(view.peak(), 0.5);
}

#[test]
fn a2_encodes_and_decodes() {
    let want = unhex(A2);
    assert_eq!(want.len(), 62);
    let h = AudioHeader {
        sample_rate: 16_000,
        channels: 1,
        format: AudioFormat::S16,
        frames: 3,
        position: 0,
        origin_ns: 123_456_789,
        echo_ns: 987_654_321,
    };
    let mut out = [0u8; 128];
    let n = encode_audio(&mut out, 3, u32::MAX, &h, Samples::S16(&[0, 32767, -32768])).unwrap();
    assert_eq!(&out[..n], &want[..]);
    // The same samples given as floats quantise to the same bytes.
    let n = encode_audio(&mut out, 3, u32::MAX, &h, Samples::F32(&[0.0, 1.0, -1.0])).unwrap();
    assert_eq!(&out[..n], &want[..]);

    let (head, payload) = decode_one(&want);
    assert_eq!(head, Header::new(Kind::Audio, 3, u32::MAX, 46));
    let view = AudioView::parse(&payload).unwrap();
    assert_eq!(view.header, h);
    let mut s = [0f32; 3];
    view.read_f32(&mut s);
    assert_eq!(s, [0.0, 32767.0 / 32768.0, -1.0]);
}

#[test]
fn h1_encodes_and_decodes() {
    let want = unhex(H1);
    assert_eq!(want.len(), 161);
    let hello = Hello {
        proto: PROTO.into(),
        role: Role::Peer,
        user: "alice".into(),
        token: None,
        sample_rate: Some(48_000),
        channels: Some(2),
        format: Some("f32".into()),
        frames_per_packet: Some(64),
        enable_qos_metrics: true,
        software: None,
        mix: None,
    };
    let mut out = [0u8; 256];
    let n = encode_json(&mut out, Kind::Hello, 0, 0, &hello).unwrap();
    assert_eq!(&out[..n], &want[..]);

    let (head, payload) = decode_one(&want);
    assert_eq!(head, Header::new(Kind::Hello, 0, 0, 145));
    assert_eq!(payload, H1_JSON.as_bytes());
    assert_eq!(Hello::parse(&payload).unwrap(), hello);
}

#[test]
fn p1_encodes_and_decodes() {
    let want = unhex(P1);
    let mut out = [0u8; 24];
    assert_eq!(encode_ping(&mut out, Kind::Ping, 1, 42).unwrap(), 24);
    assert_eq!(&out[..], &want[..]);
    let mut dec = Decoder::new();
    dec.feed(&want);
    let f = dec.next_frame().unwrap().unwrap();
    assert_eq!(
        (f.kind(), f.header.seq, f.clock_ns()),
        (Some(Kind::Ping), 1, Some(42))
    );
}

#[test]
fn all_vectors_back_to_back_one_byte_at_a_time() {
    let stream: Vec<u8> = [A1, A2, H1, P1].iter().flat_map(|v| unhex(v)).collect();
    let mut dec = Decoder::new();
    let mut seen = Vec::new();
    for b in &stream {
        assert_eq!(dec.feed(std::slice::from_ref(b)), 1);
        while let Some(f) = dec.next_frame().unwrap() {
            seen.push((f.offset, f.kind().unwrap()));
        }
    }
    assert_eq!(
        seen,
        [
            (0, Kind::Audio),
            (72, Kind::Audio),
            (134, Kind::Hello),
            (295, Kind::Ping)
        ]
    );
}
