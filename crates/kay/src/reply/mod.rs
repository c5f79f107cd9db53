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

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use compact::Compact;

mod table;

pub(crate) use table::Replies;

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

/// Names one outstanding reply in its system's table: the slot's index
/// and its generation (so a token of a slot reused since is stale).
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

    pub(crate) fn new(index: u32, generation: u32) -> ReplyToken {
        ReplyToken(u64::from(generation) << 32 | u64::from(index))
    }

    pub(crate) fn index(self) -> u32 {
        self.0 as u32
    }

    pub(crate) fn generation(self) -> u32 {
        (self.0 >> 32) as u32
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
/// don't wait: send the `ReplyTo` of a request of your own instead.
#[must_use = "a Reply does nothing unless awaited or driven with block_on"]
pub struct Reply<T> {
    replies: Arc<Replies>,
    token: ReplyToken,
    _value: PhantomData<fn() -> T>,
}

impl<T: 'static> Future for Reply<T> {
    type Output = Result<T, ReplyError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.replies.poll(self.token, cx)
    }
}

impl<T> Drop for Reply<T> {
    fn drop(&mut self) {
        self.replies.abandon(self.token);
    }
}
