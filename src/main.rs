//! The `izyrt` binary: parses the command line and hands over to `izyrt::cli`.
//!
//! The counting allocator costs one thread-local check per allocation; with it, every RT
//! thread reports in getMetrics how many times it allocated in steady state (`0`, or a
//! bug).

#[global_allocator]
static ALLOC: izyrt::rt::alloc_count::CountingAllocator = izyrt::rt::alloc_count::CountingAllocator;

fn main() {
    std::process::exit(izyrt::cli::main());
}
