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
