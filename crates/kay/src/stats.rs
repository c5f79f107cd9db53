//! Statistics: instance counts, queue lengths, messages handled and lost.

use std::fmt;
use std::sync::atomic::Ordering;

use crate::id::ShortTypeID;
use crate::sync::Unpoisoned;

/// Why a message reached no handler: the one list of reasons, counted per
/// class and system in [`Stats`] ([`Stats::undelivered`],
/// [`ClassStats::undelivered`]). Such messages are dropped and counted,
/// never handed to anyone else.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Undelivered {
    /// No live instance holds the recipient's instance number: it died, or
    /// it was never spawned (or its spawn, from another sender, comes
    /// later).
    Gone,
    /// A live instance holds the number, with another version: the ID is
    /// stale (its instance died and the number was reused).
    Stale,
    /// The recipient's class has no handler for the message type; also a
    /// spawner message sent with `send`, and a spawn into a class without
    /// a spawner for the message.
    NoHandler,
    /// The message type has no handler in any class, or the recipient's
    /// type is not registered (or is an actor trait, addressed other than
    /// by a broadcast).
    Unknown,
    /// The recipient lives on another machine and this system is not
    /// networked.
    OtherMachine,
}

impl Undelivered {
    /// Every reason.
    pub const ALL: [Undelivered; 5] = [
        Undelivered::Gone,
        Undelivered::Stale,
        Undelivered::NoHandler,
        Undelivered::Unknown,
        Undelivered::OtherMachine,
    ];
}

/// Counters of a whole system, from [`ActorSystem::stats`](crate::ActorSystem::stats).
#[derive(Clone, Debug)]
pub struct Stats {
    /// One entry per registered class.
    pub classes: Vec<ClassStats>,
    /// Messages that could not be addressed at all: unknown recipient type,
    /// a message type without any handler, or another machine
    /// ([`Undelivered::Unknown`] and [`Undelivered::OtherMachine`]).
    pub undeliverable: u64,
    /// Of those, messages to another machine.
    pub other_machine: u64,
    /// Answers to requests that came when nothing waited for them any
    /// more: after the request timed out or its `Reply` was dropped (or
    /// forged ones); counted, not delivered.
    pub late_replies: u64,
    /// Timers waiting to fire.
    pub pending_timers: usize,
}

/// Counters of one class.
#[derive(Clone, Debug)]
pub struct ClassStats {
    /// The class's type name.
    pub name: &'static str,
    /// Its short type id.
    pub type_id: ShortTypeID,
    /// Live instances.
    pub instances: usize,
    /// Bytes of instance-store slots in use.
    pub slot_bytes: usize,
    /// Messages waiting in its inbox.
    pub queued: usize,
    /// About how many bytes its inboxes hold (chunks in use and kept for
    /// reuse; see [`Config::inbox_retain_bytes`](crate::Config::inbox_retain_bytes)).
    pub inbox_bytes: usize,
    /// Messages handled, by message type.
    pub handled: Vec<(&'static str, u64)>,
    /// Messages to an instance that does not exist: dead, never spawned, or
    /// a stale version ([`Undelivered::Gone`] and [`Undelivered::Stale`]).
    pub no_recipient: u64,
    /// Of those, messages with a stale ID ([`Undelivered::Stale`]).
    pub stale: u64,
    /// Messages of a type this class has no handler for.
    pub no_handler: u64,
    /// Messages kept (queued, not handled) because the system is panicked;
    /// handled after [`clear_panic`](crate::ActorSystem::clear_panic).
    pub kept: u64,
}

impl Stats {
    /// The counters of the class named `name` (its full type name or a suffix of it).
    pub fn class(&self, name: &str) -> Option<&ClassStats> {
        self.classes
            .iter()
            .find(|c| c.name == name || c.name.ends_with(&format!("::{name}")))
    }

    /// Messages that reached no handler for `reason`, over all classes.
    pub fn undelivered(&self, reason: Undelivered) -> u64 {
        match reason {
            Undelivered::Unknown => self.undeliverable - self.other_machine,
            Undelivered::OtherMachine => self.other_machine,
            _ => self.classes.iter().map(|c| c.undelivered(reason)).sum(),
        }
    }

    /// All messages that were sent but reached no handler (the sum over
    /// [`Undelivered::ALL`]).
    pub fn lost(&self) -> u64 {
        self.undeliverable
            + self
                .classes
                .iter()
                .map(|c| c.no_recipient + c.no_handler)
                .sum::<u64>()
    }
}

impl ClassStats {
    /// Messages to this class that reached no handler for `reason` (0 for
    /// the reasons counted only system-wide: [`Undelivered::Unknown`] and
    /// [`Undelivered::OtherMachine`]).
    pub fn undelivered(&self, reason: Undelivered) -> u64 {
        match reason {
            Undelivered::Gone => self.no_recipient - self.stale,
            Undelivered::Stale => self.stale,
            Undelivered::NoHandler => self.no_handler,
            Undelivered::Unknown | Undelivered::OtherMachine => 0,
        }
    }

    /// How many messages of the type named `message` (full name or suffix) were handled.
    pub fn handled(&self, message: &str) -> u64 {
        self.handled
            .iter()
            .filter(|(m, _)| *m == message || m.ends_with(&format!("::{message}")))
            .map(|(_, n)| n)
            .sum()
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in &self.classes {
            writeln!(
                f,
                "{} ({}): {} instances, {} B, {} queued, {} to missing instances, {} without handler",
                c.name,
                c.type_id.get(),
                c.instances,
                c.slot_bytes,
                c.queued,
                c.no_recipient,
                c.no_handler
            )?;
            for (m, n) in &c.handled {
                writeln!(f, "  {m}: {n}")?;
            }
        }
        writeln!(f, "undeliverable: {}", self.undeliverable)
    }
}

impl crate::ActorSystem {
    /// Counters of every class and message type.
    pub fn stats(&self) -> Stats {
        let names = self.shared.message_names.locked();
        let classes = self
            .classes
            .iter()
            .flatten()
            .map(|class| {
                let mut handled: Vec<u64> = Vec::new();
                let (mut no_recipient, mut stale, mut no_handler, mut kept) = (0, 0, 0, 0);
                for shard in &class.shards {
                    let counters = &shard.state.counters;
                    if handled.len() < counters.handled.len() {
                        handled.resize(counters.handled.len(), 0);
                    }
                    for (total, n) in handled.iter_mut().zip(&counters.handled) {
                        *total += n;
                    }
                    no_recipient += counters.no_recipient;
                    stale += counters.stale;
                    no_handler += counters.no_handler;
                    kept += counters.kept;
                }
                ClassStats {
                    name: class.shared.name,
                    type_id: class.shared.type_id,
                    instances: class.shards.iter().map(|s| s.store.len()).sum(),
                    slot_bytes: class.shards.iter().map(|s| s.store.slot_bytes()).sum(),
                    queued: class.shared.shards.iter().map(|s| s.queued()).sum(),
                    inbox_bytes: class.shared.shards.iter().map(|s| s.inbox_bytes()).sum(),
                    handled: handled
                        .iter()
                        .enumerate()
                        .filter(|(_, n)| **n > 0)
                        .map(|(m, n)| (names[m], *n))
                        .collect(),
                    no_recipient,
                    stale,
                    no_handler,
                    kept,
                }
            })
            .collect();
        Stats {
            classes,
            undeliverable: self.shared.undeliverable.load(Ordering::Relaxed),
            other_machine: self.shared.other_machine.load(Ordering::Relaxed),
            late_replies: self.shared.replies.late(),
            pending_timers: self.timers.len(),
        }
    }
}
