//! The inbox against a `VecDeque` model: random single-threaded sequences of
//! pushes (including records bigger than a chunk), drains (also pushing from
//! the callback) and reclaims.

#![cfg(not(kay_loom))]

use std::collections::VecDeque;

use kay::inbox_internals::Inbox;
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    /// Push a record of this many bytes.
    Push(usize),
    /// Drain everything.
    Drain,
    /// Drain, pushing a record of this size for every record drained.
    DrainAndReply(usize),
    /// Reclaim finished chunks.
    Reclaim,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0_usize..64).prop_map(Op::Push),
        3 => (64_usize..600).prop_map(Op::Push),
        1 => (600_usize..9000).prop_map(Op::Push),
        2 => Just(Op::Drain),
        1 => (0_usize..200).prop_map(Op::DrainAndReply),
        2 => Just(Op::Reclaim),
    ]
}

/// Record `n`'s bytes: its number, then a pattern.
fn record(n: u64, size: usize) -> Vec<u8> {
    (0..size)
        .map(|i| (n as u8).wrapping_mul(7).wrapping_add(i as u8))
        .collect()
}

fn push(inbox: &Inbox, model: &mut VecDeque<Vec<u8>>, counter: &mut u64, size: usize) {
    let bytes = record(*counter, size);
    *counter += 1;
    inbox.push_with(size, |out| {
        assert!(out.iter().all(|&b| b == 0));
        out.copy_from_slice(&bytes);
    });
    model.push_back(bytes);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn behaves_like_a_vec_deque(
        chunk_size in prop::sample::select(vec![64_usize, 128, 256, 4096]),
        ops in prop::collection::vec(op(), 0..200),
    ) {
        let inbox = Inbox::new(chunk_size);
        let mut model = VecDeque::new();
        let mut counter = 0;
        for op in ops {
            match op {
                Op::Push(size) => push(&inbox, &mut model, &mut counter, size),
                Op::Drain | Op::DrainAndReply(_) => {
                    let reply = match op { Op::DrainAndReply(size) => Some(size), _ => None };
                    let expected: Vec<_> = model.drain(..).collect();
                    let mut got = Vec::new();
                    // SAFETY: single-threaded; no nested drain.
                    let n = unsafe {
                        inbox.drain(|bytes| {
                            assert_eq!(bytes.as_ptr().addr() % 8, 0);
                            got.push(bytes.to_vec());
                            if let Some(size) = reply {
                                push(&inbox, &mut model, &mut counter, size);
                            }
                        })
                    };
                    prop_assert_eq!(n, got.len());
                    prop_assert_eq!(got, expected);
                }
                // SAFETY: single-threaded; no slices kept.
                Op::Reclaim => unsafe { inbox.reclaim() },
            }
            prop_assert_eq!(inbox.len(), model.len());
            prop_assert_eq!(inbox.is_empty(), model.is_empty());
        }
    }
}
