//! Applications with many classes: 1,000 classes register with
//! `Config::default()` (4,000 shards, 4,001 sender lanes), idle classes
//! cost the message cycle nothing, and spawns from handlers in many shards
//! at once get distinct IDs that are the same on every thread count — also
//! when a handler spawns far more in one cycle than before (the stripe of
//! `class/ids.rs`), and when numbers of dead instances come back.

#![allow(missing_docs)]

use kay::{Actor, ActorSystem, ClassSetup, Compact, Config, Fate, RawID, World};

#[derive(Compact, Clone)]
pub struct Spawn;
#[derive(Compact, Clone)]
pub struct Bump;

/// One of many idle classes: class `N`.
#[derive(Compact, Clone)]
pub struct Idle<const N: u32> {
    id: RawID,
    count: u64,
}

impl<const N: u32> Actor for Idle<N> {
    type ID = RawID;
    fn id(&self) -> RawID {
        self.id
    }
    fn setup(class: &mut ClassSetup<Self>) {
        class
            .spawner(|id, _: &Spawn, _: &mut World| Idle { id, count: 0 })
            .handler(|a: &mut Self, _: &Bump, _: &mut World| a.count += 1);
    }
}

macro_rules! idle_units {
    ($system:ident, $a:literal, $b:literal; $($c:literal)*) => {
        $( $system.register::<Idle<{ $a * 100 + $b * 10 + $c }>>(); )*
    };
}
macro_rules! idle_tens {
    ($system:ident, $a:literal; $($b:literal)*) => {
        $( idle_units!($system, $a, $b; 0 1 2 3 4 5 6 7 8 9); )*
    };
}
macro_rules! idle_hundreds {
    ($system:ident; $($a:literal)*) => {
        $( idle_tens!($system, $a; 0 1 2 3 4 5 6 7 8 9); )*
    };
}

/// Registers `Idle<0>` to `Idle<999>`.
fn register_idle(system: &mut ActorSystem) {
    idle_hundreds!(system; 0 1 2 3 4 5 6 7 8 9);
}

/// Spawns children and keeps what it got: the IDs, in order.
#[derive(Compact, Clone)]
pub struct Parent {
    id: RawID,
    children: kay::CVec<RawID>,
}

#[derive(Compact, Clone)]
pub struct Make {
    n: u32,
}

/// Ends a child's life.
#[derive(Compact, Clone)]
pub struct Die;

impl Actor for Parent {
    type ID = RawID;
    fn id(&self) -> RawID {
        self.id
    }
    fn setup(class: &mut ClassSetup<Self>) {
        class
            .spawner(|id, _: &Spawn, _: &mut World| Parent {
                id,
                children: kay::CVec::new(),
            })
            .handler(|p: &mut Parent, make: &Make, world: &mut World| {
                for _ in 0..make.n {
                    let child = world.spawn::<Child, _>(Spawn);
                    p.children.push(child);
                }
            });
    }
}

#[derive(Compact, Clone)]
pub struct Child {
    id: RawID,
}

impl Actor for Child {
    type ID = RawID;
    fn id(&self) -> RawID {
        self.id
    }
    fn setup(class: &mut ClassSetup<Self>) {
        class
            .spawner(|id, _: &Spawn, _: &mut World| Child { id })
            .handler(|_: &mut Child, _: &Die, _: &mut World| Fate::Die);
    }
}

/// With 1,000 idle classes registered: 8 parents (2 per shard) each spawn
/// 20,000 children in one cycle, then 30,000 more, then every other child
/// dies and each parent spawns 10,000 again. Returns each parent's
/// children in order.
fn run(threads: usize) -> Vec<Vec<RawID>> {
    let mut system = ActorSystem::new(Config {
        threads,
        ..Config::default()
    });
    register_idle(&mut system);
    system.register::<Parent>();
    system.register::<Child>();
    let mut world = system.world();
    let parents: Vec<RawID> = (0..8).map(|_| world.spawn::<Parent, _>(Spawn)).collect();
    system.turn();
    for n in [20_000, 30_000] {
        for &p in &parents {
            world.send(p, Make { n });
        }
        system.turn();
    }
    assert_eq!(system.instance_count::<Child>(), 8 * 50_000);
    let children: Vec<RawID> = system.with_instances::<Child, _>(|c| c.id);
    for c in children.iter().step_by(2) {
        world.send(*c, Die);
    }
    system.turn();
    assert_eq!(system.instance_count::<Child>(), 8 * 25_000);
    for &p in &parents {
        world.send(p, Make { n: 10_000 });
    }
    system.turn();
    assert_eq!(system.instance_count::<Child>(), 8 * 35_000);
    // Every live child's ID is distinct (a number handed out twice would
    // have been refused by the store, or replaced a live child).
    let mut live: Vec<RawID> = system.with_instances::<Child, _>(|c| c.id);
    live.sort_unstable();
    live.dedup();
    assert_eq!(live.len(), 8 * 35_000);
    let stats = system.stats();
    assert_eq!(stats.lost(), 0);
    // The idle classes handled nothing and hold nothing.
    assert_eq!(system.instance_count::<Idle<0>>(), 0);
    assert_eq!(system.instance_count::<Idle<999>>(), 0);
    let mut by_parent: Vec<(RawID, Vec<RawID>)> = system
        .with_instances::<Parent, _>(|p| (p.id, p.children.iter().copied().collect::<Vec<_>>()));
    by_parent.sort_unstable_by_key(|(id, _)| *id);
    by_parent.into_iter().map(|(_, c)| c).collect()
}

#[test]
fn a_thousand_classes_spawn_deterministically_on_any_thread_count() {
    let one = run(1);
    assert_eq!(one.len(), 8);
    assert!(one.iter().all(|c| c.len() == 60_000));
    // Numbers of dead children came back: the last spawns reuse some.
    let mut all: Vec<u32> = one.iter().flatten().map(|id| id.instance).collect();
    all.sort_unstable();
    all.dedup();
    assert!(all.len() < 8 * 60_000, "numbers of the dead were reused");
    assert_eq!(run(2), one, "the same IDs on 2 threads");
}

/// 1,000 idle classes and a busy conversation: a cycle visits only the
/// shards that got records, so the conversation runs as many cycles as
/// without them and every message arrives.
#[test]
fn idle_classes_do_not_slow_down_or_disturb_a_conversation() {
    let mut system = ActorSystem::new(Config::default());
    register_idle(&mut system);
    system.register::<Idle<1000>>();
    let mut world = system.world();
    let a = world.spawn::<Idle<1000>, _>(Spawn);
    let b = world.spawn::<Idle<999>, _>(Spawn);
    system.turn();
    for _ in 0..100 {
        world.send(a, Bump);
        world.send(b, Bump);
        let turn = system.turn();
        assert_eq!(turn.cycles, 1);
        assert_eq!(turn.handled, 2);
    }
    assert_eq!(system.with_instances::<Idle<1000>, _>(|i| i.count), [100]);
    assert_eq!(system.with_instances::<Idle<999>, _>(|i| i.count), [100]);
}

thread_local! {
    /// An outside `World`, smuggled into handlers that run on the system's
    /// thread (nothing forbids it).
    static OUTSIDE: std::cell::RefCell<Option<World>> = const { std::cell::RefCell::new(None) };
}

/// A parent that also spawns through the smuggled outside world.
#[derive(Compact, Clone)]
pub struct Smuggler {
    id: RawID,
}

impl Actor for Smuggler {
    type ID = RawID;
    fn id(&self) -> RawID {
        self.id
    }
    fn setup(class: &mut ClassSetup<Self>) {
        class
            .spawner(|id, _: &Spawn, _: &mut World| Smuggler { id })
            .handler(|_: &mut Smuggler, make: &Make, world: &mut World| {
                for _ in 0..make.n {
                    world.spawn::<Child, _>(Spawn);
                    OUTSIDE.with(|outside| {
                        if let Some(outside) = outside.borrow_mut().as_mut() {
                            outside.spawn::<Child, _>(Spawn);
                        }
                    });
                }
            });
    }
}

/// An outside `World` used inside a handler spawns during a cycle, while
/// handlers' lanes take blocks of the same shards from the stripe: the
/// outside lane then takes stripe blocks too instead of changing the stripe
/// under them, so every spawn gets a distinct ID and none is lost.
#[test]
fn an_outside_world_inside_a_handler_gets_distinct_ids() {
    for threads in [1, 2] {
        let mut system = ActorSystem::new(Config {
            threads,
            ..Config::default()
        });
        system.register::<Smuggler>();
        system.register::<Child>();
        let mut world = system.world();
        let smugglers: Vec<RawID> = (0..4).map(|_| world.spawn::<Smuggler, _>(Spawn)).collect();
        system.turn();
        OUTSIDE.with(|outside| *outside.borrow_mut() = Some(system.world()));
        for &s in &smugglers {
            world.send(s, Make { n: 3_000 });
        }
        system.turn();
        OUTSIDE.with(|outside| *outside.borrow_mut() = None);
        // Only smugglers whose shard ran on this thread reached the outside
        // world; on one thread, all of them.
        let children = system.instance_count::<Child>();
        if threads == 1 {
            assert_eq!(children, 4 * 6_000);
        }
        assert!(children >= 4 * 3_000);
        let mut ids: Vec<RawID> = system.with_instances::<Child, _>(|c| c.id);
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), children, "no ID handed out twice");
        assert_eq!(system.stats().lost(), 0);
        // Between cycles, outside spawns are granted blocks again.
        for _ in 0..5_000 {
            world.spawn::<Child, _>(Spawn);
        }
        system.turn();
        assert_eq!(system.instance_count::<Child>(), children + 5_000);
    }
}
