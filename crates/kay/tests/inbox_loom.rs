//! Loom models of the inbox protocol:
//! `RUSTFLAGS="--cfg kay_loom" cargo test --release --test inbox_loom`.
//!
//! Chunks hold 64 bytes here (at most 4 records), so every model crosses
//! chunk boundaries, races writers on linking the next chunk and advancing
//! the tail, and has the reader meet `END_OF_CHUNK` markers.

#![cfg(kay_loom)]

use kay::inbox_internals::Inbox;
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
