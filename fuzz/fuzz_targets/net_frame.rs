//! Coverage-guided fuzzing of kay's wire format (feature `net`): any bytes
//! given to the frame parser as one frame give a frame or an error, never a
//! panic or a read out of bounds; the messages of a batch that parses are
//! each validated (as the receiving system does) as a message type with
//! dynamic parts, which gives a value or an error.
//!
//! `cd fuzz && CARGO_BUILD_JOBS=1 cargo +nightly fuzz run net_frame corpus/net_frame -- -max_total_time=120`
#![no_main]

use compact::{CString, CVec, Compact, validate_in_place};
use kay::net_internals::{Frame, parse};
use libfuzzer_sys::fuzz_target;

/// A message with dynamic parts, as a batch might carry.
#[derive(Compact, Clone, Debug)]
struct Message {
    name: CString,
    values: CVec<u32>,
    flag: bool,
}

fuzz_target!(|data: &[u8]| {
    let Ok(frame) = parse(data) else {
        return;
    };
    if let Frame::Batch(batch) = frame {
        for message in batch.messages() {
            let len = message.payload.len();
            let mut words = vec![0u64; len.div_ceil(8)];
            // SAFETY: an owned u64 buffer viewed as `len` bytes.
            let buf =
                unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), len) };
            buf.copy_from_slice(message.payload);
            if let Ok(value) = validate_in_place::<Message>(buf, message.origin as usize) {
                let _ = format!("{value:?}");
                let _ = value.total_size_bytes();
            }
        }
    }
});
