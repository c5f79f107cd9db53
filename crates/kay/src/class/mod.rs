//! One actor class inside the system: its shards (each an instance store
//! with its inboxes), its handler table, and the dispatch from inbox records
//! to handlers.
//!
//! A record in an inbox carries the message id as the tag of the inbox's own
//! 8-byte header word; its payload is the recipient [`RawID`] (8 bytes)
//! followed by the message in compact form — 24 bytes for an 8-byte message.

pub(crate) mod handlers;
pub(crate) mod lanes;

use std::ptr::NonNull;
use std::sync::Arc;

use crate::id::RawID;
use crate::inbox::{Inbox, Position};
use crate::panic::{Caught, PanicPolicy, catch};
use crate::reply::ReplyError;
use crate::store::AnyStore;
use crate::world::World;

pub(crate) use lanes::{ClassShared, Lane, ShardShared};

pub use handlers::HandlerKind;
pub(crate) use handlers::{Handler, HandlerTable};

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

/// A dense number for a message type, given when a handler for it is registered.
#[repr(transparent)]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct MessageId(pub(crate) u16);

/// The bit of a record's tag that marks a spawn (written only by
/// `World::spawn`): only a spawner handles such a record, and a spawner
/// handles nothing else, so a spawner message sent with `World::send` can
/// never replace a live actor and a spawn always creates a fresh instance.
pub(crate) const SPAWN_TAG: u16 = 0x8000;

/// The most message types (the tag's other 15 bits, minus [`UNKNOWN`]).
pub(crate) const MAX_MESSAGE_TYPES: usize = 0x7FFF;

/// The message id of a spawn whose message type has no handler anywhere: its
/// record carries only the allocated ID, which the shard hands back.
pub(crate) const UNKNOWN: MessageId = MessageId(0x7FFF);

/// Counters of one class.
#[derive(Default)]
pub(crate) struct ClassCounters {
    /// Messages handled, by message id.
    pub(crate) handled: Vec<u64>,
    /// Records whose recipient did not exist.
    pub(crate) no_recipient: u64,
    /// Records of a message type the class has no handler for.
    pub(crate) no_handler: u64,
    /// Records kept (not handled) while the system was panicked, waiting
    /// for `clear_panic`.
    pub(crate) kept: u64,
}

/// A class as the system owns it.
pub(crate) struct Class {
    pub(crate) shared: Arc<ClassShared>,
    pub(crate) handlers: HandlerTable,
    pub(crate) shards: Vec<Shard>,
}

/// Records handled together: their index entries and slots are prefetched
/// first, so that the cache misses of a batch overlap instead of queueing.
const BATCH: usize = 256;

/// A shard as the system owns it: its instances and what its handlers use.
pub(crate) struct Shard {
    pub(crate) store: Box<dyn AnyStore>,
    /// What dispatching its records uses and changes.
    pub(crate) state: ShardState,
    /// This cycle's work: lanes to drain, each up to its snapshot.
    pub(crate) work: Vec<(NonNull<Lane>, Position)>,
    /// The lanes into this shard, in lane order, and the change counter seen.
    pub(crate) lanes: Vec<NonNull<Lane>>,
    pub(crate) lanes_seen: u32,
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
    fn keep(&mut self, handler: &Handler, tag: u16, recipient: RawID, payload: *const u8) -> bool {
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
            unsafe { fail(payload, &self.world, ReplyError::SystemPanicked) };
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
    /// Takes this cycle's work from the lanes into this shard (whose shared
    /// part is `shared`): every pending lane up to its current end, in lane
    /// order. Returns whether there is any. Called between cycles only.
    #[inline]
    pub(crate) fn take_work(&mut self, shared: &ShardShared) -> bool {
        debug_assert!(self.work.is_empty(), "the last cycle's work was reclaimed");
        if let Some(lanes) = shared.lanes_if_changed(&mut self.lanes_seen) {
            self.lanes = lanes;
        }
        for &lane_ptr in &self.lanes {
            // SAFETY: lanes live as long as their class (see `Send` above).
            let lane = unsafe { lane_ptr.as_ref() };
            // A pending lane got records since the last cycle began, and
            // nothing drained them since: it has work up to its end.
            if lane.take_pending() {
                self.work.push((lane_ptr, lane.inbox.snapshot()));
            }
        }
        self.resume || !self.work.is_empty()
    }

    /// Recycles the inbox memory this cycle's work has finished.
    ///
    /// # Safety
    /// Between cycles: no drain or push of these lanes is in progress, and
    /// no record slice from them is alive.
    #[inline]
    pub(crate) unsafe fn reclaim_work(&mut self) {
        for (lane, _) in &self.work {
            // SAFETY: lanes live as long as their class; exclusive (caller).
            unsafe { lane.as_ref().inbox.reclaim() };
        }
        self.work.clear();
    }

    /// Handles this cycle's work with the class's `handlers`.
    ///
    /// A panic of a handler is caught here, once around the whole cycle's
    /// work, not around each call, so the dispatch loop stays as tight as
    /// without: while unwinding, `handle_record` notes the record it was on
    /// (in `current`, a store that only the unwinding path makes), the
    /// inbox's read position and count are already behind it, and after
    /// [`recover`] the work goes on where it stopped (the rest of the lane,
    /// or of the batch the record was in).
    pub(crate) fn run(&mut self, handlers: &HandlerTable) {
        self.taken = 0;
        let mut batch = Batch::new();
        let current = Current::default();
        let mut ran = catch(|| self.run_on(handlers, &mut batch, &current));
        while let Err(panic) = ran {
            let store_ptr = self.store.as_ptr();
            let rest = recover(
                panic,
                current.take(),
                batch.records(),
                store_ptr,
                handlers,
                &mut self.state,
            );
            ran = catch(|| {
                // The rest of the batch the faulting record was in comes
                // first: its records precede what is left in its lane.
                let Shard { store, state, .. } = self;
                handle_batch(&batch.records()[rest..], store, handlers, state, &current);
                batch.clear();
                self.run_on(handlers, &mut batch, &current)
            });
        }
    }

    /// The work of [`run`](Self::run) from where it stopped: lanes drained
    /// already (up to their snapshot) hand out nothing more.
    #[inline(always)]
    fn run_on(&mut self, handlers: &HandlerTable, batch: &mut Batch, current: &Current) {
        if self.resume {
            self.resume_kept(handlers, batch, current);
        }
        for at in 0..self.work.len() {
            let (lane, until) = self.work[at];
            // SAFETY: lanes live as long as the system (see `Send` above);
            // only this shard drains its lanes, one thread at a time, and
            // record slices stay valid until the next `reclaim`, which runs
            // after this cycle. Handlers may push into this very lane from
            // inside the drain, which `drain_to_tagged` allows (such records
            // wait for the next cycle).
            unsafe { self.drain(&lane.as_ref().inbox, until, handlers, batch, current) };
        }
    }

    /// Handles the records kept while the system was panicked, first and in
    /// order (after `clear_panic`). Records kept again by a new panic go
    /// into a fresh kept inbox, still in order; this one is fully drained.
    #[cold]
    #[inline(never)]
    fn resume_kept(&mut self, handlers: &HandlerTable, batch: &mut Batch, current: &Current) {
        if self.resuming.is_none() {
            // Every kept record is now handled or kept again (and counted
            // again then).
            self.resuming = self.state.kept.take().map(|kept| {
                let until = kept.snapshot();
                (kept, until)
            });
            self.state.counters.kept = 0;
        }
        if let Some((kept, until)) = &self.resuming {
            let (kept, until): (*const Inbox, Position) = (&**kept, *until);
            // SAFETY: the kept inbox is this shard's alone, written only by
            // this thread (into a fresh box while this one is drained), and
            // its record slices live until the reclaim below; the box stays
            // in `resuming` during the drain (also if a panic interrupts it,
            // for the drain to go on with).
            unsafe { self.drain(&*kept, until, handlers, batch, current) };
        }
        self.resume = false;
        if let Some((kept, _)) = self.resuming.take()
            && self.state.kept.is_none()
        {
            // SAFETY: the drain is over and no slice of it is alive.
            unsafe { kept.reclaim() };
            self.state.kept = Some(kept);
        }
    }

    /// Handles the records of `inbox` up to `until`: a few (conversations)
    /// straight from the inbox, as a batch would only copy them, more in
    /// batches whose instances are prefetched.
    ///
    /// # Safety
    ///
    /// This thread is `inbox`'s only reader, `until` is a snapshot of it,
    /// and its record slices stay valid until after this cycle.
    #[inline(always)]
    unsafe fn drain(
        &mut self,
        inbox: &Inbox,
        until: Position,
        handlers: &HandlerTable,
        batch: &mut Batch,
        current: &Current,
    ) {
        let Shard {
            store,
            state,
            taken,
            ..
        } = self;
        if inbox
            .bytes_before(until)
            .is_some_and(|bytes| bytes <= DIRECT_BYTES)
        {
            // The store stays where it is while its records are handled.
            let store_ptr = store.as_ptr();
            // SAFETY: forwarded from the caller.
            unsafe {
                inbox.drain_counted(until, taken, |message, record| {
                    let record = Record::read(MessageId(message), record);
                    handle_record(record, store_ptr, handlers, state, current);
                })
            };
        } else {
            // SAFETY: forwarded from the caller.
            unsafe {
                inbox.drain_counted(until, taken, |message, record| {
                    if batch.push(MessageId(message), record) {
                        flush(batch, store, handlers, state, current);
                    }
                })
            };
            flush(batch, store, handlers, state, current);
        }
    }
}

/// The chunk size of inboxes of kept records.
const KEPT_CHUNK: usize = 1 << 12;

/// Batches of fewer records than this skip prefetching: their few
/// recipients are loaded at once anyway.
const PIPELINE_MIN: usize = 8;

/// Lanes with at most this many bytes of records skip the batch (see
/// `Shard::run`): room for at most `PIPELINE_MIN` records (the smallest
/// is an inbox header and a recipient with an empty message), about the
/// size below which prefetching gains nothing.
const DIRECT_BYTES: usize = PIPELINE_MIN * (8 + RECORD_HEADER);

/// A record taken from an inbox: message id, recipient, and the message.
#[derive(Clone, Copy)]
struct Record {
    message: MessageId,
    recipient: RawID,
    payload: *const u8,
}

impl Record {
    /// Reads the record header of `record` (of message `message`).
    #[inline(always)]
    fn read(message: MessageId, record: &[u8]) -> Record {
        Record {
            message,
            recipient: read_header(record),
            payload: record[RECORD_HEADER..].as_ptr(),
        }
    }
}

/// Up to `BATCH` records, gathered without initializing the rest.
struct Batch {
    records: [std::mem::MaybeUninit<Record>; BATCH],
    len: usize,
}

impl Batch {
    fn new() -> Self {
        Batch {
            records: [const { std::mem::MaybeUninit::uninit() }; BATCH],
            len: 0,
        }
    }

    /// Adds a record (its header is read once, here); returns whether the
    /// batch is full. The record stays valid until the inbox's next
    /// `reclaim` (see `Shard::run`), which outlives the batch.
    #[inline]
    fn push(&mut self, message: MessageId, record: &[u8]) -> bool {
        self.records[self.len].write(Record::read(message, record));
        self.len += 1;
        self.len == BATCH
    }

    #[inline]
    fn records(&self) -> &[Record] {
        // SAFETY: the first `len` entries were written by `push`.
        unsafe { std::slice::from_raw_parts(self.records.as_ptr().cast(), self.len) }
    }

    fn clear(&mut self) {
        self.len = 0;
    }
}

/// Handles the records of `batch` and empties it; out of line, so that
/// the loop filling the batch stays small.
#[inline(never)]
fn flush(
    batch: &mut Batch,
    store: &mut Box<dyn AnyStore>,
    handlers: &HandlerTable,
    state: &mut ShardState,
    current: &Current,
) {
    handle_batch(batch.records(), store, handlers, state, current);
    batch.clear();
}

#[inline(always)]
fn handle_batch(
    records: &[Record],
    store: &mut Box<dyn AnyStore>,
    handlers: &HandlerTable,
    state: &mut ShardState,
    current: &Current,
) {
    // Software pipeline: while record `i` is handled, the instance of
    // record `i + SLOT_AHEAD` and the index entry of record `i + INDEX_AHEAD`
    // are on their way into the cache, so independent misses overlap.
    const INDEX_AHEAD: usize = 64;
    const SLOT_AHEAD: usize = 32;
    let prefetch_index = |store: &dyn AnyStore, at: usize| {
        if let Some(record) = records.get(at).filter(|r| !r.recipient.is_broadcast()) {
            store.prefetch_index(record.recipient.instance);
        }
    };
    let prefetch_instance = |store: &dyn AnyStore, at: usize| {
        if let Some(record) = records.get(at).filter(|r| !r.recipient.is_broadcast()) {
            store.prefetch_instance(record.recipient);
        }
    };
    let pipelined = records.len() >= PIPELINE_MIN;
    // The store stays where it is while the batch is handled.
    let store_ptr = store.as_ptr();
    if pipelined {
        (0..INDEX_AHEAD.min(records.len())).for_each(|at| prefetch_index(&**store, at));
        (0..SLOT_AHEAD.min(records.len())).for_each(|at| prefetch_instance(&**store, at));
    }
    for (at, &record) in records.iter().enumerate() {
        if pipelined {
            prefetch_index(&**store, at + INDEX_AHEAD);
            prefetch_instance(&**store, at + SLOT_AHEAD);
        }
        handle_record(record, store_ptr, handlers, state, current);
    }
}

/// Delivers one record with the class's handlers to the store at
/// `store_ptr`, and counts it; keeps it instead while panicked (unless its
/// handler is essential). If the handler panics, notes the record in
/// `current` while unwinding, for [`recover`].
#[inline(always)]
fn handle_record(
    Record {
        message,
        recipient,
        payload,
    }: Record,
    store_ptr: *mut (),
    handlers: &HandlerTable,
    state: &mut ShardState,
    current: &Current,
) {
    let tag = message.0;
    let Some(handler) = handlers.for_tag(tag) else {
        // No handler, a spawner message sent to an existing ID, or a spawn
        // of a message type that has no spawner here: dropped and counted;
        // a spawn's unused ID goes back to its lane.
        return no_handler(state, tag, recipient);
    };
    let message = MessageId(tag & !SPAWN_TAG);
    if state.panicked && state.keep(handler, tag, recipient, payload) {
        return;
    }
    let noting = NoteOnUnwind {
        current,
        tag,
        payload,
    };
    // SAFETY: the record was written by `World::send` for this message
    // id, so the payload is a compact value of the handler's message
    // type; `store_ptr` is this class's store, of the handler's actor type.
    let outcome = unsafe { handler.call(store_ptr, recipient, payload, state) };
    std::mem::forget(noting);
    if outcome != handlers::DELIVERED
        && !unusual_outcome(outcome, state, handler, message, recipient, payload)
    {
        return;
    }
    match state.counters.handled.get_mut(message.0 as usize) {
        Some(count) => *count += 1,
        None => count_first(state, message),
    }
}

/// Counts the first message handled of a type with a higher id than any
/// before (see `handle_record`).
#[cold]
#[inline(never)]
fn count_first(state: &mut ShardState, message: MessageId) {
    let at = message.0 as usize;
    state.counters.handled.resize(at + 1, 0);
    state.counters.handled[at] += 1;
}

/// Recovers from `panic`, which unwound out of the handler of the record
/// `handle_record` noted (tag and message): reports it, applies the class's policy and
/// fails its request. Returns where the rest of `batch` starts if the
/// record was in it (else its end: a record handled straight from its
/// inbox leaves no batch behind).
///
/// A panic that did not come from a handler (no record noted) is a bug of
/// kay's: it goes on unwinding, and the system stops (see
/// `ActorSystem::message_cycle`).
#[cold]
#[inline(never)]
fn recover(
    panic: Box<dyn std::any::Any + Send>,
    (tag, payload): (u16, *const u8),
    batch: &[Record],
    store_ptr: *mut (),
    handlers: &HandlerTable,
    state: &mut ShardState,
) -> usize {
    let Some(handler) = handlers.for_tag(tag).filter(|_| !payload.is_null()) else {
        std::panic::resume_unwind(panic);
    };
    // SAFETY: `payload` is the message of a record slice handed out by this
    // cycle's drain, still valid (see `Shard::drain`); its header, the
    // recipient, lies right before it in the same slice.
    let recipient = read_header(unsafe {
        std::slice::from_raw_parts(payload.sub(RECORD_HEADER), RECORD_HEADER)
    });
    // SAFETY: `store_ptr` is this class's store, of the handler's actor type.
    unsafe { handler.recover(store_ptr, recipient, panic, state) };
    caught_in(
        state,
        handler,
        MessageId(tag & !SPAWN_TAG),
        recipient,
        payload,
    );
    batch
        .iter()
        .position(|record| record.payload == payload)
        .map_or(batch.len(), |at| at + 1)
}

/// The record whose handler panicked, noted while unwinding (see
/// [`NoteOnUnwind`]): its tag and message, or a null message.
struct Current(std::cell::Cell<(u16, *const u8)>);

impl Default for Current {
    fn default() -> Self {
        Current(std::cell::Cell::new((0, std::ptr::null())))
    }
}

/// Notes its record in [`Current`] when dropped, which only unwinding does
/// (`handle_record` forgets it otherwise): the dispatch loop pays nothing
/// to know which record panicked.
struct NoteOnUnwind<'a> {
    current: &'a Current,
    tag: u16,
    payload: *const u8,
}

impl Drop for NoteOnUnwind<'_> {
    fn drop(&mut self) {
        self.current.0.set((self.tag, self.payload));
    }
}

impl Current {
    /// The noted record, leaving none.
    fn take(&self) -> (u16, *const u8) {
        self.0.replace((0, std::ptr::null()))
    }
}

/// A record without a handler (see `handle_record`).
#[cold]
#[inline(never)]
fn no_handler(state: &mut ShardState, tag: u16, recipient: RawID) {
    state.counters.no_handler += 1;
    if tag & SPAWN_TAG != 0 {
        state.died.push(recipient);
    }
}

/// A record that panicked or found no recipient: reports, counts and fails
/// its request; returns whether it still counts as handled (a broadcast
/// during which some instances panicked).
#[cold]
#[inline(never)]
fn unusual_outcome(
    outcome: u8,
    state: &mut ShardState,
    handler: &Handler,
    message: MessageId,
    recipient: RawID,
    payload: *const u8,
) -> bool {
    if outcome & handlers::PANICKED != 0 {
        caught_in(state, handler, message, recipient, payload);
        // A panicked message is reported, not counted as handled; a
        // broadcast was handled by the other instances.
        return recipient.is_broadcast();
    }
    state.counters.no_recipient += 1;
    if let Some(fail) = handler.fail_request {
        // SAFETY: a request of the handler's type.
        unsafe { fail(payload, &state.world, ReplyError::NoRecipient) };
    }
    false
}

/// Completes the reports of the panics caught handling one record (those
/// without a message yet), fails its request, and enters the panicked state
/// if the class's policy says so.
#[cold]
#[inline(never)]
fn caught_in(
    state: &mut ShardState,
    handler: &Handler,
    message: MessageId,
    recipient: RawID,
    payload: *const u8,
) {
    let message_debug = handler.debug_message.as_ref().map(|debug| {
        // SAFETY: the payload is a valid message of the handler's type.
        crate::panic::catch(|| unsafe { debug.show(payload) })
            .unwrap_or_else(|_| "<its Debug panicked>".to_owned())
    });
    for caught in state.caught.iter_mut().rev() {
        if caught.message.is_some() {
            break;
        }
        caught.message = Some(message);
        caught.message_debug.clone_from(&message_debug);
    }
    if !recipient.is_broadcast()
        && let Some(fail) = handler.fail_request
    {
        // SAFETY: a request of the handler's type.
        unsafe { fail(payload, &state.world, ReplyError::HandlerPanicked) };
    }
    if state.policy == PanicPolicy::Stop {
        state.panicked = true;
    }
}
