//! Turns: `ActorSystem::turn` runs message cycles until the system is quiet
//! or the cycle bound stops it, and then says that messages were left (and
//! warns through `tracing`), so that a loop of turns never loses work.

#![allow(missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use kay::{Actor, ActorSystem, ClassSetup, Compact, Config, World};

kay::typed_id!(pub NodeID);

/// A node of a ring: passes the token on to `next` until it has made
/// `hops` hops in all.
#[derive(Compact, Clone)]
pub struct Node {
    id: NodeID,
    next: NodeID,
    seen: u64,
}

#[derive(Compact, Clone)]
pub struct SpawnNode;
#[derive(Compact, Clone)]
pub struct Link {
    next: NodeID,
}
#[derive(Compact, Clone)]
pub struct Token {
    hops_left: u64,
}

impl Actor for Node {
    type ID = NodeID;
    fn id(&self) -> NodeID {
        self.id
    }
    fn setup(class: &mut ClassSetup<Self>) {
        class
            .spawner(|id, _: &SpawnNode, _: &mut World| Node {
                id,
                next: id,
                seen: 0,
            })
            .handler(|n: &mut Node, m: &Link, _: &mut World| n.next = m.next)
            .handler(|n: &mut Node, m: &Token, world: &mut World| {
                n.seen += 1;
                if m.hops_left > 0 {
                    world.send(
                        n.next,
                        Token {
                            hops_left: m.hops_left - 1,
                        },
                    );
                }
            });
    }
}

/// Counts `tracing` warnings on this thread.
struct Warnings(Arc<AtomicUsize>);

impl tracing::Subscriber for Warnings {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        if *event.metadata().level() == tracing::Level::WARN {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// The case, scaled down: a ring of 100 nodes passing a token
/// 10,000 times, 1,000 cycles per turn. The first turn stops at the bound
/// and says so; a loop of turns finishes every hop.
#[test]
fn a_turn_stopped_by_the_cycle_bound_says_so_and_the_next_turns_go_on() {
    for threads in [1, 2] {
        let mut system = ActorSystem::new(Config {
            threads,
            max_cycles_per_call: 1_000,
            ..Config::default()
        });
        system.register::<Node>();
        let mut world = system.world();
        let nodes: Vec<NodeID> = (0..100)
            .map(|_| world.spawn::<Node, _>(SpawnNode))
            .collect();
        for (k, &node) in nodes.iter().enumerate() {
            world.send(
                node,
                Link {
                    next: nodes[(k + 1) % nodes.len()],
                },
            );
        }
        let setup = system.turn();
        assert_eq!(setup.number, 1);
        assert!(!setup.messages_left);

        world.send(nodes[0], Token { hops_left: 9_999 });
        let warnings = Arc::new(AtomicUsize::new(0));
        let first =
            tracing::subscriber::with_default(Warnings(Arc::clone(&warnings)), || system.turn());
        assert_eq!((first.number, first.cycles), (2, 1_000));
        assert_eq!(first.handled, 1_000);
        assert!(first.messages_left, "the bound stopped the turn");
        assert_eq!(warnings.load(Ordering::Relaxed), 1, "and it warned");

        // The rest: 9,000 hops, 1,000 per turn.
        let mut turns = 1;
        loop {
            turns += 1;
            if !system.turn().messages_left {
                break;
            }
        }
        assert_eq!(turns, 10, "{threads} threads");
        let seen: u64 = system.with_instances::<Node, _>(|n| n.seen).iter().sum();
        assert_eq!(seen, 10_000, "every hop was made");
        assert_eq!(system.current_turn(), 11);
        let quiet = system.turn();
        assert_eq!(
            (quiet.handled, quiet.cycles, quiet.messages_left),
            (0, 0, false)
        );
    }
}

/// Records the names of the spans opened on this thread.
struct Spans(Arc<std::sync::Mutex<Vec<String>>>);

impl tracing::Subscriber for Spans {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let mut names = self.0.lock().unwrap();
        names.push(span.metadata().name().to_owned());
        tracing::span::Id::from_u64(names.len() as u64)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, _: &tracing::Event<'_>) {}
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// With a subscriber that wants `trace`, every turn, message cycle and
/// shard run opens a span; without one, none is made (the turn asks once).
#[test]
fn turns_cycles_and_shards_open_trace_spans_for_a_subscriber() {
    let mut system = ActorSystem::new(Config {
        threads: 2,
        ..Config::default()
    });
    system.register::<Node>();
    let mut world = system.world();
    let nodes: Vec<NodeID> = (0..8).map(|_| world.spawn::<Node, _>(SpawnNode)).collect();
    system.turn();
    world.send(nodes[0], Token { hops_left: 2 });
    let names = Arc::new(std::sync::Mutex::new(Vec::new()));
    let turn = tracing::subscriber::with_default(Spans(Arc::clone(&names)), || system.turn());
    let names = names.lock().unwrap().clone();
    let count = |name: &str| names.iter().filter(|n| *n == name).count();
    assert_eq!(count("turn"), 1, "{names:?}");
    // The cycles with work, and the last one, which found none.
    assert_eq!(count("message_cycle"), turn.cycles + 1, "{names:?}");
    assert_eq!(count("shard"), 3, "one shard per hop: {names:?}");
}
