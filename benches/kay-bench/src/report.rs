//! Measurements, medians and output (table or JSON lines).

use std::time::{Duration, Instant};

/// One reported number: a workload run by one system.
#[derive(Clone, Debug)]
pub struct Measurement {
    /// "W1".."W6".
    pub workload: &'static str,
    /// What the workload does, for the table.
    pub what: &'static str,
    /// "kay" or "plain".
    pub system: &'static str,
    /// Worker threads.
    pub threads: usize,
    /// Problem size (actors, or round trips for W3).
    pub n: usize,
    /// Median wall time of one repetition.
    pub median_s: f64,
    /// Items per repetition (actor updates, messages, round trips, spawns).
    pub items: usize,
    /// The plain baseline's median, if this is kay's measurement.
    pub plain_s: Option<f64>,
    /// Resident bytes per actor after spawning (W4).
    pub bytes_per_actor: Option<f64>,
    /// Peak resident bytes per actor while spawning (W4).
    pub peak_bytes_per_actor: Option<f64>,
    /// The actor's size in bytes (W1, W2; `--actor-bytes`).
    pub actor_bytes: Option<usize>,
    /// Messages per second end to end (W5).
    pub msgs_per_s: Option<f64>,
    /// Bytes on the wire per message, all framing included (W5).
    pub wire_bytes_per_msg: Option<f64>,
    /// The median round trip of a request between the machines at low load,
    /// in microseconds (W5).
    pub request_rtt_us: Option<f64>,
    /// The time against a broadcast to the same number of instances on one
    /// machine, in the same run (`reduce`).
    pub ratio_to_broadcast: Option<f64>,
    /// Snapshot and load figures (W6).
    pub persistence: Option<Persistence>,
}

/// What W6 measures besides the median: throughputs of snapshot, load and
/// `cp` of the same bytes, the pause, and load against spawning.
#[derive(Clone, Copy, Debug)]
pub struct Persistence {
    /// Bytes of instance state per second written by `snapshot()`, in GB/s.
    pub snapshot_gb_per_s: f64,
    /// Bytes of instance state per second loaded by `load()`, in GB/s.
    pub load_gb_per_s: f64,
    /// Copying the snapshot's files on the same disk (copy and sync, the
    /// durability a snapshot gives), in GB/s.
    pub cp_gb_per_s: f64,
    /// How long `snapshot()` paused the system, in ms (median).
    pub pause_ms: f64,
    /// `load()` time over the time of spawning the same actors.
    pub load_vs_spawn: f64,
    /// As `load_gb_per_s`, with `Config::map_snapshots_on_load` (the
    /// default).
    pub load_mapped_gb_per_s: f64,
    /// As `load_vs_spawn`, with `Config::map_snapshots_on_load` (the
    /// default).
    pub load_mapped_vs_spawn: f64,
    /// As `load_gb_per_s`, the snapshot read instead of mapped.
    pub load_read_gb_per_s: f64,
    /// As `load_vs_spawn`, the snapshot read instead of mapped.
    pub load_read_vs_spawn: f64,
    /// A turn that writes every actor, right after a load, in ms.
    pub first_turn_ms: f64,
    /// The same after a mapped load (the default: it copies the mapped
    /// stores first).
    pub first_turn_mapped_ms: f64,
    /// The same after a read load.
    pub first_turn_read_ms: f64,
    /// The same turn once the state is settled, in ms.
    pub turn_ms: f64,
}

impl Measurement {
    /// A measurement with no optional field set (fill in the rest).
    pub fn empty() -> Measurement {
        Measurement {
            workload: "",
            what: "",
            system: "kay",
            threads: 1,
            n: 0,
            median_s: 0.0,
            items: 1,
            plain_s: None,
            bytes_per_actor: None,
            peak_bytes_per_actor: None,
            actor_bytes: None,
            msgs_per_s: None,
            wire_bytes_per_msg: None,
            request_rtt_us: None,
            ratio_to_broadcast: None,
            persistence: None,
        }
    }

    fn per_item_ns(&self) -> f64 {
        self.median_s * 1e9 / self.items as f64
    }

    fn ratio(&self) -> Option<f64> {
        self.plain_s.map(|p| self.median_s / p)
    }
}

/// Runs `f` `reps` times (after one warm-up) and returns the median duration.
/// `f` returns the time it measured itself (so setup can be excluded).
pub fn median(reps: usize, mut f: impl FnMut() -> Duration) -> f64 {
    f();
    let mut times: Vec<f64> = (0..reps).map(|_| f().as_secs_f64()).collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// Times a closure.
pub fn timed(f: impl FnOnce()) -> Duration {
    let start = Instant::now();
    f();
    start.elapsed()
}

/// Collects measurements and prints them.
pub struct Report {
    json: bool,
    rows: Vec<Measurement>,
}

impl Report {
    /// A report printing JSON lines (`json`) or a table at the end.
    pub fn new(json: bool) -> Self {
        Report {
            json,
            rows: Vec::new(),
        }
    }

    /// Adds (and in JSON mode prints) a measurement.
    pub fn add(&mut self, m: Measurement) {
        if self.json {
            let line = serde_json::json!({
                "workload": m.workload,
                "system": m.system,
                "threads": m.threads,
                "n": m.n,
                "median_s": m.median_s,
                "per_item_ns": m.per_item_ns(),
                "ratio_to_plain": m.ratio(),
                "bytes_per_actor": m.bytes_per_actor,
                "peak_bytes_per_actor": m.peak_bytes_per_actor,
                "actor_bytes": m.actor_bytes,
                "msgs_per_s": m.msgs_per_s,
                "wire_bytes_per_msg": m.wire_bytes_per_msg,
                "request_rtt_us": m.request_rtt_us,
                "ratio_to_broadcast": m.ratio_to_broadcast,
                "snapshot_gb_per_s": m.persistence.map(|p| p.snapshot_gb_per_s),
                "load_gb_per_s": m.persistence.map(|p| p.load_gb_per_s),
                "cp_gb_per_s": m.persistence.map(|p| p.cp_gb_per_s),
                "pause_ms": m.persistence.map(|p| p.pause_ms),
                "load_vs_spawn": m.persistence.map(|p| p.load_vs_spawn),
                "load_mapped_gb_per_s": m.persistence.map(|p| p.load_mapped_gb_per_s),
                "load_mapped_vs_spawn": m.persistence.map(|p| p.load_mapped_vs_spawn),
                "first_turn_ms": m.persistence.map(|p| p.first_turn_ms),
                "first_turn_mapped_ms": m.persistence.map(|p| p.first_turn_mapped_ms),
                "load_read_gb_per_s": m.persistence.map(|p| p.load_read_gb_per_s),
                "load_read_vs_spawn": m.persistence.map(|p| p.load_read_vs_spawn),
                "first_turn_read_ms": m.persistence.map(|p| p.first_turn_read_ms),
                "turn_ms": m.persistence.map(|p| p.turn_ms),
            });
            println!("{line}");
        }
        self.rows.push(m);
    }

    /// Prints the table (unless in JSON mode).
    pub fn finish(&self) {
        if self.json {
            return;
        }
        println!(
            "{:<4} {:<34} {:<9} {:>3} {:>10} {:>12} {:>11} {:>12} {:>10} {:>9}",
            "",
            "workload",
            "system",
            "thr",
            "n",
            "median",
            "ns/item",
            "vs plain",
            "B/actor (peak)",
            "speed-up"
        );
        for m in &self.rows {
            let one_thread = self.rows.iter().find(|o| {
                o.workload == m.workload
                    && o.system == m.system
                    && o.actor_bytes == m.actor_bytes
                    && o.threads == 1
                    && m.threads > 1
            });
            let what = match (m.actor_bytes, m.msgs_per_s) {
                (Some(bytes), _) if bytes != 32 => format!("{} [{bytes} B actors]", m.what),
                _ if m.persistence.is_some() => {
                    let p = m.persistence.unwrap_or_else(|| unreachable!());
                    format!(
                        "{} [snapshot {:.2} GB/s, cp {:.2} GB/s, pause {:.1} ms; load (mapped) {:.2} GB/s, load/spawn {:.3}, first turn {:.1} ms; read: load {:.2} GB/s, load/spawn {:.3}, first turn {:.1} ms; settled turn {:.1} ms]",
                        m.what,
                        p.snapshot_gb_per_s,
                        p.cp_gb_per_s,
                        p.pause_ms,
                        p.load_gb_per_s,
                        p.load_vs_spawn,
                        p.first_turn_ms,
                        p.load_read_gb_per_s,
                        p.load_read_vs_spawn,
                        p.first_turn_read_ms,
                        p.turn_ms
                    )
                }
                _ if m.ratio_to_broadcast.is_some() => format!(
                    "{} [{:.2}× a broadcast]",
                    m.what,
                    m.ratio_to_broadcast.unwrap_or(0.0)
                ),
                (_, Some(rate)) => format!(
                    "{} [{:.1}M msgs/s, {:.2} B/msg, rtt {:.0} µs]",
                    m.what,
                    rate / 1e6,
                    m.wire_bytes_per_msg.unwrap_or(0.0),
                    m.request_rtt_us.unwrap_or(0.0)
                ),
                _ => m.what.to_string(),
            };
            let speedup = one_thread.map_or(String::new(), |o| {
                format!("{:.2}×", o.median_s / m.median_s)
            });
            println!(
                "{:<4} {:<34} {:<9} {:>3} {:>10} {:>10.3}ms {:>11.2} {:>12} {:>10} {:>9}",
                m.workload,
                what,
                m.system,
                m.threads,
                m.n,
                m.median_s * 1e3,
                m.per_item_ns(),
                m.ratio().map_or(String::new(), |r| format!("{r:.2}×")),
                match (m.bytes_per_actor, m.peak_bytes_per_actor) {
                    (Some(b), Some(p)) => format!("{b:.1}/{p:.1}"),
                    (Some(b), None) => format!("{b:.1}"),
                    _ => String::new(),
                },
                speedup,
            );
        }
    }
}
