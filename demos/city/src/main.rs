//! `city`: kay's flagship demo. Builds a grid city, fills it with cars and
//! buses, runs it for a number of turns with a live progress line, and
//! prints a summary (or, with `--json`, one JSON object).

mod machines;
mod plots;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use city::{City, CityConfig, Totals};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};

/// Command line.
#[derive(Parser, Debug)]
#[command(about = "kay's flagship demo: a city of a million cars, all actors")]
struct Args {
    /// Cars (buses come on top).
    #[arg(long, default_value_t = 1_000_000)]
    agents: usize,
    /// Turns to run (half a simulated second each); 0 runs until Ctrl-C.
    #[arg(long, default_value_t = 300)]
    turns: u64,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Seed of every random choice: the same seed gives the same city and
    /// the same checksum on any thread count.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Intersections, as WIDTHxHEIGHT.
    #[arg(long, default_value = "150x150", value_parser = parse_size)]
    size: (u32, u32),
    /// Print one JSON object at the end instead of the table.
    #[arg(long)]
    json: bool,
    /// Where to write the pictures (`run.png`, `map.png`).
    #[arg(long, default_value = "target/city")]
    out: PathBuf,
    /// Split the city over this many processes on 127.0.0.1 (machines of
    /// one topology in lockstep, each owning a band of columns; a vehicle
    /// that crosses into another band moves to that machine).
    #[arg(long, default_value_t = 1)]
    machines: usize,
    /// With `--machines`: record every machine's state checksum every N
    /// turns (0: never), to compare runs.
    #[arg(long, default_value_t = 0)]
    checksum_every: u64,
    /// With `--machines`: run the topology this many times and report the
    /// first turn and machine where the runs' checksums diverge.
    #[arg(long, default_value_t = 1)]
    runs: usize,
    /// Keep the system's instance stores in mmap'ed files under DIR and
    /// write snapshots there (at the end, and every `--snapshot-every`
    /// turns); `--resume` continues from the newest.
    #[arg(long, value_name = "DIR")]
    snapshot_dir: Option<std::path::PathBuf>,
    /// With `--snapshot-dir`: also snapshot every N turns (0: only at the
    /// end).
    #[arg(long, default_value_t = 0, requires = "snapshot_dir")]
    snapshot_every: u64,
    /// With `--snapshot-dir`: resume the newest snapshot there instead of
    /// building the city (give the `--agents`, `--size` and `--seed` it was
    /// written with); `--turns` is then the turn to run to. The result is
    /// the same as the uninterrupted run's, checksum included.
    #[arg(long, requires = "snapshot_dir")]
    resume: bool,
    /// Internal: run as machine `I` of `--addresses`.
    #[arg(long, hide = true)]
    machine: Option<u8>,
    /// Internal: the topology's addresses.
    #[arg(long, hide = true, value_delimiter = ',')]
    addresses: Vec<std::net::SocketAddr>,
}

fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let (w, h) = s
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("expected WIDTHxHEIGHT, e.g. 100x100, not {s:?}"))?;
    let parse = |v: &str| {
        v.trim()
            .parse::<u32>()
            .map_err(|e| format!("{v:?} in {s:?}: {e}"))
    };
    let (w, h) = (parse(w)?, parse(h)?);
    if !(2..=4096).contains(&w) || !(2..=4096).contains(&h) {
        return Err(format!("each side must be between 2 and 4096, not {s:?}"));
    }
    Ok((w, h))
}

/// The process's peak resident memory in bytes (`VmHWM`).
fn peak_rss() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<usize>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn main() {
    let args = Args::parse();
    if args.machines > 1 && args.machine.is_none() {
        return machines::launch(&args);
    }
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let config = CityConfig {
        cars: args.agents,
        width: args.size.0,
        height: args.size.1,
        threads,
        seed: args.seed,
        machines: args.addresses.clone(),
        machine: args.machine.unwrap_or(0),
        ..CityConfig::default()
    };
    let networked = args.machine.is_some();
    let mut checksums = kay::net::ChecksumLog::default();
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = Arc::clone(&stop);
        // Ctrl-C ends the run after the current turn, with the summary.
        if let Err(e) = ctrlc::set_handler(move || stop.store(true, Ordering::Relaxed)) {
            eprintln!("city: Ctrl-C will not stop cleanly ({e})");
        }
    }

    let build_start = Instant::now();
    let mut city = match (&args.snapshot_dir, args.resume) {
        (Some(dir), true) => City::resume(config, dir).unwrap_or_else(|e| {
            eprintln!("city: cannot resume from {}: {e}", dir.display());
            std::process::exit(1);
        }),
        (Some(dir), false) => City::with_storage(config, dir).unwrap_or_else(|e| {
            eprintln!("city: cannot use {}: {e}", dir.display());
            std::process::exit(1);
        }),
        (None, _) => City::new(config),
    };
    let build_time = build_start.elapsed();
    let first_turn = city.turn;
    let mut snapshots = Snapshots::default();
    let rss_built = peak_rss();

    let bar = if args.json || networked {
        ProgressBar::hidden()
    } else {
        let bar = if args.turns == 0 {
            ProgressBar::new_spinner()
        } else {
            ProgressBar::new(args.turns)
        };
        bar.set_style(
            ProgressStyle::with_template("{spinner} turn {pos}{len_part} {msg}")
                .expect("a valid template")
                .with_key(
                    "len_part",
                    |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                        if let Some(len) = state.len() {
                            let _ = write!(w, "/{len}");
                        }
                    },
                ),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    };

    let start = Instant::now();
    let mut messages = 0usize;
    let mut last = Totals::default();
    let mut all = Totals::default();
    let mut seconds: Vec<Totals> = Vec::new();
    let mut window = (Instant::now(), 0u64, 0usize);
    let mut timeline = plots::Timeline { points: Vec::new() };
    let mut second_start = (Instant::now(), 0u64);
    while args.turns == 0 || city.turn < args.turns {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let figures = city.step();
        messages += figures.messages;
        if args.snapshot_every > 0 && city.turn.is_multiple_of(args.snapshot_every) {
            snapshots.take(&mut city, true);
        }
        if args.checksum_every > 0 && city.turn.is_multiple_of(args.checksum_every) {
            checksums.record(
                city.turn,
                kay::MachineID(config_machine(&args)),
                city.checksum(),
            );
        }
        if let Some(second) = figures.second {
            let turns = city.turn - second_start.1;
            let wall = second_start.0.elapsed().as_secs_f64();
            timeline.points.push((
                city.turn as f64 * f64::from(city::SECONDS_PER_TURN),
                turns as f64 / wall.max(1e-9),
                second.avg_speed_kmh(),
                second.waiting_share(),
            ));
            second_start = (Instant::now(), city.turn);
            last = second;
            all = all + second;
            seconds.push(second);
        }
        bar.set_position(city.turn);
        let elapsed = window.0.elapsed();
        if elapsed >= Duration::from_millis(500) {
            let turns = city.turn - window.1;
            let msgs = messages - window.2;
            bar.set_message(format!(
                "| {:.1} turns/s | {:.1}M msgs/s | {} agents | {:.1} km/h | {:.0} waiting ({:.1}%)",
                turns as f64 / elapsed.as_secs_f64(),
                msgs as f64 / elapsed.as_secs_f64() / 1e6,
                args.agents + city.buses,
                last.avg_speed_kmh(),
                last.standing as f64 / city::REPORT_TURNS as f64,
                100.0 * last.waiting_share(),
            ));
            window = (Instant::now(), city.turn, messages);
        }
    }
    let run_time = start.elapsed();
    bar.finish_and_clear();
    if args.snapshot_dir.is_some() && snapshots.last != Some(city.turn) {
        snapshots.take(&mut city, false);
    }
    snapshots.finish(&mut city);
    // The figures of the last seconds, still on their way.
    for second in city.finish() {
        all = all + second;
        seconds.push(second);
    }
    let figures = Figures::of(&seconds);

    let turns = city.turn;
    let turns_per_s = (turns - first_turn) as f64 / run_time.as_secs_f64();
    let msgs_per_s = messages as f64 / run_time.as_secs_f64();
    let peak = peak_rss();
    let agents = args.agents + city.buses;
    let bytes_per_agent = rss_built as f64 / agents.max(1) as f64;
    let checksum = city.checksum();
    let trips = city.car_trips();
    if networked {
        // One machine of several: its checksums and figures, for the
        // launcher (see `machines.rs`).
        print!("{checksums}");
        let net = city.system.net_stats().expect("networked");
        let (sent, received) = net
            .peers
            .iter()
            .fold((0, 0), |(s, r), p| (s + p.sent, r + p.received));
        println!(
            "{}",
            serde_json::json!({
                "machine": config_machine(&args),
                "cars": city.system.instance_count::<city::Car>(),
                "cars_started": city.cars,
                "buses": city.buses,
                "turns": turns,
                "turns_per_s": turns_per_s,
                "msgs_per_s": msgs_per_s,
                "peak_rss_mb": peak as f64 / 1e6,
                "trips": trips,
                "checksum": format!("{checksum:016x}"),
                "figures": figures.json(),
                "net_sent": sent,
                "net_received": received,
                "resumed_from": first_turn,
                "snapshots": snapshots.count,
                "snapshot_pause_ms": snapshots.max_pause_ms,
            })
        );
        return;
    }
    let pictures = draw(&args, &city, &timeline, threads);
    if args.json {
        println!(
            "{{\"agents\":{agents},\"cars\":{},\"buses\":{},\"lanes\":{},\"intersections\":{},\
             \"threads\":{threads},\"turns\":{turns},\"turns_per_s\":{turns_per_s:.3},\
             \"msgs_per_s\":{msgs_per_s:.0},\"peak_rss_mb\":{:.1},\"bytes_per_agent\":{bytes_per_agent:.1},\
             \"avg_speed\":{:.3},\"waiting_share\":{:.4},\"trips\":{trips},\"build_s\":{:.3},\
             \"seed\":{},\"checksum\":\"{checksum:016x}\",\"figures\":{},\
             \"resumed_from\":{first_turn},\"snapshots\":{},\"snapshot_pause_ms\":{:.2}}}",
            args.agents,
            city.buses,
            city.lanes,
            city.intersections,
            peak as f64 / 1e6,
            all.avg_speed_kmh(),
            all.waiting_share(),
            build_time.as_secs_f64(),
            args.seed,
            figures.json(),
            snapshots.count,
            snapshots.max_pause_ms,
        );
    } else {
        let rows = [
            (
                "agents",
                format!("{agents} ({} cars, {} buses)", args.agents, city.buses),
            ),
            (
                "city",
                format!(
                    "{}x{} intersections, {} lanes",
                    args.size.0, args.size.1, city.lanes
                ),
            ),
            ("threads", threads.to_string()),
            (
                "turns",
                format!(
                    "{turns} ({:.0} simulated s)",
                    turns as f64 * f64::from(city::SECONDS_PER_TURN)
                ),
            ),
            ("turns/s", format!("{turns_per_s:.1}")),
            ("messages/s", format!("{:.2}M", msgs_per_s / 1e6)),
            ("build", format!("{:.2} s", build_time.as_secs_f64())),
            ("peak RSS", format!("{:.1} MB", peak as f64 / 1e6)),
            (
                "bytes per agent",
                format!("{bytes_per_agent:.1} (RSS after building / agents)"),
            ),
            ("average speed", format!("{:.1} km/h", all.avg_speed_kmh())),
            (
                "waiting",
                format!("{:.1}% of vehicle-turns", 100.0 * all.waiting_share()),
            ),
            ("trips completed", trips.to_string()),
            ("figures", figures.text()),
            ("checksum", format!("{checksum:016x} (seed {})", args.seed)),
            ("snapshots", snapshots.text(first_turn)),
            ("pictures", pictures),
        ];
        for (name, value) in rows {
            println!("{name:>16}  {value}");
        }
    }
}

/// The city's figures over the run, from the lanes' map-reduce each
/// simulated second: the same on any number of machines.
struct Figures {
    seconds: usize,
    all: Totals,
    /// FNV-1a over every second's figures, in order.
    digest: u64,
}

impl Figures {
    fn of(seconds: &[Totals]) -> Figures {
        let mut digest = 0xcbf2_9ce4_8422_2325u64;
        let mut all = Totals::default();
        for second in seconds {
            all = all + *second;
            for v in [
                second.vehicles,
                second.vehicle_turns,
                second.standing,
                second.driven_mm,
                second.trips,
                second.reports,
            ] {
                digest = (digest ^ v).wrapping_mul(0x0100_0000_01b3);
            }
        }
        Figures {
            seconds: seconds.len(),
            all,
            digest,
        }
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "seconds": self.seconds,
            "vehicle_turns": self.all.vehicle_turns,
            "standing": self.all.standing,
            "driven_mm": self.all.driven_mm,
            "trips": self.all.trips,
            "digest": format!("{:016x}", self.digest),
        })
    }

    fn text(&self) -> String {
        format!(
            "{} s: {:.1} km driven, {} trips at lane ends, digest {:016x}",
            self.seconds,
            self.all.driven_mm as f64 / 1e6,
            self.all.trips,
            self.digest
        )
    }
}

/// This process's machine (0 alone).
fn config_machine(args: &Args) -> u8 {
    args.machine.unwrap_or(0)
}

/// Draws `run.png` and `map.png` into `--out`; says where, or why not.
fn draw(args: &Args, city: &City, timeline: &plots::Timeline, threads: usize) -> String {
    let result = (|| -> Result<(), Box<dyn std::error::Error>> {
        std::fs::create_dir_all(&args.out)?;
        plots::init()?;
        let name = format!(
            "{} cars, {}x{} blocks, {threads} thread{}",
            args.agents,
            args.size.0,
            args.size.1,
            if threads == 1 { "" } else { "s" }
        );
        plots::timeline(
            &args.out.join("run.png"),
            timeline,
            &format!("city: {name}"),
        )?;
        plots::map(
            &args.out.join("map.png"),
            args.size,
            &city.lane_loads(),
            &format!(
                "traffic after {:.0} simulated seconds ({name})",
                city.turn as f64 * f64::from(city::SECONDS_PER_TURN)
            ),
        )?;
        Ok(())
    })();
    match result {
        Ok(()) => format!("{0}/run.png, {0}/map.png", args.out.display()),
        Err(e) => format!("not drawn: {e}"),
    }
}

/// The snapshots written in this run (`--snapshot-dir`).
#[derive(Default)]
struct Snapshots {
    count: usize,
    last: Option<u64>,
    max_pause_ms: f64,
    bytes: u64,
}

impl Snapshots {
    /// Writes one (in the background while the city runs on, or now); a
    /// failure is reported and the run goes on.
    fn take(&mut self, city: &mut City, background: bool) {
        let taken = if background {
            city.system.snapshot_in_background()
        } else {
            city.snapshot()
        };
        match taken {
            Ok(report) => {
                self.count += 1;
                self.last = Some(city.turn);
                self.bytes = report.state_bytes;
                self.max_pause_ms = self.max_pause_ms.max(report.pause.as_secs_f64() * 1e3);
            }
            Err(e) => eprintln!("city: snapshot at turn {} failed: {e}", city.turn),
        }
    }

    /// Waits for a snapshot still being written.
    fn finish(&mut self, city: &mut City) {
        if let Some(Err(e)) = city.system.wait_for_snapshot() {
            eprintln!("city: a snapshot failed: {e}");
            self.count -= 1;
        }
    }

    fn text(&self, first_turn: u64) -> String {
        let resumed = if first_turn > 0 {
            format!("resumed at turn {first_turn}; ")
        } else {
            String::new()
        };
        match self.last {
            None => format!("{resumed}none (--snapshot-dir)"),
            Some(last) => format!(
                "{resumed}{} written, the last at turn {last} ({:.1} MB of state, longest pause {:.1} ms)",
                self.count,
                self.bytes as f64 / 1e6,
                self.max_pause_ms
            ),
        }
    }
}
