//! Networking (feature `net`): the same actors on several machines.
//!
//! A *topology* is a list of addresses ([`NetConfig::machines`]); a
//! machine's index in it is its [`MachineID`], which every [`RawID`] carries.
//! Sending to an ID of another machine, spawning there
//! ([`World::spawn_on`](crate::World::spawn_on)) and broadcasting to
//! every machine ([`World::global_broadcast`](crate::World::global_broadcast))
//! look exactly like local sends; the message travels in its compact form.
//!
//! # The loop
//!
//! Nothing changes in the user's loop: [`ActorSystem::turn`] exchanges
//! with the other machines at its start and end.
//!
//! ```text
//! let mut system = ActorSystem::new(Config { machine, net: Some(net_config), ..Config::default() });
//! system.register::<Car>();            // every machine registers the same types, in the same order
//! loop {
//!     system.turn();                   // 1. waits for peers that are too far behind (see below),
//!                                      //    applies their batches; 2. message cycles until idle;
//!                                      // 3. sends this turn's batches and a turn end to every peer
//! }
//! ```
//!
//! The first turn connects (or call [`ActorSystem::connect`] first, to see
//! errors as values): it binds this machine's address, dials the machines
//! with lower ids and accepts the higher ones, and waits until every peer
//! has joined (at most [`NetConfig::join_timeout`]). Register every class
//! before that: the registry's fingerprint is part of the handshake.
//!
//! # Turns, distance and lockstep
//!
//! A message sent in turn `t` is handled on the other machine in a turn
//! after its batch arrived. Before each turn `T`, a machine waits for
//! every connected peer to have finished turn `T - 1 - d`, where `d` is
//! [`NetConfig::max_turn_distance`]: no machine runs more than `d` turns
//! ahead of a peer, whatever their speeds. With `d = 0` (*lockstep*, the
//! default) turn `T` applies exactly every peer's batches of turn `T - 1`,
//! in machine order, so a run is deterministic for a given topology and
//! inputs (on any thread counts). A lost peer is not waited for.
//!
//! In lockstep, each machine can record a checksum of its own state every
//! few turns ([`ChecksumLog`]), so that two runs of the same topology, or a
//! run and its replay, can be compared, and the first turn and machine
//! where they diverge reported (the demos' `--checksum-every N`).
//!
//! # Faults
//!
//! A lost connection is redialled with backoff (20 ms doubling to 2 s).
//! Meanwhile batches for the peer are kept up to
//! [`NetConfig::peer_buffer_bytes`] and sent when it joins again; beyond
//! that they are dropped and counted ([`PeerStats::dropped`], reason "peer
//! lost"). Every turn end acknowledges the peer's turns applied, so each
//! message sent is eventually counted exactly once: [`delivered`](PeerStats::delivered)
//! (the peer applied it), [`dropped`](PeerStats::dropped), or
//! [`lost`](PeerStats::lost) (sent on a connection that ended before the
//! peer acknowledged it: a peer killed mid-turn loses what it had applied
//! with the rest of its state). Every frame is
//! length-checked on arrival and every message validated
//! (`compact`'s validation) before it reaches an inbox: a malformed frame,
//! an unknown message type or a payload that fails validation closes that
//! connection with a logged reason ([`tracing`] error), before any message
//! of its batch is delivered; nothing panics, and every other peer keeps
//! running. A message larger than a frame can hold is refused when sent
//! (a `tracing` error, counted in [`NetStats::too_large`]).
//!
//! # Snapshots
//!
//! In lockstep, every machine can snapshot at the same turn
//! ([`ActorSystem::snapshot`] with storage): each holds its own state and
//! the batches its peers sent in that turn, which it had not applied yet;
//! each loads its own, and the machines go on together as if they never
//! stopped. See "Networked systems" in [`crate::persist`].
//!
//! # Handshake
//!
//! Each side sends a `Hello` (version, machine, a random 32-byte nonce, its
//! turn, its registry [`Fingerprint`] and its hash), then a `Proof`:
//! HMAC-SHA256 over the cluster secret of `"kay-net-v1"`, its machine, the
//! other's nonce, its own nonce and its fingerprint hash. Each side checks
//! the other's version, machine number, proof ("wrong secret") and
//! fingerprint (naming the first differing entry); on a mismatch it sends a
//! `Refuse` with the reason, logs it, and closes. A process that does not
//! know the secret can neither join nor inject messages.
//!
//! # The wire
//!
//! A TCP stream of frames, each a little-endian `u32` length and that many
//! bytes (at most [`NetConfig::max_frame_bytes`]). All integers are
//! little-endian. Every frame starts with `version: u8` (1), `kind: u8` and
//! two zero bytes:
//!
//! | kind | name | body |
//! |---|---|---|
//! | 1 | Hello | `"KAYN"`, `machine: u8`, 3 zero bytes, `nonce: [u8; 32]`, `turn: u64`, `fingerprint_hash: u64`, `len: u32`, `len` bytes of UTF-8 fingerprint lines joined by `\n` |
//! | 2 | Proof | `hmac: [u8; 32]` |
//! | 3 | Refuse | UTF-8 reason |
//! | 4 | Batch | `count: u32`, `turn: u64`, `base: u64`, then `count` messages |
//! | 5 | TurnEnd | `turn: u64`, `applied: u64` (the receiver's last turn whose batches the sender applied) |
//!
//! A message in a batch is `len: u32`, `tag: u16` (the message id, with
//! bit 15 set for a spawn), the recipient (`instance: u32`, `type_id: u16`,
//! `machine: u8`, `version: u8`) and `len` bytes of the message in compact
//! form: 14 bytes beyond the payload. A payload's pointers are relative to
//! its *origin*, its address in the sender's outbox: `base` for the first
//! message, and for each next one the previous origin plus 16 plus the
//! previous `len` rounded up to 8. A batch frame holds up to 64 KiB of
//! messages (or one larger message), so its 24-byte header adds well under
//! a byte per message.
//!
//! A spawn's recipient names the class (instance 0); the receiving machine
//! gives the instance its ID, which the spawner sees. A global broadcast
//! (instance `u32::MAX - 1`) is delivered to every local instance of the
//! class or trait by each machine that receives it.

mod checksum;
pub(crate) mod frame;
pub(crate) mod outbox;
mod peer;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use bytes::Bytes;
use compact::{Compact, ValidationError};

use crate::ActorSystem;
use crate::class::lanes::SenderLane;
use crate::id::{MachineID, RawID};
use crate::inbox::record::SPAWN_TAG;
#[cfg(doc)]
use crate::registry::Fingerprint;
use crate::registry::MessageID;
use crate::reply::{ReplyError, ReplyToken};
use crate::sync::Unpoisoned;
use crate::world::World;
use outbox::Outbox;
use peer::{Event, Outgoing, PeerLink};

pub use checksum::{ChecksumLog, Divergence, compare_runs};
pub use frame::FrameError;

/// How a machine joins the others (the `net` part of
/// [`Config`](crate::Config); [`Config::machine`](crate::Config::machine)
/// is this machine's index in [`machines`](Self::machines)).
#[derive(Clone, Debug)]
pub struct NetConfig {
    /// Every machine's address, by [`MachineID`] (at most 255).
    pub machines: Vec<SocketAddr>,
    /// The cluster secret every machine shares (any length; 32 random
    /// bytes are plenty).
    pub secret: Vec<u8>,
    /// How many turns a machine may run ahead of a connected peer (0:
    /// lockstep, deterministic; see the [module docs](self)).
    pub max_turn_distance: u64,
    /// The largest frame sent or accepted, in bytes.
    pub max_frame_bytes: usize,
    /// Bytes of batches kept for a peer while it is disconnected; beyond
    /// this they are dropped and counted.
    pub peer_buffer_bytes: usize,
    /// How long the first turn waits for every peer to join.
    pub join_timeout: Duration,
}

/// `n` addresses on 127.0.0.1 with ports that were free a moment ago (the
/// operating system picked them): a topology for tests and demos that run
/// every machine on this one. Another program could take a port before a
/// machine binds it; `connect` then says so.
pub fn loopback_addresses(n: usize) -> Vec<SocketAddr> {
    // Every listener stays open until all ports are picked, so they differ.
    let listeners: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("a free port on 127.0.0.1"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("a bound listener's address"))
        .collect()
}

impl NetConfig {
    /// A topology of `machines` sharing `secret`, in lockstep, with the
    /// default limits (16 MiB frames, 64 MiB kept per lost peer, 60 s to
    /// join).
    pub fn new(machines: Vec<SocketAddr>, secret: impl Into<Vec<u8>>) -> NetConfig {
        NetConfig {
            machines,
            secret: secret.into(),
            max_turn_distance: 0,
            max_frame_bytes: 16 << 20,
            peer_buffer_bytes: 64 << 20,
            join_timeout: Duration::from_secs(60),
        }
    }
}

/// Why networking could not start.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// This machine's index is not in the topology.
    #[error("machine {machine} is not in the topology of {machines} machines")]
    NotInTopology {
        /// This machine.
        machine: u8,
        /// The topology's size.
        machines: usize,
    },
    /// The topology has more machines than a `MachineID` can name.
    #[error("a topology has at most 255 machines, not {0}")]
    TooManyMachines(usize),
    /// This machine's address cannot be bound.
    #[error("cannot listen on {address}: {error}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// Why not.
        error: std::io::Error,
    },
    /// The background runtime did not start.
    #[error("cannot start the network runtime: {0}")]
    Runtime(std::io::Error),
}

/// What a machine knows of one peer ([`ActorSystem::net_stats`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerStats {
    /// The peer's machine.
    pub machine: u8,
    /// Whether it is connected now.
    pub connected: bool,
    /// How many times it joined (connections that passed the handshake).
    pub joins: u64,
    /// The last turn the peer finished, as far as this machine knows.
    pub turn: u64,
    /// Messages sent to it (written by this machine's actors).
    pub sent: u64,
    /// Of those, messages it acknowledged (applied).
    pub delivered: u64,
    /// Of those, messages sent on a connection that ended before it
    /// acknowledged them.
    pub lost: u64,
    /// Messages received from it and delivered.
    pub received: u64,
    /// Of those, messages dropped because it was lost and its buffer was
    /// full (reason "peer lost"). The rest of `sent` (not delivered, lost
    /// or dropped) is on its way or kept for it.
    pub dropped: u64,
    /// Bytes of frames sent to it, with their length prefixes.
    pub bytes_sent: u64,
    /// Bytes of frames received from it, with their length prefixes.
    pub bytes_received: u64,
    /// Connections to it closed for a bad frame or message.
    pub refused: u64,
}

/// Networking statistics ([`ActorSystem::net_stats`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetStats {
    /// This machine.
    pub machine: u8,
    /// Every other machine of the topology.
    pub peers: Vec<PeerStats>,
    /// Messages refused at send because no frame could hold them.
    pub too_large: u64,
}

/// What worlds need to send to other machines.
pub(crate) struct NetShared {
    pub(crate) machines: usize,
    /// The largest payload a frame can carry.
    pub(crate) max_payload: usize,
    /// The outboxes of code outside handlers, by machine.
    pub(crate) outside: Mutex<Vec<Outbox>>,
    pub(crate) too_large: AtomicU64,
}

impl NetShared {
    pub(crate) fn new(config: &NetConfig) -> NetShared {
        NetShared {
            machines: config.machines.len(),
            max_payload: config
                .max_frame_bytes
                .saturating_sub(frame::BATCH_HEADER + frame::MESSAGE_OVERHEAD),
            outside: Mutex::new(
                (0..config.machines.len())
                    .map(|_| Outbox::default())
                    .collect(),
            ),
            too_large: AtomicU64::new(0),
        }
    }
}

/// What the system knows of a message type to take it from the wire.
#[derive(Clone, Copy)]
pub(crate) struct NetOps {
    /// Validates a payload (8-aligned) that was written at `origin`,
    /// rewriting its pointers for where it is now.
    validate: fn(&mut [u8], usize) -> Result<(), ValidationError>,
    /// Delivers a validated payload locally.
    deliver: unsafe fn(&mut World, RawID, MessageID, bool, *mut u8),
}

impl NetOps {
    pub(crate) fn of<M: Compact + 'static>() -> NetOps {
        NetOps {
            validate: |bytes, origin| compact::validate_in_place::<M>(bytes, origin).map(|_| ()),
            deliver: |world, recipient, message, spawn, payload| {
                // SAFETY: callers pass a payload validated as an `M`, and
                // `M`'s message id.
                unsafe { world.deliver_copy::<M>(recipient, message, spawn, payload.cast()) }
            },
        }
    }
}

/// A message of a peer's turn, checked and ready to deliver.
enum Checked {
    /// A message (its type's operations, recipient, id, whether a spawn,
    /// and where its validated payload is in the scratch buffer).
    Message(NetOps, RawID, MessageID, bool, usize),
    /// The answer to one of this machine's requests.
    Answer(ReplyToken, Box<dyn std::any::Any + Send>),
    /// The peer's partial (its answers, of the type with this id) of one
    /// of this machine's requests to a broadcast ID.
    Partial(ReplyToken, std::any::TypeId, Box<dyn std::any::Any + Send>),
    /// A request of this machine that failed there.
    Failed(ReplyToken, ReplyError),
}

/// Checks the batch frames a snapshot holds of one peer's turn `turn`,
/// for machine `me`: each a batch of that turn whose messages are of
/// known types, for this machine (or a spawn or global broadcast), and
/// valid as their types; answers and failures to this machine's requests
/// are checked for their token (their answer's bytes are validated when
/// they are applied, as any answer from the wire).
pub(crate) fn check_frames(
    me: MachineID,
    turn: u64,
    frames: &[Bytes],
    ops: &[Option<NetOps>],
) -> Result<(), String> {
    let mut scratch: Vec<u64> = Vec::new();
    for bytes in frames {
        let batch = match frame::parse(bytes) {
            Ok(frame::Frame::Batch(batch)) => batch,
            Ok(_) => return Err("a frame that is not a batch".to_owned()),
            Err(error) => return Err(format!("a malformed batch: {error}")),
        };
        if batch.turn != turn {
            return Err(format!("a batch of turn {} in turn {turn}", batch.turn));
        }
        for message in batch.messages() {
            let len = message.payload.len();
            scratch.clear();
            scratch.resize(len.div_ceil(8), 0);
            let slot = words_as_bytes(&mut scratch, len);
            slot.copy_from_slice(message.payload);
            check_message(me, &message, slot, ops)?;
        }
    }
    Ok(())
}

/// A message of a peer's batch, checked (see [`check_message`]).
enum Wire {
    /// An answer (or a partial) to one of this machine's requests: its
    /// value is validated by the reply table, as the type awaited.
    Answer(ReplyToken),
    /// A request of this machine that failed there.
    Failed(ReplyToken, ReplyError),
    /// A message: its type's operations and id, and whether a spawn.
    Message(NetOps, MessageID, bool),
}

/// Checks `message` of a peer's batch arriving at machine `me`, its
/// payload copied 8-aligned into `slot`: an answer or failure must be for
/// this machine, a message of a known type for this machine (or a spawn or
/// a global broadcast), validated in `slot` (its pointers rewritten for
/// where it is). Used on arrival and on a snapshot's peer turns.
fn check_message(
    me: MachineID,
    message: &frame::WireMessage<'_>,
    slot: &mut [u8],
    ops: &[Option<NetOps>],
) -> Result<Wire, String> {
    let to_me = message.recipient.machine == me;
    match message.tag {
        frame::ANSWER_TAG | frame::FAILED_TAG if !to_me => {
            Err("an answer for another machine arrived here".to_owned())
        }
        frame::ANSWER_TAG => Ok(Wire::Answer(token_of(slot)?)),
        frame::FAILED_TAG => {
            let error = match (slot.len(), slot.get(8)) {
                (16, Some(0)) => ReplyError::NoReply,
                (16, Some(1)) => ReplyError::NoRecipient,
                (16, Some(2)) => ReplyError::HandlerPanicked,
                (16, Some(3)) => ReplyError::SystemPanicked,
                _ => return Err("a malformed failed request".to_owned()),
            };
            Ok(Wire::Failed(token_of(slot)?, error))
        }
        tag => {
            let id = tag & !SPAWN_TAG;
            let Some(Some(op)) = ops.get(id as usize) else {
                return Err(format!("unknown message type {id}"));
            };
            let spawn = tag & SPAWN_TAG != 0;
            if !spawn && !message.recipient.is_global_broadcast() && !to_me {
                return Err(format!(
                    "a message for machine {} arrived here",
                    message.recipient.machine.0
                ));
            }
            (op.validate)(slot, message.origin as usize)
                .map_err(|error| format!("message type {id} failed validation: {error}"))?;
            Ok(Wire::Message(*op, MessageID(id), spawn))
        }
    }
}

/// The first `len` bytes of `words` (which hold at least that many).
fn words_as_bytes(words: &mut [u64], len: usize) -> &mut [u8] {
    assert!(
        len <= words.len() * 8,
        "{len} bytes in {} words",
        words.len()
    );
    // SAFETY: `words` holds at least `len` initialised bytes (asserted),
    // any bytes are valid `u8`s, and the bytes borrow `words` mutably.
    unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), len) }
}

/// The token at the start of an answer's payload.
fn token_of(payload: &[u8]) -> Result<ReplyToken, String> {
    let bits = payload.get(..8).ok_or("an answer shorter than its token")?;
    Ok(ReplyToken::from_bits(u64::from_le_bytes(
        bits.try_into().expect("8 bytes"),
    )))
}

/// A frame received and not yet applied.
enum Pending {
    Batch(Bytes),
    End(u64),
}

/// The system's book on one peer.
#[derive(Default)]
struct Book {
    joined: bool,
    /// Whether it is connected (as the events so far say).
    connected: bool,
    epoch: u64,
    /// The last of its turns whose batches this machine applied (its
    /// numbering): sent back in each turn end.
    applied: u64,
    /// Messages sent on this connection by turn, not yet acknowledged.
    unacked: VecDeque<(u64, u64)>,
    /// Messages of kept batches sent when it joined, not yet under a turn
    /// end.
    carried: u64,
    /// Batch frames kept while it is lost (with their messages), and their
    /// bytes.
    held: VecDeque<(Vec<u8>, u64)>,
    held_bytes: usize,
    /// My turns minus theirs when it last joined.
    offset: i64,
    /// The last turn it finished (its numbering).
    turn: u64,
    pending: VecDeque<Pending>,
    /// Turn ends in `pending`.
    ends: usize,
    stats: PeerStats,
}

/// The system's side of networking.
pub(crate) struct Net {
    config: NetConfig,
    me: MachineID,
    /// The network's threads (they stop when it is dropped).
    _runtime: tokio::runtime::Runtime,
    links: Vec<Option<PeerLink>>,
    events: mpsc::Receiver<Event>,
    books: Vec<Book>,
    turn: Arc<AtomicU64>,
    /// The world that delivers received messages (the outside lane).
    inject: World,
    scratch: Vec<u64>,
    /// The turn this system had run when it connected (0, or the turn of
    /// the snapshot it loaded): the next one waits for every peer to join.
    start_turn: u64,
}

impl ActorSystem {
    /// Starts networking (the first [`turn`](Self::turn) does it if this
    /// was not called): binds this machine's address and starts connecting
    /// to the others in the background. Without a
    /// [`NetConfig`](crate::net::NetConfig), or when connected already, it does
    /// nothing. Register every class before.
    pub fn connect(&mut self) -> Result<(), NetError> {
        if self.net.is_some() {
            return Ok(());
        }
        let Some(config) = self.config.net.clone() else {
            return Ok(());
        };
        let me = self.config.machine;
        if config.machines.len() > 255 {
            return Err(NetError::TooManyMachines(config.machines.len()));
        }
        let Some(&address) = config.machines.get(me.0 as usize) else {
            return Err(NetError::NotInTopology {
                machine: me.0,
                machines: config.machines.len(),
            });
        };
        let listener = std::net::TcpListener::bind(address)
            .and_then(|listener| listener.set_nonblocking(true).map(|()| listener))
            .map_err(|error| NetError::Bind { address, error })?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("kay-net")
            .enable_all()
            .build()
            .map_err(NetError::Runtime)?;
        let (events_tx, events) = mpsc::channel();
        let turn = Arc::new(AtomicU64::new(self.turn));
        let links = peer::start(
            &runtime,
            peer::Context {
                me,
                machines: config.machines.clone(),
                secret: config.secret.clone(),
                fingerprint: self.fingerprint(),
                max_frame_bytes: config.max_frame_bytes,
                turn: Arc::clone(&turn),
                events: events_tx,
            },
            listener,
        );
        let mut books: Vec<Book> = (0..config.machines.len())
            .map(|m| Book {
                stats: PeerStats {
                    machine: m as u8,
                    ..PeerStats::default()
                },
                ..Book::default()
            })
            .collect();
        // A loaded snapshot's peer turns, not applied yet: the next turn
        // applies them, as the uninterrupted run does (see `crate::persist`).
        for (machine, frames) in std::mem::take(&mut self.loaded_frames) {
            let book = &mut books[machine as usize];
            book.pending.extend(frames.into_iter().map(Pending::Batch));
            book.pending.push_back(Pending::End(self.turn));
            book.ends = 1;
            book.turn = self.turn;
            book.applied = self.turn.saturating_sub(1);
        }
        let mut inject = World::new(Arc::clone(&self.shared), SenderLane::OUTSIDE);
        inject.spawn_turns = std::mem::take(&mut self.loaded_spawn_turns);
        self.net = Some(Box::new(Net {
            me,
            _runtime: runtime,
            links,
            events,
            books,
            turn,
            inject,
            scratch: Vec::new(),
            start_turn: self.turn,
            config,
        }));
        Ok(())
    }

    /// Networking statistics: every peer's connection, turn, messages and
    /// bytes, and what was dropped. `None` without networking.
    pub fn net_stats(&self) -> Option<NetStats> {
        let net = self.net.as_ref()?;
        Some(NetStats {
            machine: net.me.0,
            peers: net
                .books
                .iter()
                .enumerate()
                .filter(|&(m, _)| m != net.me.0 as usize)
                .map(|(_, book)| {
                    let mut stats = book.stats.clone();
                    stats.connected = book.connected;
                    stats.turn = book.turn;
                    stats
                })
                .collect(),
            too_large: self
                .shared
                .net
                .as_ref()
                .map_or(0, |n| n.too_large.load(Relaxed)),
        })
    }

    /// Before a turn (`self.turn` is still the last one): waits for peers that are too far behind, then
    /// delivers what they sent (see the module docs).
    pub(crate) fn net_before_turn(&mut self) {
        if self.net.is_none() {
            if self.config.net.is_none() {
                return;
            }
            if let Err(error) = self.connect() {
                panic!("kay: networking cannot start: {error}");
            }
        }
        let turn = self.turn + 1;
        let net = self.net.as_mut().expect("connected above");
        net.wait_and_apply(turn, &self.message_net_ops);
    }

    /// After a turn: sends every outbox's batches and a turn end to each peer.
    pub(crate) fn net_after_turn(&mut self) {
        let Some(net) = self.net.as_mut() else {
            return;
        };
        let turn = self.turn;
        // Every sender's outboxes in lane order: the outside, then each
        // shard's handlers.
        let mut outside = self
            .shared
            .net
            .as_ref()
            .map(|shared| shared.outside.locked());
        let mut senders: Vec<&mut Vec<Outbox>> = Vec::new();
        if let Some(outside) = outside.as_mut() {
            senders.push(&mut **outside);
        }
        for class in self.classes.iter_mut().flatten() {
            for shard in &mut class.shards {
                if shard.state.world.outboxes.iter().any(|o| !o.is_empty()) {
                    senders.push(&mut shard.state.world.outboxes);
                }
            }
        }
        net.send_turn(turn, &mut senders);
        drop(senders);
        drop(outside);
        net.turn.store(turn, Relaxed);
    }
}

impl Net {
    /// Whether any peer is connected now.
    pub(crate) fn any_connected(&self) -> bool {
        self.links
            .iter()
            .flatten()
            .any(|link| link.state.connected.load(Relaxed))
    }

    /// Whether `book`'s peer must be waited for before turn `turn`.
    fn behind(&self, machine: usize, turn: u64, first: bool) -> bool {
        let book = &self.books[machine];
        if !book.joined {
            return first;
        }
        if !book.connected && book.pending.is_empty() {
            return false;
        }
        let Some(needed) = (turn - 1).checked_sub(self.config.max_turn_distance) else {
            return false;
        };
        let theirs = needed as i64 - book.offset;
        theirs > book.turn as i64
    }

    fn wait_and_apply(&mut self, turn: u64, ops: &[Option<NetOps>]) {
        let first = turn == self.start_turn + 1;
        let started = Instant::now();
        let mut warned = Instant::now();
        loop {
            while let Ok(event) = self.events.try_recv() {
                self.on_event(event);
            }
            let waiting: Vec<usize> = (0..self.books.len())
                .filter(|&m| m != self.me.0 as usize && self.behind(m, turn, first))
                .collect();
            if waiting.is_empty() {
                break;
            }
            if first && started.elapsed() > self.config.join_timeout {
                tracing::warn!(
                    machine = self.me.0,
                    "kay net: machines {waiting:?} did not join within {:?}; going on without them",
                    self.config.join_timeout
                );
                break;
            }
            self.await_event(&mut warned, turn, &waiting, "the turn");
        }
        for machine in 0..self.books.len() {
            self.apply(machine, turn, ops);
        }
    }

    /// Waits up to 100 ms for the next event and handles it; says every
    /// 5 s (`warned`: when it last said) that `what` of turn `turn` waits
    /// for the machines `waiting`.
    fn await_event(&mut self, warned: &mut Instant, turn: u64, waiting: &[usize], what: &str) {
        if warned.elapsed() > Duration::from_secs(5) {
            *warned = Instant::now();
            tracing::info!(
                machine = self.me.0,
                turn,
                "kay net: {what} waits for machines {waiting:?}"
            );
        }
        if let Ok(event) = self.events.recv_timeout(Duration::from_millis(100)) {
            self.on_event(event);
        }
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Joined {
                machine,
                epoch,
                turn,
            } => {
                let mine = self.turn.load(Relaxed);
                let book = &mut self.books[machine.0 as usize];
                if !book.joined && self.start_turn > 0 && turn != self.start_turn {
                    // A machine loaded from a snapshot resumes only with
                    // peers that loaded theirs of the same turn (what it
                    // loaded of theirs stays pending for them).
                    let reason = format!(
                        "this machine resumed a snapshot of turn {}, machine {} joined at turn \
                         {turn}: every machine must load its snapshot of the same turn",
                        self.start_turn, machine.0
                    );
                    tracing::error!(machine = self.me.0, peer = machine.0, "kay net: {reason}");
                    book.stats.refused += 1;
                    if let Some(link) = &self.links[machine.0 as usize] {
                        let _ = link.tx.send(Outgoing::Close { epoch, reason });
                    }
                    return;
                }
                book.joined = true;
                book.connected = true;
                book.epoch = epoch;
                book.turn = turn;
                book.applied = turn;
                book.offset = mine as i64 - turn as i64;
                book.stats.joins += 1;
                // What was kept for it goes first.
                book.held_bytes = 0;
                if let Some(link) = &self.links[machine.0 as usize] {
                    for (bytes, messages) in std::mem::take(&mut book.held) {
                        book.carried += messages;
                        send_frame(link, epoch, bytes, &mut book.stats);
                    }
                }
                tracing::info!(
                    machine = self.me.0,
                    peer = machine.0,
                    "kay net: machine {} joined (its turn {turn}, ours {mine})",
                    machine.0
                );
            }
            Event::Frame {
                machine,
                epoch,
                bytes,
            } => {
                let book = &mut self.books[machine.0 as usize];
                if epoch != book.epoch {
                    return;
                }
                book.stats.bytes_received += bytes.len() as u64 + 4;
                match frame::parse(&bytes) {
                    Ok(frame::Frame::TurnEnd { turn, applied }) => {
                        book.pending.push_back(Pending::End(turn));
                        book.ends += 1;
                        book.turn = turn;
                        while let Some(&(sent, messages)) = book.unacked.front()
                            && sent <= applied
                        {
                            book.unacked.pop_front();
                            book.stats.delivered += messages;
                        }
                    }
                    Ok(frame::Frame::Batch(_)) => book.pending.push_back(Pending::Batch(bytes)),
                    _ => {}
                }
            }
            Event::Lost {
                machine,
                epoch,
                reason,
            } => {
                let book = &mut self.books[machine.0 as usize];
                if epoch == book.epoch {
                    book.connected = false;
                    let unacked: u64 = book.unacked.drain(..).map(|(_, m)| m).sum();
                    book.stats.lost += unacked + std::mem::take(&mut book.carried);
                    tracing::warn!(
                        machine = self.me.0,
                        peer = machine.0,
                        "kay net: lost machine {}: {reason}",
                        machine.0
                    );
                    // Its answers will not come: the requests waiting for
                    // them fail, naming it.
                    for resolved in self.inject.shared.replies.lost(machine) {
                        self.inject.send_resolved(resolved);
                    }
                }
            }
        }
    }

    /// The rotation over shards of the spawns other machines sent (part of
    /// a snapshot: the spawns after a load land where they would have).
    pub(crate) fn spawn_turns(&self) -> &[u32] {
        &self.inject.spawn_turns
    }

    /// For a snapshot after turn `turn` (lockstep): waits until every
    /// peer finished that turn, then returns copies of the batch frames
    /// each sent in it, which this machine applies at the start of the
    /// next turn (they stay pending here). Every machine of the topology
    /// must have joined at the same turn and be connected or have sent
    /// its turn end already.
    pub(crate) fn frames_of_turn(&mut self, turn: u64) -> Result<Vec<(u8, Vec<Bytes>)>, String> {
        let peers: Vec<usize> = (0..self.books.len())
            .filter(|&m| m != self.me.0 as usize)
            .collect();
        for &m in &peers {
            let book = &self.books[m];
            if !book.joined {
                return Err(format!(
                    "machine {m} has not joined (a snapshot of a networked system holds every machine's turn)"
                ));
            }
        }
        let ended = |book: &Book| {
            book.pending
                .iter()
                .any(|p| matches!(p, Pending::End(t) if *t == turn))
        };
        let mut warned = Instant::now();
        loop {
            while let Ok(event) = self.events.try_recv() {
                self.on_event(event);
            }
            let mut waiting = Vec::new();
            for &m in &peers {
                let book = &self.books[m];
                if book.offset != 0 {
                    return Err(format!(
                        "machine {m} joined at another turn than this machine's (offset {})",
                        book.offset
                    ));
                }
                if ended(book) {
                    continue;
                }
                if !book.connected {
                    return Err(format!(
                        "machine {m} was lost before it finished turn {turn}"
                    ));
                }
                waiting.push(m);
            }
            if waiting.is_empty() {
                break;
            }
            self.await_event(&mut warned, turn, &waiting, "a snapshot");
        }
        Ok(peers
            .into_iter()
            .map(|m| {
                let frames = (self.books[m].pending.iter())
                    .take_while(|p| !matches!(p, Pending::End(t) if *t == turn))
                    .filter_map(|p| match p {
                        Pending::Batch(bytes) => Some(bytes.clone()),
                        Pending::End(_) => None,
                    })
                    .collect();
                (m as u8, frames)
            })
            .collect())
    }

    /// Delivers `machine`'s complete turns due before turn `turn`: in
    /// lockstep exactly up to its turn `turn - 1`, else all it finished.
    fn apply(&mut self, machine: usize, turn: u64, ops: &[Option<NetOps>]) {
        let lockstep = self.config.max_turn_distance == 0;
        loop {
            let book = &mut self.books[machine];
            if book.ends == 0 {
                return;
            }
            let end_turn = book.pending.iter().find_map(|p| match p {
                Pending::End(t) => Some(*t),
                Pending::Batch(_) => None,
            });
            if lockstep && end_turn.is_some_and(|t| t as i64 + book.offset > turn as i64 - 1) {
                return;
            }
            let mut batches = Vec::new();
            while let Some(item) = book.pending.pop_front() {
                match item {
                    Pending::Batch(bytes) => batches.push(bytes),
                    Pending::End(turn) => {
                        book.applied = turn;
                        break;
                    }
                }
            }
            book.ends -= 1;
            if let Err(reason) = self.deliver_turn(machine, &batches, ops) {
                self.refuse(machine, reason);
            }
        }
    }

    /// Validates every message of one peer turn, then delivers them all;
    /// on the first invalid one delivers none and says why.
    fn deliver_turn(
        &mut self,
        machine: usize,
        batches: &[Bytes],
        ops: &[Option<NetOps>],
    ) -> Result<(), String> {
        let mut messages = Vec::new();
        for bytes in batches {
            let Ok(frame::Frame::Batch(batch)) = frame::parse(bytes) else {
                return Err("a batch frame changed".to_owned());
            };
            messages.extend(batch.messages());
        }
        // First pass: copy every payload 8-aligned into the scratch buffer
        // and validate it there.
        let words = messages.iter().map(|m| m.payload.len().div_ceil(8)).sum();
        self.scratch.clear();
        self.scratch.resize(words, 0);
        let count = messages.len();
        let mut checked = Vec::with_capacity(count);
        let mut at = 0;
        for message in messages {
            let len = message.payload.len();
            let slot = words_as_bytes(&mut self.scratch[at..at + len.div_ceil(8)], len);
            slot.copy_from_slice(message.payload);
            match check_message(self.me, &message, slot, ops)? {
                Wire::Answer(token) => {
                    let replies = &self.inject.shared.replies;
                    let partial = token.is_gather();
                    match replies.decode(token, slot, message.origin as usize, partial) {
                        Ok(Some((answer, value))) if partial => {
                            checked.push(Checked::Partial(token, answer, value));
                        }
                        Ok(Some((_, value))) => checked.push(Checked::Answer(token, value)),
                        Ok(None) => {}
                        Err(error) => return Err(format!("an answer failed validation: {error}")),
                    }
                }
                Wire::Failed(token, error) => checked.push(Checked::Failed(token, error)),
                Wire::Message(op, id, spawn) => {
                    checked.push(Checked::Message(op, message.recipient, id, spawn, at));
                }
            }
            at += len.div_ceil(8);
        }
        // Second pass: deliver.
        let base = self.scratch.as_mut_ptr();
        for item in checked {
            match item {
                Checked::Message(op, recipient, message, spawn, at) => {
                    // SAFETY: validated above as the message type of `op`;
                    // the scratch buffer is not touched until the next
                    // delivery.
                    unsafe {
                        (op.deliver)(
                            &mut self.inject,
                            recipient,
                            message,
                            spawn,
                            base.add(at).cast(),
                        )
                    };
                }
                Checked::Answer(token, answer) => {
                    let resolved = self.inject.shared.replies.answer_boxed(token, answer);
                    self.inject.send_resolved(resolved);
                }
                Checked::Partial(token, answer, value) => {
                    let from = MachineID(machine as u8);
                    let resolved = (self.inject.shared.replies).partial(token, answer, from, value);
                    self.inject.send_resolved(resolved);
                }
                Checked::Failed(token, error) => {
                    let resolved = self.inject.shared.replies.fail(token, error);
                    self.inject.send_resolved(resolved);
                }
            }
        }
        self.books[machine].stats.received += count as u64;
        Ok(())
    }

    /// Closes the connection to `machine` for `reason` (logged).
    fn refuse(&mut self, machine: usize, reason: String) {
        tracing::error!(
            machine = self.me.0,
            peer = machine,
            "kay net: closing the connection to machine {machine}: {reason}"
        );
        let book = &mut self.books[machine];
        book.stats.refused += 1;
        book.pending.clear();
        book.ends = 0;
        if let Some(link) = &self.links[machine] {
            let _ = link.tx.send(Outgoing::Close {
                epoch: book.epoch,
                reason,
            });
        }
    }

    /// Sends this turn's batches (from every sender's outboxes, in lane
    /// order) and a turn end to each peer.
    fn send_turn(&mut self, turn: u64, outboxes: &mut [&mut Vec<Outbox>]) {
        let limit = self.config.peer_buffer_bytes;
        for machine in 0..self.books.len() {
            let Some(link) = &self.links[machine] else {
                continue;
            };
            let book = &mut self.books[machine];
            let mut messages_now = 0;
            for sender in outboxes.iter_mut() {
                let Some(outbox) = sender.get_mut(machine) else {
                    continue;
                };
                if outbox.is_empty() {
                    continue;
                }
                outbox.take_frames(turn, |bytes, messages| {
                    book.stats.sent += messages;
                    if book.connected {
                        messages_now += messages;
                        send_frame(link, book.epoch, bytes, &mut book.stats);
                    } else if book.held_bytes + bytes.len() <= limit {
                        book.held_bytes += bytes.len();
                        book.held.push_back((bytes, messages));
                    } else {
                        book.stats.dropped += messages;
                    }
                });
            }
            if book.connected {
                let messages = messages_now + std::mem::take(&mut book.carried);
                if messages > 0 {
                    book.unacked.push_back((turn, messages));
                }
                let end = frame::turn_end(turn, book.applied);
                send_frame(link, book.epoch, end, &mut book.stats);
            }
        }
    }
}

/// Queues a frame for the connection `epoch` of `link` (a later
/// connection never sends it: what an ended one did not send is lost).
fn send_frame(link: &PeerLink, epoch: u64, bytes: Vec<u8>, stats: &mut PeerStats) {
    stats.bytes_sent += bytes.len() as u64 + 4;
    link.state.queued.fetch_add(bytes.len(), Relaxed);
    let _ = link.tx.send(Outgoing::Frame {
        epoch,
        bytes: Bytes::from(bytes),
    });
}

impl Drop for Net {
    fn drop(&mut self) {
        // Let what was queued (the last turn's batches and turn end) reach
        // the sockets, for up to a second, before the runtime stops.
        let deadline = Instant::now() + Duration::from_secs(1);
        while Instant::now() < deadline
            && self.links.iter().flatten().any(|link| {
                link.state.connected.load(Relaxed) && link.state.queued.load(Relaxed) > 0
            })
        {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

#[cfg(test)]
mod tests;
