//! Loom models of the inbox protocol:
//! `RUSTFLAGS="--cfg kay_loom" cargo test --release --test inbox_loom`.
//!
//! Models (a)–(c) are of the MPSC protocol; (d) is the hand-off between
//! message cycles as the system runs it (single-writer lanes whose chunks
//! are reused unzeroed, pending flags, workers joined between cycles).
//!
//! Chunks hold 64 bytes here (at most 4 records), so every model crosses
//! chunk boundaries, races writers on linking the next chunk and advancing
//! the tail, and has the reader meet `END_OF_CHUNK` markers.

#![cfg(kay_loom)]

use kay::inbox_internals::{Inbox, Position};
use kay::lanes_internals::{AllShards, GlobalShard, Lane, SenderLane, ShardShared};
use loom::sync::Arc;
use loom::sync::atomic::{AtomicBool, Ordering};
use loom::thread;

const CHUNK: usize = 64;

/// A record: `(sender, sequence number)`, padded to `size` bytes with a
/// pattern the reader checks.
fn push(inbox: &Inbox, sender: u8, seq: u8, size: usize) {
    inbox.push_with(size, |bytes| {
        assert!(bytes.iter().all(|&b| b == 0), "pushed bytes start zeroed");
        bytes[0] = sender;
        bytes[1] = seq;
        for b in &mut bytes[2..] {
            *b = sender ^ seq ^ 0xA5;
        }
    });
}

/// Drains, checking each record's bytes, and returns `(sender, seq)` pairs.
fn drain(inbox: &Inbox, mut also: impl FnMut(u8, u8)) -> Vec<(u8, u8)> {
    let mut out = Vec::new();
    // SAFETY: each model has one reader thread and never nests drains.
    let n = unsafe {
        inbox.drain(|bytes| {
            let (sender, seq) = (bytes[0], bytes[1]);
            assert!(bytes[2..].iter().all(|&b| b == sender ^ seq ^ 0xA5));
            out.push((sender, seq));
            also(sender, seq);
        })
    };
    assert_eq!(n, out.len());
    out
}

/// Checks that `got` holds exactly `expected` records per sender, each
/// sender's in order `0..n`.
fn check_complete(got: &[(u8, u8)], expected: &[(u8, u8)]) {
    for &(sender, count) in expected {
        let seqs: Vec<u8> = got.iter().filter(|r| r.0 == sender).map(|r| r.1).collect();
        assert_eq!(
            seqs,
            (0..count).collect::<Vec<_>>(),
            "sender {sender} in {got:?}"
        );
    }
    let total: usize = expected.iter().map(|e| e.1 as usize).sum();
    assert_eq!(got.len(), total, "{got:?}");
}

/// A model checker bounded to `preemption_bound` preemptions per execution
/// (`None`: exhaustive); the environment's `LOOM_MAX_PREEMPTIONS`, if set,
/// wins.
fn builder(preemption_bound: Option<usize>) -> loom::model::Builder {
    let mut builder = loom::model::Builder::new();
    // Every atomic access is a branch point; the hand-off model makes a
    // few thousand single-threaded ones (warming up recycled chunks).
    builder.max_branches = 20_000;
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = preemption_bound;
    }
    builder
}

/// Explores `model` and prints how many executions that took.
fn check(name: &str, preemption_bound: Option<usize>, model: impl Fn() + Sync + Send + 'static) {
    use std::sync::atomic::AtomicUsize;
    let executions = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = std::sync::Arc::clone(&executions);
    let started = std::time::Instant::now();
    builder(preemption_bound).check(move || {
        counter.fetch_add(1, Ordering::Relaxed);
        model();
    });
    let executions = executions.load(Ordering::Relaxed);
    eprintln!(
        "{name}: {executions} executions in {:.1?}",
        started.elapsed()
    );
}

/// (a) Two writers, three records each of 16 to 32 bytes (two chunks'
/// worth), while the reader drains; then a final drain. Nothing lost or
/// duplicated, per-writer FIFO.
#[test]
fn two_writers_and_a_concurrent_reader() {
    check("two_writers_and_a_concurrent_reader", Some(5), || {
        let inbox = Arc::new(Inbox::new(CHUNK));
        let writers: Vec<_> = (0..2_u8)
            .map(|w| {
                let inbox = Arc::clone(&inbox);
                thread::spawn(move || {
                    for (seq, size) in [8, 24, 8].into_iter().enumerate() {
                        push(&inbox, w, seq as u8, size + w as usize);
                    }
                })
            })
            .collect();
        let mut got = drain(&inbox, |_, _| {});
        for w in writers {
            w.join().unwrap();
        }
        got.extend(drain(&inbox, |_, _| {}));
        check_complete(&got, &[(0, 3), (1, 3)]);
        assert!(inbox.is_empty());
        assert_eq!(inbox.len(), 0);
    });
}

/// (a') Two writers racing to link the next chunk: the first chunk is
/// nearly full before they start, and one of them pushes a record bigger
/// than a chunk.
#[test]
fn two_writers_race_at_a_chunk_boundary() {
    check("two_writers_race_at_a_chunk_boundary", Some(6), || {
        let inbox = Arc::new(Inbox::new(CHUNK));
        push(&inbox, 9, 0, 40); // 48 of 64 bytes used
        let writers: Vec<_> = [(0_u8, 16_usize), (1, 100)]
            .into_iter()
            .map(|(w, size)| {
                let inbox = Arc::clone(&inbox);
                thread::spawn(move || {
                    push(&inbox, w, 0, size);
                    push(&inbox, w, 1, 8);
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        let got = drain(&inbox, |_, _| {});
        check_complete(&got, &[(9, 1), (0, 2), (1, 2)]);
    });
}

/// (b) A writer pushes while the reader drains. The drain returns every
/// record published before it started (what the reader saw through the
/// flag, and its own earlier push), never the one its callback pushes;
/// the next drain returns the rest.
#[test]
fn a_drain_sees_what_was_published_before_it() {
    check("a_drain_sees_what_was_published_before_it", None, || {
        let inbox = Arc::new(Inbox::new(CHUNK));
        let published = Arc::new(AtomicBool::new(false));
        push(&inbox, 0, 0, 24); // the reader's own record, before the drain
        let writer = {
            let (inbox, published) = (Arc::clone(&inbox), Arc::clone(&published));
            thread::spawn(move || {
                push(&inbox, 1, 0, 24);
                published.store(true, Ordering::Release);
                push(&inbox, 1, 1, 24);
            })
        };
        let saw_first = published.load(Ordering::Acquire);
        let mut pushed_inside = false;
        let first = drain(&inbox, |sender, _| {
            if sender == 0 && !pushed_inside {
                pushed_inside = true;
                push(&inbox, 0, 1, 24); // from inside the drain
            }
        });
        assert!(first.contains(&(0, 0)), "{first:?}");
        assert!(
            !first.contains(&(0, 1)),
            "pushed during the drain: {first:?}"
        );
        if saw_first {
            assert!(first.contains(&(1, 0)), "published before: {first:?}");
        }
        writer.join().unwrap();
        let mut all = first;
        let second = drain(&inbox, |_, _| {});
        assert!(second.contains(&(0, 1)), "{second:?}");
        all.extend(second);
        check_complete(&all, &[(0, 2), (1, 2)]);
    });
}

/// (c) Reclaim: fill several chunks, drain, reclaim between cycles, then two
/// writers push into the recycled chunks while the reader drains.
#[test]
fn pushes_land_in_recycled_chunks() {
    check("pushes_land_in_recycled_chunks", Some(5), || {
        let inbox = Arc::new(Inbox::new(CHUNK));
        for seq in 0..6 {
            push(&inbox, 9, seq, 40); // one record per chunk: 6 chunks
        }
        check_complete(&drain(&inbox, |_, _| {}), &[(9, 6)]);
        // SAFETY: no other thread exists; nothing pushes or drains.
        unsafe { inbox.reclaim() };
        let writers: Vec<_> = (0..2_u8)
            .map(|w| {
                let inbox = Arc::clone(&inbox);
                thread::spawn(move || {
                    push(&inbox, w, 0, 40);
                    push(&inbox, w, 1, 16);
                })
            })
            .collect();
        let mut got = drain(&inbox, |_, _| {});
        for w in writers {
            w.join().unwrap();
        }
        got.extend(drain(&inbox, |_, _| {}));
        check_complete(&got, &[(0, 2), (1, 2)]);
        // SAFETY: the writers are joined; nothing pushes or drains.
        unsafe { inbox.reclaim() };
        push(&inbox, 5, 0, 8);
        check_complete(&drain(&inbox, |_, _| {}), &[(5, 1)]);
    });
}

/// A shard of the real runtime (`kay::class::lanes::ShardShared`): lane 0
/// is the outside, lane `1 + s` the handlers of shard `s`, each created on
/// first use through the shard's lane directory, with their pending flags
/// and inboxes that reuse chunks without zeroing them.
struct ShardModel {
    shared: ShardShared,
}

const SHARDS: usize = 2;

fn shard_model(s: usize) -> ShardModel {
    ShardModel {
        shared: ShardShared::new(
            "Model",
            s as u32,
            SHARDS as u32,
            GlobalShard::new(s as u32),
            std::sync::Arc::new(AllShards::new()),
            CHUNK,
            2 * CHUNK,
        ),
    }
}

impl ShardModel {
    /// Sender lane `l`'s inbox into this shard.
    fn lane(&self, l: usize) -> &Lane {
        let sender = match l {
            0 => SenderLane::OUTSIDE,
            _ => SenderLane::of(GlobalShard::new(l as u32 - 1)),
        };
        self.shared.lane(sender)
    }

    /// Every lane, in lane order.
    fn lanes(&self) -> impl Iterator<Item = (usize, &Lane)> {
        (0..=SHARDS).map(|l| (l, self.lane(l)))
    }
}

/// A message: `(origin, seq, hops left)`, in a 24-byte record whose other
/// bytes hold a pattern the reader checks (so stale bytes of a recycled,
/// unzeroed chunk would be caught).
fn push_unshared(shard: &ShardModel, lane: usize, message: [u8; 3]) {
    let lane_model = shard.lane(lane);
    // SAFETY: lane `lane` of a shard has one writer at a time: the outside
    // between cycles, or shard `lane - 1`'s worker during a cycle.
    unsafe {
        lane_model
            .inbox
            .push_with_unshared(24, lane as u16, |bytes| {
                bytes[..3].copy_from_slice(&message);
                for b in &mut bytes[3..] {
                    *b = message[0] ^ message[1] ^ 0x5A;
                }
            })
    };
    lane_model.mark_pending();
}

/// Drains a lane up to `until`, checking every record.
///
/// # Safety
/// This thread is the lane's only reader now, and no reclaim ran since
/// `until` was taken.
unsafe fn drain_lane(lane: &Lane, until: Position, mut f: impl FnMut(u16, [u8; 3])) {
    // SAFETY: forwarded from the caller.
    unsafe {
        lane.inbox.drain_to_tagged(until, |tag, bytes| {
            assert_eq!(bytes.len(), 24);
            let message = [bytes[0], bytes[1], bytes[2]];
            assert!(
                bytes[3..]
                    .iter()
                    .all(|&b| b == message[0] ^ message[1] ^ 0x5A)
            );
            f(tag, message);
        })
    };
}

/// (d) The hand-off between message cycles, as the system runs it. Two
/// shards, each with a lane per sender. In every cycle the system thread
/// takes the pending flags and snapshots the pending lanes; then one worker
/// per busy shard (loom threads, joined like rayon's pool) drains that
/// shard's lanes up to the snapshots, and for every message with hops left
/// pushes one on to the other shard, into the lane the *other* worker is
/// draining at that moment. After the join the system reclaims the drained
/// lanes, so later cycles write into recycled chunks that were not zeroed.
/// Every message is delivered exactly once, in its cycle, FIFO per lane.
#[test]
fn cycles_hand_off_lanes_to_workers() {
    check("cycles_hand_off_lanes_to_workers", Some(3), || {
        hand_off_model(false)
    });
}

/// The model of (d) is not vacuous: if the system took a lane's snapshot
/// while that lane's writer was still pushing (a worker of the same cycle)
/// instead of after the join, loom finds the reader meeting a record that
/// is reserved but not published: in a recycled chunk that was not zeroed,
/// its header is stale, and reading its payload races with the writer.
#[test]
#[should_panic(expected = "Causality violation")]
fn a_snapshot_during_pushes_is_caught() {
    check("a_snapshot_during_pushes_is_caught", Some(3), || {
        hand_off_model(true)
    });
}

/// The model of (d); with `snapshot_early`, shard 1's lane from shard 0 is
/// snapshotted and drained while shard 0's worker pushes into it.
fn hand_off_model(snapshot_early: bool) {
    {
        let shards: Arc<Vec<ShardModel>> = Arc::new((0..SHARDS).map(shard_model).collect());
        // Earlier cycles left every lane with a recycled chunk of stale,
        // unzeroed records behind its tail: two chunks' worth, drained and
        // reclaimed (the reader stays in the second chunk, the first is pooled).
        for shard in shards.iter() {
            for (l, lane) in shard.lanes() {
                for seq in 0..4 {
                    push_unshared(shard, l, [9, seq, 7]);
                }
                let until = lane.inbox.snapshot();
                // SAFETY: one thread so far; no reclaim since the snapshot.
                unsafe { drain_lane(lane, until, |_, m| assert_eq!(m[0], 9)) };
                // SAFETY: nothing else runs; no slice is alive.
                unsafe { lane.inbox.reclaim() };
                lane.take_pending();
            }
        }
        // Cycle 0's input from the outside: two messages into shard 0 (a
        // chunk's worth), one into shard 1; each travels on for 2 hops.
        push_unshared(&shards[0], 0, [0, 0, 2]);
        push_unshared(&shards[0], 0, [0, 1, 2]);
        push_unshared(&shards[1], 0, [1, 0, 2]);
        let mut delivered: Vec<Vec<(u16, [u8; 3])>> = vec![Vec::new(); SHARDS];
        let mut cycles = 0;
        loop {
            // Between cycles: the system takes flags and snapshots (the
            // runtime finds the raised lanes in its senders' lists; the
            // model looks at every lane).
            let mut work: Vec<(usize, Vec<(usize, Position)>)> = Vec::new();
            for (s, shard) in shards.iter().enumerate() {
                let lanes: Vec<_> = (shard.lanes())
                    .filter(|(_, lane)| lane.take_pending())
                    .map(|(l, lane)| (l, lane.inbox.snapshot()))
                    .collect();
                if !lanes.is_empty() {
                    work.push((s, lanes));
                }
            }
            if work.is_empty() {
                break;
            }
            cycles += 1;
            // The cycle: every busy shard but the first on a worker thread,
            // the first on this thread (loom allows 5 threads per execution,
            // so 3 cycles cannot spawn one per shard each time).
            let run = |shards: &[ShardModel], s: usize, lanes: &[(usize, Position)]| {
                let mut got = Vec::new();
                for &(l, until) in lanes {
                    // SAFETY: this thread is shard `s`'s only reader in this
                    // cycle; reclaim runs only after the join.
                    unsafe { drain_lane(shards[s].lane(l), until, |tag, m| got.push((tag, m))) };
                }
                for &(_, [origin, seq, hops]) in &got {
                    if hops > 0 {
                        let to = (s + 1) % SHARDS;
                        push_unshared(&shards[to], 1 + s, [origin, seq, hops - 1]);
                    }
                }
                got
            };
            let workers: Vec<_> = work[1..]
                .iter()
                .cloned()
                .map(|(s, lanes)| {
                    let shards = Arc::clone(&shards);
                    (
                        s,
                        thread::spawn(move || {
                            let mut got = run(&shards, s, &lanes);
                            if snapshot_early {
                                // Wrong: a snapshot of a lane whose writer (shard
                                // 0's handlers, on the other thread) is pushing.
                                let lane = shards[s].lane(1);
                                let until = lane.inbox.snapshot();
                                // SAFETY: not given: that is what loom must catch.
                                unsafe { drain_lane(lane, until, |tag, m| got.push((tag, m))) };
                            }
                            got
                        }),
                    )
                })
                .collect();
            let (first, lanes) = &work[0];
            delivered[*first].extend(run(&shards, *first, lanes));
            for (s, worker) in workers {
                delivered[s].extend(worker.join().unwrap());
            }
            // Between cycles again: recycle what was drained.
            for (s, lanes) in &work {
                for (l, _) in lanes {
                    // SAFETY: the workers have joined; no slice is alive.
                    unsafe { shards[*s].lane(*l).inbox.reclaim() };
                }
            }
        }
        assert_eq!(cycles, 3, "each hop takes one cycle");
        // Shard 0: its two outside messages, then (cycle 2) what shard 1
        // passed on of its own, then (cycle 3) its own two coming back.
        assert_eq!(
            delivered[0],
            [
                (0, [0, 0, 2]),
                (0, [0, 1, 2]),
                (2, [1, 0, 1]),
                (2, [0, 0, 0]),
                (2, [0, 1, 0])
            ]
        );
        assert_eq!(
            delivered[1],
            [
                (0, [1, 0, 2]),
                (1, [0, 0, 1]),
                (1, [0, 1, 1]),
                (1, [1, 0, 0])
            ]
        );
        for shard in shards.iter() {
            assert!(shard.lanes().all(|(_, l)| l.inbox.is_empty()));
        }
    }
}
