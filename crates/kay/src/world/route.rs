//! Routing a send: the one place where a message to an ID becomes a record
//! in a local lane (and, with networking, a batch for another machine).
//!
//! [`World::send`] looks at the recipient: another machine's ID is not
//! local (counted as undeliverable while networking is off); a single
//! instance goes to its shard's lane from this world, through a one-entry
//! cache of the last route (conversations and replies skip the class and
//! lane lookups); a broadcast is compacted once and copied into every
//! shard of the class (or of every implementor of a trait).

use std::ptr::NonNull;
use std::sync::Arc;

use compact::{Compact, Compacted, static_size_bytes};

use crate::actor::Message;
use crate::class::lanes::{RaisedLane, SenderLane};
use crate::class::{ClassShared, Lane, ShardShared};
use crate::id::{RawID, ShortTypeID, TypedID};
use crate::inbox::record::{RECORD_HEADER, write_header};
use crate::registry::{MessageID, TypeEntry};
use crate::sync::Unpoisoned;
use crate::world::World;

impl World {
    /// Sends `message` to `recipient` (an instance, a broadcast, or an
    /// implementor of an actor trait). It is handled in a later message cycle.
    /// A message nobody can receive is counted in the statistics.
    #[inline]
    pub fn send<M: Message>(&mut self, recipient: impl TypedID, message: M) {
        crate::actor::refuse_process_local::<M>();
        let recipient = recipient.as_raw();
        let Some(message_id) = self.message_id::<M>() else {
            return self.undeliverable();
        };
        // (Inside `World::after`, `home` names no machine: every send takes
        // the slow path, which delays it.)
        if u16::from(recipient.machine.0) != self.home && !recipient.is_global_broadcast() {
            return self.send_elsewhere(recipient, message_id, message);
        }
        if let Some(route) = self.last_route
            && route.type_id == recipient.type_id
            && !recipient.is_broadcast()
        {
            // SAFETY: shards and lanes live as long as `shared`, which this
            // world keeps alive.
            let shard = unsafe { route.shard_ptr.as_ref() };
            if shard.owns(recipient.instance) {
                // SAFETY: as above.
                let lane = unsafe { route.lane.as_ref() };
                if write_record(lane, message_id, recipient, message) {
                    self.note_pending(shard, route.lane);
                }
                return;
            }
        }
        match self.entry(recipient.type_id) {
            Some(TypeEntry::Class(class)) => {
                let class: *const ClassShared = &**class;
                // SAFETY: the class is kept alive by `self.types` (entries are
                // never removed) and by `shared`; pushing touches neither.
                let class = unsafe { &*class };
                if recipient.is_broadcast() {
                    if self.delay.is_some() {
                        return self.send_delayed(recipient, message);
                    }
                    if self.gather_next.take_if(|r| *r == recipient).is_some() {
                        return self.send_gathered(recipient, message_id, message);
                    }
                    let compacted = compacted_message(message);
                    self.broadcast_copies(recipient, message_id, &compacted);
                } else {
                    let shard = class.shard_of(recipient.instance);
                    let lane = NonNull::from(self.lane_into(shard));
                    self.last_route = Some(Route {
                        type_id: recipient.type_id,
                        shard_ptr: NonNull::from(shard),
                        lane,
                    });
                    // SAFETY: lanes live as long as `shared` (see above).
                    if write_record(unsafe { lane.as_ref() }, message_id, recipient, message) {
                        self.note_pending(shard, lane);
                    }
                }
            }
            Some(TypeEntry::Trait(_)) if recipient.is_broadcast() => {
                if self.delay.is_some() {
                    return self.send_delayed(recipient, message);
                }
                if self.gather_next.take_if(|r| *r == recipient).is_some() {
                    return self.send_gathered(recipient, message_id, message);
                }
                let compacted = compacted_message(message);
                self.broadcast_copies(recipient, message_id, &compacted);
            }
            _ => self.undeliverable(),
        }
    }

    /// A request to a global broadcast ID (on several machines): it reaches
    /// every machine in the next turn, this one included (its own copy
    /// goes out on a timer), so that every machine answers in the same
    /// turn: a map-reduce sees all of them at the same point of the
    /// simulation, and they answer at the same time instead of one after
    /// the other.
    #[cold]
    #[inline(never)]
    fn send_gathered<M: Message>(&mut self, recipient: RawID, message_id: MessageID, message: M) {
        let compacted = compacted_message(message);
        self.also_to_other_machines(recipient, message_id, &compacted);
        let here = RawID::local_broadcast(recipient.type_id, self.machine);
        // The others apply it at the start of the turn after the one it
        // goes out at the end of: the next turn from outside handlers
        // (whose current turn is the last one), this one from a handler.
        let turns = if self.lane == SenderLane::OUTSIDE {
            2
        } else {
            1
        };
        self.set_timer_compacted(turns, 0, here, compacted);
    }

    /// A send off the fast path: delayed (inside [`World::after`]), or to
    /// another machine.
    #[cold]
    #[inline(never)]
    fn send_elsewhere<M: Message>(&mut self, recipient: RawID, message_id: MessageID, message: M) {
        if self.delay.is_some() {
            return self.send_delayed(recipient, message);
        }
        self.send_remote(recipient, message_id, message);
    }

    /// Sends a copy of the compact `message` to `recipient`, as
    /// [`send`](Self::send) sends a message (for messages kept to be sent
    /// again: timers).
    pub(crate) fn send_copy<M: Message>(&mut self, recipient: RawID, message: &Compacted<M>) {
        let Some(message_id) = self.message_id::<M>() else {
            return self.undeliverable();
        };
        let source = (&**message as *const M).cast_mut();
        let size = message_size(&**message);
        if recipient.machine != self.machine && !recipient.is_global_broadcast() {
            // SAFETY: a compact message: the copy leaves it intact.
            #[cfg(feature = "net")]
            unsafe {
                self.write_remote(recipient.machine, message_id.0, recipient, source, size)
            };
            #[cfg(not(feature = "net"))]
            self.to_other_machine();
            return;
        }
        if recipient.is_broadcast() {
            return self.broadcast_copies(recipient, message_id, message);
        }
        match self.entry(recipient.type_id) {
            Some(TypeEntry::Class(class)) => {
                let class = Arc::clone(class);
                let shard = class.shard_of(recipient.instance);
                // SAFETY: `source` is a compact `M` of `size` record bytes.
                unsafe { self.copy_into(shard, message_id, recipient, source, size) };
            }
            _ => self.undeliverable(),
        }
    }

    /// Copies a broadcast's compacted message into every shard of its
    /// class (or of every implementor of its trait), and of every other
    /// machine if it is a global broadcast.
    fn broadcast_copies<M: Message>(
        &mut self,
        recipient: RawID,
        message_id: MessageID,
        message: &Compacted<M>,
    ) {
        match self.entry(recipient.type_id) {
            Some(TypeEntry::Class(class)) => {
                let class = Arc::clone(class);
                for shard in class.shards.iter() {
                    self.push_copy(shard, message_id, recipient, message);
                }
            }
            Some(TypeEntry::Trait(t)) => {
                let t = Arc::clone(t);
                let implementors = t.implementors.locked();
                for class in implementors.iter() {
                    for shard in class.shards.iter() {
                        self.push_copy(shard, message_id, recipient, message);
                    }
                }
            }
            None => return self.undeliverable(),
        }
        self.also_to_other_machines(recipient, message_id, message);
    }

    /// This world's lane into `shard`.
    #[inline]
    pub(crate) fn lane_into(&mut self, shard: &ShardShared) -> &Lane {
        let at = shard.global.index();
        if let Some(Some(lane)) = self.lanes.get(at) {
            // SAFETY: lanes live as long as their class, which `shared` keeps alive.
            return unsafe { lane.as_ref() };
        }
        let lane = NonNull::from(shard.lane(self.lane));
        if self.lanes.len() <= at {
            self.lanes.resize(at + 1, None);
        }
        self.lanes[at] = Some(lane);
        // SAFETY: as above.
        unsafe { lane.as_ref() }
    }

    /// Compacts `message` into a new record in this world's lane into `shard`.
    #[inline]
    pub(crate) fn push<M: Compact>(
        &mut self,
        shard: &ShardShared,
        message_id: MessageID,
        recipient: RawID,
        message: M,
    ) {
        let lane = NonNull::from(self.lane_into(shard));
        // SAFETY: lanes live as long as their class, which `shared` keeps alive.
        if write_record(unsafe { lane.as_ref() }, message_id, recipient, message) {
            self.note_pending(shard, lane);
        }
    }

    /// Tells the system that this world's `lane` into `shard` has records
    /// from now on (its flag was just raised, by the cycle's first push
    /// into it): a shard's world lists the lane, and the system takes the
    /// list after the cycle; outside worlds raise the shard's flags, which
    /// the system scans (once per turn, as outside code sends between
    /// turns).
    #[inline]
    pub(super) fn note_pending(&mut self, shard: &ShardShared, lane: NonNull<Lane>) {
        if self.lane == SenderLane::OUTSIDE {
            shard.raise_from_outside();
        } else {
            self.raised
                .push(RaisedLane::new(shard.global, self.lane, Some(lane)));
        }
    }

    /// Copies an already compacted message into a new record for `shard`
    /// (of a broadcast).
    fn push_copy<M: Compact>(
        &mut self,
        shard: &ShardShared,
        message_id: MessageID,
        recipient: RawID,
        message: &Compacted<M>,
    ) {
        let source = (&**message as *const M).cast_mut();
        let size = message_size(&**message);
        // SAFETY: `source` is a valid, compact `M` of `size` record bytes.
        unsafe { self.copy_into(shard, message_id, recipient, source, size) };
        shard.mark_broadcast();
    }

    /// Copies the compact message at `source` into a new record for
    /// `shard` through this world's lane into it.
    ///
    /// # Safety
    /// `source` is a valid, compact `M` (compacting it copies its bytes and
    /// leaves it intact: compact parts own nothing, so each copy is an
    /// independent value and the source stays valid), and `size` is
    /// [`message_size`] of it.
    pub(super) unsafe fn copy_into<M: Compact>(
        &mut self,
        shard: &ShardShared,
        message_id: MessageID,
        recipient: RawID,
        source: *mut M,
        size: usize,
    ) {
        let lane = NonNull::from(self.lane_into(shard));
        // SAFETY: forwarded from the caller; lanes live as long as their
        // class, which `shared` keeps alive.
        if unsafe { write_compacted(lane.as_ref(), message_id, recipient, source, size) } {
            self.note_pending(shard, lane);
        }
    }

    /// Sends a global broadcast's message to every other machine as well
    /// (feature `net`; without it there are none to reach).
    #[inline]
    fn also_to_other_machines<M: Compact>(
        &mut self,
        recipient: RawID,
        message_id: MessageID,
        message: &Compacted<M>,
    ) {
        #[cfg(feature = "net")]
        if recipient.is_global_broadcast() {
            // SAFETY: a compact message: copies leave it intact.
            unsafe {
                self.broadcast_remote(recipient, message_id, (&**message as *const M).cast_mut())
            };
        }
        #[cfg(not(feature = "net"))]
        let _ = (recipient, message_id, message);
    }
}

/// `message` compacted once, to be copied into the inboxes of a broadcast.
pub(crate) fn compacted_message<M: Message>(message: M) -> Compacted<M> {
    // Measured while still owned: refused before anything is moved.
    message_size(&message);
    Compacted::new(message)
}

/// Compacts `message` into a new record in `lane`. Inlined into every
/// send: the message is built and written in place. Returns whether the
/// lane's pending flag was just raised (see `World::note_pending`).
#[inline(always)]
#[must_use]
fn write_record<M: Compact>(
    lane: &Lane,
    message_id: MessageID,
    recipient: RawID,
    message: M,
) -> bool {
    // Measured while still owned: if measuring refuses the message (an
    // `External` inside), it is dropped as the panic unwinds.
    let size = message_size(&message);
    let mut message = std::mem::ManuallyDrop::new(message);
    // SAFETY: `message` is valid and moved into the record, never dropped
    // here; `size` is its size.
    unsafe { write_compacted(lane, message_id, recipient, &mut *message, size) }
}

/// The size of a record holding `message`; refuses (panics on) an
/// `External` inside it.
#[inline(always)]
pub(crate) fn message_size<M: Compact>(message: &M) -> usize {
    RECORD_HEADER
        + if M::IS_STATIC {
            static_size_bytes::<M>()
        } else {
            crate::external::measuring_message(|| message.total_size_bytes())
        }
}

/// Compacts the message at `source` into a new record in `lane`.
///
/// # Safety
///
/// `source` points to a valid `M` that is either moved into the record (the
/// caller forgets it) or compact (copying leaves it intact), and `size` is
/// [`message_size`] of it. Returns whether the lane's pending flag was
/// just raised.
#[inline(always)]
#[must_use]
pub(crate) unsafe fn write_compacted<M: Compact>(
    lane: &Lane,
    message_id: MessageID,
    recipient: RawID,
    source: *mut M,
    size: usize,
) -> bool {
    let write = |buf: &mut [u8]| {
        write_header(buf, recipient);
        let dest = buf[RECORD_HEADER..].as_mut_ptr();
        // SAFETY: `buf` is 8-aligned (records are) and message types have an
        // alignment of at most 8 (checked at registration), so `dest` is
        // aligned; the record has room for the whole compact message.
        unsafe { M::compact(source, dest.cast(), dest.add(static_size_bytes::<M>())) };
    };
    // SAFETY: the sending world is the lane's only writer at this time: a
    // lane belongs to one shard's handlers (run by one thread at a time) or
    // to the outside (the system's thread, `World` being `!Send`).
    unsafe { lane.inbox.push_with_unshared(size, message_id.0, write) };
    lane.mark_pending()
}

impl World {
    /// Counts a message to another machine, which this build cannot reach
    /// (no `net` feature), and drops it.
    #[cfg(not(feature = "net"))]
    #[cold]
    #[inline(never)]
    fn send_remote<M: Message>(&mut self, _: RawID, _: MessageID, message: M) {
        drop(message);
        self.to_other_machine();
    }

    /// Counts a spawn on another machine, which this build cannot reach
    /// (no `net` feature), and drops its message.
    #[cfg(not(feature = "net"))]
    #[cold]
    pub(crate) fn spawn_remote<A: crate::actor::Actor, M: Message>(
        &mut self,
        _: crate::id::MachineID,
        message: M,
    ) {
        self.type_id_of::<A>();
        drop(message);
        self.to_other_machine();
    }

    /// Counts an answer to another machine's request, which this build
    /// cannot reach (no `net` feature), and drops it.
    #[cfg(not(feature = "net"))]
    #[cold]
    pub(crate) fn reply_remote<T: Compact + Send>(
        &mut self,
        _: crate::reply::ReplyToken,
        _: crate::id::MachineID,
        answer: Result<T, crate::ReplyError>,
    ) {
        drop(answer);
        self.to_other_machine();
    }
}

/// Where this world's last message to a single instance went: the class,
/// the shard, and this world's lane into it. Repeated messages to the same
/// shard (conversations, replies) skip the class and lane lookups.
#[derive(Clone, Copy)]
pub(crate) struct Route {
    type_id: ShortTypeID,
    shard_ptr: NonNull<ShardShared>,
    lane: NonNull<Lane>,
}
