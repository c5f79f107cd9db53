//! Coverage-guided fuzzing of the networked part of kay's snapshots
//! (feature `net`): a real snapshot of machine 0 of two (built once per
//! process by two systems on 127.0.0.1, exchanging messages, requests
//! with continuations and spawns), holding machine 1's batches of the
//! snapshot's turn, with its network part (the end of its `system` file)
//! XORed with the input at an offset (byte 0 even) or replaced by it (odd),
//! planted with right checksums: the load as machine 0 succeeds or gives
//! an error, never a panic, and leaves nothing behind on an error; a
//! system that loaded runs two turns alone (its join time is zero), which
//! applies the frames it loaded.
//!
//! `cd fuzz && TMPDIR=/dev/shm CARGO_BUILD_JOBS=1 cargo +nightly fuzz run snapshot_net_turn -- -max_total_time=120`
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

#[path = "common/planted.rs"]
mod planted;
use kay::net::NetConfig;
use kay::{
    Actor, ActorSystem, ClassSetup, Compact, Config, Continue, MachineID, RawID, ReplyError,
    ReplyTo, TypedID, World,
};
use libfuzzer_sys::fuzz_target;

kay::typed_id!(pub NodeID);

#[derive(Compact, Clone)]
pub struct Node {
    id: NodeID,
    value: u64,
    seen: u64,
}

#[derive(Compact, Clone)]
pub struct Tick;
#[derive(Compact, Clone)]
pub struct Push(u64);
#[derive(Compact, Clone)]
pub struct Peek {
    reply: ReplyTo<u64>,
}
impl kay::Request for Peek {
    type Answer = u64;
    fn reply_to(&self) -> ReplyTo<u64> {
        self.reply
    }
}
#[derive(Compact, Clone)]
pub struct Peeked(u64);
impl Continue<u64> for Peeked {
    fn answered(&mut self, answer: Result<u64, ReplyError>) {
        self.0 = answer.unwrap_or(u64::MAX);
    }
}

impl Actor for Node {
    type ID = NodeID;
    fn id(&self) -> NodeID {
        self.id
    }
    fn setup(class: &mut ClassSetup<Self>) {
        class
            .spawner(|id, seed: &u64, _: &mut World| Node {
                id,
                value: *seed,
                seen: 0,
            })
            .handler(|node: &mut Node, _: &Tick, world: &mut World| {
                node.value = node.value.wrapping_mul(31).wrapping_add(7);
                let raw = node.id.as_raw();
                let other = MachineID(1 - raw.machine.0);
                let partner =
                    NodeID::from_raw(RawID::new(raw.type_id, raw.instance, other, raw.version));
                world.send(partner, Push(node.value));
                let (reply_to, reply) = world.request_to::<u64>(partner);
                world.send(partner, Peek { reply: reply_to });
                reply.then_send(node.id, Peeked(0), world);
                if node.value % 5 == 0 {
                    world.spawn_on::<Node, _>(other, node.value);
                }
            })
            .handler(|node: &mut Node, push: &Push, _: &mut World| node.seen ^= push.0)
            .request_handler(|node: &mut Node, peek: &Peek, world: &mut World| {
                world.reply(peek.reply, node.value);
            })
            .handler(|node: &mut Node, peeked: &Peeked, _: &mut World| {
                node.seen = node.seen.rotate_left(1) ^ peeked.0;
            });
    }
}

fn config(me: u8, addresses: Vec<std::net::SocketAddr>, join: Duration) -> Config {
    let mut net = NetConfig::new(addresses, "fuzz");
    net.join_timeout = join;
    Config {
        machine: MachineID(me),
        threads: 1,
        net: Some(net),
        ..Config::default()
    }
}

fn register(system: &mut ActorSystem) {
    system.register::<Node>();
    system.register_continuation::<u64, Peeked>();
}

/// Where the network part of machine 0's `system` file of a two-machine
/// snapshot starts: the file's last part is `1` (networked), machine 0, 2
/// machines, 1 peer, peer 1, the frame count, the frames and the spawn
/// rotation. The header is searched for, and taken where exactly that
/// structure runs to the end of the file (bytes inside a frame could look
/// like the header).
fn network_part(system: &[u8]) -> usize {
    let mut header = vec![1u8, 0];
    header.extend_from_slice(&2u64.to_le_bytes());
    header.extend_from_slice(&1u64.to_le_bytes());
    header.push(1);
    let u64_at = |at: usize| {
        let bytes = system.get(at..at + 8)?;
        usize::try_from(u64::from_le_bytes(bytes.try_into().unwrap())).ok()
    };
    let runs_to_the_end = |mut at: usize| -> Option<()> {
        let frames = u64_at(at)?;
        at += 8;
        for _ in 0..frames.min(system.len()) {
            at = at.checked_add(8)?.checked_add(u64_at(at)?)?;
        }
        let turns = u64_at(at)?;
        (at.checked_add(8)?.checked_add(turns.checked_mul(4)?)? == system.len()).then_some(())
    };
    (0..system.len().saturating_sub(header.len()))
        .find(|&at| {
            system[at..].starts_with(&header) && runs_to_the_end(at + header.len()).is_some()
        })
        .expect("the network part")
}

/// Machine 0's snapshot files, its metadata and where the network part of
/// its system file starts.
fn original() -> &'static (Vec<(String, Vec<u8>)>, Vec<u8>, usize) {
    static ORIGINAL: OnceLock<(Vec<(String, Vec<u8>)>, Vec<u8>, usize)> = OnceLock::new();
    ORIGINAL.get_or_init(|| {
        let root = std::env::temp_dir().join(format!("kay-fuzz-net-orig-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let addresses = kay::net::loopback_addresses(2);
        std::thread::scope(|scope| {
            for me in 0..2u8 {
                let (root, addresses) = (&root, addresses.clone());
                scope.spawn(move || {
                    let dir = root.join(format!("machine-{me}"));
                    let config = config(me, addresses, Duration::from_secs(30));
                    let mut system = ActorSystem::with_storage(&dir, config).unwrap();
                    register(&mut system);
                    let mut world = system.world();
                    for k in 0..9u64 {
                        world.spawn::<Node, _>(k * 13 + u64::from(me));
                    }
                    for _ in 0..6 {
                        let nodes = world.local_broadcast::<Node>();
                        world.send(nodes, Tick);
                        system.turn();
                    }
                    system.snapshot().unwrap();
                });
            }
        });
        let dir = root.join("machine-0");
        let (files, meta) = planted::newest(&dir);
        let system = &files.iter().find(|(n, _)| n == "system").unwrap().1;
        let at = network_part(system);
        let _ = std::fs::remove_dir_all(&root);
        (files, meta, at)
    })
}

fuzz_target!(|data: &[u8]| {
    let [mode, a, b, rest @ ..] = data else {
        return;
    };
    let (files, meta, net_at) = original();
    let mut files = files.clone();
    let system = &mut files.iter_mut().find(|(n, _)| n == "system").unwrap().1;
    if mode % 2 == 0 {
        planted::xor_at(
            system,
            net_at + usize::from(u16::from_le_bytes([*a, *b])),
            rest,
        );
    } else {
        system.truncate(*net_at);
        system.extend_from_slice(rest);
    }
    let dir = planted::plant("kay-fuzz-net", &files, meta);
    let config = config(0, kay::net::loopback_addresses(2), Duration::ZERO);
    let mut loaded = ActorSystem::with_storage(&dir, config).unwrap();
    register(&mut loaded);
    if let Ok(Some(_)) = loaded.load() {
        // Alone (no peer joins in no time): the loaded frames are applied.
        for _ in 0..2 {
            loaded.turn();
        }
    } else {
        assert_eq!(loaded.instance_count::<Node>(), 0);
    }
    drop(loaded);
    let _ = std::fs::remove_dir_all(&dir);
});
