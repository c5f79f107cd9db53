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
//! - [`World`] is `!Send` for now: inbox chunks are recycled between message
//!   cycles, which needs every send to happen on the system's thread. (The
//!   inbox itself is a lock-free multi-writer queue; with one writer thread
//!   the runtime uses its cheaper single-writer reservation.)
//! - Execution is single-threaded and deterministic: the same inputs give
//!   the same actor states in every run. Multi-core execution comes next.
//! - `#[kay::implements]` registers a trait's handlers for a class at link
//!   time (the `inventory` crate), so `system.register::<Class>()` installs
//!   them wherever the impl block is; this works on wasm32 too.
//! - A message cycle handles every class's inbox up to where it stood when
//!   the cycle began, class by class in registration order, each inbox in
//!   the order its records were sent.

extern crate self as kay;

mod actor;
mod class;
mod external;
mod id;
mod inbox;
mod prefetch;
mod reply;
mod stats;
mod sync;
mod system;
mod world;

#[doc(hidden)]
pub mod private;

/// The inbox, for kay's own integration tests and benchmarks only.
#[doc(hidden)]
pub mod inbox_internals {
    pub use crate::inbox::*;
}

pub use actor::{Actor, ActorTrait, Fate, Message, Recipient};
pub use class::{HandlerKind, MessageId};
pub use compact::{self, CBox, CHashMap, COption, CString, CVec, Compact};
pub use external::External;
pub use id::{MachineID, ParseIDError, RawID, ShortTypeId, TypedID};
pub use kay_macros::{actor, actor_trait, implements};
pub use reply::{Reply, ReplyError, ReplyTo};
pub use stats::{ClassStats, Stats};
pub use system::{ActorSystem, ClassSetup, Config};
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
        TypedID, World,
    };
}
