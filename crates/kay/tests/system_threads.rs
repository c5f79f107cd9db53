//! Shard jobs spread over the calling thread and the pool's helpers.

#![allow(missing_docs)]

use kay::{Actor, ActorSystem, ClassSetup, Compact, Config, World};

kay::typed_id!(pub WorkerID);

/// Counts its ticks; panics on the tick numbered `panic_at` (0: never).
#[derive(Compact, Clone)]
pub struct Worker {
    id: WorkerID,
    ticks: u32,
    panic_at: u32,
}

#[derive(Compact, Clone)]
pub struct SpawnWorker {
    panic_at: u32,
}

#[derive(Compact, Clone)]
pub struct Tick;

impl Actor for Worker {
    type ID = WorkerID;
    fn id(&self) -> WorkerID {
        self.id
    }
    fn setup(class: &mut ClassSetup<Self>) {
        class
            .spawner(|id, s: &SpawnWorker, _: &mut World| Worker {
                id,
                ticks: 0,
                panic_at: s.panic_at,
            })
            .handler(|w: &mut Worker, _: &Tick, _: &mut World| {
                w.ticks += 1;
                assert_ne!(w.ticks, w.panic_at, "worker panics as told");
            });
    }
}

fn system(threads: usize) -> (ActorSystem, World) {
    let mut system = ActorSystem::new(Config {
        threads,
        shards: 8,
        ..Config::default()
    });
    system.register::<Worker>();
    let world = system.world();
    (system, world)
}

#[test]
fn every_shard_job_runs_once_per_cycle_on_any_thread_count() {
    for threads in [1, 2, 3, 8, 16] {
        let (mut system, mut world) = system(threads);
        for _ in 0..1000 {
            world.spawn::<Worker, _>(SpawnWorker { panic_at: 0 });
        }
        system.process_all_messages();
        let everyone = world.local_broadcast::<Worker>();
        for frame in 1..=20 {
            world.send(everyone, Tick);
            // One broadcast record per shard.
            assert_eq!(
                system.process_all_messages().handled,
                8,
                "{threads} threads"
            );
            let ticks = system.with_instances::<Worker, _>(|w| w.ticks);
            assert!(
                ticks.iter().all(|&t| t == frame),
                "{threads} threads, frame {frame}"
            );
        }
    }
}

#[test]
fn a_handler_panic_on_any_thread_is_caught_and_reported() {
    for threads in [1, 2, 4] {
        let (mut system, mut world) = system(threads);
        // One panicking worker among many, in some shard handled by the
        // calling thread or a helper.
        for i in 0..64 {
            let panic_at = if i == 37 { 1 } else { 0 };
            world.spawn::<Worker, _>(SpawnWorker { panic_at });
        }
        system.process_all_messages();
        let everyone = world.local_broadcast::<Worker>();
        world.send(everyone, Tick);
        // The panic does not reach the caller.
        system.process_all_messages();
        let report = system.panic_report().expect("a report");
        assert!(
            report.text.contains("worker panics as told"),
            "{threads} threads: {report}"
        );
        // Every other worker got its tick.
        let ticks = system.with_instances::<Worker, _>(|w| w.ticks);
        assert!(ticks.iter().all(|&t| t == 1), "{threads} threads");
    }
}
