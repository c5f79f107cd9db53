//! The message cycle: the one place where shards run.
//!
//! A *message cycle* handles every record that was in an inbox when the
//! cycle began; what handlers send meanwhile waits for the next cycle. A
//! cycle goes step by step:
//!
//! 1. **Take the work** (between cycles, on the system's thread). The
//!    lanes (one per sender: the outside, or one shard's handlers) that got
//!    records since the last cycle began are gathered: the last cycle's
//!    handlers listed the lanes they raised in their worlds (a lane is
//!    listed by the first push into it in a cycle); outside code raised
//!    its shards' flags, in groups of 64 shards, and the raised shards
//!    bring their outside lane. Sorted by (global shard, lane), each lane
//!    becomes *work* of its shard up to a snapshot of its end
//!    (`Shard::take_lane`); each shard with work is one *job*. Idle shards
//!    and idle lanes are never visited, so cycles cost the same beside a
//!    thousand idle classes.
//! 2. **Run the jobs.** One job runs right on the calling thread; several
//!    are handed out one at a time to the calling thread and the pool's
//!    helpers ([`pool`]), each shard on exactly one thread. A shard drains
//!    its lanes in order, first in, first out, and hands each record to its
//!    class's handler ([`dispatch`]); handlers' sends go to their own shard's
//!    sender lane, behind the snapshots, so they wait for the next cycle.
//!    Which thread runs which job changes nothing: shards share no state, so
//!    the outcome is the same on any thread count.
//! 3. **Catch panics.** A handler's panic unwinds to its shard's `run`,
//!    which recovers (report, policy, the faulting instance re-compacted or
//!    removed) and goes on behind the faulting record. Under
//!    [`PanicPolicy::Stop`] the rest of that
//!    shard's cycle keeps its records instead of handling them.
//! 4. **After the cycle** (the helpers have joined): shards whose lanes
//!    took ID blocks settle them (`class/ids.rs`), each job's inbox
//!    memory up to its snapshots is recycled, the instance numbers of the
//!    actors that died go back to the lanes that own them, and the panics
//!    caught become reports (the system then enters the panicked state if a
//!    class's policy says so, and every shard keeps ordinary records from
//!    the next cycle on).
//!
//! If anything else unwinds out of a cycle (a bug of kay's, an allocation
//! failure), the job list stays full: the system refuses to run another
//! cycle and leaks its instances when dropped, as their state is unknown.

pub(crate) mod dispatch;
pub(crate) mod panic;
pub(crate) mod pool;

use crate::ActorSystem;
use crate::class::lanes::{GlobalShard, RaisedLane, SenderLane};
use crate::cycle::panic::{PanicPolicy, PanicReport};
use crate::cycle::pool::{Job, helpers_pay, run_shared};
use crate::inbox::PENDING_GROUP;
use crate::sync::Unpoisoned;
use crate::system::MAX_PANIC_REPORTS;
use std::ptr::NonNull;

impl ActorSystem {
    /// Runs one message cycle: handles every message queued before it began;
    /// messages sent meanwhile wait for the next cycle. Returns how many
    /// records were taken from inboxes (handled, or kept while panicked).
    ///
    /// A panic in a handler or spawner is caught by its shard (see
    /// [Panics](#panics)); it never reaches the caller.
    ///
    /// # Panics
    /// If a panic escaped an earlier cycle outside any handler (an
    /// allocation failure, or a bug of kay): the system's state is then
    /// unknown, and it refuses to run on. Drop it.
    pub fn message_cycle(&mut self) -> usize {
        // `jobs` is emptied only when a cycle completes: if it is not, a
        // panic escaped the last one outside any handler (a bug of kay's, or
        // an allocation failure), the shards' state is unknown, and the
        // system refuses to run on (and leaks its instances when dropped).
        assert!(
            self.jobs.is_empty(),
            "this ActorSystem cannot run on: a panic escaped an earlier message cycle outside any handler; drop it"
        );
        let ActorSystem {
            jobs,
            global_shards,
            all,
            raised,
            ..
        } = self;
        // Between cycles: take what each pending shard must handle. The
        // lanes raised by handlers are listed (by the last cycle's jobs);
        // the shards raised from outside are found by their groups' flags,
        // and bring their outside lane. Idle shards are never visited.
        all.take_outside(|group| {
            let start = group * PENDING_GROUP;
            for (at, job) in shards_of_group(global_shards, group).iter().enumerate() {
                // SAFETY: shards live in their class's `Arc<ClassShared>`,
                // kept by `classes` for the system's lifetime.
                let shared = unsafe { job.shared.as_ref() };
                if shared.take_pending() {
                    let global = GlobalShard::new((start + at) as u32);
                    // A shard resuming kept records may have no outside lane.
                    let lane = shared.existing_lane(SenderLane::OUTSIDE);
                    raised.push(RaisedLane::new(
                        global,
                        SenderLane::OUTSIDE,
                        lane.map(NonNull::from),
                    ));
                }
            }
        });
        // In global shard order, each shard's lanes in lane order.
        if raised.len() > 1 {
            raised.sort_unstable_by_key(|raised| raised.key);
        }
        for raised in raised.drain(..) {
            let job = global_shards[raised.shard().index()];
            // SAFETY: between cycles the shards are borrowed by nobody else
            // (`jobs` is empty); they live in `classes`.
            let shard = unsafe { &mut *job.shard.as_ptr() };
            let took = raised.lane.is_some_and(|lane| shard.take_lane(lane));
            // The first of the shard's lanes with records (or its kept
            // records to resume) makes it a job.
            if (took || shard.resume) && jobs.last().is_none_or(|last| last.shard != job.shard) {
                jobs.push(job);
            }
        }
        if jobs.is_empty() {
            return 0;
        }
        self.cycle += 1;
        // The cycle: every shard on one worker at a time; a single busy
        // shard (the common case of conversations) runs right here.
        // Handlers' panics are caught inside; should anything else unwind
        // out of here, `jobs` stays full and the system stops.
        match self.jobs.as_mut_slice() {
            [] => {}
            _ if self.trace => self.run_traced(),
            [job] => job.run(),
            all => match &self.pool {
                // SAFETY: before the jobs run: nothing else borrows their
                // shards.
                Some(pool) if unsafe { helpers_pay(all) } => run_shared(pool, all),
                _ => all.iter_mut().for_each(Job::run),
            },
        }
        // Between cycles again: settle the ID blocks lanes took, recycle
        // inbox memory, free dead IDs, collect panics.
        let global_shards = &self.global_shards;
        self.all.take_settle(|group| {
            for job in shards_of_group(global_shards, group) {
                // SAFETY: shards live as long as the system; the workers
                // have joined, so no lane's writer runs.
                unsafe { job.shared.as_ref().settle() };
            }
        });
        let mut handled = 0;
        let mut caught = false;
        for job in &self.jobs {
            // SAFETY: the workers have joined; `jobs` points into `classes`,
            // which nothing else borrows mutably now.
            let shard = unsafe { &mut *job.shard.as_ptr() };
            handled += shard.taken;
            // The shards its handlers made pending: the next cycle's work.
            // The first list is taken whole (the buffers trade places: 20
            // instructions less per cycle than a drain); more are copied
            // (a loop: they are short, and `append` calls `memcpy`).
            let raised = &mut shard.state.world.raised;
            if self.raised.is_empty() {
                std::mem::swap(&mut self.raised, raised);
            } else {
                for global in raised.drain(..) {
                    self.raised.push(global);
                }
            }
            caught |= !shard.state.caught.is_empty();
            // Timers set and answers gathered (one flag for both, so that
            // cycles of neither pay one check).
            if shard.state.world.after_cycle {
                shard.state.world.after_cycle = false;
                self.timers.apply(shard.state.world.timer_ops.drain(..));
                shard.state.world.take_partials(&mut self.gathered);
            }
            // SAFETY: no drain runs and no push is in flight (shard worlds
            // only push while their shard runs; outside worlds live on this
            // thread), and no record slice is alive; the shared part lives
            // as long as the class.
            unsafe { shard.reclaim_work(job.shared.as_ref()) };
            if !shard.state.died.is_empty() {
                // SAFETY: between cycles (see above); shards live as long
                // as the system.
                unsafe { job.shared.as_ref().release(shard.state.died.drain(..)) };
            }
        }
        if caught {
            self.collect_panics();
        }
        self.jobs.clear();
        if !self.gathered.is_empty() {
            self.deliver_partials();
        }
        handled
    }

    /// Runs the cycle's jobs one after the other on this thread, each in a
    /// `trace` span (see `ActorSystem::turn`).
    #[cold]
    #[inline(never)]
    fn run_traced(&mut self) {
        for job in &mut self.jobs {
            // SAFETY: between cycles the shard is this job's alone.
            let class = unsafe { job.shard.as_ref() }.state.class;
            let _span = tracing::trace_span!("shard", class).entered();
            job.run();
        }
    }

    /// Turns the panics caught in this cycle's shards into reports, and
    /// enters the panicked state if a class's policy says so.
    #[cold]
    #[inline(never)]
    fn collect_panics(&mut self) {
        let was_panicked = self.panicked;
        let names = self.shared.message_names.locked();
        for job in &self.jobs {
            // SAFETY: as in `message_cycle`: between cycles, nothing else
            // borrows the shard.
            let shard = unsafe { &mut *job.shard.as_ptr() };
            for caught in shard.state.caught.drain(..) {
                self.panics += 1;
                if shard.state.policy == PanicPolicy::Stop {
                    self.panicked = true;
                }
                if self.reports.len() < MAX_PANIC_REPORTS {
                    self.reports.push(PanicReport {
                        actor: caught.actor,
                        class: shard.state.class,
                        message: caught
                            .message
                            .and_then(|m| names.get(m.0 as usize).copied())
                            .unwrap_or("?"),
                        text: caught.text,
                        location: caught.location,
                        cycle: self.cycle,
                        policy: shard.state.policy,
                        actor_debug: caught.actor_debug,
                        message_debug: caught.message_debug,
                    });
                }
            }
        }
        drop(names);
        if self.panicked && !was_panicked {
            self.set_panicked(true);
        }
    }

    /// Enters or leaves the panicked state, in every shard (which keeps its
    /// own flag so that dispatch reads it without reaching the system).
    #[cold]
    pub(crate) fn set_panicked(&mut self, panicked: bool) {
        self.panicked = panicked;
        for class in self.classes.iter_mut().flatten() {
            for (shard, shared) in class.shards.iter_mut().zip(class.shared.shards.iter()) {
                shard.state.panicked = panicked;
                // Leaving it: the shards that kept records handle them
                // first in their next cycle.
                shard.resume = !panicked && shard.state.counters.kept > 0;
                if shard.resume {
                    shared.raise_from_outside();
                }
            }
        }
    }
}

/// The entries of `global_shards` in group `group` of pending flags.
fn shards_of_group(global_shards: &[Job], group: usize) -> &[Job] {
    let start = group * PENDING_GROUP;
    &global_shards[start..global_shards.len().min(start + PENDING_GROUP)]
}
