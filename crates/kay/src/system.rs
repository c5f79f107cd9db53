//! [`ActorSystem`]: registration, message cycles and statistics.

use std::any::TypeId;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use chunky::Storage;
use rustc_hash::FxHashMap;

use crate::actor::{Actor, ActorTrait, Fate, Message, Recipient};
use crate::class::handlers::MessageDebug;
use crate::class::lanes::ShardShared;
use crate::class::{Class, ClassShared, Handler, HandlerTable, Shard, ShardState};
use crate::cycle::pool::Job;
use crate::id::{MachineID, ShortTypeId};
use crate::panic::{PanicPolicy, PanicReport};
use crate::registry::{MAX_MESSAGE_TYPES, MessageId};
use crate::reply::Request;
use crate::stats::{ClassStats, Stats};
use crate::store::InstanceStore;
use crate::world::{Shared, TraitShared, TypeEntry, World};
use std::ptr::NonNull;

/// How an [`ActorSystem`] runs.
#[derive(Clone, Debug)]
pub struct Config {
    /// This machine's index in the topology (0 on a single machine).
    pub machine: MachineID,
    /// The most message cycles one call of
    /// [`ActorSystem::process_all_messages`] runs; messages left over wait
    /// for the next call.
    pub max_cycles_per_call: usize,
    /// The size of inbox chunks in bytes (a power of two); larger messages
    /// get chunks of their own.
    pub inbox_chunk_size: usize,
    /// How many bytes of finished inbox chunks each class keeps for reuse.
    /// Like a `Vec`'s capacity, an inbox keeps the memory of its largest
    /// burst up to this limit, so that steady bursts of messages neither
    /// allocate nor touch fresh pages.
    pub inbox_retain_bytes: usize,
    /// Threads that handle shards in parallel (default: the number of
    /// cores): the thread calling into the system plus `threads - 1`
    /// helper threads. Changing it never changes results (see the crate
    /// docs on determinism).
    pub threads: usize,
    /// Shards per class: each class is split into this many instance stores
    /// that can be handled in parallel. Part of the configuration (not
    /// derived from `threads`), so IDs and delivery order stay the same
    /// whatever the thread count. At most 255 shards over all classes.
    pub shards: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            machine: MachineID(0),
            max_cycles_per_call: 1_000,
            inbox_chunk_size: 1 << 16,
            inbox_retain_bytes: 16 << 20,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            shards: 4,
        }
    }
}

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
/// and message where registered with [`ClassSetup::debug_state`] and
/// [`debug_message`](Self::debug_message)), and then follows the class's
/// [`PanicPolicy`] ([`ClassSetup::on_panic`]):
///
/// - [`PanicPolicy::Stop`] (the default): the system is *panicked*
///   ([`is_panicked`](Self::is_panicked)). The rest of the faulting shard's
///   message cycle, and from the next cycle every shard, *keep* ordinary
///   messages instead of handling them: queued in order, counted in
///   [`ClassStats::kept`](crate::ClassStats::kept). Essential handlers
///   ([`ClassSetup::essential_handler`], `#[essential]`) still run, so a
///   panicked system can still be inspected, rendered, snapshotted and shut
///   down. [`clear_panic`](Self::clear_panic) resumes: the next cycles
///   handle every kept message first, in the order it would have been
///   handled. (Other shards finish the cycle the panic happened in as
///   usual, so the outcome is the same on any number of threads.)
/// - [`PanicPolicy::DropMessage`]: that instance does not get the message;
///   everything carries on.
/// - [`PanicPolicy::RemoveInstance`]: the faulting instance is removed, as
///   if its handler returned [`Fate::Die`]; everything carries on.
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
    /// `1 + global`): its shared part, for the quick scan of pending flags
    /// at the start of a cycle, and its class's type id.
    pub(crate) global_shards: Vec<(NonNull<ShardShared>, u16)>,
    /// Message cycles run so far (that had work).
    pub(crate) cycle: u64,
    /// Whether a handler panicked under `PanicPolicy::Stop` and
    /// `clear_panic` was not called since.
    pub(crate) panicked: bool,
    /// The first [`MAX_PANIC_REPORTS`] panic reports since `clear_panic`, and how
    /// many panics were caught in all.
    pub(crate) reports: Vec<PanicReport>,
    pub(crate) panics: u64,
    /// Formatters of message types for panic reports, by message id.
    pub(crate) message_debug: FxHashMap<MessageId, MessageDebug>,
    _not_send: PhantomData<*const ()>,
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
        crate::panic::install_hook();
        let shared = Arc::new(Shared {
            machine: config.machine,
            types: RwLock::new(Vec::new()),
            type_ids: RwLock::new(FxHashMap::default()),
            message_ids: RwLock::new(FxHashMap::default()),
            message_names: RwLock::new(Vec::new()),
            replies: Arc::default(),
            undeliverable: AtomicU64::new(0),
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
            cycle: 0,
            panicked: false,
            reports: Vec::new(),
            panics: 0,
            message_debug: FxHashMap::default(),
            _not_send: PhantomData,
        }
    }

    /// A [`World`] for sending and spawning from outside handlers.
    pub fn world(&self) -> World {
        World::new(Arc::clone(&self.shared), 0)
    }

    fn next_type_id(&self, name: &str) -> ShortTypeId {
        let len = self
            .shared
            .types
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .len();
        let id = u16::try_from(len)
            .unwrap_or_else(|_| panic!("too many actor classes and traits to register {name}"));
        ShortTypeId(id)
    }

    fn known_type<T: ?Sized + 'static>(&self) -> Option<ShortTypeId> {
        self.shared
            .type_ids
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&TypeId::of::<T>())
            .copied()
    }

    fn add_type(&self, key: TypeId, entry: TypeEntry) -> ShortTypeId {
        let mut types = self.shared.types.write().unwrap_or_else(|e| e.into_inner());
        let id = ShortTypeId(types.len() as u16);
        types.push(entry);
        self.shared
            .type_ids
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, id);
        id
    }

    /// Registers actor class `A` and installs its handlers ([`Actor::setup`]).
    ///
    /// # Panics
    /// If `A` is already registered, or its alignment is above 8 bytes.
    pub fn register<A: Actor>(&mut self) -> ShortTypeId {
        let name = std::any::type_name::<A>();
        assert!(
            self.known_type::<A>().is_none(),
            "{name} is registered twice"
        );
        assert!(
            align_of::<A>() <= 8,
            "actor {name} has an alignment above 8 bytes, which instance stores do not support"
        );
        let type_id = self.next_type_id(name);
        let shards = self.config.shards as u32;
        let first_global = self.global_shards.len() as u32;
        let shared = Arc::new(ClassShared::new(
            name,
            type_id,
            shards,
            first_global,
            self.config.inbox_chunk_size,
            self.config.inbox_retain_bytes,
        ));
        self.global_shards.extend(
            shared
                .shards
                .iter()
                .map(|s| (NonNull::from(s), type_id.get())),
        );
        let added = self.add_type(TypeId::of::<A>(), TypeEntry::Class(Arc::clone(&shared)));
        debug_assert_eq!(added, type_id);
        let ident: String = name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let ident = &ident[ident.len().saturating_sub(60)..];
        let shards = (0..shards)
            .map(|s| {
                let store = InstanceStore::<A>::new(
                    self.storage.clone(),
                    format!("c{}s{s}_{ident}", type_id.get()),
                    shards,
                );
                let mut state = ShardState::new(
                    World::new(Arc::clone(&self.shared), 1 + first_global + s),
                    name,
                );
                state.panicked = self.panicked;
                Shard {
                    store: Box::new(store),
                    state,
                    work: Vec::new(),
                    lanes: Vec::new(),
                    lanes_seen: 0,
                    resume: false,
                    resuming: None,
                    taken: 0,
                }
            })
            .collect();
        let class = Class {
            shared,
            handlers: HandlerTable::default(),
            shards,
        };
        let at = type_id.get() as usize;
        if self.classes.len() <= at {
            self.classes.resize_with(at + 1, || None);
        }
        self.classes[at] = Some(class);
        A::setup(&mut ClassSetup {
            system: self,
            type_id,
            _actor: PhantomData,
        });
        for trait_impl in crate::private::trait_impls_of(TypeId::of::<A>()) {
            (trait_impl.setup)(self);
        }
        type_id
    }

    /// Registers actor trait `T` (also done on first use by
    /// [`ClassSetup::implements`]); returns its type id.
    pub fn register_trait<T: ActorTrait + ?Sized>(&mut self) -> ShortTypeId {
        if let Some(id) = self.known_type::<T>() {
            return id;
        }
        let name = std::any::type_name::<T>();
        self.next_type_id(name);
        let entry = TraitShared {
            implementors: RwLock::new(Vec::new()),
        };
        self.add_type(TypeId::of::<T>(), TypeEntry::Trait(Arc::new(entry)))
    }

    /// Handler registration for class `A` outside [`Actor::setup`].
    ///
    /// # Panics
    /// If `A` is not registered.
    pub fn class<A: Actor>(&mut self) -> ClassSetup<'_, A> {
        let type_id = self
            .known_type::<A>()
            .unwrap_or_else(|| panic!("{} is not registered", std::any::type_name::<A>()));
        ClassSetup {
            system: self,
            type_id,
            _actor: PhantomData,
        }
    }

    fn message_id<M: Message>(&mut self) -> MessageId {
        crate::actor::refuse_process_local::<M>();
        let name = std::any::type_name::<M>();
        assert!(
            align_of::<M>() <= 8,
            "message {name} has an alignment above 8 bytes, which inboxes do not support"
        );
        let mut ids = self
            .shared
            .message_ids
            .write()
            .unwrap_or_else(|e| e.into_inner());
        let mut names = self
            .shared
            .message_names
            .write()
            .unwrap_or_else(|e| e.into_inner());
        *ids.entry(TypeId::of::<M>()).or_insert_with(|| {
            assert!(
                names.len() < MAX_MESSAGE_TYPES,
                "too many message types to register {name} (at most {})",
                MAX_MESSAGE_TYPES
            );
            let id = names.len() as u16;
            names.push(name);
            MessageId(id)
        })
    }

    fn install(&mut self, type_id: ShortTypeId, message: MessageId, mut handler: Handler) {
        handler.debug_message = self.message_debug.get(&message).cloned();
        let class = self.classes[type_id.get() as usize]
            .as_mut()
            .expect("registered class");
        if class.handlers.insert(message, handler).is_err() {
            let existing = class.handlers.get(message).expect("the entry in the way");
            let names = self
                .shared
                .message_names
                .read()
                .unwrap_or_else(|e| e.into_inner());
            panic!(
                "{} already has a {:?} for message {}; a class has one handler or spawner per message type",
                class.shared.name, existing.kind, names[message.0 as usize]
            );
        }
    }

    /// Whether the system is panicked: a handler of a class with
    /// [`PanicPolicy::Stop`] panicked and [`clear_panic`](Self::clear_panic)
    /// was not called since. Ordinary messages are then kept, not handled.
    pub fn is_panicked(&self) -> bool {
        self.panicked
    }

    /// The first panic report since the last [`clear_panic`](Self::clear_panic).
    pub fn panic_report(&self) -> Option<&PanicReport> {
        self.reports.first()
    }

    /// The panic reports since the last [`clear_panic`](Self::clear_panic),
    /// in the order they happened (at most [`MAX_PANIC_REPORTS`]; see
    /// [`panic_count`](Self::panic_count) for all).
    pub fn panic_reports(&self) -> &[PanicReport] {
        &self.reports
    }

    /// How many panics were caught since the last `clear_panic`.
    pub fn panic_count(&self) -> u64 {
        self.panics
    }

    /// Leaves the panicked state and returns the reports: the next message
    /// cycles handle every kept message first, in the order it would have
    /// been handled (the messages that panicked are not retried).
    pub fn clear_panic(&mut self) -> Vec<PanicReport> {
        self.set_panicked(false);
        self.panics = 0;
        std::mem::take(&mut self.reports)
    }

    /// Shows messages of type `M` with their `Debug` in panic reports.
    pub fn debug_message<M: Message + std::fmt::Debug>(&mut self) -> &mut Self {
        self.debug_message_with::<M>(|m| format!("{m:?}"))
    }

    /// Shows messages of type `M` with `format` in panic reports.
    pub fn debug_message_with<M: Message>(&mut self, format: fn(&M) -> String) -> &mut Self {
        let message = self.message_id::<M>();
        let debug = MessageDebug::new(format);
        for class in self.classes.iter_mut().flatten() {
            if let Some(handler) = class.handlers.get_mut(message) {
                handler.debug_message = Some(debug.clone());
            }
        }
        self.message_debug.insert(message, debug);
        self
    }

    /// Names message type `M` `name` in statistics and panic reports
    /// (instead of its type name); the macros name their hidden message
    /// types `Class::method`.
    pub fn name_message<M: Message>(&mut self, name: &'static str) -> &mut Self {
        let message = self.message_id::<M>();
        self.shared
            .message_names
            .write()
            .unwrap_or_else(|e| e.into_inner())[message.0 as usize] = name;
        self
    }

    /// Runs message cycles until no messages are left (or
    /// [`Config::max_cycles_per_call`] is reached); returns how many messages
    /// were handled.
    pub fn process_all_messages(&mut self) -> usize {
        let mut total = 0;
        for _ in 0..self.config.max_cycles_per_call {
            let handled = self.message_cycle();
            total += handled;
            if handled == 0 {
                break;
            }
        }
        total
    }

    /// Runs message cycles until `future` completes, and returns its output.
    ///
    /// If the system runs out of messages while the future still waits,
    /// every outstanding [`Reply`](crate::Reply) resolves to
    /// [`ReplyError::NoReply`](crate::ReplyError::NoReply) (nobody is left to
    /// answer it) instead of hanging.
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
            if self.message_cycle() == 0 {
                if self.shared.replies.any_waiting() {
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
                let ptr = shard.store.as_ref() as *const dyn crate::store::AnyStore;
                // SAFETY: the stores of class `A` are `InstanceStore<A>`s.
                let store = unsafe { &*ptr.cast::<InstanceStore<A>>() };
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

    /// Counters of every class and message type.
    pub fn stats(&self) -> Stats {
        let names = self
            .shared
            .message_names
            .read()
            .unwrap_or_else(|e| e.into_inner());
        let classes = self
            .classes
            .iter()
            .flatten()
            .map(|class| {
                let mut handled: Vec<u64> = Vec::new();
                let (mut no_recipient, mut no_handler, mut kept) = (0, 0, 0);
                for shard in &class.shards {
                    let counters = &shard.state.counters;
                    if handled.len() < counters.handled.len() {
                        handled.resize(counters.handled.len(), 0);
                    }
                    for (total, n) in handled.iter_mut().zip(&counters.handled) {
                        *total += n;
                    }
                    no_recipient += counters.no_recipient;
                    no_handler += counters.no_handler;
                    kept += counters.kept;
                }
                ClassStats {
                    name: class.shared.name,
                    type_id: class.shared.type_id,
                    instances: class.shards.iter().map(|s| s.store.len()).sum(),
                    slot_bytes: class.shards.iter().map(|s| s.store.slot_bytes()).sum(),
                    queued: class.shared.shards.iter().map(|s| s.queued()).sum(),
                    handled: handled
                        .iter()
                        .enumerate()
                        .filter(|(_, n)| **n > 0)
                        .map(|(m, n)| (names[m], *n))
                        .collect(),
                    no_recipient,
                    no_handler,
                    kept,
                }
            })
            .collect();
        Stats {
            classes,
            undeliverable: self.shared.undeliverable.load(Ordering::Relaxed),
        }
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

/// Installs handlers and spawners of class `A`: given to [`Actor::setup`],
/// or from [`ActorSystem::class`].
pub struct ClassSetup<'a, A: Actor> {
    system: &'a mut ActorSystem,
    type_id: ShortTypeId,
    _actor: PhantomData<A>,
}

impl<A: Actor> ClassSetup<'_, A> {
    /// This class's type id.
    pub fn type_id(&self) -> ShortTypeId {
        self.type_id
    }

    /// Handles message `M` with `f`, for single instances and for broadcasts.
    /// `f` returns `()` or a [`Fate`].
    pub fn handler<M: Message, R: Into<Fate>>(
        &mut self,
        f: impl Fn(&mut A, &M, &mut World) -> R + Send + Sync + 'static,
    ) -> &mut Self {
        let message = self.system.message_id::<M>();
        let handler = Handler::for_messages::<A, M, _>(move |a: &mut A, m: &M, w: &mut World| {
            f(a, m, w).into()
        });
        self.system.install(self.type_id, message, handler);
        self
    }

    /// Like [`handler`](Self::handler), for a handler that must still run
    /// after the system has panicked (for rendering, inspection, snapshots
    /// and shutting down), see [Panics](ActorSystem#panics).
    pub fn essential_handler<M: Message, R: Into<Fate>>(
        &mut self,
        f: impl Fn(&mut A, &M, &mut World) -> R + Send + Sync + 'static,
    ) -> &mut Self {
        self.handler(f);
        self.mark::<M>(|h| h.essential = true)
    }

    /// Like [`handler`](Self::handler), for a request: if the request is
    /// dropped (no recipient, the handler panicked, the system is panicked)
    /// the asker's `Reply` resolves to that error at once.
    pub fn request_handler<M: Request, R: Into<Fate>>(
        &mut self,
        f: impl Fn(&mut A, &M, &mut World) -> R + Send + Sync + 'static,
    ) -> &mut Self {
        self.handler(f);
        self.mark::<M>(|h| h.fail_request_for::<M>())
    }

    /// [`request_handler`](Self::request_handler) that still runs after a
    /// panic, like [`essential_handler`](Self::essential_handler).
    pub fn essential_request_handler<M: Request, R: Into<Fate>>(
        &mut self,
        f: impl Fn(&mut A, &M, &mut World) -> R + Send + Sync + 'static,
    ) -> &mut Self {
        self.essential_handler(f);
        self.mark::<M>(|h| h.fail_request_for::<M>())
    }

    /// What this class does when one of its handlers or spawners panics
    /// (default: [`PanicPolicy::Stop`], see [Panics](ActorSystem#panics)).
    pub fn on_panic(&mut self, policy: PanicPolicy) -> &mut Self {
        let class = self.system.classes[self.type_id.get() as usize]
            .as_mut()
            .expect("registered class");
        for shard in &mut class.shards {
            shard.state.policy = policy;
            shard.store.set_panic_policy(policy);
        }
        self
    }

    /// Shows instances with their `Debug` in panic reports
    /// (`#[kay::actor]` does this for actors that implement `Debug`).
    pub fn debug_state(&mut self) -> &mut Self
    where
        A: std::fmt::Debug,
    {
        self.debug_state_with(|a| format!("{a:?}"))
    }

    /// Shows instances with `format` in panic reports.
    pub fn debug_state_with(&mut self, format: fn(&A) -> String) -> &mut Self {
        let class = self.system.classes[self.type_id.get() as usize]
            .as_mut()
            .expect("registered class");
        for shard in &mut class.shards {
            let ptr = shard.store.as_ptr();
            // SAFETY: the stores of class `A` are `InstanceStore<A>`s.
            let store = unsafe { &mut *ptr.cast::<InstanceStore<A>>() };
            store.debug = Some(format);
        }
        self
    }

    /// For the macros: names message `M` and sets its formatter.
    #[doc(hidden)]
    pub fn describe_message<M: Message>(
        &mut self,
        name: &'static str,
        format: fn(&M) -> String,
    ) -> &mut Self {
        self.system
            .name_message::<M>(name)
            .debug_message_with::<M>(format);
        self
    }

    /// Changes the table entry of message `M` with `f`.
    fn mark<M: Message>(&mut self, f: impl FnOnce(&mut Handler)) -> &mut Self {
        let message = self.system.message_id::<M>();
        let class = self.system.classes[self.type_id.get() as usize]
            .as_mut()
            .expect("registered class");
        if let Some(handler) = class.handlers.get_mut(message) {
            f(handler);
        }
        self
    }

    /// Handles message `M` with `A`'s [`Recipient<M>`] impl.
    pub fn recipient<M: Message>(&mut self) -> &mut Self
    where
        A: Recipient<M>,
    {
        self.handler(|a: &mut A, m: &M, w: &mut World| a.receive(m, w))
    }

    /// Spawns instances from message `M` (see [`World::spawn`]).
    pub fn spawner<M: Message>(
        &mut self,
        f: impl Fn(A::ID, &M, &mut World) -> A + Send + Sync + 'static,
    ) -> &mut Self {
        let message = self.system.message_id::<M>();
        self.system
            .install(self.type_id, message, Handler::spawner::<A, M, _>(f));
        self
    }

    /// Declares that `A` implements actor trait `T`: broadcasts to `T` reach
    /// `A`'s instances, and `T`'s messages sent to an `A` are handled by the
    /// handlers registered here for them.
    pub fn implements<T: ActorTrait + ?Sized>(&mut self) -> &mut Self {
        let trait_id = self.system.register_trait::<T>();
        let types = self
            .system
            .shared
            .types
            .read()
            .unwrap_or_else(|e| e.into_inner());
        let (TypeEntry::Trait(t), TypeEntry::Class(class)) = (
            &types[trait_id.get() as usize],
            &types[self.type_id.get() as usize],
        ) else {
            unreachable!("trait and class entries")
        };
        let mut implementors = t.implementors.write().unwrap_or_else(|e| e.into_inner());
        if !implementors.iter().any(|c| c.type_id == class.type_id) {
            implementors.push(Arc::clone(class));
        }
        drop(implementors);
        drop(types);
        self
    }
}
