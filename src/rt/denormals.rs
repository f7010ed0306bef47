//! Flush-to-zero and denormals-are-zero for RT threads (RT thread, at spawn).
//!
//! Design: a subnormal float takes a microcode assist on x86 (tens to hundreds of cycles
//! per operation), so a decaying filter state or a hostile sample can multiply a period's
//! cost and miss the deadline. Every RT thread sets the CPU's FTZ and DAZ modes once, as
//! its first act ([`super::thread::spawn`]): x86_64 MXCSR bits 15 (FTZ) and 6 (DAZ),
//! aarch64 FPCR bit 24 (FZ). The mode is per thread, so other threads keep IEEE
//! semantics (a thread spawned from an RT thread would inherit it, as POSIX threads inherit
//! the floating-point environment; RT threads spawn none). Elsewhere it is a no-op that says so. Threads izyrt does not spawn (JACK's
//! process thread) set it on their first callback, and [`denormals_flushed`] reads the
//! mode back so that tests can see it.

/// Sets flush-to-zero and denormals-are-zero on the calling thread; returns whether the
/// architecture supports it (x86_64, aarch64).
///
/// # Example
/// ```
/// let on = izyrt::rt::denormals::flush_denormals();
/// let tiny = std::hint::black_box(f32::MIN_POSITIVE);
/// let half = tiny * std::hint::black_box(0.5f32); // subnormal under IEEE rules
/// if on { assert_eq!(half, 0.0); }
/// ```
pub fn flush_denormals() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        const FTZ: u32 = 1 << 15;
        const DAZ: u32 = 1 << 6;
        let mut csr: u32 = 0;
        // SAFETY: stmxcsr/ldmxcsr read and write this thread's SSE control register;
        // setting FTZ and DAZ changes only how subnormals are rounded.
        unsafe {
            std::arch::asm!("stmxcsr [{}]", in(reg) &mut csr, options(nostack));
            csr |= FTZ | DAZ;
            std::arch::asm!("ldmxcsr [{}]", in(reg) &csr, options(nostack, readonly));
        }
        true
    }
    #[cfg(target_arch = "aarch64")]
    {
        const FZ: u64 = 1 << 24;
        let mut fpcr: u64;
        // SAFETY: reads and writes this thread's floating-point control register; FZ
        // changes only how subnormals are handled.
        unsafe {
            std::arch::asm!("mrs {}, fpcr", out(reg) fpcr, options(nomem, nostack));
            fpcr |= FZ;
            std::arch::asm!("msr fpcr, {}", in(reg) fpcr, options(nomem, nostack));
        }
        true
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

/// Whether flush-to-zero (and, on x86_64, denormals-are-zero) is set on the calling thread:
/// what [`flush_denormals`] sets (false where it is not supported).
///
/// # Example
/// ```
/// use izyrt::rt::denormals::{denormals_flushed, flush_denormals};
/// std::thread::spawn(|| {
///     // A new thread starts with IEEE semantics.
///     assert!(!denormals_flushed());
///     assert_eq!(flush_denormals(), denormals_flushed());
/// }).join().unwrap();
/// ```
pub fn denormals_flushed() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        const BOTH: u32 = (1 << 15) | (1 << 6);
        let mut csr: u32 = 0;
        // SAFETY: stmxcsr stores this thread's SSE control register into a local.
        unsafe { std::arch::asm!("stmxcsr [{}]", in(reg) &mut csr, options(nostack)) };
        csr & BOTH == BOTH
    }
    #[cfg(target_arch = "aarch64")]
    {
        let fpcr: u64;
        // SAFETY: reads this thread's floating-point control register.
        unsafe { std::arch::asm!("mrs {}, fpcr", out(reg) fpcr, options(nomem, nostack)) };
        fpcr & (1 << 24) != 0
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mode_is_set_per_thread_and_read_back() {
        let on = std::thread::spawn(|| {
            assert!(!denormals_flushed(), "a new thread starts with IEEE rules");
            let on = flush_denormals();
            assert_eq!(denormals_flushed(), on);
            on
        })
        .join()
        .unwrap();
        assert!(on || cfg!(not(any(target_arch = "x86_64", target_arch = "aarch64"))));
        assert!(!denormals_flushed(), "the spawning thread keeps IEEE rules");
    }
}
