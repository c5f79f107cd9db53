#![doc = include_str!("../../../README.md")]
//!
//! # Decisions
//! - Delivery within one class and one sender is FIFO.
//! - A message to a dead instance, a stale ID (older version) or an
//!   instance that does not exist yet is dropped and counted
//!   ([`Stats::lost`]); nothing else receives it.
//! - Spawning hands out the ID at once; the instance exists from the next
//!   message cycle, so messages sent to it from the same sender afterwards
//!   arrive after it exists.
//! - A broadcast is one record in the class inbox, delivered by scanning the
//!   instance store, reading the message once. Every instance that exists
//!   when the broadcast is handled gets it exactly once, even if instances
//!   die or grow during the scan; instances spawned meanwhile do not.
//! - Messages are plain data: they are not dropped after handling (in
//!   compact form they own nothing).
//! - Actors and messages must have an alignment of at most 8 bytes.
//! - [`World`] is `!Send`: a world outside handlers sends on the system's
//!   own lane, which must have one writer at a time (the system's thread).
//! - **Multi-core and determinism.** Each class is split into
//!   [`Config::shards`] shards (instance `i` lives in shard `i % shards`),
//!   handled in parallel on [`Config::threads`] threads (the calling
//!   thread and a rayon pool of helpers), one thread per shard at a time.
//!   Every shard has one inbox per *sender lane* (outside code, or one
//!   shard's handlers), drained in lane order, each first in, first out;
//!   spawned IDs come from blocks owned by the sending lane. So the
//!   handling order, the IDs and therefore every actor's final state
//!   depend only on the inputs and on the shard count —
//!   not on the thread count or on timing: 1, 2, 3 or 8 threads give
//!   identical state (tested in `tests/determinism.rs`). Limits: changing
//!   `shards` changes IDs and the interleaving of messages from different
//!   senders; reply tokens of requests (not actor state) come from a shared
//!   table; handlers must not use outside sources of nondeterminism
//!   (clocks, thread-locals, unordered `std` hash maps).
//! - `#[kay::implements]` registers a trait's handlers for a class at link
//!   time (the `inventory` crate), so `system.register::<Class>()` installs
//!   them wherever the impl block is; this works on wasm32 too.
//! - A message cycle handles every inbox up to where it stood when the
//!   cycle began; what handlers send meanwhile waits for the next cycle.
//! - A turn ([`ActorSystem::turn`]) runs message cycles until the system is
//!   quiet, or until [`Config::max_cycles_per_call`] cycles ran; then
//!   [`Turn::messages_left`] says so (and a `tracing` warning), and the rest
//!   waits for the next turn.
//! - Time is counted in turns: timers ([`World::send_after`],
//!   [`World::send_every`], and [`World::after`] for the ID methods the
//!   macros generate) fire at the start of a turn, the same on any thread
//!   count; requests time out after a number of turns.
//! - Futures ([`mod@reply`] docs): a [`Reply`] is awaited from any executor
//!   or with [`ActorSystem::block_on`]; a request to a broadcast ID is
//!   answered by every instance and [reduced](Reply::reduce) or
//!   [collected](Reply::collect), one partial per machine; handlers never
//!   wait, they [continue with a message](Reply::then_send).
//!
//! # Limits
//!
//! | limit | value | beyond it |
//! |---|---|---|
//! | shards over all classes | 16,383: 4,095 classes at the default 4 shards | [`ActorSystem::try_register`] returns [`Error::TooManyShards`] |
//! | classes and actor traits | 65,535 | [`Error::TooManyTypes`] |
//! | message types | 32,766 | registration panics |
//! | instances of a class | 4,294,967,293, from any mix of senders | spawning panics with a clear message |
//! | spawns from one handler into one shard of a class in one message cycle, beyond twice what it took in its last spawning cycle | about 2<sup>32</sup> / (shards × (1 + shards of all classes)): 262,000 per shard with 1,000 classes | spawning panics with a clear message; spawn the rest in the next cycle, or from outside handlers (no such bound) |
//! | versions of one instance number | 256, then they wrap | a very old stale ID could reach a new instance |
//! | message size | 1 GiB minus 16 bytes | sending panics |
//! | actor and message alignment | 8 bytes | registration panics |
//! | cycles per turn | [`Config::max_cycles_per_call`] (1,000) | the turn ends with [`Turn::messages_left`] |
//! | turns a request waits for its answer | [`Config::request_timeout_turns`] (1,000), or [`Reply::timeout`] | the `Reply` resolves to [`ReplyError::TimedOut`] |
//! | panic reports kept | [`MAX_PANIC_REPORTS`] (64) | further panics are counted only |
//!
//! The architecture behind these numbers is in `docs/architecture.md`.

extern crate self as kay;

mod actor;
mod class;
mod config;
mod cycle;
mod error;
mod external;
mod id;
mod inbox;
#[cfg(feature = "net")]
pub mod net;
pub mod persist;
mod prefetch;
mod registry;
pub mod reply;
mod stats;
mod store;
mod sync;
mod system;
pub mod timer;
mod world;

#[doc(hidden)]
pub mod private;

/// Shards and sender lanes, for kay's loom model only.
#[doc(hidden)]
pub mod lanes_internals {
    pub use crate::class::lanes::{AllShards, GlobalShard, Lane, SenderLane, ShardShared};
}

/// The wire format's parser, for the fuzz target only.
#[cfg(feature = "net")]
#[doc(hidden)]
pub mod net_internals {
    pub use crate::net::frame::*;
}

/// The inbox, for kay's own integration tests and benchmarks only.
#[doc(hidden)]
pub mod inbox_internals {
    pub use crate::inbox::*;
}

pub use actor::{Actor, ActorTrait, Fate, Message, Recipient};
pub use class::HandlerKind;
pub use compact::{self, CBox, CHashMap, COption, CString, CVec, Compact};
pub use config::Config;
pub use cycle::panic::{PanicPolicy, PanicReport};
pub use error::Error;
pub use external::External;
pub use id::{MachineID, ParseIDError, RawID, ShortTypeID, TypedID};
pub use kay_macros::{actor, actor_trait, implements};
pub use persist::{LoadReport, PersistError, SnapshotReport};
pub use registry::ClassSetup;
pub use registry::MessageID;
pub use registry::{Difference, Fingerprint};
pub use reply::{
    Collect, Combine, Continue, Max, Min, Reduce, Reply, ReplyError, ReplyTo, Request, Sum,
};
pub use stats::{ClassStats, Stats, Undelivered};
pub use system::{ActorSystem, MAX_PANIC_REPORTS, Turn};
pub use timer::TimerID;
pub use world::World;

/// Everything the usual actor code needs: `use kay::prelude::*;`.
///
/// Brings the system ([`ActorSystem`], [`Config`]), the handler context
/// ([`World`], [`Fate`]), requests ([`Reply`]), the ID traits ([`TypedID`],
/// [`ActorTrait`]), the `Compact` derive and trait, and the compact
/// containers used in actor state and messages ([`CVec`], [`CString`],
/// [`CHashMap`], [`COption`]). The macros themselves are used by path:
/// `#[kay::actor]`, `#[kay::actor_trait]`, `#[kay::implements]`.
pub mod prelude {
    pub use crate::{
        ActorSystem, ActorTrait, CHashMap, COption, CString, CVec, Compact, Config, Fate, Reply,
        ReplyError, TypedID, World,
    };
}
