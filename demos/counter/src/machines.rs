//! The counter example on several machines: `counter --machines 3` starts
//! this program as 3 processes on 127.0.0.1 (machines 0, 1 and 2 of one
//! topology, in lockstep). Machine 0 spawns the counter and a logger on
//! every machine (`LoggerID::spawn_on`); each logger subscribes to the
//! counter across the network, and the counter's changes reach every
//! machine's logger. Machine 1 then broadcasts to every `CounterListener`
//! on every machine. With `--checksum-every N` each machine prints a
//! checksum of its state every N turns; `--runs 2` runs the topology twice
//! and reports the first turn and machine where the runs diverge (none in
//! lockstep).

use std::net::SocketAddr;
use std::process::Command;

use counter::{CounterID, CounterListenerID, LoggerID};
use kay::net::{ChecksumLog, NetConfig};
use kay::{Config, MachineID};

/// Turns every machine runs.
const TURNS: u64 = 12;

/// Starts `machines` processes and prints their outputs; `runs` times,
/// comparing the checksums of the runs.
pub fn launch(machines: usize, checksum_every: u64, runs: usize) {
    let mut logs: Vec<ChecksumLog> = Vec::new();
    for run in 1..=runs {
        let addresses: Vec<String> = kay::net::loopback_addresses(machines)
            .iter()
            .map(ToString::to_string)
            .collect();
        let children: Vec<_> = (0..machines)
            .map(|m| {
                Command::new(std::env::current_exe().expect("this program"))
                    .args(["--machine", &m.to_string(), "--addresses"])
                    .arg(addresses.join(","))
                    .args(["--checksum-every", &checksum_every.to_string()])
                    .stdout(std::process::Stdio::piped())
                    .spawn()
                    .expect("a machine")
            })
            .collect();
        let mut log = ChecksumLog::default();
        for (m, child) in children.into_iter().enumerate() {
            let output = child.wait_with_output().expect("its output");
            let text = String::from_utf8_lossy(&output.stdout);
            log.extend(&ChecksumLog::parse(&text));
            for line in text.lines().filter(|l| !l.starts_with("checksum ")) {
                println!("[run {run}, machine {m}] {line}");
            }
            assert!(output.status.success(), "machine {m} failed");
        }
        if checksum_every > 0 {
            println!("[run {run}] {} checksums", log.records().len());
        }
        logs.push(log);
    }
    match kay::net::compare_runs(&logs) {
        Ok(lines) => lines.iter().for_each(|line| println!("{line}")),
        Err(lines) => {
            lines.iter().for_each(|line| println!("{line}"));
            std::process::exit(1);
        }
    }
}

/// Runs machine `machine` of `addresses`.
pub fn run(machine: u8, addresses: &str, checksum_every: u64) {
    let addresses: Vec<SocketAddr> = addresses
        .split(',')
        .map(|a| a.parse().expect("an address"))
        .collect();
    let machines = addresses.len() as u8;
    let mut system = counter::system_with(Config {
        machine: MachineID(machine),
        net: Some(NetConfig::new(addresses, "the counter's secret")),
        ..Config::default()
    });
    let mut world = system.world();
    let mut log = ChecksumLog::default();
    let mut the_counter = None;
    for turn in 1..=TURNS {
        match (machine, turn) {
            (0, 1) => {
                let counter = CounterID::spawn(13, &mut world);
                the_counter = Some(counter);
                for m in 0..machines {
                    LoggerID::spawn_on(MachineID(m), counter, &mut world);
                }
                println!("spawned counter {counter}, and a logger on each of {machines} machines");
            }
            // The loggers exist and subscribed by turn 4 (two network hops).
            (0, 5..=7) => {
                let counter = the_counter.expect("spawned in turn 1");
                counter.increment_by(turn as u32, &mut world);
            }
            (1, 10) => {
                CounterListenerID::global_broadcast(&mut world).on_count_change(
                    0,
                    vec![0].into(),
                    &mut world,
                );
            }
            _ => {}
        }
        system.turn();
        if checksum_every > 0 && turn % checksum_every == 0 {
            let loggers = system.with_instances::<counter::Logger, _>(|l| l.checksum());
            let counters = system.with_instances::<counter::Counter, _>(|c| c.checksum());
            let state = loggers
                .iter()
                .chain(&counters)
                .fold(0u64, |h, c| h.rotate_left(7) ^ c);
            log.record(turn, MachineID(machine), state);
        }
    }
    for (seen, history) in system.with_instances::<counter::Logger, _>(|l| l.state()) {
        println!("this machine's logger saw {seen} changes; last history {history:?}");
    }
    let stats = system.net_stats().expect("networked");
    for peer in stats.peers {
        println!(
            "to machine {}: {} messages sent, {} delivered; {} received",
            peer.machine, peer.sent, peer.delivered, peer.received
        );
    }
    print!("{log}");
}
