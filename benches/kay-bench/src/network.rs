//! W5: messages between two machines (two processes on 127.0.0.1; this
//! binary starts the second one itself with `--w5-peer`).
//!
//! Machine 0's `Pump` sends `per_turn` small messages (a 16-byte payload)
//! from its handler every turn to the `Sink` on machine 1, whose handler
//! counts them; the clock stops when a request to the sink answers that
//! all of them arrived. Then, at low load, the median round trip of a
//! request. Machines run in lockstep (the default).

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Instant;

use kay::net::NetConfig;
use kay::{
    Actor, ActorSystem, ClassSetup, Compact, Config, MachineID, RawID, ReplyTo, TypedID, World,
};

use crate::report::{Measurement, median};
use crate::workloads::{Scale, threads, verify};

kay::typed_id!(
    /// W5's receiving actor.
    pub SinkID
);
kay::typed_id!(
    /// W5's sending actor.
    pub PumpID
);

/// Counts what arrives.
#[derive(Compact, Clone)]
pub struct Sink {
    id: SinkID,
    count: u64,
    check: u64,
}

/// Sends a turn's messages.
#[derive(Compact, Clone)]
pub struct Pump {
    id: PumpID,
}

/// Spawns either.
#[derive(Compact, Clone)]
pub struct Make;

/// The small message: a 16-byte payload.
#[derive(Compact, Clone)]
pub struct Small {
    a: u64,
    b: u64,
}

/// Tells the pump to send `count` messages to `to`.
#[derive(Compact, Clone)]
pub struct Go {
    to: SinkID,
    count: u32,
}

/// Asks the sink how many arrived.
#[derive(Compact, Clone)]
pub struct Count {
    reply: ReplyTo<u64>,
}

impl Actor for Sink {
    type ID = SinkID;
    fn id(&self) -> SinkID {
        self.id
    }
    fn setup(class: &mut ClassSetup<Self>) {
        class
            .spawner(|id, _: &Make, _: &mut World| Sink {
                id,
                count: 0,
                check: 0,
            })
            .handler(|sink: &mut Sink, small: &Small, _: &mut World| {
                sink.count += 1;
                sink.check = sink.check.wrapping_add(small.a ^ small.b);
            })
            .handler(|sink: &mut Sink, count: &Count, world: &mut World| {
                world.reply(count.reply, sink.count);
            });
    }
}

impl Actor for Pump {
    type ID = PumpID;
    fn id(&self) -> PumpID {
        self.id
    }
    fn setup(class: &mut ClassSetup<Self>) {
        class
            .spawner(|id, _: &Make, _: &mut World| Pump { id })
            .handler(|_: &mut Pump, go: &Go, world: &mut World| {
                for n in 0..go.count {
                    world.send(
                        go.to,
                        Small {
                            a: u64::from(n),
                            b: 7,
                        },
                    );
                }
            });
    }
}

/// A system of machine `machine` of `addresses`, its sink (the same ID on
/// both machines but for the machine) and pump.
fn machine(machine: u8, addresses: &[SocketAddr]) -> (ActorSystem, SinkID, PumpID) {
    let mut system = ActorSystem::new(Config {
        machine: MachineID(machine),
        threads: threads(),
        max_cycles_per_call: usize::MAX,
        net: Some(NetConfig::new(addresses.to_vec(), "kay-bench W5")),
        ..Config::default()
    });
    system.register::<Sink>();
    system.register::<Pump>();
    let mut world = system.world();
    let sink = world.spawn::<Sink, _>(Make);
    let pump = world.spawn::<Pump, _>(Make);
    (system, sink, pump)
}

/// The second machine: runs turns until machine 0 is gone.
pub fn peer(addresses: &str) {
    let addresses: Vec<SocketAddr> = addresses
        .split(',')
        .map(|a| a.parse().expect("an address"))
        .collect();
    let (mut system, _, _) = machine(1, &addresses);
    loop {
        system.turn();
        let stats = system.net_stats().expect("networked");
        if stats.peers[0].joins > 0 && !stats.peers[0].connected {
            return;
        }
    }
}

/// W5: see the module docs.
pub fn w5_network(scale: Scale, reps: usize) -> Vec<Measurement> {
    let total: u64 = match scale {
        Scale::Full => 10_000_000,
        Scale::Quick => 200_000,
        Scale::Custom(n) => n as u64,
    };
    let per_turn = total.min(100_000) as u32;
    let turns = total.div_ceil(u64::from(per_turn));
    let total = turns * u64::from(per_turn);
    let addresses = kay::net::loopback_addresses(2);
    let list: Vec<String> = addresses.iter().map(ToString::to_string).collect();
    let mut child = Command::new(std::env::current_exe().expect("this binary"))
        .args(["--w5-peer", &list.join(",")])
        .stdout(Stdio::null())
        .spawn()
        .expect("the second machine");
    let (mut system, sink, pump) = machine(0, &addresses);
    let raw = sink.as_raw();
    let remote = SinkID::from_raw(RawID::new(
        raw.type_id,
        raw.instance,
        MachineID(1),
        raw.version,
    ));
    let mut world = system.world();
    let ask = |system: &mut ActorSystem, world: &mut World| {
        let (reply, answer) = world.request::<u64>();
        world.send(remote, Count { reply });
        system.block_on(answer).expect("the sink answers")
    };
    // Joins, and warms up.
    system.turn();
    ask(&mut system, &mut world);
    let sent_before = system.net_stats().expect("networked").peers[0].bytes_sent;
    let mut arrived = 0;
    let mut runs = 0;
    let elapsed = median(reps, || {
        runs += 1;
        let start = Instant::now();
        for _ in 0..turns {
            world.send(
                pump,
                Go {
                    to: remote,
                    count: per_turn,
                },
            );
            system.turn();
        }
        while arrived < runs * total {
            arrived = ask(&mut system, &mut world);
        }
        start.elapsed()
    });
    verify("W5", "every message arrived once", arrived == runs * total);
    let bytes = system.net_stats().expect("networked").peers[0].bytes_sent - sent_before;
    // The requests' bytes are part of it (a few hundred per run).
    let wire_bytes_per_msg = bytes as f64 / (runs * total) as f64;
    let mut rtts: Vec<f64> = (0..200)
        .map(|_| {
            let start = Instant::now();
            ask(&mut system, &mut world);
            start.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    rtts.sort_by(f64::total_cmp);
    drop(world);
    drop(system);
    let _ = child.wait();
    vec![Measurement {
        workload: "W5",
        what: "2 machines, small messages, per message",
        system: "kay",
        threads: threads(),
        n: total as usize,
        median_s: elapsed,
        items: total as usize,
        msgs_per_s: Some(total as f64 / elapsed),
        wire_bytes_per_msg: Some(wire_bytes_per_msg),
        request_rtt_us: Some(rtts[rtts.len() / 2]),
        ..Measurement::empty()
    }]
}
