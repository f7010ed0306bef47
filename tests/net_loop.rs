//! The net thread's foundation over real sockets on 127.0.0.1: a readiness-driven
//! exchange through the epoll loop, socket tuning on both ends, and allocation-free
//! wake and poll.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use izyrt::net::socket::{accept_nonblocking, connect_nonblocking, listen, tune};
use izyrt::net::{EventLoop, Events, Interest, SocketTuning, Timer, Waker};
use izyrt::rt::alloc_count::{CountingAllocator, count_allocations};
use socket2::SockRef;

#[global_allocator]
static ALLOC: CountingAllocator = CountingAllocator;

const LISTENER: u64 = 1;
const CLIENT: u64 = 2;
const SERVER: u64 = 3;

/// One end of the exchange: bytes still to send, bytes received.
struct Conn {
    stream: TcpStream,
    out: Vec<u8>,
    sent: usize,
    got: Vec<u8>,
    eof: bool,
    /// Writes that stopped at `WouldBlock` and had to wait for readiness.
    blocked: u32,
}

impl Conn {
    fn new(stream: TcpStream, out: Vec<u8>) -> Conn {
        Conn {
            stream,
            out,
            sent: 0,
            got: Vec::new(),
            eof: false,
            blocked: 0,
        }
    }

    /// Level-triggered: ask for writable only while there is something to send.
    fn interest(&self) -> Interest {
        if self.sent < self.out.len() {
            Interest::READ_WRITE
        } else {
            Interest::READABLE
        }
    }

    fn on_writable(&mut self) {
        while self.sent < self.out.len() {
            match self.stream.write(&self.out[self.sent..]) {
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.blocked += 1;
                    return;
                }
                Err(e) => panic!("write: {e}"),
            }
        }
    }

    fn on_readable(&mut self) {
        let mut buf = [0u8; 4096];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => {
                    self.eof = true;
                    return;
                }
                Ok(n) => self.got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => panic!("read: {e}"),
            }
        }
    }
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}

#[test]
fn readiness_driven_exchange_over_tcp() {
    // Bounded buffers and a payload many times larger: both sides hit WouldBlock and have
    // to be resumed by readiness.
    let tuning = SocketTuning {
        send_buffer: 32 * 1024,
        recv_buffer: 32 * 1024,
    };
    const LEN: usize = 512 * 1024;
    let to_server = pattern(LEN, 0x5A);
    let to_client = pattern(LEN, 0xA5);

    let mut lp = EventLoop::new().unwrap();
    let mut events = Events::with_capacity(16);
    let listener = listen("127.0.0.1:0".parse().unwrap(), 16).unwrap();
    tune(&listener, &tuning).unwrap();
    lp.register(&listener, LISTENER, Interest::READABLE)
        .unwrap();

    let client_stream = connect_nonblocking(listener.local_addr().unwrap()).unwrap();
    let client_applied = tune(&client_stream, &tuning).unwrap();
    let mut client = Conn::new(client_stream, to_server.clone());
    // Writable first: that is how a nonblocking connect reports completion.
    lp.register(&client.stream, CLIENT, Interest::WRITABLE)
        .unwrap();
    let mut connected = false;
    let mut server: Option<Conn> = None;

    let deadline = Instant::now() + Duration::from_secs(20);
    while client.got.len() < LEN || server.as_ref().is_none_or(|s| s.got.len() < LEN) {
        assert!(Instant::now() < deadline, "exchange did not finish in time");
        lp.poll(Some(Duration::from_millis(200)), &mut events)
            .unwrap();
        for ev in events.iter() {
            assert!(!ev.is_error(), "socket error on token {}", ev.token());
            match ev.token() {
                LISTENER => {
                    while let Some((stream, _)) = accept_nonblocking(&listener).unwrap() {
                        assert!(server.is_none(), "one client only");
                        let applied = tune(&stream, &tuning).unwrap();
                        assert!(applied.nodelay && applied.is_ef(), "{applied:?}");
                        let conn = Conn::new(stream, to_client.clone());
                        lp.register(&conn.stream, SERVER, conn.interest()).unwrap();
                        server = Some(conn);
                    }
                }
                CLIENT => {
                    if !connected {
                        assert!(ev.is_writable());
                        assert!(client.stream.take_error().unwrap().is_none());
                        connected = true;
                    }
                    if ev.is_readable() {
                        client.on_readable();
                    }
                    if ev.is_writable() {
                        client.on_writable();
                    }
                    lp.modify(&client.stream, CLIENT, client.interest())
                        .unwrap();
                }
                SERVER => {
                    let s = server.as_mut().expect("server event before accept");
                    if ev.is_readable() {
                        s.on_readable();
                    }
                    if ev.is_writable() {
                        s.on_writable();
                    }
                    lp.modify(&s.stream, SERVER, s.interest()).unwrap();
                }
                t => panic!("unexpected token {t}"),
            }
        }
    }
    let server = server.unwrap();
    assert!(client.got == to_client, "client received corrupted data");
    assert!(server.got == to_server, "server received corrupted data");
    assert!(!client.eof && !server.eof);
    assert!(
        client.blocked > 0 && server.blocked > 0,
        "payload too small to fill the buffers: readiness resumption untested"
    );

    // Tuning holds on both ends, as read back independently with socket2.
    assert!(client_applied.nodelay && client_applied.is_ef());
    for s in [&client.stream, &server.stream] {
        let r = SockRef::from(s);
        assert!(r.tcp_nodelay().unwrap());
        assert_eq!(r.tos_v4().unwrap() & 0xFC, 0xB8);
        assert!(r.send_buffer_size().unwrap() <= 4 * tuning.send_buffer);
    }

    // Deregistered: the server's data no longer wakes the client's registration.
    lp.deregister(&client.stream).unwrap();
    (&server.stream).write_all(b"late").unwrap();
    assert_eq!(
        lp.poll(Some(Duration::from_millis(50)), &mut events)
            .unwrap(),
        0
    );
    // ...but it did arrive: the socket is readable, only no longer watched.
    let end = Instant::now() + Duration::from_secs(5);
    let mut c = client;
    while c.got.len() < LEN + 4 {
        assert!(Instant::now() < end, "late bytes never arrived");
        c.on_readable();
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(&c.got[LEN..], b"late");

    // Closing the server end is seen as a hang-up plus end of stream.
    lp.register(&c.stream, CLIENT, Interest::READABLE).unwrap();
    drop(server);
    assert_eq!(
        lp.poll(Some(Duration::from_secs(5)), &mut events).unwrap(),
        1
    );
    let ev = events.iter().next().unwrap();
    assert!(ev.is_readable() && ev.is_hangup());
    c.on_readable();
    assert!(c.eof);
}

#[test]
fn wake_makes_no_allocation() {
    let waker = Arc::new(Waker::new().unwrap());
    let ((), n) = count_allocations(|| {
        for _ in 0..1000 {
            waker.wake();
        }
    });
    assert_eq!(n, 0, "Waker::wake allocated");
    assert_eq!(waker.drain().unwrap(), 1000);

    // The counter is live: an allocation inside the guard is counted.
    let (_v, n) = count_allocations(|| vec![0u8; 64]);
    assert!(n >= 1);
}

#[test]
fn poll_with_ready_events_makes_no_allocation() {
    let mut lp = EventLoop::new().unwrap();
    let waker = Waker::new().unwrap();
    let timer = Timer::new().unwrap();
    lp.register(&waker, 10, Interest::READABLE).unwrap();
    lp.register(&timer, 11, Interest::READABLE).unwrap();
    let mut events = Events::with_capacity(8);
    // Warm-up poll outside the guard (first use of anything lazily initialised).
    assert_eq!(lp.poll(Some(Duration::ZERO), &mut events).unwrap(), 0);

    waker.wake();
    timer.arm_once(Duration::ZERO).unwrap();
    // Wait (bounded) until both are ready, outside the guard.
    let end = Instant::now() + Duration::from_secs(5);
    while lp
        .poll(Some(Duration::from_millis(100)), &mut events)
        .unwrap()
        < 2
    {
        assert!(Instant::now() < end, "waker and timer never both ready");
    }

    let ((ready, tokens, drained, fired), n) = count_allocations(|| {
        let ready = lp.poll(Some(Duration::from_secs(1)), &mut events).unwrap();
        let mut tokens = 0u64;
        for ev in events.iter() {
            tokens += ev.token();
        }
        let drained = waker.drain().unwrap();
        let fired = timer.expirations().unwrap();
        (ready, tokens, drained, fired)
    });
    assert_eq!(n, 0, "poll/iterate/drain/expirations allocated");
    assert_eq!((ready, tokens, drained, fired), (2, 21, 1, 1));

    // A timed-out poll is allocation-free too.
    let (ready, n) = count_allocations(|| lp.poll(Some(Duration::from_millis(1)), &mut events));
    assert_eq!((ready.unwrap(), n), (0, 0));
}
