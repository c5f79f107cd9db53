//! The record format: how a message lies in an inbox.
//!
//! A record carries the message id as the tag of the inbox's own 8-byte
//! header word (with [`SPAWN_TAG`] set for spawns); its payload is the
//! recipient [`RawID`] (8 bytes) followed by the message in compact form —
//! 24 bytes in all for an 8-byte message.

use crate::id::RawID;
use crate::registry::MessageID;

/// Bytes before the message in an inbox record: the recipient. The message
/// id travels in the inbox's own record header (its tag).
pub(crate) const RECORD_HEADER: usize = 8;

const _: () = assert!(size_of::<RawID>() == RECORD_HEADER);

/// Writes a record header.
#[inline]
pub(crate) fn write_header(buf: &mut [u8], recipient: RawID) {
    assert!(buf.len() >= RECORD_HEADER && buf.as_ptr().cast::<RawID>().is_aligned());
    // SAFETY: checked above: the buffer is long enough and aligned.
    unsafe { buf.as_mut_ptr().cast::<RawID>().write(recipient) };
}

/// Reads a record header.
#[inline]
pub(crate) fn read_header(record: &[u8]) -> RawID {
    assert!(record.len() >= RECORD_HEADER && record.as_ptr().cast::<RawID>().is_aligned());
    // SAFETY: checked above; every record starts with a header written by
    // `write_header`, and any bytes are valid for `RawID`'s integer fields.
    unsafe { record.as_ptr().cast::<RawID>().read() }
}

/// The bit of a record's tag that marks a spawn (written only by
/// `World::spawn`): only a spawner handles such a record, and a spawner
/// handles nothing else, so a spawner message sent with `World::send` can
/// never replace a live actor and a spawn always creates a fresh instance.
pub(crate) const SPAWN_TAG: u16 = 0x8000;

/// The message id of a spawn whose message type has no handler anywhere: its
/// record carries only the allocated ID, which the shard hands back.
pub(crate) const UNKNOWN: MessageID = MessageID(0x7FFF);

/// A record taken from an inbox: message id, recipient, and the message.
#[derive(Clone, Copy)]
pub(crate) struct Record {
    pub(crate) message: MessageID,
    pub(crate) recipient: RawID,
    pub(crate) payload: *const u8,
}

impl Record {
    /// Reads the record header of `record` (of message `message`).
    #[inline(always)]
    pub(crate) fn read(message: MessageID, record: &[u8]) -> Record {
        Record {
            message,
            recipient: read_header(record),
            payload: record[RECORD_HEADER..].as_ptr(),
        }
    }
}
