//! How a cycle's jobs (one per shard with work) are spread over threads:
//! the calling thread and a rayon pool of helpers, or the calling thread
//! alone. A build without threads (wasm32) needs only the second.

use std::ptr::NonNull;

use crate::class::{HandlerTable, Shard, ShardShared};

/// One shard to handle in a message cycle, with its class's handlers.
#[derive(Clone, Copy)]
pub(crate) struct Job {
    pub(crate) handlers: NonNull<HandlerTable>,
    pub(crate) shard: NonNull<Shard>,
    /// The shard's shared part (its class's `Arc` keeps it).
    pub(crate) shared: NonNull<ShardShared>,
}

/// Below this much estimated work (in nanoseconds) a cycle's jobs all run
/// on the calling thread: waking a sleeping helper takes microseconds (W3c
/// measured some 20 µs per cycle), more than tiny jobs save.
pub(crate) const HELPERS_PAY_NS: usize = 50_000;

/// Whether `jobs` are worth handing to helper threads (see
/// [`HELPERS_PAY_NS`]).
///
/// # Safety
/// Between cycles, with the jobs' shards borrowed by nobody else.
pub(crate) unsafe fn helpers_pay(jobs: &[Job]) -> bool {
    let mut total = 0;
    for job in jobs {
        // SAFETY: caller; the shared part lives as long as the class.
        let (shard, shared) = unsafe { (job.shard.as_ref(), job.shared.as_ref()) };
        total += shard.estimated_work(shared);
        if total >= HELPERS_PAY_NS {
            return true;
        }
    }
    false
}

// SAFETY: a job is the exclusive borrow of one shard (distinct shards per
// job) plus a shared borrow of its class's handler table (`Handler: Sync`),
// both taken from `&mut ActorSystem` for the duration of one cycle.
unsafe impl Send for Job {}
// SAFETY: shared jobs are only run through `run_shared`, which hands each
// job to one thread only.
unsafe impl Sync for Job {}

/// Runs `jobs` on this thread and on up to `jobs.len() - 1` helpers of
/// `pool`: each thread takes the next job not yet taken until none is left.
/// This thread starts at once instead of waiting for a sleeping helper to
/// wake, so short cycles never get slower than on one thread.
pub(crate) fn run_shared(pool: &rayon::ThreadPool, jobs: &mut [Job]) {
    use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
    let next = AtomicUsize::new(0);
    let jobs: &[Job] = jobs;
    // If a job panics, the scope still waits for every helper before the
    // panic goes on, so no helper outlives the borrow of `jobs`.
    let take_jobs = || {
        // Each index is handed out once (`fetch_add` is one total order),
        // so every job runs on exactly one thread.
        while let Some(job) = jobs.get(next.fetch_add(1, Relaxed)) {
            // SAFETY: this thread took the job's index, so no other thread
            // runs it; the scope below outlives every run.
            unsafe { job.run_shared() };
        }
    };
    let helpers = pool.current_num_threads().min(jobs.len() - 1);
    pool.in_place_scope(|scope| {
        for _ in 0..helpers {
            scope.spawn(|_| take_jobs());
        }
        take_jobs();
    });
}

/// Calls `f` on every item, on this thread and on up to `items.len() - 1`
/// helpers of `pool` (this thread alone without a pool), as
/// [`run_shared`] does for a cycle's jobs; returns the results in the
/// items' order. For the per-shard work of snapshots and loads.
pub(crate) fn run_each<T: Send, R: Send>(
    pool: Option<&rayon::ThreadPool>,
    items: &mut [T],
    f: impl Fn(&mut T) -> R + Sync,
) -> Vec<R> {
    use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
    use std::sync::{Mutex, PoisonError};
    let Some(pool) = pool.filter(|_| items.len() > 1) else {
        return items.iter_mut().map(f).collect();
    };
    let slots: Vec<Mutex<(&mut T, Option<R>)>> = items
        .iter_mut()
        .map(|item| Mutex::new((item, None)))
        .collect();
    let next = AtomicUsize::new(0);
    // Each index is handed out once, so each lock is taken once, by the
    // thread that runs the item.
    let take = || {
        while let Some(slot) = slots.get(next.fetch_add(1, Relaxed)) {
            let mut slot = slot.lock().unwrap_or_else(PoisonError::into_inner);
            let (item, result) = &mut *slot;
            *result = Some(f(item));
        }
    };
    let helpers = pool.current_num_threads().min(slots.len() - 1);
    pool.in_place_scope(|scope| {
        for _ in 0..helpers {
            scope.spawn(|_| take());
        }
        take();
    });
    (slots.into_iter())
        .map(|slot| {
            let (_, result) = slot.into_inner().unwrap_or_else(PoisonError::into_inner);
            result.expect("every item was run (a panic would have been resumed)")
        })
        .collect()
}

impl Job {
    /// Runs the job from a shared reference.
    ///
    /// # Safety
    /// No other thread runs this job at the same time (each job is taken
    /// once, see [`run_shared`]).
    unsafe fn run_shared(&self) {
        // SAFETY: see the `Send` impl: the shard is borrowed exclusively by
        // this job (the caller runs it alone), the handler table shared,
        // both alive for the cycle.
        let (handlers, shard) = unsafe { (self.handlers.as_ref(), &mut *self.shard.as_ptr()) };
        shard.run(handlers);
    }

    pub(crate) fn run(&mut self) {
        // SAFETY: `&mut self`: no other thread runs this job.
        unsafe { self.run_shared() }
    }
}
