//! [`World`]: the handle through which actors and outside code send and spawn.

use std::any::TypeId;
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use compact::{Compact, Compacted, static_size_bytes};
use rustc_hash::FxHashMap;

use crate::actor::{Actor, ActorTrait, Message};
use crate::class::lanes::ShardShared;
use crate::class::{ClassShared, Lane};
use crate::id::{MachineID, RawID, ShortTypeId, TypedID};
use crate::inbox::record::{RECORD_HEADER, SPAWN_TAG, UNKNOWN, write_header};
use crate::registry::MessageId;
use crate::reply::{Reply, ReplyTo};

/// A registered class or trait, as senders see it.
#[derive(Clone)]
pub(crate) enum TypeEntry {
    Class(Arc<ClassShared>),
    Trait(Arc<TraitShared>),
}

/// An actor trait and the classes that implement it.
pub(crate) struct TraitShared {
    pub(crate) implementors: RwLock<Vec<Arc<ClassShared>>>,
}

/// What every [`World`] of a system shares.
pub(crate) struct Shared {
    pub(crate) machine: MachineID,
    pub(crate) types: RwLock<Vec<TypeEntry>>,
    pub(crate) type_ids: RwLock<FxHashMap<TypeId, ShortTypeId>>,
    pub(crate) message_ids: RwLock<FxHashMap<TypeId, MessageId>>,
    pub(crate) message_names: RwLock<Vec<&'static str>>,
    /// Outstanding replies to requests.
    pub(crate) replies: Arc<crate::reply::Replies>,
    /// Messages that could not be addressed at all (unknown type, no handler
    /// anywhere, another machine while networking is off).
    pub(crate) undeliverable: AtomicU64,
}

/// The handle given to handlers to send, spawn and address broadcasts; also
/// what outside code uses (get one with
/// [`ActorSystem::world`](crate::ActorSystem::world)). It does not borrow the
/// system, so it can be kept across calls to
/// [`process_all_messages`](crate::ActorSystem::process_all_messages).
///
/// A `World` belongs to the thread that created it (`!Send`): inbox memory is
/// recycled between message cycles, which is only safe when no send is in
/// flight on another thread.
pub struct World {
    shared: Arc<Shared>,
    /// `shared.machine`, kept here: every send compares with it.
    machine: MachineID,
    /// The sender lane: 0 outside handlers, `1 + global shard` inside.
    lane: u32,
    /// This world's lane into each shard, by global shard index.
    lanes: Vec<Option<NonNull<Lane>>>,
    /// Round-robin counters for spreading spawns over shards, by class.
    spawn_turns: Vec<u32>,
    /// The last single-instance route (see [`Route`]).
    last_route: Option<Route>,
    types: Vec<Option<TypeEntry>>,
    type_ids: FxHashMap<TypeId, ShortTypeId>,
    message_ids: FxHashMap<TypeId, MessageId>,
    /// The message type sent last and its id: handlers mostly send one type.
    last_message: Option<(TypeId, MessageId)>,
    _not_send: PhantomData<*const ()>,
}

impl World {
    pub(crate) fn new(shared: Arc<Shared>, lane: u32) -> World {
        World {
            machine: shared.machine,
            shared,
            lane,
            lanes: Vec::new(),
            spawn_turns: Vec::new(),
            last_route: None,
            types: Vec::new(),
            type_ids: FxHashMap::default(),
            message_ids: FxHashMap::default(),
            last_message: None,
            _not_send: PhantomData,
        }
    }

    /// The machine this world's system runs on.
    pub fn machine(&self) -> MachineID {
        self.machine
    }

    #[inline]
    fn message_id<M: 'static>(&mut self) -> Option<MessageId> {
        let key = TypeId::of::<M>();
        if let Some((last, id)) = self.last_message
            && last == key
        {
            return Some(id);
        }
        self.message_id_slow(key)
    }

    #[inline(never)]
    fn message_id_slow(&mut self, key: TypeId) -> Option<MessageId> {
        let id = match self.message_ids.get(&key) {
            Some(id) => *id,
            None => {
                let id = *self
                    .shared
                    .message_ids
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&key)?;
                self.message_ids.insert(key, id);
                id
            }
        };
        self.last_message = Some((key, id));
        Some(id)
    }

    #[inline]
    fn entry(&mut self, type_id: ShortTypeId) -> Option<&TypeEntry> {
        let at = type_id.get() as usize;
        if matches!(self.types.get(at), Some(Some(_))) {
            return self.types[at].as_ref();
        }
        self.load_entry(at)
    }

    #[cold]
    fn load_entry(&mut self, at: usize) -> Option<&TypeEntry> {
        let entry = self
            .shared
            .types
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(at)
            .cloned()?;
        if self.types.len() <= at {
            self.types.resize(at + 1, None);
        }
        self.types[at] = Some(entry);
        self.types[at].as_ref()
    }

    /// The short type id of class or trait `T`.
    ///
    /// # Panics
    /// If `T` was not registered with the system.
    pub fn type_id_of<T: ?Sized + 'static>(&mut self) -> ShortTypeId {
        let key = TypeId::of::<T>();
        if let Some(id) = self.type_ids.get(&key) {
            return *id;
        }
        let id = self
            .shared
            .type_ids
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .copied();
        let id = id.unwrap_or_else(|| {
            panic!(
                "{} is not registered: call system.register::<{0}>() (or register_trait) first",
                std::any::type_name::<T>()
            )
        });
        self.type_ids.insert(key, id);
        id
    }

    /// The ID addressing every instance of class `A` on this machine.
    pub fn local_broadcast<A: Actor>(&mut self) -> A::ID {
        A::ID::from_raw(RawID::local_broadcast(
            self.type_id_of::<A>(),
            self.machine(),
        ))
    }

    /// The ID addressing every instance of class `A` on every machine.
    pub fn global_broadcast<A: Actor>(&mut self) -> A::ID {
        A::ID::from_raw(RawID::global_broadcast(
            self.type_id_of::<A>(),
            self.machine(),
        ))
    }

    /// The ID addressing every instance of every class implementing trait `T` on this machine.
    pub fn local_broadcast_trait<T: ActorTrait + ?Sized>(&mut self) -> T::ID {
        T::ID::from_raw(RawID::local_broadcast(
            self.type_id_of::<T>(),
            self.machine(),
        ))
    }

    /// The ID addressing every implementor of trait `T` on every machine.
    pub fn global_broadcast_trait<T: ActorTrait + ?Sized>(&mut self) -> T::ID {
        T::ID::from_raw(RawID::global_broadcast(
            self.type_id_of::<T>(),
            self.machine(),
        ))
    }

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
        if recipient.machine != self.machine {
            return self.undeliverable();
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
                return write_record(shard, lane, message_id, recipient, message);
            }
        }
        match self.entry(recipient.type_id) {
            Some(TypeEntry::Class(class)) => {
                let class: *const ClassShared = &**class;
                // SAFETY: the class is kept alive by `self.types` (entries are
                // never removed) and by `shared`; pushing touches neither.
                let class = unsafe { &*class };
                if recipient.is_broadcast() {
                    let compacted = compacted_message(message);
                    for shard in class.shards.iter() {
                        self.push_copy(shard, message_id, recipient, &compacted);
                    }
                } else {
                    let shard = class.shard_of(recipient.instance);
                    let lane = NonNull::from(self.lane_into(shard));
                    self.last_route = Some(Route {
                        type_id: recipient.type_id,
                        shard_ptr: NonNull::from(shard),
                        lane,
                    });
                    // SAFETY: lanes live as long as `shared` (see above).
                    write_record(
                        shard,
                        unsafe { lane.as_ref() },
                        message_id,
                        recipient,
                        message,
                    );
                }
            }
            Some(TypeEntry::Trait(t)) if recipient.is_broadcast() => {
                let t = Arc::clone(t);
                let implementors = t.implementors.read().unwrap_or_else(|e| e.into_inner());
                let compacted = compacted_message(message);
                for class in implementors.iter() {
                    for shard in class.shards.iter() {
                        self.push_copy(shard, message_id, recipient, &compacted);
                    }
                }
            }
            _ => self.undeliverable(),
        }
    }

    /// This world's lane into `shard`.
    #[inline]
    fn lane_into(&mut self, shard: &ShardShared) -> &Lane {
        let at = shard.global as usize;
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
    fn push<M: Compact>(
        &mut self,
        shard: &ShardShared,
        message_id: MessageId,
        recipient: RawID,
        message: M,
    ) {
        let lane = self.lane_into(shard);
        write_record(shard, lane, message_id, recipient, message);
    }

    /// Copies an already compacted message into a new record for `shard`.
    fn push_copy<M: Compact>(
        &mut self,
        shard: &ShardShared,
        message_id: MessageId,
        recipient: RawID,
        message: &Compacted<M>,
    ) {
        let lane = self.lane_into(shard);
        let source = (&**message as *const M).cast_mut();
        let size = message_size(&**message);
        // SAFETY: `source` is a valid, compact `M`: compacting it copies its
        // bytes and leaves it intact (compact parts own nothing), so each
        // copy is an independent value and `message` stays valid.
        unsafe { write_compacted(shard, lane, message_id, recipient, source, size) };
    }

    /// Spawns an instance of `A` by sending `message` to its spawner for `M`
    /// (registered with [`ClassSetup::spawner`](crate::ClassSetup::spawner)).
    /// The ID is valid at once; the instance exists from the next message cycle.
    ///
    /// The ID is always fresh: it never names a live instance. If `A` has no
    /// spawner for `M`, no instance is created and the message is counted in
    /// the class's `no_handler` statistics (plus `undeliverable` if no class
    /// handles `M` at all); messages to the ID then count as `no_recipient`.
    /// Spawner messages only ever spawn: sent with [`send`](Self::send),
    /// even to a live or broadcast ID, they are dropped and counted the same
    /// way.
    ///
    /// # Panics
    /// If `A` is not registered.
    #[inline]
    pub fn spawn<A: Actor, M: Message>(&mut self, message: M) -> A::ID {
        crate::actor::refuse_process_local::<M>();
        let type_id = self.type_id_of::<A>();
        let machine = self.machine();
        let message_id = self.message_id::<M>();
        let Some(TypeEntry::Class(class)) = self.entry(type_id) else {
            unreachable!("a registered class has a class entry")
        };
        let class: *const ClassShared = &**class;
        // SAFETY: as in `send`: kept alive by `self.types` and `shared`.
        let class = unsafe { &*class };
        let turns = &mut self.spawn_turns;
        if turns.len() <= type_id.get() as usize {
            turns.resize(type_id.get() as usize + 1, 0);
        }
        let turn = &mut turns[type_id.get() as usize];
        let shard = &class.shards[*turn as usize % class.shards.len()];
        *turn = turn.wrapping_add(1);
        let lane_index = self.lane;
        let lane = self.lane_into(shard);
        // SAFETY: this world is the lane's only writer (see `push`).
        let id = unsafe { class.allocate(shard, lane, lane_index, machine) };
        match message_id {
            Some(message_id) => {
                self.push(shard, MessageId(message_id.0 | SPAWN_TAG), id, message);
            }
            None => {
                drop(message);
                self.undeliverable();
                self.push(shard, MessageId(UNKNOWN.0 | SPAWN_TAG), id, ());
            }
        }
        A::ID::from_raw(id)
    }

    /// Opens a request: the `ReplyTo` goes into the request message, the
    /// `Reply` resolves when a handler answers it with [`World::reply`].
    pub fn request<T: Compact + Send>(&mut self) -> (ReplyTo<T>, Reply<T>) {
        self.shared.replies.open(self.machine)
    }

    /// Answers a request.
    pub fn reply<T: Compact + Send>(&mut self, to: ReplyTo<T>, value: T) {
        self.shared.replies.answer(to, value);
    }

    /// Resolves the reply of a request that will not be handled.
    pub(crate) fn fail_reply<T: Compact + Send>(&self, to: ReplyTo<T>, error: crate::ReplyError) {
        let (token, machine) = to.token();
        if machine == self.machine {
            self.shared.replies.fail(token, error);
        }
    }

    fn undeliverable(&self) {
        self.shared.undeliverable.fetch_add(1, Ordering::Relaxed);
    }
}

/// `message` compacted once, to be copied into the inboxes of a broadcast.
fn compacted_message<M: Message>(message: M) -> Compacted<M> {
    // Measured while still owned: refused before anything is moved.
    message_size(&message);
    Compacted::new(message)
}

/// Compacts `message` into a new record in `lane` (of `shard`). Inlined
/// into every send: the message is built and written in place.
#[inline(always)]
fn write_record<M: Compact>(
    shard: &ShardShared,
    lane: &Lane,
    message_id: MessageId,
    recipient: RawID,
    message: M,
) {
    // Measured while still owned: if measuring refuses the message (an
    // `External` inside), it is dropped as the panic unwinds.
    let size = message_size(&message);
    let mut message = std::mem::ManuallyDrop::new(message);
    // SAFETY: `message` is valid and moved into the record, never dropped
    // here; `size` is its size.
    unsafe { write_compacted(shard, lane, message_id, recipient, &mut *message, size) };
}

/// The size of a record holding `message`; refuses (panics on) an
/// `External` inside it.
#[inline(always)]
fn message_size<M: Compact>(message: &M) -> usize {
    RECORD_HEADER
        + if M::IS_STATIC {
            static_size_bytes::<M>()
        } else {
            crate::external::measuring_message(|| message.total_size_bytes())
        }
}

/// Compacts the message at `source` into a new record in `lane` (of `shard`).
///
/// # Safety
///
/// `source` points to a valid `M` that is either moved into the record (the
/// caller forgets it) or compact (copying leaves it intact), and `size` is
/// [`message_size`] of it.
#[inline(always)]
unsafe fn write_compacted<M: Compact>(
    shard: &ShardShared,
    lane: &Lane,
    message_id: MessageId,
    recipient: RawID,
    source: *mut M,
    size: usize,
) {
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
    lane.mark_pending(shard);
}

/// Where this world's last message to a single instance went: the class,
/// the shard, and this world's lane into it. Repeated messages to the same
/// shard (conversations, replies) skip the class and lane lookups.
#[derive(Clone, Copy)]
struct Route {
    type_id: ShortTypeId,
    shard_ptr: NonNull<ShardShared>,
    lane: NonNull<Lane>,
}
