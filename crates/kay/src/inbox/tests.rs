//! Single-threaded behaviour of the inbox, with access to its internals.

use std::panic::{AssertUnwindSafe, catch_unwind};

use super::*;

/// A record whose bytes all equal its length's low byte.
fn push(inbox: &Inbox, size: usize) {
    inbox.push_with(size, |bytes| {
        assert_eq!(bytes.len(), size);
        assert!(bytes.iter().all(|&b| b == 0), "handed-out bytes are zeroed");
        assert_eq!(bytes.as_ptr().addr() % 8, 0);
        bytes.fill(size as u8);
    });
}

/// Drains and returns the record sizes, checking their contents.
fn drain_sizes(inbox: &Inbox) -> Vec<usize> {
    let mut sizes = Vec::new();
    // SAFETY: single-threaded test; no nested drain.
    let n = unsafe {
        inbox.drain(|bytes| {
            assert_eq!(bytes.as_ptr().addr() % 8, 0);
            assert!(bytes.iter().all(|&b| b == bytes.len() as u8));
            sizes.push(bytes.len());
        })
    };
    assert_eq!(n, sizes.len());
    sizes
}

#[test]
fn inbox_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Inbox>();
}

#[test]
#[should_panic(expected = "power of two")]
fn chunk_size_must_be_a_power_of_two() {
    Inbox::new(100);
}

#[test]
fn records_come_out_in_order_with_their_sizes() {
    let inbox = Inbox::new(64);
    assert!(inbox.is_empty());
    assert_eq!(inbox.len(), 0);
    let sizes = [0, 1, 7, 8, 9, 16, 40, 56, 57, 63, 64, 100, 5000, 3];
    for &size in &sizes {
        push(&inbox, size);
    }
    assert!(!inbox.is_empty());
    assert_eq!(inbox.len(), sizes.len());
    assert_eq!(drain_sizes(&inbox), sizes);
    assert!(inbox.is_empty());
    assert_eq!(inbox.len(), 0);
    assert_eq!(drain_sizes(&inbox), Vec::<usize>::new());
}

#[test]
fn exactly_full_chunks_move_on() {
    let inbox = Inbox::new(64);
    for round in 0..5 {
        // 4 records of 16 bytes fill a 64-byte chunk exactly.
        for _ in 0..4 {
            push(&inbox, 8);
        }
        assert_eq!(inbox.len(), 4, "round {round}");
        assert_eq!(drain_sizes(&inbox), [8; 4]);
        assert!(inbox.is_empty());
    }
}

#[test]
fn pushes_from_the_drain_callback_wait_for_the_next_drain() {
    let inbox = Inbox::new(64);
    for _ in 0..3 {
        push(&inbox, 24);
    }
    let mut seen = 0;
    // SAFETY: single-threaded; the callback pushes but does not drain.
    let n = unsafe {
        inbox.drain(|bytes| {
            seen += 1;
            assert_eq!(bytes.len(), 24);
            // Enough pushes to cross into new chunks.
            for _ in 0..3 {
                push(&inbox, 24);
            }
        })
    };
    assert_eq!((n, seen), (3, 3));
    assert_eq!(inbox.len(), 9);
    assert_eq!(drain_sizes(&inbox), [24; 9]);
}

#[test]
fn write_may_push_to_the_same_inbox() {
    let inbox = Inbox::new(64);
    inbox.push_with(8, |outer| {
        outer.fill(8);
        push(&inbox, 16);
        push(&inbox, 40); // into the next chunk
    });
    // The outer record was reserved first, so it comes first.
    assert_eq!(drain_sizes(&inbox), [8, 16, 40]);
}

#[test]
fn a_panicking_writer_leaves_an_abandoned_record() {
    let inbox = Inbox::new(64);
    push(&inbox, 3);
    let result = catch_unwind(AssertUnwindSafe(|| {
        inbox.push_with(20, |_| panic!("write failed"));
    }));
    assert!(result.is_err());
    push(&inbox, 5);
    assert_eq!(inbox.len(), 2);
    assert_eq!(drain_sizes(&inbox), [3, 5]);
    assert!(inbox.is_empty());
}

#[test]
fn a_panicking_callback_keeps_the_rest_for_the_next_drain() {
    let inbox = Inbox::new(64);
    for size in [1, 2, 3, 4] {
        push(&inbox, size);
    }
    let result = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: single-threaded; no nested drain.
        unsafe {
            inbox.drain(|bytes| assert_ne!(bytes.len(), 2));
        }
    }));
    assert!(result.is_err());
    assert_eq!(drain_sizes(&inbox), [3, 4]);
}

#[test]
fn an_unpublished_record_stops_the_drain_in_order() {
    let inbox = Inbox::new(64);
    push(&inbox, 1);
    inbox.push_with(2, |bytes| {
        bytes.fill(2);
        push(&inbox, 3);
        // Reserved but unpublished: the drain stops here, without `3`.
        // SAFETY: no drain runs; this is the only one.
        assert_eq!(unsafe { inbox.drain(|bytes| assert_eq!(bytes, [1])) }, 1);
        assert_eq!(inbox.len(), 0);
        assert!(!inbox.is_empty());
    });
    assert_eq!(drain_sizes(&inbox), [2, 3]);
}

#[test]
fn reclaim_recycles_chunks_into_the_pool() {
    let inbox = Inbox::new(64);
    // Fill 10 chunks of 4 records each.
    for _ in 0..40 {
        push(&inbox, 8);
    }
    assert_eq!(inbox.chunk_count(), 10);
    assert_eq!(drain_sizes(&inbox).len(), 40);
    // SAFETY: nothing else runs.
    unsafe { inbox.reclaim() };
    // The reader's chunk stays; 4 finished chunks pooled, the rest freed.
    assert_eq!(inbox.chunk_count(), 1 + POOL_CHUNKS);
    // Steady state: pushing through the pool allocates nothing.
    for round in 0..20 {
        for _ in 0..12 {
            push(&inbox, 8);
        }
        assert_eq!(inbox.chunk_count(), 1 + POOL_CHUNKS, "round {round}");
        assert_eq!(drain_sizes(&inbox), [8; 12]);
        // SAFETY: nothing else runs.
        unsafe { inbox.reclaim() };
    }
    // SAFETY: nothing else runs.
    unsafe { inbox.reclaim() };
    assert!(inbox.is_empty());
}

#[test]
fn recycled_chunks_hand_out_zeroed_bytes() {
    let inbox = Inbox::new(64);
    for round in 0..10 {
        for size in [13, 27, 5, 50, 200, 1] {
            push(&inbox, size); // checks zeroing
        }
        assert_eq!(drain_sizes(&inbox).len(), 6, "round {round}");
        // SAFETY: nothing else runs.
        unsafe { inbox.reclaim() };
    }
}

#[test]
fn big_records_do_not_leak_the_pool() {
    let inbox = Inbox::new(64);
    for _ in 0..5 {
        push(&inbox, 8);
        push(&inbox, 1000);
        push(&inbox, 8);
        assert_eq!(drain_sizes(&inbox), [8, 1000, 8]);
        // SAFETY: nothing else runs.
        unsafe { inbox.reclaim() };
        assert!(inbox.chunk_count() <= 2 + POOL_CHUNKS);
    }
}

#[test]
fn len_and_is_empty_see_a_moving_reader() {
    let inbox = Inbox::new(64);
    for i in 0..30 {
        push(&inbox, i % 20);
        if i % 7 == 0 {
            drain_sizes(&inbox);
        }
        let expected = 30.min(i + 1) - (i / 7 * 7 + 1);
        assert_eq!(inbox.len(), expected, "after push {i}");
        assert_eq!(inbox.is_empty(), expected == 0);
    }
    assert!(format!("{inbox:?}").contains("Inbox"));
}

#[test]
#[should_panic(expected = "exceeds the maximum")]
fn oversized_records_are_refused() {
    Inbox::new(64).push_with(MAX_RECORD_SIZE + 1, |_| {});
}

#[test]
fn unzeroed_reuse_hands_out_exactly_the_records_of_each_cycle() {
    // SAFETY: single-threaded: every snapshot (drain) follows the pushes.
    let inbox = unsafe { Inbox::for_message_cycles(256, 8) };
    let mut lengths = 0..;
    for cycle in 0..200_usize {
        // Varying sizes and counts, so that records of a cycle start where
        // stale records of earlier cycles had headers and payloads.
        let sizes: Vec<usize> = (0..(cycle * 7) % 40 + 1)
            .map(|_| lengths.next().unwrap() % 70)
            .collect();
        for (k, &size) in sizes.iter().enumerate() {
            // SAFETY: single-threaded: one writer.
            unsafe {
                inbox.push_with_unshared(size, (cycle + k) as u16, |bytes| bytes.fill(size as u8))
            };
        }
        assert_eq!(inbox.len(), sizes.len());
        let mut got = Vec::new();
        let until = inbox.snapshot();
        // SAFETY: single-threaded; no nested drain, no reclaim since the snapshot.
        unsafe {
            inbox.drain_to_tagged(until, |tag, bytes| {
                assert!(bytes.iter().all(|&b| b == bytes.len() as u8));
                got.push((tag, bytes.len()));
            })
        };
        let expected: Vec<(u16, usize)> = (sizes.iter().enumerate())
            .map(|(k, &size)| ((cycle + k) as u16, size))
            .collect();
        assert_eq!(got, expected, "cycle {cycle}");
        assert!(inbox.is_empty());
        // SAFETY: nothing else runs; no record slice is alive.
        unsafe { inbox.reclaim() };
    }
}

#[test]
fn bytes_before_measures_the_records_up_to_a_snapshot_in_one_chunk() {
    let inbox = Inbox::new(256);
    assert_eq!(inbox.bytes_before(inbox.snapshot()), Some(0));
    push(&inbox, 8);
    push(&inbox, 3);
    // Each record is an 8-byte header and its payload padded to 8.
    let two = inbox.snapshot();
    assert_eq!(inbox.bytes_before(two), Some(16 + 16));
    push(&inbox, 20);
    assert_eq!(
        inbox.bytes_before(two),
        Some(32),
        "later pushes are not counted"
    );
    assert_eq!(inbox.bytes_before(inbox.snapshot()), Some(32 + 32));
    // SAFETY: single-threaded test; no nested drain.
    assert_eq!(unsafe { inbox.drain_to(two, |_| {}) }, 2);
    assert_eq!(inbox.bytes_before(inbox.snapshot()), Some(32));
    // Records spanning chunks: no count.
    for _ in 0..10 {
        push(&inbox, 24);
    }
    assert_eq!(inbox.bytes_before(inbox.snapshot()), None);
    assert_eq!(drain_sizes(&inbox), [&[20][..], &[24; 10]].concat());
    assert_eq!(inbox.bytes_before(inbox.snapshot()), Some(0));
}

#[test]
fn a_drain_interrupted_by_a_panic_counts_and_resumes_behind_the_faulting_record() {
    // Small chunks, so that the records span several of them.
    let inbox = Inbox::new(256);
    for size in 1..=40 {
        push(&inbox, size);
    }
    let until = inbox.snapshot();
    let mut count = 0;
    let mut seen = Vec::new();
    for panic_at in [7, 30] {
        let drained = catch_unwind(AssertUnwindSafe(|| {
            // SAFETY: single-threaded; no nested drain, no reclaim since the
            // snapshot.
            unsafe {
                inbox.drain_counted(until, &mut count, |_, bytes| {
                    assert_ne!(bytes.len(), panic_at, "the handler panics");
                    seen.push(bytes.len());
                })
            }
        }));
        assert!(drained.is_err());
        // The faulting record was taken: counted, and not handed out again.
        assert_eq!(count, panic_at);
    }
    // SAFETY: as above.
    unsafe { inbox.drain_counted(until, &mut count, |_, bytes| seen.push(bytes.len())) };
    assert_eq!(count, 40);
    let expected: Vec<usize> = (1..=40).filter(|n| ![7, 30].contains(n)).collect();
    assert_eq!(seen, expected);
    assert!(inbox.is_empty());
}

#[test]
fn bytes_before_spanning_bounds_the_records_over_several_chunks() {
    // 256-byte chunks (248 bytes of records each): 40 records of 24 bytes
    // (8-byte header + 16-byte payload) fill about four chunks.
    let inbox = Inbox::new(256);
    for _ in 0..40 {
        push(&inbox, 16);
    }
    let until = inbox.snapshot();
    assert_eq!(inbox.bytes_before(until), None, "the records span chunks");
    let spanning = inbox.bytes_before_spanning(until);
    assert!(spanning >= 40 * 24, "{spanning} covers every record");
    assert!(
        spanning <= 40 * 24 + 4 * 256,
        "{spanning} is at most the chunks' room"
    );
    // SAFETY: single-threaded; no nested drain.
    let drained = unsafe { inbox.drain_to(until, |_| {}) };
    assert_eq!(drained, 40);
    assert_eq!(inbox.bytes_before_spanning(until), 0);
}

#[test]
fn waiting_records_are_seen_in_order_without_draining_them() {
    let inbox = Inbox::new(64);
    let push_all = |tags: u16, sizes: &[usize]| {
        for (k, &size) in sizes.iter().enumerate() {
            // SAFETY: single-threaded: the only writer.
            unsafe {
                inbox.push_with_unshared(size, tags + k as u16, |bytes| bytes.fill(size as u8));
            }
        }
    };
    // A first batch, drained: the walk starts at the reader.
    push_all(100, &[8, 16, 24]);
    assert_eq!(drain_sizes(&inbox), [8, 16, 24]);
    let sizes = [8, 3, 100, 0, 40, 5000, 16];
    push_all(0, &sizes);
    let mut seen = Vec::new();
    // SAFETY: nothing pushes, drains or reclaims meanwhile.
    unsafe {
        inbox.for_each_waiting(|tag, bytes| {
            assert!(bytes.iter().all(|&b| b == bytes.len() as u8));
            seen.push((tag, bytes.len()));
        })
    };
    let expected: Vec<(u16, usize)> = (sizes.iter().enumerate())
        .map(|(k, &s)| (k as u16, s))
        .collect();
    assert_eq!(seen, expected);
    // Not drained: the same records are still there, in order.
    assert_eq!(drain_sizes(&inbox), sizes);
    let mut after = 0;
    // SAFETY: as above.
    unsafe { inbox.for_each_waiting(|_, _| after += 1) };
    assert_eq!(after, 0);
}
