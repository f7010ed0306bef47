//! `izyrt dump` as a user runs it: a real process reading files and pipes.

#[path = "common/hex.rs"]
mod hex;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use izyrt::wire::*;

const A1: &str = "495a010300000000070000003800000080bb00000200010002000000000000008000000000000000e80300000000000000000000000000000000003f000000bf0000803e000080be";
const A2: &str = "495a010303000000ffffffff2e000000803e0000010002000300000000000000000000000000000015cd5b0700000000b168de3a000000000000ff7f0080";
const H1: &str = "495a01010000000000000000910000007b2270726f746f223a2273747265616d70726f746f31222c22726f6c65223a2270656572222c2275736572223a22616c696365222c2273616d706c6552617465223a34383030302c226368616e6e656c73223a322c22666f726d6174223a22663332222c226672616d65735065725061636b6574223a36342c22656e61626c65514f534d657472696373223a747275657d";
const P1: &str = "495a01060000000001000000080000002a00000000000000";

fn dump_stdin(input: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_izyrt"))
        .arg("dump")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

fn lines(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn vectors() -> Vec<u8> {
    [A1, A2, H1, P1]
        .iter()
        .flat_map(|v| hex::unhex(v))
        .collect()
}

#[test]
fn decodes_the_spec_vectors_from_a_file_and_stdin() {
    let dir = std::env::temp_dir().join(format!("izyrt-dump-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("vectors.bin");
    std::fs::write(&path, vectors()).unwrap();
    let from_file = Command::new(env!("CARGO_BIN_EXE_izyrt"))
        .arg("dump")
        .arg(&path)
        .output()
        .unwrap();
    let from_stdin = dump_stdin(&vectors());
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(from_file.stdout, from_stdin.stdout);
    assert!(
        from_file.status.success(),
        "{}",
        String::from_utf8_lossy(&from_file.stderr)
    );

    let l = lines(&from_file);
    assert_eq!(l.len(), 4);
    assert_eq!(
        l[0],
        serde_json::json!({"offset":0,"kind":"audio","track":0,"flags":0,"seq":7,"len":56,"sampleRate":48000,"channels":2,
            "format":"f32","frames":2,"position":128,"originNs":1000,"echoNs":0,"clockLocked":false,"peak":0.5})
    );
    assert_eq!(l[1]["format"], "s16");
    assert_eq!(l[1]["seq"], 4294967295u32);
    assert_eq!(l[1]["track"], 3);
    assert_eq!(l[1]["originNs"], 123456789);
    assert_eq!(l[1]["echoNs"], 987654321);
    assert_eq!(l[1]["peak"], 1.0);
    assert_eq!(l[2]["kind"], "hello");
    assert_eq!(l[2]["json"]["user"], "alice");
    assert_eq!(l[2]["offset"], 134);
    assert_eq!(
        l[3],
        serde_json::json!({"offset":295,"kind":"ping","track":0,"flags":0,"seq":1,"len":8,"clockNs":42})
    );
}

#[test]
fn an_audio_frame_flagged_clock_locked_says_so() {
    // A1 with flags bit 0 set (CLOCK_LOCKED: the sender resamples to the receiver's clock).
    let mut a1 = hex::unhex(A1);
    a1[6] = 1;
    let out = dump_stdin(&a1);
    assert!(out.status.success());
    let l = lines(&out);
    assert_eq!(l[0]["flags"], 1);
    assert_eq!(l[0]["clockLocked"], true);
    assert_eq!(l[0]["position"], 128, "the rest of the frame as before");
}

#[test]
fn unknown_kinds_are_listed_and_skipped() {
    let mut s = vec![
        0x49, 0x5a, 1, 77, 2, 0, 1, 0x80, 5, 0, 0, 0, 3, 0, 0, 0, 1, 2, 3,
    ];
    s.extend(hex::unhex(P1));
    let out = dump_stdin(&s);
    assert!(out.status.success());
    let l = lines(&out);
    assert_eq!(
        l[0],
        serde_json::json!({"offset":0,"kind":"unknown","track":2,"flags":32769,"seq":5,"len":3})
    );
    assert_eq!(l[1]["offset"], 19);
}

#[test]
fn malformed_streams_print_the_good_frames_then_the_fault() {
    let good = vectors();
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            b"XZ\x01\x09\0\0\0\0\0\0\0\0\0\0\0\0".to_vec(),
            "bad_magic at byte offset 319",
        ),
        (
            b"IZ\x07\x09\0\0\0\0\0\0\0\0\0\0\0\0".to_vec(),
            "bad_version at byte offset 319",
        ),
        (
            b"IZ\x01\x09\0\0\0\0\0\0\0\0\xff\xff\xff\xff".to_vec(),
            "frame_too_large at byte offset 319",
        ),
        (
            hex::unhex(&A1.replace("80bb0000", "10000000")),
            "bad_audio at byte offset 319",
        ),
        (
            [&b"IZ\x01\x04\0\0\0\0\0\0\0\0\x03\0\0\0"[..], b"[1]"].concat(),
            "bad_json at byte offset 319",
        ),
        (hex::unhex(&P1[..40]), "truncated at byte offset 319"),
        (b"IZ\x01".to_vec(), "truncated at byte offset 319"),
    ];
    for (bad, want) in cases {
        let out = dump_stdin(&[&good[..], &bad[..]].concat());
        assert_eq!(out.status.code(), Some(2), "{want}");
        assert_eq!(
            lines(&out).len(),
            4,
            "{want}: the frames before the fault are printed"
        );
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(want), "{err} should contain {want}");
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut x: u64 = 0x9e3779b97f4a7c15;
    for round in 0..20 {
        let mut bytes = b"IZ\x01".to_vec();
        for _ in 0..(round * 97) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            bytes.push(x as u8);
        }
        let out = dump_stdin(&bytes);
        assert!(matches!(out.status.code(), Some(0 | 2)), "{:?}", out.status);
        assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
    }
}

#[test]
fn constant_memory_for_a_large_stream() {
    // 100 MiB of 4096-frame stereo audio through a pipe: the decoder's fixed buffer is
    // all the memory it needs. A version that buffered the input would exceed the bound.
    let h = AudioHeader {
        sample_rate: 48_000,
        channels: 2,
        format: AudioFormat::F32,
        frames: 4096,
        position: 0,
        origin_ns: 0,
        echo_ns: 0,
    };
    let mut frame = vec![0u8; 16 + h.payload_len()];
    let n = encode_audio(&mut frame, 0, 0, &h, Samples::F32(&vec![0.25; 8192])).unwrap();
    let count = 100 * 1024 * 1024 / n;
    let mut child = Command::new(env!("CARGO_BIN_EXE_izyrt"))
        .arg("dump")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for _ in 0..count {
        stdin.write_all(&frame[..n]).unwrap();
    }
    drop(stdin);
    let pid = child.id();
    let status = child.wait().unwrap();
    assert!(status.success());
    // Max RSS of waited-for children (KiB). Other dump children of this test binary are small too.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    assert_eq!(
        unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) },
        0
    );
    assert!(
        ru.ru_maxrss < 32 * 1024,
        "dump (pid {pid}) peaked at {} KiB for a 100 MiB stream",
        ru.ru_maxrss
    );
}
