//! The same seed gives the same city, turn by turn, on 1 and 2 threads:
//! the checksum (a hash of every actor's state in ID order) and the
//! figures agree, and a different seed gives a different city.

use city::{City, CityConfig};

fn run(threads: usize, seed: u64) -> (u64, Vec<String>, u64) {
    let mut city = City::new(CityConfig {
        cars: 10_000,
        width: 24,
        height: 24,
        threads,
        seed,
        bus_lines: 2,
        ..CityConfig::default()
    });
    let mut seconds = Vec::new();
    for _ in 0..120 {
        if let Some(totals) = city.step().second {
            seconds.push(format!("{totals:?}"));
        }
    }
    (city.checksum(), seconds, city.car_trips())
}

#[test]
fn same_seed_same_city_on_1_and_2_threads() {
    let one = run(1, 7);
    let two = run(2, 7);
    assert_eq!(one.0, two.0, "checksums differ");
    assert_eq!(one.1, two.1, "per-second figures differ");
    assert_eq!(one.1.len(), 60);
    assert!(one.2 > 0, "cars completed trips");
    let other = run(2, 8);
    assert_ne!(other.0, one.0, "another seed, another city");
}

/// The city's figures (a map-reduce over the lanes every simulated second)
/// of one seed and grid are the same on 1, 2 and 3 machines (processes on
/// 127.0.0.1, in lockstep), as on 1 and 2 threads: a vehicle crossing
/// between lanes takes the same time and lands in the same order wherever
/// the lanes are.
#[test]
fn figures_are_the_same_on_one_two_and_three_machines() {
    let city = env!("CARGO_BIN_EXE_city");
    // 20,000 cars are spawned in one batch (one turn), 70,000 in two: the
    // simulation starts on turns of either parity.
    let figures = |machines: usize, cars: &str, turns: &str| -> serde_json::Value {
        let mut command = std::process::Command::new(city);
        command.args([
            "--agents", cars, "--size", "30x30", "--turns", turns, "--json",
        ]);
        if machines > 1 {
            command.args(["--machines", &machines.to_string()]);
        } else {
            command.args([
                "--threads",
                "2",
                "--out",
                std::env::temp_dir().to_str().unwrap(),
            ]);
        }
        let output = command.output().expect("the city runs");
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{text}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let last: serde_json::Value = text
            .lines()
            .rev()
            .find_map(|l| serde_json::from_str(l).ok())
            .unwrap_or_else(|| panic!("no figures:\n{text}"));
        if machines > 1 {
            last["per_machine"][0]["figures"].clone()
        } else {
            last["figures"].clone()
        }
    };
    let one = figures(1, "20000", "160");
    assert_eq!(one["seconds"], 80, "{one}");
    assert!(one["trips"].as_u64().unwrap() > 0, "{one}");
    assert_eq!(figures(2, "20000", "160"), one);
    assert_eq!(figures(3, "20000", "160"), one);
    let one = figures(1, "70000", "41");
    assert!(one["seconds"].as_u64().unwrap() >= 20, "{one}");
    assert_eq!(figures(2, "70000", "41"), one);
}

/// `city --snapshot-dir D --turns 60`, then `city --snapshot-dir D --resume
/// --turns 120` (another process, on another thread count) prints the
/// checksum of the uninterrupted run to 120.
#[test]
fn a_resumed_city_ends_where_the_uninterrupted_one_does() {
    let city = env!("CARGO_BIN_EXE_city");
    let out = std::env::temp_dir();
    let run = |extra: &[&str]| -> serde_json::Value {
        let output = std::process::Command::new(city)
            .args(["--agents", "20000", "--size", "30x30", "--json", "--out"])
            .arg(&out)
            .args(extra)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let stdout = String::from_utf8(output.stdout).unwrap();
        serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
    };
    let whole = run(&["--turns", "120", "--threads", "1"]);
    let dir = tempfile::tempdir().unwrap();
    let dir_arg = dir.path().to_str().unwrap();
    let first = run(&[
        "--turns",
        "60",
        "--threads",
        "2",
        "--snapshot-dir",
        dir_arg,
        "--snapshot-every",
        "25",
    ]);
    assert_eq!(first["snapshots"], 3, "{first}");
    let resumed = run(&[
        "--turns",
        "120",
        "--threads",
        "1",
        "--snapshot-dir",
        dir_arg,
        "--resume",
    ]);
    assert_eq!(resumed["resumed_from"], 60);
    assert_eq!(resumed["checksum"], whole["checksum"], "{resumed}\n{whole}");
}

/// The same over two machines (processes on 127.0.0.1, in lockstep): each
/// machine snapshots its band at turn 40 and 60, the next run resumes
/// every machine from its own snapshot and ends with each machine's
/// checksum of the uninterrupted run to 120.
#[test]
fn a_city_over_two_machines_resumes_where_the_uninterrupted_one_ends() {
    let city = env!("CARGO_BIN_EXE_city");
    let run = |extra: &[&str]| -> Vec<serde_json::Value> {
        let output = std::process::Command::new(city)
            .args(["--machines", "2", "--agents", "20000", "--size", "30x30"])
            .args(["--json"])
            .args(extra)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let last: serde_json::Value = stdout
            .lines()
            .rev()
            .find_map(|l| serde_json::from_str(l).ok())
            .unwrap_or_else(|| panic!("no figures:\n{stdout}"));
        last["per_machine"].as_array().expect("per machine").clone()
    };
    let checksums = |machines: &[serde_json::Value]| {
        machines
            .iter()
            .map(|m| m["checksum"].clone())
            .collect::<Vec<_>>()
    };
    let whole = run(&["--turns", "120"]);
    let dir = tempfile::tempdir().unwrap();
    let dir_arg = dir.path().to_str().unwrap();
    let first = run(&[
        "--turns",
        "60",
        "--snapshot-dir",
        dir_arg,
        "--snapshot-every",
        "40",
    ]);
    assert_eq!(first[0]["snapshots"], 2, "{first:?}");
    let resumed = run(&["--turns", "120", "--snapshot-dir", dir_arg, "--resume"]);
    assert_eq!(resumed[0]["resumed_from"], 60, "{resumed:?}");
    assert_eq!(checksums(&resumed), checksums(&whole));
    assert_ne!(checksums(&first), checksums(&whole));
}
