//! JACK devices, natively: `jack:[name=CLIENT][,noconnect]` (Linux only).
//!
//! # Design
//!
//! **Why not only the ALSA `jack` PCM.** The ALSA plugin already reaches a JACK server
//! through [`super::alsa`], but it decouples the two sides with a ring buffer: the JACK
//! cycle copies into it and izyrt's thread polls it, so the plugin adds its own buffer
//! (measured: one to two periods of round trip at 32 frames) and izyrt's thread must
//! answer within a period of the plugin's clock or xrun. A native client has none of that:
//! izyrt's period is JACK's cycle itself.
//!
//! **Why JACK's thread runs izyrt's period.** Everything in izyrt — the driver loop, the
//! wakeup histogram, reopen after a server restart, the per-thread allocation proof — is
//! built around an RT thread that owns its device. A JACK device keeps that thread, but
//! lends its period closure to JACK's process thread, which calls it inside the cycle
//! ([`Device::drive`], `lend`): the work happens where JACK's other clients do theirs, and
//! no cycle depends on a second thread being scheduled in time. It replaced a handoff in
//! which JACK's thread posted the period and waited up to three quarters of the cycle for
//! izyrt's thread to answer: on a host that stalls a CPU now and then, the cycles that
//! thread answered late were the largest share of the native path's audible events, and
//! the two wakeups per cycle cost CPU. Since JACK's process thread carries izyrt's audio,
//! it takes the priority of izyrt's RT thread when JACK gave it less (jackd runs its
//! clients five below the server, e.g. 65 under `-P 70`: below izyrt's network threads,
//! which would otherwise delay the cycle). A caller of [`Device::cycle`] (one period at a
//! time, as tests do) lends for one period and waits; a cycle that finds nothing lent
//! while the device runs plays silence and counts an xrun.
//!
//! **The server decides.** Rate and period are the server's: a configuration that differs
//! is refused with the values to use, and a server that changes them later, or shuts
//! down, ends the stream ([`DeviceError::Failed`] or [`DeviceError::Gone`]; the driver
//! reopens a device that is gone). Ports are `in_1…` and `out_1…`, connected to the
//! server's physical ports unless `noconnect` is given. The server is the default one
//! (`JACK_DEFAULT_SERVER` names another); libjack is loaded when a device is opened, so
//! izyrt runs without JACK installed.

mod callback;
mod cancel;
mod lend;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};

use jack::{AsyncClient, AudioIn, AudioOut, Client, ClientOptions, PortFlags, PortSpec};

use self::callback::{NEW_PERIOD, NEW_RATE, Notify, Process, Shared, Stop};
use self::lend::{Lend, WaitError};
use super::{
    Device, DeviceCounters, DeviceError, Direction, DrivenPeriod, JackOptions, Obtained,
    SampleFormat, StreamConfig,
};

/// How long [`Device::cycle`] and [`Device::drive`] wait for a JACK cycle before the
/// server counts as stalled.
const STALL_NS: u64 = 2_000_000_000;

/// A native JACK client driven by one RT thread.
///
/// # Example
/// ```no_run
/// use izyrt::device::{Device, Direction, JackOptions, StreamConfig};
/// use izyrt::device::jack::JackDevice;
///
/// let opts = JackOptions { name: "izyrt".into(), connect: true };
/// let mut dev = JackDevice::open(&opts, Direction::Duplex, StreamConfig::default())?;
/// dev.start()?;
/// for _ in 0..48_000 / 64 {
///     dev.cycle(&mut |input, output| output.copy_from_slice(input))?;
/// }
/// # Ok::<(), izyrt::device::DeviceError>(())
/// ```
pub struct JackDevice {
    opts: JackOptions,
    dir: Direction,
    cfg: StreamConfig,
    obtained: Obtained,
    counters: Arc<DeviceCounters>,
    /// `None` while closed (after the server went away, until a reopen succeeds).
    client: Option<AsyncClient<Notify, Process>>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for JackDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JackDevice")
            .field("obtained", &self.obtained)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl JackDevice {
    /// Connects to the JACK server as client `opts.name`, registers one port per channel
    /// for each direction of `dir`, and activates (main thread: allocates).
    ///
    /// # Errors
    /// [`DeviceError::Open`] when libjack cannot be loaded, no server runs, the server's
    /// rate or period is not `cfg`'s (the message gives the server's), or a port cannot
    /// be registered or connected.
    pub fn open(
        opts: &JackOptions,
        dir: Direction,
        cfg: StreamConfig,
    ) -> Result<JackDevice, DeviceError> {
        let counters = Arc::new(DeviceCounters::default());
        let c = connect(opts, dir, &cfg, &counters)?;
        Ok(JackDevice {
            opts: opts.clone(),
            dir,
            cfg,
            obtained: c.obtained,
            counters,
            client: Some(c.client),
            shared: c.shared,
        })
    }

    /// Allocator calls JACK's process thread made in this device's callback since its
    /// first cycle (0 unless the binary counts, as the `izyrt` binary does).
    pub fn callback_allocations(&self) -> u64 {
        self.shared.allocations.load(Ordering::Relaxed)
    }

    /// Whether JACK's process thread runs with FTZ/DAZ set (set on its first callback; false
    /// before it, and where the architecture has no such mode).
    pub fn denormals_flushed(&self) -> bool {
        self.shared.denormals_flushed.load(Ordering::Relaxed)
    }

    /// The `SCHED_FIFO` priority of JACK's process thread for this client, once it has run
    /// a cycle since [`Device::start`] (0 when it is not realtime or has not run yet).
    pub fn process_priority(&self) -> i32 {
        self.counters.device_thread_priority.load(Ordering::Relaxed)
    }

    /// The JACK client's name (the server may have added a suffix to make it unique).
    pub fn client_name(&self) -> Option<&str> {
        self.client.as_ref().map(|c| c.as_client().name())
    }

    /// Whether izyrt's RT thread is cycling (the callback waits for it only then).
    fn running(&self) -> bool {
        self.shared.running.load(Ordering::Acquire)
    }

    fn set_running(&self, on: bool) {
        self.shared.running.store(on, Ordering::Release);
    }

    /// Whether the server stopped serving this client (or it is not connected).
    fn closed(&self) -> bool {
        self.client.is_none() || self.shared.lend.is_closed()
    }

    /// An error unless izyrt's side is started.
    fn check_running(&mut self) -> Result<(), DeviceError> {
        if self.closed() {
            Err(self.stopped())
        } else if self.running() {
            Ok(())
        } else {
            Err(DeviceError::not_running(&self.obtained.name))
        }
    }

    /// A loan's end as the device's result.
    fn served<T>(&mut self, r: Result<T, WaitError>) -> Result<T, DeviceError> {
        r.map_err(|e| match e {
            WaitError::Closed => self.stopped(),
            WaitError::Stalled => {
                self.set_running(false);
                DeviceError::Failed {
                    name: self.obtained.name.clone(),
                    reason: format!(
                        "the JACK server ran no cycle for {} s",
                        STALL_NS / 1_000_000_000
                    ),
                }
            }
        })
    }

    /// The error for a closed lender: why the server stopped serving us (cold path).
    #[cold]
    fn stopped(&mut self) -> DeviceError {
        self.set_running(false);
        let stop: &Stop = &self.shared.stop;
        let value = stop.value.load(Ordering::Relaxed);
        let name = self.obtained.name.clone();
        match stop.why.load(Ordering::Acquire) {
            NEW_PERIOD => DeviceError::Failed {
                name,
                reason: format!(
                    "the JACK server changed its period from {} to {value} frames",
                    self.obtained.period_frames
                ),
            },
            NEW_RATE => DeviceError::Failed {
                name,
                reason: format!(
                    "the JACK server changed its rate from {} to {value} Hz",
                    self.obtained.rate
                ),
            },
            // SHUT_DOWN: the server exited or dropped the client.
            _ => DeviceError::Gone { name },
        }
    }
}

/// An active client and what it shares with the device.
struct Connected {
    client: AsyncClient<Notify, Process>,
    shared: Arc<Shared>,
    obtained: Obtained,
}

/// Opens, registers, activates and connects a client for `opts` (main thread).
fn connect(
    opts: &JackOptions,
    dir: Direction,
    cfg: &StreamConfig,
    counters: &Arc<DeviceCounters>,
) -> Result<Connected, DeviceError> {
    let spec = opts.to_string();
    let open_err = |reason: String| DeviceError::Open {
        name: spec.clone(),
        reason,
    };
    let (client, _status) = Client::new(&opts.name, ClientOptions::NO_START_SERVER)
        .map_err(|e| open_err(format!("no JACK server to connect to ({e})")))?;
    let (rate, period) = (client.sample_rate(), client.buffer_size());
    if rate != cfg.rate || period != cfg.period_frames {
        return Err(open_err(format!(
            "the JACK server runs at {rate} Hz with {period}-frame periods, not {} Hz with {}: \
             use --rate {rate} --period {period}",
            cfg.rate, cfg.period_frames
        )));
    }
    let ch = usize::from(cfg.channels);
    let (n_in, n_out) = (
        if dir.captures() { ch } else { 0 },
        if dir.plays() { ch } else { 0 },
    );
    let port_err = |e: jack::Error| open_err(format!("cannot register a port: {e}"));
    let inputs = (1..=n_in)
        .map(|i| client.register_port(&format!("in_{i}"), AudioIn::default()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(port_err)?;
    let outputs = (1..=n_out)
        .map(|i| client.register_port(&format!("out_{i}"), AudioOut::default()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(port_err)?;
    let names = |ports: Vec<Result<String, jack::Error>>| {
        ports
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
            .map_err(port_err)
    };
    let in_names = names(inputs.iter().map(|p| p.name()).collect())?;
    let out_names = names(outputs.iter().map(|p| p.name()).collect())?;
    let shared = Arc::new(Shared {
        lend: Lend::default(),
        running: AtomicBool::new(false),
        priority: AtomicI32::new(0),
        cpu: crate::rt::promote::CpuSlot::default(),
        stop: Stop::default(),
        allocations: AtomicU64::new(0),
        denormals_flushed: AtomicBool::new(false),
        counters: Arc::clone(counters),
    });
    let process = Process {
        inputs,
        outputs,
        capture: vec![0.0; period as usize * n_in].into_boxed_slice(),
        playback: vec![0.0; period as usize * n_out].into_boxed_slice(),
        period,
        rate,
        shared: Arc::clone(&shared),
        armed: false,
        raised: (0, None),
    };
    let notify = Notify {
        shared: Arc::clone(&shared),
        rate,
    };
    let active = client
        .activate_async(notify, process)
        .map_err(|e| open_err(format!("cannot activate the client: {e}")))?;
    if opts.connect {
        let c = active.as_client();
        let port_spec = AudioIn::default();
        let audio = port_spec.jack_port_type();
        let sources = c.ports(
            None,
            Some(audio),
            PortFlags::IS_PHYSICAL | PortFlags::IS_OUTPUT,
        );
        let sinks = c.ports(
            None,
            Some(audio),
            PortFlags::IS_PHYSICAL | PortFlags::IS_INPUT,
        );
        for (from, to) in sources.iter().zip(&in_names) {
            c.connect_ports_by_name(from, to)
                .map_err(|e| open_err(format!("cannot connect {from} to {to}: {e}")))?;
        }
        for (from, to) in out_names.iter().zip(&sinks) {
            c.connect_ports_by_name(from, to)
                .map_err(|e| open_err(format!("cannot connect {from} to {to}: {e}")))?;
        }
    }
    let obtained = Obtained {
        name: spec,
        rate,
        capture_channels: n_in as u16,
        playback_channels: n_out as u16,
        period_frames: period,
        // One period each way, inside the server's cycle: no buffer of our own.
        buffer_frames: period,
        format: SampleFormat::F32,
        sound_server: None,
    };
    Ok(Connected {
        client: active,
        shared,
        obtained,
    })
}

impl Device for JackDevice {
    fn obtained(&self) -> &Obtained {
        &self.obtained
    }

    fn counters(&self) -> Arc<DeviceCounters> {
        Arc::clone(&self.counters)
    }

    fn start(&mut self) -> Result<(), DeviceError> {
        if self.closed() {
            return Err(self.stopped());
        }
        // The driver starts the device on izyrt's RT thread: its priority and CPU are the
        // ones the JACK process thread needs.
        let priority = crate::rt::promote::realtime_priority().unwrap_or(0);
        self.shared.priority.store(priority, Ordering::Relaxed);
        self.shared.cpu.set(crate::rt::promote::pinned_cpu());
        self.set_running(true);
        Ok(())
    }

    /// Lends `process` to JACK's next cycle and waits for it to run there. Returns the
    /// lateness JACK's thread ran with in that cycle, ns.
    fn cycle(
        &mut self,
        process: &mut (dyn FnMut(&[f32], &mut [f32]) + Send),
    ) -> Result<Option<u64>, DeviceError> {
        self.check_running()?;
        let r = self
            .shared
            .lend
            .lend_once(&mut |c, p, _| process(c, p), STALL_NS);
        self.served(r).map(Some)
    }

    /// Lends `period` to every JACK cycle until `stop`, sleeping meanwhile.
    fn drive(
        &mut self,
        period: &mut DrivenPeriod<'_>,
        stop: &AtomicBool,
    ) -> Option<Result<(), DeviceError>> {
        Some(
            self.check_running()
                .and_then(|()| self.served(self.shared.lend.lend(period, stop, STALL_NS))),
        )
    }

    fn stop(&mut self) {
        self.set_running(false);
    }

    /// Closes the old client and connects a new one with the same options (main-thread
    /// work: the driver calls it while the device is gone).
    fn reopen(&mut self) -> Result<(), DeviceError> {
        self.set_running(false);
        // The driver retries every 500 ms while the server is away: libjack's own lines
        // ("Server is not running", "Cannot connect to server socket…") would repeat each
        // time, and the returned error already says what is wrong.
        let quiet = jack::jack_sys::library().is_ok();
        if quiet {
            jack::set_logger(jack::LoggerType::None);
        }
        self.client = None;
        let c = connect(&self.opts, self.dir, &self.cfg, &self.counters);
        if quiet {
            jack::set_logger(jack::LoggerType::Stdio);
        }
        let c = c?;
        self.client = Some(c.client);
        self.shared = c.shared;
        self.obtained = c.obtained;
        DeviceCounters::bump(&self.counters.reopens);
        Ok(())
    }
}
