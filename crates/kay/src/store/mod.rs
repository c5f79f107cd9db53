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

pub(crate) mod index;

use std::marker::PhantomData;
use std::ptr::NonNull;

use chunky::{Arena, ChunkSize, SlotIndex, Storage};
use compact::static_size_bytes;

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

/// All instances of actor class `A`.
pub(crate) struct InstanceStore<A: Actor> {
    storage: Storage,
    ident: String,
    /// Bin 0 is exact; bin `k > 0` holds slots of `1 << (k + 2)` bytes.
    bins: Vec<Option<Arena>>,
    index: Index,
    len: usize,
    /// The instance the last message went to, and where it is: messages to
    /// the same instance (conversations, ping-pong) skip the index. Cleared
    /// whenever an instance moves or is removed.
    last: Option<(RawID, NonNull<A>, u8)>,
    /// What to do with an instance whose handler panicked.
    pub(crate) policy: PanicPolicy,
    /// Formats an instance for panic reports, if the class registered it.
    pub(crate) debug: Option<fn(&A) -> String>,
    /// A panic of an instance's `Drop`, caught in `remove`, for the caller
    /// to report.
    drop_panic: Option<Box<dyn std::any::Any + Send>>,
    _actor: PhantomData<A>,
}

/// A type-erased instance store.
pub(crate) trait AnyStore {
    /// The store as a pointer for the thunks of its class.
    fn as_ptr(&mut self) -> *mut ();
    /// Live instances.
    fn len(&self) -> usize;
    /// Bytes of slots in use.
    fn slot_bytes(&self) -> usize;
    /// Starts loading the index entry of `instance` into the cache.
    fn prefetch_index(&self, instance: u32);
    /// Starts loading instance `id` into the cache (if it exists).
    fn prefetch_instance(&self, id: RawID);
    /// Sets what happens to an instance whose handler panicked.
    fn set_panic_policy(&mut self, policy: crate::cycle::panic::PanicPolicy);
}

impl<A: Actor> AnyStore for InstanceStore<A> {
    fn as_ptr(&mut self) -> *mut () {
        (self as *mut InstanceStore<A>).cast()
    }
    fn len(&self) -> usize {
        InstanceStore::len(self)
    }
    fn slot_bytes(&self) -> usize {
        InstanceStore::slot_bytes(self)
    }
    fn prefetch_index(&self, instance: u32) {
        InstanceStore::prefetch_index(self, instance)
    }
    fn prefetch_instance(&self, id: RawID) {
        InstanceStore::prefetch_instance(self, id)
    }
    fn set_panic_policy(&mut self, policy: crate::cycle::panic::PanicPolicy) {
        self.policy = policy;
    }
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

impl<A: Actor> InstanceStore<A> {
    pub(crate) fn new(storage: Storage, ident: String, shards: u32) -> Self {
        InstanceStore {
            storage,
            ident,
            bins: Vec::new(),
            index: Index::new(shards),
            len: 0,
            last: None,
            policy: PanicPolicy::Stop,
            debug: None,
            drop_panic: None,
            _actor: PhantomData,
        }
    }

    /// The number of live instances.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    fn bin_for(total_size: usize) -> (u8, usize) {
        let exact = static_size_bytes::<A>().max(8);
        if total_size <= exact {
            (EXACT, exact)
        } else {
            let slot = total_size.next_power_of_two().max(16);
            ((slot.trailing_zeros() - 2) as u8, slot)
        }
    }

    /// Whether an instance of total size `total` in bin `bin` shrank so much
    /// that it moves to a smaller slot: the slot that fits it is a quarter
    /// of its slot or less. The move copies at most a quarter of the slot,
    /// which the shrink freed, so its cost is amortised over the shrink,
    /// and an actor that shrinks and grows back a little never moves.
    #[inline]
    fn shrunk(bin: u8, actor: &A) -> bool {
        bin != EXACT && {
            let slot = 1usize << (bin + 2);
            Self::bin_for(actor.total_size_bytes()).1 * 4 <= slot
        }
    }

    /// Whether `actor`, in bin `bin`, must move after a handler ran: it
    /// spilled out of its slot, or shrank (see [`shrunk`](Self::shrunk)).
    #[inline]
    fn must_move(bin: u8, actor: &A) -> bool {
        !A::IS_STATIC && (!actor.is_still_compact() || Self::shrunk(bin, actor))
    }

    fn arena(&mut self, bin: u8) -> &mut Arena {
        let (_, slot_size) = if bin == EXACT {
            Self::bin_for(0)
        } else {
            (bin, 1usize << (bin + 2))
        };
        open_bin(&mut self.bins, &self.storage, &self.ident, bin, slot_size)
    }

    /// The slot of instance `id`, if it is live with `id`'s version.
    #[inline]
    fn find(&self, id: RawID) -> Option<*mut A> {
        self.index
            .find(id.instance, id.version)
            .map(|ptr| ptr.cast::<A>())
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
        if let Some(ptr) = self.find(id) {
            let start = ptr.cast::<u8>();
            crate::prefetch::read(start);
            let size = static_size_bytes::<A>();
            if size > 1 {
                // The line of the last byte, and any between: for the sizes
                // of `PREFETCH_LINES` lines or less this unrolls to a few
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

    /// Compacts `value` into a new slot of the right bin; returns its location.
    fn place(&mut self, value: A) -> Location {
        let (bin, _) = Self::bin_for(value.total_size_bytes());
        let arena = self.arena(bin);
        let slot = arena
            .push()
            .unwrap_or_else(|e| panic!("cannot grow the instance store: {e}"));
        let dest = arena.slot_ptr(slot).as_ptr();
        let mut value = std::mem::ManuallyDrop::new(value);
        // SAFETY: the slot is aligned (chunks are page-aligned, slot sizes are
        // multiples of 8 and actors have an alignment of at most 8, checked
        // at registration) and holds `total_size_bytes()` bytes; `value` is
        // moved in and never dropped here.
        unsafe { A::compact(&mut *value, dest.cast(), dest.add(static_size_bytes::<A>())) };
        Location {
            ptr: dest,
            bin,
            version: 0,
        }
    }

    /// Adds instance `id`, whose number must be vacant (see
    /// [`is_occupied`](Self::is_occupied)).
    pub(crate) fn insert(&mut self, id: RawID, value: A) {
        self.last = None;
        debug_assert!(
            !self.is_occupied(id.instance),
            "inserting over a live instance"
        );
        let mut location = self.place(value);
        location.version = id.version;
        self.index.set(id.instance, location);
        self.len += 1;
    }

    /// Whether instance number `instance` holds a live instance (any version).
    pub(crate) fn is_occupied(&self, instance: u32) -> bool {
        self.locate_any(instance).is_some()
    }

    fn locate_any(&self, instance: u32) -> Option<Location> {
        self.index.live(instance)
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
        let location = self.locate_any(instance).expect("removing a live instance");
        let hole = location.ptr.cast::<A>();
        if drop {
            // SAFETY: the slot holds a live, valid instance that is dropped once
            // and then overwritten or freed. If its `Drop` panics, the drop
            // glue has still dropped every field, so the slot is freed all the
            // same and the panic is reported by the caller.
            if let Err(payload) = catch(|| unsafe { std::ptr::drop_in_place(hole) }) {
                self.drop_panic = Some(payload);
            }
        }
        self.index.vacate(instance);
        self.len -= 1;
        let arena = self.bins[location.bin as usize]
            .as_mut()
            .expect("bin of a live instance");
        let last = SlotIndex::new(arena.slot_count() as u32 - 1);
        let mut moved_from = None;
        let from = arena.slot_ptr(last).as_ptr().cast::<A>();
        if from != hole {
            // SAFETY: `from` holds a live, compact instance (see above), `hole`
            // is a distinct slot of the same size whose occupant was dropped or
            // moved out, so the moved instance's dynamic part fits behind its
            // static part there.
            let moved = unsafe {
                debug_assert!((*from).is_still_compact());
                A::compact(from, hole, hole.cast::<u8>().add(static_size_bytes::<A>()));
                (*hole).id().as_raw().instance
            };
            self.index.set_ptr(moved, hole.cast());
            moved_from = Some(last.get() as usize);
        }
        arena.free(last);
        moved_from
    }

    /// Moves instance `instance`, which spilled to the heap in a handler (or
    /// shrank, see [`shrunk`](Self::shrunk)), into a new slot that fits it,
    /// and fills its old slot with the last of its bin. Returns where that
    /// last instance came from (see `remove`).
    fn recompact(&mut self, instance: u32) -> Option<usize> {
        self.last = None;
        let old = self
            .locate_any(instance)
            .expect("re-compacting a live instance");
        let from = old.ptr.cast::<A>();
        // SAFETY: `from` holds a live instance.
        let total = unsafe { (*from).total_size_bytes() };
        let (bin, _) = Self::bin_for(total);
        let arena = self.arena(bin);
        let slot = arena
            .push()
            .unwrap_or_else(|e| panic!("cannot grow the instance store: {e}"));
        let dest = arena.slot_ptr(slot).as_ptr();
        // SAFETY: `dest` is a fresh slot large enough for the whole instance,
        // disjoint from the old slot (whose compact parts stay alive until it
        // is freed by `remove` below) and from the instance's heap parts.
        unsafe { A::compact(from, dest.cast(), dest.add(static_size_bytes::<A>())) };
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

    /// Runs `handler` on instance `id`, then removes it if it died or
    /// re-compacts it if it spilled.
    ///
    /// A panic of the handler unwinds out of here (no catch per message:
    /// the shard catches around its whole cycle), leaving the instance in
    /// its slot, possibly spilled; the dispatch then calls
    /// [`recover`](Self::recover).
    #[inline]
    pub(crate) fn deliver(
        &mut self,
        id: RawID,
        handler: impl FnOnce(&mut A) -> Fate,
        caught: &mut Vec<Caught>,
    ) -> Delivery {
        let (ptr, bin) = match self.last {
            Some((last, ptr, bin)) if last == id => (ptr.as_ptr(), bin),
            _ => {
                let Some(location) = self.index.find_location(id.instance, id.version) else {
                    return Delivery::NoRecipient;
                };
                let ptr = location.ptr.cast::<A>();
                self.last = NonNull::new(ptr).map(|p| (id, p, location.bin));
                (ptr, location.bin)
            }
        };
        // SAFETY: `ptr` points at a live instance in a slot that nothing else
        // borrows while the handler runs (handlers reach other actors only by
        // messages).
        let fate = handler(unsafe { &mut *ptr });
        self.settle(id, ptr, bin, fate, false, caught)
    }

    /// After a handler of instance `id` (at `ptr`, in bin `bin`) ran or
    /// panicked (`panicked`): removes it if `fate` is `Die`, moves it if it
    /// spilled or shrank.
    #[inline(always)]
    fn settle(
        &mut self,
        id: RawID,
        ptr: *mut A,
        bin: u8,
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
        // SAFETY: `ptr` holds the live instance `id` (caller); its handler
        // has returned or unwound.
        if Self::must_move(bin, unsafe { &*ptr }) {
            self.recompact(id.instance);
        }
        if panicked {
            Delivery::Panicked { died: false }
        } else {
            Delivery::Handled
        }
    }

    /// Cleans up after a handler of instance `id` panicked (with `payload`)
    /// and unwound out of [`deliver`](Self::deliver): reports the panic and
    /// applies the class's [`PanicPolicy`] (the instance lives on, possibly
    /// re-compacted, or is removed).
    #[cold]
    pub(crate) fn recover(
        &mut self,
        id: RawID,
        payload: Box<dyn std::any::Any + Send>,
        caught: &mut Vec<Caught>,
    ) -> Delivery {
        let Some(location) = self.index.find_location(id.instance, id.version) else {
            // Not a handler's panic on a live instance (cannot happen for
            // records that reached `deliver`): report it all the same.
            caught.push(Caught::new(id, payload, None));
            return Delivery::Panicked { died: false };
        };
        let ptr = location.ptr.cast::<A>();
        // SAFETY: the instance is still live at `ptr`: unwinding left it
        // in place, possibly spilled.
        let fate = self.caught(unsafe { &*ptr }, payload, caught);
        self.settle(id, ptr, location.bin, fate, true, caught)
    }

    /// Records the panic of `actor`'s handler; returns the fate the class's
    /// policy gives it.
    #[cold]
    fn caught(
        &self,
        actor: &A,
        payload: Box<dyn std::any::Any + Send>,
        caught: &mut Vec<Caught>,
    ) -> Fate {
        let debug = self.debug.map(|debug| {
            catch(|| debug(actor)).unwrap_or_else(|_| "<its Debug panicked>".to_owned())
        });
        caught.push(Caught::new(actor.id().as_raw(), payload, debug));
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
        let mut scan = self.start_scan();
        loop {
            let finished = catch(|| self.scan(&mut handler, &mut scan, died, caught));
            let Err(payload) = finished else { return };
            self.scan_caught(&mut scan, payload, died, caught);
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
    /// the scan on. Out of line and not generic over the handler, so it
    /// exists once per class.
    #[cold]
    #[inline(never)]
    fn scan_caught(
        &mut self,
        scan: &mut Scan,
        payload: Box<dyn std::any::Any + Send>,
        died: &mut Vec<RawID>,
        caught: &mut Vec<Caught>,
    ) {
        {
            // The instance at `current` panicked; it is still there.
            let q = scan.current;
            let arena = self.bins[scan.bin].as_ref().expect("bin being scanned");
            // SAFETY: slot `q` held the live instance being handled.
            let actor = unsafe {
                &*arena
                    .slot_ptr(SlotIndex::new(q as u32))
                    .as_ptr()
                    .cast::<A>()
            };
            let fate = self.caught(actor, payload, caught);
            let moves = Self::must_move(scan.bin as u8, actor);
            let id = actor.id().as_raw();
            if fate == Fate::Die || moves {
                self.after_event(scan, q, fate, id, died, caught);
            } else {
                scan.at = q + 1;
            }
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
                let arena = self.bins[bin]
                    .as_ref()
                    .expect("bins below len with slots exist");
                let (run, run_len) = arena.run_at(SlotIndex::new(at as u32), scan.ends[bin]);
                let slot_size = arena.slot_size();
                let mut event = None;
                for k in 0..run_len {
                    scan.current = at + k;
                    // SAFETY: slot `at + k` lies in this run of live slots.
                    let actor = unsafe { &mut *run.as_ptr().add(k * slot_size).cast::<A>() };
                    let fate = handler(actor);
                    if fate == Fate::Die || Self::must_move(bin as u8, actor) {
                        event = Some((k, fate, actor.id().as_raw()));
                        break;
                    }
                }
                let Some((k, fate, id)) = event else {
                    scan.at += run_len;
                    continue;
                };
                self.after_event(scan, at + k, fate, id, died, caught);
            }
            scan.bin += 1;
            scan.at = 0;
        }
    }

    /// Removes (`fate` is `Die`) or re-compacts instance `id` at position `q`
    /// of the bin being scanned, and moves the scan on. Out of line: once
    /// per class, not per handler.
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

    /// Visits every live instance (no particular order).
    pub(crate) fn for_each(&self, mut f: impl FnMut(&A)) {
        for arena in self.bins.iter().flatten() {
            for slot in arena.indices() {
                // SAFETY: slots below `slot_count` hold live instances.
                f(unsafe { &*arena.slot_ptr(slot).as_ptr().cast::<A>() });
            }
        }
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

/// Where a broadcast's scan is: the end of each bin (fixed at the start,
/// shrinking as instances leave), the bin and slot to visit next, and the
/// slot being handled (for a panic).
struct Scan {
    ends: Vec<usize>,
    bin: usize,
    at: usize,
    current: usize,
}

impl<A: Actor> Drop for InstanceStore<A> {
    fn drop(&mut self) {
        if std::mem::needs_drop::<A>() {
            for arena in self.bins.iter().flatten() {
                for slot in arena.indices() {
                    // SAFETY: every slot below `slot_count` holds a live
                    // instance, dropped exactly once here.
                    unsafe { std::ptr::drop_in_place(arena.slot_ptr(slot).as_ptr().cast::<A>()) };
                }
            }
        }
        destroy_bins(&mut self.bins);
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
