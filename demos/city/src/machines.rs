//! `city --machines N`: the city split over N processes on 127.0.0.1 (one
//! topology, in lockstep). This launcher starts this program once per
//! machine, reads each machine's figures and checksums, and prints them
//! with the totals; with `--runs 2` it runs the topology twice and reports
//! whether (and where first) the runs' checksums diverge.

use std::process::{Command, Stdio};

use kay::net::ChecksumLog;

use crate::Args;

/// Runs the topology `args.runs` times and prints what each run did.
pub fn launch(args: &Args) {
    let mut logs = Vec::new();
    for run in 1..=args.runs.max(1) {
        let addresses: Vec<String> = kay::net::loopback_addresses(args.machines)
            .iter()
            .map(ToString::to_string)
            .collect();
        let threads = args.threads.unwrap_or(1).to_string();
        let children: Vec<_> = (0..args.machines)
            .map(|m| {
                let mut command = Command::new(std::env::current_exe().expect("this program"));
                // Each machine snapshots into (and resumes from) its own
                // directory under `--snapshot-dir`.
                if let Some(dir) = &args.snapshot_dir {
                    command
                        .arg("--snapshot-dir")
                        .arg(dir.join(format!("machine-{m}")))
                        .args(["--snapshot-every", &args.snapshot_every.to_string()]);
                    if args.resume {
                        command.arg("--resume");
                    }
                }
                command
                    .args(["--agents", &args.agents.to_string()])
                    .args(["--turns", &args.turns.max(1).to_string()])
                    .args(["--threads", &threads])
                    .args(["--seed", &args.seed.to_string()])
                    .args(["--size", &format!("{}x{}", args.size.0, args.size.1)])
                    .args(["--checksum-every", &args.checksum_every.to_string()])
                    .args(["--machine", &m.to_string()])
                    .args(["--addresses", &addresses.join(",")])
                    .stdout(Stdio::piped())
                    .spawn()
                    .expect("a machine")
            })
            .collect();
        let mut log = ChecksumLog::default();
        let mut machines = Vec::new();
        for (m, child) in children.into_iter().enumerate() {
            let output = child.wait_with_output().expect("its output");
            let text = String::from_utf8_lossy(&output.stdout);
            assert!(output.status.success(), "machine {m} failed:\n{text}");
            log.extend(&ChecksumLog::parse(&text));
            let figures: serde_json::Value = text
                .lines()
                .rev()
                .find_map(|l| serde_json::from_str(l).ok())
                .unwrap_or_else(|| panic!("machine {m} printed no figures:\n{text}"));
            machines.push(figures);
        }
        let number = |v: &serde_json::Value, k: &str| v[k].as_f64().unwrap_or(0.0);
        let slowest = machines
            .iter()
            .map(|m| number(m, "turns_per_s"))
            .fold(f64::INFINITY, f64::min);
        let cars: f64 = machines.iter().map(|m| number(m, "cars")).sum();
        let trips: f64 = machines.iter().map(|m| number(m, "trips")).sum();
        let checksums: Vec<&str> = machines
            .iter()
            .map(|m| m["checksum"].as_str().unwrap_or("?"))
            .collect();
        if args.json {
            println!(
                "{}",
                serde_json::json!({
                    "run": run,
                    "machines": args.machines,
                    "agents": args.agents,
                    "turns": args.turns,
                    "turns_per_s": slowest,
                    "cars": cars,
                    "trips": trips,
                    "checksums": checksums,
                    "per_machine": machines,
                })
            );
        } else {
            println!(
                "run {run}: {} machines on 127.0.0.1, lockstep",
                args.machines
            );
            for figures in &machines {
                println!(
                    "  machine {}: {} cars now ({} started here), {:.1} turns/s, {:.0} MB peak, \
                     {} trips, {} messages to / {} from other machines, checksum {}",
                    figures["machine"],
                    figures["cars"],
                    figures["cars_started"],
                    number(figures, "turns_per_s"),
                    number(figures, "peak_rss_mb"),
                    figures["trips"],
                    figures["net_sent"],
                    figures["net_received"],
                    figures["checksum"].as_str().unwrap_or("?"),
                );
            }
            println!(
                "  city: {cars} cars, {trips} trips, {slowest:.1} turns/s (the slowest machine)"
            );
            if args.snapshot_dir.is_some() {
                let m = &machines[0];
                println!(
                    "  snapshots: every machine resumed at turn {}, wrote {} (longest pause {:.1} ms)",
                    m["resumed_from"],
                    m["snapshots"],
                    number(m, "snapshot_pause_ms")
                );
            }
            // Machine 0 asks every lane for its figures each second (a
            // map-reduce over all machines): the same as on one machine.
            let f = &machines[0]["figures"];
            println!(
                "  figures: {} s, {:.1} km driven, {} trips at lane ends, digest {}",
                f["seconds"],
                f["driven_mm"].as_f64().unwrap_or(0.0) / 1e6,
                f["trips"],
                f["digest"].as_str().unwrap_or("?"),
            );
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
