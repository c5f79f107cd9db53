//! W1–W4 once more, with the actors written with `#[kay::actor]` instead of
//! hand-registered closures, reported as `system: "kay-macro"` against the
//! same plain baseline. The macros generate the same `ClassSetup::handler`
//! closures as the hand-written registration, so the two should cost the same.
//!
//! Each workload takes its size (`n`) and frame count from the rows the
//! hand-written run produced, so both always measure the same thing.

use crate::workloads::{config, spawn_in_batches};
use kay::RawID;
use kay::prelude::*;

use crate::report::{Measurement, median, timed};

/// The `kay-macro` measurement for `workload`, given the rows of its
/// hand-written run (which hold the plain baseline, `n` and the item count).
pub fn measure(workload: &str, rows: &[Measurement], reps: usize) -> Option<Measurement> {
    let plain = rows.iter().find(|m| m.system == "plain")?;
    let kay = rows.iter().find(|m| m.system == "kay")?;
    let n = plain.n;
    let frames = kay.items / n.max(1);
    let (median_s, bytes_per_actor) = match workload {
        "W1" => (w1_broadcast(n, frames, reps), None),
        "W2" => (w2_point_to_point(n, frames, reps), None),
        "W3" => (w3_ping_pong(n, reps), None),
        // No bytes per actor: this runs after the hand-written W4 in the same
        // process, so its RSS delta mostly shows the allocator reusing that
        // run's freed memory (often 0). Actors and spawn messages have the
        // same layout either way.
        "W4" => (w4_spawn(n, reps), None),
        _ => return None,
    };
    Some(Measurement {
        threads: crate::workloads::threads(),
        system: "kay-macro",
        median_s,
        plain_s: Some(plain.median_s),
        bytes_per_actor,
        peak_bytes_per_actor: None,
        ..kay.clone()
    })
}

/// Fails the run loudly if a workload computed a wrong result.
fn verify(workload: &str, what: &str, ok: bool) {
    if !ok {
        eprintln!("{workload} (kay-macro): wrong result: {what}");
        std::process::exit(1);
    }
}

// ---------------------------------------------------------------- W1, W4

/// W1/W4's actor: `{pos, vel, ticks}` plus its ID.
#[derive(Compact, Clone)]
pub struct Mover {
    id: MoverID,
    pos: [f32; 2],
    vel: [f32; 2],
    ticks: u64,
}

#[kay::actor]
impl Mover {
    /// Spawns mover number `i`.
    pub fn spawn(id: MoverID, i: u32, _: &mut World) -> Mover {
        Mover {
            id,
            pos: [i as f32, 0.0],
            vel: [1.0, 0.5],
            ticks: 0,
        }
    }

    /// One simulation step.
    pub fn tick(&mut self, dt: f32, _: &mut World) {
        self.pos[0] += self.vel[0] * dt;
        self.pos[1] += self.vel[1] * dt;
        self.ticks += 1;
    }
}

fn spawn_movers(system: &mut ActorSystem, world: &mut World, n: usize) {
    spawn_in_batches(system, world, n, |i, world| MoverID::spawn(i as u32, world));
}

fn w1_broadcast(n: usize, frames: usize, reps: usize) -> f64 {
    let mut system = ActorSystem::new(config());
    system.register::<Mover>();
    let mut world = system.world();
    spawn_movers(&mut system, &mut world, n);
    let everyone = MoverID::local_broadcast(&mut world);
    let mut frames_run = 0u64;
    let time = median(reps, || {
        frames_run += frames as u64;
        timed(|| {
            for _ in 0..frames {
                everyone.tick(0.5, &mut world);
                system.process_all_messages();
            }
        })
    });
    let ticks = system.with_instances::<Mover, _>(|m| m.ticks);
    verify(
        "W1",
        "every mover ticked once per frame",
        ticks.len() == n && ticks.iter().all(|t| *t == frames_run),
    );
    time
}

fn w4_spawn(n: usize, reps: usize) -> f64 {
    median(reps, || {
        let mut system = ActorSystem::new(config());
        system.register::<Mover>();
        let mut world = system.world();
        let time = timed(|| spawn_movers(&mut system, &mut world, n));
        verify(
            "W4",
            "all actors spawned",
            system.instance_count::<Mover>() == n,
        );
        time
    })
}

// ---------------------------------------------------------------- W2

/// W2's actor: sends to `target` on `step`, sums what it receives.
#[derive(Compact, Clone)]
pub struct Node {
    id: NodeID,
    target: NodeID,
    index: u64,
    sum: u64,
}

#[kay::actor]
impl Node {
    /// Spawns node `index`, which sends to `target`.
    pub fn spawn(id: NodeID, index: u64, target: NodeID, _: &mut World) -> Node {
        Node {
            id,
            target,
            index,
            sum: 0,
        }
    }

    /// Points this node at the node it sends to.
    pub fn set_target(&mut self, target: NodeID, _: &mut World) {
        self.target = target;
    }

    /// Broadcast: every node sends its `add`.
    pub fn step(&mut self, world: &mut World) {
        self.target.add(self.index, world);
    }

    /// Point-to-point payload.
    pub fn add(&mut self, v: u64, _: &mut World) {
        self.sum += v;
    }
}

fn target(i: usize, n: usize) -> usize {
    (i * 7919 + 1) % n
}

fn w2_point_to_point(n: usize, frames: usize, reps: usize) -> f64 {
    let mut system = ActorSystem::new(config());
    system.register::<Node>();
    let mut world = system.world();
    let nobody = NodeID::from_raw(RawID::default());
    let ids = spawn_in_batches(&mut system, &mut world, n, |i, world| {
        NodeID::spawn(i as u64, nobody, world)
    });
    for (i, id) in ids.iter().enumerate() {
        id.set_target(ids[target(i, n)], &mut world);
    }
    system.process_all_messages();
    let everyone = NodeID::local_broadcast(&mut world);
    let mut frames_run = 0u64;
    let time = median(reps, || {
        frames_run += frames as u64;
        timed(|| {
            for _ in 0..frames {
                everyone.step(&mut world);
                system.process_all_messages();
            }
        })
    });
    let total: u64 = system
        .with_instances::<Node, _>(|node| node.sum)
        .iter()
        .sum();
    let expected = frames_run * (n as u64 * (n as u64 - 1) / 2);
    verify(
        "W2",
        "sum of all adds",
        total == expected && system.stats().lost() == 0,
    );
    time
}

// ---------------------------------------------------------------- W3

/// W3's actor: returns the ball until the limit.
#[derive(Compact, Clone)]
pub struct Player {
    id: PlayerID,
    hits: u64,
    limit: u64,
}

#[kay::actor]
impl Player {
    /// Spawns a player that stops after `limit` hits.
    pub fn spawn(id: PlayerID, limit: u64, _: &mut World) -> Player {
        Player { id, hits: 0, limit }
    }

    /// The ball, with its sender to return it to.
    pub fn ball(&mut self, from: PlayerID, n: u64, world: &mut World) {
        self.hits += 1;
        if n < self.limit {
            from.ball(self.id, n + 1, world);
        }
    }
}

fn w3_ping_pong(round_trips: usize, reps: usize) -> f64 {
    let messages = 2 * round_trips as u64;
    let mut system = ActorSystem::new(config());
    system.register::<Player>();
    let mut world = system.world();
    let a = PlayerID::spawn(messages, &mut world);
    let b = PlayerID::spawn(messages, &mut world);
    system.process_all_messages();
    let time = median(reps, || {
        timed(|| {
            b.ball(a, 1, &mut world);
            system.process_all_messages();
        })
    });
    let hits: u64 = system.with_instances::<Player, _>(|p| p.hits).iter().sum();
    verify(
        "W3",
        "every ball was hit",
        hits == messages * (reps as u64 + 1),
    );
    time
}
