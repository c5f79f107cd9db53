//! [`World`]: the handle through which actors and outside code send and spawn.

#[cfg(feature = "net")]
mod remote;
pub(crate) mod route;

use std::any::TypeId;
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use compact::Compact;
use rustc_hash::FxHashMap;

use crate::actor::{Actor, ActorTrait, Message};
use crate::class::lanes::{RaisedLane, SenderLane};
use crate::class::{ClassShared, Lane};
use crate::id::{MachineID, RawID, ShortTypeID, TypedID};
use crate::inbox::record::{SPAWN_TAG, UNKNOWN};
use crate::registry::{MessageID, TypeEntry};
use crate::reply::gather::{Gathered, LastGathered, Partial};
use crate::reply::{Reply, ReplyTo, ReplyToken};
use crate::sync::Unpoisoned;
use crate::timer::TimerOp;
use route::Route;
pub(crate) use route::compacted_message;

/// What every [`World`] of a system shares.
pub(crate) struct Shared {
    pub(crate) machine: MachineID,
    pub(crate) types: RwLock<Vec<TypeEntry>>,
    pub(crate) type_ids: RwLock<FxHashMap<TypeId, ShortTypeID>>,
    pub(crate) message_ids: RwLock<FxHashMap<TypeId, MessageID>>,
    pub(crate) message_names: RwLock<Vec<&'static str>>,
    /// Outstanding replies to requests.
    pub(crate) replies: Arc<crate::reply::Replies>,
    /// Messages that could not be addressed at all (unknown type, no handler
    /// anywhere, another machine while networking is off).
    pub(crate) undeliverable: AtomicU64,
    /// Of those, messages to another machine.
    pub(crate) other_machine: AtomicU64,
    /// How answers of each type combine (see [`crate::reply::Combine`]).
    pub(crate) combines: Mutex<FxHashMap<TypeId, crate::reply::gather::CombineFn>>,
    /// The current turn (set by the system between turns), for timers.
    pub(crate) turn: AtomicU64,
    /// Timers set and cancelled by outside worlds since the system last
    /// took them, in order, and how many outside timers were set.
    pub(crate) outside_timer_ops: Mutex<Vec<TimerOp>>,
    pub(crate) outside_timer_count: AtomicU64,
    /// What sending to other machines needs (feature `net`, with a topology).
    #[cfg(feature = "net")]
    pub(crate) net: Option<Arc<crate::net::NetShared>>,
    /// Whether the system takes snapshots (`with_storage`): then a
    /// continuation of a kind not registered is warned about when it is
    /// made, not first when a snapshot meets it.
    pub(crate) snapshots: std::sync::atomic::AtomicBool,
    /// The continuation kinds registered
    /// ([`register_continuation`](crate::ActorSystem::register_continuation)),
    /// and those warned about.
    pub(crate) continuation_kinds: Mutex<ContinuationKinds>,
}

/// See [`Shared::continuation_kinds`].
#[derive(Default)]
pub(crate) struct ContinuationKinds {
    registered: Vec<crate::reply::ContinuationKind>,
    /// Kinds (message, answer) made but not registered, warned about.
    warned: Vec<(TypeId, TypeId)>,
}

impl ContinuationKinds {
    /// Registers `kind` (once).
    pub(crate) fn register(&mut self, kind: crate::reply::ContinuationKind) {
        if !self.is_registered(kind.message, kind.answer) {
            self.registered.push(kind);
        }
    }

    /// Whether continuations of `message` for answers `answer` are
    /// registered.
    pub(crate) fn is_registered(&self, message: TypeId, answer: TypeId) -> bool {
        (self.registered.iter()).any(|k| k.message == message && k.answer == answer)
    }

    /// The kind a snapshot names by its message and answer type names.
    pub(crate) fn named(
        &self,
        message: &str,
        answer: &str,
    ) -> Option<crate::reply::ContinuationKind> {
        (self.registered.iter())
            .find(|k| k.message_name == message && k.answer_name == answer)
            .copied()
    }
}

impl Shared {
    /// Warns (once per kind, with `tracing`) about a continuation of
    /// message `M` for answers `T` made in a system that takes snapshots
    /// without the kind registered: a snapshot taken while one waits would
    /// fail.
    pub(crate) fn check_continuation<T: 'static, M: 'static>(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        if !self.snapshots.load(Relaxed) {
            return;
        }
        let kind = (TypeId::of::<M>(), TypeId::of::<T>());
        let mut kinds = self.continuation_kinds.locked();
        if kinds.is_registered(kind.0, kind.1) || kinds.warned.contains(&kind) {
            return;
        }
        kinds.warned.push(kind);
        let (message, answer) = (std::any::type_name::<M>(), std::any::type_name::<T>());
        tracing::warn!(
            "kay: Reply::then_send of `{message}` for an answer `{answer}` in a system that \
             takes snapshots, but this kind of continuation is not registered: a snapshot taken \
             while one waits will fail; call \
             `ActorSystem::register_continuation::<{answer}, {message}>()` at setup"
        );
    }
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
    pub(crate) shared: Arc<Shared>,
    /// `shared.machine`, kept here.
    pub(crate) machine: MachineID,
    /// The machine every send compares with: `machine`, or inside
    /// [`after`](Self::after) a value that names no machine (so that
    /// every send leaves the fast path, and is delayed).
    pub(crate) home: u16,
    /// Inside [`after`](Self::after): the turns sends are delayed by, how
    /// often they repeat, and the timers they became.
    pub(crate) delay: Option<(u64, u64)>,
    pub(crate) delayed: Vec<crate::TimerID>,
    /// The sender lane: 0 outside handlers, `1 + global shard` inside.
    pub(crate) lane: SenderLane,
    /// This world's lane into each shard, by global shard index.
    pub(crate) lanes: Vec<Option<NonNull<Lane>>>,
    /// Round-robin counters for spreading spawns over shards, by class.
    pub(crate) spawn_turns: Vec<u32>,
    /// The lanes this world raised in this cycle (a shard's world only;
    /// the system takes them after the cycle).
    pub(crate) raised: Vec<RaisedLane>,
    /// The last single-instance route (see [`Route`]).
    pub(crate) last_route: Option<Route>,
    /// The answers gathered in this cycle for requests to broadcast IDs
    /// (the system takes them after the cycle).
    pub(crate) partials: Vec<Partial>,
    /// Where the last gathered answer went (see `reply`).
    pub(crate) last_gathered: Option<LastGathered>,
    /// Whether this (shard's) world set timers or gathered answers in this
    /// cycle: the system takes them after it.
    pub(crate) after_cycle: bool,
    /// A global broadcast a request was just opened to (see
    /// `send_gathered`).
    pub(crate) gather_next: Option<RawID>,
    /// A shard's world's timer operations in this cycle, in order (the
    /// system applies them after the cycle), and its count of timers set.
    pub(crate) timer_ops: Vec<TimerOp>,
    pub(crate) timer_count: u64,
    pub(crate) types: Vec<Option<TypeEntry>>,
    pub(crate) type_ids: FxHashMap<TypeId, ShortTypeID>,
    pub(crate) message_ids: FxHashMap<TypeId, MessageID>,
    /// The message type sent last and its id: handlers mostly send one type.
    pub(crate) last_message: Option<(TypeId, MessageID)>,
    /// A shard's world's messages to other machines in this turn, by
    /// machine (outside worlds share one set, in `shared.net`).
    #[cfg(feature = "net")]
    pub(crate) outboxes: Vec<crate::net::outbox::Outbox>,
    _not_send: PhantomData<*const ()>,
}

impl World {
    pub(crate) fn new(shared: Arc<Shared>, lane: SenderLane) -> World {
        World {
            machine: shared.machine,
            home: u16::from(shared.machine.0),
            delay: None,
            delayed: Vec::new(),
            shared,
            lane,
            lanes: Vec::new(),
            spawn_turns: Vec::new(),
            raised: Vec::new(),
            last_route: None,
            partials: Vec::new(),
            last_gathered: None,
            after_cycle: false,
            gather_next: None,
            timer_ops: Vec::new(),
            timer_count: 0,
            types: Vec::new(),
            type_ids: FxHashMap::default(),
            message_ids: FxHashMap::default(),
            last_message: None,
            #[cfg(feature = "net")]
            outboxes: Vec::new(),
            _not_send: PhantomData,
        }
    }

    /// The machine this world's system runs on.
    pub fn machine(&self) -> MachineID {
        self.machine
    }

    #[inline]
    pub(crate) fn message_id<M: 'static>(&mut self) -> Option<MessageID> {
        let key = TypeId::of::<M>();
        if let Some((last, id)) = self.last_message
            && last == key
        {
            return Some(id);
        }
        self.message_id_slow(key)
    }

    #[inline(never)]
    fn message_id_slow(&mut self, key: TypeId) -> Option<MessageID> {
        let id = match self.message_ids.get(&key) {
            Some(id) => *id,
            None => {
                let id = *self.shared.message_ids.locked().get(&key)?;
                self.message_ids.insert(key, id);
                id
            }
        };
        self.last_message = Some((key, id));
        Some(id)
    }

    #[inline]
    pub(crate) fn entry(&mut self, type_id: ShortTypeID) -> Option<&TypeEntry> {
        let at = type_id.get() as usize;
        if matches!(self.types.get(at), Some(Some(_))) {
            return self.types[at].as_ref();
        }
        self.load_entry(at)
    }

    #[cold]
    fn load_entry(&mut self, at: usize) -> Option<&TypeEntry> {
        let entry = self.shared.types.locked().get(at).cloned()?;
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
    pub fn type_id_of<T: ?Sized + 'static>(&mut self) -> ShortTypeID {
        let key = TypeId::of::<T>();
        if let Some(id) = self.type_ids.get(&key) {
            return *id;
        }
        let id = self.shared.type_ids.locked().get(&key).copied();
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
        let lane = self.lane_into(shard);
        // SAFETY: this world is the lane's only writer (see `push`).
        let id = unsafe { class.allocate(shard, lane, machine) };
        match message_id {
            Some(message_id) => {
                self.push(shard, MessageID(message_id.0 | SPAWN_TAG), id, message);
            }
            None => {
                drop(message);
                self.undeliverable();
                self.push(shard, MessageID(UNKNOWN.0 | SPAWN_TAG), id, ());
            }
        }
        A::ID::from_raw(id)
    }

    /// Spawns an instance of `A` on `machine` by sending `message` to its
    /// spawner there (on this machine: [`spawn`](Self::spawn)). The new
    /// instance's ID is given on that machine: its spawner sees it and can
    /// tell whoever needs it. Sent at the end of the turn (feature `net`;
    /// without it, another machine cannot be reached and the message is
    /// counted as [`Undelivered::OtherMachine`](crate::Undelivered::OtherMachine)),
    /// spawned in the receiving machine's next turn.
    ///
    /// # Panics
    /// If `A` is not registered.
    pub fn spawn_on<A: Actor, M: Message>(&mut self, machine: MachineID, message: M) {
        if machine == self.machine {
            self.spawn::<A, M>(message);
            return;
        }
        crate::actor::refuse_process_local::<M>();
        self.spawn_remote::<A, M>(machine, message);
    }

    /// Opens a request: the `ReplyTo` goes into the request message, the
    /// `Reply` resolves when a handler answers it with [`World::reply`].
    /// For a request to an ID you know, prefer
    /// [`request_to`](Self::request_to): it also fails the `Reply` if that
    /// ID's machine is lost, and gathers the answers of a broadcast.
    pub fn request<T: Compact + Send>(&mut self) -> (ReplyTo<T>, Reply<T>) {
        let me = RawID::new(ShortTypeID::new(0), 0, self.machine, 0);
        self.request_to(me)
    }

    /// Opens a request to `recipient` (see [`request`](Self::request)): to
    /// one instance, or to a broadcast ID, whose answers the `Reply`
    /// gathers (see [`Reply::reduce`]).
    pub fn request_to<T: Compact + Send>(
        &mut self,
        recipient: impl TypedID,
    ) -> (ReplyTo<T>, Reply<T>) {
        let turn = self.current_turn();
        let machines = self.machines();
        let recipient = recipient.as_raw();
        if recipient.is_global_broadcast() && machines > 1 {
            // The request that follows reaches every machine in the next
            // turn, this one's instances too (see `send_gathered`).
            self.gather_next = Some(recipient);
        }
        (self.shared.replies).open(self.machine, recipient, turn, machines)
    }

    /// The current turn (see [`ActorSystem::turn`](crate::ActorSystem::turn)).
    pub fn current_turn(&self) -> u64 {
        self.shared.turn.load(Ordering::Relaxed)
    }

    /// The machines of the topology (1 without networking).
    fn machines(&self) -> usize {
        #[cfg(feature = "net")]
        if let Some(net) = &self.shared.net {
            return net.machines;
        }
        1
    }

    /// Answers a request.
    /// The answer to a request from another machine travels back to it
    /// (feature `net`) at the end of the turn; the answers of a request to
    /// a broadcast ID are gathered per machine and message cycle, and go
    /// back as one partial.
    #[inline]
    pub fn reply<T: Compact + Send + 'static>(&mut self, to: ReplyTo<T>, value: T) {
        let (token, machine) = to.token();
        if token.is_gather() {
            if let Some(last) = self.last_gathered
                && last.token == token
                && last.machine == machine
                && last.answer == TypeId::of::<T>()
            {
                // SAFETY: `at` is the `Gathered<T>` (its type was checked)
                // boxed in `self.partials`, alive: the system takes the
                // partials only with `take_partials`, which forgets `at`.
                return unsafe { (*last.at.cast::<Gathered<T>>()).add(value) };
            }
            return self.gather::<T>(token, machine).add(value);
        }
        if machine != self.machine {
            return self.reply_remote(token, machine, Ok(value));
        }
        let resolved = self.shared.replies.answer(to, value);
        self.send_resolved(resolved);
    }

    /// Resolves the reply of a request that will not be handled.
    pub(crate) fn fail_reply<T: Compact + Send>(
        &mut self,
        to: ReplyTo<T>,
        error: crate::ReplyError,
    ) {
        let (token, machine) = to.token();
        if machine == self.machine {
            let resolved = self.shared.replies.fail(token, error);
            self.send_resolved(resolved);
        } else {
            self.reply_remote::<T>(token, machine, Err(error));
        }
    }

    /// Sends a continuation (see [`Reply::then_send`]) with the outcome
    /// of its request, if one was resolved.
    #[inline]
    pub(crate) fn send_resolved(&mut self, resolved: crate::reply::Resolved) {
        if let Some((next, outcome)) = resolved {
            next.send(self, outcome);
        }
    }

    /// This world's partial of the gathered request `token` from `machine`
    /// (made empty on first use; see [`crate::reply`]), which the next
    /// answers of the same request go to at once.
    #[cold]
    #[inline(never)]
    pub(crate) fn gather<T: Compact + Send + 'static>(
        &mut self,
        token: ReplyToken,
        machine: MachineID,
    ) -> &mut Gathered<T> {
        // (Another answer type under the same token, of a forged
        // `ReplyTo`, is gathered apart, and discarded when delivered.)
        let answer = TypeId::of::<T>();
        let at = match self.partials.iter().rposition(|p| {
            p.token == token && p.machine == machine && p.answers.answer_type() == answer
        }) {
            Some(at) => at,
            None => {
                let combine = self.shared.combines.locked().get(&answer).copied();
                self.partials.push(Partial {
                    token,
                    machine,
                    answers: Box::new(Gathered::<T>::new(combine)),
                });
                self.after_cycle = true;
                self.partials.len() - 1
            }
        };
        let at = self.partials[at].answers.as_mut_ptr();
        self.last_gathered = Some(LastGathered {
            token,
            machine,
            answer,
            at,
        });
        // SAFETY: the partial's answers are a `Gathered<T>` (the type was
        // matched or just made), boxed in `self.partials`.
        unsafe { &mut *at.cast::<Gathered<T>>() }
    }

    /// Takes this world's partials (after a message cycle).
    pub(crate) fn take_partials(&mut self, into: &mut Vec<Partial>) {
        self.last_gathered = None;
        into.append(&mut self.partials);
    }

    pub(crate) fn undeliverable(&self) {
        self.shared.undeliverable.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a message to another machine (not networked).
    #[cold]
    pub(crate) fn to_other_machine(&self) {
        self.undeliverable();
        self.shared.other_machine.fetch_add(1, Ordering::Relaxed);
    }
}
