//! The inbox under real threads: 4 writers × 100k records of 8 to 300 bytes
//! (some bigger than a chunk) while the reader drains, with reclaims between
//! rounds; every record must arrive exactly once, in order per writer, with
//! its bytes intact.

#![cfg(not(kay_loom))]

use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use kay::inbox_internals::Inbox;

const WRITERS: u64 = 4;
const RECORDS_PER_WRITER: u64 = 100_000;
const ROUNDS: u64 = 10;
const CHUNK: usize = 256;
/// The sender id of records the reader pushes from its drain callback.
const READER: u64 = WRITERS;

/// The payload size of record `seq` of `sender`: 8 to 300 bytes, now and
/// then a few KiB; a sixth or so are bigger than a chunk.
fn size_of_record(sender: u64, seq: u64) -> usize {
    let h =
        (sender + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ seq.wrapping_mul(0xD6E8_FEB8_6659_FD93);
    let h = h ^ (h >> 29);
    if h.is_multiple_of(997) {
        3000 + (h % 2000) as usize
    } else {
        8 + (h % 293) as usize
    }
}

fn fill_byte(sender: u64, seq: u64, i: usize) -> u8 {
    (seq as u8).wrapping_add(i as u8) ^ (sender as u8).wrapping_mul(31)
}

fn push(inbox: &Inbox, sender: u64, seq: u64) {
    let size = size_of_record(sender, seq);
    inbox.push_with(size, |bytes| {
        bytes[..8].copy_from_slice(&(seq << 8 | sender).to_le_bytes());
        for (i, b) in bytes.iter_mut().enumerate().skip(8) {
            *b = fill_byte(sender, seq, i);
        }
    });
}

/// Decodes and checks one record; returns `(sender, seq)`.
fn check(bytes: &[u8]) -> (u64, u64) {
    assert_eq!(bytes.as_ptr().addr() % 8, 0, "records are 8-aligned");
    let word = u64::from_le_bytes(bytes[..8].try_into().unwrap());
    let (sender, seq) = (word & 0xFF, word >> 8);
    assert_eq!(
        bytes.len(),
        size_of_record(sender, seq),
        "size of {sender}/{seq}"
    );
    for (i, &b) in bytes.iter().enumerate().skip(8) {
        assert_eq!(b, fill_byte(sender, seq, i), "byte {i} of {sender}/{seq}");
    }
    (sender, seq)
}

/// What the reader has seen: the next expected sequence number per sender.
struct Expect {
    next: Vec<u64>,
}

impl Expect {
    fn new() -> Expect {
        Expect {
            next: vec![0; WRITERS as usize + 1],
        }
    }

    fn saw(&mut self, (sender, seq): (u64, u64)) {
        let next = &mut self.next[sender as usize];
        assert_eq!(seq, *next, "sender {sender}: lost, duplicated or reordered");
        *next += 1;
    }
}

#[test]
fn four_writers_and_a_draining_reader() {
    let inbox = Inbox::new(CHUNK);
    let mut expect = Expect::new();
    let mut reader_pushed = 0_u64;
    let per_round = RECORDS_PER_WRITER / ROUNDS;
    let mut drains = 0;
    for round in 0..ROUNDS {
        let done = AtomicBool::new(false);
        thread::scope(|s| {
            let writers: Vec<_> = (0..WRITERS)
                .map(|w| {
                    let inbox = &inbox;
                    s.spawn(move || {
                        for seq in round * per_round..(round + 1) * per_round {
                            push(inbox, w, seq);
                        }
                    })
                })
                .collect();
            s.spawn(|| {
                for w in writers {
                    w.join().unwrap();
                }
                done.store(true, Ordering::Release);
            });
            // The reader drains until the writers are done, and once more.
            loop {
                let finished = done.load(Ordering::Acquire);
                let pushed_before = reader_pushed;
                drains += 1;
                // SAFETY: the only reader; no reclaim runs meanwhile.
                unsafe {
                    inbox.drain(|bytes| {
                        let record = check(bytes);
                        if record.0 == READER {
                            assert!(record.1 < pushed_before, "pushed during this drain");
                        } else if record.1.is_multiple_of(64) {
                            // Reply now and then, from inside the drain.
                            push(&inbox, READER, reader_pushed);
                            reader_pushed += 1;
                        }
                        expect.saw(record);
                    })
                };
                if finished {
                    break;
                }
            }
        });
        // Quiescent: every writer joined, no drain running.
        // SAFETY: nothing else touches the inbox now.
        unsafe { inbox.reclaim() };
        for w in 0..WRITERS {
            assert_eq!(
                expect.next[w as usize],
                (round + 1) * per_round,
                "writer {w}, round {round}"
            );
        }
    }
    // The reader's last replies are still waiting.
    assert_eq!(
        inbox.len() as u64,
        reader_pushed - expect.next[READER as usize]
    );
    // SAFETY: single-threaded now.
    unsafe { inbox.drain(|bytes| expect.saw(check(bytes))) };
    assert_eq!(expect.next[READER as usize], reader_pushed);
    assert!(inbox.is_empty());
    assert!(drains > ROUNDS, "the reader drained concurrently");
}

#[test]
fn pushes_from_the_callback_go_to_the_next_drain() {
    let inbox = Inbox::new(CHUNK);
    // Start with a chain of records; each drained record pushes two
    // successors, so every drain must stop at what existed at its start.
    for seq in 0..10 {
        push(&inbox, 0, seq);
    }
    let mut waiting = 10_u64;
    let mut next_seq = 10_u64;
    let mut expect = Expect::new();
    for _ in 0..8 {
        let mut handed = 0;
        // SAFETY: the only reader.
        let n = unsafe {
            inbox.drain(|bytes| {
                expect.saw(check(bytes));
                handed += 1;
                for _ in 0..2 {
                    push(&inbox, 0, next_seq);
                    next_seq += 1;
                }
            })
        };
        assert_eq!(n as u64, waiting);
        assert_eq!(handed, waiting);
        waiting *= 2;
        assert_eq!(inbox.len() as u64, waiting);
        // SAFETY: single-threaded.
        unsafe { inbox.reclaim() };
    }
}

#[test]
fn concurrent_len_and_is_empty_are_safe() {
    // `len` and `is_empty` from other threads while pushes and drains run:
    // their answers are hints, but they must not crash or misread.
    let inbox = Inbox::new(CHUNK);
    let stop = AtomicBool::new(false);
    thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                let len = inbox.len();
                assert!(len <= 2 * 20_000, "{len}");
                let _ = inbox.is_empty();
            }
        });
        let writer = s.spawn(|| {
            for seq in 0..20_000 {
                push(&inbox, 1, seq);
            }
        });
        let mut expect = Expect::new();
        while !writer.is_finished() {
            // SAFETY: the only reader; no reclaim.
            unsafe { inbox.drain(|bytes| expect.saw(check(bytes))) };
        }
        writer.join().unwrap();
        // SAFETY: as above.
        unsafe { inbox.drain(|bytes| expect.saw(check(bytes))) };
        assert_eq!(expect.next[1], 20_000);
        stop.store(true, Ordering::Relaxed);
    });
    assert!(inbox.is_empty());
}
