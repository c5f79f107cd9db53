//! One actor class inside the system: its shards (each an instance store
//! with its inboxes, one per sender lane), its handler table, and what a
//! shard takes from its lanes for a message cycle. How a shard then hands
//! its records to handlers is the cycle's dispatch (`crate::cycle`).

pub(crate) mod handlers;
pub(crate) mod ids;
pub(crate) mod lanes;

use std::ptr::NonNull;
use std::sync::Arc;

use crate::cycle::panic::{Caught, PanicPolicy};
use crate::id::RawID;
use crate::inbox::{Inbox, Position};
use crate::reply::ReplyError;
use crate::store::Store;
use crate::world::World;

pub(crate) use lanes::{ClassShared, Lane, ShardShared};

pub use handlers::HandlerKind;
pub(crate) use handlers::{Handler, HandlerTable};

/// Counters of one class.
#[derive(Default)]
pub(crate) struct ClassCounters {
    /// Messages handled, by message id.
    pub(crate) handled: Vec<u64>,
    /// Records whose recipient did not exist ([`Undelivered::Gone`] and
    /// [`Undelivered::Stale`]).
    ///
    /// [`Undelivered::Gone`]: crate::Undelivered::Gone
    /// [`Undelivered::Stale`]: crate::Undelivered::Stale
    pub(crate) no_recipient: u64,
    /// Of those, records whose recipient's number holds a live instance of
    /// another version.
    pub(crate) stale: u64,
    /// Records of a message type the class has no handler for.
    pub(crate) no_handler: u64,
    /// Records kept (not handled) while the system was panicked, waiting
    /// for `clear_panic`.
    pub(crate) kept: u64,
}

/// A class as the system owns it.
pub(crate) struct Class {
    pub(crate) shared: Arc<ClassShared>,
    /// Boxed, and `shards` never resized: the system's table of shards
    /// points at both.
    pub(crate) handlers: Box<HandlerTable>,
    pub(crate) shards: Vec<Shard>,
}

/// A shard as the system owns it: its instances and what its handlers use.
pub(crate) struct Shard {
    pub(crate) store: Store,
    /// What dispatching its records uses and changes.
    pub(crate) state: ShardState,
    /// This cycle's work: lanes to drain, each up to its snapshot, in lane
    /// order.
    pub(crate) work: Vec<(NonNull<Lane>, Position)>,
    /// Whether the next cycle starts by handling the kept records (set by
    /// the system when it leaves the panicked state).
    pub(crate) resume: bool,
    /// The kept records being handled after `clear_panic`, up to their
    /// snapshot (here while drained, so a panic cannot lose them).
    pub(crate) resuming: Option<(Box<Inbox>, Position)>,
    /// Records taken from inboxes in this cycle (handled, kept or dropped).
    pub(crate) taken: usize,
}

/// The part of a shard that dispatching a record uses: one pointer for the
/// whole dispatch loop.
pub(crate) struct ShardState {
    /// The world of this shard's handlers (sending on the shard's lane).
    pub(crate) world: World,
    /// The class's name (for panic reports).
    pub(crate) class: &'static str,
    pub(crate) counters: ClassCounters,
    pub(crate) died: Vec<RawID>,
    /// What happens when a handler of this class panics.
    pub(crate) policy: PanicPolicy,
    /// Whether the system is panicked for this shard: set by the system
    /// when it enters or leaves the panicked state, and by a panic caught in
    /// this shard under [`PanicPolicy::Stop`] at once (the system follows
    /// after the cycle).
    pub(crate) panicked: bool,
    /// Panics caught in this cycle, collected by the system after it.
    pub(crate) caught: Vec<Caught>,
    /// Records kept while panicked, in the order they would have been
    /// handled (created on first use).
    pub(crate) kept: Option<Box<Inbox>>,
}

impl ShardState {
    pub(crate) fn new(world: World, class: &'static str) -> ShardState {
        ShardState {
            world,
            class,
            counters: ClassCounters::default(),
            died: Vec::new(),
            policy: PanicPolicy::Stop,
            panicked: false,
            caught: Vec::new(),
            kept: None,
        }
    }

    /// Keeps a record instead of handling it (the system is panicked),
    /// unless its handler is essential; returns whether it kept it.
    #[cold]
    #[inline(never)]
    pub(crate) fn keep(
        &mut self,
        handler: &Handler,
        tag: u16,
        recipient: RawID,
        payload: *const u8,
    ) -> bool {
        if handler.essential {
            return false;
        }
        let kept = self
            .kept
            .get_or_insert_with(|| Box::new(Inbox::with_pool_limit(KEPT_CHUNK, 1)));
        // SAFETY: the payload is a valid message of the handler's type, alive
        // during this call; this shard's thread is the kept inbox's only
        // writer.
        unsafe { (handler.keep)(payload, recipient, tag, kept) };
        self.counters.kept += 1;
        if let Some(fail) = handler.fail_request {
            // SAFETY: a request of the handler's type.
            unsafe { fail(payload, &mut self.world, ReplyError::SystemPanicked) };
        }
        true
    }
}

// SAFETY: a shard is handled by one thread at a time (the system hands
// `&mut Shard` to one job per cycle and joins before the next). Its store
// holds `Send` actors; its world sends only on the shard's own lane, where
// it is the single writer; the lane pointers in `work` point into the
// class's `Arc<ClassShared>`, alive as long as the system.
unsafe impl Send for Shard {}

impl Shard {
    /// Adds `lane`'s records to this cycle's work, up to its end, if it
    /// got any since the last cycle began (and takes its flag). Lanes are
    /// added in lane order. Returns whether it had records. Called between
    /// cycles only.
    #[inline]
    pub(crate) fn take_lane(&mut self, lane: NonNull<Lane>) -> bool {
        // SAFETY: lanes live as long as their class (see `Send` above).
        let lane_ref = unsafe { lane.as_ref() };
        // A pending lane got records since the last cycle began, and
        // nothing drained them since: it has work up to its end.
        let pending = lane_ref.take_pending();
        if pending {
            self.work.push((lane, lane_ref.inbox.snapshot()));
        }
        pending
    }

    /// A rough estimate of this cycle's work in nanoseconds, to decide
    /// whether handing jobs to helper threads pays (see `message_cycle`):
    /// a byte of records per nanosecond (a 24-byte point-to-point record
    /// takes some 20 ns), plus a nanosecond per instance if a broadcast
    /// came in. Called between cycles only.
    pub(crate) fn estimated_work(&self, shared: &ShardShared) -> usize {
        let records: usize = self
            .work
            .iter()
            .map(|(lane, until)| {
                // SAFETY: lanes live as long as their class (see `Send`).
                let lane = unsafe { lane.as_ref() };
                lane.inbox.bytes_before_spanning(*until)
            })
            .sum();
        let broadcast = if shared.take_broadcast() {
            self.store.len()
        } else {
            0
        };
        records + broadcast
    }

    /// Recycles the inbox memory this cycle's work has finished, keeping
    /// this shard's lanes' share of the class's retention budget
    /// ([`ShardShared::keep_chunks`]) and freeing the rest.
    ///
    /// # Safety
    /// Between cycles: no drain or push of these lanes is in progress, and
    /// no record slice from them is alive.
    #[inline]
    pub(crate) unsafe fn reclaim_work(&mut self, shared: &ShardShared) {
        for (lane, _) in &self.work {
            // SAFETY: lanes live as long as their class; exclusive (caller).
            unsafe {
                lane.as_ref()
                    .inbox
                    .reclaim_keeping_with(|| shared.keep_chunks())
            };
        }
        self.work.clear();
    }
}

/// The chunk size of inboxes of kept records.
const KEPT_CHUNK: usize = 1 << 12;
