//! Runs the counter example: one counter, two loggers, a few increments.

use counter::{CounterID, CounterListenerID, LoggerID};

fn main() {
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
