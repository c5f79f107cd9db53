//! Timers in simulation time: a message sent after `n` turns, or every `n`
//! turns until cancelled.
//!
//! Time in kay is the [turn](crate::ActorSystem::turn). A timer set while
//! turn `T` runs (or between turn `T` and the next, from outside handlers)
//! with [`World::send_after`]`(n, ..)` delivers its message at the start of
//! turn `T + n`, before that turn's first message cycle, as if outside code
//! had sent it then; [`World::send_every`]`(n, ..)` delivers it at the start
//! of turns `T + n`, `T + 2n`, … until [`World::cancel_timer`].
//!
//! # Determinism
//! Timers fire on the same turn and in the same order on any thread count,
//! and in lockstep runs on any machine: a handler's timer operations (sets
//! and cancels) wait in its shard's world until the end of the message
//! cycle, when the system applies them in global shard order (each shard's
//! in the order its handlers made them), after those made from outside
//! handlers since the last cycle. Timers that are due on the same turn fire
//! in the order they were set (a repeating timer counts as set again each
//! time it fires). A [`TimerID`] names its timer by the sender lane that set
//! it and a count in that lane, so IDs are deterministic too.
//!
//! # State
//! Timers are data the system owns: the recipient, the message in compact
//! form, the turn it is due and its period, not closures. A cancelled timer is forgotten; cancelling one that fired
//! (once) or was never set does nothing. Timers are local to the machine
//! that set them (their messages may go to any machine).

use std::collections::BTreeMap;

use compact::{Compact, Compacted};
use rustc_hash::FxHashMap;

use crate::actor::Message;
use crate::class::lanes::SenderLane;
use crate::id::{RawID, TypedID};
use crate::sync::Unpoisoned;
use crate::world::World;

/// Names a timer of its system (see [`World::send_every`]), to cancel it.
#[derive(Compact, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct TimerID(u64);

impl TimerID {
    /// The timer number `count` of sender lane `lane`.
    fn new(lane: SenderLane, count: u64) -> TimerID {
        TimerID(u64::from(lane.get()) << 48 | (count & ((1 << 48) - 1)))
    }
}

/// A change to the system's timers, made by a world and applied by the
/// system (see the module docs).
pub(crate) enum TimerOp {
    Set(Timer),
    Cancel(TimerID),
}

/// A timer as the system keeps it.
pub(crate) struct Timer {
    id: TimerID,
    /// The turn at whose start it fires next.
    due: u64,
    /// 0 for a timer that fires once, else the turns between firings.
    every: u64,
    recipient: RawID,
    message: Box<dyn TimerMessage>,
}

/// A timer's message in compact form, sent again each time it fires.
pub(crate) trait TimerMessage: Send {
    fn send(&self, world: &mut World, recipient: RawID);
    /// Its message type (a snapshot records it by message id).
    fn message_type(&self) -> std::any::TypeId;
    /// Its compacted bytes and the address their pointers assume.
    fn bytes(&self) -> (&[u8], usize);
    /// Writes a copy of it as a record for `recipient` into `lane` (a
    /// snapshot's waiting message, loaded); returns whether the lane's
    /// pending flag was just raised.
    ///
    /// # Safety
    /// Between message cycles: no other writer of `lane` runs.
    unsafe fn write_record(
        &self,
        lane: &crate::class::lanes::Lane,
        message_id: crate::registry::MessageID,
        recipient: RawID,
    ) -> bool;
}

impl<M: Message> TimerMessage for Compacted<M> {
    fn send(&self, world: &mut World, recipient: RawID) {
        world.send_copy(recipient, self);
    }
    fn message_type(&self) -> std::any::TypeId {
        std::any::TypeId::of::<M>()
    }
    fn bytes(&self) -> (&[u8], usize) {
        (self.as_bytes(), self.origin())
    }
    unsafe fn write_record(
        &self,
        lane: &crate::class::lanes::Lane,
        message_id: crate::registry::MessageID,
        recipient: RawID,
    ) -> bool {
        let source = (&**self as *const M).cast_mut();
        let size = crate::world::route::message_size(&**self);
        // SAFETY: `source` is a valid, compact `M` (copying leaves it
        // intact) of `size` record bytes; the caller is the lane's only
        // writer.
        unsafe { crate::world::route::write_compacted(lane, message_id, recipient, source, size) }
    }
}

/// Makes a timer's message of one type from a snapshot's bytes, validated
/// (registered for every message type, by message id).
pub(crate) type RestoreTimerMessage =
    fn(&[u8], usize) -> Result<Box<dyn TimerMessage>, compact::ValidationError>;

/// [`RestoreTimerMessage`] for `M`.
pub(crate) fn restore_timer_message<M: Message>(
    bytes: &[u8],
    origin: usize,
) -> Result<Box<dyn TimerMessage>, compact::ValidationError> {
    Ok(Box::new(Compacted::<M>::from_bytes(bytes, origin)?))
}

impl World {
    /// Sends `message` to `recipient` at the start of the turn `turns`
    /// turns from now (at least 1: the next turn); see [`crate::timer`].
    /// Returns the timer's ID, to cancel it before it fires.
    pub fn send_after<M: Message>(
        &mut self,
        turns: u64,
        recipient: impl TypedID,
        message: M,
    ) -> TimerID {
        self.set_timer(turns, 0, recipient.as_raw(), message)
    }

    /// Sends `message` to `recipient` every `turns` turns (at least 1),
    /// starting `turns` turns from now, until [`cancel_timer`](Self::cancel_timer);
    /// see [`crate::timer`].
    pub fn send_every<M: Message>(
        &mut self,
        turns: u64,
        recipient: impl TypedID,
        message: M,
    ) -> TimerID {
        let turns = turns.max(1);
        self.set_timer(turns, turns, recipient.as_raw(), message)
    }

    /// Runs `sends` with every message it sends (through `self`) delayed
    /// by `turns` turns, as with [`send_after`](Self::send_after): the way
    /// to time the sends of the ID methods `#[kay::actor]` generates, e.g.
    /// `world.after(3, |world| signal.switch(world))`. Returns the timers,
    /// one per message sent. (Spawns inside are not delayed.)
    pub fn after(&mut self, turns: u64, sends: impl FnOnce(&mut World)) -> Vec<TimerID> {
        self.delayed_scope(turns.max(1), 0, sends)
    }

    /// Like [`after`](Self::after), but every message sent inside is sent
    /// again every `turns` turns, as with [`send_every`](Self::send_every),
    /// until its timer is cancelled.
    pub fn every(&mut self, turns: u64, sends: impl FnOnce(&mut World)) -> Vec<TimerID> {
        let turns = turns.max(1);
        self.delayed_scope(turns, turns, sends)
    }

    fn delayed_scope(
        &mut self,
        turns: u64,
        every: u64,
        sends: impl FnOnce(&mut World),
    ) -> Vec<TimerID> {
        let outer = (self.delay, self.home, std::mem::take(&mut self.delayed));
        self.delay = Some((turns, every));
        self.home = u16::MAX;
        // Restored also if `sends` panics.
        struct Restore<'w> {
            world: &'w mut World,
            outer: Option<Scope>,
        }
        impl Drop for Restore<'_> {
            fn drop(&mut self) {
                if let Some((delay, home, delayed)) = self.outer.take() {
                    self.world.delay = delay;
                    self.world.home = home;
                    self.world.delayed = delayed;
                }
            }
        }
        let restore = Restore {
            world: self,
            outer: Some(outer),
        };
        sends(restore.world);
        std::mem::take(&mut restore.world.delayed)
    }

    /// A send inside [`after`](Self::after) or [`every`](Self::every).
    pub(crate) fn send_delayed<M: Message>(&mut self, recipient: RawID, message: M) {
        let (turns, every) = self.delay.expect("inside World::after");
        let id = self.set_timer(turns, every, recipient, message);
        self.delayed.push(id);
    }

    /// Cancels a timer: it does not fire from the next turn on. Cancelling
    /// a timer that already fired for the last time, or of another system,
    /// does nothing.
    pub fn cancel_timer(&mut self, timer: TimerID) {
        self.timer_op(TimerOp::Cancel(timer));
    }

    fn set_timer<M: Message>(
        &mut self,
        turns: u64,
        every: u64,
        recipient: RawID,
        message: M,
    ) -> TimerID {
        crate::actor::refuse_process_local::<M>();
        let compacted = crate::world::compacted_message(message);
        self.set_timer_compacted(turns, every, recipient, compacted)
    }

    /// Sets a timer for a message compacted already.
    pub(crate) fn set_timer_compacted<M: Message>(
        &mut self,
        turns: u64,
        every: u64,
        recipient: RawID,
        compacted: Compacted<M>,
    ) -> TimerID {
        let id = TimerID::new(self.lane, self.next_timer_count());
        let due = self
            .shared
            .turn
            .load(std::sync::atomic::Ordering::Relaxed)
            .saturating_add(turns.max(1));
        self.timer_op(TimerOp::Set(Timer {
            id,
            due,
            every,
            recipient,
            message: Box::new(compacted),
        }));
        id
    }

    /// The next count for a timer of this world's lane.
    fn next_timer_count(&mut self) -> u64 {
        if self.lane == SenderLane::OUTSIDE {
            self.shared
                .outside_timer_count
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        } else {
            self.timer_count += 1;
            self.timer_count
        }
    }

    fn timer_op(&mut self, op: TimerOp) {
        if self.lane == SenderLane::OUTSIDE {
            self.shared.outside_timer_ops.locked().push(op);
        } else {
            self.timer_ops.push(op);
            self.after_cycle = true;
        }
    }
}

/// What a world's [`World::after`] scope changes: its delay, its home
/// machine, and the timers its sends became.
type Scope = (Option<(u64, u64)>, u16, Vec<TimerID>);

/// The system's timers, by the turn they are due.
#[derive(Default)]
pub(crate) struct Timers {
    /// By (due turn, order set): firing order.
    queue: BTreeMap<(u64, u64), Timer>,
    /// Where each pending timer is in `queue`.
    by_id: FxHashMap<TimerID, (u64, u64)>,
    /// How many timers were set (and set again, when repeating).
    set: u64,
}

impl Timers {
    /// Applies `ops`, in order.
    pub(crate) fn apply(&mut self, ops: impl IntoIterator<Item = TimerOp>) {
        for op in ops {
            match op {
                TimerOp::Set(timer) => self.insert(timer),
                TimerOp::Cancel(id) => {
                    if let Some(key) = self.by_id.remove(&id) {
                        self.queue.remove(&key);
                    }
                }
            }
        }
    }

    fn insert(&mut self, timer: Timer) {
        let key = (timer.due, self.set);
        self.set += 1;
        self.by_id.insert(timer.id, key);
        self.queue.insert(key, timer);
    }

    /// Sends the messages of the timers due at turn `turn` through `world`
    /// (an outside world), in order; repeating ones are set again.
    pub(crate) fn fire(&mut self, turn: u64, world: &mut World) {
        while let Some(entry) = self.queue.first_entry() {
            if entry.key().0 > turn {
                break;
            }
            let mut timer = entry.remove();
            timer.message.send(world, timer.recipient);
            if timer.every == 0 {
                self.by_id.remove(&timer.id);
            } else {
                timer.due = turn.saturating_add(timer.every);
                self.insert(timer);
            }
        }
    }

    /// Whether a timer is due at turn `turn`.
    #[inline]
    pub(crate) fn due(&self, turn: u64) -> bool {
        self.queue
            .first_key_value()
            .is_some_and(|(key, _)| key.0 <= turn)
    }

    /// Timers waiting to fire.
    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }

    /// Writes the timers in firing order (see `crate::persist`): id, due
    /// turn, period, recipient, message id and compacted message.
    /// `message_id` gives a message type's id; an unregistered type is an
    /// error naming it.
    pub(crate) fn encode(
        &self,
        out: &mut crate::persist::bytes::Writer,
        message_id: impl Fn(std::any::TypeId) -> Option<u16>,
    ) -> Result<(), String> {
        out.len(self.queue.len());
        for timer in self.queue.values() {
            let Some(tag) = message_id(timer.message.message_type()) else {
                return Err(format!(
                    "timer {:?} holds a message type no class registered",
                    timer.id
                ));
            };
            let (bytes, origin) = timer.message.bytes();
            out.u64(timer.id.0);
            out.u64(timer.due);
            out.u64(timer.every);
            out.u64(timer.recipient.as_u64());
            out.u16(tag);
            out.u64(origin as u64);
            out.slice(bytes);
        }
        Ok(())
    }

    /// Reads timers written by [`encode`](Self::encode), validating each
    /// message as its type (`restore` by message id).
    pub(crate) fn decode(
        input: &mut crate::persist::bytes::Reader<'_>,
        restore: impl Fn(u16) -> Option<RestoreTimerMessage>,
    ) -> Result<Timers, String> {
        let mut timers = Timers::default();
        let count = input.len(42, "the timer count")?;
        for _ in 0..count {
            let id = TimerID(input.u64("a timer id")?);
            let due = input.u64("a timer's turn")?;
            let every = input.u64("a timer's period")?;
            let recipient = RawID::from_u64(input.u64("a timer's recipient")?);
            let tag = input.u16("a timer's message id")?;
            let origin = input.u64("a timer message's origin")? as usize;
            let bytes = input.slice("a timer's message")?;
            let restore =
                restore(tag).ok_or_else(|| format!("timer {id:?}: no message type {tag}"))?;
            let message = restore(bytes, origin)
                .map_err(|e| format!("timer {id:?}: its message fails validation: {e}"))?;
            if timers.by_id.contains_key(&id) {
                return Err(format!("timer {id:?} is listed twice"));
            }
            timers.insert(Timer {
                id,
                due,
                every,
                recipient,
                message,
            });
        }
        Ok(timers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ActorSystem, Config};

    /// A period near `u64::MAX` (a snapshot may hold any) never overflows
    /// the next due turn: it saturates, and the timer does not fire again.
    #[test]
    fn a_huge_period_saturates_instead_of_overflowing() {
        let system = ActorSystem::new(Config::default());
        let mut world = system.world();
        let mut timers = Timers::default();
        timers.insert(Timer {
            id: TimerID(1),
            due: 1,
            every: u64::MAX,
            recipient: RawID::default(),
            message: Box::new(Compacted::new(7u32)),
        });
        timers.fire(5, &mut world);
        assert_eq!(timers.len(), 1);
        assert!(!timers.due(u64::MAX - 1) && timers.due(u64::MAX));
    }
}
