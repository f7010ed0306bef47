use super::*;
use crate::wire::{Samples, encode_audio};

#[test]
fn split_audio_encodes_like_contiguous_audio() {
    let h = AudioHeader {
        sample_rate: 48_000,
        channels: 2,
        format: AudioFormat::F32,
        frames: 3,
        position: 9,
        origin_ns: 5,
        echo_ns: 7,
    };
    let all = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6];
    let mut one = [0u8; 200];
    let mut two = [0u8; 200];
    let n1 = encode_audio(&mut one, 0, 4, &h, Samples::F32(&all)).unwrap();
    let n2 = encode_two(&mut two, 4, 0, &h, &all[..2], &all[2..]).unwrap();
    assert_eq!(one[..n1], two[..n2]);
    let s16 = AudioHeader {
        format: AudioFormat::S16,
        ..h
    };
    let n3 = encode_two(&mut two, 4, FLAG_CLOCK_LOCKED, &s16, &all[..4], &all[4..]).unwrap();
    let mut dec = Decoder::new();
    dec.feed(&two[..n3]);
    let f = dec.next_frame().unwrap().unwrap();
    assert_eq!(f.header.flags, FLAG_CLOCK_LOCKED);
    let mut back = [0f32; 6];
    f.audio().unwrap().read_f32(&mut back);
    assert!((back[5] - 0.6).abs() < 1e-4);
}

#[test]
fn a_shared_frame_carries_each_links_own_seq() {
    use std::io::Read;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (sock, _) = listener.accept().unwrap();
    sock.set_nonblocking(true).unwrap();
    let ev = EventLoop::new().unwrap();
    ev.register(sock.as_fd(), 7, Interest::READABLE).unwrap();
    let mut conn = Conn::new(sock, 7, Interest::READABLE, "test".into(), 1024);
    let value = serde_json::json!({"shared": true});
    conn.link.send_json(Kind::Metadata, &value);
    let mut frame = Vec::new();
    let n = encode_json_vec(&mut frame, Kind::Metadata, 99, &value).unwrap();
    conn.link.send_shared(&mut frame[..n]);
    conn.link.send_shared(&mut frame[..n]);
    conn.link.flush(&ev);
    let mut got = vec![0u8; 3 * n];
    client.read_exact(&mut got).unwrap();
    let mut dec = Decoder::new();
    dec.feed(&got);
    for seq in 0..3 {
        let f = dec.next_frame().unwrap().unwrap();
        assert_eq!((f.kind(), f.header.seq), (Some(Kind::Metadata), seq));
        assert_eq!(f.payload, br#"{"shared":true}"#);
    }
}
