//! Snapshots and resume: the whole system saved at a turn boundary and
//! loaded back, without serialising actor state.
//!
//! ```
//! use kay::{ActorSystem, Config};
//! # kay::typed_id!(pub CounterID);
//! # #[derive(kay::Compact, Clone)]
//! # pub struct Counter { id: CounterID, count: u64 }
//! # impl kay::Actor for Counter {
//! #     type ID = CounterID;
//! #     fn id(&self) -> CounterID { self.id }
//! #     fn setup(_: &mut kay::ClassSetup<Self>) {}
//! # }
//! let dir = tempfile::tempdir().unwrap();
//! let mut system = ActorSystem::with_storage(dir.path(), Config::default()).unwrap();
//! system.register::<Counter>();
//! // Nothing to load yet: a new run.
//! assert!(system.load().unwrap().is_none());
//! system.turn();
//! let saved = system.snapshot().unwrap();
//! drop(system);
//!
//! // Later, in another process: register the same classes, then load.
//! let mut system = ActorSystem::with_storage(dir.path(), Config::default()).unwrap();
//! system.register::<Counter>();
//! let loaded = system.load().unwrap().expect("a snapshot");
//! assert_eq!(loaded.turn, saved.turn);
//! assert_eq!(system.current_turn(), 1);
//! ```
//!
//! # What a snapshot holds
//! A snapshot is a *generation* of `chunky`'s [`Generations`] in the
//! storage directory: one file per shard's instance store, holding the used
//! part of each of its bins' chunks **as they are in memory** (compact
//! state: no pointers out of the slot, so bytes are copied, not
//! serialised), each starting on a 4 KiB page boundary so that it can be
//! mapped back as a chunk, and one `system` file with the small state around them:
//! the turn and cycle counters, every shard's instance-number blocks and
//! each sender lane's numbers, and each shard's rotation of spawns over
//! shards (so that spawns after a load get the IDs the uninterrupted run
//! gets), per-class message counters, every pending timer with its
//! compacted message, the reply table (each pending continuation of a
//! request asked from a handler,
//! [`Reply::then_send`](crate::Reply::then_send), with its compacted
//! message, deadline and recipient; the slots' generations and free
//! order, so that tokens in messages and actors' state keep naming the
//! same requests), and every message waiting in an inbox (a turn cut
//! short by [`Config::max_cycles_per_call`](crate::Config::max_cycles_per_call),
//! or messages sent from outside since the last turn), lane by lane in
//! the order the next cycle handles them. Outside [`World`](crate::World)s are not part of the
//! system: one made after a load starts its rotation of spawns over
//! shards afresh, as any new `World` does. The manifest, written last and
//! renamed into place atomically, records the format, the registry's
//! [`Fingerprint`] (every class with its size, fields as declared
//! and messages, every message type with its size and fields) and the turn, with every
//! file's length and CRC-32.
//!
//! A snapshot is taken between turns (`&mut self`: no cycle runs) when
//! nothing it cannot carry is in flight: no panicked state, no
//! continuation of a kind the program did not register with
//! [`register_continuation`](crate::ActorSystem::register_continuation)
//! (only the program knows which message takes which answer, and a load
//! needs that to make it again). Otherwise
//! [`snapshot`](crate::ActorSystem::snapshot) says which and writes
//! nothing. A request an outside [`Reply`](crate::Reply) waits
//! for does not stop a snapshot, but that future does not outlive its
//! process: in the loaded system the request is abandoned (its answer,
//! when it comes, is discarded and counted in
//! [`Stats::late_replies`](crate::Stats::late_replies)). Waiting messages
//! are loaded back into the lanes they waited in, each validated as its
//! type and its recipient checked (of the shard's class and shard, or a
//! broadcast), behind the [`Loaded`] broadcast; a waiting spawn's
//! instance number must be one that was handed out, is not live, cannot
//! be handed out again and is spawned once, so that it creates a fresh
//! instance where nothing is.
//!
//! # Loading
//! [`load`](crate::ActorSystem::load) is called on a system that has just
//! been created with [`with_storage`](crate::ActorSystem::with_storage)
//! and had its classes registered (the types are known only to the code
//! that registers them, as in any Rust program). It takes the newest
//! complete generation and checks all of it before changing anything:
//! every file's length and checksum, the format, the fingerprint (a
//! different registry is refused, naming the first entry that differs),
//! the small state's structure, and then each instance as it is copied in:
//! validated as its class's type (with `compact`'s validation, as for
//! bytes from the network), its ID of this class, shard and machine and
//! not listed twice, and the instance-number state consistent with the
//! instances (no live number reusable or handed out again). Any failure is
//! an error naming the file and the problem, and the system is left as it
//! was: empty.
//!
//! The store files are **mapped copy-on-write** (`MAP_PRIVATE`) as the
//! stores' memory, a chunk per run of slots, in one region per bin: no
//! copy at load, and nothing per instance but the checks above, which run
//! piece by piece right behind the checksum, while the bytes are in the
//! cache (the IDs are checked against a bit per instance number, not an
//! index). The snapshot's files never change. The rest is put off until a
//! store is used: the first message cycle that handles messages for a
//! shard first copies the shard's mapped chunks into the system's own
//! memory, all at once, backed by huge pages where the system gives them
//! (Linux transparent huge pages), and builds the shard's index (instance
//! number → slot) from the instances' IDs. Stores that get no messages
//! stay mapped and unindexed: a system loaded to be inspected (say with
//! `ActorSystem::with_instances`) copies nothing. Classes whose
//! instances can have dynamic parts (`CVec`, `CString`, ...: any whose
//! `Compact::IS_STATIC` is false) or hold an `External` are read instead:
//! their validation writes to them (pointers rewritten for where the
//! instances are now, handles emptied), which would copy mapped pages one
//! fault at a time during the load.
//!
//! Why at once rather than as the kernel would, page by page on the first
//! write to each: a copy-on-write fault per 4 KiB page, and on Linux each
//! fault on a page the process already read (the load's checks read them
//! all) interrupts every other running thread of the process to flush its
//! TLB. A turn that wrote all of W6's 1M actors (`kay-bench`, 2 threads)
//! right after the load took 90-140 ms that way; copying first (and
//! indexing), the turn takes ~7-10 ms, and the turns after it ~1.
//! (Measured on 2 threads: the load ~3 ms, against ~6-8 ms for reading
//! the same 32 MB into fresh memory, which on this kind of machine costs
//! as much as the copy: the kernel zeroes every new page first. A load
//! and its first turn together cost about the same either way.)
//!
//! With [`Config::map_snapshots_on_load`](crate::Config::map_snapshots_on_load)
//! `false` the files are instead read into memory at load (one region per
//! bin, huge pages where given): `load` takes longer, and the system never
//! depends on the snapshot's files after it returns. Mapped or read,
//! [`LoadReport::mapped_bytes`] says how much was mapped. A chunk mapped
//! from a file shows what another process writes to that file later (in
//! the pages this process has not copied yet), so a file is mapped only if
//! it belongs to this process's user and no one else may write to it (Unix
//! permissions); otherwise it is read, as on other platforms. A process of
//! the same user could as well write into this process's memory directly
//! (`/proc/PID/mem`), so this gives away nothing; do not edit a snapshot's
//! files while a system that mapped them runs. A snapshot's own pruning
//! of old generations is safe: a removed file's pages stay with the
//! mappings that hold them.
//!
//! # Networked systems (feature `net`)
//! Each machine snapshots its own state, in lockstep
//! (`NetConfig::max_turn_distance` 0) and at the same turn on every
//! machine (the program's loop decides it, e.g. every N turns). What is
//! in flight between machines at that
//! turn's end is the batches every machine sent in it, which each peer
//! applies at the start of the next turn: so a machine's snapshot waits
//! until every peer finished the turn and holds copies of their batches
//! of it (checked on load as any frame from the wire: every message of a
//! known type, for this machine, valid as its type). Loading one puts
//! them back in front of whatever the peers send next, so the next turn
//! applies exactly what the uninterrupted run applies. Continuations
//! waiting for answers from other machines are carried as any other.
//!
//! To resume, every machine loads its snapshot of that turn (on the same
//! or new addresses) before its first turn, which waits for all of them
//! to join; a machine that joins at another turn (a fresh one, or one
//! that loaded another turn) is refused with an error naming both turns.
//! A snapshot is refused outside lockstep, while messages sent from
//! outside to other machines wait to go (snapshot right after a turn), or
//! while a peer has not joined, has rejoined at another turn, or is lost
//! before it finished the turn; a networked snapshot loads only as the
//! same machine of a topology of the same size, and a plain one only
//! without networking. The network's statistics (`ActorSystem::net_stats`)
//! start again at zero.
//!
//! Resumed equals uninterrupted: a run that snapshots at turn T, loads in a
//! new process and continues, reaches the same state as a run that never
//! stopped (the same instances, IDs and bytes; slots freed in a bin are
//! zeroed so that earlier occupants leave no trace in padding).
//!
//! # Decisions
//! - **`External<T>` is not persisted.** Its bytes are saved with the
//!   actor but mean nothing in another process: loading resets every
//!   `External` to empty ([`External::is_empty`](crate::External::is_empty)).
//!   Right after a load, the system sends [`Loaded`] to every instance of
//!   each class that has a handler for it, ahead of every other message of
//!   the next turn: that handler restores what the `External` held (reopen
//!   the file the state names; see the example at
//!   [`External`](crate::External#not-persisted)). A run that was loaded
//!   thus handles these messages on top of what the uninterrupted run
//!   handles; nothing else differs.
//! - **Requests asked from handlers are persisted, outside futures are
//!   not** (see above): a continuation is simulation state, like a timer;
//!   an outside `Reply` belongs to code that does not outlive its
//!   process. Continuations of a kind not registered with
//!   `register_continuation` make `snapshot` fail with an error naming the
//!   call to add (rather than be dropped: the answer would be lost), and
//!   are warned about (`tracing`, once per kind) when a handler of a
//!   system with storage first makes one: a snapshot meets one only if it
//!   waits at that turn, which a test run may never hit.
//! - The live instance stores are mmap'ed files under `dir/live`, recreated
//!   empty by `with_storage` (they are the running state, not a snapshot),
//!   or on the heap with `Config::live_stores_in_files = false` (faster to
//!   spawn into and to load: W6 loads 1M actors about a third faster).
//!   Inboxes stay on the heap (their records are short-lived; a snapshot
//!   copies the waiting ones into its `system` file).
//! - `Config::snapshots_kept` generations are kept (default 2); older ones
//!   are removed after each new one is committed.

pub(crate) mod bytes;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chunky::{Generations, Storage};

use crate::ActorSystem;
use crate::class::ids::check_loaded;
use crate::class::{ClassCounters, ShardShared};
use crate::config::Config;
use crate::id::RawID;
use crate::inbox::record::{RECORD_HEADER, SPAWN_TAG, UNKNOWN, read_header};
use crate::persist::bytes::{Reader, Writer};
use crate::registry::Fingerprint;
use crate::store::index::LocalInstance;
use crate::store::{Belongs, ImageError, RUN_ALIGN};
use crate::sync::Unpoisoned;
use crate::timer::Timers;

/// The networked part of a snapshot: the peers' batch frames of its turn,
/// by machine, and the rotation over shards of spawns from other machines
/// (see "Networked systems" in the module docs).
#[cfg(feature = "net")]
type NetFrames = (Vec<(u8, Vec<::bytes::Bytes>)>, Vec<u32>);
/// None without networking.
#[cfg(not(feature = "net"))]
type NetFrames = Vec<std::convert::Infallible>;

/// The version of the snapshot format this build writes and reads.
pub const SNAPSHOT_FORMAT: u32 = 4;

/// The magic bytes that start a snapshot's metadata.
const META_MAGIC: &[u8; 8] = b"KAYSNAP\0";

/// Zeros, for the padding between runs in a store file.
static ZEROS: [u8; RUN_ALIGN] = [0; RUN_ALIGN];

/// The file holding the state besides the instance stores.
const SYSTEM_FILE: &str = "system";

/// Sent by [`ActorSystem::load`] to every instance of each class that has
/// a handler for it, right after a snapshot was loaded (handled first in
/// the next turn): the place to restore what the snapshot could not hold,
/// such as [`External`](crate::External) values.
#[derive(crate::Compact, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Loaded {
    /// The turn the snapshot was taken after.
    pub turn: u64,
    /// The generation loaded.
    pub generation: u64,
}

/// Why a snapshot could not be written or loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PersistError {
    /// The system was not created with
    /// [`with_storage`](crate::ActorSystem::with_storage).
    #[error("this system has no storage: create it with ActorSystem::with_storage(dir, config)")]
    NoStorage,
    /// Reading or writing the storage failed, or a generation is damaged
    /// (the error names the file).
    #[error(transparent)]
    Storage(#[from] chunky::Error),
    /// A snapshot file holds something it must not (the file and what).
    #[error("{path}: {detail}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The snapshot was written by a system with another registry.
    #[error(
        "{path}: the snapshot is of another build or registration order: {difference}; load it with the classes and messages registered as when it was written"
    )]
    Fingerprint {
        /// The generation's directory.
        path: PathBuf,
        /// The first entry that differs.
        difference: String,
    },
    /// Another snapshot format.
    #[error("{path}: snapshot format {found}, this build reads format {supported}")]
    UnsupportedFormat {
        /// The generation's directory.
        path: PathBuf,
        /// The format found.
        found: u32,
        /// The format this build reads.
        supported: u32,
    },
    /// The system is not in a state that can be saved or loaded now (why).
    #[error("cannot {0}")]
    NotNow(String),
}

/// What [`ActorSystem::snapshot`] wrote.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SnapshotReport {
    /// The generation's number.
    pub generation: u64,
    /// Its directory.
    pub dir: PathBuf,
    /// The turn it holds (the last turn run).
    pub turn: u64,
    /// Instances saved.
    pub instances: u64,
    /// Bytes of instance state saved (the stores' used slots).
    pub state_bytes: u64,
    /// How long the system was paused for it: the whole write for
    /// [`snapshot`](ActorSystem::snapshot), the copy of the state for
    /// [`snapshot_in_background`](ActorSystem::snapshot_in_background).
    pub pause: Duration,
    /// How long until it was committed (durable on disk).
    pub written: Duration,
}

/// What [`ActorSystem::load`] loaded.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct LoadReport {
    /// The generation's number.
    pub generation: u64,
    /// Its directory.
    pub dir: PathBuf,
    /// The turn it holds: the system continues with the next.
    pub turn: u64,
    /// Instances loaded.
    pub instances: u64,
    /// Bytes of instance state loaded.
    pub state_bytes: u64,
    /// How many of them were mapped from the snapshot's files rather than
    /// copied (see [`crate::persist`]: "Loading").
    pub mapped_bytes: u64,
    /// Timers restored.
    pub timers: usize,
    /// Continuations restored: requests asked from handlers
    /// ([`Reply::then_send`](crate::Reply::then_send)) that wait for their
    /// answers.
    pub continuations: usize,
    /// How long it took (reading, checking and copying).
    pub took: Duration,
}

/// How a background snapshot went, and its buffers (for the next one).
type Written = (Result<SnapshotReport, PersistError>, Vec<Vec<u8>>);

/// A system's snapshot storage.
pub(crate) struct Persist {
    generations: Generations,
    /// The number the next snapshot gets.
    next: u64,
    /// Old generations being removed after the last snapshot (off the
    /// pause; joined before the next one starts).
    pruning: Option<std::thread::JoinHandle<chunky::Result<()>>>,
    /// A snapshot being written in the background, which gives its
    /// buffers back.
    pending: Option<std::thread::JoinHandle<Written>>,
    /// Buffers of the last background snapshot, for the next.
    spare: Vec<Vec<u8>>,
    /// The directory's lock, held while the system lives.
    _lock: std::fs::File,
}

impl Drop for Persist {
    fn drop(&mut self) {
        // A snapshot under way is finished (its outcome is logged).
        if let Some(pending) = self.pending.take() {
            match pending.join() {
                Ok((Ok(_), _)) => {}
                Ok((Err(e), _)) => tracing::error!("kay: a background snapshot failed: {e}"),
                Err(_) => tracing::error!("kay: a background snapshot panicked"),
            }
        }
        self.join_pruning();
    }
}

impl Persist {
    /// Waits for the last snapshot's pruning (reporting a failure: it only
    /// means old files were left, which the next pruning retries).
    fn join_pruning(&mut self) {
        if let Some(pruning) = self.pruning.take() {
            match pruning.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!("kay: removing old snapshots failed: {e}"),
                Err(_) => tracing::warn!("kay: removing old snapshots panicked"),
            }
        }
    }
}

/// One shard's small state, read from a snapshot before anything changes.
struct ShardImage {
    class: usize,
    shard: usize,
    bins: Vec<(u8, Vec<(u64, u64)>)>,
    blocks: crate::class::ids::Blocks,
    lane_ids: Vec<(crate::class::lanes::SenderLane, crate::class::ids::LaneIds)>,
    timer_count: u64,
    spawn_turns: Vec<u32>,
    counters: ClassCounters,
    /// (In a mutex only to make the image `Sync`: the loading threads
    /// never touch it.)
    waiting: std::sync::Mutex<Vec<Waiting>>,
    /// The recipients of the spawns among them.
    spawns: Vec<RawID>,
}

/// A message that waited in an inbox when the snapshot was taken,
/// validated, to be put back where it was.
struct Waiting {
    lane: crate::class::lanes::SenderLane,
    tag: u16,
    recipient: RawID,
    message: Box<dyn crate::timer::TimerMessage>,
}

fn store_file(type_id: usize, shard: usize) -> String {
    format!("store-{type_id}-{shard}")
}

impl ActorSystem {
    /// A system whose instance stores live in mmap'ed files under `dir`
    /// and whose [`snapshot`](Self::snapshot)s are generations in `dir`
    /// (see [`crate::persist`]). Register its classes, then
    /// [`load`](Self::load) the newest snapshot if there is one.
    ///
    /// One system uses a directory at a time (a lock file, `dir/lock`):
    /// another one waits up to half a second for it to be dropped, then
    /// gets [`PersistError::NotNow`].
    pub fn with_storage(
        dir: impl AsRef<Path>,
        config: Config,
    ) -> Result<ActorSystem, PersistError> {
        let dir = dir.as_ref();
        let generations = Generations::open(dir, config.snapshots_kept)?;
        // One system per directory: the others would share its live files.
        let lock_path = dir.join("lock");
        let lock = chunky::open_no_follow(
            std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true),
            &lock_path,
        )?;
        // A system that was just dropped (or a process that is exiting)
        // may hold it a moment longer: and a child process forked by this
        // one (e.g. by `Command`) shares the lock until it execs.
        let mut waited = 0;
        loop {
            match lock.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) if waited < 50 => {
                    waited += 1;
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(PersistError::NotNow(format!(
                        "use {}: another system (in this or another process) uses it",
                        dir.display()
                    )));
                }
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(chunky::Error::io(&lock_path, e).into());
                }
            }
        }
        let live = dir.join("live");
        // The live stores of an earlier process are not a snapshot: start
        // them afresh (a link planted there is removed, not followed).
        match std::fs::symlink_metadata(&live) {
            Ok(m) if m.is_dir() => std::fs::remove_dir_all(&live),
            Ok(_) => std::fs::remove_file(&live),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
        .map_err(|e| chunky::Error::io(&live, e))?;
        let storage = if config.live_stores_in_files {
            Storage::mmap(&live)?
        } else {
            Storage::heap()
        };
        let next = generations.newest_number()?.map_or(1, |n| n + 1);
        let mut system = ActorSystem::new(config);
        system.storage = storage;
        (system.shared.snapshots).store(true, std::sync::atomic::Ordering::Relaxed);
        system.persist = Some(Box::new(Persist {
            generations,
            next,
            pruning: None,
            pending: None,
            spare: Vec::new(),
            _lock: lock,
        }));
        Ok(system)
    }

    /// Writes a snapshot of the whole system as a new generation (see
    /// [`crate::persist`]): between turns. The previous generations stay
    /// until it is committed; on an error (a full disk, say) nothing is
    /// committed. A networked machine first waits until every peer
    /// finished this turn (see "Networked systems" in [`crate::persist`]).
    pub fn snapshot(&mut self) -> Result<SnapshotReport, PersistError> {
        self.take_snapshot(false)
    }

    fn take_snapshot(&mut self, background: bool) -> Result<SnapshotReport, PersistError> {
        let started = Instant::now();
        if self.persist.is_none() {
            return Err(PersistError::NoStorage);
        }
        // One snapshot at a time: the last one's outcome first.
        if let Some(Err(e)) = self.wait_for_snapshot() {
            return Err(e);
        }
        self.persist.as_mut().expect("checked above").join_pruning();
        self.check_quiet("snapshot")?;
        // Timers set from outside since the last turn join the others now,
        // as they would at the start of the next turn.
        let ops = std::mem::take(&mut *self.shared.outside_timer_ops.locked());
        self.timers.apply(ops);

        let mut system = Writer::default();
        system.u64(self.turn);
        system.u64(self.cycle);
        system.u64((self.shared.outside_timer_count).load(std::sync::atomic::Ordering::Relaxed));
        let message_ids = self.shared.message_ids.locked().clone();
        self.timers
            .encode(&mut system, |t| message_ids.get(&t).map(|m| m.0))
            .map_err(|e| PersistError::NotNow(format!("snapshot: {e}")))?;
        let kinds = self.shared.continuation_kinds.locked();
        (self.shared.replies)
            .save(&mut system, |message, answer| {
                kinds.is_registered(message, answer)
            })
            .map_err(|e| PersistError::NotNow(format!("snapshot now: {e}")))?;
        drop(kinds);
        // The peers' frames of this turn (waiting for them first), written
        // at the end.
        let mut net_turn = Writer::default();
        self.write_net_turn(&mut net_turn)?;
        let mut stores = Vec::new();
        let (mut instances, mut state_bytes) = (0u64, 0u64);
        let classes: Vec<usize> = (self.classes.iter().enumerate())
            .filter(|(_, c)| c.is_some())
            .map(|(i, _)| i)
            .collect();
        system.len(classes.len());
        for &c in &classes {
            let class = self.classes[c].as_ref().expect("a class");
            system.u32(c as u32);
            system.len(class.shards.len());
            for (s, (shard, shared)) in class
                .shards
                .iter()
                .zip(class.shared.shards.iter())
                .enumerate()
            {
                let image = shard.store.image();
                system.len(image.len());
                let mut parts: Vec<&[u8]> = Vec::new();
                for bin in &image {
                    system.u8(bin.bin);
                    system.len(bin.runs.len());
                    for run in &bin.runs {
                        system.u64(run.as_ptr() as u64);
                        system.u64((run.len() / bin.slot_size) as u64);
                        state_bytes += run.len() as u64;
                        parts.push(run);
                        // The next run starts on a page: mappable.
                        let padding = run.len().next_multiple_of(RUN_ALIGN) - run.len();
                        if padding > 0 {
                            parts.push(&ZEROS[..padding]);
                        }
                    }
                }
                instances += shard.store.len() as u64;
                // SAFETY: between cycles (`&mut self`, `check_quiet`).
                unsafe { shared.encode_ids(&mut system) };
                system.u64(shard.state.world.timer_count);
                system.u32s(&shard.state.world.spawn_turns);
                let counters = &shard.state.counters;
                system.u64s(&counters.handled);
                system.u64(counters.no_recipient);
                system.u64(counters.stale);
                system.u64(counters.no_handler);
                system.u64(counters.kept);
                // The messages waiting in the shard's inboxes, lane after
                // lane, in the order the next cycle handles them.
                let mut waiting = Writer::default();
                let mut count = 0usize;
                // SAFETY: between cycles (`&mut self`, `check_quiet`).
                unsafe {
                    shared.for_each_waiting(|lane, tag, record| {
                        let message = &record[RECORD_HEADER..];
                        waiting.u32(lane.get());
                        waiting.u16(tag);
                        waiting.u64(read_header(record).as_u64());
                        waiting.u64(message.as_ptr() as u64);
                        waiting.slice(message);
                        count += 1;
                    })
                };
                system.len(count);
                system.bytes.extend_from_slice(&waiting.bytes);
                stores.push((store_file(c, s), parts));
            }
        }
        system.bytes.extend_from_slice(&net_turn.bytes);
        let meta = self.snapshot_meta();
        let mut persist = self.persist.take().expect("checked above");
        let number = persist.next;
        let written = if background {
            // Copy-on-snapshot: the bytes are copied now (the pause), and
            // written and synced on another thread while turns go on.
            // The last background snapshot's buffers are reused: their
            // pages are in memory already, so the copy is a plain memcpy.
            let mut spare = std::mem::take(&mut persist.spare).into_iter();
            let owned: Vec<(String, Vec<u8>)> = (stores.iter())
                .map(|(name, parts)| {
                    let mut buffer = spare.next().unwrap_or_default();
                    buffer.clear();
                    for part in parts {
                        buffer.extend_from_slice(part);
                    }
                    (name.clone(), buffer)
                })
                .collect();
            let generations = persist.generations.clone();
            let (turn, pause) = (self.turn, started.elapsed());
            persist.pending = Some(std::thread::spawn(move || {
                let stores: Vec<(String, Vec<&[u8]>)> = (owned.iter())
                    .map(|(name, bytes)| (name.clone(), vec![bytes.as_slice()]))
                    .collect();
                let written =
                    write_generation(&generations, number, &stores, &system.bytes, &meta, None)
                        .and_then(|dir| {
                            generations.prune()?;
                            Ok(SnapshotReport {
                                generation: number,
                                dir,
                                turn,
                                instances,
                                state_bytes,
                                pause,
                                written: started.elapsed(),
                            })
                        });
                drop(stores);
                (written, owned.into_iter().map(|(_, bytes)| bytes).collect())
            }));
            Ok(None)
        } else {
            write_generation(
                &persist.generations,
                number,
                &stores,
                &system.bytes,
                &meta,
                self.pool.as_ref(),
            )
            .map(|dir| {
                let generations = persist.generations.clone();
                persist.pruning = Some(std::thread::spawn(move || generations.prune()));
                Some(dir)
            })
        };
        if written.is_ok() {
            persist.next += 1;
        }
        drop(stores);
        self.persist = Some(persist);
        let dir = written?;
        let pause = started.elapsed();
        Ok(SnapshotReport {
            generation: number,
            dir: dir.unwrap_or_default(),
            turn: self.turn,
            instances,
            state_bytes,
            pause,
            written: pause,
        })
    }

    /// Starts a snapshot that is written while the system goes on: the
    /// state is copied now (the pause, see [`SnapshotReport::pause`]), then
    /// written, synced and committed on another thread. The same checks
    /// as [`snapshot`](Self::snapshot) apply. The returned report's `dir`
    /// is empty: [`wait_for_snapshot`](Self::wait_for_snapshot) gives the
    /// final one (and an error such as a full disk); the next snapshot and
    /// dropping the system wait for it too.
    pub fn snapshot_in_background(&mut self) -> Result<SnapshotReport, PersistError> {
        self.take_snapshot(true)
    }

    /// Waits for the snapshot started by
    /// [`snapshot_in_background`](Self::snapshot_in_background), if one is
    /// under way, and returns how it went.
    pub fn wait_for_snapshot(&mut self) -> Option<Result<SnapshotReport, PersistError>> {
        let persist = self.persist.as_mut()?;
        let pending = persist.pending.take()?;
        Some(match pending.join() {
            Ok((written, buffers)) => {
                persist.spare = buffers;
                written
            }
            Err(_) => Err(PersistError::NotNow(
                "finish a snapshot: its writer panicked".to_owned(),
            )),
        })
    }

    /// Loads the newest complete snapshot into this system, which must be
    /// fresh: created with [`with_storage`](Self::with_storage), its
    /// classes registered, nothing spawned or run. `Ok(None)` if there is
    /// no snapshot yet. Everything is checked before it is used (see
    /// [`crate::persist`]); on an error the system stays empty.
    pub fn load(&mut self) -> Result<Option<LoadReport>, PersistError> {
        let started = Instant::now();
        let Some(persist) = &self.persist else {
            return Err(PersistError::NoStorage);
        };
        let fresh = self.turn == 0
            && self.timers.len() == 0
            && self.shared.replies.is_unused()
            && self.shared.outside_timer_ops.locked().is_empty()
            && (self.classes.iter().flatten()).all(|c| c.shards.iter().all(|s| s.store.len() == 0));
        if !fresh {
            return Err(PersistError::NotNow(
                "load into a system that already ran or holds instances: load right after registering"
                    .to_owned(),
            ));
        }
        self.check_quiet("load")?;
        let Some(generation) = persist.generations.newest_manifest()? else {
            return Ok(None);
        };
        let gen_dir = generation.dir.clone();
        let corrupt = |file: &str, detail: String| PersistError::Corrupt {
            path: gen_dir.join(file),
            detail,
        };
        // The metadata: format and registry.
        let mut meta = Reader::new(&generation.meta);
        let magic = meta
            .u64("the magic bytes")
            .map_err(|e| corrupt("MANIFEST", e))?;
        if magic.to_le_bytes() != *META_MAGIC {
            return Err(corrupt("MANIFEST", "not a kay snapshot".to_owned()));
        }
        let format = meta.u32("the format").map_err(|e| corrupt("MANIFEST", e))?;
        if format != SNAPSHOT_FORMAT {
            return Err(PersistError::UnsupportedFormat {
                path: gen_dir,
                found: format,
                supported: SNAPSHOT_FORMAT,
            });
        }
        let lines = (|| {
            let count = meta.len(8, "the fingerprint")?;
            let lines = (0..count)
                .map(|_| meta.str("a fingerprint line").map(str::to_owned))
                .collect::<Result<Vec<_>, _>>()?;
            meta.u64("the turn")?;
            meta.finish("the metadata")?;
            Ok::<_, String>(lines)
        })()
        .map_err(|e| corrupt("MANIFEST", e))?;
        let theirs = Fingerprint::from_lines(lines);
        let ours = self.fingerprint();
        if let Some(difference) = ours.first_difference(&theirs) {
            return Err(PersistError::Fingerprint {
                path: gen_dir,
                difference: difference.to_string(),
            });
        }

        // The small state, read whole before anything changes.
        let bytes = generation.read(SYSTEM_FILE)?;
        let mut input = Reader::new(&bytes);
        let lanes = 1 + self.global_shards.len() as u32;
        let restore = &self.message_restore;
        let parsed = (|| {
            let turn = input.u64("the turn")?;
            let cycle = input.u64("the cycle")?;
            let outside_timers = input.u64("the outside timer count")?;
            let timers = Timers::decode(&mut input, |tag| restore.get(usize::from(tag)).copied())?;
            let kinds = self.shared.continuation_kinds.locked();
            let replies = crate::reply::Replies::read_saved(&mut input, |message, answer| {
                kinds.named(message, answer)
            })?;
            drop(kinds);
            let count = input.len(12, "the class count")?;
            let registered = self.classes.iter().flatten().count();
            if count != registered {
                return Err(format!("{count} classes listed, {registered} registered"));
            }
            let mut shards: Vec<ShardImage> = Vec::new();
            for _ in 0..count {
                let c = input.u32("a class")? as usize;
                if shards.last().is_some_and(|last| last.class >= c) {
                    return Err(format!("class {c} out of order"));
                }
                let Some(class) = self.classes.get(c).and_then(Option::as_ref) else {
                    return Err(format!("no class has type id {c}"));
                };
                let n = input.len(8, "the shard count")?;
                if n != class.shards.len() {
                    return Err(format!(
                        "{}: {n} shards, {} here",
                        class.shared.name,
                        class.shards.len()
                    ));
                }
                for (s, shared) in class.shared.shards.iter().enumerate() {
                    let bin_count = input.len(9, "the bin count")?;
                    let mut bins = Vec::with_capacity(bin_count);
                    for _ in 0..bin_count {
                        let bin = input.u8("a bin")?;
                        if bin > 40 || bins.last().is_some_and(|(b, _)| *b >= bin) {
                            return Err(format!("bin {bin} out of order or out of range"));
                        }
                        let run_count = input.len(16, "the run count")?;
                        let runs = (0..run_count)
                            .map(|_| {
                                Ok((input.u64("a run's origin")?, input.u64("a run's slots")?))
                            })
                            .collect::<Result<Vec<_>, String>>()?;
                        bins.push((bin, runs));
                    }
                    let (blocks, lane_ids) = shared.decode_ids(&mut input, lanes)?;
                    let timer_count = input.u64("a shard's timer count")?;
                    let spawn_turns = input.u32s("a shard's spawn rotation")?;
                    if spawn_turns.len() > self.shared.types.locked().len() {
                        return Err(
                            "a spawn rotation for more types than are registered".to_owned()
                        );
                    }
                    let handled = input.u64s("the handled counters")?;
                    if handled.len() > self.message_types.len() {
                        return Err("more handled counters than message types".to_owned());
                    }
                    let counters = ClassCounters {
                        handled,
                        no_recipient: input.u64("a counter")?,
                        stale: input.u64("a counter")?,
                        no_handler: input.u64("a counter")?,
                        kept: input.u64("a counter")?,
                    };
                    let count = input.len(30, "the waiting messages")?;
                    let mut waiting = Vec::with_capacity(count);
                    let mut spawns = Vec::new();
                    for _ in 0..count {
                        let lane = input.u32("a waiting message's lane")?;
                        let tag = input.u16("a waiting message's id")?;
                        let recipient =
                            RawID::from_u64(input.u64("a waiting message's recipient")?);
                        let origin = input.u64("a waiting message's origin")? as usize;
                        let bytes = input.slice("a waiting message")?;
                        if lane >= lanes {
                            return Err(format!("a message waits in lane {lane} of {lanes}"));
                        }
                        let spawn = tag & SPAWN_TAG != 0;
                        // A broadcast may wait in any shard, a spawn never.
                        let foreign = if recipient.is_broadcast() {
                            spawn
                        } else {
                            recipient.type_id != class.shared.type_id
                                || recipient.machine != self.config.machine
                                || !shared.owns(recipient.instance)
                        };
                        if foreign {
                            return Err(format!(
                                "a message for {recipient} waits in {}, shard {s}",
                                class.shared.name
                            ));
                        }
                        let id = tag & !SPAWN_TAG;
                        let restore = if spawn && id == UNKNOWN.0 {
                            // A spawn whose message no class handles: the
                            // record holds only the ID.
                            crate::timer::restore_timer_message::<()>
                        } else {
                            *restore
                                .get(usize::from(id))
                                .ok_or_else(|| format!("a waiting message of no type ({id})"))?
                        };
                        if spawn {
                            spawns.push(recipient);
                        }
                        let message = restore(bytes, origin)
                            .map_err(|e| format!("a waiting message fails validation: {e}"))?;
                        waiting.push(Waiting {
                            lane: crate::class::lanes::SenderLane::from_index(lane),
                            tag,
                            recipient,
                            message,
                        });
                    }
                    shards.push(ShardImage {
                        class: c,
                        shard: s,
                        bins,
                        blocks,
                        lane_ids,
                        timer_count,
                        spawn_turns,
                        counters,
                        waiting: std::sync::Mutex::new(waiting),
                        spawns,
                    });
                }
            }
            let frames = self.read_net_turn(&mut input, turn)?;
            input.finish("the system state")?;
            Ok((
                turn,
                cycle,
                outside_timers,
                (timers, replies, frames),
                shards,
            ))
        })();
        let (turn, cycle, outside_timers, (timers, replies, frames), shards) =
            parsed.map_err(|e| corrupt(SYSTEM_FILE, e))?;

        // The instances, read straight into their slots and validated one
        // by one; then each shard's ID state checked against them. Shards
        // load in parallel on the system's threads. Any error empties the
        // stores again.
        let machine = self.config.machine;
        let map = self.config.map_snapshots_on_load;
        let generation_ref = &generation;
        let mut tasks = Vec::with_capacity(shards.len());
        let mut images = shards.iter();
        for class in self.classes.iter_mut().flatten() {
            let type_id = class.shared.type_id;
            let name = class.shared.name;
            for (shard, shared) in class.shards.iter_mut().zip(class.shared.shards.iter()) {
                let image = images.next().expect("one image per shard (checked above)");
                debug_assert_eq!(image.shard, shared.shard as usize);
                tasks.push((shard, shared, image, type_id, name));
            }
        }
        let load_shard = |(shard, shared, image, type_id, name): &mut (
            &mut crate::class::Shard,
            &ShardShared,
            &ShardImage,
            crate::id::ShortTypeID,
            &'static str,
        )|
         -> Result<(u64, (u64, u64)), PersistError> {
            let file = store_file(image.class, image.shard);
            let store = &mut shard.store;
            // The slots listed must be what the file holds, before any
            // memory is set aside for them: a planted system file cannot
            // make the stores grow beyond the bytes on disk.
            let on_disk = generation_ref.checked_len(&file)?;
            let listed = (image.bins.iter())
                .flat_map(|(bin, runs)| runs.iter().map(move |&(_, slots)| (*bin, slots)))
                .try_fold(0u64, |sum, (bin, slots)| {
                    slots
                        .checked_mul(store.slot_size_of(bin) as u64)
                        .and_then(|bytes| bytes.checked_next_multiple_of(RUN_ALIGN as u64))
                        .and_then(|bytes| sum.checked_add(bytes))
                });
            if listed != Some(on_disk) {
                return Err(corrupt(
                    &file,
                    format!(
                        "the file holds {on_disk} bytes, the slots the system file lists need {}",
                        listed.map_or("more than 2^64".to_owned(), |l| l.to_string())
                    ),
                ));
            }
            let mut reader = generation_ref.reader(&file)?;
            let owned = |local: LocalInstance| image.blocks.owner(local).is_some();
            let belongs = Belongs {
                type_id: *type_id,
                machine,
                shard: shared.shard,
                shards: shared.shards,
                owned: &owned,
            };
            let loaded = store.load_image(&image.bins, &mut reader, &belongs, map);
            let bytes = match loaded {
                Ok(bytes) => bytes,
                Err(ImageError::Read(e)) => return Err(PersistError::Storage(e)),
                Err(ImageError::Invalid(e)) => {
                    // A damaged file is reported as damaged (its checksum),
                    // not by the first instance the damage made invalid.
                    reader.finish_rest()?;
                    return Err(corrupt(&file, e));
                }
            };
            // The checksum covers every byte taken (the caller empties the
            // stores on an error).
            reader.finish()?;
            let live_blocks = store.loaded_blocks();
            let (this_shard, shards_count) = (shared.shard, shared.shards);
            let lane_refs: Vec<_> = image.lane_ids.iter().map(|(l, ids)| (*l, ids)).collect();
            check_loaded(
                &image.blocks,
                &lane_refs,
                (&live_blocks, &image.spawns),
                |local: LocalInstance| store.loaded(local.instance(this_shard, shards_count)),
                lanes,
                (this_shard, shards_count),
            )
            .map_err(|e| corrupt(SYSTEM_FILE, format!("{name}, shard {}: {e}", image.shard)))?;
            Ok((store.len() as u64, bytes))
        };
        let results = crate::cycle::pool::run_each(self.pool.as_ref(), &mut tasks, load_shard);
        drop(tasks);
        let mut loaded = 0u64;
        let (mut state_bytes, mut mapped_bytes) = (0u64, 0u64);
        let mut failure = None;
        for result in results {
            match result {
                Ok((instances, (bytes, mapped))) => {
                    loaded += instances;
                    state_bytes += bytes;
                    mapped_bytes += mapped;
                }
                Err(e) => {
                    failure.get_or_insert(e);
                }
            }
        }
        if let Some(error) = failure {
            for class in self.classes.iter_mut().flatten() {
                for shard in &mut class.shards {
                    shard.store.unload();
                }
            }
            return Err(error);
        }

        // Everything checked: apply the small state.
        let mut waiting_messages = Vec::new();
        for image in shards {
            let class = self.classes[image.class].as_mut().expect("checked above");
            // SAFETY: between cycles (`&mut self`, `check_quiet`).
            unsafe { class.shared.shards[image.shard].install_ids(image.blocks, image.lane_ids) };
            let shard = &mut class.shards[image.shard];
            shard.state.world.timer_count = image.timer_count;
            shard.state.world.spawn_turns = image.spawn_turns;
            shard.state.counters = image.counters;
            let waiting =
                (image.waiting.into_inner()).unwrap_or_else(std::sync::PoisonError::into_inner);
            waiting_messages.push((image.class, image.shard, waiting));
        }

        let timer_count = timers.len();
        self.timers = timers;
        let continuations = replies.continuations();
        self.shared.replies.install(replies);
        #[cfg(feature = "net")]
        {
            (self.loaded_frames, self.loaded_spawn_turns) = frames;
        }
        #[cfg(not(feature = "net"))]
        drop(frames);
        self.turn = turn;
        self.cycle = cycle;
        self.shared
            .turn
            .store(turn, std::sync::atomic::Ordering::Relaxed);
        (self.shared.outside_timer_count)
            .store(outside_timers, std::sync::atomic::Ordering::Relaxed);
        let persist = self.persist.as_mut().expect("checked above");
        persist.next = persist.next.max(generation.number + 1);
        self.send_loaded(Loaded {
            turn,
            generation: generation.number,
        });
        // The waiting messages back in their lanes, in order (behind
        // `Loaded`, which comes first), the lanes raised for the next
        // cycle as their senders left them.
        let mut raised = Vec::new();
        for (class, shard, waiting) in waiting_messages {
            let class = self.classes[class].as_ref().expect("checked above");
            let shared = &class.shared.shards[shard];
            for waiting in waiting {
                let lane = shared.lane(waiting.lane);
                let message_id = crate::registry::MessageID(waiting.tag);
                // SAFETY: between cycles: nothing else writes to the lane.
                let first = unsafe {
                    waiting
                        .message
                        .write_record(lane, message_id, waiting.recipient)
                };
                if waiting.recipient.is_broadcast() {
                    shared.mark_broadcast();
                }
                if waiting.lane == crate::class::lanes::SenderLane::OUTSIDE {
                    shared.raise_from_outside();
                } else if first {
                    raised.push(crate::class::lanes::RaisedLane::new(
                        shared.global,
                        waiting.lane,
                        Some(std::ptr::NonNull::from(lane)),
                    ));
                }
            }
        }
        self.raised.extend(raised);
        Ok(Some(LoadReport {
            generation: generation.number,
            dir: generation.dir.clone(),
            turn,
            instances: loaded,
            state_bytes,
            mapped_bytes,
            timers: timer_count,
            continuations,
            took: started.elapsed(),
        }))
    }

    /// Writes the networked part of a snapshot (the end of the `system`
    /// file): nothing but a 0 for a system without networking; else its
    /// machine, the topology's size and, once connected, every peer's
    /// batch frames of this turn, which this machine applies at the start
    /// of the next (waiting until every peer finished this turn).
    fn write_net_turn(&mut self, system: &mut Writer) -> Result<(), PersistError> {
        #[cfg(feature = "net")]
        if let Some(config) = &self.config.net {
            system.u8(1);
            system.u8(self.config.machine.0);
            system.len(config.machines.len());
            let (frames, spawn_turns) = match self.net.as_mut() {
                Some(net) => (
                    net.frames_of_turn(self.turn)
                        .map_err(|e| PersistError::NotNow(format!("snapshot now: {e}")))?,
                    net.spawn_turns().to_vec(),
                ),
                None => (Vec::new(), Vec::new()),
            };
            system.len(frames.len());
            for (machine, frames) in frames {
                system.u8(machine);
                system.len(frames.len());
                for frame in frames {
                    system.slice(&frame);
                }
            }
            // The rotation over shards of spawns from other machines.
            system.u32s(&spawn_turns);
            return Ok(());
        }
        system.u8(0);
        Ok(())
    }

    /// Reads and checks what [`write_net_turn`](Self::write_net_turn)
    /// wrote: a networked snapshot loads only into a system of the same
    /// machine and topology size (and a plain one only into a plain one),
    /// each peer listed once, every frame a valid batch of turn `turn`.
    #[cfg(feature = "net")]
    fn read_net_turn(&self, input: &mut Reader<'_>, turn: u64) -> Result<NetFrames, String> {
        let networked = input.u8("whether the system was networked")?;
        let (me, config) = (self.config.machine, self.config.net.as_ref());
        let Some(config) = config else {
            return match networked {
                0 => Ok((Vec::new(), Vec::new())),
                _ => Err("a snapshot of a networked machine, loaded without networking".to_owned()),
            };
        };
        if networked != 1 {
            return Err("a snapshot of a system without networking, loaded networked".to_owned());
        }
        let machine = input.u8("the machine")?;
        let machines = input.len(0, "the topology's size")?;
        if machine != me.0 || machines != config.machines.len() {
            return Err(format!(
                "a snapshot of machine {machine} of {machines}, loaded as machine {} of {}",
                me.0,
                config.machines.len()
            ));
        }
        let count = input.len(9, "the peers' turns")?;
        let mut peers = Vec::with_capacity(count);
        for _ in 0..count {
            let peer = input.u8("a peer")?;
            if usize::from(peer) >= machines
                || peer == me.0
                || peers.last().is_some_and(|(last, _)| *last >= peer)
            {
                return Err(format!("peer {peer} out of order or not a peer"));
            }
            let n = input.len(8, "a peer's frames")?;
            let frames = (0..n)
                .map(|_| input.slice("a frame").map(::bytes::Bytes::copy_from_slice))
                .collect::<Result<Vec<_>, _>>()?;
            crate::net::check_frames(me, turn, &frames, &self.message_net_ops)
                .map_err(|e| format!("machine {peer}'s turn {turn}: {e}"))?;
            peers.push((peer, frames));
        }
        let spawn_turns = input.u32s("the network's spawn rotation")?;
        if spawn_turns.len() > self.shared.types.locked().len() {
            return Err("a network spawn rotation for more types than are registered".to_owned());
        }
        Ok((peers, spawn_turns))
    }

    #[cfg(not(feature = "net"))]
    fn read_net_turn(&self, input: &mut Reader<'_>, _: u64) -> Result<NetFrames, String> {
        match input.u8("whether the system was networked")? {
            0 => Ok(NetFrames::new()),
            _ => Err("a snapshot of a networked machine; this build has no networking".to_owned()),
        }
    }

    /// Sends `loaded` to every instance of the classes that handle it.
    fn send_loaded(&mut self, loaded: Loaded) {
        let id = self
            .shared
            .message_ids
            .locked()
            .get(&std::any::TypeId::of::<Loaded>())
            .copied();
        let Some(id) = id else { return };
        let machine = self.config.machine;
        let handling: Vec<RawID> = (self.classes.iter().flatten())
            .filter(|class| class.handlers.get(id).is_some())
            .map(|class| RawID::local_broadcast(class.shared.type_id, machine))
            .collect();
        let world = self.outside_world();
        for everyone in handling {
            world.send(everyone, loaded);
        }
    }

    /// The manifest's metadata: magic, format, fingerprint lines, turn.
    fn snapshot_meta(&self) -> Vec<u8> {
        let mut meta = Writer::default();
        meta.bytes.extend_from_slice(META_MAGIC);
        meta.u32(SNAPSHOT_FORMAT);
        let fingerprint = self.fingerprint();
        meta.len(fingerprint.lines().len());
        for line in fingerprint.lines() {
            meta.str(line);
        }
        meta.u64(self.turn);
        meta.bytes
    }

    /// Refuses to `what` (snapshot or load) while anything is in flight.
    fn check_quiet(&self, what: &str) -> Result<(), PersistError> {
        let refuse = |why: &str| Err(PersistError::NotNow(format!("{what} now: {why}")));
        if !self.jobs.is_empty() {
            return refuse("a message cycle did not complete");
        }
        // A snapshot carries waiting messages; a load must not find any.
        if what == "load" && self.messages_waiting() {
            return refuse("messages are waiting in inboxes (load before sending any)");
        }
        if !self.gathered.is_empty() {
            return refuse(
                "a cycle's partial answers wait to be delivered (run another turn first)",
            );
        }
        if self.panicked {
            return refuse("the system is panicked (see panic_report; clear_panic first)");
        }
        let kept = (self.classes.iter().flatten()).any(|c| {
            c.shards
                .iter()
                .any(|s| s.resume || s.state.kept.as_ref().is_some_and(|k| !k.is_empty()))
        });
        if kept {
            return refuse(
                "messages kept while panicked wait to be handled (run another turn first)",
            );
        }
        #[cfg(feature = "net")]
        if let Some(net) = &self.config.net {
            if net.max_turn_distance != 0 {
                return refuse(
                    "a networked system is snapshotted in lockstep only (NetConfig::max_turn_distance 0)",
                );
            }
            if what == "load" && self.net.is_some() {
                return refuse("the system is connected already: load before connecting");
            }
            let outside = (self.shared.net.as_ref())
                .is_some_and(|shared| shared.outside.locked().iter().any(|o| !o.is_empty()));
            if outside {
                return refuse(
                    "messages to other machines sent from outside since the last turn wait to go \
                     (run a turn first, or snapshot before sending them)",
                );
            }
        }
        Ok(())
    }
}

/// Writes generation `number` (the store files, on `pool`'s threads if
/// given, then the system file) and commits it without pruning.
fn write_generation(
    generations: &Generations,
    number: u64,
    stores: &[(String, Vec<&[u8]>)],
    system: &[u8],
    meta: &[u8],
    pool: Option<&rayon::ThreadPool>,
) -> Result<PathBuf, PersistError> {
    let mut writer = generations.begin(number)?;
    // The stores' files at once on several threads (copies into the page
    // cache and syncs overlap), then the rest in order.
    let mut stores: Vec<&(String, Vec<&[u8]>)> = stores.iter().collect();
    let entries = crate::cycle::pool::run_each(pool, &mut stores, |(name, parts)| {
        writer.write_file(name, parts)
    });
    for entry in entries {
        writer.add(entry?)?;
    }
    writer.file(SYSTEM_FILE, &[system])?;
    Ok(writer.commit_only(meta)?)
}
