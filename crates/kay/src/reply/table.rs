//! The table of outstanding replies: each open request has a slot, found
//! by its token, that the answer (or an error) fills and the asker's
//! [`Reply`] future takes.

use std::any::Any;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use compact::Compact;

use super::{Reply, ReplyError, ReplyTo, ReplyToken};
use crate::id::MachineID;
use crate::sync::Unpoisoned;

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
    /// The answer type each slot awaits, by slot index: an answer of
    /// another type (a `ReplyTo` forged in a message from another machine)
    /// is discarded instead of reaching the asker.
    types: Vec<std::any::TypeId>,
    free: Vec<u32>,
    waiting: usize,
    /// How each slot's answer is taken from the wire (feature `net`), by
    /// slot index.
    #[cfg(feature = "net")]
    decoders: Vec<Decode>,
}

/// Validates an answer that came from another machine (a compact
/// `WireAnswer<T>` written at `origin`) and moves its `T` onto the heap.
#[cfg(feature = "net")]
pub(crate) type Decode = fn(&[u8], usize) -> Result<Box<dyn Any + Send>, compact::ValidationError>;

#[cfg(feature = "net")]
fn decode<T: Compact + Send + 'static>(
    bytes: &[u8],
    origin: usize,
) -> Result<Box<dyn Any + Send>, compact::ValidationError> {
    compact::Compacted::<super::WireAnswer<T>>::from_bytes(bytes, origin)
        .map(|wire| Box::new(wire.into_inner().answer) as Box<dyn Any + Send>)
}

impl Table {
    fn slot(&mut self, token: ReplyToken) -> Option<&mut Slot> {
        let (index, generation) = (token.index() as usize, token.generation());
        match self.slots.get_mut(index) {
            Some((g, slot)) if *g == generation => Some(slot),
            _ => None,
        }
    }

    fn release(&mut self, token: ReplyToken) {
        let index = token.index();
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
        self.inner.locked()
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
        let at = index as usize;
        if table.types.len() <= at {
            table.types.resize(at + 1, std::any::TypeId::of::<()>());
        }
        table.types[at] = std::any::TypeId::of::<T>();
        #[cfg(feature = "net")]
        {
            let at = index as usize;
            if table.decoders.len() <= at {
                table.decoders.resize(at + 1, decode::<T>);
            }
            table.decoders[at] = decode::<T>;
        }
        let token = ReplyToken::new(index, generation);
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
    /// Answers of another type than the awaited one are discarded.
    pub(crate) fn answer<T: Compact + Send>(&self, to: ReplyTo<T>, value: T) {
        let awaited = self.lock().types.get(to.token.index() as usize).copied();
        if awaited == Some(std::any::TypeId::of::<T>()) {
            self.resolve(to.token, Slot::Ready(Box::new(value)));
        }
    }

    /// Takes an answer to `token` that came from another machine (`bytes`,
    /// written at `origin`): `Ok(None)` if nobody waits for it any more,
    /// an error if it is not a valid answer of the awaited type.
    #[cfg(feature = "net")]
    pub(crate) fn decode(
        &self,
        token: ReplyToken,
        bytes: &[u8],
        origin: usize,
    ) -> Result<Option<Box<dyn Any + Send>>, compact::ValidationError> {
        let mut table = self.lock();
        if !matches!(table.slot(token), Some(Slot::Waiting(_))) {
            return Ok(None);
        }
        let decode = table.decoders[token.index() as usize];
        drop(table);
        decode(bytes, origin).map(Some)
    }

    /// Delivers an answer taken with [`decode`](Self::decode).
    #[cfg(feature = "net")]
    pub(crate) fn answer_boxed(&self, token: ReplyToken, value: Box<dyn Any + Send>) {
        self.resolve(token, Slot::Ready(value));
    }

    /// Resolves the reply `token` with `error` (if anyone still waits).
    pub(crate) fn fail(&self, token: ReplyToken, error: ReplyError) {
        self.resolve(token, Slot::Failed(error));
    }

    /// Puts `outcome` (ready or failed) into the slot of `token` if it
    /// still waits, and wakes its task; frees an abandoned slot.
    fn resolve(&self, token: ReplyToken, outcome: Slot) {
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
    /// Polls the reply with `token` for a value of type `T` (see
    /// [`Reply`]'s `Future` impl).
    pub(crate) fn poll<T: 'static>(
        &self,
        token: ReplyToken,
        cx: &mut Context<'_>,
    ) -> Poll<Result<T, ReplyError>> {
        let mut table = self.lock();
        let Some(slot) = table.slot(token) else {
            return Poll::Ready(Err(ReplyError::NoReply));
        };
        match slot {
            Slot::Waiting(waker) => {
                *waker = Some(cx.waker().clone());
                Poll::Pending
            }
            Slot::Ready(_) | Slot::Failed(_) => {
                let taken = std::mem::replace(slot, Slot::Free);
                table.release(token);
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

    /// The asker dropped its [`Reply`]: an answer still to come is thrown
    /// away, one that came is freed.
    pub(crate) fn abandon(&self, token: ReplyToken) {
        let mut table = self.lock();
        if let Some(slot) = table.slot(token) {
            if let Slot::Waiting(_) = slot {
                *slot = Slot::Abandoned;
                table.waiting -= 1;
            } else if !matches!(slot, Slot::Free) {
                table.release(token);
            }
        }
    }

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
                Slot::Abandoned => abandoned.push(ReplyToken::new(index as u32, *generation)),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_of_another_type_than_awaited_is_discarded() {
        let replies = Arc::new(Replies::default());
        let (to, reply) = replies.open::<u64>(MachineID(0));
        // The same token, claimed to await a `u32` (as a ReplyTo forged in
        // a message from another machine would).
        let forged = ReplyTo::<u32> {
            token: to.token,
            machine: to.machine,
            _value: PhantomData,
        };
        replies.answer(forged, 7u32);
        assert!(replies.any_waiting(), "still waiting for a u64");
        replies.answer(to, 9u64);
        let mut cx = Context::from_waker(Waker::noop());
        let mut reply = std::pin::pin!(reply);
        assert_eq!(reply.as_mut().poll(&mut cx), Poll::Ready(Ok(9)));
    }
}
