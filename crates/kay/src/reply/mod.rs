//! Requests and replies: [`Reply<T>`] futures and the [`ReplyTo<T>`] address a
//! handler answers to.
//!
//! A request is an ordinary message carrying a `ReplyTo<T>`; its handler
//! answers with [`World::reply`](crate::World::reply). The asker holds the
//! matching [`Reply<T>`], a `Future` that resolves when the answer arrives,
//! from this machine or another. Await it from any executor (it is `Send`:
//! e.g. a tokio task while another thread runs turns), or drive it with
//! [`ActorSystem::block_on`](crate::ActorSystem::block_on), which runs
//! turns until it completes; if the system runs out of messages while
//! replies are still outstanding, nobody can answer them any more, and they
//! resolve to [`ReplyError::NoReply`] instead of hanging.
//!
//! # Map-reduce
//! A request to a broadcast ID (local or global, of a class or a trait) is
//! answered by every instance it reaches: [`Reply::reduce`] folds the
//! answers into one value, [`Reply::collect`] gathers them. Each machine
//! the broadcast reaches gathers its instances' answers in the message
//! cycle that handles it and sends **one** partial (possibly empty); the
//! asker knows how many partials to expect from the topology (this machine
//! for a local broadcast, every machine for a global one), so it never
//! guesses and never waits for stragglers. The fold runs on the asking
//! machine, so it may be any closure. Answers of a type that
//! [combines](Combine) ([`Sum`], [`Min`], [`Max`] of numbers, or a type of
//! yours registered with
//! [`ActorSystem::register_combine`](crate::ActorSystem::register_combine))
//! are combined as they come, so each machine's partial is one value:
//! traffic grows with machines, not with instances. Other answers travel
//! all (`T` bytes each): one message per machine, bytes per instance.
//!
//! A request to a *global* broadcast on several machines reaches every
//! machine in the same turn, the asking one included: the turn after the
//! one it goes out at the end of (the asker's own copy waits on a timer).
//! So every machine answers at the same point of the simulation, and at
//! the same time rather than one after another.
//!
//! # Inside handlers
//! A handler must not wait. It sends the request and names a message that
//! takes the answer: [`Reply::then_send`]. The pending message is data in
//! the system's reply table (compact, like every message), not a closure
//! in the actor's state, so a snapshot carries it, with its timeout, once
//! the program registered its kind with
//! [`ActorSystem::register_continuation`](crate::ActorSystem::register_continuation).
//!
//! # Errors instead of hangs
//! A request resolves to a [`ReplyError`] when its recipient does not exist
//! or its handler panicked, when the machine it went to is lost, when the
//! system is panicked, or when it is not answered within its timeout in
//! turns ([`Config::request_timeout_turns`](crate::Config::request_timeout_turns),
//! or per request with [`Reply::timeout`]). An answer that comes after
//! its request was resolved is counted
//! ([`Stats::late_replies`](crate::Stats::late_replies)), not delivered.
//!
//! The reply table's states are described in its module (`reply/table.rs`).

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use compact::Compact;

pub(crate) mod gather;
mod table;

pub use gather::{Combine, Max, Min, Sum};

use table::Answers;
pub(crate) use table::{Continuation, ContinuationKind, Replies, Resolved};

use crate::World;
use crate::id::{MachineID, RawID, TypedID};

/// Why a [`Reply`] resolved without a value (compact, so that a
/// continuation message can carry it: see [`Reply::then_send`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Compact)]
#[repr(u8)]
pub enum ReplyError {
    /// The system ran out of messages before anyone answered: the recipient
    /// did not exist, had no handler for the request, or never replied.
    #[error(
        "no reply: the system ran out of messages before the request was answered (was the recipient alive and registered?)"
    )]
    NoReply,
    /// The recipient does not exist (dead, never spawned, or a stale ID).
    #[error("no reply: the recipient of the request does not exist (dead, never spawned or stale)")]
    NoRecipient,
    /// The handler panicked while handling the request.
    #[error("no reply: the handler panicked while handling the request (see the panic report)")]
    HandlerPanicked,
    /// The system is panicked: the request is kept, not handled, until
    /// `clear_panic` (its eventual answer is discarded).
    #[error(
        "no reply: the system is panicked, so the request was kept instead of handled (see ActorSystem::panic_reports)"
    )]
    SystemPanicked,
    /// No answer came by the end of turn `turn` (the request's timeout).
    #[error("no reply: the request timed out at the end of turn {turn}")]
    TimedOut {
        /// The turn at whose end it timed out.
        turn: u64,
    },
    /// The machine the request went to (or, for a broadcast, one whose
    /// partial was missing) was lost before it answered.
    #[error("no reply: machine {} was lost before it answered", machine.0)]
    PeerLost {
        /// The machine that was lost.
        machine: MachineID,
    },
    /// The request went to a broadcast ID, so it has many answers: use
    /// [`Reply::reduce`] or [`Reply::collect`] instead of awaiting it.
    #[error("a request to a broadcast ID has many answers: use Reply::reduce or Reply::collect")]
    Broadcast,
}

/// A message that asks for an answer: it carries the [`ReplyTo`] its handler
/// answers to. Registering its handler with
/// [`ClassSetup::request_handler`](crate::ClassSetup::request_handler) (as
/// `#[kay::actor]` does for request methods) lets the runtime resolve the
/// asker's [`Reply`] with a [`ReplyError`] as soon as the request is dropped
/// (its recipient does not exist, its handler panicked, the system is
/// panicked) instead of when the system runs out of messages.
pub trait Request: crate::Message {
    /// The answer's type.
    type Answer: Compact + Send + 'static;
    /// Where the answer goes.
    fn reply_to(&self) -> ReplyTo<Self::Answer>;
}

/// Names one outstanding reply in its system's table: the slot's index
/// (low 32 bits), its generation (31 bits: a token of a slot reused since
/// is stale), and whether it gathers the answers of a broadcast (the top
/// bit).
#[derive(Compact, Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(crate) struct ReplyToken(u64);

impl ReplyToken {
    /// The token as the wire carries it.
    #[cfg(feature = "net")]
    pub(crate) fn bits(self) -> u64 {
        self.0
    }

    /// A token from the wire.
    #[cfg(feature = "net")]
    pub(crate) fn from_bits(bits: u64) -> ReplyToken {
        ReplyToken(bits)
    }

    /// The generations a slot goes through before they repeat.
    pub(crate) const GENERATION_MASK: u32 = (1 << 31) - 1;

    pub(crate) fn new(index: u32, generation: u32, gather: bool) -> ReplyToken {
        ReplyToken(
            u64::from(gather) << 63
                | u64::from(generation & Self::GENERATION_MASK) << 32
                | u64::from(index),
        )
    }

    pub(crate) fn index(self) -> u32 {
        self.0 as u32
    }

    pub(crate) fn generation(self) -> u32 {
        (self.0 >> 32) as u32 & Self::GENERATION_MASK
    }

    /// Whether the request went to a broadcast ID (its answers come as
    /// partials, one per machine).
    pub(crate) fn is_gather(self) -> bool {
        self.0 >> 63 != 0
    }
}

/// An answer as it travels to another machine: the token first (`repr(C)`
/// fixes the layout), so the receiver finds the awaited type by it.
#[cfg(feature = "net")]
#[repr(C)]
#[derive(Compact)]
pub(crate) struct WireAnswer<T> {
    pub(crate) token: u64,
    pub(crate) answer: T,
}

/// A machine's partial of a request to a broadcast ID (see
/// [`crate::reply`]) as it travels to the asker: every answer of its
/// instances.
#[cfg(feature = "net")]
#[repr(C)]
#[derive(Compact)]
pub(crate) struct WirePartial<T> {
    pub(crate) token: u64,
    pub(crate) answers: compact::CVec<T>,
}

/// A failed request as it travels to another machine (see
/// [`WireAnswer`]): the reason is 0 no reply, 1 no recipient, 2 handler
/// panicked, 3 system panicked.
#[cfg(feature = "net")]
#[repr(C)]
#[derive(Compact)]
pub(crate) struct WireFailure {
    pub(crate) token: u64,
    pub(crate) reason: u8,
}

/// The address a handler sends its answer to; part of a request message.
#[derive(Compact)]
pub struct ReplyTo<T: 'static> {
    token: ReplyToken,
    machine: MachineID,
    _value: PhantomData<T>,
}

impl<T: 'static> Clone for ReplyTo<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T: 'static> Copy for ReplyTo<T> {}

impl<T: 'static> ReplyTo<T> {
    pub(crate) fn token(self) -> (ReplyToken, MachineID) {
        (self.token, self.machine)
    }
}

impl<T: 'static> std::fmt::Debug for ReplyTo<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ReplyTo({:#x}@{})", self.token.0, self.machine.0)
    }
}

/// The answer to a request: a `Future` of `Result<T, ReplyError>`.
///
/// Await it from any executor, or drive it with
/// [`ActorSystem::block_on`](crate::ActorSystem::block_on). Inside handlers,
/// don't wait: [`then_send`](Self::then_send) its answer on to an actor.
/// A request to a broadcast ID has many answers: [`reduce`](Self::reduce)
/// or [`collect`](Self::collect) them.
#[must_use = "a Reply does nothing unless awaited or driven with block_on"]
pub struct Reply<T> {
    replies: Arc<Replies>,
    token: ReplyToken,
    _value: PhantomData<fn() -> T>,
}

impl<T: 'static> Future for Reply<T> {
    type Output = Result<T, ReplyError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if self.token.is_gather() {
            return Poll::Ready(Err(ReplyError::Broadcast));
        }
        self.replies.poll::<T>(self.token, cx).map(|answer| {
            answer.map(|answer| match answer {
                Answers::One(answer) => answer,
                Answers::All(_) => unreachable!("a request to one instance"),
            })
        })
    }
}

impl<T: Compact + Send + 'static> Reply<T> {
    /// Every answer: of each instance the request reached if it went to a
    /// broadcast ID (in machine order, and on each machine in shard and
    /// instance order), else the one answer.
    /// Into any collection, like `Iterator::collect`:
    /// `.collect::<Vec<_>>()`, a `HashSet`, a `BTreeMap` of pairs.
    pub fn collect<C: FromIterator<T>>(self) -> Collect<T, C> {
        Collect {
            reply: self,
            _into: PhantomData,
        }
    }

    /// Folds every answer (see [`collect`](Self::collect)) into `init`
    /// with `f`, e.g. `.reduce(0, |sum, n| sum + n)`.
    pub fn reduce<R, F: FnMut(R, T) -> R>(self, init: R, f: F) -> Reduce<T, R, F> {
        Reduce {
            reply: self,
            fold: Some((init, f)),
        }
    }

    /// Times the request out `turns` turns after the current one (instead
    /// of after [`Config::request_timeout_turns`](crate::Config::request_timeout_turns);
    /// 0: never). The `Reply` then resolves to [`ReplyError::TimedOut`].
    pub fn timeout(self, turns: u64, world: &World) -> Self {
        self.replies
            .set_timeout(self.token, world.current_turn(), turns);
        self
    }

    /// Sends `message` to `recipient` once the answer is there, with the
    /// answer (or the error) put into it by [`Continue::answered`]: how a
    /// handler asks without waiting. The pending message is data in the
    /// system's reply table, like a timer's, not a closure. An actor
    /// written with `#[kay::actor]` handles it with a `#[message]` method
    /// (`#[message] fn counted(&mut self, m: &Counted, world: &mut World)`);
    /// below, without the macros.
    ///
    /// ```
    /// use kay::{Actor, ActorSystem, ClassSetup, Compact, Config, Continue, ReplyError, ReplyTo, World};
    ///
    /// kay::typed_id!(pub CounterID);
    /// kay::typed_id!(pub AuditorID);
    ///
    /// #[derive(Compact, Clone)]
    /// pub struct Counter { id: CounterID, count: u32 }
    /// #[derive(Compact, Clone)]
    /// pub struct Count { reply: ReplyTo<u32> }
    /// impl kay::Request for Count {
    ///     type Answer = u32;
    ///     fn reply_to(&self) -> ReplyTo<u32> { self.reply }
    /// }
    ///
    /// #[derive(Compact, Clone)]
    /// pub struct Auditor { id: AuditorID, seen: Option<u32> }
    /// /// Asks the counter for its count ...
    /// #[derive(Compact, Clone)]
    /// pub struct Audit { counter: CounterID }
    /// /// ... and gets it in this message: the continuation.
    /// #[derive(Compact, Clone)]
    /// pub struct Counted { count: Option<u32> }
    /// impl Continue<u32> for Counted {
    ///     fn answered(&mut self, answer: Result<u32, ReplyError>) {
    ///         self.count = answer.ok();
    ///     }
    /// }
    ///
    /// impl Actor for Counter {
    ///     type ID = CounterID;
    ///     fn id(&self) -> CounterID { self.id }
    ///     fn setup(class: &mut ClassSetup<Self>) {
    ///         class
    ///             .spawner(|id, count: &u32, _: &mut World| Counter { id, count: *count })
    ///             .request_handler(|c: &mut Counter, m: &Count, world: &mut World| {
    ///                 world.reply(m.reply, c.count)
    ///             });
    ///     }
    /// }
    /// impl Actor for Auditor {
    ///     type ID = AuditorID;
    ///     fn id(&self) -> AuditorID { self.id }
    ///     fn setup(class: &mut ClassSetup<Self>) {
    ///         class
    ///             .spawner(|id, _: &(), _: &mut World| Auditor { id, seen: None })
    ///             .handler(|a: &mut Auditor, m: &Audit, world: &mut World| {
    ///                 let (reply_to, reply) = world.request_to::<u32>(m.counter);
    ///                 world.send(m.counter, Count { reply: reply_to });
    ///                 reply.then_send(a.id, Counted { count: None }, world);
    ///             })
    ///             .handler(|a: &mut Auditor, m: &Counted, _: &mut World| a.seen = m.count);
    ///     }
    /// }
    ///
    /// let mut system = ActorSystem::new(Config::default());
    /// system.register::<Counter>();
    /// system.register::<Auditor>();
    /// let mut world = system.world();
    /// let counter = world.spawn::<Counter, _>(7u32);
    /// let auditor = world.spawn::<Auditor, _>(());
    /// world.send(auditor, Audit { counter });
    /// system.process_all_messages();
    /// assert_eq!(system.with_instances::<Auditor, _>(|a| a.seen), vec![Some(7)]);
    /// ```
    pub fn then_send<M: Continue<T>>(self, recipient: impl TypedID, message: M, world: &mut World) {
        crate::actor::refuse_process_local::<M>();
        world.shared.check_continuation::<T, M>();
        let next = Box::new(Next::<T, M> {
            recipient: recipient.as_raw(),
            message: crate::world::compacted_message(message),
            _answer: PhantomData,
        });
        // The slot now belongs to the continuation: dropping this `Reply`
        // leaves it alone (`abandon` ignores a continued slot, and one
        // resolved already was freed).
        let resolved = self.replies.continue_with(self.token, next);
        world.send_resolved(resolved);
    }
}

/// A message that takes the answer to a request (see [`Reply::then_send`]).
pub trait Continue<T>: crate::Message {
    /// Puts the answer (or why there is none) into the message.
    fn answered(&mut self, answer: Result<T, ReplyError>);
}

/// A pending [`Reply::then_send`].
struct Next<T, M: crate::Message> {
    recipient: RawID,
    message: compact::Compacted<M>,
    _answer: PhantomData<fn() -> T>,
}

impl<T: 'static, M: Continue<T>> Continuation for Next<T, M> {
    fn send(
        self: Box<Self>,
        world: &mut World,
        answer: Result<Box<dyn std::any::Any>, ReplyError>,
    ) {
        let mut message = self.message.into_inner();
        message.answered(answer.map(|value| {
            *value
                .downcast::<T>()
                .expect("an answer of the requested type")
        }));
        world.send(self.recipient, message);
    }

    fn message_type(&self) -> std::any::TypeId {
        std::any::TypeId::of::<M>()
    }

    fn names(&self) -> (&'static str, &'static str) {
        (std::any::type_name::<M>(), std::any::type_name::<T>())
    }

    fn parts(&self) -> (RawID, &[u8], usize) {
        (
            self.recipient,
            self.message.as_bytes(),
            self.message.origin(),
        )
    }
}

/// The kind of continuations that put answers `T` into messages `M` (see
/// [`ActorSystem::register_continuation`](crate::ActorSystem::register_continuation)).
pub(crate) fn continuation_kind<T: Compact + Send + 'static, M: Continue<T>>() -> ContinuationKind {
    ContinuationKind::new::<T, M>(|recipient, bytes, origin| {
        Ok(Box::new(Next::<T, M> {
            recipient,
            message: compact::Compacted::<M>::from_bytes(bytes, origin)?,
            _answer: PhantomData,
        }))
    })
}

/// Every answer to a request (see [`Reply::collect`]).
#[must_use = "a Collect does nothing unless awaited or driven with block_on"]
pub struct Collect<T, C> {
    reply: Reply<T>,
    _into: PhantomData<fn() -> C>,
}

impl<T: 'static, C: FromIterator<T>> Future for Collect<T, C> {
    type Output = Result<C, ReplyError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let reply = &self.reply;
        reply.replies.poll::<T>(reply.token, cx).map(|answers| {
            answers.map(|answers| match answers {
                Answers::One(answer) => std::iter::once(answer).collect(),
                Answers::All(answers) => answers.into_iter().collect(),
            })
        })
    }
}

// Nothing of a `Reduce` is pinned: its fold is moved out once, its reply
// used by reference.
impl<T, R, F> Unpin for Reduce<T, R, F> {}

/// The answers to a request folded into one value (see [`Reply::reduce`]).
#[must_use = "a Reduce does nothing unless awaited or driven with block_on"]
pub struct Reduce<T, R, F> {
    reply: Reply<T>,
    fold: Option<(R, F)>,
}

impl<T: 'static, R, F: FnMut(R, T) -> R> Future for Reduce<T, R, F> {
    type Output = Result<R, ReplyError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let answers = std::task::ready!(this.reply.replies.poll::<T>(this.reply.token, cx));
        let (init, mut f) = this.fold.take().expect("polled after completion");
        Poll::Ready(answers.map(|answers| match answers {
            Answers::One(answer) => f(init, answer),
            Answers::All(answers) => answers.into_iter().fold(init, f),
        }))
    }
}

impl<T> Drop for Reply<T> {
    fn drop(&mut self) {
        self.replies.abandon(self.token);
    }
}
