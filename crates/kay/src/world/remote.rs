//! Sends to other machines (feature `net`): a message for another machine
//! goes into this world's outbox for it, which the system sends at the
//! end of the turn; messages from other machines come back in through
//! [`World::deliver_copy`].

use std::sync::atomic::Ordering::Relaxed;

use compact::Compact;

use crate::actor::{Actor, Message};
use crate::class::lanes::SenderLane;
use crate::id::{MachineID, RawID, ShortTypeID};
use crate::inbox::record::{RECORD_HEADER, SPAWN_TAG};
use crate::net::frame;
use crate::net::outbox::Outbox;
use crate::registry::{MessageID, TypeEntry};
use crate::reply::{ReplyError, ReplyToken, WireAnswer, WireFailure, WirePartial};
use crate::sync::Unpoisoned;
use crate::world::World;

use super::route::message_size;

impl World {
    /// Writes the message at `source` (of `size` record bytes) into the
    /// outbox for `machine`, or counts why not.
    ///
    /// # Safety
    /// As [`Outbox::write`]: `source` is moved in (the caller forgets it)
    /// or compact, and `size` is [`message_size`] of it.
    pub(crate) unsafe fn write_remote<M: Compact>(
        &mut self,
        machine: MachineID,
        tag: u16,
        recipient: RawID,
        source: *mut M,
        size: usize,
    ) -> bool {
        let Some(net) = self.shared.net.clone() else {
            self.to_other_machine();
            return false;
        };
        let machine = machine.0 as usize;
        if machine >= net.machines || machine == self.machine.0 as usize {
            self.to_other_machine();
            return false;
        }
        let payload = size - RECORD_HEADER;
        if payload > net.max_payload {
            net.too_large.fetch_add(1, Relaxed);
            tracing::error!(
                message = std::any::type_name::<M>(),
                bytes = payload,
                "kay net: a message of {payload} bytes does not fit in a frame of at most {} payload bytes (NetConfig::max_frame_bytes); not sent",
                net.max_payload
            );
            return false;
        }
        let write = |outboxes: &mut Vec<Outbox>| {
            if outboxes.len() < net.machines {
                outboxes.resize_with(net.machines, Outbox::default);
            }
            // SAFETY: forwarded from the caller.
            unsafe { outboxes[machine].write(tag, recipient, source, payload) };
        };
        if self.lane == SenderLane::OUTSIDE {
            write(&mut net.outside.locked());
        } else {
            write(&mut self.outboxes);
        }
        true
    }

    /// Sends `message` to `recipient` on another machine (see `send`).
    #[cold]
    #[inline(never)]
    pub(crate) fn send_remote<M: Message>(
        &mut self,
        recipient: RawID,
        message_id: MessageID,
        message: M,
    ) {
        self.send_compact(recipient.machine, message_id.0, recipient, message);
    }

    /// Copies the compact message at `source` into every other machine's
    /// outbox (a global broadcast).
    ///
    /// # Safety
    /// `source` is a valid compact `M` (copying leaves it intact).
    pub(crate) unsafe fn broadcast_remote<M: Compact>(
        &mut self,
        recipient: RawID,
        message_id: MessageID,
        source: *mut M,
    ) {
        let Some(machines) = self.shared.net.as_ref().map(|net| net.machines) else {
            return;
        };
        // SAFETY: `source` is valid (caller).
        let size = RECORD_HEADER + unsafe { (*source).total_size_bytes() };
        let me = self.machine.0 as usize;
        for machine in (0..machines).filter(|&m| m != me) {
            // SAFETY: compact: each copy leaves `source` intact (caller).
            unsafe {
                self.write_remote(
                    MachineID(machine as u8),
                    message_id.0,
                    recipient,
                    source,
                    size,
                )
            };
        }
    }

    /// Sends the answer (or failure) of a request from `machine` back to it.
    pub(crate) fn reply_remote<T: Compact + Send>(
        &mut self,
        token: ReplyToken,
        machine: MachineID,
        answer: Result<T, ReplyError>,
    ) {
        let recipient = RawID::new(ShortTypeID::new(0), 0, machine, 0);
        match answer {
            Ok(answer) => {
                let wire = WireAnswer {
                    token: token.bits(),
                    answer,
                };
                self.send_compact(machine, frame::ANSWER_TAG, recipient, wire);
            }
            Err(error) => {
                let reason: u8 = match error {
                    ReplyError::NoRecipient => 1,
                    ReplyError::HandlerPanicked => 2,
                    ReplyError::SystemPanicked => 3,
                    // (The answering side meets none of the others.)
                    _ => 0,
                };
                let wire = WireFailure {
                    token: token.bits(),
                    reason,
                };
                self.send_compact(machine, frame::FAILED_TAG, recipient, wire);
            }
        }
    }

    /// Sends this machine's partial of the gathered request `token` (see
    /// [`crate::reply`]) to the asking machine.
    pub(crate) fn send_partial<T: Compact + Send>(
        &mut self,
        token: ReplyToken,
        machine: MachineID,
        answers: Vec<T>,
    ) {
        let recipient = RawID::new(ShortTypeID::new(0), 0, machine, 0);
        let wire = WirePartial {
            token: token.bits(),
            answers: answers.into(),
        };
        self.send_compact(machine, frame::ANSWER_TAG, recipient, wire);
    }

    /// Moves `message` into the outbox for `machine` with tag `tag` (or
    /// drops it, counted, if it cannot go).
    fn send_compact<M: Compact>(
        &mut self,
        machine: MachineID,
        tag: u16,
        recipient: RawID,
        message: M,
    ) {
        let size = message_size(&message);
        let mut message = std::mem::ManuallyDrop::new(message);
        // SAFETY: moved into the outbox, or dropped below if not.
        let written = unsafe { self.write_remote(machine, tag, recipient, &mut *message, size) };
        if !written {
            // SAFETY: not moved anywhere: dropped once, here.
            unsafe { std::mem::ManuallyDrop::drop(&mut message) };
        }
    }

    /// Sends a spawn of `A` with `message` to `machine` (see `spawn_on`).
    pub(crate) fn spawn_remote<A: Actor, M: Message>(&mut self, machine: MachineID, message: M) {
        let type_id = self.type_id_of::<A>();
        let Some(message_id) = self.message_id::<M>() else {
            drop(message);
            return self.undeliverable();
        };
        let recipient = RawID::new(type_id, 0, machine, 0);
        self.send_compact(machine, message_id.0 | SPAWN_TAG, recipient, message);
    }

    /// Delivers a message received from another machine, already validated
    /// as an `M`, like [`send`](Self::send) or (`spawn`) `spawn` would.
    ///
    /// # Safety
    /// `source` is a valid compact `M` (copying leaves it intact), and
    /// `message` is `M`'s message id.
    pub(crate) unsafe fn deliver_copy<M: Compact>(
        &mut self,
        recipient: RawID,
        message: MessageID,
        spawn: bool,
        source: *mut M,
    ) {
        // SAFETY: `source` is valid (caller).
        let size = RECORD_HEADER + unsafe { (*source).total_size_bytes() };
        let Some(entry) = self.entry(recipient.type_id).cloned() else {
            return self.undeliverable();
        };
        match entry {
            TypeEntry::Class(class) if spawn => {
                let turns = &mut self.spawn_turns;
                let at = recipient.type_id.get() as usize;
                if turns.len() <= at {
                    turns.resize(at + 1, 0);
                }
                let shard = &class.shards[turns[at] as usize % class.shards.len()];
                turns[at] = turns[at].wrapping_add(1);
                let machine = self.machine;
                let lane = self.lane_into(shard);
                // SAFETY: this world is the lane's only writer (the system's
                // thread, between turns).
                let id = unsafe { class.allocate(shard, lane, machine) };
                let tag = MessageID(message.0 | SPAWN_TAG);
                // SAFETY: `source` is a compact `M` (caller), `size` its record size.
                unsafe { self.copy_into(shard, tag, id, source, size) };
            }
            TypeEntry::Class(class) if !recipient.is_broadcast() => {
                let shard = class.shard_of(recipient.instance);
                // SAFETY: `source` is a compact `M` (caller), `size` its record size.
                unsafe { self.copy_into(shard, message, recipient, source, size) };
            }
            TypeEntry::Class(class) => {
                for shard in class.shards.iter() {
                    // SAFETY: `source` is a compact `M` (caller), `size` its record size.
                    unsafe { self.copy_into(shard, message, recipient, source, size) };
                    shard.mark_broadcast();
                }
            }
            TypeEntry::Trait(t) if recipient.is_broadcast() && !spawn => {
                let implementors = t.implementors.locked().clone();
                for shard in implementors.iter().flat_map(|class| class.shards.iter()) {
                    // SAFETY: `source` is a compact `M` (caller), `size` its record size.
                    unsafe { self.copy_into(shard, message, recipient, source, size) };
                    shard.mark_broadcast();
                }
            }
            TypeEntry::Trait(_) => self.undeliverable(),
        }
    }
}
