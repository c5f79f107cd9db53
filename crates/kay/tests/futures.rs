//! Futures on one machine: map-reduce over broadcasts (`Reply::reduce`,
//! `Reply::collect`), continuations in handlers (`Reply::then_send`),
//! timeouts in turns, late answers counted, and a `Reply` awaited from a
//! tokio task while another thread runs turns.

#![allow(missing_docs)]

use kay::{Actor, ActorSystem, ClassSetup, Compact, Config, Continue, ReplyError, ReplyTo, World};

kay::typed_id!(pub CounterID);
kay::typed_id!(pub AskerID);

/// Answers `Count` with its count; `Hold` requests are kept unanswered
/// until `Release`.
#[derive(Compact, Clone)]
pub struct Counter {
    id: CounterID,
    count: u64,
    held: Option<ReplyTo<u64>>,
}

#[derive(Compact, Clone)]
pub struct Count {
    reply: ReplyTo<u64>,
}

impl kay::Request for Count {
    type Answer = u64;
    fn reply_to(&self) -> ReplyTo<u64> {
        self.reply
    }
}

/// A request its handler answers only on `Release`.
#[derive(Compact, Clone)]
pub struct Hold {
    reply: ReplyTo<u64>,
}

impl kay::Request for Hold {
    type Answer = u64;
    fn reply_to(&self) -> ReplyTo<u64> {
        self.reply
    }
}

#[derive(Compact, Clone)]
pub struct Release;

/// Asks for the count as a [`kay::Sum`]: answers combine on each machine.
#[derive(Compact, Clone)]
pub struct Total {
    reply: ReplyTo<kay::Sum<u64>>,
}

impl kay::Request for Total {
    type Answer = kay::Sum<u64>;
    fn reply_to(&self) -> ReplyTo<kay::Sum<u64>> {
        self.reply
    }
}

/// A user's own combining answer: how many answered, and their total.
#[derive(Compact, Clone, Copy, Debug, PartialEq)]
pub struct Tally {
    count: u64,
    total: u64,
}

impl kay::Combine for Tally {
    fn combine(&mut self, other: Tally) {
        self.count += other.count;
        self.total += other.total;
    }
}

#[derive(Compact, Clone)]
pub struct Census {
    reply: ReplyTo<Tally>,
}

impl kay::Request for Census {
    type Answer = Tally;
    fn reply_to(&self) -> ReplyTo<Tally> {
        self.reply
    }
}

#[derive(Compact, Clone)]
pub struct Die;

#[derive(Compact, Clone)]
pub struct Nop;

impl Actor for Counter {
    type ID = CounterID;
    fn id(&self) -> CounterID {
        self.id
    }
    fn setup(class: &mut ClassSetup<Self>) {
        class
            .spawner(|id, count: &u64, _: &mut World| Counter {
                id,
                count: *count,
                held: None,
            })
            .request_handler(|c: &mut Counter, m: &Count, world: &mut World| {
                world.reply(m.reply, c.count)
            })
            .request_handler(|c: &mut Counter, m: &Hold, _: &mut World| c.held = Some(m.reply))
            .request_handler(|c: &mut Counter, m: &Total, world: &mut World| {
                world.reply(m.reply, kay::Sum(c.count))
            })
            .request_handler(|c: &mut Counter, m: &Census, world: &mut World| {
                let tally = Tally {
                    count: 1,
                    total: c.count,
                };
                world.reply(m.reply, tally)
            })
            .handler(|c: &mut Counter, _: &Release, world: &mut World| {
                if let Some(reply) = c.held.take() {
                    world.reply(reply, c.count);
                }
            })
            .handler(|_: &mut Counter, _: &Die, _: &mut World| kay::Fate::Die)
            .handler(|_: &mut Counter, _: &Nop, _: &mut World| {});
    }
}

/// Asks counters from its handler and keeps what the continuations bring.
#[derive(Compact, Clone)]
pub struct Asker {
    id: AskerID,
    got: Option<u64>,
    failed: Option<ReplyError>,
    total: Option<u64>,
}

/// Asks one counter (`Counted` brings the answer).
#[derive(Compact, Clone)]
pub struct AskOne {
    counter: CounterID,
    timeout: u64,
}

#[derive(Compact, Clone)]
pub struct Counted {
    answered: bool,
    count: Option<u64>,
    error: Option<ReplyError>,
}

impl Continue<u64> for Counted {
    fn answered(&mut self, answer: Result<u64, ReplyError>) {
        self.answered = true;
        match answer {
            Ok(count) => self.count = Some(count),
            Err(error) => self.error = Some(error),
        }
    }
}

impl Actor for Asker {
    type ID = AskerID;
    fn id(&self) -> AskerID {
        self.id
    }
    fn setup(class: &mut ClassSetup<Self>) {
        class
            .spawner(|id, _: &(), _: &mut World| Asker {
                id,
                got: None,
                failed: None,
                total: None,
            })
            .handler(|a: &mut Asker, m: &AskOne, world: &mut World| {
                let (reply_to, reply) = world.request_to::<u64>(m.counter);
                world.send(m.counter, Hold { reply: reply_to });
                let reply = if m.timeout > 0 {
                    reply.timeout(m.timeout, world)
                } else {
                    reply
                };
                let counted = Counted {
                    answered: false,
                    count: None,
                    error: None,
                };
                reply.then_send(a.id, counted, world);
            })
            .handler(|a: &mut Asker, m: &Counted, _: &mut World| {
                assert!(m.answered, "a continuation always carries its answer");
                a.got = m.count.or(a.got);
                a.failed = m.error.clone().or(a.failed.clone());
            });
    }
}

fn system(threads: usize) -> ActorSystem {
    let mut system = ActorSystem::new(Config {
        threads,
        ..Config::default()
    });
    system.register::<Counter>();
    system.register::<Asker>();
    system
}

fn count(world: &mut World, to: CounterID) -> kay::Reply<u64> {
    let (reply_to, reply) = world.request_to::<u64>(to);
    world.send(to, Count { reply: reply_to });
    reply
}

#[test]
fn a_broadcast_request_reduces_and_collects_every_answer() {
    for threads in [1, 2] {
        let mut system = system(threads);
        let mut world = system.world();
        let n = 100_000u64;
        for i in 0..n {
            world.spawn::<Counter, _>(i);
        }
        system.turn();
        let all = world.local_broadcast::<Counter>();
        let sum = system.block_on(count(&mut world, all).reduce(0, |sum, n| sum + n));
        assert_eq!(sum, Ok(n * (n - 1) / 2), "{threads} threads");
        let every = system
            .block_on(count(&mut world, all).collect::<Vec<_>>())
            .expect("answers");
        assert_eq!(every.len() as u64, n);
        // Into any collection: a set (every number once).
        let set = system
            .block_on(count(&mut world, all).collect::<std::collections::BTreeSet<_>>())
            .expect("answers");
        assert!(set.iter().copied().eq(0..n), "{threads} threads");
        // Awaited directly, a broadcast request says how to get its answers.
        let direct = system.block_on(count(&mut world, all));
        assert_eq!(direct, Err(ReplyError::Broadcast));
        // A request to one instance collects into one answer.
        let one = world.spawn::<Counter, _>(5u64);
        system.turn();
        assert_eq!(
            system.block_on(count(&mut world, one).collect()),
            Ok(vec![5])
        );
    }
}

#[test]
fn a_broadcast_request_to_no_instances_resolves_empty() {
    let mut system = system(1);
    let mut world = system.world();
    let all = world.local_broadcast::<Counter>();
    let answers = system.block_on(count(&mut world, all).collect());
    assert_eq!(answers, Ok(vec![]));
    let sum = system.block_on(count(&mut world, all).reduce(7, |a, b| a + b));
    assert_eq!(sum, Ok(7));
}

#[test]
fn a_request_times_out_on_its_turn_and_its_late_answer_is_counted() {
    let mut system = system(1);
    let mut world = system.world();
    let counter = world.spawn::<Counter, _>(3u64);
    system.turn(); // turn 1
    let (reply_to, reply) = world.request_to::<u64>(counter);
    world.send(counter, Hold { reply: reply_to });
    let mut reply = std::pin::pin!(reply.timeout(3, &world));
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    for turn in 2..=3 {
        system.turn();
        assert!(reply.as_mut().poll(&mut cx).is_pending(), "turn {turn}");
    }
    system.turn(); // turn 4 = 1 + 3: times out at its end
    assert_eq!(
        reply.as_mut().poll(&mut cx),
        std::task::Poll::Ready(Err(ReplyError::TimedOut { turn: 4 }))
    );
    // The answer comes after all: counted, not delivered.
    world.send(counter, Release);
    system.turn();
    assert_eq!(system.stats().late_replies, 1);
}

#[test]
fn the_default_timeout_comes_from_the_config() {
    let mut system = ActorSystem::new(Config {
        request_timeout_turns: 5,
        ..Config::default()
    });
    system.register::<Counter>();
    let mut world = system.world();
    let counter = world.spawn::<Counter, _>(3u64);
    system.turn();
    let (reply_to, reply) = world.request_to::<u64>(counter);
    world.send(counter, Hold { reply: reply_to });
    // A timer keeps the system busy (a quiet one fails waiting requests
    // with `NoReply` at once), so block_on runs turns: the held request
    // times out at the end of turn 6 (sent after turn 1), not sooner.
    world.send_every(1, counter, Nop);
    assert_eq!(
        system.block_on(reply),
        Err(ReplyError::TimedOut { turn: 6 })
    );
    assert_eq!(system.current_turn(), 6);
}

#[test]
fn continuations_bring_answers_and_errors_to_handlers() {
    for threads in [1, 2] {
        let mut system = system(threads);
        let mut world = system.world();
        let counter = world.spawn::<Counter, _>(9u64);
        let asker = world.spawn::<Asker, _>(());
        let dead = world.spawn::<Counter, _>(1u64);
        world.send(dead, Die);
        system.turn();
        world.send(
            asker,
            AskOne {
                counter,
                timeout: 0,
            },
        );
        system.turn();
        world.send(counter, Release);
        system.turn();
        let got = system.with_instances::<Asker, _>(|a| (a.got, a.failed.clone()));
        assert_eq!(got, vec![(Some(9), None)], "{threads} threads");

        // A dead recipient: the continuation carries the error.
        world.send(
            asker,
            AskOne {
                counter: dead,
                timeout: 0,
            },
        );
        system.turn();
        let failed = system.with_instances::<Asker, _>(|a| a.failed.clone());
        assert_eq!(failed, vec![Some(ReplyError::NoRecipient)]);

        // A timeout: the continuation carries that too.
        let slow = world.spawn::<Counter, _>(2u64);
        system.turn();
        world.send(
            asker,
            AskOne {
                counter: slow,
                timeout: 2,
            },
        );
        let asked = system.current_turn() + 1;
        for _ in 0..4 {
            system.turn();
        }
        let failed = system.with_instances::<Asker, _>(|a| a.failed.clone());
        assert_eq!(failed, vec![Some(ReplyError::TimedOut { turn: asked + 2 })]);
    }
}

#[test]
fn a_reply_is_awaited_from_a_tokio_task_while_another_thread_runs_turns() {
    let (replies_tx, replies_rx) = std::sync::mpsc::channel::<kay::Reply<u64>>();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let runner = {
        let done = std::sync::Arc::clone(&done);
        std::thread::spawn(move || {
            let mut system = system(2);
            let mut world = system.world();
            let counters: Vec<CounterID> = (0..10)
                .map(|i| world.spawn::<Counter, _>(i * 10u64))
                .collect();
            system.turn();
            for &counter in &counters {
                replies_tx.send(count(&mut world, counter)).unwrap();
            }
            let all = world.local_broadcast::<Counter>();
            let (reply_to, reply) = world.request_to::<u64>(all);
            world.send(all, Count { reply: reply_to });
            replies_tx.send(reply).unwrap();
            drop(replies_tx);
            while !done.load(std::sync::atomic::Ordering::Acquire) {
                system.turn();
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        })
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let answers = runtime.block_on(async move {
        let mut answers = Vec::new();
        let replies: Vec<_> = replies_rx.iter().collect();
        let mut replies = replies.into_iter();
        let broadcast = replies.next_back().unwrap();
        for reply in replies {
            answers.push(tokio::spawn(reply).await.unwrap().unwrap());
        }
        let sum = tokio::spawn(broadcast.reduce(0, |a, b| a + b))
            .await
            .unwrap()
            .unwrap();
        (answers, sum)
    });
    done.store(true, std::sync::atomic::Ordering::Release);
    runner.join().unwrap();
    assert_eq!(answers.0, (0..10).map(|i| i * 10).collect::<Vec<u64>>());
    assert_eq!(answers.1, 450);
}

#[test]
fn answers_that_combine_are_one_value_per_machine() {
    for threads in [1, 2] {
        let mut system = system(threads);
        system.register_combine::<Tally>();
        let mut world = system.world();
        let n = 10_000u64;
        for i in 0..n {
            world.spawn::<Counter, _>(i);
        }
        system.turn();
        let all = world.local_broadcast::<Counter>();
        let (reply_to, reply) = world.request_to(all);
        world.send(all, Total { reply: reply_to });
        let sum = system.block_on(reply.reduce(kay::Sum(0), |a, b| a + b));
        assert_eq!(sum, Ok(kay::Sum(n * (n - 1) / 2)));
        // Collected: one combined value for this (the only) machine.
        let (reply_to, reply) = world.request_to(all);
        world.send(all, Total { reply: reply_to });
        let partials = system.block_on(reply.collect());
        assert_eq!(partials, Ok(vec![kay::Sum(n * (n - 1) / 2)]));
        // A user's own type, registered.
        let (reply_to, reply) = world.request_to(all);
        world.send(all, Census { reply: reply_to });
        let tally = system.block_on(reply.collect());
        assert_eq!(
            tally,
            Ok(vec![Tally {
                count: n,
                total: n * (n - 1) / 2
            }])
        );
    }
}

// A request to every implementor of an actor trait (written with the
// macros): both classes' instances answer, combined per machine.

#[kay::actor_trait]
pub trait Weighed {
    fn weight(&mut self, world: &mut World) -> kay::Sum<u64>;
}

#[derive(Compact, Clone)]
pub struct Crate {
    id: CrateID,
    kg: u64,
}

#[kay::actor]
impl Crate {
    pub fn spawn(id: CrateID, kg: u64, _: &mut World) -> Crate {
        Crate { id, kg }
    }
}

#[kay::implements]
impl Weighed for Crate {
    fn weight(&mut self, _: &mut World) -> kay::Sum<u64> {
        kay::Sum(self.kg)
    }
}

#[derive(Compact, Clone)]
pub struct Barrel {
    id: BarrelID,
    litres: u64,
}

#[kay::actor]
impl Barrel {
    pub fn spawn(id: BarrelID, litres: u64, _: &mut World) -> Barrel {
        Barrel { id, litres }
    }
}

#[kay::implements]
impl Weighed for Barrel {
    fn weight(&mut self, _: &mut World) -> kay::Sum<u64> {
        kay::Sum(self.litres * 2)
    }
}

#[test]
fn a_request_to_every_implementor_of_a_trait_is_reduced() {
    let mut system = system(2);
    system.register::<Crate>();
    system.register::<Barrel>();
    let mut world = system.world();
    for kg in 1..=100 {
        CrateID::spawn(kg, &mut world);
        BarrelID::spawn(kg, &mut world);
    }
    system.turn();
    let all = WeighedID::local_broadcast(&mut world);
    let total = system.block_on(all.weight(&mut world).reduce(kay::Sum(0), |a, b| a + b));
    assert_eq!(total, Ok(kay::Sum(5050 * 3)));
}

// A continuation into an actor written with the macros: `#[message]`
// handles the continuation's message type as it is.

#[derive(Compact, Clone)]
pub struct Reading {
    value: Option<u64>,
}

impl Continue<u64> for Reading {
    fn answered(&mut self, answer: Result<u64, ReplyError>) {
        self.value = answer.ok();
    }
}

#[derive(Compact, Clone)]
pub struct Meter {
    id: MeterID,
    readings: kay::CVec<u64>,
}

#[kay::actor]
impl Meter {
    pub fn spawn(id: MeterID, _: &mut World) -> Meter {
        Meter {
            id,
            readings: kay::CVec::new(),
        }
    }

    /// Asks `counter` without waiting; the answer comes back as a `Reading`.
    pub fn read(&mut self, counter: CounterID, world: &mut World) {
        let (reply_to, reply) = world.request_to::<u64>(counter);
        world.send(counter, Count { reply: reply_to });
        reply.then_send(self.id, Reading { value: None }, world);
    }

    #[message]
    pub fn reading(&mut self, reading: &Reading, _: &mut World) {
        self.readings.extend(reading.value);
    }
}

#[test]
fn a_continuation_reaches_a_macro_actor_through_a_message_handler() {
    let mut system = system(2);
    system.register::<Meter>();
    let mut world = system.world();
    let counters: Vec<CounterID> = (0..5u64)
        .map(|n| world.spawn::<Counter, _>(n * 100))
        .collect();
    let meter = MeterID::spawn(&mut world);
    system.turn();
    for &counter in &counters {
        meter.read(counter, &mut world);
    }
    system.turn();
    let mut readings = system.with_instances::<Meter, _>(|m| m.readings.to_vec())[0].clone();
    readings.sort_unstable();
    assert_eq!(readings, vec![0, 100, 200, 300, 400]);
}
