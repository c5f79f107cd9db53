//! [`ActorSystem`]: registration, message cycles and statistics.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use chunky::Storage;
use rustc_hash::FxHashMap;

use crate::actor::Actor;
use crate::class::Class;
use crate::class::handlers::MessageDebug;
use crate::class::lanes::SenderLane;
use crate::class::lanes::{AllShards, RaisedLane};
use crate::config::Config;
use crate::cycle::panic::PanicReport;
use crate::cycle::pool::Job;
use crate::registry::MessageID;
use crate::reply::gather::Partial;
use crate::store::InstanceStore;
use crate::sync::Unpoisoned;
use crate::timer::Timers;
use crate::world::{Shared, World};

/// The actor system of one machine: owns every instance store and inbox.
///
/// ```
/// use kay::{ActorSystem, Actor, ClassSetup, Compact, Config, Fate, World};
///
/// kay::typed_id!(pub CounterID);
///
/// #[derive(Compact, Clone)]
/// pub struct Counter { id: CounterID, count: u32 }
///
/// #[derive(Compact, Clone)]
/// pub struct Spawn { start: u32 }
/// #[derive(Compact, Clone)]
/// pub struct Add { amount: u32 }
///
/// impl Actor for Counter {
///     type ID = CounterID;
///     fn id(&self) -> CounterID { self.id }
///     fn setup(class: &mut ClassSetup<Self>) {
///         class.spawner(|id, s: &Spawn, _: &mut World| Counter { id, count: s.start });
///         class.handler(|c: &mut Counter, a: &Add, _: &mut World| c.count += a.amount);
///     }
/// }
///
/// let mut system = ActorSystem::new(Config::default());
/// system.register::<Counter>();
/// let mut world = system.world();
/// let counter = world.spawn::<Counter, _>(Spawn { start: 13 });
/// world.send(counter, Add { amount: 2 });
/// system.process_all_messages();
/// assert_eq!(system.with_instances::<Counter, _>(|c| c.count), vec![15]);
/// ```
///
/// # Panics
/// A panic in a handler or spawner, on any thread, is caught by the shard
/// that runs it (once around the shard's whole message cycle, so catching
/// costs nothing per message, and the shard then goes on behind the
/// faulting message); it never unwinds out of
/// [`process_all_messages`](Self::process_all_messages). The instance stays
/// where it was (re-compacted if it had grown before panicking), the
/// system records a [`PanicReport`] (actor ID, class, message type, the
/// panic's text and location, the message cycle, and the `Debug` of actor
/// and message where registered with [`ClassSetup::debug_state`](crate::ClassSetup::debug_state) and
/// [`debug_message`](Self::debug_message)), and then follows the class's
/// [`PanicPolicy`](crate::PanicPolicy) ([`ClassSetup::on_panic`](crate::ClassSetup::on_panic)):
///
/// - [`PanicPolicy::Stop`](crate::PanicPolicy::Stop) (the default): the system is *panicked*
///   ([`is_panicked`](Self::is_panicked)). The rest of the faulting shard's
///   message cycle, and from the next cycle every shard, *keep* ordinary
///   messages instead of handling them: queued in order, counted in
///   [`ClassStats::kept`](crate::ClassStats::kept). Essential handlers
///   ([`ClassSetup::essential_handler`](crate::ClassSetup::essential_handler), `#[essential]`) still run, so a
///   panicked system can still be inspected, rendered, snapshotted and shut
///   down. [`clear_panic`](Self::clear_panic) resumes: the next cycles
///   handle every kept message first, in the order it would have been
///   handled. (Other shards finish the cycle the panic happened in as
///   usual, so the outcome is the same on any number of threads.)
/// - [`PanicPolicy::DropMessage`](crate::PanicPolicy::DropMessage): that instance does not get the message;
///   everything carries on.
/// - [`PanicPolicy::RemoveInstance`](crate::PanicPolicy::RemoveInstance): the faulting instance is removed, as
///   if its handler returned [`Fate::Die`](crate::Fate::Die); everything carries on.
///
/// The message that panicked is never retried; a broadcast goes on to the
/// remaining instances (each instance that panics makes its own report). A
/// request whose handler panicked, or that a panicked system keeps,
/// resolves at once to [`ReplyError::HandlerPanicked`](crate::ReplyError::HandlerPanicked)
/// or [`ReplyError::SystemPanicked`](crate::ReplyError::SystemPanicked).
/// A panic in an actor's `Drop` (when it dies) is reported the same way.
///
/// Panics are still printed by the panic hook as usual; kay chains its own
/// hook in front of it to learn each panic's location.
pub struct ActorSystem {
    pub(crate) config: Config,
    pub(crate) shared: Arc<Shared>,
    pub(crate) storage: Storage,
    pub(crate) classes: Vec<Option<Class>>,
    /// The pool of helper threads (`threads - 1` of them: the system's own
    /// thread is the first worker), only with more than one thread.
    pub(crate) pool: Option<rayon::ThreadPool>,
    /// This cycle's shards to handle (kept to reuse its allocation).
    pub(crate) jobs: Vec<Job>,
    /// Every shard by global shard index (its handlers send on lane
    /// `1 + global`), as the job that handles it: its shared part (for the
    /// scan of pending flags at the start of a cycle), the shard and its
    /// class's handlers, all in `classes`.
    pub(crate) global_shards: Vec<Job>,
    /// What all shards share, e.g. pending flags over groups of global
    /// shards: a cycle visits only the groups where a shard got records, so
    /// idle classes cost nothing.
    pub(crate) all: Arc<AllShards>,
    /// The lanes the last cycle's handlers made pending (from their
    /// worlds' lists), for the next cycle.
    pub(crate) raised: Vec<RaisedLane>,
    /// Message cycles run so far (that had work).
    pub(crate) cycle: u64,
    /// Turns run so far.
    pub(crate) turn: u64,
    /// Whether a subscriber wanted `trace` spans when the turn began.
    pub(crate) trace: bool,
    /// Whether a handler panicked under `PanicPolicy::Stop` and
    /// `clear_panic` was not called since.
    pub(crate) panicked: bool,
    /// The first [`MAX_PANIC_REPORTS`] panic reports since `clear_panic`, and how
    /// many panics were caught in all.
    pub(crate) reports: Vec<PanicReport>,
    pub(crate) panics: u64,
    /// Formatters of message types for panic reports, by message id.
    pub(crate) message_debug: FxHashMap<MessageID, MessageDebug>,
    /// Every message type by id: its type name and layout (for the
    /// fingerprint).
    pub(crate) message_types: Vec<(&'static str, crate::registry::MessageLayout)>,
    /// Timers waiting to fire (see [`crate::timer`]).
    pub(crate) timers: Timers,
    /// How to make a timer's message of each type from a snapshot, by
    /// message id.
    pub(crate) message_restore: Vec<crate::timer::RestoreTimerMessage>,
    /// Where snapshots go ([`with_storage`](Self::with_storage)).
    pub(crate) persist: Option<Box<crate::persist::Persist>>,
    /// The partials of gathered requests taken from this cycle's jobs (see
    /// [`crate::reply`]).
    pub(crate) gathered: Vec<Partial>,
    /// The outside world through which the system itself sends: timers'
    /// messages, partials, continuations of requests that timed out.
    system_world: Option<World>,
    /// How to take each message type from the wire, by message id.
    #[cfg(feature = "net")]
    pub(crate) message_net_ops: Vec<Option<crate::net::NetOps>>,
    /// Networking, once started ([`connect`](Self::connect)).
    #[cfg(feature = "net")]
    pub(crate) net: Option<Box<crate::net::Net>>,
    /// Peers' batch frames of the turn a loaded snapshot holds, not
    /// applied yet: [`connect`](Self::connect) queues them.
    #[cfg(feature = "net")]
    pub(crate) loaded_frames: Vec<(u8, Vec<bytes::Bytes>)>,
    /// The rotation over shards of spawns from other machines, as a loaded
    /// snapshot left it.
    #[cfg(feature = "net")]
    pub(crate) loaded_spawn_turns: Vec<u32>,
    _not_send: PhantomData<*const ()>,
}

/// What one [`turn`](ActorSystem::turn) did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Turn {
    /// The turn's number (counted from 1; see
    /// [`current_turn`](ActorSystem::current_turn)).
    pub number: u64,
    /// Records taken from inboxes: handled, or kept while panicked, or
    /// dropped (counted in [`Stats`](crate::Stats)).
    pub handled: usize,
    /// Message cycles that had work.
    pub cycles: usize,
    /// Whether the turn stopped at [`Config::max_cycles_per_call`] with
    /// messages still waiting.
    pub messages_left: bool,
}

/// The most panic reports a system keeps (further panics are counted).
pub const MAX_PANIC_REPORTS: usize = 64;

impl ActorSystem {
    /// A system with no classes yet.
    pub fn new(config: Config) -> ActorSystem {
        assert!(
            config.inbox_chunk_size.is_power_of_two() && config.inbox_chunk_size >= 256,
            "Config::inbox_chunk_size must be a power of two of at least 256 bytes"
        );
        crate::cycle::panic::install_hook();
        let shared = Arc::new(Shared {
            machine: config.machine,
            types: RwLock::new(Vec::new()),
            type_ids: RwLock::new(FxHashMap::default()),
            message_ids: RwLock::new(FxHashMap::default()),
            message_names: RwLock::new(Vec::new()),
            replies: Arc::new(crate::reply::Replies::new(config.request_timeout_turns)),
            undeliverable: AtomicU64::new(0),
            other_machine: AtomicU64::new(0),
            combines: std::sync::Mutex::new(
                crate::reply::gather::built_in_combines()
                    .into_iter()
                    .collect(),
            ),
            turn: AtomicU64::new(0),
            outside_timer_ops: std::sync::Mutex::new(Vec::new()),
            outside_timer_count: AtomicU64::new(0),
            #[cfg(feature = "net")]
            net: config
                .net
                .as_ref()
                .map(|net| Arc::new(crate::net::NetShared::new(net))),
            snapshots: std::sync::atomic::AtomicBool::new(false),
            continuation_kinds: std::sync::Mutex::default(),
        });
        assert!(config.shards >= 1, "Config::shards must be at least 1");
        let pool = (config.threads > 1).then(|| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(config.threads - 1)
                .thread_name(|i| format!("kay-worker-{i}"))
                .build()
                .expect("cannot start kay's worker threads")
        });
        ActorSystem {
            config,
            shared,
            storage: Storage::heap(),
            classes: Vec::new(),
            pool,
            jobs: Vec::new(),
            global_shards: Vec::new(),
            all: Arc::new(AllShards::new()),
            raised: Vec::new(),
            cycle: 0,
            turn: 0,
            trace: false,
            panicked: false,
            reports: Vec::new(),
            panics: 0,
            message_debug: FxHashMap::default(),
            message_types: Vec::new(),
            message_restore: Vec::new(),
            persist: None,
            timers: Timers::default(),
            gathered: Vec::new(),
            system_world: None,
            #[cfg(feature = "net")]
            message_net_ops: Vec::new(),
            #[cfg(feature = "net")]
            net: None,
            #[cfg(feature = "net")]
            loaded_frames: Vec::new(),
            #[cfg(feature = "net")]
            loaded_spawn_turns: Vec::new(),
            _not_send: PhantomData,
        }
    }

    /// A [`World`] for sending and spawning from outside handlers.
    pub fn world(&self) -> World {
        World::new(Arc::clone(&self.shared), SenderLane::OUTSIDE)
    }

    /// Runs one *turn*: message cycles until no messages are left, or until
    /// [`Config::max_cycles_per_call`] cycles ran (then
    /// [`Turn::messages_left`] says so, and a `tracing` warning too).
    ///
    /// A turn is one step of your loop and kay's unit of time: timers
    /// ([`World::send_after`], [`World::send_every`]) fire at the start of
    /// a turn, and the exchange with other machines (feature `net`) happens
    /// once per turn, between its message cycles and the next turn's.
    /// [`current_turn`](Self::current_turn) counts them. A simulation's
    /// main loop is
    ///
    /// ```
    /// # use kay::{ActorSystem, Config};
    /// # let mut system = ActorSystem::new(Config::default());
    /// # let mut frames = 0;
    /// loop {
    ///     // ... send this frame's input from outside ...
    ///     let turn = system.turn();
    ///     if turn.messages_left {
    ///         // The cycle bound stopped the turn: the rest waits for the
    ///         // next turn (or call `turn` again now).
    ///     }
    ///     // ... render, read results ...
    ///     # frames += 1; if frames == 3 { break; }
    /// }
    /// assert_eq!(system.current_turn(), 3);
    /// ```
    pub fn turn(&mut self) -> Turn {
        #[cfg(feature = "net")]
        self.net_before_turn();
        self.turn += 1;
        self.shared.turn.store(self.turn, Ordering::Relaxed);
        self.fire_timers();
        let turn = self.local_turn();
        self.expire_requests();
        #[cfg(feature = "net")]
        self.net_after_turn();
        turn
    }

    /// Applies the timer operations of outside worlds, then sends the
    /// messages of the timers due now (at the start of a turn).
    fn fire_timers(&mut self) {
        let ops = std::mem::take(&mut *self.shared.outside_timer_ops.locked());
        self.timers.apply(ops);
        if self.timers.due(self.turn) {
            let world = Self::system_world(&mut self.system_world, &self.shared);
            self.timers.fire(self.turn, world);
        }
    }

    /// The system's own outside world, for sends of the system itself.
    pub(crate) fn outside_world(&mut self) -> &mut World {
        Self::system_world(&mut self.system_world, &self.shared)
    }

    /// The system's own outside world (see `system_world`).
    fn system_world<'w>(world: &'w mut Option<World>, shared: &Arc<Shared>) -> &'w mut World {
        world.get_or_insert_with(|| World::new(Arc::clone(shared), SenderLane::OUTSIDE))
    }

    /// Fails the requests whose timeout passed with this turn.
    fn expire_requests(&mut self) {
        let expired = self.shared.replies.expire(self.turn);
        if !expired.is_empty() {
            let world = Self::system_world(&mut self.system_world, &self.shared);
            for resolved in expired {
                world.send_resolved(resolved);
            }
        }
    }

    /// Delivers the partials of gathered requests this cycle's jobs made:
    /// those of one request (and asking machine) joined into one, in job
    /// order, then to the reply table, or to the asking machine.
    #[cold]
    #[inline(never)]
    pub(crate) fn deliver_partials(&mut self) {
        let mut joined: Vec<Partial> = Vec::new();
        for partial in self.gathered.drain(..) {
            let same = joined.iter_mut().find(|p| {
                p.token == partial.token
                    && p.machine == partial.machine
                    && p.answers.answer_type() == partial.answers.answer_type()
            });
            match same {
                Some(into) => into.answers.append(partial.answers),
                None => joined.push(partial),
            }
        }
        let me = self.shared.machine;
        let world = Self::system_world(&mut self.system_world, &self.shared);
        for Partial {
            token,
            machine,
            answers,
        } in joined
        {
            if machine == me {
                let answer = answers.answer_type();
                let resolved =
                    (world.shared.replies).partial(token, answer, me, answers.into_any());
                world.send_resolved(resolved);
            } else {
                #[cfg(feature = "net")]
                answers.send_to(world, token, machine);
            }
        }
    }

    /// Lets answers of type `T` to requests to broadcast IDs combine on
    /// each machine (see [`Combine`](crate::Combine)): every machine then
    /// sends one value per request instead of every answer. [`Sum`](crate::Sum),
    /// [`Min`](crate::Min) and [`Max`](crate::Max) of the primitive numbers
    /// are registered from the start. Register the same types on every
    /// machine.
    pub fn register_combine<T: crate::Combine>(&mut self) {
        let (answer, combine) = crate::reply::gather::combine_fn::<T>();
        self.shared.combines.locked().insert(answer, combine);
    }

    /// Lets snapshots carry continuations that put answers `T` into
    /// messages `M` ([`Reply::then_send`](crate::Reply::then_send)). A
    /// continuation is part of the simulation's state, like a timer: a
    /// request asked from a handler in one turn may be answered in a later
    /// one, and a snapshot taken in between must hold what the answer
    /// will be sent in. Only the program knows which message types take
    /// which answers, so it names them here, at setup, before
    /// [`load`](Self::load) (a load needs them to make the continuations
    /// again). A [`snapshot`](Self::snapshot) that finds a continuation of
    /// a kind not registered is refused with an error naming this call;
    /// and since that happens only if one waits at the snapshot's turn (a
    /// run may go a long time without), a system made with
    /// [`with_storage`](Self::with_storage) warns (`tracing`, once per
    /// kind) as soon as a handler makes one.
    ///
    /// ```
    /// # use kay::{ActorSystem, Config, Continue, ReplyError};
    /// #[derive(kay::Compact, Clone)]
    /// pub struct Counted { count: Option<u32> }
    /// impl Continue<u32> for Counted {
    ///     fn answered(&mut self, answer: Result<u32, ReplyError>) {
    ///         self.count = answer.ok();
    ///     }
    /// }
    /// let mut system = ActorSystem::new(Config::default());
    /// system.register_continuation::<u32, Counted>();
    /// ```
    pub fn register_continuation<T, M>(&mut self)
    where
        T: compact::Compact + Send + 'static,
        M: crate::Continue<T>,
    {
        crate::actor::refuse_process_local::<M>();
        let kind = crate::reply::continuation_kind::<T, M>();
        self.shared.continuation_kinds.locked().register(kind);
    }

    /// Timers waiting to fire (see [`World::send_after`]).
    pub fn pending_timers(&self) -> usize {
        self.timers.len()
    }

    /// The message cycles of a turn (see [`turn`](Self::turn)).
    fn local_turn(&mut self) -> Turn {
        // Whether this turn's cycles and shards open `trace` spans: asked
        // once per turn, as even a disabled span costs a few dozen
        // instructions, and a cycle of ping-pong is about two hundred.
        self.trace = tracing::level_enabled!(tracing::Level::TRACE);
        let mut turn = Turn {
            number: self.turn,
            ..Turn::default()
        };
        let _span = tracing::trace_span!("turn", number = self.turn).entered();
        for _ in 0..self.config.max_cycles_per_call {
            let handled = if self.trace {
                self.traced_cycle()
            } else {
                self.message_cycle()
            };
            if handled == 0 {
                return turn;
            }
            turn.handled += handled;
            turn.cycles += 1;
        }
        turn.messages_left = self.messages_waiting();
        if turn.messages_left {
            tracing::warn!(
                turn = turn.number,
                cycles = turn.cycles,
                handled = turn.handled,
                "kay: the turn stopped at Config::max_cycles_per_call with messages left; \
                 they are handled from the next turn on"
            );
        }
        turn
    }

    /// A message cycle in a `trace` span (its shards open their own).
    #[cold]
    #[inline(never)]
    fn traced_cycle(&mut self) -> usize {
        let _span = tracing::trace_span!("message_cycle", cycle = self.cycle + 1).entered();
        self.message_cycle()
    }

    /// Runs one turn (see [`turn`](Self::turn), which this is another
    /// name for): message cycles until no messages are left or the bound.
    pub fn process_all_messages(&mut self) -> Turn {
        self.turn()
    }

    /// Whether any other machine is connected (never without the `net`
    /// feature).
    fn peers_connected(&self) -> bool {
        #[cfg(feature = "net")]
        if let Some(net) = &self.net {
            return net.any_connected();
        }
        false
    }

    /// The number of turns run so far (the last [`Turn::number`]).
    pub fn current_turn(&self) -> u64 {
        self.turn
    }

    /// Whether any shard has records waiting (between cycles).
    /// (A shard with kept records to resume has its flag raised too.)
    pub(crate) fn messages_waiting(&self) -> bool {
        !self.raised.is_empty() || self.all.outside_pending()
    }

    /// Runs turns until `future` completes, and returns its output.
    ///
    /// If the system runs out of messages while the future still waits,
    /// every outstanding [`Reply`](crate::Reply) resolves to
    /// [`ReplyError::NoReply`](crate::ReplyError::NoReply) (nobody is left to
    /// answer it) instead of hanging. With networking, that happens only
    /// once no other machine is connected: while one is, its answer may
    /// still come.
    ///
    /// # Panics
    /// If the system is out of messages, no reply is outstanding, and the
    /// future still does not complete (it waits for something else).
    pub fn block_on<F: std::future::Future>(&mut self, future: F) -> F::Output {
        let mut future = std::pin::pin!(future);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        loop {
            if let std::task::Poll::Ready(output) = future.as_mut().poll(&mut cx) {
                return output;
            }
            if self.turn().handled == 0 {
                if self.shared.replies.any_waiting() && self.peers_connected() {
                    // Another machine may still answer (feature `net`).
                    std::thread::sleep(std::time::Duration::from_micros(50));
                } else if self.shared.replies.any_waiting() {
                    self.shared.replies.fail_waiting(crate::ReplyError::NoReply);
                } else if let std::task::Poll::Ready(output) = future.as_mut().poll(&mut cx) {
                    return output;
                } else {
                    panic!(
                        "block_on: the system has no messages left and the future is still pending"
                    );
                }
            }
        }
    }

    /// Calls `f` on every instance of `A` (in storage order) and collects the results.
    pub fn with_instances<A: Actor, R>(&self, mut f: impl FnMut(&A) -> R) -> Vec<R> {
        let mut out = Vec::new();
        if let Some(class) = self.class_state::<A>() {
            for shard in &class.shards {
                // SAFETY: the stores of class `A` are made with `A`'s
                // operations.
                let store = unsafe { InstanceStore::<A>::of_ref(&shard.store) };
                store.for_each(|a| out.push(f(a)));
            }
        }
        out
    }

    /// The number of live instances of `A`.
    pub fn instance_count<A: Actor>(&self) -> usize {
        self.class_state::<A>()
            .map_or(0, |c| c.shards.iter().map(|s| s.store.len()).sum())
    }

    fn class_state<A: Actor>(&self) -> Option<&Class> {
        let id = self.known_type::<A>()?;
        self.classes.get(id.get() as usize)?.as_ref()
    }
}

impl Drop for ActorSystem {
    fn drop(&mut self) {
        if !self.jobs.is_empty() {
            // A panic escaped a cycle outside any handler: the stores may be
            // mid-update, so their instances are leaked, not dropped.
            for class in self.classes.drain(..).flatten() {
                std::mem::forget(class);
            }
        }
    }
}
