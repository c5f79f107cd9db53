//! Timers in simulation time (`World::send_after`, `send_every`,
//! `cancel_timer`): they fire on the right turn, repeat, stop when
//! cancelled, and do the same on any thread count.

#![allow(missing_docs)]

use kay::{Actor, ActorSystem, CVec, ClassSetup, Compact, Config, TimerID, TypedID, World};

kay::typed_id!(pub ClockID);

/// Logs `(turn, tag)` for every `Tick` it gets; on `Plan` it sets timers of
/// its own (from inside a handler).
#[derive(Compact, Clone)]
pub struct Clock {
    id: ClockID,
    turn: u64,
    log: CVec<(u64, u32)>,
    repeating: CVec<TimerID>,
}

#[derive(Compact, Clone)]
pub struct SpawnClock;

/// Sets the clock's own turn counter (the test sends one every turn).
#[derive(Compact, Clone)]
pub struct Now(u64);

#[derive(Compact, Clone)]
pub struct Tick(u32);

/// Asks the clock to set a timer: `Tick(tag)` to `to` after `after` turns,
/// repeating if `every`.
#[derive(Compact, Clone)]
pub struct Plan {
    to: ClockID,
    after: u64,
    every: bool,
    tag: u32,
}

/// Asks the clock to cancel every repeating timer it set.
#[derive(Compact, Clone)]
pub struct CancelAll;

impl Actor for Clock {
    type ID = ClockID;
    fn id(&self) -> ClockID {
        self.id
    }
    fn setup(class: &mut ClassSetup<Self>) {
        class
            .spawner(|id, _: &SpawnClock, _: &mut World| Clock {
                id,
                turn: 0,
                log: CVec::new(),
                repeating: CVec::new(),
            })
            .handler(|c: &mut Clock, m: &Now, _: &mut World| c.turn = m.0)
            .handler(|c: &mut Clock, m: &Tick, _: &mut World| c.log.push((c.turn, m.0)))
            .handler(|c: &mut Clock, m: &Plan, world: &mut World| {
                if m.every {
                    let id = world.send_every(m.after, m.to, Tick(m.tag));
                    c.repeating.push(id);
                } else {
                    world.send_after(m.after, m.to, Tick(m.tag));
                }
            })
            .handler(|c: &mut Clock, _: &CancelAll, world: &mut World| {
                for &id in c.repeating.iter() {
                    world.cancel_timer(id);
                }
                c.repeating = CVec::new();
            });
    }
}

fn system(threads: usize) -> ActorSystem {
    let mut system = ActorSystem::new(Config {
        threads,
        ..Config::default()
    });
    system.register::<Clock>();
    system
}

/// Runs a turn, first telling every clock its number (a broadcast that
/// arrives in the turn's first cycle, together with the timers' messages,
/// but before them: timers fire after outside sends).
fn turn(system: &mut ActorSystem, world: &mut World) {
    let everyone = world.local_broadcast::<Clock>();
    world.send(everyone, Now(system.current_turn() + 1));
    system.turn();
}

fn logs(system: &ActorSystem) -> Vec<Vec<(u64, u32)>> {
    let mut logs: Vec<(ClockID, Vec<(u64, u32)>)> =
        system.with_instances::<Clock, _>(|c| (c.id, c.log.to_vec()));
    logs.sort_by_key(|(id, _)| id.as_raw().instance);
    logs.into_iter().map(|(_, log)| log).collect()
}

#[test]
fn a_timer_fires_on_its_turn_and_only_once() {
    let mut system = system(1);
    let mut world = system.world();
    let clock = world.spawn::<Clock, _>(SpawnClock);
    turn(&mut system, &mut world); // turn 1
    // Set between turn 1 and 2: due at the start of turn 1 + 3 = 4.
    world.send_after(3, clock, Tick(7));
    assert_eq!(system.pending_timers(), 0, "taken at the next turn");
    for _ in 0..6 {
        turn(&mut system, &mut world);
    }
    assert_eq!(logs(&system), vec![vec![(4, 7)]]);
    assert_eq!(system.pending_timers(), 0);
}

#[test]
fn timers_set_by_handlers_repeat_until_cancelled() {
    let mut system = system(1);
    let mut world = system.world();
    let a = world.spawn::<Clock, _>(SpawnClock);
    let b = world.spawn::<Clock, _>(SpawnClock);
    turn(&mut system, &mut world); // turn 1: spawned
    world.send(
        a,
        Plan {
            to: b,
            after: 2,
            every: true,
            tag: 1,
        },
    );
    world.send(
        a,
        Plan {
            to: b,
            after: 1,
            every: false,
            tag: 2,
        },
    );
    turn(&mut system, &mut world); // turn 2: planned (due 3, and 4, 6, 8 ..)
    for _ in 3..=8 {
        turn(&mut system, &mut world);
    }
    // Cancelled in turn 9: the firing at 10 does not happen.
    world.send(a, CancelAll);
    for _ in 9..=14 {
        turn(&mut system, &mut world);
    }
    assert_eq!(
        logs(&system),
        vec![vec![], vec![(3, 2), (4, 1), (6, 1), (8, 1)]]
    );
    assert_eq!(system.pending_timers(), 0);
}

#[test]
fn cancelling_from_outside_and_cancelling_twice() {
    let mut system = system(1);
    let mut world = system.world();
    let clock = world.spawn::<Clock, _>(SpawnClock);
    turn(&mut system, &mut world);
    let every = world.send_every(1, clock, Tick(1));
    let once = world.send_after(2, clock, Tick(2));
    turn(&mut system, &mut world); // 2: tick 1
    turn(&mut system, &mut world); // 3: tick 1, tick 2
    world.cancel_timer(every);
    world.cancel_timer(every);
    world.cancel_timer(once); // fired already: nothing happens
    for _ in 0..3 {
        turn(&mut system, &mut world);
    }
    // At turn 3 the once-timer comes first: the repeating one counts as
    // set again when it fired at turn 2 (the documented order).
    assert_eq!(logs(&system), vec![vec![(2, 1), (3, 2), (3, 1)]]);
    assert_eq!(system.pending_timers(), 0);
}

#[test]
fn a_timer_to_a_dead_or_unknown_recipient_is_counted() {
    let mut system = system(1);
    let mut world = system.world();
    let clock = world.spawn::<Clock, _>(SpawnClock);
    turn(&mut system, &mut world);
    let stale = kay::RawID::new(clock.as_raw().type_id, 999, world.machine(), 0);
    world.send_after(1, ClockID::from_raw(stale), Tick(1));
    turn(&mut system, &mut world);
    assert_eq!(system.stats().lost(), 1, "{:?}", system.stats());
}

/// Many clocks in several shards plan timers for each other in the same
/// cycles; the order they fire in (and so every log) is the same on 1, 2
/// and 3 threads.
#[test]
fn timers_fire_identically_on_any_thread_count() {
    let run = |threads: usize| {
        let mut system = system(threads);
        let mut world = system.world();
        let clocks: Vec<ClockID> = (0..40)
            .map(|_| world.spawn::<Clock, _>(SpawnClock))
            .collect();
        turn(&mut system, &mut world);
        for (i, &clock) in clocks.iter().enumerate() {
            for k in 0..3u64 {
                let to = clocks[(i * 7 + k as usize * 13) % clocks.len()];
                world.send(
                    clock,
                    Plan {
                        to,
                        after: 1 + (i as u64 + k) % 4,
                        every: k == 2,
                        tag: (i * 10) as u32 + k as u32,
                    },
                );
            }
        }
        for t in 0..12 {
            if t == 7 {
                for &clock in &clocks[..20] {
                    world.send(clock, CancelAll);
                }
            }
            turn(&mut system, &mut world);
        }
        logs(&system)
    };
    let one = run(1);
    assert!(one.iter().map(Vec::len).sum::<usize>() > 150);
    assert!(
        one.iter()
            .any(|log| log.windows(2).any(|w| w[0].0 == w[1].0)),
        "some clock gets several ticks in one turn (so their order matters)"
    );
    assert_eq!(run(2), one);
    assert_eq!(run(3), one);
}

/// A signal written with `#[kay::actor]`: its handlers' messages are
/// generated, so its timers go through `World::after` / `World::every`.
#[derive(Compact, Clone)]
pub struct Signal {
    id: SignalID,
    switches: kay::CVec<u64>,
}

#[kay::actor]
impl Signal {
    pub fn spawn(id: SignalID, _: &mut World) -> Signal {
        Signal {
            id,
            switches: kay::CVec::new(),
        }
    }

    pub fn switch(&mut self, world: &mut World) {
        self.switches.push(world.current_turn());
    }

    /// Switches every `period` turns from now on (a timer set by a handler).
    pub fn start(&mut self, period: u64, world: &mut World) {
        let id = self.id;
        let timers = world.every(period, |world| id.switch(world));
        assert_eq!(timers.len(), 1);
    }
}

#[test]
fn the_sends_of_generated_id_methods_are_delayed_with_after_and_every() {
    let mut system = system(1);
    system.register::<Signal>();
    let mut world = system.world();
    let signal = SignalID::spawn(&mut world);
    system.turn(); // turn 1
    let once = world.after(2, |world| signal.switch(world)); // due at 3
    assert_eq!(once.len(), 1);
    signal.start(4, &mut world); // handled in turn 2: switches at 6, 10, ..
    // Sends outside the scope are not delayed.
    signal.switch(&mut world); // turn 2
    for _ in 2..=11 {
        system.turn();
    }
    let switches = system.with_instances::<Signal, _>(|s| s.switches.to_vec());
    assert_eq!(switches, vec![vec![2, 3, 6, 10]]);
}
