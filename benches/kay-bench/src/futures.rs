//! Requests and map-reduce.
//!
//! - `request`: outside code asks each of N `Num`s for its value (a request
//!   to one instance each), runs a turn, and takes every answer from its
//!   `Reply`; per round trip. The plain baseline reads the N values through
//!   a function call each.
//! - `reduce` (feature `net`): a global map-reduce (`reduce(0, +)`) over N
//!   `Num`s spread over two machines (two processes on 127.0.0.1; this
//!   binary starts the second with `--reduce-peer`), against a broadcast to
//!   the same number of instances on one machine, in the same run
//!   (`ratio_to_broadcast`).

use std::future::Future;
use std::hint::black_box;
use std::task::{Context, Poll, Waker};

use kay::{Actor, ActorSystem, ClassSetup, Compact, Reply, ReplyTo, World};

use crate::report::{Measurement, median, timed};
use crate::workloads::{Scale, config, kay_and_plain, verify};

kay::typed_id!(
    /// A number that answers requests.
    pub NumID
);

/// A number that answers requests for its value.
#[derive(Compact, Clone)]
pub struct Num {
    id: NumID,
    value: u64,
    touched: u64,
}

/// Spawns a `Num`.
#[derive(Compact, Clone)]
pub struct MakeNum {
    value: u64,
}

/// Asks a `Num` for its value.
#[derive(Compact, Clone)]
pub struct Value {
    reply: ReplyTo<u64>,
}

impl kay::Request for Value {
    type Answer = u64;
    fn reply_to(&self) -> ReplyTo<u64> {
        self.reply
    }
}

/// Asks a `Num` for its value as a [`kay::Sum`]: answers that combine on
/// each machine.
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

/// The broadcast of the baseline of `reduce`: every `Num` adds its value.
#[derive(Compact, Clone)]
pub struct Touch;

impl Actor for Num {
    type ID = NumID;
    fn id(&self) -> NumID {
        self.id
    }
    fn setup(class: &mut ClassSetup<Self>) {
        class
            .spawner(|id, make: &MakeNum, _: &mut World| Num {
                id,
                value: make.value,
                touched: 0,
            })
            .request_handler(|num: &mut Num, value: &Value, world: &mut World| {
                world.reply(value.reply, num.value)
            })
            .request_handler(|num: &mut Num, total: &Total, world: &mut World| {
                world.reply(total.reply, kay::Sum(num.value))
            })
            .handler(|num: &mut Num, _: &Touch, _: &mut World| {
                num.touched = num.touched.wrapping_add(num.value)
            });
    }
}

/// `request`: see the module docs.
pub fn request(scale: Scale, reps: usize) -> Vec<Measurement> {
    let n = scale.actors();
    let mut system = ActorSystem::new(config());
    system.register::<Num>();
    let mut world = system.world();
    let nums: Vec<NumID> = (0..n as u64)
        .map(|value| world.spawn::<Num, _>(MakeNum { value }))
        .collect();
    system.turn();
    let expected = (n as u64) * (n as u64 - 1) / 2;
    let mut sums = Vec::new();
    let mut replies: Vec<Reply<u64>> = Vec::with_capacity(n);
    let kay_s = median(reps, || {
        timed(|| {
            for &num in &nums {
                let (reply_to, reply) = world.request_to::<u64>(num);
                world.send(num, Value { reply: reply_to });
                replies.push(reply);
            }
            system.turn();
            let mut cx = Context::from_waker(Waker::noop());
            let mut sum = 0;
            for mut reply in replies.drain(..) {
                match std::pin::Pin::new(&mut reply).poll(&mut cx) {
                    Poll::Ready(Ok(value)) => sum += value,
                    other => {
                        eprintln!("request: an unanswered request: {other:?}");
                        std::process::exit(1);
                    }
                }
            }
            sums.push(sum);
        })
    });
    verify(
        "request",
        "every answer arrived",
        sums.iter().all(|&s| s == expected),
    );
    let values: Vec<u64> = (0..n as u64).collect();
    #[inline(never)]
    fn value_of(values: &[u64], at: usize) -> u64 {
        values[at]
    }
    let plain_s = median(reps, || {
        timed(|| {
            let sum: u64 = (0..n).map(|at| value_of(black_box(&values), at)).sum();
            black_box(sum);
        })
    });
    kay_and_plain(
        "request",
        "request -> reply, per round trip",
        n,
        n,
        kay_s,
        plain_s,
    )
}

#[cfg(feature = "net")]
pub use network::{reduce, reduce_peer};

#[cfg(feature = "net")]
mod network {
    use std::net::SocketAddr;
    use std::process::{Command, Stdio};

    use kay::net::NetConfig;
    use kay::{ActorSystem, Config, MachineID, World};

    use super::{MakeNum, Num, Total, Touch};
    use crate::report::{Measurement, median, timed};
    use crate::workloads::{Scale, config, threads, verify};

    /// Machine `machine` of `addresses` with its share of `n` numbers.
    fn machine(machine: u8, addresses: &[SocketAddr], n: u64) -> (ActorSystem, World) {
        let mut system = ActorSystem::new(Config {
            machine: MachineID(machine),
            threads: threads(),
            max_cycles_per_call: usize::MAX,
            net: Some(NetConfig::new(addresses.to_vec(), "kay-bench reduce")),
            ..Config::default()
        });
        system.register::<Num>();
        let mut world = system.world();
        for value in (u64::from(machine)..n).step_by(addresses.len()) {
            world.spawn::<Num, _>(MakeNum { value });
        }
        (system, world)
    }

    /// The second machine: runs turns until machine 0 is gone.
    pub fn reduce_peer(args: &str) {
        let (n, addresses) = args.split_once(';').expect("n;addresses");
        let addresses: Vec<SocketAddr> = addresses
            .split(',')
            .map(|a| a.parse().expect("an address"))
            .collect();
        let (mut system, _) = machine(1, &addresses, n.parse().expect("n"));
        loop {
            system.turn();
            let stats = system.net_stats().expect("networked");
            if stats.peers[0].joins > 0 && !stats.peers[0].connected {
                return;
            }
        }
    }

    /// `reduce`: see the module docs.
    pub fn reduce(scale: Scale, reps: usize) -> Vec<Measurement> {
        let n = scale.actors() as u64;
        let expected = n * (n - 1) / 2;
        // The baseline first: a broadcast to n instances on one machine.
        let broadcast_s = {
            let mut system = ActorSystem::new(config());
            system.register::<Num>();
            let mut world = system.world();
            for value in 0..n {
                world.spawn::<Num, _>(MakeNum { value });
            }
            system.turn();
            let all = world.local_broadcast::<Num>();
            median(reps, || {
                timed(|| {
                    world.send(all, Touch);
                    system.turn();
                })
            })
        };
        let addresses = kay::net::loopback_addresses(2);
        let list: Vec<String> = addresses.iter().map(ToString::to_string).collect();
        let mut child = Command::new(std::env::current_exe().expect("this binary"))
            .args(["--reduce-peer", &format!("{n};{}", list.join(","))])
            .args(["--threads", &threads().to_string()])
            .stdout(Stdio::null())
            .spawn()
            .expect("the second machine");
        let (mut system, mut world) = machine(0, &addresses, n);
        let all = world.global_broadcast::<Num>();
        let mut sums = Vec::new();
        let reduce_s = median(reps, || {
            timed(|| {
                let (reply_to, reply) = world.request_to(all);
                world.send(all, Total { reply: reply_to });
                let sum = system.block_on(reply.reduce(kay::Sum(0), |a, b| a + b));
                sums.push(sum.map(|sum| sum.0));
            })
        });
        verify(
            "reduce",
            "the sum over both machines",
            sums.iter().all(|s| *s == Ok(expected)),
        );
        drop(world);
        drop(system);
        let _ = child.wait();
        vec![Measurement {
            workload: "reduce",
            what: "map-reduce, 2 machines, per instance",
            system: "kay",
            threads: threads(),
            n: n as usize,
            median_s: reduce_s,
            items: n as usize,
            ratio_to_broadcast: Some(reduce_s / broadcast_s),
            ..Measurement::empty()
        }]
    }
}
