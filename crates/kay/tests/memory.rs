//! Memory comes back: an actor whose state grew and then shrank moves back
//! into a slot that fits it, by point-to-point messages and broadcasts.

#![allow(missing_docs)]

use kay::{Actor, ActorSystem, CVec, ClassSetup, Compact, Config, World};

kay::typed_id!(pub LogID);

#[derive(Compact, Clone)]
pub struct Log {
    id: LogID,
    entries: CVec<u64>,
}
#[derive(Compact, Clone)]
pub struct SpawnLog;
#[derive(Compact, Clone)]
pub struct Grow {
    n: u64,
}
#[derive(Compact, Clone)]
pub struct Clear;
#[derive(Compact, Clone)]
pub struct Check;

impl Actor for Log {
    type ID = LogID;
    fn id(&self) -> LogID {
        self.id
    }
    fn setup(class: &mut ClassSetup<Self>) {
        class
            .spawner(|id, _: &SpawnLog, _: &mut World| Log {
                id,
                entries: CVec::new(),
            })
            .handler(|l: &mut Log, g: &Grow, _: &mut World| l.entries.extend(0..g.n))
            .handler(|l: &mut Log, _: &Clear, _: &mut World| l.entries.clear())
            .handler(|l: &mut Log, _: &Check, _: &mut World| {
                assert!(l.entries.iter().copied().eq(0..l.entries.len() as u64));
            });
    }
}

fn slot_bytes(system: &ActorSystem) -> usize {
    system.stats().class("Log").unwrap().slot_bytes
}

#[test]
fn shrunk_actors_move_back_into_a_fitting_slot() {
    for threads in [1, 2] {
        let mut system = ActorSystem::new(Config {
            threads,
            ..Config::default()
        });
        system.register::<Log>();
        let mut world = system.world();
        let logs: Vec<LogID> = (0..64).map(|_| world.spawn::<Log, _>(SpawnLog)).collect();
        system.turn();
        let small = slot_bytes(&system);
        // 64 actors of 1 MiB each (point to point).
        for &log in &logs {
            world.send(log, Grow { n: 1 << 17 });
        }
        system.turn();
        assert!(
            slot_bytes(&system) >= 64 << 20,
            "{} bytes",
            slot_bytes(&system)
        );
        for &log in &logs {
            world.send(log, Clear);
        }
        system.turn();
        assert_eq!(
            slot_bytes(&system),
            small,
            "{threads} threads: the memory came back"
        );

        // The same by broadcast, with every other log kept a little grown.
        let everyone = world.local_broadcast::<Log>();
        world.send(everyone, Grow { n: 1 << 15 });
        system.turn();
        assert!(slot_bytes(&system) >= 64 << 18);
        world.send(everyone, Clear);
        for &log in logs.iter().step_by(2) {
            world.send(log, Grow { n: 3 });
        }
        world.send(everyone, Check);
        system.turn();
        assert!(
            slot_bytes(&system) <= 64 * 64,
            "{} bytes after the broadcast clear",
            slot_bytes(&system)
        );
        let lens = system.with_instances::<Log, _>(|l| l.entries.len());
        assert_eq!(lens.iter().filter(|&&n| n == 3).count(), 32);
        assert_eq!(lens.iter().filter(|&&n| n == 0).count(), 32);
    }
}

kay::typed_id!(pub SenderID);
kay::typed_id!(pub SinkID);

#[derive(Compact, Clone)]
pub struct Sender {
    id: SenderID,
}
#[derive(Compact, Clone)]
pub struct Sink {
    id: SinkID,
    total: u64,
}
#[derive(Compact, Clone)]
pub struct SpawnSender;
#[derive(Compact, Clone)]
pub struct SpawnSink;
/// Sends `count` `Drop`s to each sink.
#[derive(Compact, Clone)]
pub struct Burst {
    sinks: CVec<SinkID>,
    count: u64,
}
#[derive(Compact, Clone)]
pub struct Drip {
    v: u64,
}

impl Actor for Sender {
    type ID = SenderID;
    fn id(&self) -> SenderID {
        self.id
    }
    fn setup(class: &mut ClassSetup<Self>) {
        class
            .spawner(|id, _: &SpawnSender, _: &mut World| Sender { id })
            .handler(|_: &mut Sender, b: &Burst, world: &mut World| {
                for &sink in b.sinks.iter() {
                    for v in 0..b.count {
                        world.send(sink, Drip { v });
                    }
                }
            });
    }
}

impl Actor for Sink {
    type ID = SinkID;
    fn id(&self) -> SinkID {
        self.id
    }
    fn setup(class: &mut ClassSetup<Self>) {
        class
            .spawner(|id, _: &SpawnSink, _: &mut World| Sink { id, total: 0 })
            .handler(|s: &mut Sink, d: &Drip, _: &mut World| s.total += d.v);
    }
}

/// After a burst from many senders, a class's inboxes keep what
/// `Config::inbox_retain_bytes` says — for the class, not for each of its
/// inboxes (20 here) — and free the rest.
#[test]
fn inboxes_keep_the_class_budget_after_a_burst() {
    const BUDGET: usize = 1 << 20;
    const CHUNK: usize = 1 << 16;
    for threads in [1, 2] {
        let mut system = ActorSystem::new(Config {
            threads,
            shards: 4,
            inbox_chunk_size: CHUNK,
            inbox_retain_bytes: BUDGET,
            ..Config::default()
        });
        system.register::<Sender>();
        system.register::<Sink>();
        let mut world = system.world();
        let sinks: Vec<SinkID> = (0..4).map(|_| world.spawn::<Sink, _>(SpawnSink)).collect();
        let senders: Vec<SenderID> = (0..16)
            .map(|_| world.spawn::<Sender, _>(SpawnSender))
            .collect();
        system.turn();
        for &sender in &senders {
            world.send(
                sender,
                Burst {
                    sinks: sinks.iter().copied().collect(),
                    count: 20_000,
                },
            );
        }
        system.turn();
        let totals = system.with_instances::<Sink, _>(|s| s.total);
        assert!(totals.iter().all(|&t| t == 16 * (20_000 * 19_999 / 2)));
        let held = system.stats().class("Sink").unwrap().inbox_bytes;
        // 20 lanes into the sinks (the outside and 4 sender shards, into 4
        // shards), each with its current chunk and one kept at least.
        let bound = BUDGET + 20 * 2 * CHUNK;
        assert!(
            held <= bound,
            "{threads} threads: {held} bytes held (at most {bound})"
        );
    }
}
