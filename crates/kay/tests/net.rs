//! Networking between processes: the test binary runs itself as 2 or 3
//! child processes (machines) on 127.0.0.1, each printing what its actors
//! received; the parent checks every message kind arrived exactly once and
//! in order, and that lockstep runs repeat exactly.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::{Command, Output};
use std::time::Duration;

use kay::net::NetConfig;
use kay::{
    Actor, ActorSystem, CVec, ClassSetup, Compact, Config, MachineID, RawID, ReplyError, ReplyTo,
    TypedID, World,
};

kay::typed_id!(SinkID);

/// Each machine's actor: counts what arrives and checks per-sender order.
#[derive(Compact, Clone)]
struct Sink {
    id: SinkID,
    /// Next expected sequence number by (machine, lane) = 2 * machine + lane.
    next: [u32; 8],
    out_of_order: u32,
    received: u32,
    hellos: u32,
    greets: u32,
    dones: u32,
    /// A running hash of everything received, in order.
    hash: u64,
}

#[derive(Compact, Clone)]
struct SpawnSink {
    tag: u32,
}

/// A numbered message; `lane` 0: sent from outside, 1: from a handler.
#[derive(Compact, Clone)]
struct Seq {
    from: u8,
    lane: u8,
    seq: u32,
}

/// Tells a sink to send `count` numbered messages to `to` from its handler.
#[derive(Compact, Clone)]
struct Relay {
    to: SinkID,
    count: u32,
    first: u32,
}

/// Sent to every machine once a machine's requests were answered.
#[derive(Compact, Clone)]
struct Done;

/// A request across machines: what the sink received so far (a dynamic
/// answer, validated on arrival).
#[derive(Compact, Clone)]
struct Ask {
    reply: ReplyTo<CVec<u32>>,
}

impl kay::Request for Ask {
    type Answer = CVec<u32>;
    fn reply_to(&self) -> ReplyTo<CVec<u32>> {
        self.reply
    }
}

/// A global broadcast to the class.
#[derive(Compact, Clone)]
struct Hello {
    from: u8,
}

#[kay::actor_trait]
trait Greeter {
    fn greet(&mut self, from: u8, world: &mut World);
}

#[kay::implements]
impl Greeter for Sink {
    fn greet(&mut self, from: u8, _: &mut World) {
        self.greets += 1;
        self.mix(1000 + u64::from(from));
    }
}

impl Sink {
    fn mix(&mut self, value: u64) {
        self.hash = (self.hash ^ value).wrapping_mul(0x0100_0000_01b3);
    }
}

impl Actor for Sink {
    type ID = SinkID;
    fn id(&self) -> SinkID {
        self.id
    }
    fn setup(class: &mut ClassSetup<Self>) {
        class
            .spawner(|id, spawn: &SpawnSink, _: &mut World| Sink {
                id,
                next: [0; 8],
                out_of_order: 0,
                received: 0,
                hellos: 0,
                greets: 0,
                dones: 0,
                hash: u64::from(spawn.tag),
            })
            .handler(|sink: &mut Sink, seq: &Seq, _: &mut World| {
                let slot = &mut sink.next[2 * seq.from as usize + seq.lane as usize];
                if seq.seq != *slot {
                    sink.out_of_order += 1;
                }
                *slot = seq.seq + 1;
                sink.received += 1;
                sink.mix(u64::from(seq.seq) << 8 | u64::from(seq.from));
            })
            .handler(|sink: &mut Sink, relay: &Relay, world: &mut World| {
                let from = world.machine().0;
                for n in 0..relay.count {
                    world.send(
                        relay.to,
                        Seq {
                            from,
                            lane: 1,
                            seq: relay.first + n,
                        },
                    );
                }
                sink.mix(7);
            })
            .request_handler(|sink: &mut Sink, ask: &Ask, world: &mut World| {
                world.reply(ask.reply, vec![sink.received, sink.hellos].into());
            })
            .handler(|sink: &mut Sink, _: &Done, _: &mut World| sink.dones += 1)
            .handler(|sink: &mut Sink, hello: &Hello, _: &mut World| {
                sink.hellos += 1;
                sink.mix(500 + u64::from(hello.from));
            });
    }
}

const TURNS: u64 = 30;
const PER_TURN: u32 = 500;

/// The same ID on another machine (every machine spawns its first sink
/// the same way, so only the machine differs).
fn on(machine: u8, id: SinkID) -> SinkID {
    let raw = id.as_raw();
    SinkID::from_raw(RawID::new(
        raw.type_id,
        raw.instance,
        MachineID(machine),
        raw.version,
    ))
}

fn config(machine: u8, addresses: &[SocketAddr], secret: &str) -> Config {
    let mut net = NetConfig::new(addresses.to_vec(), secret);
    net.join_timeout = Duration::from_secs(20);
    Config {
        machine: MachineID(machine),
        threads: 2,
        net: Some(net),
        ..Config::default()
    }
}

/// One machine's run: prints `RESULT machine sinks received out_of_order
/// hellos greets hash` and each peer's stats.
fn machine(machine: u8, addresses: Vec<SocketAddr>) {
    let n = addresses.len() as u8;
    let mut system = ActorSystem::new(config(machine, &addresses, "the cluster secret"));
    system.register::<Sink>();
    system.register_trait::<dyn Greeter>();
    let mut world = system.world();
    let sink = world.spawn::<Sink, _>(SpawnSink { tag: 1 });
    let mut seq = vec![0u32; n as usize];
    let mut relayed = vec![0u32; n as usize];
    for turn in 1..=TURNS {
        if turn <= TURNS - 5 {
            for other in (0..n).filter(|&m| m != machine) {
                for _ in 0..PER_TURN {
                    let at = &mut seq[other as usize];
                    world.send(
                        on(other, sink),
                        Seq {
                            from: machine,
                            lane: 0,
                            seq: *at,
                        },
                    );
                    *at += 1;
                }
                world.send(
                    sink,
                    Relay {
                        to: on(other, sink),
                        count: 100,
                        first: relayed[other as usize],
                    },
                );
                relayed[other as usize] += 100;
            }
        }
        if turn == 3 {
            let all = world.global_broadcast::<Sink>();
            world.send(all, Hello { from: machine });
            let greeters = world.global_broadcast_trait::<dyn Greeter>();
            greeters.greet(machine, &mut world);
        }
        if turn == 2 {
            for other in (0..n).filter(|&m| m != machine) {
                world.spawn_on::<Sink, _>(MachineID(other), SpawnSink { tag: 2 });
            }
        }
        if turn == 4 {
            // Trait dispatch to one instance on another machine.
            for other in (0..n).filter(|&m| m != machine) {
                let greeter = GreeterID::from_raw(on(other, sink).as_raw());
                greeter.greet(machine, &mut world);
            }
        }
        system.turn();
    }
    let sinks = system
        .with_instances::<Sink, _>(|s| (s.received, s.out_of_order, s.hellos, s.greets, s.hash));
    // Requests to every other machine: an answer from a live sink, and a
    // failure from an ID that names nobody there.
    for other in (0..n).filter(|&m| m != machine) {
        let (reply_to, reply) = world.request::<CVec<u32>>();
        world.send(on(other, sink), Ask { reply: reply_to });
        let answer = system.block_on(reply).expect("an answer");
        println!("ANSWER {machine} {other} {:?}", &answer[..]);
        assert_eq!(
            answer[0],
            (n as u32 - 1) * (TURNS as u32 - 5) * (PER_TURN + 100)
        );
        let raw = sink.as_raw();
        let nobody = SinkID::from_raw(RawID::new(raw.type_id, 999, MachineID(other), 0));
        let (reply_to, reply) = world.request::<CVec<u32>>();
        world.send(nobody, Ask { reply: reply_to });
        assert_eq!(system.block_on(reply), Err(ReplyError::NoRecipient));
    }
    // Stay until every other machine got its answers from this one.
    let all = world.global_broadcast::<Sink>();
    world.send(all, Done);
    while system
        .with_instances::<Sink, _>(|s| s.dones)
        .into_iter()
        .max()
        < Some(n as u32)
    {
        system.turn();
    }
    let received: u32 = sinks.iter().map(|s| s.0).sum();
    let out_of_order: u32 = sinks.iter().map(|s| s.1).sum();
    let hellos: u32 = sinks.iter().map(|s| s.2).sum();
    let greets: u32 = sinks.iter().map(|s| s.3).sum();
    let hash = sinks.iter().fold(0u64, |h, s| h.rotate_left(5) ^ s.4);
    println!(
        "RESULT {machine} {} {received} {out_of_order} {hellos} {greets} {hash}",
        sinks.len()
    );
    let stats = system.net_stats().expect("networked");
    for peer in &stats.peers {
        println!(
            "PEER {machine} {} sent={} received={} dropped={} refused={} bytes={}",
            peer.machine, peer.sent, peer.received, peer.dropped, peer.refused, peer.bytes_sent
        );
    }
}

/// A class only some machines register (a fingerprint mismatch).
#[derive(Compact, Clone)]
struct Extra {
    id: SinkID,
}

impl Actor for Extra {
    type ID = SinkID;
    fn id(&self) -> SinkID {
        self.id
    }
    fn setup(_: &mut ClassSetup<Self>) {}
}

/// Runs `role` in `n` child processes (this test binary, re-run with
/// `KAY_NET_ROLE`), with `env` set for the machines in it; returns their
/// outputs by machine.
fn run_machines(role: &str, n: usize, env: &[(u8, &str, &str)]) -> Vec<Output> {
    let addresses = kay::net::loopback_addresses(n);
    let list: Vec<String> = addresses.iter().map(|a| a.to_string()).collect();
    let children: Vec<_> = (0..n)
        .map(|m| {
            let mut command = Command::new(std::env::current_exe().expect("the test binary"));
            command
                .args(["--exact", "child", "--nocapture", "--test-threads=1"])
                .env("KAY_NET_ROLE", role)
                .env("KAY_NET_MACHINE", m.to_string())
                .env("KAY_NET_ADDRESSES", list.join(","));
            for (machine, key, value) in env {
                if *machine as usize == m {
                    command.env(key, value);
                }
            }
            command
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("a child machine")
        })
        .collect();
    children
        .into_iter()
        .map(|child| child.wait_with_output().expect("the child's output"))
        .collect()
}

/// The child side: what `run_machines` started.
#[test]
fn child() {
    let Ok(role) = std::env::var("KAY_NET_ROLE") else {
        return;
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(tracing::Level::INFO)
        .init();
    let me: u8 = std::env::var("KAY_NET_MACHINE").unwrap().parse().unwrap();
    let addresses: Vec<SocketAddr> = std::env::var("KAY_NET_ADDRESSES")
        .unwrap()
        .split(',')
        .map(|a| a.parse().unwrap())
        .collect();
    match role.as_str() {
        "exchange" => machine(me, addresses),
        "refused" => {
            let secret = std::env::var("KAY_NET_SECRET").unwrap_or("the cluster secret".into());
            let mut config = config(me, &addresses, &secret);
            config.net.as_mut().unwrap().join_timeout = Duration::from_secs(3);
            let mut system = ActorSystem::new(config);
            system.register::<Sink>();
            system.register_trait::<dyn Greeter>();
            if std::env::var("KAY_NET_EXTRA").is_ok() {
                system.register::<Extra>();
            }
            system.turn();
            let stats = system.net_stats().unwrap();
            println!("JOINS {}", stats.peers.iter().map(|p| p.joins).sum::<u64>());
        }
        "kill-sender" => kill_sender(addresses),
        "kill-receiver" => kill_receiver(addresses),
        "link-sender" => link_sender(addresses),
        "link-receiver" => kill_receiver(addresses),
        "distance" => distance(me, addresses),
        "reduce" => reduce(me, addresses),
        "hang" => hang(me, addresses),
        "persist" => persist(me, addresses),
        other => panic!("unknown role {other}"),
    }
}

/// Parses the children's `RESULT` lines: machine → (sinks, received,
/// out of order, hellos, greets, hash).
fn results(outputs: &[Output]) -> BTreeMap<u8, (u32, u32, u32, u32, u32, u64)> {
    let mut results = BTreeMap::new();
    for output in outputs {
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "a machine failed:\n{stdout}\n{stderr}"
        );
        let line = stdout
            .lines()
            .find_map(|l| l.split_once("RESULT ").map(|(_, result)| result))
            .unwrap_or_else(|| panic!("no result:\n{stdout}\n{stderr}"));
        let f: Vec<u64> = line.split(' ').map(|x| x.parse().unwrap()).collect();
        results.insert(
            f[0] as u8,
            (
                f[1] as u32,
                f[2] as u32,
                f[3] as u32,
                f[4] as u32,
                f[5] as u32,
                f[6],
            ),
        );
    }
    results
}

fn exchange(n: usize) -> BTreeMap<u8, (u32, u32, u32, u32, u32, u64)> {
    let outputs = run_machines("exchange", n, &[]);
    let results = results(&outputs);
    let others = n as u32 - 1;
    let sends_per_peer = (TURNS as u32 - 5) * (PER_TURN + 100);
    for (machine, &(sinks, received, out_of_order, hellos, greets, _)) in &results {
        assert_eq!(
            sinks,
            1 + others,
            "machine {machine}: spawned by every peer"
        );
        assert_eq!(received, others * sends_per_peer, "machine {machine}");
        assert_eq!(out_of_order, 0, "machine {machine}: per-sender order");
        // A machine's own global broadcast (sent before turn 3) reaches its
        // first sink only: the sinks spawned from other machines arrive in
        // the same turn, behind it. The others' broadcasts arrive in turn 4
        // and reach every sink.
        let expected = 1 + others * (1 + others);
        assert_eq!(hellos, expected, "machine {machine}: hellos");
        // Plus one greet through a trait ID from every other machine.
        assert_eq!(greets, expected + others, "machine {machine}: greets");
    }
    results
}

#[test]
fn two_machines_exchange_every_kind_of_message() {
    exchange(2);
}

#[test]
fn three_machines_in_lockstep_repeat_exactly() {
    let first = exchange(3);
    let second = exchange(3);
    assert_eq!(first, second, "lockstep runs must give the same state");
}

/// Runs two machines that must refuse each other (machine 1 gets `env`),
/// and checks that neither joined and both logged `says`.
fn refused(env: (&str, &str), says: &[&str]) {
    let outputs = run_machines("refused", 2, &[(1, env.0, env.1)]);
    for (machine, output) in outputs.iter().enumerate() {
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{stdout}\n{stderr}");
        assert!(
            stdout.contains("JOINS 0"),
            "machine {machine} joined:\n{stdout}"
        );
        assert!(
            says.iter().all(|s| stderr.contains(s)),
            "machine {machine} does not say {says:?}:\n{stderr}"
        );
    }
}

#[test]
fn a_wrong_secret_is_refused_on_both_sides() {
    refused(("KAY_NET_SECRET", "a guess"), &["wrong secret"]);
}

#[test]
fn a_different_registry_is_refused_naming_the_first_difference() {
    refused(("KAY_NET_EXTRA", "1"), &["fingerprint mismatch", "Extra"]);
}

/// Machine 0 of the fault tests: sends `per_turn` numbered messages a
/// turn (5 ms apart) to machine 1's sink for `seconds`, calling `watch`
/// after each turn; then runs turns until every message is accounted for
/// (delivered, dropped or lost; at most 20 s more). Prints `STATS sent
/// delivered dropped lost joins written turns` and what `watch` returns.
fn fault_sender(
    addresses: Vec<SocketAddr>,
    peer_buffer_bytes: usize,
    seconds: u64,
    per_turn: u32,
    mut watch: impl FnMut(&kay::net::PeerStats) -> u64,
) {
    let mut config = config(0, &addresses, "the cluster secret");
    let net = config.net.as_mut().unwrap();
    net.max_turn_distance = 2;
    net.peer_buffer_bytes = peer_buffer_bytes;
    let mut system = ActorSystem::new(config);
    system.register::<Sink>();
    system.register_trait::<dyn Greeter>();
    let mut world = system.world();
    let sink = world.spawn::<Sink, _>(SpawnSink { tag: 1 });
    let stats = |system: &ActorSystem| system.net_stats().unwrap().peers[0].clone();
    let (mut seq, mut turns, mut watched) = (0, 0, 0);
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_secs(seconds) {
        for _ in 0..per_turn {
            let to = on(1, sink);
            world.send(
                to,
                Seq {
                    from: 0,
                    lane: 0,
                    seq,
                },
            );
            seq += 1;
        }
        system.turn();
        turns += 1;
        watched = watch(&stats(&system));
        std::thread::sleep(Duration::from_millis(5));
    }
    let settle = std::time::Instant::now();
    let mut peer = stats(&system);
    while peer.sent != peer.delivered + peer.dropped + peer.lost
        && settle.elapsed() < Duration::from_secs(20)
    {
        system.turn();
        std::thread::sleep(Duration::from_millis(5));
        peer = stats(&system);
    }
    println!(
        "STATS {} {} {} {} {} {seq} {turns} {watched}",
        peer.sent, peer.delivered, peer.dropped, peer.lost, peer.joins
    );
}

/// Machine 0 of the kill test: 1,000 messages a turn for 3 s, a 64 KiB
/// buffer for machine 1 while it is gone; watches what was delivered when
/// machine 1 was first lost.
fn kill_sender(addresses: Vec<SocketAddr>) {
    let mut at_loss = None;
    fault_sender(addresses, 64 << 10, 3, 1000, |peer| {
        if at_loss.is_none() && peer.joins == 1 && !peer.connected {
            at_loss = Some(peer.delivered);
        }
        at_loss.unwrap_or(u64::MAX)
    });
}

/// Machine 1 of the fault tests: runs until machine 0 is gone, then prints
/// what its sink received.
fn kill_receiver(addresses: Vec<SocketAddr>) {
    let mut system = ActorSystem::new(config(1, &addresses, "the cluster secret"));
    system.register::<Sink>();
    system.register_trait::<dyn Greeter>();
    system.world().spawn::<Sink, _>(SpawnSink { tag: 1 });
    loop {
        system.turn();
        let peer = system.net_stats().unwrap().peers[0].clone();
        if peer.joins > 0 && !peer.connected {
            break;
        }
    }
    let received: u32 = system
        .with_instances::<Sink, _>(|s| s.received)
        .iter()
        .sum();
    println!("RECEIVED {received}");
}

/// Starts `role` as machine `machine` of `addresses` (in network namespace
/// `namespace`, if given).
fn start_machine(
    role: &str,
    machine: usize,
    addresses: &str,
    namespace: Option<&str>,
) -> std::process::Child {
    let test = std::env::current_exe().unwrap();
    let mut command = match namespace {
        Some(namespace) => {
            let mut command = Command::new("ip");
            command.args(["netns", "exec", namespace]).arg(test);
            command
        }
        None => Command::new(test),
    };
    command
        .args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env("KAY_NET_ROLE", role)
        .env("KAY_NET_MACHINE", machine.to_string())
        .env("KAY_NET_ADDRESSES", addresses)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// The numbers behind `prefix` in a child's stdout.
fn numbers_after(output: &Output, prefix: &str) -> Vec<u64> {
    let out = String::from_utf8_lossy(&output.stdout);
    let err = String::from_utf8_lossy(&output.stderr);
    out.lines()
        .find_map(|l| l.split_once(prefix).map(|(_, s)| s))
        .unwrap_or_else(|| panic!("no {prefix:?} line:\n{out}\n{err}"))
        .split(' ')
        .map(|x| x.parse().unwrap())
        .collect()
}

/// What the sender of a fault test counted.
struct FaultStats {
    sent: u64,
    delivered: u64,
    dropped: u64,
    lost: u64,
    joins: u64,
    written: u64,
    turns: u64,
    watched: u64,
}

impl FaultStats {
    fn of(sender: &Output) -> FaultStats {
        let f = numbers_after(sender, "STATS ");
        FaultStats {
            sent: f[0],
            delivered: f[1],
            dropped: f[2],
            lost: f[3],
            joins: f[4],
            written: f[5],
            turns: f[6],
            watched: f[7],
        }
    }
}

#[test]
fn a_peer_killed_and_restarted_rejoins_and_every_message_is_accounted_for() {
    let addresses = kay::net::loopback_addresses(2);
    let list: Vec<String> = addresses.iter().map(|a| a.to_string()).collect();
    let list = list.join(",");
    let sender = start_machine("kill-sender", 0, &list, None);
    let mut first = start_machine("kill-receiver", 1, &list, None);
    std::thread::sleep(Duration::from_millis(800));
    first.kill().expect("SIGKILL");
    let _ = first.wait();
    std::thread::sleep(Duration::from_millis(700));
    let second = start_machine("kill-receiver", 1, &list, None);
    let s = FaultStats::of(&sender.wait_with_output().unwrap());
    let received = numbers_after(&second.wait_with_output().unwrap(), "RECEIVED ")[0];
    eprintln!(
        "sent {} delivered {} dropped {} lost {} (delivered before the kill {}, after {received}) \
         joins {}",
        s.sent, s.delivered, s.dropped, s.lost, s.watched, s.joins
    );
    assert_eq!(s.sent, s.written, "every message written was sent");
    assert_eq!(
        s.sent,
        s.delivered + s.dropped + s.lost,
        "every message accounted for"
    );
    assert!(
        s.dropped > 0,
        "the buffer of 64 KiB overflowed while it was down"
    );
    assert_eq!(s.joins, 2, "it rejoined once");
    assert_eq!(
        received,
        s.delivered - s.watched,
        "the restarted machine got exactly what was delivered after the loss"
    );
}

/// Machine 0 of the link test: 100 messages a turn for 4 s.
fn link_sender(addresses: Vec<SocketAddr>) {
    fault_sender(addresses, 64 << 20, 4, 100, |_| 0);
}

/// Runs `command` (an `ip` invocation), panicking with its output if it fails.
fn ip(args: &[&str]) {
    let output = Command::new("ip").args(args).output().expect("ip runs");
    assert!(
        output.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Two network namespaces joined by a veth pair, removed when dropped.
struct Namespaces {
    names: [String; 2],
}

impl Namespaces {
    /// Creates them, or says why it cannot (no root, no `ip netns`).
    fn new() -> Result<Namespaces, String> {
        let tag = std::process::id();
        let names = [format!("kay-a{tag}"), format!("kay-b{tag}")];
        let probe = Command::new("ip")
            .args(["netns", "add", &names[0]])
            .output()
            .map_err(|e| format!("no `ip` command: {e}"))?;
        if !probe.status.success() {
            return Err(format!(
                "cannot create a network namespace (root is needed): {}",
                String::from_utf8_lossy(&probe.stderr).trim()
            ));
        }
        let namespaces = Namespaces { names };
        let [a, b] = &namespaces.names;
        ip(&["netns", "add", b]);
        let (va, vb) = (format!("ka{tag}"), format!("kb{tag}"));
        ip(&["link", "add", &va, "type", "veth", "peer", "name", &vb]);
        ip(&["link", "set", &va, "netns", a]);
        ip(&["link", "set", &vb, "netns", b]);
        ip(&["-n", a, "addr", "add", "10.77.0.1/24", "dev", &va]);
        ip(&["-n", b, "addr", "add", "10.77.0.2/24", "dev", &vb]);
        for (ns, dev) in [(a, &va), (b, &vb)] {
            ip(&["-n", ns, "link", "set", dev, "up"]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        Ok(namespaces)
    }

    /// Takes machine 0's end of the link down (`up: false`) or up.
    fn link(&self, up: bool) {
        let device = format!("ka{}", std::process::id());
        ip(&[
            "-n",
            &self.names[0],
            "link",
            "set",
            &device,
            if up { "up" } else { "down" },
        ]);
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for name in &self.names {
            let _ = Command::new("ip").args(["netns", "del", name]).output();
        }
    }
}

#[test]
fn machines_in_two_network_namespaces_survive_a_cut_link() {
    let namespaces = match Namespaces::new() {
        Ok(namespaces) => namespaces,
        Err(why) => {
            println!("skipped: {why}");
            return;
        }
    };
    let addresses = ["10.77.0.1:7801", "10.77.0.2:7802"].join(",");
    let [a, b] = &namespaces.names;
    let sender = start_machine("link-sender", 0, &addresses, Some(a));
    let receiver = start_machine("link-receiver", 1, &addresses, Some(b));
    std::thread::sleep(Duration::from_millis(1000));
    namespaces.link(false);
    std::thread::sleep(Duration::from_millis(1000));
    namespaces.link(true);
    let s = FaultStats::of(&sender.wait_with_output().unwrap());
    let received = numbers_after(&receiver.wait_with_output().unwrap(), "RECEIVED ")[0];
    eprintln!(
        "sent {} delivered {} dropped {} lost {} joins {}, received {received}, turns {}",
        s.sent, s.delivered, s.dropped, s.lost, s.joins, s.turns
    );
    assert_eq!(s.sent, s.written);
    assert_eq!(
        s.sent,
        s.delivered + s.dropped + s.lost,
        "every message accounted for"
    );
    assert_eq!(
        received, s.delivered,
        "what arrived is what was acknowledged"
    );
}

/// The turn distance test: machine 1 takes 4 ms per turn, machine 0 none;
/// machine 0 prints the largest lead it ever had (its finished turns minus
/// machine 1's) over 100 turns.
fn distance(me: u8, addresses: Vec<SocketAddr>) {
    let mut config = config(me, &addresses, "the cluster secret");
    config.net.as_mut().unwrap().max_turn_distance = 3;
    let mut system = ActorSystem::new(config);
    system.register::<Sink>();
    system.register_trait::<dyn Greeter>();
    let mut lead = 0;
    for _ in 0..100 {
        system.turn();
        if me == 1 {
            std::thread::sleep(Duration::from_millis(4));
        } else {
            let peer = system.net_stats().unwrap().peers[0].turn;
            lead = lead.max(system.current_turn() as i64 - peer as i64);
        }
    }
    println!("LEAD {lead}");
}

#[test]
fn a_fast_machine_never_runs_further_ahead_than_the_distance() {
    let outputs = run_machines("distance", 2, &[]);
    let out = String::from_utf8_lossy(&outputs[0].stdout);
    let lead: i64 = out
        .lines()
        .find_map(|l| l.split_once("LEAD ").map(|(_, s)| s.parse().unwrap()))
        .unwrap_or_else(|| panic!("no lead:\n{out}"));
    // Before turn T it waits for the peer's turn T - 1 - 3: after it, it
    // is at most 4 ahead of what it knows of the peer.
    assert!(lead <= 4, "machine 0 ran {lead} turns ahead");
    assert!(
        lead >= 2,
        "machine 0 was never ahead ({lead}): the test shows nothing"
    );
}

// ------------------------------------------------------------ map-reduce

kay::typed_id!(NumID);

/// A number, spread over the machines: what map-reduce gathers.
#[derive(Compact, Clone)]
struct Num {
    id: NumID,
    value: u64,
}

#[derive(Compact, Clone)]
struct SpawnNum {
    value: u64,
}

/// Asks a `Num` for its value.
#[derive(Compact, Clone)]
struct Value {
    reply: ReplyTo<u64>,
}

impl kay::Request for Value {
    type Answer = u64;
    fn reply_to(&self) -> ReplyTo<u64> {
        self.reply
    }
}

/// Asks a `Num` for its value as a `Sum`: combined on each machine.
#[derive(Compact, Clone)]
struct Total {
    reply: ReplyTo<kay::Sum<u64>>,
}

impl kay::Request for Total {
    type Answer = kay::Sum<u64>;
    fn reply_to(&self) -> ReplyTo<kay::Sum<u64>> {
        self.reply
    }
}

/// A request whose handler kills its own process with SIGKILL: the peer
/// dies in the middle of answering.
#[derive(Compact, Clone)]
struct Hang {
    reply: ReplyTo<u64>,
}

impl kay::Request for Hang {
    type Answer = u64;
    fn reply_to(&self) -> ReplyTo<u64> {
        self.reply
    }
}

impl Actor for Num {
    type ID = NumID;
    fn id(&self) -> NumID {
        self.id
    }
    fn setup(class: &mut ClassSetup<Self>) {
        class
            .spawner(|id, spawn: &SpawnNum, _: &mut World| Num {
                id,
                value: spawn.value,
            })
            .request_handler(|num: &mut Num, value: &Value, world: &mut World| {
                world.reply(value.reply, num.value)
            })
            .request_handler(|num: &mut Num, total: &Total, world: &mut World| {
                world.reply(total.reply, kay::Sum(num.value))
            })
            .request_handler(|_: &mut Num, _: &Hang, _: &mut World| {
                let status = Command::new("kill")
                    .args(["-9", &std::process::id().to_string()])
                    .status();
                panic!("still alive after kill -9: {status:?}");
            });
    }
}

/// The numbers spread over the machines.
const NUMS: u64 = 100_000;

/// A system with the classes of the map-reduce roles, its first sink, and
/// this machine's share of the numbers (every `n`-th from `me` on).
fn numbers(me: u8, addresses: &[SocketAddr]) -> (ActorSystem, World, SinkID, NumID) {
    let n = addresses.len() as u64;
    let mut system = ActorSystem::new(config(me, addresses, "the cluster secret"));
    system.register::<Sink>();
    system.register_trait::<dyn Greeter>();
    system.register::<Num>();
    let mut world = system.world();
    let sink = world.spawn::<Sink, _>(SpawnSink { tag: 1 });
    let mut first = None;
    for value in (u64::from(me)..NUMS).step_by(n as usize) {
        let id = world.spawn::<Num, _>(SpawnNum { value });
        first.get_or_insert(id);
    }
    // Every machine has spawned its numbers once the first turns are done
    // (lockstep: a request sent after them reaches them all).
    system.turn();
    system.turn();
    (
        system,
        world,
        sink,
        first.expect("numbers on every machine"),
    )
}

/// Broadcasts `Done` and runs turns until every machine's `Done` arrived.
fn finish(system: &mut ActorSystem, world: &mut World, machines: usize) {
    let all = world.global_broadcast::<Sink>();
    world.send(all, Done);
    while system.with_instances::<Sink, _>(|s| s.dones)[0] < machines as u32 {
        system.turn();
    }
}

/// Machine 0 map-reduces over every machine's numbers; prints `SUM`,
/// `COLLECTED` (count, whether each number came once) and `THEIRS` (the
/// sum over machine 1's numbers only, through its local broadcast ID).
fn reduce(me: u8, addresses: Vec<SocketAddr>) {
    let n = addresses.len();
    let (mut system, mut world, _, _) = numbers(me, &addresses);
    if me == 0 {
        let all = world.global_broadcast::<Num>();
        let (reply_to, reply) = world.request_to::<u64>(all);
        world.send(all, Value { reply: reply_to });
        let sum = system.block_on(reply.reduce(0, |sum, v| sum + v));
        println!("SUM {}", sum.expect("a sum"));
        let (reply_to, reply) = world.request_to::<u64>(all);
        world.send(all, Value { reply: reply_to });
        let mut every = system
            .block_on(reply.collect::<Vec<_>>())
            .expect("every number");
        every.sort_unstable();
        let once = every.iter().copied().eq(0..NUMS);
        println!("COLLECTED {} {}", every.len(), u8::from(once));
        let type_id = all.as_raw().type_id;
        let theirs = NumID::from_raw(RawID::local_broadcast(type_id, MachineID(1)));
        let (reply_to, reply) = world.request_to::<u64>(theirs);
        world.send(theirs, Value { reply: reply_to });
        let sum = system.block_on(reply.reduce(0, |sum, v| sum + v));
        println!("THEIRS {}", sum.expect("machine 1's sum"));
        // Combined on each machine: one partial per machine.
        let (reply_to, reply) = world.request_to(all);
        world.send(all, Total { reply: reply_to });
        let partials = system
            .block_on(reply.collect::<Vec<_>>())
            .expect("partial sums");
        let sum: u64 = partials.iter().map(|s| s.0).sum();
        println!("COMBINED {sum} {}", partials.len());
        let late = system.stats().late_replies;
        println!("LATE {late}");
    }
    finish(&mut system, &mut world, n);
}

fn expect_line(output: &Output, prefix: &str) -> String {
    let out = String::from_utf8_lossy(&output.stdout);
    let err = String::from_utf8_lossy(&output.stderr);
    out.lines()
        .find_map(|l| l.split_once(prefix).map(|(_, rest)| rest.to_owned()))
        .unwrap_or_else(|| panic!("no {prefix:?} line:\n{out}\n{err}"))
}

fn map_reduce_over(n: usize) {
    let outputs = run_machines("reduce", n, &[]);
    for output in &outputs {
        assert!(
            output.status.success(),
            "a machine failed:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let first = &outputs[0];
    assert_eq!(
        expect_line(first, "SUM "),
        (NUMS * (NUMS - 1) / 2).to_string()
    );
    assert_eq!(expect_line(first, "COLLECTED "), format!("{NUMS} 1"));
    let theirs: u64 = (1..NUMS).step_by(n).sum();
    assert_eq!(expect_line(first, "THEIRS "), theirs.to_string());
    assert_eq!(
        expect_line(first, "COMBINED "),
        format!("{} {n}", NUMS * (NUMS - 1) / 2)
    );
    assert_eq!(expect_line(first, "LATE "), "0");
}

#[test]
fn map_reduce_over_100_000_numbers_on_two_machines() {
    map_reduce_over(2);
}

#[test]
fn map_reduce_over_100_000_numbers_on_three_machines() {
    map_reduce_over(3);
}

/// Machine 0 asks machine 1's first number a question that kills machine 1
/// (SIGKILL) while it handles it, and map-reduces over every machine at the
/// same time; prints both outcomes (`HANG`, `REDUCE`).
fn hang(me: u8, addresses: Vec<SocketAddr>) {
    let (mut system, mut world, _, first) = numbers(me, &addresses);
    if me == 0 {
        let mut theirs = first.as_raw();
        theirs.machine = MachineID(1);
        let theirs = NumID::from_raw(theirs);
        let (reply_to, hang) = world.request_to::<u64>(theirs);
        world.send(theirs, Hang { reply: reply_to });
        let all = world.global_broadcast::<Num>();
        let (reply_to, reduce) = world.request_to::<u64>(all);
        world.send(all, Value { reply: reply_to });
        println!("HANG {:?}", system.block_on(hang));
        println!(
            "REDUCE {:?}",
            system.block_on(reduce.reduce(0, |a, b| a + b))
        );
    } else {
        loop {
            system.turn();
        }
    }
}

#[test]
fn a_peer_killed_mid_request_fails_the_request_naming_it() {
    let outputs = run_machines("hang", 2, &[]);
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        outputs[1].status.signal(),
        Some(9),
        "machine 1 was killed with SIGKILL:\n{}",
        String::from_utf8_lossy(&outputs[1].stderr)
    );
    let lost = "Err(PeerLost { machine: MachineID(1) })";
    assert_eq!(expect_line(&outputs[0], "HANG "), lost);
    assert_eq!(expect_line(&outputs[0], "REDUCE "), lost);
}

kay::typed_id!(NodeID);

/// A node of the snapshot test: every turn it pushes its value to its
/// partner on the other machine and asks for the partner's value (a
/// request across machines whose continuation waits over turn ends).
#[derive(Compact, Clone)]
struct Node {
    id: NodeID,
    /// Spawned by the other machine (such nodes spawn no more).
    spawned: bool,
    value: u64,
    pushes: u32,
    peeks: u32,
    hash: u64,
}

#[derive(Compact, Clone)]
struct Tick;

#[derive(Compact, Clone)]
struct Push(u64);

/// The continuation that takes the answer to a `Value` request.
#[derive(Compact, Clone)]
struct Peeked {
    value: u64,
    failed: bool,
}

impl kay::Continue<u64> for Peeked {
    fn answered(&mut self, answer: Result<u64, ReplyError>) {
        match answer {
            Ok(value) => self.value = value,
            Err(_) => self.failed = true,
        }
    }
}

impl Node {
    fn mix(&mut self, value: u64) {
        self.hash = (self.hash ^ value).wrapping_mul(0x0100_0000_01b3);
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
                spawned: *seed >= SPAWNED,
                value: *seed,
                pushes: 0,
                peeks: 0,
                hash: *seed,
            })
            .handler(|node: &mut Node, _: &Tick, world: &mut World| {
                node.value = node.value.wrapping_mul(31).wrapping_add(7);
                let raw = node.id.as_raw();
                let other = MachineID(1 - raw.machine.0);
                let partner =
                    NodeID::from_raw(RawID::new(raw.type_id, raw.instance, other, raw.version));
                world.send(partner, Push(node.value));
                // The first nodes now and then spawn one on the other
                // machine (where it lands depends on that machine's
                // rotation of spawns over its shards).
                if !node.spawned && node.pushes % 7 == 3 {
                    world.spawn_on::<Node, _>(other, SPAWNED + node.value % 1000);
                }
                let (reply_to, reply) = world.request_to::<u64>(partner);
                world.send(partner, Value { reply: reply_to });
                reply.then_send(
                    node.id,
                    Peeked {
                        value: 0,
                        failed: false,
                    },
                    world,
                );
            })
            .handler(|node: &mut Node, push: &Push, _: &mut World| {
                node.pushes += 1;
                node.mix(push.0);
            })
            .request_handler(|node: &mut Node, peek: &Value, world: &mut World| {
                world.reply(peek.reply, node.value);
            })
            .handler(|node: &mut Node, peeked: &Peeked, _: &mut World| {
                node.peeks += 1;
                node.mix(if peeked.failed {
                    u64::MAX
                } else {
                    peeked.value
                });
            });
    }
}

const PERSIST_TURNS: u64 = 20;

/// Seeds of the nodes spawned from the other machine start here.
const SPAWNED: u64 = 1 << 40;

/// One machine of the snapshot test (`KAY_PERSIST_PHASE`): `whole` runs
/// all turns; `first` runs half, snapshots into `KAY_PERSIST_DIR` and
/// exits; `second` loads that snapshot (on new addresses) and runs the
/// rest. Prints `RESULT machine hash` over every node's state.
fn persist(me: u8, addresses: Vec<SocketAddr>) {
    let phase = std::env::var("KAY_PERSIST_PHASE").unwrap();
    let dir = std::path::PathBuf::from(std::env::var("KAY_PERSIST_DIR").unwrap_or_default())
        .join(format!("machine-{me}"));
    let mut config = config(me, &addresses, "the cluster secret");
    if let Ok(secs) = std::env::var("KAY_JOIN_SECS") {
        config.net.as_mut().unwrap().join_timeout = Duration::from_secs(secs.parse().unwrap());
    }
    let mut system = if phase == "whole" {
        ActorSystem::new(config)
    } else {
        ActorSystem::with_storage(&dir, config).unwrap()
    };
    system.register::<Node>();
    system.register_continuation::<u64, Peeked>();
    let mut world = system.world();
    let (from, to) = match phase.as_str() {
        "whole" => (1, PERSIST_TURNS),
        "first" => (1, PERSIST_TURNS / 2),
        _ => {
            let loaded = system.load().unwrap().expect("a snapshot");
            println!(
                "LOADED {me} turn {} continuations {}",
                loaded.turn, loaded.continuations
            );
            (loaded.turn + 1, PERSIST_TURNS)
        }
    };
    if from == 1 {
        // (Not a multiple of the shards: the spawns from the other
        // machine leave its rotation mid-way.)
        for k in 0..39u64 {
            world.spawn::<Node, _>(k * 7919 + u64::from(me));
        }
    }
    for _ in from..=to {
        let nodes = world.local_broadcast::<Node>();
        world.send(nodes, Tick);
        system.turn();
    }
    if phase == "first" {
        let saved = system.snapshot().unwrap();
        println!("SNAPSHOT {me} turn {}", saved.turn);
        return;
    }
    let mut nodes =
        system.with_instances::<Node, _>(|n| (n.id.as_raw().instance, n.pushes, n.peeks, n.hash));
    nodes.sort();
    let hash = nodes.iter().fold(0u64, |h, n| {
        (h.rotate_left(7) ^ n.3 ^ u64::from(n.1) << 32 ^ u64::from(n.2)).wrapping_mul(31)
    });
    let pushes: u32 = nodes.iter().map(|n| n.1).sum();
    println!("RESULT {me} {hash} {pushes} {}", nodes.len());
}

/// The `RESULT` and other lines a child printed with `prefix`.
fn lines_with(outputs: &[Output], prefix: &str) -> BTreeMap<u8, String> {
    let mut lines = BTreeMap::new();
    for output in outputs {
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "a machine failed:\n{stdout}\n{stderr}"
        );
        let line = stdout
            .lines()
            .find_map(|l| l.split_once(prefix).map(|(_, rest)| rest))
            .unwrap_or_else(|| panic!("no {prefix}line:\n{stdout}\n{stderr}"));
        let machine: u8 = line.split(' ').next().unwrap().parse().unwrap();
        lines.insert(machine, line.to_owned());
    }
    lines
}

/// Two machines in lockstep, exchanging messages and requests whose
/// continuations wait over turn ends, snapshot at turn 10 (each its own
/// state and the peer's batches of that turn it had not applied yet);
/// loaded in new processes, on new addresses, they run to turn 20 and end
/// exactly where an uninterrupted run ends.
#[test]
fn two_machines_snapshot_in_lockstep_and_resume_as_if_uninterrupted() {
    let phase = |name: &'static str| {
        [
            (0, "KAY_PERSIST_PHASE", name),
            (1, "KAY_PERSIST_PHASE", name),
        ]
    };
    let whole = lines_with(&run_machines("persist", 2, &phase("whole")), "RESULT ");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap();
    let env = |name: &'static str| {
        let mut env = phase(name).to_vec();
        env.extend([(0, "KAY_PERSIST_DIR", path), (1, "KAY_PERSIST_DIR", path)]);
        env
    };
    let first = lines_with(&run_machines("persist", 2, &env("first")), "SNAPSHOT ");
    assert_eq!(first.len(), 2, "{first:?}");
    let outputs = run_machines("persist", 2, &env("second"));
    let loaded = lines_with(&outputs, "LOADED ");
    for line in loaded.values() {
        let continuations: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(
            continuations > 0,
            "requests across machines were pending: {line}"
        );
    }
    let resumed = lines_with(&outputs, "RESULT ");
    assert_eq!(resumed, whole);
}

/// Where machine 1's frames start in machine 0's `system` file of a
/// two-machine snapshot: its last part is `1` (networked), machine 0, 2
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
        .map(|at| at + header.len())
        .expect("the network part")
}

/// A fresh machine over `dir` (as machine `me` of two, or without
/// networking) that tries to load; returns the error's text after
/// checking that nothing was loaded.
fn refused_load(dir: &std::path::Path, me: u8, networked: bool) -> String {
    let mut config = config(me, &kay::net::loopback_addresses(2), "the cluster secret");
    if !networked {
        config.net = None;
    }
    let mut system = ActorSystem::with_storage(dir, config).unwrap();
    system.register::<Node>();
    system.register_continuation::<u64, Peeked>();
    let error = match system.load() {
        Ok(loaded) => panic!("a planted snapshot loaded: {loaded:?}"),
        Err(e) => e.to_string(),
    };
    assert_eq!(system.instance_count::<Node>(), 0, "{error}");
    assert_eq!(system.current_turn(), 0, "{error}");
    error
}

/// A networked machine's snapshot loads only as the same machine of a
/// topology of the same size; planted peer frames (right checksums) are
/// refused naming the system file: a frame that is not a batch, a batch
/// of another turn, a message of no type. Snapshots outside lockstep are
/// refused.
#[test]
fn network_turns_in_snapshots_are_checked_and_planted_ones_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap();
    let env = [
        (0, "KAY_PERSIST_PHASE", "first"),
        (1, "KAY_PERSIST_PHASE", "first"),
        (0, "KAY_PERSIST_DIR", path),
        (1, "KAY_PERSIST_DIR", path),
    ];
    lines_with(&run_machines("persist", 2, &env), "SNAPSHOT ");
    let saved = dir.path().join("machine-0");
    let error = refused_load(&saved, 1, true);
    assert!(
        error.contains("a snapshot of machine 0 of 2, loaded as machine 1"),
        "{error}"
    );
    let error = refused_load(&saved, 0, false);
    assert!(error.contains("loaded without networking"), "{error}");

    // The peer's frames (see `network_part`).
    type Change = fn(&mut [u8]);
    let cases: [(&str, Change); 3] = [
        ("a malformed batch", |frame| frame[1] = 5),
        ("a batch of turn 11 in turn 10", |frame| {
            // The batch's turn, behind the 4-byte header and the count.
            frame[8..16].copy_from_slice(&11u64.to_le_bytes());
        }),
        ("unknown message type", |frame| {
            // The first message's tag, behind the 24-byte batch header
            // and its length.
            frame[28..30].copy_from_slice(&0x3ffu16.to_le_bytes());
        }),
    ];
    for (expected, change) in cases {
        let planted = tempfile::tempdir().unwrap();
        let generations = chunky::Generations::open(&saved, 2).unwrap();
        let newest = generations.newest().unwrap().unwrap();
        let mut files: Vec<(String, Vec<u8>)> = (newest.files.iter())
            .map(|f| (f.name.clone(), newest.read(&f.name).unwrap().to_vec()))
            .collect();
        let system = &mut files.iter_mut().find(|(n, _)| n == "system").unwrap().1;
        let frames_at = network_part(system);
        let count = u64::from_le_bytes(system[frames_at..frames_at + 8].try_into().unwrap());
        assert!(count > 0, "machine 1's batches of turn 10 were saved");
        let frame_at = frames_at + 16;
        change(&mut system[frame_at..]);
        let refs: Vec<(&str, &[u8])> = (files.iter())
            .map(|(n, b)| (n.as_str(), b.as_slice()))
            .collect();
        chunky::Generations::open(planted.path(), 2)
            .unwrap()
            .write(1, &newest.meta, &refs)
            .unwrap();
        let error = refused_load(planted.path(), 0, true);
        assert!(
            error.contains("system") && error.contains(expected),
            "{expected}: {error}"
        );
    }

    // Machine 0 resumes turn 10, machine 1 starts afresh: machine 0
    // refuses it (each goes on alone once the join time is up).
    let env = [
        (0, "KAY_PERSIST_PHASE", "second"),
        (1, "KAY_PERSIST_PHASE", "whole"),
        (0, "KAY_PERSIST_DIR", path),
        (0, "KAY_JOIN_SECS", "2"),
        (1, "KAY_JOIN_SECS", "2"),
    ];
    let outputs = run_machines("persist", 2, &env);
    lines_with(&outputs, "RESULT ");
    let said = String::from_utf8_lossy(&outputs[0].stderr);
    assert!(
        said.contains(
            "machine 1 joined at turn 0: every machine must load its snapshot of the same turn"
        ),
        "{said}"
    );

    // Outside lockstep: refused.
    let mut config = config(0, &kay::net::loopback_addresses(2), "the cluster secret");
    config.net.as_mut().unwrap().max_turn_distance = 2;
    let elsewhere = tempfile::tempdir().unwrap();
    let mut system = ActorSystem::with_storage(elsewhere.path(), config).unwrap();
    system.register::<Node>();
    let error = system.snapshot().unwrap_err().to_string();
    assert!(error.contains("lockstep"), "{error}");
}
