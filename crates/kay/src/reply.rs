//! Requests and replies: [`Reply<T>`] futures and the [`ReplyTo<T>`] address a
//! handler answers to.
//!
//! A request is an ordinary message carrying a `ReplyTo<T>`; its handler
//! answers with [`World::reply`](crate::World::reply). The asker holds the
//! matching [`Reply<T>`], a `Future` that resolves when the answer arrives.
//! [`ActorSystem::block_on`](crate::ActorSystem::block_on) drives message
//! cycles until a future completes; if the system runs out of messages while
//! replies are still outstanding, nobody can answer them any more, and they
//! resolve to [`ReplyError::NoReply`] instead of hanging.

use std::any::Any;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use compact::Compact;

use crate::id::MachineID;

/// Why a [`Reply`] resolved without a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
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

/// The address a handler sends its answer to; part of a request message.
#[derive(Compact)]
pub struct ReplyTo<T: 'static> {
    token: u64,
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
    pub(crate) fn token(self) -> (u64, MachineID) {
        (self.token, self.machine)
    }
}

impl<T: 'static> std::fmt::Debug for ReplyTo<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ReplyTo({:#x}@{})", self.token, self.machine.0)
    }
}

enum Slot {
    Waiting(Option<Waker>),
    Ready(Box<dyn Any + Send>),
    Failed(ReplyError),
    /// The `Reply` was dropped; an answer is discarded.
    Abandoned,
    Free,
}

/// Outstanding replies of one system.
#[derive(Default)]
pub(crate) struct Replies {
    inner: Mutex<Table>,
}

#[derive(Default)]
struct Table {
    slots: Vec<(u32, Slot)>,
    free: Vec<u32>,
    waiting: usize,
}

impl Table {
    fn slot(&mut self, token: u64) -> Option<&mut Slot> {
        let (index, generation) = ((token & 0xFFFF_FFFF) as usize, (token >> 32) as u32);
        match self.slots.get_mut(index) {
            Some((g, slot)) if *g == generation => Some(slot),
            _ => None,
        }
    }

    fn release(&mut self, token: u64) {
        let index = (token & 0xFFFF_FFFF) as u32;
        let Some(slot) = self.slot(token) else { return };
        let was_waiting = matches!(slot, Slot::Waiting(_));
        *slot = Slot::Free;
        if was_waiting {
            self.waiting -= 1;
        }
        self.slots[index as usize].0 = self.slots[index as usize].0.wrapping_add(1);
        self.free.push(index);
    }
}

impl Replies {
    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new outstanding reply.
    pub(crate) fn open<T: Compact + Send>(
        self: &Arc<Self>,
        machine: MachineID,
    ) -> (ReplyTo<T>, Reply<T>) {
        let mut table = self.lock();
        let index = match table.free.pop() {
            Some(i) => i,
            None => {
                table.slots.push((0, Slot::Free));
                (table.slots.len() - 1) as u32
            }
        };
        let generation = table.slots[index as usize].0;
        table.slots[index as usize].1 = Slot::Waiting(None);
        table.waiting += 1;
        let token = u64::from(generation) << 32 | u64::from(index);
        let reply = Reply {
            replies: Arc::clone(self),
            token,
            _value: PhantomData,
        };
        (
            ReplyTo {
                token,
                machine,
                _value: PhantomData,
            },
            reply,
        )
    }

    /// Delivers an answer (ignored if nobody waits for it any more).
    pub(crate) fn answer<T: Compact + Send>(&self, to: ReplyTo<T>, value: T) {
        self.resolve(to.token, Slot::Ready(Box::new(value)));
    }

    /// Resolves the reply `token` with `error` (if anyone still waits).
    pub(crate) fn fail(&self, token: u64, error: ReplyError) {
        self.resolve(token, Slot::Failed(error));
    }

    /// Puts `outcome` (ready or failed) into the slot of `token` if it
    /// still waits, and wakes its task; frees an abandoned slot.
    fn resolve(&self, token: u64, outcome: Slot) {
        let mut table = self.lock();
        match table.slot(token) {
            Some(slot @ Slot::Waiting(_)) => {
                let Slot::Waiting(waker) = std::mem::replace(slot, outcome) else {
                    unreachable!()
                };
                table.waiting -= 1;
                drop(table);
                if let Some(waker) = waker {
                    waker.wake();
                }
            }
            Some(Slot::Abandoned) => table.release(token),
            _ => {}
        }
    }

    /// Whether any reply is still outstanding.
    pub(crate) fn any_waiting(&self) -> bool {
        self.lock().waiting > 0
    }

    /// Fails every outstanding reply (nobody is left to answer).
    pub(crate) fn fail_waiting(&self, error: ReplyError) {
        let mut table = self.lock();
        let mut wakers = Vec::new();
        let mut abandoned = Vec::new();
        for (index, (generation, slot)) in table.slots.iter_mut().enumerate() {
            match slot {
                Slot::Waiting(waker) => {
                    wakers.extend(waker.take());
                    *slot = Slot::Failed(error.clone());
                }
                Slot::Abandoned => abandoned.push(u64::from(*generation) << 32 | index as u64),
                _ => {}
            }
        }
        table.waiting = 0;
        for token in abandoned {
            table.release(token);
        }
        drop(table);
        wakers.into_iter().for_each(Waker::wake);
    }
}

/// The answer to a request: a `Future` of `Result<T, ReplyError>`.
///
/// Await it from any executor, or drive it with
/// [`ActorSystem::block_on`](crate::ActorSystem::block_on). Inside handlers,
/// don't wait: send the `ReplyTo` of a request of your own instead.
#[must_use = "a Reply does nothing unless awaited or driven with block_on"]
pub struct Reply<T> {
    replies: Arc<Replies>,
    token: u64,
    _value: PhantomData<fn() -> T>,
}

impl<T: 'static> Future for Reply<T> {
    type Output = Result<T, ReplyError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut table = self.replies.lock();
        let Some(slot) = table.slot(self.token) else {
            return Poll::Ready(Err(ReplyError::NoReply));
        };
        match slot {
            Slot::Waiting(waker) => {
                *waker = Some(cx.waker().clone());
                Poll::Pending
            }
            Slot::Ready(_) | Slot::Failed(_) => {
                let taken = std::mem::replace(slot, Slot::Free);
                table.release(self.token);
                Poll::Ready(match taken {
                    Slot::Ready(value) => Ok(*value
                        .downcast::<T>()
                        .expect("a reply of the requested type")),
                    Slot::Failed(error) => Err(error),
                    _ => unreachable!(),
                })
            }
            Slot::Abandoned | Slot::Free => Poll::Ready(Err(ReplyError::NoReply)),
        }
    }
}

impl<T> Drop for Reply<T> {
    fn drop(&mut self) {
        let mut table = self.replies.lock();
        if let Some(slot) = table.slot(self.token) {
            if let Slot::Waiting(_) = slot {
                *slot = Slot::Abandoned;
                table.waiting -= 1;
            } else if !matches!(slot, Slot::Free) {
                table.release(self.token);
            }
        }
    }
}
