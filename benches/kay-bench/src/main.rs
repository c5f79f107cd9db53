//! `kay-bench`: kay's workloads (see this crate's README), each run with kay and with a
//! plain data-oriented Rust baseline in the same process.
//!
//! `cargo run --release -p kay-bench` runs the full sizes (N = 1,000,000);
//! `--quick` runs small sizes for CI smoke tests; `--json` prints one JSON
//! object per measurement (field names are a stable contract). Every run
//! checks its result and exits non-zero if it is wrong.

mod futures;
mod macro_workloads;
#[cfg(feature = "net")]
mod network;
mod persist;
mod report;
mod workloads;

use clap::Parser;

use report::{Measurement, Report};

/// Runs one workload at a scale with a number of repetitions.
type Workload = fn(workloads::Scale, usize) -> Vec<Measurement>;

/// Command line.
#[derive(Parser, Debug)]
#[command(about = "kay workload suite: kay vs plain Rust, in one process")]
struct Args {
    /// Small sizes (finishes in seconds; for CI smoke runs).
    #[arg(long)]
    quick: bool,
    /// Print one JSON object per line instead of a table.
    #[arg(long)]
    json: bool,
    /// Repetitions per measurement (the median is reported; at least 5).
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// Worker threads for the multi-threaded runs (default: all cores); every
    /// workload runs with 1 thread and, if this is above 1, with this many.
    #[arg(long)]
    threads: Option<usize>,
    /// Number of actors (round trips for W3) instead of the default sizes.
    #[arg(long)]
    actors: Option<usize>,
    /// Run only these workloads (e.g. `--only W1 --only W3`).
    #[arg(long)]
    only: Vec<String>,
    /// Actor sizes in bytes for W1 and W2 (32, 48, 64 or 128; repeat the
    /// flag for several): each size is one more run, reported with
    /// `actor_bytes`, so cliffs at cache-line boundaries show.
    #[arg(long, default_values_t = [32])]
    actor_bytes: Vec<usize>,
    /// Internal: spawn N actors with `kay` or `plain` in this fresh process
    /// and print the resident bytes per actor (W4 runs itself this way).
    #[arg(long, hide = true)]
    w4_rss: Option<String>,
    /// Internal: run as W5's second machine, with these addresses.
    #[arg(long, hide = true)]
    w5_peer: Option<String>,
    /// Internal: run as `reduce`'s second machine (`n;addresses`).
    #[arg(long, hide = true)]
    reduce_peer: Option<String>,
}

fn main() {
    let args = Args::parse();
    let reps = args.reps.max(5);
    let scale = match (args.actors, args.quick) {
        (Some(n), _) => workloads::Scale::Custom(n),
        (None, true) => workloads::Scale::Quick,
        (None, false) => workloads::Scale::Full,
    };
    #[cfg(feature = "net")]
    if let Some(addresses) = &args.w5_peer {
        network::peer(addresses);
        return;
    }
    #[cfg(feature = "net")]
    if let Some(peer) = &args.reduce_peer {
        let threads = args.threads.unwrap_or(1);
        workloads::THREADS.store(threads, std::sync::atomic::Ordering::Relaxed);
        futures::reduce_peer(peer);
        return;
    }
    if let Some(system) = &args.w4_rss {
        let (resident, peak) = workloads::w4_resident_bytes(system, scale);
        println!("{resident} {peak}");
        return;
    }
    let mut report = Report::new(args.json);
    let wanted =
        |w: &str| args.only.is_empty() || args.only.iter().any(|o| o.eq_ignore_ascii_case(w));
    let all: &[(&str, Workload)] = &[
        ("W1", workloads::w1_broadcast),
        ("W2", workloads::w2_point_to_point),
        ("W3", workloads::w3_ping_pong),
        ("W3-idle", workloads::w3_idle),
        ("W3b", workloads::w3b_two_classes),
        ("W3c", workloads::w3c_two_pairs),
        ("W4", workloads::w4_spawn),
        ("W6", persist::w6_snapshot),
        #[cfg(feature = "net")]
        ("W5", network::w5_network),
        ("request", futures::request),
        #[cfg(feature = "net")]
        ("reduce", futures::reduce),
    ];
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let many = args.threads.unwrap_or(cores).max(1);
    let thread_counts: Vec<usize> = if many > 1 { vec![1, many] } else { vec![1] };
    for &(name, run) in all {
        if !wanted(name) {
            continue;
        }
        let sizes: &[usize] = if matches!(name, "W1" | "W2") {
            &args.actor_bytes
        } else {
            &[32]
        };
        for &bytes in sizes {
            workloads::ACTOR_BYTES.store(bytes, std::sync::atomic::Ordering::Relaxed);
            for &threads in &thread_counts {
                workloads::THREADS.store(threads, std::sync::atomic::Ordering::Relaxed);
                let rows = run(scale, reps);
                // The macro-written actors come in the default size only.
                let with_macros = if bytes == 32 {
                    macro_workloads::measure(name, &rows, reps)
                } else {
                    None
                };
                for m in rows.into_iter().chain(with_macros) {
                    // The plain baselines are single-threaded: report them once.
                    if threads == 1 || m.system.starts_with("kay") {
                        report.add(m);
                    }
                }
            }
        }
    }
    report.finish();
}
