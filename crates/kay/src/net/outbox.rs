//! Outboxes: where a sender's messages to one other machine wait for the
//! end of the turn, already in compact form.
//!
//! An outbox is a list of segments (8-aligned buffers that never move
//! while written), each record laid out as `[u32 len][u16 tag][u16 0]
//! [recipient: 8][payload, padded to 8]`. A segment becomes one batch
//! frame: its first payload's address is the batch's base, from which the
//! receiver finds each payload's origin (see
//! [`WireMessage::origin`](super::frame::WireMessage::origin)).

use compact::{Compact, static_size_bytes};

use crate::id::RawID;
use crate::net::frame;

/// The usual size of a segment (a message larger than this gets a segment
/// of its own).
const SEGMENT_BYTES: usize = 64 << 10;

/// Bytes of a record before its payload in a segment.
const RECORD_PREFIX: usize = 16;

struct Segment {
    words: Vec<u64>,
    used: usize,
    count: u32,
}

impl Segment {
    fn with_bytes(bytes: usize) -> Segment {
        Segment {
            words: vec![0; bytes.div_ceil(8)],
            used: 0,
            count: 0,
        }
    }

    fn room(&self) -> usize {
        self.words.len() * 8 - self.used
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: the words are initialized (zeroed, then written by
        // `Outbox::write`); any bytes are valid `u8`s.
        unsafe { std::slice::from_raw_parts(self.words.as_ptr().cast(), self.used) }
    }
}

/// The messages one sender wrote for one other machine in this turn.
#[derive(Default)]
pub(crate) struct Outbox {
    segments: Vec<Segment>,
    /// Messages written since the last [`take_frames`](Self::take_frames).
    pub(crate) messages: u64,
}

impl Outbox {
    /// Compacts the message at `source` (of `size` compact bytes) into a new
    /// record for `recipient` with message tag `tag`.
    ///
    /// # Safety
    /// `source` points to a valid `M` that is either moved into the record
    /// (the caller forgets it) or compact (copying leaves it intact), and
    /// `size` is its `total_size_bytes`.
    pub(crate) unsafe fn write<M: Compact>(
        &mut self,
        tag: u16,
        recipient: RawID,
        source: *mut M,
        size: usize,
    ) {
        let need = RECORD_PREFIX + size.next_multiple_of(8);
        if self.segments.last().is_none_or(|s| s.room() < need) {
            self.segments
                .push(Segment::with_bytes(need.max(SEGMENT_BYTES)));
        }
        let segment = self.segments.last_mut().expect("a segment with room");
        let at = segment.used;
        let record = segment.words[at / 8..].as_mut_ptr();
        // SAFETY: `at` is 8-aligned (every record's length is), the segment
        // has `need` bytes of room behind it, and the words never move while
        // the segment exists.
        unsafe {
            record.write(u64::from(size as u32) | (u64::from(tag) << 32));
            record.add(1).cast::<RawID>().write(recipient);
            let dest = record.add(2).cast::<u8>();
            M::compact(source, dest.cast(), dest.add(static_size_bytes::<M>()));
        }
        segment.used += need;
        segment.count += 1;
        self.messages += 1;
    }

    /// Whether nothing was written since the last take.
    pub(crate) fn is_empty(&self) -> bool {
        self.messages == 0
    }

    /// Turns what was written into batch frames of turn `turn` (one per
    /// segment), and empties the outbox (keeping one segment's memory).
    pub(crate) fn take_frames(&mut self, turn: u64, mut frame_out: impl FnMut(Vec<u8>, u64)) {
        for segment in &self.segments {
            if segment.count == 0 {
                continue;
            }
            let bytes = segment.bytes();
            let base = bytes.as_ptr() as u64 + RECORD_PREFIX as u64;
            let mut out =
                Vec::with_capacity(frame::BATCH_HEADER + segment.used - segment.count as usize * 2);
            frame::batch_header(&mut out, segment.count, turn, base);
            let mut at = 0;
            while at < bytes.len() {
                let head = u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
                let (len, tag) = (head as u32 as usize, (head >> 32) as u16);
                // SAFETY: written by `write` at this 8-aligned position.
                let recipient = unsafe { bytes.as_ptr().add(at + 8).cast::<RawID>().read() };
                let payload = &bytes[at + RECORD_PREFIX..at + RECORD_PREFIX + len];
                frame::put_message(&mut out, tag, recipient, payload);
                at += RECORD_PREFIX + len.next_multiple_of(8);
            }
            frame_out(out, u64::from(segment.count));
        }
        self.segments.truncate(1);
        if let Some(first) = self.segments.first_mut() {
            if first.words.len() * 8 > SEGMENT_BYTES {
                self.segments.clear();
            } else {
                first.used = 0;
                first.count = 0;
            }
        }
        self.messages = 0;
    }
}
