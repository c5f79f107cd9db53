//! The runtime core on one thread: spawning, sending, broadcasts, deaths,
//! growth, stale IDs, traits, message cycles, FIFO order and statistics.

#![allow(missing_docs)]

use kay::{
    Actor, ActorSystem, ActorTrait, CVec, ClassSetup, Compact, Config, External, Fate, RawID,
    Recipient, TypedID, World,
};

kay::typed_id!(pub CellID);
kay::typed_id!(pub WatcherID);
kay::typed_id!(pub ObserverID);

/// A cell that counts messages and keeps a growing log.
#[derive(Compact, Clone, Debug)]
pub struct Cell {
    id: CellID,
    value: u64,
    log: CVec<u64>,
    ticks: u32,
}

#[derive(Compact, Clone)]
pub struct SpawnCell {
    value: u64,
}
#[derive(Compact, Clone)]
pub struct Add {
    amount: u64,
}
#[derive(Compact, Clone)]
pub struct Log {
    entries: CVec<u64>,
}
#[derive(Compact, Clone)]
pub struct Tick;
#[derive(Compact, Clone)]
pub struct Die;
/// On a broadcast: cells with odd value die, every third grows, every fifth spawns a child.
#[derive(Compact, Clone)]
pub struct Churn;
#[derive(Compact, Clone)]
pub struct Forward {
    to: CellID,
    amount: u64,
}

impl Actor for Cell {
    type ID = CellID;
    fn id(&self) -> CellID {
        self.id
    }
    fn setup(class: &mut ClassSetup<Self>) {
        class
            .spawner(|id, m: &SpawnCell, _: &mut World| Cell {
                id,
                value: m.value,
                log: CVec::new(),
                ticks: 0,
            })
            .handler(|c: &mut Cell, m: &Add, _: &mut World| {
                c.value += m.amount;
                c.log.push(m.amount);
            })
            .handler(|c: &mut Cell, m: &Log, _: &mut World| c.log.extend(m.entries.iter().copied()))
            .handler(|c: &mut Cell, _: &Tick, _: &mut World| c.ticks += 1)
            .handler(|_: &mut Cell, _: &Die, _: &mut World| Fate::Die)
            .handler(|_: &mut Cell, m: &Forward, world: &mut World| {
                world.send(m.to, Add { amount: m.amount })
            })
            .handler(|c: &mut Cell, _: &Churn, world: &mut World| {
                c.ticks += 1;
                if c.value.is_multiple_of(5) {
                    world.spawn::<Cell, _>(SpawnCell {
                        value: 1_000_000 + c.value,
                    });
                }
                if c.value.is_multiple_of(3) {
                    c.log.extend((0..40).map(|i| c.value * 100 + i));
                }
                if c.value % 2 == 1 {
                    Fate::Die
                } else {
                    Fate::Live
                }
            })
            .implements::<Watcher>();
    }
}

fn system() -> (ActorSystem, World) {
    let mut system = ActorSystem::new(Config::default());
    system.register::<Cell>();
    system.register::<Observer>();
    let world = system.world();
    (system, world)
}

fn cells(system: &ActorSystem) -> Vec<Cell> {
    let mut all = system.with_instances::<Cell, _>(Cell::clone);
    all.sort_by_key(|c| c.value);
    all
}

#[test]
fn spawn_send_and_handle() {
    let (mut system, mut world) = system();
    let a = world.spawn::<Cell, _>(SpawnCell { value: 10 });
    world.send(a, Add { amount: 5 });
    world.send(
        a,
        Log {
            entries: vec![7, 8, 9].into(),
        },
    );
    system.process_all_messages();
    let all = cells(&system);
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].id, a);
    assert_eq!(all[0].value, 15);
    assert_eq!(all[0].log, vec![5, 7, 8, 9]);
    let stats = system.stats();
    let cell = stats.class("Cell").unwrap();
    assert_eq!(cell.instances, 1);
    assert_eq!(cell.handled("Add"), 1);
    assert_eq!(cell.handled("SpawnCell"), 1);
    assert_eq!(stats.lost(), 0);
}

#[test]
fn messages_sent_while_handling_wait_for_the_next_cycle() {
    let (mut system, mut world) = system();
    let a = world.spawn::<Cell, _>(SpawnCell { value: 0 });
    let b = world.spawn::<Cell, _>(SpawnCell { value: 100 });
    assert_eq!(system.message_cycle(), 2, "both spawns");
    world.send(a, Forward { to: b, amount: 3 });
    assert_eq!(system.message_cycle(), 1, "the forward only");
    assert_eq!(
        cells(&system)[1].value,
        100,
        "the Add waits for the next cycle"
    );
    assert_eq!(system.message_cycle(), 1, "the Add");
    assert_eq!(cells(&system)[1].value, 103);
    assert_eq!(system.message_cycle(), 0);
}

#[test]
fn process_all_messages_respects_the_cycle_bound() {
    let mut system = ActorSystem::new(Config {
        max_cycles_per_call: 1,
        ..Config::default()
    });
    system.register::<Cell>();
    system.register::<Observer>();
    let mut world = system.world();
    let a = world.spawn::<Cell, _>(SpawnCell { value: 0 });
    world.send(a, Forward { to: a, amount: 1 });
    let turn = system.process_all_messages();
    assert_eq!(
        (turn.handled, turn.cycles, turn.messages_left),
        (2, 1, true),
        "spawn and forward in one cycle; the add waits at the bound"
    );
    assert_eq!(system.stats().class("Cell").unwrap().queued, 1);
    let turn = system.process_all_messages();
    assert_eq!((turn.handled, turn.messages_left), (1, false));
    assert_eq!(system.current_turn(), 2);
    assert_eq!(cells(&system)[0].value, 1);
}

#[test]
fn delivery_is_fifo_per_sender() {
    let (mut system, mut world) = system();
    let a = world.spawn::<Cell, _>(SpawnCell { value: 0 });
    for i in 0..10_000u64 {
        world.send(a, Add { amount: i });
    }
    system.process_all_messages();
    assert_eq!(cells(&system)[0].log, (0..10_000).collect::<Vec<_>>());
}

#[test]
fn dead_and_stale_ids_miss_and_are_counted() {
    // One shard, so that the next spawn lands where the dead instance was.
    let mut system = ActorSystem::new(Config {
        shards: 1,
        ..Config::default()
    });
    system.register::<Cell>();
    system.register::<Observer>();
    let mut world = system.world();
    let a = world.spawn::<Cell, _>(SpawnCell { value: 1 });
    system.process_all_messages();
    world.send(a, Die);
    system.process_all_messages();
    assert_eq!(system.instance_count::<Cell>(), 0);

    // The instance number is reused with a new version.
    let b = world.spawn::<Cell, _>(SpawnCell { value: 2 });
    assert_eq!(b.as_raw().instance, a.as_raw().instance);
    assert_ne!(b.as_raw().version, a.as_raw().version);
    system.process_all_messages();

    world.send(a, Add { amount: 100 }); // stale: must not reach b
    let never = CellID(RawID {
        instance: 999,
        ..a.as_raw()
    });
    world.send(never, Add { amount: 100 }); // never spawned
    system.process_all_messages();
    assert_eq!(cells(&system)[0].value, 2);
    let stats = system.stats();
    assert_eq!(stats.class("Cell").unwrap().no_recipient, 2);
    assert_eq!(stats.lost(), 2);
}

#[test]
fn broadcast_reaches_each_instance_once_while_they_die_grow_and_spawn() {
    let (mut system, mut world) = system();
    let n = 3_000u64;
    for value in 0..n {
        world.spawn::<Cell, _>(SpawnCell { value });
    }
    system.process_all_messages();
    let everyone = world.local_broadcast::<Cell>();
    world.send(everyone, Churn);
    system.message_cycle();

    let survivors = cells(&system);
    let even: Vec<u64> = (0..n).filter(|v| v % 2 == 0).collect();
    assert_eq!(survivors.iter().map(|c| c.value).collect::<Vec<_>>(), even);
    for c in &survivors {
        assert_eq!(c.ticks, 1, "cell {} handled the broadcast once", c.value);
        let grown = if c.value.is_multiple_of(3) { 40 } else { 0 };
        assert_eq!(c.log.len(), grown);
        if grown > 0 {
            assert_eq!(
                c.log[39],
                c.value * 100 + 39,
                "the grown log survived re-compaction"
            );
        }
    }
    // Spawns (from every fifth cell, dead or alive) arrive in the next cycle
    // and did not get the broadcast.
    system.process_all_messages();
    let children: Vec<Cell> = cells(&system)
        .into_iter()
        .filter(|c| c.value >= 1_000_000)
        .collect();
    assert_eq!(children.len(), (0..n).filter(|v| v % 5 == 0).count());
    assert!(children.iter().all(|c| c.ticks == 0));
    assert_eq!(system.stats().lost(), 0);

    // A second broadcast still reaches everyone exactly once.
    world.send(everyone, Tick);
    system.process_all_messages();
    assert!(
        cells(&system)
            .iter()
            .all(|c| c.ticks == 1 + u32::from(c.value < 1_000_000))
    );
}

#[test]
fn growing_state_is_recompacted_into_larger_slots() {
    let (mut system, mut world) = system();
    let ids: Vec<CellID> = (0..50)
        .map(|value| world.spawn::<Cell, _>(SpawnCell { value }))
        .collect();
    system.process_all_messages();
    let slots_before = system.stats().class("Cell").unwrap().slot_bytes;
    for round in 0..20u64 {
        for (i, id) in ids.iter().enumerate() {
            world.send(
                *id,
                Log {
                    entries: (0..i as u64 + round).collect::<Vec<_>>().into(),
                },
            );
        }
        system.process_all_messages();
    }
    for c in cells(&system) {
        let expected: Vec<u64> = (0..20).flat_map(|round| 0..c.value + round).collect();
        assert_eq!(c.log, expected);
    }
    assert!(system.stats().class("Cell").unwrap().slot_bytes > slots_before);
}

#[test]
fn growth_by_a_single_message_and_death_leave_the_store_consistent() {
    let (mut system, mut world) = system();
    let ids: Vec<CellID> = (0..200)
        .map(|value| world.spawn::<Cell, _>(SpawnCell { value }))
        .collect();
    system.process_all_messages();
    for (i, id) in ids.iter().enumerate() {
        match i % 4 {
            0 => world.send(*id, Die),
            1 => world.send(
                *id,
                Log {
                    entries: vec![i as u64; 100].into(),
                },
            ),
            _ => world.send(*id, Add { amount: 1 }),
        }
    }
    system.process_all_messages();
    for id in &ids {
        world.send(*id, Add { amount: 1000 });
    }
    system.process_all_messages();
    let all = cells(&system);
    assert_eq!(all.len(), 150);
    for c in all {
        let i = ids.iter().position(|id| *id == c.id).expect("a spawned id") as u64;
        match i % 4 {
            0 => panic!("cell {i} died"),
            1 => {
                assert_eq!(c.value, i + 1000);
                assert_eq!(c.log.len(), 101);
                assert!(c.log[..100].iter().all(|v| *v == i));
            }
            _ => {
                assert_eq!(c.value, i + 1001);
                assert_eq!(c.log, vec![1, 1000]);
            }
        }
    }
    assert_eq!(system.stats().class("Cell").unwrap().no_recipient, 50);
}

// ---- traits ----

/// Things that watch values.
pub struct Watcher;
impl ActorTrait for Watcher {
    type ID = WatcherID;
}
impl From<CellID> for WatcherID {
    fn from(id: CellID) -> Self {
        WatcherID(id.0)
    }
}
impl From<ObserverID> for WatcherID {
    fn from(id: ObserverID) -> Self {
        WatcherID(id.0)
    }
}

#[derive(Compact, Clone)]
pub struct Notice {
    value: u64,
}

#[derive(Compact, Clone, Debug)]
pub struct Observer {
    id: ObserverID,
    seen: u64,
    handle: External<String>,
}

#[derive(Compact, Clone)]
pub struct SpawnObserver;

impl Actor for Observer {
    type ID = ObserverID;
    fn id(&self) -> ObserverID {
        self.id
    }
    fn setup(class: &mut ClassSetup<Self>) {
        class
            .spawner(|id, _: &SpawnObserver, _: &mut World| Observer {
                id,
                seen: 0,
                handle: External::new(format!("observer {id}")),
            })
            .recipient::<Notice>()
            .implements::<Watcher>();
    }
}

impl Recipient<Notice> for Observer {
    fn receive(&mut self, msg: &Notice, _: &mut World) -> Fate {
        assert!(
            self.handle.starts_with("observer"),
            "External state stays with its actor"
        );
        self.seen += msg.value;
        Fate::Live
    }
}

#[test]
fn trait_ids_dispatch_to_the_concrete_class_and_trait_broadcasts_reach_all_implementors() {
    let (mut system, mut world) = system();
    system
        .class::<Cell>()
        .handler(|c: &mut Cell, n: &Notice, _: &mut World| c.value += n.value);
    let cell = world.spawn::<Cell, _>(SpawnCell { value: 0 });
    let observers: Vec<ObserverID> = (0..3)
        .map(|_| world.spawn::<Observer, _>(SpawnObserver))
        .collect();
    system.process_all_messages();

    let as_watcher: WatcherID = observers[1].into();
    world.send(as_watcher, Notice { value: 5 });
    world.send(WatcherID::from(cell), Notice { value: 7 });
    system.process_all_messages();
    assert_eq!(cells(&system)[0].value, 7);
    let seen = |system: &ActorSystem| {
        let mut s = system.with_instances::<Observer, _>(|o| (o.id.0.instance, o.seen));
        s.sort();
        s.into_iter().map(|(_, seen)| seen).collect::<Vec<_>>()
    };
    assert_eq!(seen(&system), vec![0, 5, 0]);

    let all_watchers = world.local_broadcast_trait::<Watcher>();
    world.send(all_watchers, Notice { value: 100 });
    system.process_all_messages();
    assert_eq!(seen(&system), vec![100, 105, 100]);
    assert_eq!(cells(&system)[0].value, 107);
    assert_eq!(system.stats().lost(), 0);
}

#[test]
fn unknown_message_types_and_missing_handlers_are_counted() {
    let (mut system, mut world) = system();
    #[derive(Compact, Clone)]
    struct Nobody;
    let cell = world.spawn::<Cell, _>(SpawnCell { value: 0 });
    world.send(cell, Nobody);
    let observer = world.spawn::<Observer, _>(SpawnObserver);
    world.send(observer, Add { amount: 1 }); // Observer has no Add handler
    system.process_all_messages();
    let stats = system.stats();
    assert_eq!(stats.undeliverable, 1);
    assert_eq!(stats.class("Observer").unwrap().no_handler, 1);
    assert_eq!(stats.lost(), 2);
    assert!(stats.to_string().contains("Observer"));
}

#[test]
#[should_panic(expected = "already has a Handler for message")]
fn registering_two_handlers_for_one_message_is_refused() {
    let (mut system, _) = system();
    system
        .class::<Cell>()
        .handler(|_: &mut Cell, _: &Tick, _: &mut World| {});
}

#[test]
#[should_panic(expected = "is not registered")]
fn spawning_an_unregistered_class_panics_clearly() {
    let system = ActorSystem::new(Config::default());
    let mut world = system.world();
    world.spawn::<Cell, _>(SpawnCell { value: 0 });
}

#[test]
fn external_state_has_one_owner() {
    let e = External::new(vec![1, 2, 3]);
    let moved = e.clone();
    assert_eq!(moved.len(), 3);
    let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| e.len())).unwrap_err();
    let text = err.downcast_ref::<String>().unwrap();
    assert!(text.contains("exactly one owner"), "{text}");
    assert!(format!("{e:?}").contains("moved"));
}

#[test]
fn the_system_can_be_dropped_with_live_instances_and_queued_messages() {
    let (system, mut world) = system();
    for value in 0..100 {
        let id = world.spawn::<Observer, _>(SpawnObserver);
        world.send(id, Notice { value });
    }
    drop(system);
    drop(world);
}
