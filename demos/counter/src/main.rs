//! Runs the counter example: one counter, two loggers, a few increments.
//!
//! `counter --machines 3 [--checksum-every N] [--runs R]` runs it as 3
//! processes instead (see `machines.rs`).
//!
//! `counter --snapshot-dir DIR` keeps the system in `DIR`: the first run
//! spawns the counter and its loggers and snapshots them; every later run
//! resumes the snapshot, increments the counter once more and snapshots
//! again, so the count goes on from run to run.

mod machines;

use counter::{CounterID, CounterListenerID, LoggerID};

/// The value of flag `name` in `args`, parsed.
fn flag<T: std::str::FromStr>(args: &[String], name: &str) -> Option<T> {
    let at = args.iter().position(|a| a == name)?;
    let value = args
        .get(at + 1)
        .unwrap_or_else(|| panic!("{name} needs a value"));
    Some(
        value
            .parse()
            .unwrap_or_else(|_| panic!("{name}: cannot read {value:?}")),
    )
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let checksum_every = flag(&args, "--checksum-every").unwrap_or(0);
    if let Some(machine) = flag::<u8>(&args, "--machine") {
        let addresses: String = flag(&args, "--addresses").expect("--addresses");
        return machines::run(machine, &addresses, checksum_every);
    }
    if let Some(machines) = flag::<usize>(&args, "--machines") {
        return machines::launch(machines, checksum_every, flag(&args, "--runs").unwrap_or(1));
    }
    if let Some(dir) = flag::<std::path::PathBuf>(&args, "--snapshot-dir") {
        return persistent(&dir);
    }
    single();
}

/// The example kept in `dir` across runs (see the module docs).
fn persistent(dir: &std::path::Path) {
    use kay::Actor;
    let mut system = kay::ActorSystem::with_storage(dir, kay::Config::default())
        .unwrap_or_else(|e| panic!("cannot use {}: {e}", dir.display()));
    counter::register(&mut system);
    let mut world = system.world();
    let counter = match system
        .load()
        .unwrap_or_else(|e| panic!("cannot resume: {e}"))
    {
        Some(loaded) => {
            let counter = system.with_instances::<counter::Counter, _>(|c| c.id())[0];
            println!(
                "resumed generation {} (turn {}, {} instances) from {}",
                loaded.generation,
                loaded.turn,
                loaded.instances,
                dir.display()
            );
            counter
        }
        None => {
            let counter = CounterID::spawn(13, &mut world);
            LoggerID::spawn(counter, &mut world);
            LoggerID::spawn(counter, &mut world);
            println!("a new counter in {}", dir.display());
            counter
        }
    };
    counter.increment_by(1, &mut world);
    system.turn();
    let count = system
        .block_on(counter.count(&mut world))
        .expect("the counter answers");
    let saved = system.snapshot().expect("a snapshot");
    println!(
        "count is now {count}; saved as generation {} (turn {})",
        saved.generation, saved.turn
    );
}

/// The example on one machine.
fn single() {
    let mut system = counter::system();
    let mut world = system.world();

    let counter = CounterID::spawn(13, &mut world);
    let loggers = [
        LoggerID::spawn(counter, &mut world),
        LoggerID::spawn(counter, &mut world),
    ];
    system.process_all_messages();
    println!(
        "spawned counter {counter} and loggers {} and {}",
        loggers[0], loggers[1]
    );

    for amount in [2, 5, 1] {
        counter.increment_by(amount, &mut world);
        system.process_all_messages();
        let count = system
            .block_on(counter.count(&mut world))
            .expect("the counter answers");
        println!("incremented by {amount}: count is now {count}");
    }

    for logger in loggers {
        let seen = system
            .block_on(logger.seen(&mut world))
            .expect("the logger answers");
        let history = system
            .block_on(logger.last_history(&mut world))
            .expect("the logger answers");
        println!(
            "logger {logger} saw {seen} changes; the counter's history: {:?}",
            history.to_vec()
        );
    }

    // A broadcast to the trait reaches every listener, whatever its class.
    CounterListenerID::local_broadcast(&mut world).on_count_change(0, vec![0].into(), &mut world);
    system.process_all_messages();
    for logger in loggers {
        let seen = system
            .block_on(logger.seen(&mut world))
            .expect("the logger answers");
        println!("after a broadcast to every CounterListener, logger {logger} saw {seen} changes");
    }

    for class in system.stats().classes {
        let handled: u64 = class.handled.iter().map(|(_, n)| n).sum();
        println!(
            "{}: {} instances, {handled} messages handled",
            class.name, class.instances
        );
    }
}
