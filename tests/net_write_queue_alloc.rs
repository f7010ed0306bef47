//! The net thread's write path allocates nothing: after `WriteQueue::new`, pushing control
//! and audio frames (dropping old audio included), writing in small chunks up to
//! `WouldBlock`, and clearing make no allocator call. With a control showing the counter
//! sees an allocation.

use std::io::{self, ErrorKind, Write};

use izyrt::net::{WriteQueue, WriteQueueConfig};
use izyrt::rt::alloc_count::{CountingAllocator, count_allocations};

#[global_allocator]
static ALLOC: CountingAllocator = CountingAllocator;

/// Accepts up to `budget` bytes, `per_call` at a time, then `WouldBlock`; keeps only a
/// count and a checksum, so it allocates nothing itself.
struct Sink {
    per_call: usize,
    budget: usize,
    bytes: u64,
    sum: u64,
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(self.per_call).min(self.budget);
        if n == 0 {
            return Err(ErrorKind::WouldBlock.into());
        }
        self.budget -= n;
        self.bytes += n as u64;
        self.sum += buf[..n].iter().map(|&b| u64::from(b)).sum::<u64>();
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn push_write_and_clear_allocate_nothing() {
    let mut q = WriteQueue::new(WriteQueueConfig::default());
    let slot = WriteQueueConfig::default().audio_slot_bytes;
    let ping = [7u8; 24];
    let json = [b'{'; 3000];
    let mut sink = Sink {
        per_call: 1,
        budget: 0,
        bytes: 0,
        sum: 0,
    };

    let ((), n) = count_allocations(|| {
        for round in 0..500usize {
            q.push_control(&ping).unwrap();
            if round % 10 == 0 {
                q.push_control(&json).unwrap();
            }
            // Three audio frames per round and a slow reader: slots fill and drop.
            for i in 0..3 {
                q.push_audio(|buf| {
                    let len = slot - (round + i) % 1000;
                    buf[..len].fill(1);
                    Ok::<_, ()>(len)
                })
                .unwrap();
            }
            assert_eq!(q.push_audio(|_| Err(())), Err(()));
            sink.per_call = [1, 7, 1500, 65_536][round % 4];
            sink.budget = 40_000;
            q.write_to(&mut sink).unwrap();
            if round % 100 == 99 {
                q.clear();
            }
        }
        sink.budget = usize::MAX;
        q.write_to(&mut sink).unwrap();
    });
    assert_eq!(n, 0, "allocations in push/write/clear");
    assert!(q.is_empty());
    assert!(q.dropped_audio() > 0 && q.written_audio() > 0, "{q:?}");
    assert!(sink.bytes > 1_000_000 && sink.sum > 0);
}

#[test]
fn control_an_allocation_is_seen() {
    let (_, n) = count_allocations(|| std::hint::black_box(Vec::<u8>::with_capacity(8)));
    assert!(n >= 1);
}
