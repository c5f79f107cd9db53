//! [`Config`]: how an [`ActorSystem`](crate::ActorSystem) runs.

use crate::id::MachineID;

/// How an [`ActorSystem`](crate::ActorSystem) runs.
#[derive(Clone, Debug)]
pub struct Config {
    /// This machine's index in the topology (0 on a single machine).
    pub machine: MachineID,
    /// The most message cycles one [`turn`](crate::ActorSystem::turn)
    /// runs; messages left then wait for the next turn, and the turn says
    /// so ([`Turn::messages_left`](crate::Turn::messages_left), plus a
    /// `tracing` warning). The bound keeps a loop of actors that never
    /// falls quiet from stalling the caller's loop.
    pub max_cycles_per_call: usize,
    /// How many turns after the turn it was sent in a request times out
    /// unanswered (its `Reply` then resolves to
    /// [`ReplyError::TimedOut`](crate::ReplyError::TimedOut)); 0: never.
    /// [`Reply::timeout`](crate::Reply::timeout) sets it per request.
    pub request_timeout_turns: u64,
    /// The size of inbox chunks in bytes (a power of two); larger messages
    /// get chunks of their own.
    pub inbox_chunk_size: usize,
    /// How many bytes of finished inbox chunks each class keeps for reuse,
    /// over all its inboxes (shards × sender lanes: the budget is split
    /// evenly among them, at least one chunk each). Like a `Vec`'s
    /// capacity, inboxes keep the memory of their largest burst up to this
    /// limit, so that steady bursts of messages neither allocate nor touch
    /// fresh pages; what a burst needed beyond it is freed after the cycle.
    pub inbox_retain_bytes: usize,
    /// Threads that handle shards in parallel (default: the number of
    /// cores): the thread calling into the system plus `threads - 1`
    /// helper threads. Changing it never changes results (see the crate
    /// docs on determinism).
    pub threads: usize,
    /// Shards per class: each class is split into this many instance stores
    /// that can be handled in parallel. Part of the configuration (not
    /// derived from `threads`), so IDs and delivery order stay the same
    /// whatever the thread count. At most 16,383 shards over all classes.
    pub shards: usize,
    /// How many snapshot generations a system made with
    /// [`with_storage`](crate::ActorSystem::with_storage) keeps (at least
    /// 1): older ones are removed after each new one is committed.
    pub snapshots_kept: usize,
    /// Whether a system made with
    /// [`with_storage`](crate::ActorSystem::with_storage) keeps its live
    /// instance stores in mmap'ed files under `dir/live` (the default) or
    /// on the heap. Snapshots are the same either way (the live files are
    /// recreated at start; the snapshot is the durable copy; what a load
    /// brings in is never in the live files); on the heap, spawning is
    /// faster (no file pages to allocate) and the kernel writes nothing
    /// back while the system runs, while files let the kernel page state
    /// out to them under memory pressure.
    pub live_stores_in_files: bool,
    /// Whether [`load`](crate::ActorSystem::load) maps the snapshot's store
    /// files copy-on-write as the stores' memory (the default) instead of
    /// reading them into memory. Mapping copies nothing at load: W6
    /// (1M actors, 32 MB, 2 threads) loads in ~3 ms instead of ~6-8.
    /// The copy comes when a store is first used: the first message
    /// cycle that handles messages for a shard copies that shard's mapped
    /// chunks into the system's own memory at once (huge pages where the
    /// system gives them) and indexes them (either way of loading), so
    /// the first turn takes ~7-10 ms instead of ~1 for W6; stores that
    /// get no messages stay mapped (a system loaded to be inspected
    /// copies nothing). Classes whose instances can have dynamic parts or hold
    /// an `External` are read either way (their load writes to them), and
    /// so are files that another user could write (see
    /// [`crate::persist`]). Reading is the better choice only where the
    /// snapshot's files may change while the system runs, or a system
    /// must not depend on them after `load` returns (until its first
    /// cycle it does): do not write to a snapshot's files while a system
    /// that mapped them runs (as with the live store files).
    pub map_snapshots_on_load: bool,
    /// The machines this one talks to, and how (feature `net`; `None`: this
    /// machine alone). See the [`net`](crate::net) module.
    #[cfg(feature = "net")]
    pub net: Option<crate::net::NetConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            machine: MachineID(0),
            max_cycles_per_call: 1_000,
            request_timeout_turns: 1_000,
            inbox_chunk_size: 1 << 16,
            inbox_retain_bytes: 64 << 20,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            shards: 4,
            snapshots_kept: 2,
            live_stores_in_files: true,
            map_snapshots_on_load: true,
            #[cfg(feature = "net")]
            net: None,
        }
    }
}
