//! W1–W4, each with kay and a plain data-oriented Rust baseline.

use std::hint::black_box;

use kay::{Actor, ActorSystem, ClassSetup, Compact, Config, RawID, TypedID, World};

use crate::report::{Measurement, median, timed};

/// Problem sizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    /// The full sizes (1,000,000 actors or round trips).
    Full,
    /// Small sizes for smoke runs.
    Quick,
    /// A chosen number of actors (round trips for W3).
    Custom(usize),
}

impl Scale {
    /// The number of actors (round trips for W3).
    pub fn actors(self) -> usize {
        match self {
            Scale::Full => 1_000_000,
            Scale::Quick => 20_000,
            Scale::Custom(n) => n.max(2),
        }
    }
}

const FRAMES: usize = 10;

/// The worker threads kay runs with in the current measurement.
pub static THREADS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(1);

/// The threads of the current measurement.
pub fn threads() -> usize {
    THREADS.load(std::sync::atomic::Ordering::Relaxed)
}

/// kay's configuration for the workloads.
pub fn config() -> Config {
    Config {
        max_cycles_per_call: usize::MAX,
        threads: threads(),
        shards: std::env::var("KAY_BENCH_SHARDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(4),
        ..Config::default()
    }
}

/// Fails the run loudly if a workload computed a wrong result.
pub fn verify(workload: &str, what: &str, ok: bool) {
    if !ok {
        eprintln!("{workload}: wrong result: {what}");
        std::process::exit(1);
    }
}

/// The plain row and the kay row of one workload.
pub fn kay_and_plain(
    workload: &'static str,
    what: &'static str,
    n: usize,
    items: usize,
    kay_s: f64,
    plain_s: f64,
) -> Vec<Measurement> {
    let base = Measurement {
        workload,
        what,
        system: "plain",
        threads: 1,
        n,
        median_s: plain_s,
        items,
        ..Measurement::empty()
    };
    vec![
        base.clone(),
        Measurement {
            system: "kay",
            threads: threads(),
            median_s: kay_s,
            plain_s: Some(plain_s),
            ..base
        },
    ]
}

// ---------------------------------------------------------------- W1

kay::typed_id!(
    /// A moving agent.
    pub MoverID
);

/// W1/W4's actor: `{pos, vel, ticks}` plus its ID: 32 bytes, plus `PAD`
/// words before `ticks` for W1 with `--actor-bytes` (so the field the
/// handler touches last moves to the actor's end).
#[derive(Compact, Clone)]
pub struct Mover<const PAD: usize = 0> {
    id: MoverID,
    pos: [f32; 2],
    vel: [f32; 2],
    pad: [u64; PAD],
    ticks: u64,
}

/// Spawns a mover.
#[derive(Compact, Clone)]
pub struct SpawnMover {
    i: u32,
}

/// One simulation step.
#[derive(Compact, Clone)]
pub struct Tick {
    /// The time step.
    pub dt: f32,
}

impl<const PAD: usize> Actor for Mover<PAD> {
    type ID = MoverID;
    fn id(&self) -> MoverID {
        self.id
    }
    fn setup(class: &mut ClassSetup<Self>) {
        class
            .spawner(|id, s: &SpawnMover, _: &mut World| Mover {
                id,
                pos: [s.i as f32, 0.0],
                vel: [1.0, 0.5],
                pad: [0; PAD],
                ticks: 0,
            })
            .handler(|m: &mut Mover<PAD>, t: &Tick, _: &mut World| {
                m.pos[0] += m.vel[0] * t.dt;
                m.pos[1] += m.vel[1] * t.dt;
                m.ticks += 1;
            });
    }
}

/// The plain baseline's agent (padded like the actor).
#[derive(Clone, Copy)]
struct PlainMover<const PAD: usize> {
    pos: [f32; 2],
    vel: [f32; 2],
    _pad: [u64; PAD],
    ticks: u64,
}

/// Spawns `n` actors with `spawn(i, world)`, processing the spawns every
/// 16,384 (as a game spawning per frame would), and returns their IDs.
pub fn spawn_in_batches<ID>(
    system: &mut ActorSystem,
    world: &mut World,
    n: usize,
    mut spawn: impl FnMut(usize, &mut World) -> ID,
) -> Vec<ID> {
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        ids.push(spawn(i, world));
        if i % 16_384 == 16_383 {
            system.process_all_messages();
        }
    }
    system.process_all_messages();
    ids
}

/// Spawns `n` movers like `spawn_in_batches`, without keeping their IDs
/// (so that W4's memory is the system's alone).
pub fn spawn_movers<const PAD: usize>(system: &mut ActorSystem, world: &mut World, n: usize) {
    for i in 0..n {
        world.spawn::<Mover<PAD>, _>(SpawnMover { i: i as u32 });
        if i % 16_384 == 16_383 {
            system.process_all_messages();
        }
    }
    system.process_all_messages();
}

/// The actor size of W1 and W2 (`--actor-bytes`): 32, 48, 64 or 128.
pub static ACTOR_BYTES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(32);

/// The actor size of the current W1/W2 measurement.
pub fn actor_bytes() -> usize {
    ACTOR_BYTES.load(std::sync::atomic::Ordering::Relaxed)
}

/// Runs `$run::<PAD>` with the padding words that give `actor_bytes()`.
macro_rules! with_actor_bytes {
    ($run:ident($($arg:expr),*)) => {{
        let mut rows = match actor_bytes() {
            32 => $run::<0>($($arg),*),
            48 => $run::<2>($($arg),*),
            64 => $run::<4>($($arg),*),
            128 => $run::<12>($($arg),*),
            other => panic!("--actor-bytes {other}: only 32, 48, 64 and 128 are built in"),
        };
        for row in &mut rows {
            row.actor_bytes = Some(actor_bytes());
        }
        rows
    }};
}

/// W1: a broadcast `Tick` to N movers, 10 frames.
pub fn w1_broadcast(scale: Scale, reps: usize) -> Vec<Measurement> {
    with_actor_bytes!(w1(scale, reps))
}

fn w1<const PAD: usize>(scale: Scale, reps: usize) -> Vec<Measurement> {
    let n = scale.actors();
    let mut system = ActorSystem::new(config());
    system.register::<Mover<PAD>>();
    let mut world = system.world();
    spawn_movers::<PAD>(&mut system, &mut world, n);
    let everyone = world.local_broadcast::<Mover<PAD>>();
    let mut frames_run = 0u64;
    let kay_s = median(reps, || {
        frames_run += FRAMES as u64;
        timed(|| {
            for _ in 0..FRAMES {
                world.send(everyone, Tick { dt: 0.5 });
                system.process_all_messages();
            }
        })
    });
    let ticks: Vec<u64> = system.with_instances::<Mover<PAD>, _>(|m| m.ticks);
    verify(
        "W1",
        "every mover ticked once per frame",
        ticks.len() == n && ticks.iter().all(|t| *t == frames_run),
    );

    let mut plain = vec![
        PlainMover::<PAD> {
            pos: [0.0; 2],
            vel: [1.0, 0.5],
            _pad: [0; PAD],
            ticks: 0
        };
        n
    ];
    let mut plain_frames = 0u64;
    let plain_s = median(reps, || {
        plain_frames += FRAMES as u64;
        timed(|| {
            for _ in 0..FRAMES {
                let dt = black_box(0.5f32);
                for m in plain.iter_mut() {
                    m.pos[0] += m.vel[0] * dt;
                    m.pos[1] += m.vel[1] * dt;
                    m.ticks += 1;
                }
                black_box(&mut plain);
            }
        })
    });
    verify(
        "W1",
        "plain ticks",
        plain.iter().all(|m| m.ticks == plain_frames),
    );

    // The same loop over structs that also carry an 8-byte ID, as kay's
    // actors do: it separates kay's own cost from the larger working set.
    #[derive(Clone, Copy)]
    struct PlainMoverWithId<const PAD: usize> {
        _id: u64,
        mover: PlainMover<PAD>,
    }
    let mut with_id = vec![
        PlainMoverWithId {
            _id: 0,
            mover: plain[0]
        };
        n
    ];
    let with_id_s = median(reps, || {
        timed(|| {
            for _ in 0..FRAMES {
                let dt = black_box(0.5f32);
                for m in with_id.iter_mut() {
                    m.mover.pos[0] += m.mover.vel[0] * dt;
                    m.mover.pos[1] += m.mover.vel[1] * dt;
                    m.mover.ticks += 1;
                }
                black_box(&mut with_id);
            }
        })
    });
    let mut rows = kay_and_plain(
        "W1",
        "broadcast Tick to N actors",
        n,
        n * FRAMES,
        kay_s,
        plain_s,
    );
    rows.insert(
        1,
        Measurement {
            system: "plain-id",
            median_s: with_id_s,
            plain_s: Some(plain_s),
            ..rows[0].clone()
        },
    );
    rows
}

// ---------------------------------------------------------------- W2

kay::typed_id!(
    /// A node of the point-to-point graph.
    pub NodeID
);

/// W2's actor: sends to `target` on `Step`, sums what it receives. 32
/// bytes, plus `PAD` words before `sum` with `--actor-bytes` (so the field
/// an `Add` touches is at the actor's end, in its last cache line).
#[derive(Compact, Clone)]
pub struct Node<const PAD: usize = 0> {
    id: NodeID,
    target: NodeID,
    index: u64,
    pad: [u64; PAD],
    sum: u64,
}

/// Spawns a node.
#[derive(Compact, Clone)]
pub struct SpawnNode {
    index: u64,
    target: NodeID,
}

/// Broadcast: every node sends its `Add`.
#[derive(Compact, Clone)]
pub struct Step;

/// Point-to-point payload.
#[derive(Compact, Clone)]
pub struct Add {
    v: u64,
}

/// Points a node at the node it sends to.
#[derive(Compact, Clone)]
pub struct SetTarget {
    target: NodeID,
}

impl<const PAD: usize> Actor for Node<PAD> {
    type ID = NodeID;
    fn id(&self) -> NodeID {
        self.id
    }
    fn setup(class: &mut ClassSetup<Self>) {
        class
            .spawner(|id, s: &SpawnNode, _: &mut World| Node {
                id,
                target: s.target,
                index: s.index,
                pad: [0; PAD],
                sum: 0,
            })
            .handler(|n: &mut Node<PAD>, _: &Step, world: &mut World| {
                world.send(n.target, Add { v: n.index })
            })
            .handler(|n: &mut Node<PAD>, a: &Add, _: &mut World| n.sum += a.v)
            .handler(|n: &mut Node<PAD>, t: &SetTarget, _: &mut World| n.target = t.target);
    }
}

fn target(i: usize, n: usize) -> usize {
    (i * 7919 + 1) % n
}

/// W2: on a broadcast `Step`, node i sends `Add { v: i }` to node (i·7919+1) mod N.
pub fn w2_point_to_point(scale: Scale, reps: usize) -> Vec<Measurement> {
    with_actor_bytes!(w2(scale, reps))
}

fn w2<const PAD: usize>(scale: Scale, reps: usize) -> Vec<Measurement> {
    let n = scale.actors();
    let mut system = ActorSystem::new(config());
    system.register::<Node<PAD>>();
    let mut world = system.world();
    let nobody = NodeID::from_raw(RawID::default());
    let ids = spawn_in_batches(&mut system, &mut world, n, |i, world| {
        world.spawn::<Node<PAD>, _>(SpawnNode {
            index: i as u64,
            target: nobody,
        })
    });
    for (i, id) in ids.iter().enumerate() {
        world.send(
            *id,
            SetTarget {
                target: ids[target(i, n)],
            },
        );
    }
    system.process_all_messages();
    let everyone = world.local_broadcast::<Node<PAD>>();
    let mut frames_run = 0u64;
    let kay_s = median(reps, || {
        frames_run += FRAMES as u64;
        timed(|| {
            for _ in 0..FRAMES {
                world.send(everyone, Step);
                system.process_all_messages();
            }
        })
    });
    let total: u64 = system
        .with_instances::<Node<PAD>, _>(|node| node.sum)
        .iter()
        .sum();
    let expected = frames_run * (n as u64 * (n as u64 - 1) / 2);
    verify(
        "W2",
        "sum of all Adds",
        total == expected && system.stats().lost() == 0,
    );

    #[derive(Clone, Copy)]
    struct PlainNode<const PAD: usize> {
        target: u32,
        index: u64,
        _pad: [u64; PAD],
        sum: u64,
    }
    let mut plain: Vec<PlainNode<PAD>> = (0..n)
        .map(|i| PlainNode {
            target: target(i, n) as u32,
            index: i as u64,
            _pad: [0; PAD],
            sum: 0,
        })
        .collect();
    let mut plain_frames = 0u64;
    let plain_s = median(reps, || {
        plain_frames += FRAMES as u64;
        timed(|| {
            for _ in 0..FRAMES {
                for i in 0..plain.len() {
                    let (t, v) = (plain[i].target as usize, plain[i].index);
                    plain[t].sum += v;
                }
                black_box(&mut plain);
            }
        })
    });
    let plain_total: u64 = plain.iter().map(|p| p.sum).sum();
    verify(
        "W2",
        "plain sum",
        plain_total == plain_frames * (n as u64 * (n as u64 - 1) / 2),
    );
    kay_and_plain(
        "W2",
        "point-to-point Add, per message",
        n,
        n * FRAMES,
        kay_s,
        plain_s,
    )
}

// ---------------------------------------------------------------- W3

kay::typed_id!(
    /// A ping-pong player.
    pub PlayerID
);

/// W3's actor: returns the ball until the limit.
#[derive(Compact, Clone)]
pub struct Player {
    id: PlayerID,
    hits: u64,
    limit: u64,
}

/// Spawns a player.
#[derive(Compact, Clone)]
pub struct SpawnPlayer {
    limit: u64,
}

/// The ball, with its sender to return it to.
#[derive(Compact, Clone)]
pub struct Ball {
    from: PlayerID,
    n: u64,
}

impl Actor for Player {
    type ID = PlayerID;
    fn id(&self) -> PlayerID {
        self.id
    }
    fn setup(class: &mut ClassSetup<Self>) {
        class
            .spawner(|id, s: &SpawnPlayer, _: &mut World| Player {
                id,
                hits: 0,
                limit: s.limit,
            })
            .handler(|p: &mut Player, b: &Ball, world: &mut World| {
                p.hits += 1;
                if b.n < p.limit {
                    world.send(
                        b.from,
                        Ball {
                            from: p.id,
                            n: b.n + 1,
                        },
                    );
                }
            });
    }
}

/// W3: two actors, N round trips (2N messages).
pub fn w3_ping_pong(scale: Scale, reps: usize) -> Vec<Measurement> {
    ping_pong("W3", "ping-pong, per round trip", scale, reps, |_| {})
}

/// W3-idle: W3 with 200 more classes registered first (one instance each)
/// that get no messages: cycles must not pay for idle classes.
pub fn w3_idle(scale: Scale, reps: usize) -> Vec<Measurement> {
    ping_pong(
        "W3-idle",
        "ping-pong beside 200 idle classes, per round trip",
        scale,
        reps,
        register_idle_classes,
    )
}

/// A ping-pong of two `Player`s, N round trips (2N messages), in a system
/// that `setup` prepared first; against the plain loop.
fn ping_pong(
    workload: &'static str,
    label: &'static str,
    scale: Scale,
    reps: usize,
    setup: fn(&mut ActorSystem),
) -> Vec<Measurement> {
    let round_trips = scale.actors();
    let messages = 2 * round_trips as u64;
    let mut system = ActorSystem::new(config());
    setup(&mut system);
    system.register::<Player>();
    let mut world = system.world();
    let a = world.spawn::<Player, _>(SpawnPlayer { limit: messages });
    let b = world.spawn::<Player, _>(SpawnPlayer { limit: messages });
    system.process_all_messages();
    let kay_s = median(reps, || {
        timed(|| {
            world.send(b, Ball { from: a, n: 1 });
            system.process_all_messages();
        })
    });
    let hits: u64 = system.with_instances::<Player, _>(|p| p.hits).iter().sum();
    verify(
        workload,
        "every ball was hit",
        hits == messages * (reps as u64 + 1),
    );

    let mut plain = [0u64; 2];
    let plain_s = median(reps, || {
        timed(|| {
            let mut turn = 0;
            for n in 1..=messages {
                plain[turn] += black_box(n) & 1 | 1;
                turn ^= 1;
            }
            black_box(&mut plain);
        })
    });
    verify(
        workload,
        "plain hits",
        plain.iter().sum::<u64>() == messages * (reps as u64 + 1),
    );
    kay_and_plain(workload, label, round_trips, round_trips, kay_s, plain_s)
}

// ---------------------------------------------------------------- W3-idle

/// One of W3-idle's idle classes: class `N`.
#[derive(Compact, Clone)]
pub struct Idle<const N: u32> {
    id: RawID,
    count: u64,
}

/// Spawns an idle actor.
#[derive(Compact, Clone)]
pub struct SpawnIdle;

/// A message idle actors could get (and never do).
#[derive(Compact, Clone)]
pub struct Poke;

impl<const N: u32> Actor for Idle<N> {
    type ID = RawID;
    fn id(&self) -> RawID {
        self.id
    }
    fn setup(class: &mut ClassSetup<Self>) {
        class
            .spawner(|id, _: &SpawnIdle, _: &mut World| Idle { id, count: 0 })
            .handler(|a: &mut Self, _: &Poke, _: &mut World| a.count += 1);
    }
}

macro_rules! idle_units {
    ($system:ident, $world:ident, $a:literal; $($b:literal)*) => {
        $(
            $system.register::<Idle<{ $a * 10 + $b }>>();
            $world.spawn::<Idle<{ $a * 10 + $b }>, _>(SpawnIdle);
        )*
    };
}
macro_rules! idle_tens {
    ($system:ident, $world:ident; $($a:literal)*) => {
        $( idle_units!($system, $world, $a; 0 1 2 3 4 5 6 7 8 9); )*
    };
}

/// Registers 200 idle classes (`Idle<0>` to `Idle<199>`), one instance each.
fn register_idle_classes(system: &mut ActorSystem) {
    let mut world = system.world();
    idle_tens!(system, world; 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19);
    system.process_all_messages();
}

// ---------------------------------------------------------------- W3c

/// W3c: two ping-pong pairs at once, in different shards: every message
/// cycle has two tiny jobs (one record each). On more threads, handing one
/// of them to a sleeping helper costs more than it saves; the bar is that
/// such cycles cost no more on N threads than on one.
pub fn w3c_two_pairs(scale: Scale, reps: usize) -> Vec<Measurement> {
    let round_trips = scale.actors();
    let messages = 2 * round_trips as u64;
    let mut system = ActorSystem::new(config());
    system.register::<Player>();
    let mut world = system.world();
    // Spawns go round robin over the shards: four players, four shards.
    let players: Vec<PlayerID> = (0..4)
        .map(|_| world.spawn::<Player, _>(SpawnPlayer { limit: messages }))
        .collect();
    system.process_all_messages();
    let kay_s = median(reps, || {
        timed(|| {
            world.send(
                players[1],
                Ball {
                    from: players[0],
                    n: 1,
                },
            );
            world.send(
                players[3],
                Ball {
                    from: players[2],
                    n: 1,
                },
            );
            system.process_all_messages();
        })
    });
    let hits: u64 = system.with_instances::<Player, _>(|p| p.hits).iter().sum();
    verify(
        "W3c",
        "every ball was hit",
        hits == 2 * messages * (reps as u64 + 1),
    );
    let plain_s = median(reps, || {
        timed(|| {
            let mut plain = [0u64; 4];
            let mut turn = 0;
            for n in 1..=messages {
                plain[turn] += black_box(n) & 1 | 1;
                plain[turn + 2] += black_box(n) & 1 | 1;
                turn ^= 1;
            }
            black_box(&mut plain);
        })
    });
    kay_and_plain(
        "W3c",
        "two ping-pong pairs, per round trip",
        round_trips,
        round_trips,
        kay_s,
        plain_s,
    )
}

// ---------------------------------------------------------------- W3b

kay::typed_id!(
    /// W3b's serving side.
    pub PingerID
);
kay::typed_id!(
    /// W3b's answering side.
    pub PongerID
);

/// W3b's first class: serves the ball, counts the returns.
#[derive(Compact, Clone)]
pub struct Pinger {
    id: PingerID,
    hits: u64,
    limit: u64,
}

/// W3b's second class: returns every ball.
#[derive(Compact, Clone)]
pub struct Ponger {
    id: PongerID,
    hits: u64,
}

/// Spawns a pinger.
#[derive(Compact, Clone)]
pub struct SpawnPinger {
    limit: u64,
}

/// Spawns a ponger.
#[derive(Compact, Clone)]
pub struct SpawnPonger;

/// The ball on its way to the ponger.
#[derive(Compact, Clone)]
pub struct Ping {
    from: PingerID,
    n: u64,
}

/// The ball on its way back.
#[derive(Compact, Clone)]
pub struct Pong {
    to: PongerID,
    n: u64,
}

impl Actor for Pinger {
    type ID = PingerID;
    fn id(&self) -> PingerID {
        self.id
    }
    fn setup(class: &mut ClassSetup<Self>) {
        class
            .spawner(|id, s: &SpawnPinger, _: &mut World| Pinger {
                id,
                hits: 0,
                limit: s.limit,
            })
            .handler(|p: &mut Pinger, b: &Pong, world: &mut World| {
                p.hits += 1;
                if b.n < p.limit {
                    world.send(
                        b.to,
                        Ping {
                            from: p.id,
                            n: b.n + 1,
                        },
                    );
                }
            });
    }
}

impl Actor for Ponger {
    type ID = PongerID;
    fn id(&self) -> PongerID {
        self.id
    }
    fn setup(class: &mut ClassSetup<Self>) {
        class
            .spawner(|id, _: &SpawnPonger, _: &mut World| Ponger { id, hits: 0 })
            .handler(|p: &mut Ponger, b: &Ping, world: &mut World| {
                p.hits += 1;
                world.send(
                    b.from,
                    Pong {
                        to: p.id,
                        n: b.n + 1,
                    },
                );
            });
    }
}

/// W3b: ping-pong as users write it, with two classes (`Pinger`, `Ponger`):
/// N round trips (2N messages), against the same plain loop as W3.
pub fn w3b_two_classes(scale: Scale, reps: usize) -> Vec<Measurement> {
    let round_trips = scale.actors();
    let messages = 2 * round_trips as u64;
    let mut system = ActorSystem::new(config());
    system.register::<Pinger>();
    system.register::<Ponger>();
    let mut world = system.world();
    let pinger = world.spawn::<Pinger, _>(SpawnPinger { limit: messages });
    let ponger = world.spawn::<Ponger, _>(SpawnPonger);
    system.process_all_messages();
    let kay_s = median(reps, || {
        timed(|| {
            world.send(ponger, Ping { from: pinger, n: 1 });
            system.process_all_messages();
        })
    });
    let pings: u64 = system.with_instances::<Ponger, _>(|p| p.hits).iter().sum();
    let pongs: u64 = system.with_instances::<Pinger, _>(|p| p.hits).iter().sum();
    verify(
        "W3b",
        "every ball was hit",
        pings + pongs == messages * (reps as u64 + 1),
    );
    let plain_s = median(reps, || {
        timed(|| {
            let mut plain = [0u64; 2];
            let mut turn = 0;
            for n in 1..=messages {
                plain[turn] += black_box(n) & 1 | 1;
                turn ^= 1;
            }
            black_box(&mut plain);
        })
    });
    kay_and_plain(
        "W3b",
        "ping-pong, two classes, per round trip",
        round_trips,
        round_trips,
        kay_s,
        plain_s,
    )
}

// ---------------------------------------------------------------- W4

/// The peak resident memory of this process so far (`VmHWM`).
fn peak_resident_bytes() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<usize>()
                .ok()
        })
        .map_or(0, |kib| kib * 1024)
}

fn resident_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// Spawns N actors with `system` ("kay" or "plain") in this process and
/// returns the growth of resident memory per actor after spawning and at
/// its peak during spawning. Run in a fresh child process, so that memory
/// freed by earlier workloads cannot hide growth.
pub fn w4_resident_bytes(system: &str, scale: Scale) -> (f64, f64) {
    let n = scale.actors();
    let before = resident_bytes();
    let peak = |before: usize| peak_resident_bytes().saturating_sub(before) as f64 / n as f64;
    match system {
        "kay" => {
            let mut sys = ActorSystem::new(config());
            sys.register::<Mover>();
            let mut world = sys.world();
            spawn_movers::<0>(&mut sys, &mut world, n);
            let bytes = resident_bytes().saturating_sub(before) as f64 / n as f64;
            verify(
                "W4",
                "all actors spawned",
                sys.instance_count::<Mover>() == n,
            );
            (bytes, peak(before))
        }
        _ => {
            let mut movers = Vec::new();
            for i in 0..n {
                movers.push(PlainMover::<0> {
                    pos: [i as f32, 0.0],
                    vel: [1.0, 0.5],
                    _pad: [],
                    ticks: 0,
                });
            }
            black_box(&mut movers);
            let bytes = resident_bytes().saturating_sub(before) as f64 / n as f64;
            verify("W4", "plain actors", movers.len() == n);
            (bytes, peak(before))
        }
    }
}

/// Runs `w4_resident_bytes` in a child process of this binary.
fn resident_bytes_in_child(system: &str, scale: Scale) -> Option<(f64, f64)> {
    let exe = std::env::current_exe().ok()?;
    let mut command = std::process::Command::new(exe);
    command.args(["--w4-rss", system]);
    command.args(["--actors", &scale.actors().to_string()]);
    let output = command.output().ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    let mut numbers = text.split_whitespace().map(str::parse::<f64>);
    Some((numbers.next()?.ok()?, numbers.next()?.ok()?))
}

/// W4: spawn N actors; time and resident bytes per actor.
pub fn w4_spawn(scale: Scale, reps: usize) -> Vec<Measurement> {
    let n = scale.actors();
    let kay_s = median(reps, || {
        let mut system = ActorSystem::new(config());
        system.register::<Mover>();
        let mut world = system.world();
        let time = timed(|| spawn_movers::<0>(&mut system, &mut world, n));
        verify(
            "W4",
            "all actors spawned",
            system.instance_count::<Mover>() == n,
        );
        time
    });
    let plain_s = median(reps, || {
        let mut movers = Vec::new();
        let time = timed(|| {
            for i in 0..n {
                movers.push(PlainMover::<0> {
                    pos: [i as f32, 0.0],
                    vel: [1.0, 0.5],
                    _pad: [],
                    ticks: 0,
                });
            }
            black_box(&mut movers);
        });
        verify("W4", "plain actors", movers.len() == n);
        time
    });
    let mut rows = kay_and_plain("W4", "spawn N actors, per spawn", n, n, kay_s, plain_s);
    for (row, system) in rows.iter_mut().zip(["plain", "kay"]) {
        let bytes = resident_bytes_in_child(system, scale);
        row.bytes_per_actor = bytes.map(|b| b.0);
        row.peak_bytes_per_actor = bytes.map(|b| b.1);
    }
    rows
}
