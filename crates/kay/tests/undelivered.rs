//! Every message that reaches no handler is counted under one reason of
//! `kay::Undelivered`, per class and system-wide, and `Stats::lost` is
//! their sum.

#![allow(missing_docs)]

use kay::{
    Actor, ActorSystem, ClassSetup, Compact, Config, Fate, MachineID, RawID, TypedID, Undelivered,
    World,
};

kay::typed_id!(pub CellID);

#[derive(Compact, Clone)]
pub struct Cell {
    id: CellID,
    hits: u64,
}
#[derive(Compact, Clone)]
pub struct Spawn;
#[derive(Compact, Clone)]
pub struct Hit;
#[derive(Compact, Clone)]
pub struct Die;
/// Handled by no class (but registered: `Observer` has a handler).
#[derive(Compact, Clone)]
pub struct Unhandled;
/// Never registered anywhere.
#[derive(Compact, Clone)]
pub struct Stranger;

kay::typed_id!(pub ObserverID);
#[derive(Compact, Clone)]
pub struct Observer {
    id: ObserverID,
}

impl Actor for Cell {
    type ID = CellID;
    fn id(&self) -> CellID {
        self.id
    }
    fn setup(class: &mut ClassSetup<Self>) {
        class
            .spawner(|id, _: &Spawn, _: &mut World| Cell { id, hits: 0 })
            .handler(|c: &mut Cell, _: &Hit, _: &mut World| c.hits += 1)
            .handler(|_: &mut Cell, _: &Die, _: &mut World| Fate::Die);
    }
}

impl Actor for Observer {
    type ID = ObserverID;
    fn id(&self) -> ObserverID {
        self.id
    }
    fn setup(class: &mut ClassSetup<Self>) {
        class.handler(|_: &mut Observer, _: &Unhandled, _: &mut World| {});
    }
}

#[test]
fn each_lost_message_is_counted_under_its_reason() {
    for threads in [1, 2] {
        let mut system = ActorSystem::new(Config {
            threads,
            shards: 1,
            ..Config::default()
        });
        system.register::<Cell>();
        system.register::<Observer>();
        let mut world = system.world();

        // A dies; B gets its number back with the next version.
        let a = world.spawn::<Cell, _>(Spawn);
        system.turn();
        world.send(a, Die);
        system.turn();
        let b = world.spawn::<Cell, _>(Spawn);
        system.turn();
        assert_eq!(b.as_raw().instance, a.as_raw().instance);
        assert_ne!(b.as_raw().version, a.as_raw().version);
        // C dies, and its number stays free.
        let c = world.spawn::<Cell, _>(Spawn);
        system.turn();
        world.send(c, Die);
        system.turn();

        world.send(a, Hit); // stale: B holds the number
        world.send(c, Hit); // gone
        world.send(c, Hit); // gone
        world.send(b, Unhandled); // Cell has no handler for it
        world.send(b, Stranger); // no class handles it
        let elsewhere = RawID::new(b.as_raw().type_id, 0, MachineID(3), 0);
        world.send(CellID::from_raw(elsewhere), Hit); // another machine
        world.send(b, Hit); // delivered
        system.turn();

        let stats = system.stats();
        let cell = stats.class("Cell").unwrap();
        assert_eq!(cell.undelivered(Undelivered::Stale), 1, "{threads} threads");
        assert_eq!(cell.undelivered(Undelivered::Gone), 2);
        assert_eq!(cell.undelivered(Undelivered::NoHandler), 1);
        assert_eq!(stats.undelivered(Undelivered::Unknown), 1);
        assert_eq!(stats.undelivered(Undelivered::OtherMachine), 1);
        let total: u64 = Undelivered::ALL
            .iter()
            .map(|&reason| stats.undelivered(reason))
            .sum();
        assert_eq!(total, 6);
        assert_eq!(stats.lost(), total);
        assert_eq!(system.with_instances::<Cell, _>(|c| c.hits), vec![1]);
    }
}
