//! Panics in handlers and spawners are caught where they are called: the
//! system reports them, keeps ordinary messages while panicked, runs
//! essential handlers, and after `clear_panic` handles every kept message in
//! order. Each case runs on 1 and 2 threads and must give the same result.

#![allow(missing_docs)]

use kay::{
    Actor, ActorSystem, CVec, ClassSetup, Compact, Config, Fate, PanicPolicy, Reply, ReplyError,
    ReplyTo, Request, TypedID, World,
};

kay::typed_id!(pub CellID);

#[derive(Compact, Clone, Debug)]
pub struct Cell {
    id: CellID,
    total: u64,
    log: CVec<u64>,
    /// Panics when handling an `Add` of this amount (0: never).
    panic_on: u64,
    /// Panics in `Drop` if set.
    drop_panics: bool,
}

impl Drop for Cell {
    fn drop(&mut self) {
        if self.drop_panics && !std::thread::panicking() {
            self.drop_panics = false;
            panic!("cell {} panics in drop", self.id.as_raw());
        }
    }
}

#[derive(Compact, Clone, Debug)]
pub struct SpawnCell {
    panic_on: u64,
    drop_panics: bool,
    /// The spawner itself panics.
    refuse: bool,
}
#[derive(Compact, Clone, Debug)]
pub struct Add {
    amount: u64,
}
/// Grows the log by `n` entries, then panics if `then_panic`.
#[derive(Compact, Clone, Debug)]
pub struct Grow {
    n: u64,
    then_panic: bool,
}
#[derive(Compact, Clone, Debug)]
pub struct Die;
/// Forwards `Add { amount }` to `to`, `hops` times around.
#[derive(Compact, Clone, Debug)]
pub struct Forward {
    to: CellID,
    amount: u64,
    hops: u32,
}
/// Essential: reads the total even while panicked.
#[derive(Compact, Clone, Debug)]
pub struct Inspect {
    to: ReplyTo<u64>,
}
impl Request for Inspect {
    type Answer = u64;
    fn reply_to(&self) -> ReplyTo<u64> {
        self.to
    }
}
/// Not essential: the same question.
#[derive(Compact, Clone, Debug)]
pub struct Ask {
    to: ReplyTo<u64>,
}
impl Request for Ask {
    type Answer = u64;
    fn reply_to(&self) -> ReplyTo<u64> {
        self.to
    }
}

impl Actor for Cell {
    type ID = CellID;
    fn id(&self) -> CellID {
        self.id
    }
    fn setup(class: &mut ClassSetup<Self>) {
        class
            .spawner(|id, s: &SpawnCell, _: &mut World| {
                assert!(!s.refuse, "the spawner refuses");
                Cell {
                    id,
                    total: 0,
                    log: CVec::new(),
                    panic_on: s.panic_on,
                    drop_panics: s.drop_panics,
                }
            })
            .handler(|c: &mut Cell, m: &Add, _: &mut World| {
                assert_ne!(m.amount, c.panic_on, "cell panics as told");
                c.total += m.amount;
            })
            .handler(|c: &mut Cell, m: &Grow, _: &mut World| {
                c.log.extend(0..m.n);
                assert!(!m.then_panic, "cell panics after growing");
            })
            .handler(|_: &mut Cell, _: &Die, _: &mut World| Fate::Die)
            .handler(|c: &mut Cell, m: &Forward, world: &mut World| {
                world.send(m.to, Add { amount: m.amount });
                if m.hops > 0 {
                    world.send(
                        c.id,
                        Forward {
                            hops: m.hops - 1,
                            ..*m
                        },
                    );
                }
            })
            .essential_request_handler(|c: &mut Cell, m: &Inspect, world: &mut World| {
                world.reply(m.to, c.total)
            })
            .request_handler(|c: &mut Cell, m: &Ask, world: &mut World| world.reply(m.to, c.total))
            .debug_state();
    }
}

fn system(threads: usize, policy: PanicPolicy) -> (ActorSystem, World) {
    let mut system = ActorSystem::new(Config {
        threads,
        shards: 4,
        ..Config::default()
    });
    system.register::<Cell>();
    system.class::<Cell>().on_panic(policy);
    system.debug_message::<Add>();
    let world = system.world();
    (system, world)
}

fn spawn(world: &mut World, panic_on: u64) -> CellID {
    world.spawn::<Cell, _>(SpawnCell {
        panic_on,
        drop_panics: false,
        refuse: false,
    })
}

fn totals(system: &ActorSystem) -> Vec<(u32, u64, usize)> {
    let mut totals =
        system.with_instances::<Cell, _>(|c| (c.id.as_raw().instance, c.total, c.log.len()));
    totals.sort();
    totals
}

fn ask(system: &mut ActorSystem, world: &mut World, cell: CellID) -> Result<u64, ReplyError> {
    let (to, reply): (_, Reply<u64>) = world.request();
    world.send(cell, Ask { to });
    system.block_on(reply)
}

/// The scenario: a panic in the middle of busy traffic, then the
/// caller carries on. Nothing is lost, nothing runs twice: after
/// `clear_panic` the total is exact on any thread count.
#[test]
fn after_a_panic_every_kept_message_is_handled_once_in_order() {
    let mut results = Vec::new();
    for threads in [1, 2] {
        let (mut system, mut world) = system(threads, PanicPolicy::Stop);
        let cells: Vec<CellID> = (0..40).map(|i| spawn(&mut world, 1000 + i)).collect();
        system.process_all_messages();
        // Each cell forwards to the next, 50 hops; one `Add` panics.
        for (i, &cell) in cells.iter().enumerate() {
            let to = cells[(i + 1) % cells.len()];
            world.send(
                cell,
                Forward {
                    to,
                    amount: 1,
                    hops: 50,
                },
            );
        }
        world.send(cells[7], Add { amount: 1007 });
        for round in 0..20 {
            world.send(cells[round % 40], Add { amount: 10 });
        }
        system.process_all_messages();
        assert!(system.is_panicked());
        let report = system.panic_report().expect("a report").clone();
        assert_eq!(report.actor, cells[7].as_raw());
        assert!(report.class.ends_with("Cell"), "{report}");
        assert!(report.message.ends_with("Add"), "{report}");
        assert!(report.text.contains("cell panics as told"), "{report}");
        let location = report.location.as_deref().unwrap_or_default();
        assert!(location.contains("panics.rs"), "{report}");
        assert_eq!(report.policy, PanicPolicy::Stop);
        assert!(
            report
                .actor_debug
                .as_deref()
                .unwrap()
                .contains("panic_on: 1007")
        );
        assert_eq!(
            report.message_debug.as_deref(),
            Some("Add { amount: 1007 }")
        );
        assert!(report.cycle >= 1);
        let kept = system.stats().class("Cell").unwrap().kept;
        assert!(kept > 0, "messages are kept while panicked");

        // Essential handlers still run; ordinary requests say why they fail.
        let (to, reply) = world.request();
        world.send(cells[0], Inspect { to });
        let inspected = system.block_on(reply).expect("essential handlers run");
        assert_eq!(
            ask(&mut system, &mut world, cells[0]),
            Err(ReplyError::SystemPanicked)
        );

        let reports = system.clear_panic();
        assert_eq!(reports.len(), 1);
        system.process_all_messages();
        assert!(!system.is_panicked());
        let stats = system.stats();
        let cell = stats.class("Cell").unwrap();
        assert_eq!(cell.kept, 0);
        assert_eq!(stats.lost(), 0, "{stats:?}");
        // 40 cells x 51 forwards x 1 + 20 x 10; the panicking Add is not retried.
        let sum: u64 = totals(&system).iter().map(|t| t.1).sum();
        assert_eq!(sum, 40 * 51 + 200, "{threads} threads");
        assert!(inspected <= totals(&system)[0].1);
        results.push(totals(&system));
    }
    assert_eq!(results[0], results[1], "the same on 1 and 2 threads");
}

/// A request to a dead actor resolves as soon as the runtime drops it, even
/// while other actors keep the system busy.
#[test]
fn a_request_to_a_dead_actor_fails_at_once_on_a_busy_system() {
    for threads in [1, 2] {
        let (mut system, mut world) = system(threads, PanicPolicy::Stop);
        let busy = spawn(&mut world, 0);
        let dead = spawn(&mut world, 0);
        system.process_all_messages();
        world.send(dead, Die);
        // `busy` forwards to itself a million times: the system never idles.
        world.send(
            busy,
            Forward {
                to: busy,
                amount: 1,
                hops: 1_000_000,
            },
        );
        assert_eq!(
            ask(&mut system, &mut world, dead),
            Err(ReplyError::NoRecipient)
        );
        let stale = CellID::from_raw(kay::RawID::new(
            dead.as_raw().type_id,
            dead.as_raw().instance,
            dead.as_raw().machine,
            dead.as_raw().version.wrapping_add(7),
        ));
        assert_eq!(
            ask(&mut system, &mut world, stale),
            Err(ReplyError::NoRecipient)
        );
    }
}

/// A request whose handler panics fails with `HandlerPanicked`.
#[test]
fn a_request_whose_handler_panics_fails_at_once() {
    kay::typed_id!(pub OracleID);
    #[derive(Compact, Clone)]
    pub struct Oracle {
        id: OracleID,
    }
    #[derive(Compact, Clone)]
    pub struct SpawnOracle;
    impl Actor for Oracle {
        type ID = OracleID;
        fn id(&self) -> OracleID {
            self.id
        }
        fn setup(class: &mut ClassSetup<Self>) {
            class
                .spawner(|id, _: &SpawnOracle, _: &mut World| Oracle { id })
                .request_handler(|_: &mut Oracle, m: &Ask, world: &mut World| {
                    let answer = "unknown".parse::<u64>().expect("the oracle does not know");
                    world.reply(m.to, answer)
                })
                .on_panic(PanicPolicy::DropMessage);
        }
    }
    let mut system = ActorSystem::new(Config::default());
    system.register::<Oracle>();
    let mut world = system.world();
    let oracle = world.spawn::<Oracle, _>(SpawnOracle);
    let (to, reply) = world.request::<u64>();
    world.send(oracle, Ask { to });
    assert_eq!(system.block_on(reply), Err(ReplyError::HandlerPanicked));
    assert!(!system.is_panicked(), "DropMessage carries on");
    assert_eq!(system.panic_count(), 1);
}

/// A handler grows its state past its slot, then panics: the instance is
/// re-compacted like after any handler, and later deaths that move other
/// instances around keep every instance intact.
#[test]
fn growth_then_panic_leaves_the_store_sound() {
    for policy in [PanicPolicy::Stop, PanicPolicy::DropMessage] {
        for threads in [1, 2] {
            let (mut system, mut world) = system(threads, policy);
            let cells: Vec<CellID> = (0..64).map(|_| spawn(&mut world, 0)).collect();
            system.process_all_messages();
            for &cell in &cells[..8] {
                world.send(
                    cell,
                    Grow {
                        n: 300,
                        then_panic: true,
                    },
                );
            }
            system.process_all_messages();
            // Under `Stop` the rest of a shard's cycle is kept after its
            // panic, and panics again once resumed: clear until done.
            let mut panics = 0;
            loop {
                let reports = system.clear_panic();
                if reports.is_empty() {
                    break;
                }
                panics += reports.len();
                system.process_all_messages();
            }
            assert_eq!(panics, 8, "{policy:?}");
            // Deaths move the last instances into the holes.
            for &cell in &cells[8..40] {
                world.send(cell, Die);
            }
            for &cell in &cells[..8] {
                world.send(cell, Add { amount: 3 });
            }
            system.process_all_messages();
            let totals = totals(&system);
            assert_eq!(totals.len(), 32);
            let grown: Vec<_> = totals.iter().filter(|t| t.2 == 300).collect();
            assert_eq!(grown.len(), 8, "{totals:?}");
            assert!(grown.iter().all(|t| t.1 == 3));
            let log_ok = system
                .with_instances::<Cell, _>(|c| c.log.iter().copied().eq(0..c.log.len() as u64));
            assert!(log_ok.iter().all(|ok| *ok));
        }
    }
}

/// Many panics in long lanes (handled in prefetching batches, with panics
/// at every position of a batch): every other message is handled once, in
/// order, and the policy applies to exactly the faulting instances.
#[test]
fn many_panics_in_batched_lanes() {
    for policy in [PanicPolicy::DropMessage, PanicPolicy::RemoveInstance] {
        let mut results = Vec::new();
        for threads in [1, 2] {
            let (mut system, mut world) = system(threads, policy);
            // Even cells panic on 5.
            let cells: Vec<CellID> = (0..1000)
                .map(|i| spawn(&mut world, if i % 2 == 0 { 5 } else { 0 }))
                .collect();
            system.process_all_messages();
            for amount in [1, 5, 2] {
                for &cell in &cells {
                    world.send(cell, Add { amount });
                }
            }
            system.process_all_messages();
            assert!(!system.is_panicked());
            assert_eq!(system.panic_count(), 500, "{policy:?}");
            let totals = totals(&system);
            let expected: Vec<u64> = (0..1000)
                .filter_map(|i| match (i % 2, policy) {
                    (0, PanicPolicy::RemoveInstance) => None,
                    (0, _) => Some(3),
                    _ => Some(8),
                })
                .collect();
            let mut got: Vec<u64> = totals.iter().map(|t| t.1).collect();
            got.sort();
            let mut want = expected.clone();
            want.sort();
            assert_eq!(got, want, "{policy:?} on {threads} threads");
            results.push(totals);
        }
        assert_eq!(
            results[0], results[1],
            "{policy:?}: same on 1 and 2 threads"
        );
    }
}

/// A broadcast in which instances panic reaches every other instance once;
/// with `RemoveInstance` the faulting ones are gone.
#[test]
fn a_panic_in_the_middle_of_a_broadcast_scan() {
    for policy in [
        PanicPolicy::Stop,
        PanicPolicy::DropMessage,
        PanicPolicy::RemoveInstance,
    ] {
        let mut results = Vec::new();
        for threads in [1, 2] {
            let (mut system, mut world) = system(threads, policy);
            // Every 10th cell panics on `Add { amount: 5 }`.
            for i in 0..200 {
                spawn(&mut world, if i % 10 == 3 { 5 } else { 0 });
            }
            system.process_all_messages();
            let everyone = world.local_broadcast::<Cell>();
            world.send(everyone, Add { amount: 5 });
            // Some growth in the same scan (re-compaction while scanning).
            world.send(
                everyone,
                Grow {
                    n: 20,
                    then_panic: false,
                },
            );
            system.process_all_messages();
            assert_eq!(system.panic_count(), 20, "{policy:?}");
            system.clear_panic();
            system.process_all_messages();
            let totals = totals(&system);
            let expected = if policy == PanicPolicy::RemoveInstance {
                180
            } else {
                200
            };
            assert_eq!(totals.len(), expected, "{policy:?}");
            assert_eq!(totals.iter().filter(|t| t.1 == 5).count(), 180);
            assert!(
                totals.iter().all(|t| t.2 == 20),
                "{policy:?}: every cell grew once"
            );
            results.push(totals);
        }
        assert_eq!(results[0], results[1], "{policy:?}");
    }
}

/// A panicking spawner creates nothing; its ID gets `no_recipient`.
#[test]
fn a_panic_in_a_spawner() {
    for threads in [1, 2] {
        let (mut system, mut world) = system(threads, PanicPolicy::Stop);
        let refused = world.spawn::<Cell, _>(SpawnCell {
            panic_on: 0,
            drop_panics: false,
            refuse: true,
        });
        let fine = spawn(&mut world, 0);
        system.process_all_messages();
        let report = system.panic_report().unwrap().clone();
        assert_eq!(report.actor, refused.as_raw());
        assert!(report.message.ends_with("SpawnCell"));
        assert!(report.text.contains("the spawner refuses"));
        system.clear_panic();
        system.process_all_messages();
        world.send(refused, Add { amount: 1 });
        world.send(fine, Add { amount: 1 });
        system.process_all_messages();
        assert_eq!(system.instance_count::<Cell>(), 1);
        assert_eq!(system.stats().class("Cell").unwrap().no_recipient, 1);
    }
}

/// A panic in an actor's `Drop` when it dies is reported; the instance is
/// gone and the others are intact.
#[test]
fn a_panic_in_drop_when_an_actor_dies() {
    for threads in [1, 2] {
        let (mut system, mut world) = system(threads, PanicPolicy::DropMessage);
        let cells: Vec<CellID> = (0..10)
            .map(|i| {
                world.spawn::<Cell, _>(SpawnCell {
                    panic_on: 0,
                    drop_panics: i == 2,
                    refuse: false,
                })
            })
            .collect();
        system.process_all_messages();
        world.send(cells[2], Die);
        world.send(cells[3], Add { amount: 4 });
        system.process_all_messages();
        assert_eq!(system.panic_count(), 1);
        assert!(
            system
                .panic_report()
                .unwrap()
                .text
                .contains("panics in drop")
        );
        assert_eq!(system.instance_count::<Cell>(), 9);
        assert_eq!(ask(&mut system, &mut world, cells[3]), Ok(4));
    }
}

/// A panic on a helper thread while the other shards are mid-cycle: the
/// others finish the cycle, so the outcome is the same on every thread count.
#[test]
fn a_panic_on_a_helper_thread_while_other_shards_run() {
    let mut results = Vec::new();
    for threads in [1, 2, 4] {
        let mut system = ActorSystem::new(Config {
            threads,
            shards: 8,
            ..Config::default()
        });
        system.register::<Cell>();
        let mut world = system.world();
        let cells: Vec<CellID> = (0..400)
            .map(|i| spawn(&mut world, if i == 301 { 2 } else { 0 }))
            .collect();
        system.process_all_messages();
        for &cell in &cells {
            world.send(cell, Add { amount: 2 });
            world.send(cell, Add { amount: 3 });
        }
        system.process_all_messages();
        assert_eq!(system.panic_count(), 1);
        let before_clear = totals(&system);
        system.clear_panic();
        system.process_all_messages();
        results.push((before_clear, totals(&system)));
    }
    assert_eq!(results[0], results[1]);
    assert_eq!(results[0], results[2]);
    let sum: u64 = results[0].1.iter().map(|t| t.1).sum();
    assert_eq!(sum, 400 * 5 - 2);
}

/// With the macros, reports name the message `Class::method`, show its
/// arguments (those with `Debug`) and the actor (if it has `Debug`).
#[test]
fn macro_actors_get_readable_reports() {
    use kay::prelude::*;

    #[derive(Compact, Clone, Debug)]
    pub struct Account {
        id: AccountID,
        balance: i64,
    }

    /// No `Debug`: shown as `..`.
    #[derive(Compact, Clone)]
    pub struct Memo {
        code: u32,
    }

    #[kay::actor]
    impl Account {
        pub fn spawn_open(id: AccountID, balance: i64, _: &mut World) -> Self {
            Account { id, balance }
        }
        pub fn withdraw(&mut self, amount: i64, memo: Memo, _: &mut World) {
            assert!(
                amount <= self.balance,
                "overdraft of {amount} ({})",
                memo.code
            );
            self.balance -= amount;
        }
    }

    let mut system = ActorSystem::new(Config::default());
    system.register::<Account>();
    let mut world = system.world();
    let account = AccountID::spawn_open(5, &mut world);
    account.withdraw(50, Memo { code: 7 }, &mut world);
    system.process_all_messages();
    let report = system.panic_report().expect("a report");
    assert_eq!(report.message, "Account::withdraw");
    assert_eq!(
        report.message_debug.as_deref(),
        Some("withdraw(amount: 50, memo: ..)")
    );
    assert!(report.text.contains("overdraft of 50 (7)"), "{report}");
    assert_eq!(
        report.actor_debug.as_deref(),
        Some(format!("Account {{ id: {account:?}, balance: 5 }}").as_str())
    );
    assert_eq!(
        system
            .stats()
            .class("Account")
            .unwrap()
            .handled("Account::withdraw"),
        0
    );
}

kay::typed_id!(pub FuseID);

/// A class whose handler only panics (`!` under edition 2024's fallback).
#[derive(Compact, Clone)]
pub struct Fuse {
    id: FuseID,
}
#[derive(Compact, Clone)]
pub struct SpawnFuse;
#[derive(Compact, Clone)]
pub struct Blow;

impl Actor for Fuse {
    type ID = FuseID;
    fn id(&self) -> FuseID {
        self.id
    }
    fn setup(class: &mut ClassSetup<Self>) {
        class
            .spawner(|id, _: &SpawnFuse, _: &mut World| Fuse { id })
            .handler(|_: &mut Fuse, _: &Blow, _: &mut World| panic!("the fuse blows"))
            .on_panic(PanicPolicy::DropMessage);
    }
}

/// A handler made of a `panic!` alone registers like any other.
#[test]
fn a_handler_that_only_panics_can_be_registered() {
    let mut system = ActorSystem::new(Config::default());
    system.register::<Fuse>();
    let mut world = system.world();
    let fuse = world.spawn::<Fuse, _>(SpawnFuse);
    world.send(fuse, Blow);
    system.turn();
    assert_eq!(system.panic_count(), 1);
    assert_eq!(system.panic_report().unwrap().text, "the fuse blows");
}
