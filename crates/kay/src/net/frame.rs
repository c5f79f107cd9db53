//! The wire format: parsing and writing frames (see the [module
//! docs](super#the-wire) for the layout). Parsing never trusts a length:
//! every frame is checked whole before any of it is used, so a short,
//! long or inconsistent frame is an error, never a panic or a read out of
//! bounds. The messages' payloads are validated later, by their type
//! (`compact`'s validation), on the system's thread.

use crate::id::{MachineID, RawID, ShortTypeID};

/// The version of the wire format; the first byte of every frame.
pub const PROTOCOL_VERSION: u8 = 1;

/// The first bytes of a `Hello` behind the frame header.
pub const MAGIC: [u8; 4] = *b"KAYN";

/// Bytes every frame starts with: version, kind, two reserved zero bytes.
pub const FRAME_HEADER: usize = 4;

/// Bytes of a batch frame before its messages: the frame header, the
/// message count, the sender's turn and the sender's address of the first
/// payload.
pub const BATCH_HEADER: usize = FRAME_HEADER + 4 + 8 + 8;

/// Bytes on the wire per message beyond its compact payload: the payload
/// length (4), the message tag (2) and the recipient (8).
pub const MESSAGE_OVERHEAD: usize = 4 + 2 + 8;

/// The tag of an answer to a request: its payload is a compact
/// `repr(C)` struct of `token: u64` and the answer; its recipient names
/// the asking machine.
pub const ANSWER_TAG: u16 = 0x7FFE;

/// The tag of a failed request: its payload is a `repr(C)` struct of
/// `token: u64` and `reason: u8` (0 no reply, 1 no recipient, 2 handler
/// panicked, 3 system panicked), 16 bytes.
pub const FAILED_TAG: u16 = 0x7FFD;

/// The length of a HMAC-SHA256 proof and of a handshake nonce.
pub const PROOF_LEN: usize = 32;

/// What a frame is.
#[repr(u8)]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    /// The first frame of each side: who it is and what it registered.
    Hello = 1,
    /// The second: the proof that it knows the cluster secret.
    Proof = 2,
    /// Why a side closes the connection during the handshake.
    Refuse = 3,
    /// Messages sent in one turn.
    Batch = 4,
    /// The end of the sender's turn: every batch of it was sent before.
    TurnEnd = 5,
}

/// Why a frame is not well formed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Shorter than its fixed part.
    #[error("frame of {len} bytes is too short for a {what}")]
    TooShort {
        /// What the frame claimed to be.
        what: &'static str,
        /// Its length.
        len: usize,
    },
    /// A version this build does not speak.
    #[error("wire version {0} (this build speaks version {PROTOCOL_VERSION})")]
    Version(u8),
    /// A kind byte that names no frame.
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
    /// Reserved bytes were not zero.
    #[error("reserved bytes are not zero")]
    Reserved,
    /// A `Hello` without the magic bytes.
    #[error("not a kay peer (bad magic)")]
    Magic,
    /// Text that is not UTF-8.
    #[error("text is not UTF-8")]
    Text,
    /// A length that runs past the frame's end, or bytes left after its
    /// last part.
    #[error("frame length mismatch: {0}")]
    Length(&'static str),
}

/// The first frame of each side of a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hello<'a> {
    /// The sender's machine.
    pub machine: MachineID,
    /// A fresh random challenge for the other side's proof.
    pub nonce: [u8; PROOF_LEN],
    /// Turns the sender has run.
    pub turn: u64,
    /// The hash of the sender's registry fingerprint.
    pub fingerprint_hash: u64,
    /// The fingerprint's lines, joined with `\n`.
    pub fingerprint: &'a str,
}

/// A parsed frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// See [`Kind::Hello`].
    Hello(Hello<'a>),
    /// See [`Kind::Proof`].
    Proof([u8; PROOF_LEN]),
    /// See [`Kind::Refuse`].
    Refuse(&'a str),
    /// See [`Kind::Batch`].
    Batch(Batch<'a>),
    /// See [`Kind::TurnEnd`].
    TurnEnd {
        /// The sender's turn that ended.
        turn: u64,
        /// The last turn of the receiver's that the sender applied (an
        /// acknowledgement: the receiver's messages up to it arrived).
        applied: u64,
    },
}

/// A batch of messages, checked to hold exactly its `count` messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Batch<'a> {
    /// The sender's turn.
    pub turn: u64,
    /// The sender's address of the first payload (see [`WireMessage::origin`]).
    pub base: u64,
    /// How many messages follow.
    pub count: u32,
    messages: &'a [u8],
}

/// One message of a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WireMessage<'a> {
    /// The message id, with the spawn bit.
    pub tag: u16,
    /// The recipient (an instance, a broadcast, or for a spawn the class).
    pub recipient: RawID,
    /// The message in compact form.
    pub payload: &'a [u8],
    /// The payload's address on the sender, which its internal pointers are
    /// relative to: the batch's base for the first message, then each
    /// next one 16 bytes plus the last payload's length rounded up to 8
    /// further (the layout of the sender's outbox).
    pub origin: u64,
}

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

/// Reads a recipient as the wire has it (little-endian fields).
fn raw_id_at(bytes: &[u8], at: usize) -> RawID {
    RawID::new(
        ShortTypeID::new(u16_at(bytes, at + 4)),
        u32_at(bytes, at),
        MachineID(bytes[at + 6]),
        bytes[at + 7],
    )
}

/// Writes a recipient as the wire has it.
pub fn put_raw_id(out: &mut Vec<u8>, id: RawID) {
    out.extend_from_slice(&id.instance.to_le_bytes());
    out.extend_from_slice(&id.type_id.get().to_le_bytes());
    out.push(id.machine.0);
    out.push(id.version);
}

/// Checks a whole frame and returns what it says.
pub fn parse(bytes: &[u8]) -> Result<Frame<'_>, FrameError> {
    if bytes.len() < FRAME_HEADER {
        return Err(FrameError::TooShort {
            what: "frame header",
            len: bytes.len(),
        });
    }
    if bytes[0] != PROTOCOL_VERSION {
        return Err(FrameError::Version(bytes[0]));
    }
    if bytes[2] != 0 || bytes[3] != 0 {
        return Err(FrameError::Reserved);
    }
    let body = &bytes[FRAME_HEADER..];
    match bytes[1] {
        1 => parse_hello(body).map(Frame::Hello),
        2 => {
            let proof: [u8; PROOF_LEN] = body
                .try_into()
                .map_err(|_| FrameError::Length("a proof is 32 bytes"))?;
            Ok(Frame::Proof(proof))
        }
        3 => std::str::from_utf8(body)
            .map(Frame::Refuse)
            .map_err(|_| FrameError::Text),
        4 => parse_batch(bytes).map(Frame::Batch),
        5 => {
            if body.len() != 16 {
                return Err(FrameError::Length("a turn end is 16 bytes"));
            }
            Ok(Frame::TurnEnd {
                turn: u64_at(body, 0),
                applied: u64_at(body, 8),
            })
        }
        kind => Err(FrameError::UnknownKind(kind)),
    }
}

const HELLO_FIXED: usize = 4 + 1 + 3 + PROOF_LEN + 8 + 8 + 4;

fn parse_hello(body: &[u8]) -> Result<Hello<'_>, FrameError> {
    if body.len() < HELLO_FIXED {
        return Err(FrameError::TooShort {
            what: "hello",
            len: body.len(),
        });
    }
    if body[..4] != MAGIC {
        return Err(FrameError::Magic);
    }
    if body[5..8] != [0, 0, 0] {
        return Err(FrameError::Reserved);
    }
    let nonce: [u8; PROOF_LEN] = body[8..8 + PROOF_LEN].try_into().expect("32 bytes");
    let at = 8 + PROOF_LEN;
    let text_len = u32_at(body, at + 16) as usize;
    if body.len() - HELLO_FIXED != text_len {
        return Err(FrameError::Length("hello text"));
    }
    Ok(Hello {
        machine: MachineID(body[4]),
        nonce,
        turn: u64_at(body, at),
        fingerprint_hash: u64_at(body, at + 8),
        fingerprint: std::str::from_utf8(&body[HELLO_FIXED..]).map_err(|_| FrameError::Text)?,
    })
}

fn parse_batch(bytes: &[u8]) -> Result<Batch<'_>, FrameError> {
    if bytes.len() < BATCH_HEADER {
        return Err(FrameError::TooShort {
            what: "batch",
            len: bytes.len(),
        });
    }
    let batch = Batch {
        count: u32_at(bytes, FRAME_HEADER),
        turn: u64_at(bytes, FRAME_HEADER + 4),
        base: u64_at(bytes, FRAME_HEADER + 12),
        messages: &bytes[BATCH_HEADER..],
    };
    // Walk it once: exactly `count` messages, nothing behind them.
    let mut rest = batch.messages;
    for _ in 0..batch.count {
        if rest.len() < MESSAGE_OVERHEAD {
            return Err(FrameError::Length("message header past the end"));
        }
        let len = u32_at(rest, 0) as usize;
        if rest.len() - MESSAGE_OVERHEAD < len {
            return Err(FrameError::Length("payload past the end"));
        }
        rest = &rest[MESSAGE_OVERHEAD + len..];
    }
    if !rest.is_empty() {
        return Err(FrameError::Length("bytes after the last message"));
    }
    Ok(batch)
}

impl<'a> Batch<'a> {
    /// The messages, in order (their framing was checked by [`parse`]).
    pub fn messages(&self) -> impl Iterator<Item = WireMessage<'a>> + 'a {
        let mut rest = self.messages;
        let mut origin = self.base;
        (0..self.count).map(move |_| {
            let len = u32_at(rest, 0) as usize;
            let message = WireMessage {
                tag: u16_at(rest, 4),
                recipient: raw_id_at(rest, 6),
                payload: &rest[MESSAGE_OVERHEAD..MESSAGE_OVERHEAD + len],
                origin,
            };
            rest = &rest[MESSAGE_OVERHEAD + len..];
            origin = origin
                .wrapping_add(16)
                .wrapping_add(len.next_multiple_of(8) as u64);
            message
        })
    }
}

/// Starts a frame of `kind` in `out`.
pub fn put_header(out: &mut Vec<u8>, kind: Kind) {
    out.extend_from_slice(&[PROTOCOL_VERSION, kind as u8, 0, 0]);
}

/// A whole `Hello` frame.
pub fn hello(hello: &Hello<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(FRAME_HEADER + HELLO_FIXED + hello.fingerprint.len());
    put_header(&mut out, Kind::Hello);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&[hello.machine.0, 0, 0, 0]);
    out.extend_from_slice(&hello.nonce);
    out.extend_from_slice(&hello.turn.to_le_bytes());
    out.extend_from_slice(&hello.fingerprint_hash.to_le_bytes());
    out.extend_from_slice(&(hello.fingerprint.len() as u32).to_le_bytes());
    out.extend_from_slice(hello.fingerprint.as_bytes());
    out
}

/// A whole turn-end frame.
pub fn turn_end(turn: u64, applied: u64) -> Vec<u8> {
    let mut body = [0; 16];
    body[..8].copy_from_slice(&turn.to_le_bytes());
    body[8..].copy_from_slice(&applied.to_le_bytes());
    simple(Kind::TurnEnd, &body)
}

/// A whole frame of `kind` with `body` behind its header.
pub fn simple(kind: Kind, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(FRAME_HEADER + body.len());
    put_header(&mut out, kind);
    out.extend_from_slice(body);
    out
}

/// Starts a batch frame; [`put_message`] adds its messages.
pub fn batch_header(out: &mut Vec<u8>, count: u32, turn: u64, base: u64) {
    put_header(out, Kind::Batch);
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&turn.to_le_bytes());
    out.extend_from_slice(&base.to_le_bytes());
}

/// Adds a message to a batch frame.
pub fn put_message(out: &mut Vec<u8>, tag: u16, recipient: RawID, payload: &[u8]) {
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&tag.to_le_bytes());
    put_raw_id(out, recipient);
    out.extend_from_slice(payload);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u32) -> RawID {
        RawID::new(ShortTypeID::new(3), n, MachineID(1), 2)
    }

    #[test]
    fn a_batch_round_trips_with_its_origins() {
        let mut out = Vec::new();
        batch_header(&mut out, 2, 7, 1000);
        put_message(&mut out, 5, id(1), &[1; 12]);
        put_message(&mut out, 6 | 0x8000, id(2), &[2; 8]);
        assert_eq!(out.len(), BATCH_HEADER + 2 * MESSAGE_OVERHEAD + 20);
        let Frame::Batch(batch) = parse(&out).unwrap() else {
            panic!("not a batch")
        };
        let messages: Vec<_> = batch.messages().collect();
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[0].recipient, id(1));
        assert_eq!(messages[0].origin, 1000);
        assert_eq!(messages[1].tag, 6 | 0x8000);
        assert_eq!(messages[1].payload, &[2; 8]);
        assert_eq!(messages[1].origin, 1000 + 16 + 16);
        assert_eq!(batch.turn, 7);
    }

    #[test]
    fn every_truncation_and_extension_of_a_batch_is_refused() {
        let mut out = Vec::new();
        batch_header(&mut out, 2, 7, 1000);
        put_message(&mut out, 5, id(1), &[1; 12]);
        put_message(&mut out, 6, id(2), &[2; 8]);
        for len in 0..out.len() {
            assert!(parse(&out[..len]).is_err(), "{len} bytes accepted");
        }
        let mut longer = out.clone();
        longer.push(0);
        assert_eq!(
            parse(&longer),
            Err(FrameError::Length("bytes after the last message"))
        );
        let mut lying = out.clone();
        lying[FRAME_HEADER] = 3;
        assert!(parse(&lying).is_err());
    }

    #[test]
    fn hello_round_trips_and_bad_headers_are_refused() {
        let sent = Hello {
            machine: MachineID(2),
            nonce: [9; PROOF_LEN],
            turn: 12,
            fingerprint_hash: 0xabc,
            fingerprint: "kay fingerprint v1\nshards 4",
        };
        let bytes = hello(&sent);
        assert_eq!(parse(&bytes), Ok(Frame::Hello(sent.clone())));
        let mut wrong = bytes.clone();
        wrong[0] = 9;
        assert_eq!(parse(&wrong), Err(FrameError::Version(9)));
        let mut wrong = bytes.clone();
        wrong[1] = 77;
        assert_eq!(parse(&wrong), Err(FrameError::UnknownKind(77)));
        let mut wrong = bytes.clone();
        wrong[FRAME_HEADER] = b'X';
        assert_eq!(parse(&wrong), Err(FrameError::Magic));
        let mut wrong = bytes;
        wrong.pop();
        assert!(parse(&wrong).is_err());
        assert_eq!(
            parse(&turn_end(5, 3)),
            Ok(Frame::TurnEnd {
                turn: 5,
                applied: 3
            })
        );
        assert!(parse(&simple(Kind::TurnEnd, &5u64.to_le_bytes())).is_err());
        assert!(parse(&simple(Kind::Proof, &[0; 31])).is_err());
    }
}
