//! Every malformed case maps to the right spec error code.

use izyrt::wire::*;

fn header(kind: u8, len: u32) -> Vec<u8> {
    let mut b = vec![0x49, 0x5a, 1, kind, 0, 0, 0, 0, 0, 0, 0, 0];
    b.extend_from_slice(&len.to_le_bytes());
    b
}

fn audio_payload(
    rate: u32,
    channels: u16,
    format: u16,
    frames: u32,
    samples_bytes: usize,
) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&rate.to_le_bytes());
    p.extend_from_slice(&channels.to_le_bytes());
    p.extend_from_slice(&format.to_le_bytes());
    p.extend_from_slice(&frames.to_le_bytes());
    p.extend_from_slice(&[0; 28]);
    p.resize(p.len() + samples_bytes, 0);
    p
}

fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut b = header(kind, payload.len() as u32);
    b.extend_from_slice(payload);
    b
}

/// Decodes `bytes` and returns the first error's code and the decoder offset.
fn first_error(bytes: &[u8]) -> (ErrorCode, u64) {
    let mut dec = Decoder::with_zone(64);
    let mut rest = bytes;
    loop {
        let offset = dec.offset();
        match dec.next_frame() {
            Ok(Some(_)) => continue,
            Ok(None) => {}
            Err(e) => {
                // The decoder stays failed.
                assert_eq!(dec.next_frame().unwrap_err(), e);
                return (e.code, offset);
            }
        }
        assert!(!rest.is_empty(), "stream decoded without error");
        let n = dec.feed(rest);
        rest = &rest[n..];
    }
}

#[test]
fn framing_errors() {
    let ok = frame(9, &[]); // a BYE first, so offsets are checked too
    let cases: Vec<(Vec<u8>, ErrorCode)> = vec![
        (
            b"IX\x01\x09\0\0\0\0\0\0\0\0\0\0\0\0".to_vec(),
            ErrorCode::BadMagic,
        ),
        (
            b"IZ\x02\x09\0\0\0\0\0\0\0\0\0\0\0\0".to_vec(),
            ErrorCode::BadVersion,
        ),
        (header(9, 2 * 1024 * 1024 + 1), ErrorCode::FrameTooLarge),
        (header(200, u32::MAX), ErrorCode::FrameTooLarge),
        (header(3, 39), ErrorCode::BadAudio),
        (
            header(3, (MAX_AUDIO_PAYLOAD + 1) as u32),
            ErrorCode::BadAudio,
        ),
        (header(1, 1024 * 1024 + 1), ErrorCode::BadJson),
        (frame(6, &[0; 7]), ErrorCode::BadFrame),
        (frame(7, &[0; 9]), ErrorCode::BadFrame),
        // Found by the fuzzer: a BYE declaring 2 MiB overran the no-move buffer.
        (header(9, 2 * 1024 * 1024), ErrorCode::BadFrame),
        (frame(9, &[1]), ErrorCode::BadFrame),
    ];
    for (bad, code) in cases {
        let mut stream = ok.clone();
        stream.extend_from_slice(&bad);
        assert_eq!(first_error(&stream), (code, 16), "{bad:02x?}");
    }
}

#[test]
fn audio_errors() {
    let cases = [
        audio_payload(7_999, 1, 1, 1, 4),
        audio_payload(384_001, 1, 1, 1, 4),
        audio_payload(48_000, 0, 1, 1, 0),
        audio_payload(48_000, 65, 1, 1, 65 * 4),
        audio_payload(48_000, 1, 3, 1, 4),
        audio_payload(48_000, 1, 0, 1, 4),
        audio_payload(48_000, 1, 1, 0, 0),
        audio_payload(48_000, 1, 1, 4097, 4097 * 4),
        audio_payload(48_000, 2, 1, 2, 15), // one byte short
        audio_payload(48_000, 2, 2, 2, 10), // two bytes long
    ];
    for p in cases {
        assert_eq!(
            first_error(&frame(3, &p)),
            (ErrorCode::BadAudio, 0),
            "{:02x?}",
            &p[..12]
        );
    }
    // The largest valid frame is accepted.
    let big = audio_payload(48_000, 64, 1, 4096, 4096 * 64 * 4);
    let mut dec = Decoder::with_zone(100);
    let mut rest = &frame(3, &big)[..];
    let mut n = 0;
    while !rest.is_empty() {
        let k = dec.feed(rest);
        rest = &rest[k..];
        while let Some(f) = dec.next_frame().unwrap() {
            assert_eq!(f.audio().unwrap().header.samples(), 4096 * 64);
            n += 1;
        }
    }
    assert_eq!(n, 1);
}

#[test]
fn json_errors() {
    let deep = format!(
        "{}{}",
        "{\"a\":".repeat(33),
        "1".to_string() + &"}".repeat(33)
    );
    let ok_deep = format!(
        "{}{}",
        "{\"a\":".repeat(32),
        "1".to_string() + &"}".repeat(32)
    );
    for bad in [
        &b"[1,2]"[..],
        b"\"x\"",
        b"{",
        b"{\"a\":1}x",
        b"\xff\xfe",
        b"",
        deep.as_bytes(),
    ] {
        assert_eq!(
            parse_object(bad).unwrap_err().code,
            ErrorCode::BadJson,
            "{bad:?}"
        );
    }
    assert!(parse_object(ok_deep.as_bytes()).is_ok());
    // Brackets inside strings do not count towards depth.
    assert!(parse_object(format!("{{\"a\":\"{}\"}}", "[".repeat(100)).as_bytes()).is_ok());
}

#[test]
fn hello_errors() {
    let base = r#"{"proto":"streamproto1","role":"peer","user":"alice","sampleRate":48000,"channels":2,"format":"f32","framesPerPacket":64}"#;
    assert!(Hello::parse(base.as_bytes()).is_ok());
    let cases = [
        (base.replace("alice", "al ice"), ErrorCode::BadJson),
        (base.replace("alice", &"a".repeat(65)), ErrorCode::BadJson),
        (base.replace(r#""user":"alice","#, ""), ErrorCode::BadJson),
        (
            base.replace(r#""role":"peer""#, r#""role":"king""#),
            ErrorCode::BadJson,
        ),
        (
            base.replace("streamproto1", "streamproto2"),
            ErrorCode::BadVersion,
        ),
        (
            base.replace(r#""f32""#, r#""s24""#),
            ErrorCode::FormatUnsupported,
        ),
        (base.replace("48000", "1000"), ErrorCode::FormatUnsupported),
        (
            base.replace(r#""channels":2"#, r#""channels":65"#),
            ErrorCode::FormatUnsupported,
        ),
        (
            base.replace(r#""framesPerPacket":64"#, r#""framesPerPacket":0"#),
            ErrorCode::FormatUnsupported,
        ),
        (
            base.replace(r#","framesPerPacket":64"#, ""),
            ErrorCode::BadJson,
        ),
        (
            base.replace(r#""sampleRate":48000"#, r#""sampleRate":"48000""#),
            ErrorCode::BadJson,
        ),
    ];
    for (json, code) in cases {
        assert_eq!(
            Hello::parse(json.as_bytes()).unwrap_err().code,
            code,
            "{json}"
        );
    }
    // A monitor may omit the audio fields; a peer may not.
    let monitor = r#"{"proto":"streamproto1","role":"monitor","user":"admin"}"#;
    assert!(Hello::parse(monitor.as_bytes()).is_ok());
    let peer = monitor.replace("monitor", "peer");
    assert_eq!(
        Hello::parse(peer.as_bytes()).unwrap_err().code,
        ErrorCode::BadJson
    );
}

#[test]
fn other_json_kinds() {
    let w = r#"{"proto":"streamproto1","session":"7f3a9c","hub":"izyrt/0.1.0","sampleRate":48000,"channels":2,"format":"f32","framesPerPacket":64,"mix":"minus"}"#;
    assert_eq!(Welcome::parse(w.as_bytes()).unwrap().mix, Mix::Minus);
    assert_eq!(
        Welcome::parse(w.replace("minus", "all").as_bytes())
            .unwrap_err()
            .code,
        ErrorCode::BadJson
    );
    let q = r#"{"head":{"track":0,"seq":1234,"sampleRate":48000,"channels":2,"format":"f32","frames":64,"position":78976,"originNs":5120000000},"qosTimestamp":1795440000123,"bufferDepthFloat32Samples":256,"latencyMs":2.7,"incomingBufferMisses":0,"rttMs":0.4,"custom":1}"#;
    let qos = QosMetrics::parse(q.as_bytes()).unwrap();
    assert_eq!(
        (qos.head.seq, qos.rtt_ms, qos.extra["custom"].as_i64()),
        (1234, Some(0.4), Some(1))
    );
    assert_eq!(
        QosMetrics::parse(b"{\"head\":{}}").unwrap_err().code,
        ErrorCode::BadJson
    );
    let e = ErrorMsg::parse(br#"{"code":"unauthorized","message":"wrong token"}"#).unwrap();
    assert_eq!(e.known_code(), Some(ErrorCode::Unauthorized));
    assert_eq!(
        ErrorMsg::parse(br#"{"code":"x"}"#).unwrap_err().code,
        ErrorCode::BadJson
    );
}

#[test]
fn unknown_kinds_are_skipped_whole_without_buffering() {
    let mut stream = frame(42, &vec![0xab; 2 * 1024 * 1024]);
    stream.extend_from_slice(&frame(9, &[]));
    let mut dec = Decoder::with_zone(4096);
    let mut rest = &stream[..];
    let mut kinds = Vec::new();
    while !rest.is_empty() {
        let n = dec.feed(rest);
        assert!(n <= 4096, "a read never exceeds the zone while skipping");
        rest = &rest[n..];
        while let Some(f) = dec.next_frame().unwrap() {
            kinds.push((f.offset, f.header.kind, f.payload.len()));
        }
    }
    assert_eq!(kinds, [(0, 42, 0), (16 + 2 * 1024 * 1024, 9, 0)]);
}

#[test]
fn encoders_refuse_invalid_frames() {
    let h = AudioHeader {
        sample_rate: 48_000,
        channels: 2,
        format: AudioFormat::F32,
        frames: 2,
        position: 0,
        origin_ns: 0,
        echo_ns: 0,
    };
    let mut small = [0u8; 40];
    assert!(matches!(
        encode_audio(&mut small, 0, 0, &h, Samples::F32(&[0.0; 4])),
        Err(EncodeError::BufferTooSmall { need: 72, have: 40 })
    ));
    let mut out = [0u8; 128];
    assert!(matches!(
        encode_audio(&mut out, 0, 0, &h, Samples::F32(&[0.0; 3])),
        Err(EncodeError::Invalid(_))
    ));
    let bad = AudioHeader { channels: 0, ..h };
    assert!(matches!(
        encode_audio(&mut out, 0, 0, &bad, Samples::F32(&[])),
        Err(EncodeError::Invalid(_))
    ));
    assert!(matches!(
        encode_json(&mut out, Kind::Audio, 0, 0, &1),
        Err(EncodeError::Invalid(_))
    ));
    assert!(matches!(
        encode_json(&mut out, Kind::Qos, 0, 0, &[1, 2]),
        Err(EncodeError::Invalid(_))
    ));
    let big = serde_json::json!({"a": "x".repeat(200)});
    assert!(matches!(
        encode_json(&mut out, Kind::Metadata, 0, 0, &big),
        Err(EncodeError::BufferTooSmall {
            need: 224,
            have: 128
        })
    ));
    assert_eq!(encode_bye(&mut out, 5).unwrap(), 16);
    let n = encode_error(
        &mut out,
        0,
        &ProtocolError::new(ErrorCode::HubFull, "64 connections"),
    )
    .unwrap();
    assert_eq!(
        &out[16..n],
        br#"{"code":"hub_full","message":"64 connections"}"#
    );
}
