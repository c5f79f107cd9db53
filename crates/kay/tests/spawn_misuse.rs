//! Spawner messages only ever create fresh instances: sent with `send` to a
//! live or broadcast ID, or spawned with a message that has no spawner, they
//! are dropped and counted, never replace or alias a live actor.

#![allow(missing_docs)]

use kay::{Actor, ActorSystem, ClassSetup, Compact, Config, TypedID, World};

kay::typed_id!(pub CellID);

#[derive(Compact, Clone, Debug)]
pub struct Cell {
    id: CellID,
    value: u64,
}

#[derive(Compact, Clone)]
pub struct SpawnCell {
    value: u64,
}
#[derive(Compact, Clone)]
pub struct Add {
    amount: u64,
}
/// A message type no class handles.
#[derive(Compact, Clone)]
pub struct Unhandled;

impl Actor for Cell {
    type ID = CellID;
    fn id(&self) -> CellID {
        self.id
    }
    fn setup(class: &mut ClassSetup<Self>) {
        class
            .spawner(|id, m: &SpawnCell, _: &mut World| Cell { id, value: m.value })
            .handler(|c: &mut Cell, m: &Add, _: &mut World| c.value += m.amount);
    }
}

fn system(threads: usize) -> (ActorSystem, World) {
    let mut system = ActorSystem::new(Config {
        threads,
        ..Config::default()
    });
    system.register::<Cell>();
    let world = system.world();
    (system, world)
}

fn values(system: &ActorSystem) -> Vec<(u32, u64)> {
    let mut values = system.with_instances::<Cell, _>(|c| (c.id.as_raw().instance, c.value));
    values.sort();
    values
}

#[test]
fn a_spawner_message_sent_to_a_live_id_does_not_replace_it() {
    for threads in [1, 2] {
        let (mut system, mut world) = system(threads);
        let live = world.spawn::<Cell, _>(SpawnCell { value: 7 });
        system.process_all_messages();
        world.send(live, SpawnCell { value: 99 });
        world.send(live, Add { amount: 1 });
        system.process_all_messages();
        assert_eq!(values(&system), vec![(live.as_raw().instance, 8)]);
        let stats = system.stats();
        assert_eq!(stats.class("Cell").unwrap().no_handler, 1, "{stats:?}");
    }
}

#[test]
fn a_spawner_message_sent_to_a_broadcast_id_creates_nothing() {
    for threads in [1, 2] {
        let (mut system, mut world) = system(threads);
        world.spawn::<Cell, _>(SpawnCell { value: 1 });
        system.process_all_messages();
        let everyone = world.local_broadcast::<Cell>();
        world.send(everyone, SpawnCell { value: 5 });
        system.process_all_messages();
        assert_eq!(system.instance_count::<Cell>(), 1);
        // One record per shard, each dropped and counted.
        let stats = system.stats();
        assert_eq!(stats.class("Cell").unwrap().no_handler, 4, "{stats:?}");
    }
}

#[test]
fn spawning_with_a_message_that_has_no_spawner_gives_a_fresh_id() {
    for threads in [1, 2] {
        let (mut system, mut world) = system(threads);
        let live = world.spawn::<Cell, _>(SpawnCell { value: 1 });
        system.process_all_messages();
        // `Add` is a handler, not a spawner; `Unhandled` is not handled at all.
        let not_spawned = world.spawn::<Cell, _>(Add { amount: 5 });
        let unknown = world.spawn::<Cell, _>(Unhandled);
        assert_ne!(not_spawned.as_raw(), live.as_raw());
        assert_ne!(unknown.as_raw(), live.as_raw());
        assert_ne!(unknown.as_raw(), not_spawned.as_raw());
        // Messages meant for them do not reach the live actor.
        world.send(not_spawned, Add { amount: 100 });
        world.send(unknown, Add { amount: 100 });
        system.process_all_messages();
        assert_eq!(values(&system), vec![(live.as_raw().instance, 1)]);
        let stats = system.stats();
        let cell = stats.class("Cell").unwrap();
        assert_eq!(cell.no_handler, 2, "{stats:?}");
        assert_eq!(cell.no_recipient, 2, "{stats:?}");
        assert_eq!(stats.undeliverable, 1, "{stats:?}");
        // The unused numbers are handed out again, with a new version.
        let fresh: Vec<CellID> = (0..8)
            .map(|i| world.spawn::<Cell, _>(SpawnCell { value: 10 + i }))
            .collect();
        system.process_all_messages();
        assert_eq!(system.instance_count::<Cell>(), 9);
        for id in fresh {
            assert_ne!(id.as_raw(), not_spawned.as_raw());
            assert_ne!(id.as_raw(), unknown.as_raw());
        }
    }
}
