//! The dispatch of one shard in a message cycle: its lanes' records, in
//! lane order, handed to the class's handlers (see the steps in the
//! [cycle's docs](super)), and the recovery from a handler's panic.

use crate::class::{Handler, HandlerTable, Shard, ShardState};
use crate::cycle::panic::{PanicPolicy, catch};
use crate::id::RawID;
use crate::inbox::record::{RECORD_HEADER, Record, SPAWN_TAG, read_header};
use crate::inbox::{Inbox, Position};
use crate::registry::MessageID;
use crate::reply::ReplyError;
use crate::store::Store;

/// Records handled together: their index entries and slots are prefetched
/// first, so that the cache misses of a batch overlap instead of queueing.
const BATCH: usize = 256;

impl Shard {
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
        if self.store.unsettled() {
            self.store.settle();
        }
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
                    let record = Record::read(MessageID(message), record);
                    handle_record(record, store_ptr, handlers, state, current);
                })
            };
        } else {
            // SAFETY: forwarded from the caller.
            unsafe {
                inbox.drain_counted(until, taken, |message, record| {
                    if batch.push(MessageID(message), record) {
                        flush(batch, store, handlers, state, current);
                    }
                })
            };
            flush(batch, store, handlers, state, current);
        }
    }
}

/// Batches of fewer records than this skip prefetching: their few
/// recipients are loaded at once anyway.
const PIPELINE_MIN: usize = 8;

/// Lanes with at most this many bytes of records skip the batch (see
/// `Shard::run`): room for at most `PIPELINE_MIN` records (the smallest
/// is an inbox header and a recipient with an empty message), about the
/// size below which prefetching gains nothing.
const DIRECT_BYTES: usize = PIPELINE_MIN * (8 + RECORD_HEADER);

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
    fn push(&mut self, message: MessageID, record: &[u8]) -> bool {
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
    store: &mut Store,
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
    store: &mut Store,
    handlers: &HandlerTable,
    state: &mut ShardState,
    current: &Current,
) {
    // Software pipeline: while record `i` is handled, the instance of
    // record `i + SLOT_AHEAD` and the index entry of record `i + INDEX_AHEAD`
    // are on their way into the cache, so independent misses overlap.
    const INDEX_AHEAD: usize = 64;
    const SLOT_AHEAD: usize = 32;
    let prefetch_index = |store: &Store, at: usize| {
        if let Some(record) = records.get(at).filter(|r| !r.recipient.is_broadcast()) {
            store.prefetch_index(record.recipient.instance);
        }
    };
    let prefetch_instance = |store: &Store, at: usize| {
        if let Some(record) = records.get(at).filter(|r| !r.recipient.is_broadcast()) {
            store.prefetch_instance(record.recipient);
        }
    };
    let pipelined = records.len() >= PIPELINE_MIN;
    // The store stays where it is while the batch is handled.
    let store_ptr = store.as_ptr();
    if pipelined {
        (0..INDEX_AHEAD.min(records.len())).for_each(|at| prefetch_index(&*store, at));
        (0..SLOT_AHEAD.min(records.len())).for_each(|at| prefetch_instance(&*store, at));
    }
    for (at, &record) in records.iter().enumerate() {
        if pipelined {
            prefetch_index(&*store, at + INDEX_AHEAD);
            prefetch_instance(&*store, at + SLOT_AHEAD);
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
    let message = MessageID(tag & !SPAWN_TAG);
    if state.panicked && state.keep(handler, tag, recipient, payload) {
        return;
    }
    if recipient.is_broadcast()
        && let Some(open) = handler.open_partial
    {
        // SAFETY: the payload is a valid message of the handler's type.
        unsafe { open(payload, &mut state.world) };
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
    if outcome != crate::class::handlers::DELIVERED
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
fn count_first(state: &mut ShardState, message: MessageID) {
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
        MessageID(tag & !SPAWN_TAG),
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
    message: MessageID,
    recipient: RawID,
    payload: *const u8,
) -> bool {
    if outcome & crate::class::handlers::PANICKED != 0 {
        caught_in(state, handler, message, recipient, payload);
        // A panicked message is reported, not counted as handled; a
        // broadcast was handled by the other instances.
        return recipient.is_broadcast();
    }
    state.counters.no_recipient += 1;
    if outcome & crate::class::handlers::STALE != 0 {
        state.counters.stale += 1;
    }
    if let Some(fail) = handler.fail_request {
        // SAFETY: a request of the handler's type.
        unsafe { fail(payload, &mut state.world, ReplyError::NoRecipient) };
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
    message: MessageID,
    recipient: RawID,
    payload: *const u8,
) {
    let message_debug = handler.debug_message.as_ref().map(|debug| {
        // SAFETY: the payload is a valid message of the handler's type.
        crate::cycle::panic::catch(|| unsafe { debug.show(payload) })
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
        unsafe { fail(payload, &mut state.world, ReplyError::HandlerPanicked) };
    }
    if state.policy == PanicPolicy::Stop {
        state.panicked = true;
    }
}
