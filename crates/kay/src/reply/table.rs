//! The table of outstanding replies: each open request has a slot, found
//! by its token, that the answer (or an error) fills and the asker's
//! [`Reply`] future takes.
//!
//! # States of a slot
//! ```text
//!             open                      answer / last partial
//!   Free ───────────────▶ Waiting ──────────────────────────▶ Ready ──┐
//!     ▲   (a broadcast:   Gathering      fail / timeout /            │ poll takes it
//!     │    one partial    Continue ─┐    peer lost                   │ (Reply dropped:
//!     │    per machine)      │      └──────────────────────▶ Failed ─┤  freed at once)
//!     │                      │ Reply dropped                         │
//!     │                      ▼                                       │
//!     └────────────────── Abandoned ◀── answer, fail, timeout ───────┘
//! ```
//! - **Waiting**: a request to one instance; its answer makes it *Ready*.
//! - **Gathering**: a request to a broadcast ID. Every machine the
//!   broadcast reaches sends exactly one *partial* (all its instances'
//!   answers, gathered per message cycle; possibly none), so the table
//!   knows from the topology how many to expect: this machine for a local
//!   broadcast, every machine of the topology for a global one. The last
//!   partial makes it *Ready* with every answer, in machine order.
//! - **Continue**: a request asked from a handler with
//!   [`Reply::then_send`]: no future waits; the answer (or the error) goes
//!   into a message that is sent on at once, by whoever resolves the slot.
//! - **Failed**: the recipient did not exist or its handler panicked, the
//!   system was panicked, the request timed out (in turns), or the machine
//!   it went to was lost.
//! - A slot is freed when its future takes the outcome, or at once if the
//!   `Reply` was dropped (*Abandoned*); its generation then changes, so a
//!   token of the old request names nothing. Answers that come for a slot
//!   that no longer waits (late, after a timeout; for an abandoned
//!   request; or forged) are counted, not delivered.
//!
//! - A snapshot (`crate::persist`) saves every slot's generation and
//!   state and the free order; continuations with their message, outside
//!   futures' requests as *Abandoned* (the future stays behind), outcomes
//!   not taken yet as freed. An abandoned slot takes an answer of any
//!   type (a loaded one does not know its request's).
//!
//! Each operation is O(1) but [`Replies::expire`] and [`Replies::lost`],
//! which scan the slots, and only on turns when a deadline passed or a
//! machine was lost.

use std::any::{Any, TypeId};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use compact::Compact;

use super::{Reply, ReplyError, ReplyTo, ReplyToken};
use crate::id::{MachineID, RawID};
use crate::persist::bytes::{Reader, Writer};
use crate::sync::Unpoisoned;

/// An answer (a `T`) or the answers of a partial (a `Vec<T>`), boxed.
type AnyAnswer = Box<dyn Any + Send>;

/// A set of machines (by id).
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub(crate) struct Machines([u64; 4]);

impl Machines {
    fn one(machine: MachineID) -> Machines {
        let mut set = Machines::default();
        set.insert(machine);
        set
    }

    fn first(count: usize) -> Machines {
        let mut set = Machines::default();
        for m in 0..count.min(256) {
            set.insert(MachineID(m as u8));
        }
        set
    }

    fn insert(&mut self, machine: MachineID) {
        self.0[machine.0 as usize / 64] |= 1 << (machine.0 % 64);
    }

    fn remove(&mut self, machine: MachineID) -> bool {
        let (word, bit) = (machine.0 as usize / 64, 1 << (machine.0 % 64));
        let had = self.0[word] & bit != 0;
        self.0[word] &= !bit;
        had
    }

    fn contains(&self, machine: MachineID) -> bool {
        self.0[machine.0 as usize / 64] & 1 << (machine.0 % 64) != 0
    }

    fn is_empty(&self) -> bool {
        self.0 == [0; 4]
    }
}

/// A continuation ([`Reply::then_send`]): the message that takes the
/// answer, and where it goes.
pub(crate) trait Continuation: Send {
    /// Puts `answer` (a `T` of the request, boxed) or `error` into the
    /// message and sends it through `world`.
    fn send(self: Box<Self>, world: &mut crate::World, answer: Result<Box<dyn Any>, ReplyError>);
    /// The message's type (a snapshot records the continuation by it).
    fn message_type(&self) -> TypeId;
    /// The names of the message's type and of the answer's.
    fn names(&self) -> (&'static str, &'static str);
    /// Where the message goes, its compacted bytes and the address their
    /// pointers assume.
    fn parts(&self) -> (RawID, &[u8], usize);
}

/// Makes a continuation for a recipient from its message's compacted
/// bytes (written at an address), validating them.
pub(crate) type RestoreContinuation =
    fn(RawID, &[u8], usize) -> Result<Box<dyn Continuation>, compact::ValidationError>;

/// How continuations of one kind (a [`Reply::then_send`] of message `M`
/// for an answer `T`) are made again from a snapshot: see
/// `ActorSystem::register_continuation`.
#[derive(Clone, Copy)]
pub(crate) struct ContinuationKind {
    /// `M`.
    pub(crate) message: TypeId,
    /// `T`.
    pub(crate) answer: TypeId,
    /// The names of `M` and `T` (how a snapshot names the kind).
    pub(crate) message_name: &'static str,
    pub(crate) answer_name: &'static str,
    /// Makes the continuation for a recipient from the message's compacted
    /// bytes (written at an address), validating them.
    pub(crate) restore: RestoreContinuation,
    pub(crate) concat: fn(Vec<AnyAnswer>) -> AnyAnswer,
    #[cfg(feature = "net")]
    pub(crate) decode: Decode,
}

impl ContinuationKind {
    /// The kind of continuations of `M` for answers `T`, made by `restore`.
    pub(crate) fn new<T: Compact + Send + 'static, M: 'static>(
        restore: RestoreContinuation,
    ) -> ContinuationKind {
        ContinuationKind {
            message: TypeId::of::<M>(),
            answer: TypeId::of::<T>(),
            message_name: std::any::type_name::<M>(),
            answer_name: std::any::type_name::<T>(),
            restore,
            concat: concat::<T>,
            #[cfg(feature = "net")]
            decode: decode::<T>,
        }
    }
}

enum State {
    Free,
    Waiting(Option<Waker>),
    Gathering {
        waker: Option<Waker>,
        /// The machines whose partial has not come yet.
        left: Machines,
        /// The partials that came (each a `Vec<T>`), with their machine.
        parts: Vec<(MachineID, Box<dyn Any + Send>)>,
    },
    Continue(Box<dyn Continuation>),
    /// A `T` (or, gathered, a `Vec<T>`).
    Ready(Box<dyn Any + Send>),
    Failed(ReplyError),
    /// The `Reply` was dropped; an answer is discarded.
    Abandoned,
}

/// What a slot knows of its request besides its state.
struct Slot {
    generation: u32,
    state: State,
    /// The answer type: an answer of another type (a `ReplyTo` forged in a
    /// message from another machine) is discarded.
    answer: TypeId,
    /// The machine a request to one instance went to (for `lost`).
    #[cfg_attr(not(feature = "net"), allow(dead_code))]
    target: MachineID,
    /// The turn at whose end the request times out (`u64::MAX`: never).
    deadline: u64,
    /// Joins the partials of a gathered request (`Vec<T>`s) into one.
    concat: fn(Vec<AnyAnswer>) -> AnyAnswer,
    /// How the answer (or a partial) is taken from the wire.
    #[cfg(feature = "net")]
    decode: Decode,
}

/// Validates an answer that came from another machine (a compact
/// `WireAnswer<T>`, or for a gathered request a `WirePartial<T>`, written
/// at `origin`) and moves its `T` (or `Vec<T>`) onto the heap.
#[cfg(feature = "net")]
pub(crate) type Decode =
    fn(&[u8], usize, bool) -> Result<Box<dyn Any + Send>, compact::ValidationError>;

#[cfg(feature = "net")]
fn decode<T: Compact + Send + 'static>(
    bytes: &[u8],
    origin: usize,
    partial: bool,
) -> Result<Box<dyn Any + Send>, compact::ValidationError> {
    if partial {
        compact::Compacted::<super::WirePartial<T>>::from_bytes(bytes, origin)
            .map(|wire| Box::new(wire.into_inner().answers.into_vec()) as Box<dyn Any + Send>)
    } else {
        compact::Compacted::<super::WireAnswer<T>>::from_bytes(bytes, origin)
            .map(|wire| Box::new(wire.into_inner().answer) as Box<dyn Any + Send>)
    }
}

fn concat<T: Send + 'static>(parts: Vec<Box<dyn Any + Send>>) -> Box<dyn Any + Send> {
    let mut all: Vec<T> = Vec::new();
    for part in parts {
        let part = part
            .downcast::<Vec<T>>()
            .expect("partials of the awaited type");
        if all.is_empty() {
            all = *part;
        } else {
            all.extend(*part);
        }
    }
    Box::new(all)
}

/// Outstanding replies of one system.
pub(crate) struct Replies {
    inner: Mutex<Table>,
    /// The earliest deadline of any open request (`u64::MAX`: none): read
    /// without the lock at every turn's end.
    earliest: AtomicU64,
    /// The default timeout of requests, in turns (0: none).
    default_timeout: u64,
}

#[derive(Default)]
struct Table {
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// Slots waiting or gathering (what a future waits for).
    waiting: usize,
    /// Answers and partials that came when nothing waited for them.
    late: u64,
}

/// What a request got: one answer, or every answer of a gathered one.
pub(crate) enum Answers<T> {
    One(T),
    All(Vec<T>),
}

/// A request's outcome taken from its slot, and a continuation to send
/// with it (see [`Replies::answer`]).
pub(crate) type Resolved = Option<(Box<dyn Continuation>, Result<Box<dyn Any>, ReplyError>)>;

impl Table {
    fn slot(&mut self, token: ReplyToken) -> Option<&mut Slot> {
        match self.slots.get_mut(token.index() as usize) {
            Some(slot) if slot.generation == token.generation() => Some(slot),
            _ => None,
        }
    }

    fn release(&mut self, token: ReplyToken) {
        let index = token.index();
        let Some(slot) = self.slot(token) else { return };
        let was_waiting = matches!(slot.state, State::Waiting(_) | State::Gathering { .. });
        slot.state = State::Free;
        slot.generation = slot.generation.wrapping_add(1) & ReplyToken::GENERATION_MASK;
        if was_waiting {
            self.waiting -= 1;
        }
        self.free.push(index);
    }

    /// Puts `outcome` into the slot of `token` if it waits for one, and
    /// wakes its task; frees an abandoned slot; counts an outcome nobody
    /// waits for. Returns a continuation to send with the outcome.
    fn resolve(
        &mut self,
        token: ReplyToken,
        outcome: Result<Box<dyn Any + Send>, ReplyError>,
    ) -> Resolved {
        let Some(slot) = self.slot(token) else {
            // (A failure of a request nobody waits for is no late answer.)
            self.late += u64::from(outcome.is_ok());
            return None;
        };
        match &mut slot.state {
            State::Waiting(_) | State::Gathering { .. } => {
                let state = match outcome {
                    Ok(value) => State::Ready(value),
                    Err(error) => State::Failed(error),
                };
                let waker = match std::mem::replace(&mut slot.state, state) {
                    State::Waiting(waker) | State::Gathering { waker, .. } => waker,
                    _ => unreachable!(),
                };
                self.waiting -= 1;
                if let Some(waker) = waker {
                    waker.wake();
                }
                None
            }
            State::Continue(_) => {
                let State::Continue(next) = std::mem::replace(&mut slot.state, State::Free) else {
                    unreachable!()
                };
                self.release_now(token);
                Some((next, outcome.map(|value| value as Box<dyn Any>)))
            }
            State::Abandoned => {
                self.late += u64::from(outcome.is_ok());
                self.release(token);
                None
            }
            State::Free | State::Ready(_) | State::Failed(_) => {
                self.late += u64::from(outcome.is_ok());
                None
            }
        }
    }

    /// Frees the slot of `token` (whose state was taken already).
    fn release_now(&mut self, token: ReplyToken) {
        if let Some(slot) = self.slot(token) {
            slot.state = State::Free;
            slot.generation = slot.generation.wrapping_add(1) & ReplyToken::GENERATION_MASK;
            self.free.push(token.index());
        }
    }

    /// Fails every slot `fails` picks (with the error it returns).
    fn fail_where(&mut self, mut fails: impl FnMut(&Slot) -> Option<ReplyError>) -> Vec<Resolved> {
        let mut failed = Vec::new();
        for index in 0..self.slots.len() {
            let slot = &self.slots[index];
            if let Some(error) = fails(slot) {
                let token = ReplyToken::new(index as u32, slot.generation, false);
                failed.push(self.resolve(token, Err(error)));
            }
        }
        failed
    }
}

impl Replies {
    /// A table whose requests time out after `default_timeout` turns (0:
    /// never).
    pub(crate) fn new(default_timeout: u64) -> Replies {
        Replies {
            inner: Mutex::default(),
            earliest: AtomicU64::new(u64::MAX),
            default_timeout,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.inner.locked()
    }

    /// A new outstanding reply for a request to `recipient`, sent in turn
    /// `turn` from machine `me`, in a topology of `machines` machines.
    pub(crate) fn open<T: Compact + Send>(
        self: &Arc<Self>,
        me: MachineID,
        recipient: RawID,
        turn: u64,
        machines: usize,
    ) -> (ReplyTo<T>, Reply<T>) {
        let gather = recipient.is_broadcast();
        let deadline = match self.default_timeout {
            0 => u64::MAX,
            timeout => turn.saturating_add(timeout),
        };
        let state = if gather {
            State::Gathering {
                waker: None,
                left: if recipient.is_global_broadcast() {
                    Machines::first(machines.max(1))
                } else {
                    Machines::one(recipient.machine)
                },
                parts: Vec::new(),
            }
        } else {
            State::Waiting(None)
        };
        let mut table = self.lock();
        let slot = Slot {
            generation: 0,
            state,
            answer: TypeId::of::<T>(),
            target: recipient.machine,
            deadline,
            concat: concat::<T>,
            #[cfg(feature = "net")]
            decode: decode::<T>,
        };
        let index = match table.free.pop() {
            Some(index) => {
                let generation = table.slots[index as usize].generation;
                table.slots[index as usize] = Slot { generation, ..slot };
                index
            }
            None => {
                table.slots.push(slot);
                (table.slots.len() - 1) as u32
            }
        };
        table.waiting += 1;
        let token = ReplyToken::new(index, table.slots[index as usize].generation, gather);
        drop(table);
        self.earliest.fetch_min(deadline, Relaxed);
        let reply = Reply {
            replies: Arc::clone(self),
            token,
            _value: PhantomData,
        };
        (
            ReplyTo {
                token,
                machine: me,
                _value: PhantomData,
            },
            reply,
        )
    }

    /// Delivers an answer (ignored, and counted, if nothing waits for it,
    /// or if it is of another type than the awaited one). Returns a
    /// continuation to send it with.
    pub(crate) fn answer<T: Compact + Send>(&self, to: ReplyTo<T>, value: T) -> Resolved {
        let mut table = self.lock();
        match table.slot(to.token) {
            // (An abandoned request takes any answer: one loaded from a
            // snapshot does not know its type.)
            Some(slot)
                if slot.answer == TypeId::of::<T>() || matches!(slot.state, State::Abandoned) =>
            {
                if matches!(slot.state, State::Gathering { .. }) {
                    // A single answer for a broadcast: only partials count.
                    table.late += 1;
                    return None;
                }
                table.resolve(to.token, Ok(Box::new(value)))
            }
            _ => {
                table.late += 1;
                None
            }
        }
    }

    /// Delivers machine `from`'s partial (a `Vec<T>`) of a gathered
    /// request. Returns a continuation to send the gathered answers with.
    pub(crate) fn partial(
        &self,
        token: ReplyToken,
        answer: TypeId,
        from: MachineID,
        part: Box<dyn Any + Send>,
    ) -> Resolved {
        let mut table = self.lock();
        let Some(slot) = table.slot(token) else {
            table.late += 1;
            return None;
        };
        let concat = slot.concat;
        match &mut slot.state {
            State::Gathering { left, parts, .. }
                if slot.answer == answer && left.contains(from) =>
            {
                left.remove(from);
                parts.push((from, part));
                if !left.is_empty() {
                    return None;
                }
                let mut parts = std::mem::take(parts);
                parts.sort_by_key(|(machine, _)| machine.0);
                let all = concat(parts.into_iter().map(|(_, part)| part).collect());
                table.resolve(token, Ok(all))
            }
            State::Abandoned => {
                table.release(token);
                None
            }
            _ => {
                table.late += 1;
                None
            }
        }
    }

    /// Takes an answer (or a partial) to `token` that came from another
    /// machine (`bytes`, written at `origin`): `Ok(None)` if nobody waits
    /// for it any more (counted), an error if it is not a valid answer of
    /// the awaited type.
    #[cfg(feature = "net")]
    pub(crate) fn decode(
        &self,
        token: ReplyToken,
        bytes: &[u8],
        origin: usize,
        partial: bool,
    ) -> Result<Option<(TypeId, AnyAnswer)>, compact::ValidationError> {
        let mut table = self.lock();
        let (waits, abandoned) = match table.slot(token) {
            Some(slot) => match slot.state {
                State::Waiting(_) | State::Continue(_) if !partial => {
                    (Some((slot.decode, slot.answer)), false)
                }
                State::Gathering { .. } if partial => (Some((slot.decode, slot.answer)), false),
                State::Abandoned => (None, true),
                _ => (None, false),
            },
            None => (None, false),
        };
        let Some((decode, answer)) = waits else {
            table.late += 1;
            if abandoned {
                // Its answer came: the slot is free again (as for a local
                // answer).
                table.release(token);
            }
            return Ok(None);
        };
        drop(table);
        decode(bytes, origin, partial).map(|value| Some((answer, value)))
    }

    /// Delivers an answer taken with [`decode`](Self::decode).
    #[cfg(feature = "net")]
    pub(crate) fn answer_boxed(&self, token: ReplyToken, value: Box<dyn Any + Send>) -> Resolved {
        self.lock().resolve(token, Ok(value))
    }

    /// Resolves the reply `token` with `error` (if anyone still waits).
    pub(crate) fn fail(&self, token: ReplyToken, error: ReplyError) -> Resolved {
        self.lock().resolve(token, Err(error))
    }

    /// Fails the requests whose deadline is turn `turn` or earlier with
    /// [`ReplyError::TimedOut`]. Cheap unless one is due.
    pub(crate) fn expire(&self, turn: u64) -> Vec<Resolved> {
        if self.earliest.load(Relaxed) > turn {
            return Vec::new();
        }
        let mut table = self.lock();
        let failed = table.fail_where(|slot| {
            (slot.deadline <= turn && waits(&slot.state)).then_some(ReplyError::TimedOut {
                turn: slot.deadline,
            })
        });
        let earliest = (table.slots.iter())
            .filter(|slot| waits(&slot.state))
            .map(|slot| slot.deadline)
            .min()
            .unwrap_or(u64::MAX);
        self.earliest.store(earliest, Relaxed);
        failed
    }

    /// Fails the requests that wait for machine `machine` (a request to one
    /// of its instances, or a gathered one still missing its partial) with
    /// [`ReplyError::PeerLost`].
    #[cfg(feature = "net")]
    pub(crate) fn lost(&self, machine: MachineID) -> Vec<Resolved> {
        let mut table = self.lock();
        table.fail_where(|slot| {
            let waits_for_it = match &slot.state {
                State::Waiting(_) | State::Continue(_) => slot.target == machine,
                State::Gathering { left, .. } => left.contains(machine),
                _ => false,
            };
            waits_for_it.then_some(ReplyError::PeerLost { machine })
        })
    }

    /// Changes the timeout of the request `token` to `turns` turns after
    /// turn `turn` (0: never).
    pub(crate) fn set_timeout(&self, token: ReplyToken, turn: u64, turns: u64) {
        let deadline = match turns {
            0 => u64::MAX,
            turns => turn.saturating_add(turns),
        };
        if let Some(slot) = self.lock().slot(token) {
            slot.deadline = deadline;
        }
        self.earliest.fetch_min(deadline, Relaxed);
    }

    /// Makes the request `token` a continuation: its outcome goes into
    /// `next` (see [`Reply::then_send`]). Returns `next` back with the
    /// outcome if the request is resolved already.
    pub(crate) fn continue_with(&self, token: ReplyToken, next: Box<dyn Continuation>) -> Resolved {
        let mut table = self.lock();
        let Some(slot) = table.slot(token) else {
            return Some((next, Err(ReplyError::NoReply)));
        };
        match std::mem::replace(&mut slot.state, State::Free) {
            State::Waiting(_) => {
                slot.state = State::Continue(next);
                table.waiting -= 1;
                None
            }
            State::Ready(value) => {
                table.release_now(token);
                Some((next, Ok(value as Box<dyn Any>)))
            }
            State::Failed(error) => {
                table.release_now(token);
                Some((next, Err(error)))
            }
            other => {
                // Gathering (not for `then_send`) or taken: put it back.
                slot.state = other;
                Some((next, Err(ReplyError::NoReply)))
            }
        }
    }

    /// Polls the reply with `token` for its answer: a `T`, or every `T` of
    /// a gathered request (see [`Reply`]'s `Future` impl).
    pub(crate) fn poll<T: 'static>(
        &self,
        token: ReplyToken,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Answers<T>, ReplyError>> {
        let mut table = self.lock();
        let Some(slot) = table.slot(token) else {
            return Poll::Ready(Err(ReplyError::NoReply));
        };
        match &mut slot.state {
            State::Waiting(waker) | State::Gathering { waker, .. } => {
                *waker = Some(cx.waker().clone());
                Poll::Pending
            }
            State::Ready(_) | State::Failed(_) => {
                let taken = std::mem::replace(&mut slot.state, State::Free);
                table.release(token);
                Poll::Ready(match taken {
                    State::Ready(value) if token.is_gather() => Ok(Answers::All(
                        *value
                            .downcast::<Vec<T>>()
                            .expect("answers of the requested type"),
                    )),
                    State::Ready(value) => Ok(Answers::One(
                        *value
                            .downcast::<T>()
                            .expect("a reply of the requested type"),
                    )),
                    State::Failed(error) => Err(error),
                    _ => unreachable!(),
                })
            }
            State::Continue(_) | State::Abandoned | State::Free => {
                Poll::Ready(Err(ReplyError::NoReply))
            }
        }
    }

    /// The asker dropped its [`Reply`]: an answer still to come is thrown
    /// away, one that came is freed.
    pub(crate) fn abandon(&self, token: ReplyToken) {
        let mut table = self.lock();
        if let Some(slot) = table.slot(token) {
            match slot.state {
                State::Waiting(_) | State::Gathering { .. } => {
                    slot.state = State::Abandoned;
                    table.waiting -= 1;
                }
                State::Ready(_) | State::Failed(_) => table.release(token),
                State::Continue(_) | State::Abandoned | State::Free => {}
            }
        }
    }

    /// Whether any future still waits for an answer.
    pub(crate) fn any_waiting(&self) -> bool {
        self.lock().waiting > 0
    }

    /// Whether no request was ever opened (a system a snapshot may be
    /// loaded into).
    pub(crate) fn is_unused(&self) -> bool {
        self.lock().slots.is_empty()
    }

    /// Writes the table for a snapshot (see `crate::persist`): the late
    /// count, every slot's generation and state, then the free slots in
    /// the order they are reused, so that a loaded system hands out the
    /// tokens the uninterrupted one does, and a token in a message or an
    /// actor's state names the same request. A continuation is written
    /// with its kind (message and answer type names: `registered` says
    /// whether this system can make it again; one it cannot is an error
    /// naming what to register), deadline, target machine, recipient and
    /// compacted message. An outside [`Reply`] does not outlive its
    /// process: a request one waits for is written as abandoned (its
    /// answer will be discarded), an outcome none took yet as freed.
    pub(crate) fn save(
        &self,
        out: &mut Writer,
        registered: impl Fn(TypeId, TypeId) -> bool,
    ) -> Result<(), String> {
        let table = self.lock();
        let mut free = table.free.clone();
        out.u64(table.late);
        out.len(table.slots.len());
        for (index, slot) in table.slots.iter().enumerate() {
            match &slot.state {
                State::Free => {
                    out.u32(slot.generation);
                    out.u8(SAVED_FREE);
                }
                State::Ready(_) | State::Failed(_) => {
                    // As `release` would free it.
                    out.u32(slot.generation.wrapping_add(1) & ReplyToken::GENERATION_MASK);
                    out.u8(SAVED_FREE);
                    free.push(index as u32);
                }
                State::Waiting(_) | State::Gathering { .. } | State::Abandoned => {
                    out.u32(slot.generation);
                    out.u8(SAVED_ABANDONED);
                }
                State::Continue(next) => {
                    let (message, answer) = next.names();
                    if !registered(next.message_type(), slot.answer) {
                        return Err(format!(
                            "a continuation of message `{message}` for an answer `{answer}` \
                             waits (Reply::then_send); call \
                             `ActorSystem::register_continuation::<{answer}, {message}>()` \
                             at setup so that snapshots can carry it"
                        ));
                    }
                    let (recipient, bytes, origin) = next.parts();
                    out.u32(slot.generation);
                    out.u8(SAVED_CONTINUE);
                    out.u64(slot.deadline);
                    out.u8(slot.target.0);
                    out.str(message);
                    out.str(answer);
                    out.u64(recipient.as_u64());
                    out.u64(origin as u64);
                    out.slice(bytes);
                }
            }
        }
        out.u32s(&free);
        Ok(())
    }

    /// Reads a table written by [`save`](Self::save), checking it
    /// whole: generations in range, known states, every continuation of a
    /// registered kind (`kind`, by message and answer type names) with a
    /// message that validates as its type, and the free slots exactly the
    /// slots that are free, each once.
    pub(crate) fn read_saved(
        input: &mut Reader<'_>,
        kind: impl Fn(&str, &str) -> Option<ContinuationKind>,
    ) -> Result<SavedReplies, String> {
        let late = input.u64("the late answers")?;
        let count = input.len(5, "the reply slots")?;
        if count > u32::MAX as usize {
            return Err(format!("{count} reply slots"));
        }
        let mut slots = Vec::with_capacity(count);
        for index in 0..count {
            let generation = input.u32("a reply slot's generation")?;
            if generation > ReplyToken::GENERATION_MASK {
                return Err(format!(
                    "reply slot {index}: generation {generation} out of range"
                ));
            }
            let mut slot = Slot {
                generation,
                state: State::Free,
                answer: TypeId::of::<()>(),
                target: MachineID(0),
                deadline: u64::MAX,
                concat: concat::<()>,
                #[cfg(feature = "net")]
                decode: decode::<()>,
            };
            match input.u8("a reply slot's state")? {
                SAVED_FREE => {}
                SAVED_ABANDONED => slot.state = State::Abandoned,
                SAVED_CONTINUE => {
                    slot.deadline = input.u64("a continuation's deadline")?;
                    slot.target = MachineID(input.u8("a continuation's machine")?);
                    let message = input.str("a continuation's message type")?;
                    let answer = input.str("a continuation's answer type")?;
                    let recipient = RawID::from_u64(input.u64("a continuation's recipient")?);
                    let origin = input.u64("a continuation message's origin")? as usize;
                    let bytes = input.slice("a continuation's message")?;
                    let Some(kind) = kind(message, answer) else {
                        return Err(format!(
                            "reply slot {index} holds a continuation of message `{message}` for \
                             an answer `{answer}`, which is not registered here \
                             (ActorSystem::register_continuation)"
                        ));
                    };
                    let next = (kind.restore)(recipient, bytes, origin).map_err(|e| {
                        format!(
                            "reply slot {index}: the continuation's message fails validation: {e}"
                        )
                    })?;
                    slot.state = State::Continue(next);
                    slot.answer = kind.answer;
                    slot.concat = kind.concat;
                    #[cfg(feature = "net")]
                    {
                        slot.decode = kind.decode;
                    }
                }
                other => return Err(format!("reply slot {index}: unknown state {other}")),
            }
            slots.push(slot);
        }
        let free = input.u32s("the free reply slots")?;
        let mut listed = vec![false; count];
        for &index in &free {
            let i = index as usize;
            if i >= count || listed[i] || !matches!(slots[i].state, State::Free) {
                return Err(format!(
                    "reply slot {index} is listed as free, but is not, twice, or does not exist"
                ));
            }
            listed[i] = true;
        }
        let free_slots = slots
            .iter()
            .filter(|s| matches!(s.state, State::Free))
            .count();
        if free_slots != free.len() {
            return Err(format!(
                "{free_slots} reply slots are free, {} listed as free",
                free.len()
            ));
        }
        Ok(SavedReplies(Table {
            slots,
            free,
            waiting: 0,
            late,
        }))
    }

    /// Replaces the (unused) table with a snapshot's.
    pub(crate) fn install(&self, saved: SavedReplies) {
        let earliest = (saved.0.slots.iter())
            .filter(|slot| waits(&slot.state))
            .map(|slot| slot.deadline)
            .min()
            .unwrap_or(u64::MAX);
        *self.lock() = saved.0;
        self.earliest.store(earliest, Relaxed);
    }

    /// Answers and partials that came when nothing waited for them.
    pub(crate) fn late(&self) -> u64 {
        self.lock().late
    }

    /// Fails every request a future waits for (nobody is left to answer).
    pub(crate) fn fail_waiting(&self, error: ReplyError) {
        let mut table = self.lock();
        let failed = table.fail_where(|slot| {
            matches!(slot.state, State::Waiting(_) | State::Gathering { .. }).then(|| error.clone())
        });
        debug_assert!(failed.iter().all(Option::is_none));
    }
}

/// A reply table read from a snapshot (see [`Replies::read_saved`]).
pub(crate) struct SavedReplies(Table);

impl SavedReplies {
    /// How many continuations it holds.
    pub(crate) fn continuations(&self) -> usize {
        (self.0.slots.iter())
            .filter(|slot| matches!(slot.state, State::Continue(_)))
            .count()
    }
}

/// A slot's state in a snapshot.
const SAVED_FREE: u8 = 0;
const SAVED_ABANDONED: u8 = 1;
const SAVED_CONTINUE: u8 = 2;

/// Whether a request in `state` still waits for its outcome.
fn waits(state: &State) -> bool {
    matches!(
        state,
        State::Waiting(_) | State::Gathering { .. } | State::Continue(_)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::ShortTypeID;

    #[test]
    fn an_answer_of_another_type_than_awaited_is_discarded() {
        let replies = Arc::new(Replies::new(0));
        let to_one = RawID::new(ShortTypeID::new(1), 0, MachineID(0), 0);
        let (to, reply) = replies.open::<u64>(MachineID(0), to_one, 0, 1);
        // The same token, claimed to await a `u32` (as a ReplyTo forged in
        // a message from another machine would).
        let forged = ReplyTo::<u32> {
            token: to.token,
            machine: to.machine,
            _value: PhantomData,
        };
        assert!(replies.answer(forged, 7u32).is_none());
        assert!(replies.any_waiting(), "still waiting for a u64");
        assert_eq!(replies.late(), 1);
        assert!(replies.answer(to, 9u64).is_none());
        let mut cx = Context::from_waker(Waker::noop());
        let mut reply = std::pin::pin!(reply);
        assert_eq!(reply.as_mut().poll(&mut cx), Poll::Ready(Ok(9)));
    }

    /// An answer from another machine to an abandoned request frees its
    /// slot, as a local one does (it stayed taken).
    #[cfg(feature = "net")]
    #[test]
    fn a_remote_answer_to_an_abandoned_request_frees_its_slot() {
        let replies = Arc::new(Replies::new(0));
        let remote = RawID::new(ShortTypeID::new(1), 0, MachineID(1), 0);
        let (to, reply) = replies.open::<u64>(MachineID(0), remote, 0, 2);
        drop(reply);
        let wire = compact::Compacted::new(super::super::WireAnswer {
            token: to.token.bits(),
            answer: 5u64,
        });
        let (bytes, origin) = (wire.as_bytes(), wire.origin());
        assert!(matches!(
            replies.decode(to.token, bytes, origin, false),
            Ok(None)
        ));
        assert_eq!(replies.late(), 1);
        assert_eq!(
            replies.lock().free,
            vec![to.token.index()],
            "the slot is free again"
        );
    }
}

/// A snapshot of the table, loaded into a new one, behaves as the table
/// it was taken of, for any requests before and after it: the same tokens
/// handed out, the same continuations resolved with the same outcomes,
/// the same late answers (checked against the table itself, whose outside
/// futures are dropped at the snapshot as a loaded system has none).
#[cfg(test)]
mod snapshot_model {
    use super::*;
    use crate::id::ShortTypeID;
    use proptest::prelude::*;

    /// A continuation that only carries a number.
    struct Note([u8; 4]);

    impl Continuation for Note {
        fn send(self: Box<Self>, _: &mut crate::World, _: Result<Box<dyn Any>, ReplyError>) {
            unreachable!("not sent in this test")
        }
        fn message_type(&self) -> TypeId {
            TypeId::of::<Note>()
        }
        fn names(&self) -> (&'static str, &'static str) {
            ("Note", "u64")
        }
        fn parts(&self) -> (RawID, &[u8], usize) {
            (RawID::default(), &self.0, 0)
        }
    }

    fn kind() -> ContinuationKind {
        ContinuationKind {
            message_name: "Note",
            ..ContinuationKind::new::<u64, Note>(|_, bytes, _| {
                Ok(Box::new(Note(bytes.try_into().expect("4 bytes"))))
            })
        }
    }

    #[derive(Clone, Debug)]
    enum Op {
        Open,
        Continue(usize),
        Drop(usize),
        Answer(usize, u64),
        Fail(usize),
        Poll(usize),
        Timeout(usize, u64),
        Expire,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => Just(Op::Open),
            2 => any::<usize>().prop_map(Op::Continue),
            1 => any::<usize>().prop_map(Op::Drop),
            3 => (any::<usize>(), any::<u64>()).prop_map(|(i, v)| Op::Answer(i, v)),
            1 => any::<usize>().prop_map(Op::Fail),
            1 => any::<usize>().prop_map(Op::Poll),
            1 => (any::<usize>(), 0..4u64).prop_map(|(i, t)| Op::Timeout(i, t)),
            1 => Just(Op::Expire),
        ]
    }

    /// A table and what the test holds of it: every request opened (its
    /// `ReplyTo`, and its future until it is continued or dropped).
    struct Side {
        replies: Arc<Replies>,
        requests: Vec<(ReplyTo<u64>, Option<Reply<u64>>)>,
        turn: u64,
        notes: u32,
    }

    fn describe(resolved: Resolved) -> String {
        match resolved {
            None => "-".to_owned(),
            Some((next, outcome)) => format!(
                "note {:?}: {:?}",
                next.parts().1,
                outcome.map(|v| *v.downcast::<u64>().expect("a u64"))
            ),
        }
    }

    impl Side {
        /// Applies `op`; says what came of it.
        fn apply(&mut self, op: &Op) -> String {
            let me = MachineID(0);
            let to_one = RawID::new(ShortTypeID::new(1), 0, me, 0);
            let n = self.requests.len();
            let pick = |i: usize| (n > 0).then(|| i % n);
            match *op {
                Op::Open => {
                    let (to, reply) = self.replies.open::<u64>(me, to_one, self.turn, 1);
                    self.requests.push((to, Some(reply)));
                    format!("open {:?}", to.token)
                }
                Op::Continue(i) => {
                    let Some(i) = pick(i) else { return "-".into() };
                    let Some(reply) = self.requests[i].1.take() else {
                        return "-".into();
                    };
                    self.notes += 1;
                    let note = Box::new(Note(self.notes.to_le_bytes()));
                    let resolved = self.replies.continue_with(reply.token, note);
                    drop(reply);
                    describe(resolved)
                }
                Op::Drop(i) => {
                    if let Some(i) = pick(i) {
                        self.requests[i].1 = None;
                    }
                    "-".into()
                }
                Op::Answer(i, value) => match pick(i) {
                    Some(i) => describe(self.replies.answer(self.requests[i].0, value)),
                    None => "-".into(),
                },
                Op::Fail(i) => match pick(i) {
                    Some(i) => describe(
                        (self.replies).fail(self.requests[i].0.token, ReplyError::NoRecipient),
                    ),
                    None => "-".into(),
                },
                Op::Poll(i) => {
                    let Some(i) = pick(i) else { return "-".into() };
                    let Some(reply) = self.requests[i].1.as_mut() else {
                        return "-".into();
                    };
                    let mut cx = Context::from_waker(Waker::noop());
                    format!("{:?}", std::pin::Pin::new(reply).poll(&mut cx))
                }
                Op::Timeout(i, turns) => {
                    if let Some(i) = pick(i) {
                        let token = self.requests[i].0.token;
                        self.replies.set_timeout(token, self.turn, turns);
                    }
                    "-".into()
                }
                Op::Expire => {
                    self.turn += 1;
                    let expired = self.replies.expire(self.turn);
                    let said: Vec<String> = expired.into_iter().map(describe).collect();
                    format!("expire {}: {said:?}", self.turn)
                }
            }
        }

        fn late(&self) -> u64 {
            self.replies.late()
        }
    }

    proptest! {
        #[test]
        fn a_loaded_table_goes_on_as_the_one_it_was_saved_of(
            before in prop::collection::vec(op(), 0..40),
            after in prop::collection::vec(op(), 0..40),
        ) {
            let mut a = Side {
                replies: Arc::new(Replies::new(0)),
                requests: Vec::new(),
                turn: 0,
                notes: 0,
            };
            for op in &before {
                a.apply(op);
            }
            let mut out = Writer::default();
            a.replies.save(&mut out, |m, t| m == TypeId::of::<Note>() && t == TypeId::of::<u64>())
                .expect("a registered kind");
            // A loaded system has no outside futures: drop them in slot
            // order (as the snapshot freed the outcomes not taken).
            let mut futures: Vec<_> = a.requests.iter_mut().filter_map(|(_, r)| r.take()).collect();
            futures.sort_by_key(|r| r.token.index());
            drop(futures);
            let mut input = Reader::new(&out.bytes);
            let saved = Replies::read_saved(&mut input, |m, t| {
                (m == "Note" && t == std::any::type_name::<u64>()).then(kind)
            })
            .expect("what was saved reads back");
            input.finish("the table").expect("all of it");
            let b_replies = Arc::new(Replies::new(0));
            b_replies.install(saved);
            let mut b = Side {
                replies: b_replies,
                requests: a.requests.iter().map(|(to, _)| (*to, None)).collect(),
                turn: a.turn,
                notes: a.notes,
            };
            prop_assert_eq!(a.late(), b.late());
            for op in &after {
                let (x, y) = (a.apply(op), b.apply(op));
                prop_assert_eq!(x, y, "after {:?}", op);
            }
            prop_assert_eq!(a.late(), b.late());
        }
    }
}
