//! The cost of the inbox: `cargo run --release --example inbox_bench`.
//! Prints nanoseconds per record (one push plus its share of a drain).

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use kay::inbox_internals::Inbox;

const CHUNK: usize = 64 * 1024;

/// Best of 5 runs of `run`, which returns the time it wants counted.
fn best_of_5(mut run: impl FnMut() -> Duration) -> Duration {
    (0..5).map(|_| run()).min().unwrap()
}

fn ns_per(time: Duration, records: u64) -> f64 {
    time.as_nanos() as f64 / records as f64
}

fn push(inbox: &Inbox, i: u64, size: usize) {
    inbox.push_with(size, |bytes| bytes[..8].copy_from_slice(&i.to_le_bytes()));
}

/// Drains, summing each record's first word; returns (records, sum).
fn drain(inbox: &Inbox) -> (usize, u64) {
    let mut sum = 0_u64;
    // SAFETY: the only reader; no reclaim runs meanwhile.
    let n = unsafe {
        inbox.drain(|bytes| {
            sum = sum.wrapping_add(u64::from_le_bytes(bytes[..8].try_into().unwrap()))
        })
    };
    (n, sum)
}

/// Message cycles of `batch` pushes, one drain and one reclaim, as kay's
/// ping-pong (`batch` = 1) and bulk workloads do.
fn cycles(batch: u64, size: usize) {
    const RECORDS: u64 = 20_000_000;
    let inbox = Inbox::new(CHUNK);
    let time = best_of_5(|| {
        let started = Instant::now();
        for _ in 0..RECORDS / batch {
            for i in 0..batch {
                push(&inbox, i, size);
            }
            black_box(drain(&inbox));
            // SAFETY: single-threaded: nothing else runs.
            unsafe { inbox.reclaim() };
        }
        started.elapsed()
    });
    println!(
        "push + drain + reclaim, {size:>2}-byte records, {batch:>5} per cycle: {:5.2} ns/record",
        ns_per(time, RECORDS)
    );
}

/// The push and drain phases of 10k-record cycles, timed apart.
fn phases() {
    const BATCH: u64 = 10_000;
    let inbox = Inbox::new(CHUNK);
    let (mut pushing, mut draining) = (Duration::MAX, Duration::MAX);
    for _ in 0..5 {
        let (mut p, mut d) = (Duration::ZERO, Duration::ZERO);
        for _ in 0..1000 {
            let started = Instant::now();
            for i in 0..BATCH {
                push(&inbox, i, 16);
            }
            let pushed = Instant::now();
            black_box(drain(&inbox));
            p += pushed - started;
            d += pushed.elapsed();
            // SAFETY: single-threaded: nothing else runs.
            unsafe { inbox.reclaim() };
        }
        pushing = pushing.min(p);
        draining = draining.min(d);
    }
    let records = 1000 * BATCH;
    println!(
        "  of which push: {:5.2} ns/record, drain: {:5.2} ns/record (16 bytes, 10k per cycle)",
        ns_per(pushing, records),
        ns_per(draining, records)
    );
}

/// One writer thread while the reader drains in a loop (the machine may
/// have only two cores), in rounds of 100k records with a reclaim between
/// rounds, as between message cycles.
fn two_threads() {
    const ROUNDS: u64 = 200;
    const PER_ROUND: u64 = 100_000;
    let inbox = Inbox::new(CHUNK);
    let (mut received, mut drains) = (0, 0);
    let started = Instant::now();
    for _ in 0..ROUNDS {
        let done = AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                for i in 0..PER_ROUND {
                    push(&inbox, i, 16);
                }
                done.store(true, Ordering::Release);
            });
            loop {
                let finished = done.load(Ordering::Acquire);
                received += drain(&inbox).0 as u64;
                drains += 1;
                if finished {
                    break;
                }
            }
        });
        // SAFETY: the writer is joined: nothing else runs.
        unsafe { inbox.reclaim() };
    }
    assert_eq!(received, ROUNDS * PER_ROUND);
    println!(
        "1 writer thread + 1 reader draining in a loop, 16-byte records: {:5.2} ns/record \
         ({:.1} records per drain)",
        ns_per(started.elapsed(), ROUNDS * PER_ROUND),
        received as f64 / drains as f64
    );
}

fn main() {
    for (batch, size) in [(1, 16), (1, 64), (100, 16), (10_000, 16), (10_000, 64)] {
        cycles(batch, size);
    }
    phases();
    two_threads();
}
