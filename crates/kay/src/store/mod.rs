//! The instance store: every instance of one actor class, densely in chunks.
//!
//! Instances sit in *bins*, each a `chunky::Arena` of equal-sized slots: the
//! *exact* bin holds instances without a dynamic part in slots of exactly
//! their static size; *sized* bins hold instances with dynamic parts in slots
//! of a power-of-two size. Each bin is kept dense: removing an instance moves
//! the bin's last instance into the hole, so a broadcast is a linear scan.
//!
//! The *index* maps an instance number to its bin, slot and version; it is
//! the only per-instance overhead (8 bytes) besides the slot's rounding.
//!
//! Moving an instance between slots always goes through `Compact::compact`
//! (a plain copy for classes without dynamic parts), because compact
//! containers point into their own slot.
//!
//! Most of the store is compiled once, not once per class: [`Store`] knows
//! its actor type only through an [`ActorOps`] table (sizes and a few
//! function pointers). [`InstanceStore<A>`] is a typed view of a `Store`
//! with what must be generic to be fast: delivering a message (the handler
//! inlined) and a broadcast's scan (the handler inlined into the loop).

pub(crate) mod index;

use std::any::Any;
use std::marker::PhantomData;
use std::ptr::NonNull;

use chunky::{Arena, ChunkSize, SlotIndex, Storage};
use compact::{Compact, static_size_bytes};

use crate::actor::{Actor, Fate};
use crate::id::{RawID, TypedID};

use crate::cycle::panic::{Caught, PanicPolicy, catch};
use crate::store::index::{Index, Location};

const EXACT: u8 = 0;

/// The cache line size kay assumes for prefetching.
const CACHE_LINE: usize = 64;

/// The most cache lines of one instance prefetched ahead of its message:
/// enough for actors up to 256 bytes; handlers of larger actors mostly
/// touch a part of them.
const PREFETCH_LINES: usize = 4;

/// The default chunk size of a bin.
const BIN_CHUNK: usize = 1 << 20;

/// Where a snapshot's store file starts each run of slots: on a page
/// boundary (the rest of the page before it is zeros), so that a run that
/// fills a chunk can be mapped from the file as that chunk.
pub(crate) const RUN_ALIGN: usize = 4096;

/// Why [`Store::load_image`] failed.
pub(crate) enum ImageError {
    /// Reading the file (or making room for its runs) failed.
    Read(chunky::Error),
    /// The file holds something it must not (what).
    Invalid(String),
}

/// What a [`Store`] knows of its actor type: sizes, and the type's compact
/// operations as function pointers over raw slots. Made by
/// [`of`](Self::of); every pointer it is called with points at a live
/// instance of that type (or a slot for one).
#[derive(Clone, Copy)]
pub(crate) struct ActorOps {
    static_size: usize,
    is_static: bool,
    /// `Compact::FIELDS` of the class (for the fingerprint).
    fields: &'static str,
    /// Whether validating an instance loaded from a snapshot may write to
    /// it: it may have dynamic parts (their pointers are rewritten) or
    /// process-local parts (emptied). Such stores are read, not mapped:
    /// writing would copy their pages one by one (see `load_image`).
    validation_writes: bool,
    needs_drop: bool,
    compact: unsafe fn(*mut u8, *mut u8, *mut u8),
    total_size: unsafe fn(*const u8) -> usize,
    is_still_compact: unsafe fn(*const u8) -> bool,
    drop: unsafe fn(*mut u8),
    id: unsafe fn(*const u8) -> RawID,
    as_any: fn(*const u8) -> *const dyn Any,
    /// Validates a run of instances' slots (from a snapshot; slots of the
    /// given size, the first written at the given address), rewriting
    /// their pointers for where they are now; on an error, how many were
    /// valid before the one that is not. The IDs of the valid ones go
    /// into the slice (one per slot).
    validate_run: fn(&mut [u8], usize, usize, &mut [RawID]) -> RunValidation,
}

impl ActorOps {
    /// The table of actor type `A`.
    pub(crate) fn of<A: Actor>() -> ActorOps {
        ActorOps {
            static_size: static_size_bytes::<A>(),
            is_static: A::IS_STATIC,
            fields: A::FIELDS,
            validation_writes: !A::IS_STATIC || A::PROCESS_LOCAL,
            needs_drop: std::mem::needs_drop::<A>(),
            compact: compact_raw::<A>,
            total_size: total_size_raw::<A>,
            is_still_compact: is_still_compact_raw::<A>,
            drop: drop_raw::<A>,
            id: id_raw::<A>,
            as_any: as_any_raw::<A>,
            validate_run: validate_run::<A>,
        }
    }

    /// The bin and slot size for an instance of `total_size` bytes.
    fn bin_for(&self, total_size: usize) -> (u8, usize) {
        let exact = self.static_size.max(8);
        if total_size <= exact {
            (EXACT, exact)
        } else {
            let slot = total_size.next_power_of_two().max(16);
            ((slot.trailing_zeros() - 2) as u8, slot)
        }
    }

    /// Whether the instance at `actor`, in bin `bin`, must move after a
    /// handler ran (see [`InstanceStore::must_move`]).
    ///
    /// # Safety
    /// `actor` points at a live instance.
    unsafe fn must_move(&self, bin: u8, actor: *const u8) -> bool {
        // SAFETY: a live instance (caller).
        !self.is_static
            && unsafe {
                !(self.is_still_compact)(actor)
                    || shrunk(bin, self.bin_for((self.total_size)(actor)).1)
            }
    }
}

/// # Safety
/// `from` and `to` point at an `A` and a slot for it as `Compact::compact`
/// requires, `dynamic` behind `to`'s static part.
unsafe fn compact_raw<A: Compact>(from: *mut u8, to: *mut u8, dynamic: *mut u8) {
    // SAFETY: forwarded from the caller.
    unsafe { A::compact(from.cast(), to.cast(), dynamic) }
}

/// # Safety
/// `actor` points at a live `A`.
unsafe fn total_size_raw<A: Compact>(actor: *const u8) -> usize {
    // SAFETY: forwarded from the caller.
    unsafe { (*actor.cast::<A>()).total_size_bytes() }
}

/// # Safety
/// `actor` points at a live `A`.
unsafe fn is_still_compact_raw<A: Compact>(actor: *const u8) -> bool {
    // SAFETY: forwarded from the caller.
    unsafe { (*actor.cast::<A>()).is_still_compact() }
}

/// # Safety
/// `actor` points at a live `A`, dropped here once.
unsafe fn drop_raw<A>(actor: *mut u8) {
    // SAFETY: forwarded from the caller.
    unsafe { std::ptr::drop_in_place(actor.cast::<A>()) }
}

/// # Safety
/// `actor` points at a live `A`.
unsafe fn id_raw<A: Actor>(actor: *const u8) -> RawID {
    // SAFETY: forwarded from the caller.
    unsafe { (*actor.cast::<A>()).id().as_raw() }
}

/// How a run of slots validated: on an error, how many were valid before
/// the one that is not, and why.
type RunValidation = Result<(), (usize, compact::ValidationError)>;

/// Validates each slot of `run` as an `A` (written at `origin`), and
/// puts the ID of each valid one into `ids` (as long as the run's slots):
/// one pass over the run.
fn validate_run<A: Actor>(
    run: &mut [u8],
    slot_size: usize,
    origin: usize,
    ids: &mut [RawID],
) -> RunValidation {
    // Saved by this program: an `External` comes back empty.
    let limits = compact::Limits {
        reset_process_local: true,
        ..compact::Limits::default()
    };
    for (k, (slot, id)) in run.chunks_exact_mut(slot_size).zip(ids).enumerate() {
        let written = origin.wrapping_add(k * slot_size);
        match compact::validate_in_place_with::<A>(slot, written, &limits) {
            Ok(actor) => *id = actor.id().as_raw(),
            Err(e) => return Err((k, e)),
        }
    }
    Ok(())
}

/// Which IDs a store being loaded accepts: of its class, shard and
/// machine, not a broadcast, in a block of instance numbers that was
/// handed out (`owned`, asked once per block).
pub(crate) struct Belongs<'a> {
    pub(crate) type_id: crate::id::ShortTypeID,
    pub(crate) machine: crate::id::MachineID,
    pub(crate) shard: u32,
    pub(crate) shards: u32,
    pub(crate) owned: &'a dyn Fn(index::LocalInstance) -> bool,
}

/// Why a store being loaded refused an instance.
#[derive(Clone, Copy)]
enum Refusal {
    Foreign,
    NoBlock,
    Twice,
}

/// Checks the IDs `ids` of a run being loaded: each must belong (see
/// [`Belongs`]) and not be met before (`seen`). A refusal is only numbered
/// here and put into words by [`refusal`].
#[inline(never)]
fn mark_run(
    seen: &mut index::Seen,
    ids: &[RawID],
    belongs: &Belongs<'_>,
) -> Result<(), (usize, Refusal)> {
    let (type_id, machine, shard, shards) = (
        belongs.type_id,
        belongs.machine,
        belongs.shard,
        belongs.shards,
    );
    // Every ID of this class, machine and shard, none a broadcast: one
    // branch-free pass; where one is not, the IDs before it are marked
    // first, so that the first refusal in order is the one reported.
    let foreign = |id: &RawID| {
        (id.type_id != type_id)
            | (id.machine != machine)
            | id.is_broadcast()
            | (crate::class::lanes::shard_number(id.instance, shards) != shard)
    };
    let (valid, foreign_at) = if ids.iter().fold(false, |any, id| any | foreign(id)) {
        let at = ids.iter().position(foreign).expect("one is foreign");
        (&ids[..at], Some(at))
    } else {
        (ids, None)
    };
    // Each block's ownership is checked before room is made for it: the
    // memory grows with the blocks handed out, not with any number an
    // instance claims.
    let owned = belongs.owned;
    seen.insert_run(valid, |local| {
        if owned(local) {
            Ok(())
        } else {
            Err(Refusal::NoBlock)
        }
    })
    .map_err(|(j, why)| (j, why.unwrap_or(Refusal::Twice)))?;
    foreign_at.map_or(Ok(()), |at| Err((at, Refusal::Foreign)))
}

/// The bytes a load validates and checks the IDs of at a time: right
/// after the checksum took them, while they are in the L1 cache.
const PIECE: usize = 32 << 10;

/// Validates the instances in `segment` (whole slots of `slot_size`
/// bytes, the first written at `origin`, of bin `bin`), counts them as
/// validated (`validated`: from now on they are dropped if the load
/// fails), and checks their IDs (`seen`); `len` counts them in.
fn take_segment(
    (ops, seen, ids, belongs): (ActorOps, &mut index::Seen, &mut Vec<RawID>, &Belongs<'_>),
    segment: &mut [u8],
    (slot_size, origin, bin): (usize, usize, u8),
    (validated, len): (&mut usize, &mut usize),
) -> Result<(), ImageError> {
    let slots = segment.len() / slot_size;
    ids.clear();
    ids.resize(slots, RawID::default());
    if let Err((valid, e)) = (ops.validate_run)(segment, slot_size, origin, ids) {
        *validated += valid;
        return Err(ImageError::Invalid(format!(
            "instance {} of bin {bin} fails validation: {e}",
            *validated
        )));
    }
    *validated += slots;
    mark_run(seen, ids, belongs).map_err(|(j, why)| ImageError::Invalid(refusal(ids[j], why)))?;
    *len += slots;
    Ok(())
}

/// Puts [`index_run`]'s refusal of `id` into words.
#[cold]
fn refusal(id: RawID, why: Refusal) -> String {
    match why {
        Refusal::Foreign => format!("instance {id} does not belong in this store"),
        Refusal::NoBlock => format!("instance {id} lies in a block no lane was given"),
        Refusal::Twice => format!("instance {id} is listed twice"),
    }
}

fn as_any_raw<A: Any>(actor: *const u8) -> *const dyn Any {
    actor.cast::<A>() as *const dyn Any
}

/// Whether an instance in bin `bin` whose fitting slot is `fits` bytes
/// shrank so much that it moves to a smaller slot: the slot that fits it is
/// a quarter of its slot or less. The move copies at most a quarter of the
/// slot, which the shrink freed, so its cost is amortised over the shrink,
/// and an actor that shrinks and grows back a little never moves.
#[inline]
fn shrunk(bin: u8, fits: usize) -> bool {
    bin != EXACT && fits * 4 <= 1usize << (bin + 2)
}

/// Formats an instance for panic reports (given as `&dyn Any`, which is
/// the class's actor type).
pub(crate) type DebugState = Box<dyn Fn(&dyn Any) -> String + Send + Sync>;

/// All instances of one actor class in one shard, knowing the class only
/// through its [`ActorOps`]. See [`InstanceStore`] for the typed view.
pub(crate) struct Store {
    ops: ActorOps,
    storage: Storage,
    ident: String,
    /// Bin 0 is exact; bin `k > 0` holds slots of `1 << (k + 2)` bytes.
    bins: Vec<Option<Arena>>,
    index: Index,
    len: usize,
    /// The instance the last message went to, and where it is: messages to
    /// the same instance (conversations, ping-pong) skip the index. Cleared
    /// whenever an instance moves or is removed.
    last: Option<(RawID, NonNull<u8>, u8)>,
    /// Whether chunks are mapped from a snapshot's file (see
    /// [`settle`](Self::settle)).
    mapped: bool,
    /// The local numbers a load met, while the index is not built yet
    /// (see [`settle`](Self::settle)).
    seen: Option<index::Seen>,
    /// What to do with an instance whose handler panicked.
    pub(crate) policy: PanicPolicy,
    /// Formats an instance for panic reports, if the class registered it.
    pub(crate) debug: Option<DebugState>,
    /// A panic of an instance's `Drop`, caught in `remove`, for the caller
    /// to report.
    drop_panic: Option<Box<dyn Any + Send>>,
}

/// What happened to a message for one instance.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Delivery {
    /// Handled; the actor lives on.
    Handled,
    /// Handled; the actor died and was removed (its instance number is returned).
    Died,
    /// No such instance (dead, never spawned, or a stale version).
    NoRecipient,
    /// The handler panicked (caught); the instance died if `died`.
    Panicked {
        /// Whether the class's policy removed it.
        died: bool,
    },
}

impl Store {
    /// An empty store of the class with `ops`, named `ident` in `storage`,
    /// for a class of `shards` shards.
    pub(crate) fn new(storage: Storage, ident: String, shards: u32, ops: ActorOps) -> Self {
        Store {
            ops,
            storage,
            ident,
            bins: Vec::new(),
            index: Index::new(shards),
            len: 0,
            last: None,
            mapped: false,
            seen: None,
            policy: PanicPolicy::Stop,
            debug: None,
            drop_panic: None,
        }
    }

    /// The static size of the class's instances, and whether they have no
    /// dynamic part (for the fingerprint).
    pub(crate) fn layout(&self) -> (usize, bool, &'static str) {
        (self.ops.static_size, self.ops.is_static, self.ops.fields)
    }

    /// The store as a pointer for the thunks of its class.
    pub(crate) fn as_ptr(&mut self) -> *mut () {
        (self as *mut Store).cast()
    }

    /// The number of live instances.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    fn arena(&mut self, bin: u8) -> &mut Arena {
        let slot_size = if bin == EXACT {
            self.ops.bin_for(0).1
        } else {
            1usize << (bin + 2)
        };
        open_bin(&mut self.bins, &self.storage, &self.ident, bin, slot_size)
    }

    /// Starts loading the index entry of `instance` into the cache.
    #[inline]
    pub(crate) fn prefetch_index(&self, instance: u32) {
        if let Some(entry) = self.index.entry(instance) {
            crate::prefetch::read(entry);
        }
    }

    /// Starts loading instance `id` into the cache (if it exists): every
    /// cache line its static part touches, up to [`PREFETCH_LINES`]. A slot
    /// that straddles a line boundary (a 48-byte actor does for every other
    /// slot) would otherwise pay a second miss for the fields past it.
    #[inline]
    pub(crate) fn prefetch_instance(&self, id: RawID) {
        if let Some(start) = self.index.find(id.instance, id.version) {
            crate::prefetch::read(start);
            let size = self.ops.static_size;
            if size > 1 {
                // The line of the last byte, and any between: a few
                // prefetches (redundant ones hit the same line and cost
                // nearly nothing).
                let last = start.wrapping_add(size - 1);
                let lines =
                    (last.addr() / CACHE_LINE - start.addr() / CACHE_LINE).min(PREFETCH_LINES - 1);
                for line in 1..=lines {
                    crate::prefetch::read(start.wrapping_add(line * CACHE_LINE));
                }
            }
        }
    }

    /// Moves the instance at `value` (of `total_size` bytes; the caller
    /// forgets it) into a new slot of the right bin; returns its location.
    ///
    /// # Safety
    /// `value` points at a live instance of the class, which is moved out.
    unsafe fn place(&mut self, value: *mut u8, total_size: usize) -> Location {
        let (bin, _) = self.ops.bin_for(total_size);
        let static_size = self.ops.static_size;
        let compact = self.ops.compact;
        let arena = self.arena(bin);
        let slot = arena
            .push()
            .unwrap_or_else(|e| panic!("cannot grow the instance store: {e}"));
        let dest = arena.slot_ptr(slot).as_ptr();
        // SAFETY: the slot is aligned (chunks are page-aligned, slot sizes are
        // multiples of 8 and actors have an alignment of at most 8, checked
        // at registration) and holds `total_size` bytes; the value is moved
        // in (caller).
        unsafe { compact(value, dest, dest.add(static_size)) };
        Location {
            ptr: dest,
            bin,
            version: 0,
        }
    }

    /// Adds instance `id` from the instance at `value` (moved out; see
    /// [`place`](Self::place)), whose number must be vacant.
    ///
    /// # Safety
    /// As for `place`.
    unsafe fn insert_raw(&mut self, id: RawID, value: *mut u8, total_size: usize) {
        self.last = None;
        debug_assert!(
            !self.is_occupied(id.instance),
            "inserting over a live instance"
        );
        // SAFETY: forwarded from the caller.
        let mut location = unsafe { self.place(value, total_size) };
        location.version = id.version;
        self.index.set(id.instance, location);
        self.len += 1;
    }

    /// Whether instance number `instance` holds a live instance (any version).
    pub(crate) fn is_occupied(&self, instance: u32) -> bool {
        self.index.live(instance).is_some()
    }

    /// Removes instance number `instance`, dropping it if `drop` (else it was
    /// moved out), and moves its bin's last instance into the hole. Returns
    /// the slot the moved instance came from (`None` if the hole was last).
    ///
    /// The last instance must be compact (it fits its slot): outside a
    /// handler every instance is, and handlers' spills are re-compacted
    /// right after the handler.
    fn remove(&mut self, instance: u32, drop: bool) -> Option<usize> {
        self.last = None;
        let location = self.index.live(instance).expect("removing a live instance");
        let hole = location.ptr;
        if drop && self.ops.needs_drop {
            let drop_raw = self.ops.drop;
            // SAFETY: the slot holds a live, valid instance that is dropped once
            // and then overwritten or freed. If its `Drop` panics, the drop
            // glue has still dropped every field, so the slot is freed all the
            // same and the panic is reported by the caller.
            if let Err(payload) = catch(|| unsafe { drop_raw(hole) }) {
                self.drop_panic = Some(payload);
            }
        }
        self.index.vacate(instance);
        self.len -= 1;
        let ops = self.ops;
        let arena = self.bins[location.bin as usize]
            .as_mut()
            .expect("bin of a live instance");
        let last = SlotIndex::new(arena.slot_count() as u32 - 1);
        let mut moved_from = None;
        let from = arena.slot_ptr(last).as_ptr();
        if from != hole {
            // SAFETY: `from` holds a live, compact instance (see above), `hole`
            // is a distinct slot of the same size whose occupant was dropped or
            // moved out, so the moved instance's dynamic part fits behind its
            // static part there.
            let moved = unsafe {
                debug_assert!((ops.is_still_compact)(from));
                (ops.compact)(from, hole, hole.add(ops.static_size));
                (ops.id)(hole).instance
            };
            self.index.set_ptr(moved, hole);
            moved_from = Some(last.get() as usize);
        }
        // Slots beyond a bin's end stay zero, so that two runs reaching
        // the same instances have the same bytes (snapshots compare equal
        // whatever lived in a slot before; see `crate::persist`).
        arena.at_mut(last).fill(0);
        arena.free(last);
        moved_from
    }

    /// Moves instance `instance`, which spilled to the heap in a handler (or
    /// shrank, see [`shrunk`]), into a new slot that fits it, and fills its
    /// old slot with the last of its bin. Returns where that last instance
    /// came from (see `remove`).
    #[inline(never)]
    fn recompact(&mut self, instance: u32) -> Option<usize> {
        self.last = None;
        let old = self
            .index
            .live(instance)
            .expect("re-compacting a live instance");
        let from = old.ptr;
        let ops = self.ops;
        // SAFETY: `from` holds a live instance.
        let total = unsafe { (ops.total_size)(from) };
        let (bin, _) = ops.bin_for(total);
        let arena = self.arena(bin);
        let slot = arena
            .push()
            .unwrap_or_else(|e| panic!("cannot grow the instance store: {e}"));
        let dest = arena.slot_ptr(slot).as_ptr();
        // SAFETY: `dest` is a fresh slot large enough for the whole instance,
        // disjoint from the old slot (whose compact parts stay alive until it
        // is freed by `remove` below) and from the instance's heap parts.
        unsafe { (ops.compact)(from, dest, dest.add(ops.static_size)) };
        // The old slot's occupant was moved out: free it without dropping.
        let moved_from = self.remove(instance, false);
        // If the new slot was its bin's last, `remove` moved it into the hole.
        let ptr = match moved_from {
            Some(from) if bin == old.bin && from == slot.get() as usize => old.ptr,
            _ => dest,
        };
        self.index.set(
            instance,
            Location {
                ptr,
                bin,
                version: old.version,
            },
        );
        self.len += 1;
        moved_from
    }

    fn bin_len(&self, bin: u8) -> usize {
        self.bins[bin as usize]
            .as_ref()
            .map_or(0, Arena::slot_count)
    }

    /// After a handler of instance `id` (at `ptr`, in bin `bin`) ran or
    /// panicked (`panicked`), when it died (`fate` is `Die`) or must move:
    /// removes or moves it.
    #[inline(never)]
    fn settle_event(
        &mut self,
        id: RawID,
        fate: Fate,
        panicked: bool,
        caught: &mut Vec<Caught>,
    ) -> Delivery {
        if fate == Fate::Die {
            self.remove(id.instance, true);
            let drop_panicked = self.report_drop_panic(id, caught);
            return if panicked || drop_panicked {
                Delivery::Panicked { died: true }
            } else {
                Delivery::Died
            };
        }
        self.recompact(id.instance);
        if panicked {
            Delivery::Panicked { died: false }
        } else {
            Delivery::Handled
        }
    }

    /// Cleans up after a handler of instance `id` panicked (with `payload`)
    /// and unwound out of [`InstanceStore::deliver`]: reports the panic and
    /// applies the class's [`PanicPolicy`] (the instance lives on, possibly
    /// re-compacted, or is removed).
    #[cold]
    #[inline(never)]
    pub(crate) fn recover(
        &mut self,
        id: RawID,
        payload: Box<dyn Any + Send>,
        caught: &mut Vec<Caught>,
    ) -> Delivery {
        let Some(location) = self.index.find_location(id.instance, id.version) else {
            // Not a handler's panic on a live instance (cannot happen for
            // records that reached `deliver`): report it all the same.
            caught.push(Caught::new(id, payload, None));
            return Delivery::Panicked { died: false };
        };
        let ptr = location.ptr;
        // SAFETY: the instance is still live at `ptr`: unwinding left it
        // in place, possibly spilled.
        let fate = unsafe { self.caught(ptr, payload, caught) };
        // SAFETY: as above.
        if fate == Fate::Die || unsafe { self.ops.must_move(location.bin, ptr) } {
            self.settle_event(id, fate, true, caught)
        } else {
            Delivery::Panicked { died: false }
        }
    }

    /// Records the panic of the handler of the instance at `actor`; returns
    /// the fate the class's policy gives it.
    ///
    /// # Safety
    /// `actor` points at a live instance of the class.
    #[cold]
    unsafe fn caught(
        &self,
        actor: *const u8,
        payload: Box<dyn Any + Send>,
        caught: &mut Vec<Caught>,
    ) -> Fate {
        let debug = self.debug.as_ref().map(|debug| {
            // SAFETY: a live instance (caller), of the class's type.
            let any = unsafe { &*(self.ops.as_any)(actor) };
            catch(|| debug(any)).unwrap_or_else(|_| "<its Debug panicked>".to_owned())
        });
        // SAFETY: as above.
        let id = unsafe { (self.ops.id)(actor) };
        caught.push(Caught::new(id, payload, debug));
        if self.policy == PanicPolicy::RemoveInstance {
            Fate::Die
        } else {
            Fate::Live
        }
    }

    /// Reports a panic of the `Drop` of the instance `id` just removed;
    /// returns whether there was one.
    #[inline]
    fn report_drop_panic(&mut self, id: RawID, caught: &mut Vec<Caught>) -> bool {
        match self.drop_panic.take() {
            Some(payload) => {
                caught.push(Caught::new(id, payload, None));
                true
            }
            None => false,
        }
    }

    /// A scan of every bin up to its length now.
    #[inline(never)]
    fn start_scan(&self) -> Scan {
        Scan {
            ends: (0..self.bins.len())
                .map(|b| self.bin_len(b as u8))
                .collect(),
            bin: 0,
            at: 0,
            current: 0,
        }
    }

    /// After a handler of the broadcast panicked (with `payload`) on the
    /// instance at `scan.current`: reports it, applies the policy and moves
    /// the scan on.
    #[cold]
    #[inline(never)]
    fn scan_caught(
        &mut self,
        scan: &mut Scan,
        payload: Box<dyn Any + Send>,
        died: &mut Vec<RawID>,
        caught: &mut Vec<Caught>,
    ) {
        // The instance at `current` panicked; it is still there.
        let q = scan.current;
        let arena = self.bins[scan.bin].as_ref().expect("bin being scanned");
        let actor = arena.slot_ptr(SlotIndex::new(q as u32)).as_ptr();
        // SAFETY: slot `q` held the live instance being handled.
        let (fate, moves, id) = unsafe {
            let fate = self.caught(actor, payload, caught);
            (
                fate,
                self.ops.must_move(scan.bin as u8, actor),
                (self.ops.id)(actor),
            )
        };
        if fate == Fate::Die || moves {
            self.after_event(scan, q, fate, id, died, caught);
        } else {
            scan.at = q + 1;
        }
    }

    /// Removes (`fate` is `Die`) or re-compacts instance `id` at position `q`
    /// of the bin being scanned, and moves the scan on.
    #[inline(never)]
    fn after_event(
        &mut self,
        scan: &mut Scan,
        q: usize,
        fate: Fate,
        id: RawID,
        died: &mut Vec<RawID>,
        caught: &mut Vec<Caught>,
    ) {
        let end = scan.ends[scan.bin];
        let moved_from = if fate == Fate::Die {
            died.push(id);
            let moved_from = self.remove(id.instance, true);
            let _ = self.report_drop_panic(id, caught);
            moved_from
        } else {
            self.recompact(id.instance)
        };
        (scan.at, scan.ends[scan.bin]) = match moved_from {
            // `q` was the last slot: the bin now ends there.
            None => (q, end.min(q)),
            // An already visited instance moved into `q`.
            Some(from) if from >= end => (q + 1, end),
            // The last unvisited instance moved into `q`: visit it next.
            Some(_) => (q, end - 1),
        };
    }

    /// Bytes of slots in use (for statistics).
    pub(crate) fn slot_bytes(&self) -> usize {
        self.bins
            .iter()
            .flatten()
            .map(|a| a.slot_count() * a.slot_size())
            .sum()
    }
}

/// One bin of a store as a snapshot copies it: its slot size and the used
/// part of each of its chunks (whose addresses are the origins of the
/// pointers inside).
pub(crate) struct BinImage<'a> {
    pub(crate) bin: u8,
    pub(crate) slot_size: usize,
    pub(crate) runs: Vec<&'a [u8]>,
}

impl Store {
    /// The store's bins as a snapshot copies them (between cycles: every
    /// instance is compact in its slot).
    pub(crate) fn image(&self) -> Vec<BinImage<'_>> {
        (self.bins.iter().enumerate())
            .filter_map(|(bin, arena)| {
                let arena = arena.as_ref()?;
                (arena.slot_count() > 0).then(|| BinImage {
                    bin: bin as u8,
                    slot_size: arena.slot_size(),
                    runs: arena.used_runs().collect(),
                })
            })
            .collect()
    }

    /// The slot size of bin `bin`.
    pub(crate) fn slot_size_of(&self, bin: u8) -> usize {
        if bin == EXACT {
            self.ops.bin_for(0).1
        } else {
            1usize << (bin + 2)
        }
    }

    /// Loads a snapshot's instances into this empty store: `bins` lists
    /// each bin and its runs (the address the run was written at, and its
    /// slots: one run per chunk, each but the last a full chunk); `file`
    /// holds the runs one after the other, each padded to [`RUN_ALIGN`].
    /// A run that fills a chunk is mapped from the file copy-on-write
    /// where the file allows it (no copy: its pages are shared with the
    /// page cache until written), else read into a new chunk. Each
    /// instance is then validated as the class's type (its pointers
    /// rewritten for its new slot), and its ID checked (see [`Belongs`]);
    /// an instance listed twice is refused. On an error
    /// the store is left empty. Returns the bytes loaded, and how many of
    /// them were mapped rather than read; the caller
    /// checks the file's checksum ([`chunky::FileReader::finish`]) and
    /// [`unload`](Self::unload)s on a mismatch.
    pub(crate) fn load_image(
        &mut self,
        bins: &[(u8, Vec<(u64, u64)>)],
        file: &mut chunky::FileReader,
        belongs: &Belongs<'_>,
        map: bool,
    ) -> Result<(u64, u64), ImageError> {
        debug_assert_eq!(self.len, 0, "loading into an empty store");
        // Nothing in the slots is valid until checked: a failure drops only
        // what was (see `abandon`).
        let mut validated = vec![0usize; bins.len()];
        let result = self.load_image_inner(bins, file, (belongs, map), &mut validated);
        if result.is_err() {
            self.abandon(bins, &validated);
        }
        result
    }

    fn load_image_inner(
        &mut self,
        bins: &[(u8, Vec<(u64, u64)>)],
        file: &mut chunky::FileReader,
        (belongs, map): (&Belongs<'_>, bool),
        validated: &mut [usize],
    ) -> Result<(u64, u64), ImageError> {
        let ops = self.ops;
        let (mut bytes, mut mapped_bytes) = (0u64, 0u64);
        let mut ids = Vec::new();
        // The IDs are checked against a bit per local number; the index is
        // built when the store is first used (`settle`).
        let mut seen = index::Seen::new(self.index.shards());
        for (b, (bin, runs)) in bins.iter().enumerate() {
            let slot_size = self.slot_size_of(*bin);
            // A bin is listed only with slots, of a size a chunk holds.
            if runs.is_empty() || slot_size > chunky::ChunkSize::MAX.bytes() {
                return Err(ImageError::Invalid(format!(
                    "bin {bin} (slots of {slot_size} bytes) is listed with {} runs",
                    runs.len()
                )));
            }
            let arena = self.arena(*bin);
            let per_chunk = arena.slots_per_chunk();
            let chunk_bytes = arena.chunk_size().bytes();
            // Every run checked before memory is set aside for them: one
            // chunk per run, each but the last full (so the chunks are no
            // more than the file's bytes, which the caller checked).
            let runs = (runs.iter().enumerate())
                .map(|(r, &(origin, slots))| {
                    let last = r + 1 == runs.len();
                    let slots = usize::try_from(slots)
                        .ok()
                        .filter(|&n| n > 0 && n <= per_chunk && (last || n == per_chunk))
                        .ok_or_else(|| {
                            ImageError::Invalid(format!(
                                "bin {bin}: run {r} holds {slots} slots; every run holds one \
                                 to {per_chunk}, and every run but the last {per_chunk}"
                            ))
                        })?;
                    let origin = usize::try_from(origin)
                        .map_err(|_| ImageError::Invalid("a run's address overflows".to_owned()))?;
                    Ok((origin, slots))
                })
                .collect::<Result<Vec<_>, ImageError>>()?;
            // Mapped: one region for the bin's chunks, copied in one go
            // before the first cycle uses them (see `settle`).
            // Read: populated memory for all of them; also for classes
            // whose validation writes to the instances (the load would
            // copy the mapped pages one fault at a time).
            let io = |e| ImageError::Read(chunky::Error::io(file.path(), e));
            let mut region = if map && !ops.validation_writes && file.is_mappable() {
                Some(chunky::storage::ChunkRegion::new(runs.len(), chunk_bytes).map_err(io)?)
            } else {
                None
            };
            let mut fresh = if region.is_some() {
                Vec::new()
            } else {
                chunky::storage::anonymous_chunks(runs.len(), chunk_bytes).map_err(io)?
            }
            .into_iter();
            for (origin, slots) in runs {
                let run_bytes = slots * slot_size;
                let padded = run_bytes.next_multiple_of(RUN_ALIGN);
                // The instances validated (and their IDs indexed) piece by
                // piece: while the checksum's pass has them in the cache.
                let mut left = slots;
                let mut piece_origin = origin;
                let mut take = |segment: &mut [u8]| {
                    let n = left.min(segment.len() / slot_size);
                    left -= n;
                    let segment = &mut segment[..n * slot_size];
                    let origin = piece_origin;
                    piece_origin = piece_origin.wrapping_add(n * slot_size);
                    take_segment(
                        (ops, &mut seen, &mut ids, belongs),
                        segment,
                        (slot_size, origin, *bin),
                        (&mut validated[b], &mut self.len),
                    )
                };
                let piece = slot_size * (PIECE / slot_size).max(1);
                let mapped = match &mut region {
                    // SAFETY: with `Config::map_snapshots_on_load` the
                    // snapshot's files are not written while their pages
                    // are mapped, until the first cycle copies them (its
                    // docs and `kay::persist` say so, as they do of the
                    // live store files); the reader maps only files no
                    // other user may write.
                    Some(region) => unsafe { file.map_into(region, padded, piece, &mut take) }
                        .map_err(ImageError::Read)?,
                    None => None,
                };
                let (chunk, outcome) = match mapped {
                    Some(mapped) => {
                        mapped_bytes += run_bytes as u64;
                        mapped
                    }
                    None => {
                        // Read (pages larger than the runs' alignment cannot
                        // be mapped either).
                        let next = match &mut region {
                            Some(region) => region.next_chunk(),
                            None => fresh.next(),
                        };
                        let mut chunk = next.expect("a chunk for each run");
                        let outcome = file
                            .read_visiting(chunk.bytes_mut(0..padded), piece, &mut take)
                            .map_err(ImageError::Read)?;
                        (chunk, outcome)
                    }
                };
                let arena = self.bins[*bin as usize].as_mut().expect("opened above");
                if let Err(e) = arena.adopt(chunk, slots) {
                    // Cannot happen (one chunk per run, checked above); its
                    // instances are forgotten, not dropped, with the chunk.
                    validated[b] -= slots - left;
                    return Err(ImageError::Invalid(e.to_string()));
                }
                outcome?;
                bytes += run_bytes as u64;
            }
        }
        self.mapped = mapped_bytes > 0;
        self.seen = Some(seen);
        Ok((bytes, mapped_bytes))
    }

    /// Whether the store was loaded and is not ready for messages yet (see
    /// [`settle`](Self::settle)).
    #[inline]
    pub(crate) fn unsettled(&self) -> bool {
        self.mapped || self.seen.is_some()
    }

    /// Readies a loaded store for the first message cycle that handles
    /// messages for it, before it reads or writes an instance:
    ///
    /// - Chunks a load mapped from a snapshot's file are copied into
    ///   memory of the process's own, all at once: written page by page
    ///   they would cost a copy-on-write fault per 4 KiB page, and on
    ///   Linux each such fault interrupts the other running workers to
    ///   flush their TLBs (see [`crate::persist`], "Loading"). If the copy
    ///   fails (out of memory), the chunks stay mapped and are copied page
    ///   by page as they are written; nothing is lost.
    /// - The index is built from the instances' IDs, which the load
    ///   checked (each of this store, once, in a block handed out).
    #[cold]
    #[inline(never)]
    pub(crate) fn settle(&mut self) {
        if self.mapped {
            self.mapped = false;
            for arena in self.bins.iter_mut().flatten() {
                if let Err(e) = arena.privatize() {
                    tracing::warn!(
                        "kay: instances loaded from a snapshot stay mapped from it: {e}"
                    );
                }
            }
        }
        if self.seen.take().is_some() {
            let id = self.ops.id;
            let mut ids = Vec::new();
            for (bin, arena) in self.bins.iter_mut().enumerate() {
                let Some(arena) = arena else { continue };
                let slot_size = arena.slot_size();
                for run in arena.used_runs_mut() {
                    ids.clear();
                    // SAFETY: every used slot holds a live instance of the
                    // class (validated by the load, untouched since).
                    ids.extend(
                        run.chunks_exact(slot_size)
                            .map(|slot| unsafe { id(slot.as_ptr()) }),
                    );
                    // The load checked these IDs (each of this store, once),
                    // so only an `Actor::id` that now answers otherwise
                    // can be refused here: that instance stays unindexed
                    // (no message finds it), the rest go on.
                    let mut from = 0;
                    while let Err((j, _)) = self.index.insert_run(
                        &ids[from..],
                        run.as_mut_ptr().wrapping_add(from * slot_size),
                        slot_size,
                        bin as u8,
                        |_| Ok::<(), ()>(()),
                    ) {
                        tracing::error!(
                            "kay: instance {} of a loaded store answers another ID than at \
                             the load; messages cannot reach it",
                            ids[from + j]
                        );
                        from += j + 1;
                    }
                }
            }
        }
    }

    /// Whether instance number `instance` was met by the load (before the
    /// store is [settled](Self::settle)).
    pub(crate) fn loaded(&self, instance: u32) -> bool {
        self.seen
            .as_ref()
            .is_some_and(|seen| seen.contains(instance))
    }

    /// The blocks of local numbers the load met instances in (for checking
    /// a snapshot's ID state; before the store is settled).
    pub(crate) fn loaded_blocks(&self) -> Vec<u32> {
        self.seen
            .as_ref()
            .map_or_else(Vec::new, index::Seen::live_blocks)
    }

    /// Empties the store after a failed load: drops the instances that
    /// were validated (the first `validated[b]` slots of each bin of
    /// `bins`), and frees the bins without touching the rest.
    fn abandon(&mut self, bins: &[(u8, Vec<(u64, u64)>)], validated: &[usize]) {
        if self.ops.needs_drop {
            for ((bin, _), &valid) in bins.iter().zip(validated) {
                if let Some(Some(arena)) = self.bins.get(*bin as usize) {
                    for k in 0..valid {
                        // SAFETY: a validated instance, dropped once; its
                        // slot is freed with the bin below.
                        unsafe {
                            (self.ops.drop)(arena.slot_ptr(SlotIndex::new(k as u32)).as_ptr())
                        };
                    }
                }
            }
        }
        destroy_bins(&mut self.bins);
        self.forget_instances();
    }

    /// Drops every instance and empties the store (a load that failed
    /// part way leaves nothing behind).
    pub(crate) fn unload(&mut self) {
        self.drop_instances();
        self.forget_instances();
    }

    /// Drops every instance and frees the bins.
    fn drop_instances(&mut self) {
        if self.ops.needs_drop {
            for arena in self.bins.iter().flatten() {
                for slot in arena.indices() {
                    // SAFETY: every slot below `slot_count` holds a live
                    // instance, dropped exactly once here (its bin is freed
                    // right after).
                    unsafe { (self.ops.drop)(arena.slot_ptr(slot).as_ptr()) };
                }
            }
        }
        destroy_bins(&mut self.bins);
    }

    /// Empties the index and the count (after the bins were freed).
    fn forget_instances(&mut self) {
        self.index = Index::new(self.index.shards());
        self.len = 0;
        self.last = None;
        self.mapped = false;
        self.seen = None;
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.drop_instances();
    }
}

/// Where a broadcast's scan is: the end of each bin (fixed at the start,
/// shrinking as instances leave), the bin and slot to visit next, and the
/// slot being handled (for a panic).
struct Scan {
    ends: Vec<usize>,
    bin: usize,
    at: usize,
    current: usize,
}

/// A [`Store`] of actor class `A`, typed: what must be generic over the
/// handler to be fast. A `Store` whose `ActorOps` are `A`'s can be viewed
/// as one ([`InstanceStore::of`]).
#[repr(transparent)]
pub(crate) struct InstanceStore<A: Actor> {
    store: Store,
    _actor: PhantomData<A>,
}

impl<A: Actor> std::ops::Deref for InstanceStore<A> {
    type Target = Store;
    fn deref(&self) -> &Store {
        &self.store
    }
}

impl<A: Actor> std::ops::DerefMut for InstanceStore<A> {
    fn deref_mut(&mut self) -> &mut Store {
        &mut self.store
    }
}

impl<A: Actor> InstanceStore<A> {
    /// The store at `store` (from [`Store::as_ptr`]) as a store of `A`.
    ///
    /// # Safety
    /// `store` points at a live `Store` made with `ActorOps::of::<A>()`,
    /// borrowed by nothing else for `'a`.
    pub(crate) unsafe fn of<'a>(store: *mut ()) -> &'a mut InstanceStore<A> {
        // SAFETY: `InstanceStore<A>` is a transparent `Store` (caller).
        unsafe { &mut *store.cast::<InstanceStore<A>>() }
    }

    /// The store `store` (made with `ActorOps::of::<A>()`) as a store of
    /// `A`, for reading.
    ///
    /// # Safety
    /// `store` was made with `ActorOps::of::<A>()`.
    pub(crate) unsafe fn of_ref(store: &Store) -> &InstanceStore<A> {
        // SAFETY: `InstanceStore<A>` is a transparent `Store` (caller).
        unsafe { &*(store as *const Store).cast::<InstanceStore<A>>() }
    }

    /// Whether `actor`, in bin `bin`, must move after a handler ran: it
    /// spilled out of its slot, or shrank (see [`shrunk`]).
    #[inline]
    fn must_move(&self, bin: u8, actor: &A) -> bool {
        !A::IS_STATIC
            && (!actor.is_still_compact()
                || shrunk(bin, self.store.ops.bin_for(actor.total_size_bytes()).1))
    }

    /// Adds instance `id`, whose number must be vacant (see
    /// [`is_occupied`](Store::is_occupied)).
    pub(crate) fn insert(&mut self, id: RawID, value: A) {
        let total = value.total_size_bytes();
        let mut value = std::mem::ManuallyDrop::new(value);
        // SAFETY: `value` is a live `A`, the class's type, moved into the
        // store and never dropped here.
        unsafe {
            self.store
                .insert_raw(id, (&mut *value as *mut A).cast(), total)
        };
    }

    /// Runs `handler` on instance `id`, then removes it if it died or
    /// re-compacts it if it spilled.
    ///
    /// A panic of the handler unwinds out of here (no catch per message:
    /// the shard catches around its whole cycle), leaving the instance in
    /// its slot, possibly spilled; the dispatch then calls
    /// [`recover`](Store::recover).
    #[inline]
    pub(crate) fn deliver(
        &mut self,
        id: RawID,
        handler: impl FnOnce(&mut A) -> Fate,
        caught: &mut Vec<Caught>,
    ) -> Delivery {
        let (ptr, bin) = match self.store.last {
            Some((last, ptr, bin)) if last == id => (ptr.as_ptr().cast::<A>(), bin),
            _ => {
                let Some(location) = self.store.index.find_location(id.instance, id.version) else {
                    return Delivery::NoRecipient;
                };
                self.store.last = NonNull::new(location.ptr).map(|p| (id, p, location.bin));
                (location.ptr.cast::<A>(), location.bin)
            }
        };
        // SAFETY: `ptr` points at a live instance in a slot that nothing else
        // borrows while the handler runs (handlers reach other actors only by
        // messages).
        let fate = handler(unsafe { &mut *ptr });
        // SAFETY: the instance is still live at `ptr` (it may have spilled).
        if fate == Fate::Die || self.must_move(bin, unsafe { &*ptr }) {
            self.store.settle_event(id, fate, false, caught)
        } else {
            Delivery::Handled
        }
    }

    /// Runs `handler` on every instance (each exactly once, also when some
    /// die, spill or panic during the scan); pushes the IDs of those that
    /// died, and the panics caught.
    ///
    /// Each bin is scanned up to its length at the start. A death or a
    /// re-compaction at position `q` fills `q` with the bin's last instance:
    /// if that one lay inside the unscanned range it is visited next (and the
    /// range shrinks); if it lay beyond (an instance re-compacted into this
    /// bin during this scan, already visited) the scan moves on.
    ///
    /// A panic is caught around the whole scan, not each call, so the loop
    /// stays as tight as without; the scan then resumes behind the faulting
    /// instance (`Scan::current`).
    pub(crate) fn broadcast(
        &mut self,
        mut handler: impl FnMut(&mut A) -> Fate,
        died: &mut Vec<RawID>,
        caught: &mut Vec<Caught>,
    ) {
        let mut scan = self.store.start_scan();
        loop {
            let finished = catch(|| self.scan(&mut handler, &mut scan, died, caught));
            let Err(payload) = finished else { return };
            self.store.scan_caught(&mut scan, payload, died, caught);
        }
    }

    /// The scan of `broadcast` from `scan`'s position to the end.
    #[inline(always)]
    fn scan(
        &mut self,
        handler: &mut impl FnMut(&mut A) -> Fate,
        scan: &mut Scan,
        died: &mut Vec<RawID>,
        caught: &mut Vec<Caught>,
    ) {
        while scan.bin < scan.ends.len() {
            let bin = scan.bin;
            while scan.at < scan.ends[bin] {
                let at = scan.at;
                let arena = self.store.bins[bin]
                    .as_ref()
                    .expect("bins below len with slots exist");
                let (run, run_len) = arena.run_at(SlotIndex::new(at as u32), scan.ends[bin]);
                let slot_size = arena.slot_size();
                let mut event = None;
                // The position is written to `scan.current` when the guard
                // drops, on unwinding too: not a store per instance (the
                // scan escapes into `catch`, so a plain store could not be
                // kept in a register; the guard's field can).
                let mut position = Position {
                    current: &mut scan.current,
                    at,
                };
                for k in 0..run_len {
                    position.at = at + k;
                    // SAFETY: slot `at + k` lies in this run of live slots.
                    let actor = unsafe { &mut *run.as_ptr().add(k * slot_size).cast::<A>() };
                    let fate = handler(actor);
                    if fate == Fate::Die || self.must_move(bin as u8, actor) {
                        event = Some((k, fate, actor.id().as_raw()));
                        break;
                    }
                }
                drop(position);
                let Some((k, fate, id)) = event else {
                    scan.at += run_len;
                    continue;
                };
                self.store.after_event(scan, at + k, fate, id, died, caught);
            }
            scan.bin += 1;
            scan.at = 0;
        }
    }

    /// Visits every live instance (no particular order).
    pub(crate) fn for_each(&self, mut f: impl FnMut(&A)) {
        for arena in self.store.bins.iter().flatten() {
            for slot in arena.indices() {
                // SAFETY: slots below `slot_count` hold live instances of
                // `A` (the store's class).
                f(unsafe { &*arena.slot_ptr(slot).as_ptr().cast::<A>() });
            }
        }
    }
}

/// Writes a broadcast scan's position into [`Scan::current`] when dropped
/// (after a run of instances, or when a handler unwinds out of it).
struct Position<'a> {
    current: &'a mut usize,
    at: usize,
}

impl Drop for Position<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        *self.current = self.at;
    }
}

/// Frees a store's bins (after its instances were dropped). Not generic:
/// once in the binary.
#[inline(never)]
fn destroy_bins(bins: &mut Vec<Option<Arena>>) {
    for arena in bins.drain(..).flatten() {
        // Heap-backed bins are freed with the storage anyway; errors here
        // only mean files could not be removed.
        let _ = arena.destroy();
    }
}

/// The arena of bin `bin` (slots of `slot_size` bytes) of the store
/// `ident`, opened on first use. Not generic: once in the binary.
#[inline(never)]
fn open_bin<'a>(
    bins: &'a mut Vec<Option<Arena>>,
    storage: &Storage,
    ident: &str,
    bin: u8,
    slot_size: usize,
) -> &'a mut Arena {
    if bins.len() <= bin as usize {
        bins.resize_with(bin as usize + 1, || None);
    }
    bins[bin as usize].get_or_insert_with(|| {
        let chunk = ChunkSize::new(BIN_CHUNK.max(slot_size.next_power_of_two()))
            .expect("actor slot sizes stay below chunky's maximum chunk size");
        Arena::open(storage, &format!("{ident}_bin{bin}"), slot_size, chunk)
            .unwrap_or_else(|e| panic!("cannot create an instance store bin: {e}"))
    })
}
