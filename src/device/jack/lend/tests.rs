use super::*;
use std::sync::Arc;
use std::time::Duration;

const MS: u64 = 1_000_000;

/// JACK's side: `cycles` cycles of 4 samples, capture filled with the cycle's number;
/// returns what each cycle served and its playback.
fn jack_side(
    l: Arc<Lend>,
    cycles: usize,
    pause: Duration,
) -> std::thread::JoinHandle<Vec<(Served, f32)>> {
    std::thread::spawn(move || {
        (0..cycles)
            .map(|n| {
                std::thread::sleep(pause);
                let mut out = [0.0f32; 4];
                let r = l.serve(&[n as f32; 4], &mut out, n as u64);
                (r, out[0])
            })
            .collect()
    })
}

fn double(c: &[f32], p: &mut [f32]) {
    for (o, i) in p.iter_mut().zip(c) {
        *o = i * 2.0;
    }
}

#[test]
fn nothing_lent_is_served_as_idle_and_a_close_as_closed() {
    let l = Lend::default();
    let mut out = [1.0f32; 4];
    assert_eq!(l.serve(&[0.0; 4], &mut out, 0), Served::Idle);
    assert_eq!(out, [1.0; 4], "nothing written");
    l.close();
    assert!(l.is_closed());
    assert_eq!(l.serve(&[0.0; 4], &mut out, 0), Served::Closed);
    let mut body = |_: &[f32], _: &mut [f32], _: u64| panic!("closed");
    assert_eq!(l.lend_once(&mut body, MS), Err(WaitError::Closed));
    let stop = AtomicBool::new(false);
    assert_eq!(l.lend(&mut body, &stop, MS), Err(WaitError::Closed));
}

#[test]
fn lent_once_the_next_cycle_runs_it_and_only_that_one() {
    let l = Arc::new(Lend::default());
    let jack = jack_side(Arc::clone(&l), 40, Duration::from_millis(1));
    let mut got = Vec::new();
    for _ in 0..10 {
        let mut seen = -1.0;
        let late = l
            .lend_once(
                &mut |c, p, _| {
                    double(c, p);
                    seen = c[0];
                },
                5_000 * MS,
            )
            .unwrap();
        assert_eq!(late, seen as u64, "the lateness of the cycle that ran it");
        got.push(seen);
    }
    let served = jack.join().unwrap();
    let done: Vec<_> = served.iter().filter(|(r, _)| *r == Served::Done).collect();
    assert_eq!(done.len(), 10, "one cycle per loan: {served:?}");
    for ((_, out), n) in done.iter().zip(&got) {
        assert_eq!(*out, 2.0 * n, "the cycle got its own period back");
    }
    assert!(got.windows(2).all(|w| w[1] > w[0]), "{got:?}");
}

#[test]
fn lent_for_good_every_cycle_runs_it_until_the_stop() {
    let l = Arc::new(Lend::default());
    let stop = Arc::new(AtomicBool::new(false));
    let jack = jack_side(Arc::clone(&l), 200, Duration::from_micros(200));
    let mut calls = 0u32;
    let stopper = Arc::clone(&stop);
    l.lend(
        &mut |c, p, _| {
            double(c, p);
            calls += 1;
            if calls == 50 {
                stopper.store(true, Ordering::Relaxed);
            }
        },
        &stop,
        5_000 * MS,
    )
    .unwrap();
    assert_eq!(calls, 50, "no call after the stop");
    let served = jack.join().unwrap();
    let first = served.iter().position(|(r, _)| *r == Served::Done).unwrap();
    for (n, (r, out)) in served.iter().enumerate().skip(first).take(50) {
        assert_eq!((*r, *out), (Served::Done, 2.0 * n as f32), "cycle {n}");
    }
    assert!(
        served[first + 50..]
            .iter()
            .all(|(r, _)| *r == Served::Stopped),
        "after the stop, silence that is not late: {served:?}"
    );
    // The next loan is served again.
    let jack = jack_side(Arc::clone(&l), 20, Duration::from_millis(1));
    let mut ran = false;
    l.lend_once(&mut |_, _, _| ran = true, 5_000 * MS).unwrap();
    assert!(ran);
    jack.join().unwrap();
}

#[test]
fn a_stop_from_another_thread_while_no_cycle_runs_is_seen_within_a_look() {
    let l = Lend::default();
    let stop = Arc::new(AtomicBool::new(false));
    let setter = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            stop.store(true, Ordering::Relaxed);
        })
    };
    let t0 = now_ns();
    l.lend(&mut |_, _, _| panic!("no cycle"), &stop, 10_000 * MS)
        .unwrap();
    let took = (now_ns() - t0) / MS;
    assert!(took < 30 + 5 * LOOK_NS / MS, "{took} ms");
    setter.join().unwrap();
}

#[test]
fn waits_end_on_stall_and_on_close_and_the_body_is_taken_back() {
    let l = Arc::new(Lend::default());
    let mut body = |_: &[f32], _: &mut [f32], _: u64| panic!("never called");
    assert_eq!(l.lend_once(&mut body, MS), Err(WaitError::Stalled));
    let stop = AtomicBool::new(false);
    assert_eq!(l.lend(&mut body, &stop, 30 * MS), Err(WaitError::Stalled));
    // Taken back: a cycle now finds nothing lent.
    assert_eq!(l.serve(&[0.0; 4], &mut [0.0; 4], 0), Served::Idle);
    let closer = {
        let l = Arc::clone(&l);
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            l.close();
        })
    };
    let stop = AtomicBool::new(false);
    assert_eq!(
        l.lend(&mut |_, _, _| {}, &stop, 10_000 * MS),
        Err(WaitError::Closed)
    );
    closer.join().unwrap();
}

#[test]
fn izyrt_does_not_return_while_jack_is_inside_its_closure() {
    let l = Arc::new(Lend::default());
    let (entered_tx, entered) = std::sync::mpsc::channel();
    let jack = {
        let l = Arc::clone(&l);
        std::thread::spawn(move || {
            // Wait for the loan, then call it once.
            loop {
                match l.serve(&[1.0; 4], &mut [0.0; 4], 0) {
                    Served::Done => return,
                    _ => std::thread::sleep(Duration::from_millis(1)),
                }
            }
        })
    };
    let stop = AtomicBool::new(false);
    let mut finished = false;
    // A close arrives while the closure is running: the loan ends only after it returns.
    let closer = {
        let l = Arc::clone(&l);
        std::thread::spawn(move || {
            entered.recv().unwrap();
            l.close();
        })
    };
    let r = l.lend(
        &mut |_, _, _| {
            entered_tx.send(()).unwrap();
            std::thread::sleep(Duration::from_millis(50));
            finished = true;
        },
        &stop,
        10_000 * MS,
    );
    assert_eq!(r, Err(WaitError::Closed));
    assert!(
        finished,
        "returned while JACK's thread was still in the closure"
    );
    jack.join().unwrap();
    closer.join().unwrap();
}

#[test]
fn a_panic_on_jacks_thread_comes_back_on_izyrts() {
    let l = Arc::new(Lend::default());
    let jack = jack_side(Arc::clone(&l), 50, Duration::from_millis(1));
    let r = std::panic::catch_unwind(AssertUnwindSafe(|| {
        l.lend_once(&mut |_, _, _| panic!("step failed"), 5_000 * MS)
    }));
    let payload = r.unwrap_err();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"step failed"));
    let served = jack.join().unwrap();
    assert!(served.iter().all(|(r, _)| *r != Served::Done), "{served:?}");
    // The lender is usable again.
    assert_eq!(l.serve(&[0.0; 4], &mut [0.0; 4], 0), Served::Idle);
}
