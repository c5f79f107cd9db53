//! `CHashMap<K, V>`: a hash map that can live in compact form.
//!
//! Entries sit in a dense `CVec<(K, V)>` in insertion order (removal moves
//! the last entry into the gap); a second `CVec<u32>` is an open-addressing
//! index (linear probing, load at most 1/2) of positions in the entries.
//! Iteration order therefore depends only on the sequence of operations,
//! never on addresses or random seeds, which keeps simulations deterministic.
//!
//! # Hash flooding
//! The hash is fixed (no per-process seed: equal maps have equal bytes, so
//! snapshots and state checksums compare byte for byte), which means an
//! adversary can craft keys that collide. Such maps can only arrive through
//! validation, which rebuilds the index with a budget of probes linear in the
//! number of entries (8 per entry, plus 256) and refuses a map that exceeds
//! it, so validating
//! any input takes linear time. A map that passes has a total displacement
//! within that budget, so even a lookup of a crafted key probes at most
//! `O(√n)` slots. Slots are chosen from the high bits of a multiplicative
//! mix of the hash, so ordinary keys (multiples of a power of two, say)
//! spread evenly and stay far below the budget.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{BuildHasher, Hash};

use rustc_hash::FxBuildHasher;

use crate::cvec::CVec;
use crate::traits::Compact;
use crate::validate::{ValidationError, Validator};

const EMPTY: u32 = u32::MAX;

/// Probes past their ideal slot that validation allows per entry when it
/// rebuilds an index (with a good spread and a load of at most 1/2, the
/// average is below 1).
pub(crate) const PROBE_BUDGET_PER_ENTRY: usize = 8;

/// Probes that validation allows on top of the per-entry budget, so that
/// small maps never hit the budget by chance.
pub(crate) const PROBE_BUDGET_BASE: usize = 256;

/// Why an index could not be rebuilt.
enum RebuildError {
    /// Two entries have equal keys.
    Duplicate,
    /// The keys collide beyond the probe budget.
    Flooded,
}

/// A hash map that can live in compact form, iterating in insertion order
/// (until removals, which move the last entry into the removed one's place).
///
/// ```
/// use compact::{CHashMap, CVec};
/// let mut m: CHashMap<u32, CVec<u64>> = CHashMap::new();
/// m.insert(7, vec![1, 2].into());
/// m.get_mut(&7).unwrap().push(3);
/// assert_eq!(m.get(&7).map(|v| v.len()), Some(3));
/// assert_eq!(m.remove(&7).map(|v| v.len()), Some(3));
/// assert!(m.is_empty());
/// ```
#[derive(Clone)]
pub struct CHashMap<K, V> {
    entries: CVec<(K, V)>,
    index: CVec<u32>,
}

/// The ideal index slot of `key` in an index of `slots` slots (a power of
/// two): the high bits of a multiplicative (Fibonacci) mix of its hash.
fn slot_of<Q: Hash + ?Sized>(key: &Q, slots: usize) -> usize {
    debug_assert!(slots.is_power_of_two());
    let bits = slots.trailing_zeros();
    if bits == 0 {
        return 0;
    }
    let mixed = FxBuildHasher
        .hash_one(key)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (mixed >> (64 - bits)) as usize
}

impl<K, V> CHashMap<K, V> {
    /// An empty map (no allocation).
    pub const fn new() -> Self {
        CHashMap {
            entries: CVec::new(),
            index: CVec::new(),
        }
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Iterates over the entries.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&K, &V)> + DoubleEndedIterator {
        self.entries.iter().map(|(k, v)| (k, v))
    }

    /// Iterates over the entries with mutable values.
    pub fn iter_mut(
        &mut self,
    ) -> impl ExactSizeIterator<Item = (&K, &mut V)> + DoubleEndedIterator {
        self.entries.iter_mut().map(|(k, v)| (&*k, v))
    }

    /// Iterates over the keys.
    pub fn keys(&self) -> impl ExactSizeIterator<Item = &K> + DoubleEndedIterator {
        self.entries.iter().map(|(k, _)| k)
    }

    /// Iterates over the values.
    pub fn values(&self) -> impl ExactSizeIterator<Item = &V> + DoubleEndedIterator {
        self.entries.iter().map(|(_, v)| v)
    }

    /// Iterates over mutable values.
    pub fn values_mut(&mut self) -> impl ExactSizeIterator<Item = &mut V> + DoubleEndedIterator {
        self.entries.iter_mut().map(|(_, v)| v)
    }

    /// Removes all entries.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.index.iter_mut().for_each(|slot| *slot = EMPTY);
    }
}

impl<K: Hash + Eq, V> CHashMap<K, V> {
    /// Finds `(index slot, entry position)` of `key`.
    fn find<Q: Hash + Eq + ?Sized>(&self, key: &Q) -> Option<(usize, usize)>
    where
        K: Borrow<Q>,
    {
        if self.index.is_empty() {
            return None;
        }
        let mask = self.index.len() - 1;
        let mut slot = slot_of(key, self.index.len());
        loop {
            let pos = self.index[slot];
            if pos == EMPTY {
                return None;
            }
            if self.entries[pos as usize].0.borrow() == key {
                return Some((slot, pos as usize));
            }
            slot = (slot + 1) & mask;
        }
    }

    /// Puts entry position `pos` into the index, taking the probes past its
    /// ideal slot from `budget`; fails if its key is already there or the
    /// budget runs out.
    fn index_entry(&mut self, pos: usize, budget: &mut usize) -> Result<(), RebuildError> {
        let mask = self.index.len() - 1;
        let key = &self.entries[pos].0;
        let mut slot = slot_of(key, self.index.len());
        loop {
            let at = self.index[slot];
            if at == EMPTY {
                self.index[slot] = pos as u32;
                return Ok(());
            }
            if self.entries[at as usize].0 == *key {
                return Err(RebuildError::Duplicate);
            }
            *budget = budget.checked_sub(1).ok_or(RebuildError::Flooded)?;
            slot = (slot + 1) & mask;
        }
    }

    /// Rebuilds the index with `slots` slots (a power of two > len), with at
    /// most `budget` probes past ideal slots in all.
    fn rebuild_index(&mut self, slots: usize, mut budget: usize) -> Result<(), RebuildError> {
        if self.index.len() != slots {
            self.index = std::iter::repeat_n(EMPTY, slots).collect();
        } else {
            self.index.iter_mut().for_each(|slot| *slot = EMPTY);
        }
        (0..self.entries.len()).try_for_each(|pos| self.index_entry(pos, &mut budget))
    }

    /// Whether `key` has an entry.
    pub fn contains_key<Q: Hash + Eq + ?Sized>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
    {
        self.find(key).is_some()
    }

    /// The value for `key`.
    pub fn get<Q: Hash + Eq + ?Sized>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
    {
        self.find(key).map(|(_, pos)| &self.entries[pos].1)
    }

    /// The mutable value for `key`.
    pub fn get_mut<Q: Hash + Eq + ?Sized>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
    {
        self.find(key).map(|(_, pos)| &mut self.entries[pos].1)
    }

    /// Inserts `value` for `key`, returning the previous value.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        if let Some((_, pos)) = self.find(&key) {
            return Some(std::mem::replace(&mut self.entries[pos].1, value));
        }
        let len = self.entries.len();
        self.entries.push((key, value));
        if (len + 1) * 2 > self.index.len() {
            let slots = ((len + 1) * 2).next_power_of_two().max(8);
            let rebuilt = self.rebuild_index(slots, usize::MAX);
            debug_assert!(rebuilt.is_ok(), "keys in a CHashMap are unique");
        } else {
            let mut unbounded = usize::MAX;
            let indexed = self.index_entry(len, &mut unbounded);
            debug_assert!(indexed.is_ok(), "the key was not present");
        }
        None
    }

    /// The value for `key`, inserting `make()` first if there is none.
    pub fn get_or_insert_with(&mut self, key: K, make: impl FnOnce() -> V) -> &mut V {
        let pos = match self.find(&key) {
            Some((_, pos)) => pos,
            None => {
                self.insert(key, make());
                self.entries.len() - 1
            }
        };
        &mut self.entries[pos].1
    }

    /// Removes the entry for `key` and returns its value.
    pub fn remove<Q: Hash + Eq + ?Sized>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
    {
        self.remove_entry(key).map(|(_, v)| v)
    }

    /// Removes the entry for `key` and returns it.
    pub fn remove_entry<Q: Hash + Eq + ?Sized>(&mut self, key: &Q) -> Option<(K, V)>
    where
        K: Borrow<Q>,
    {
        let (slot, pos) = self.find(key)?;
        self.unindex(slot);
        let last = self.entries.len() - 1;
        if pos != last {
            let (moved, _) = self
                .find::<K>(&self.entries[last].0)
                .expect("every entry is indexed");
            self.index[moved] = pos as u32;
        }
        Some(self.entries.swap_remove(pos))
    }

    /// Empties index slot `hole` with backward-shift deletion, so that every
    /// remaining entry stays reachable from its ideal slot.
    fn unindex(&mut self, mut hole: usize) {
        let mask = self.index.len() - 1;
        self.index[hole] = EMPTY;
        let mut slot = hole;
        loop {
            slot = (slot + 1) & mask;
            let pos = self.index[slot];
            if pos == EMPTY {
                return;
            }
            let ideal = slot_of(&self.entries[pos as usize].0, mask + 1);
            // Move the entry into the hole unless its ideal slot lies
            // cyclically in (hole, slot].
            let stays = if hole <= slot {
                hole < ideal && ideal <= slot
            } else {
                hole < ideal || ideal <= slot
            };
            if !stays {
                self.index[hole] = pos;
                self.index[slot] = EMPTY;
                hole = slot;
            }
        }
    }
}

impl<K, V> Default for CHashMap<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: fmt::Debug, V: fmt::Debug> fmt::Debug for CHashMap<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<K: Hash + Eq, V: PartialEq> PartialEq for CHashMap<K, V> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().all(|(k, v)| other.get(k) == Some(v))
    }
}

impl<K: Hash + Eq, V: Eq> Eq for CHashMap<K, V> {}

impl<K: Hash + Eq, V> Extend<(K, V)> for CHashMap<K, V> {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        for (k, v) in iter {
            self.insert(k, v);
        }
    }
}

impl<K: Hash + Eq, V> FromIterator<(K, V)> for CHashMap<K, V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut map = CHashMap::new();
        map.extend(iter);
        map
    }
}

// SAFETY: the layout is that of the two fields in order (entries, then
// index). `validate` additionally rebuilds the index from the validated
// entries, so lookups never trust received index data.
unsafe impl<K: Compact + Hash + Eq, V: Compact> Compact for CHashMap<K, V> {
    const IS_STATIC: bool = false;
    const PADDING_FREE: bool = true;

    fn is_still_compact(&self) -> bool {
        self.entries.is_still_compact() && self.index.is_still_compact()
    }

    fn dynamic_size_bytes(&self) -> usize {
        self.entries.dynamic_size_bytes() + self.index.dynamic_size_bytes()
    }

    unsafe fn compact(source: *mut Self, dest: *mut Self, new_dynamic_part: *mut u8) {
        // SAFETY: field by field with the caller's guarantees, each field's
        // dynamic part behind the previous one's.
        unsafe {
            let entries_size = (*source).entries.dynamic_size_bytes();
            CVec::compact(
                &raw mut (*source).entries,
                &raw mut (*dest).entries,
                new_dynamic_part,
            );
            CVec::compact(
                &raw mut (*source).index,
                &raw mut (*dest).index,
                new_dynamic_part.add(entries_size),
            );
        }
    }

    unsafe fn decompact(source: *const Self) -> Self {
        // SAFETY: field by field with the caller's guarantees.
        unsafe {
            CHashMap {
                entries: CVec::decompact(&raw const (*source).entries),
                index: CVec::decompact(&raw const (*source).index),
            }
        }
    }

    unsafe fn validate(
        ptr: *mut Self,
        validator: &mut Validator<'_>,
    ) -> Result<(), ValidationError> {
        let invalid = |reason| ValidationError::InvalidValue {
            type_name: std::any::type_name::<Self>(),
            reason,
        };
        // SAFETY: field by field with the caller's guarantees.
        unsafe {
            CVec::validate(&raw mut (*ptr).entries, validator)?;
            CVec::validate(&raw mut (*ptr).index, validator)?;
        }
        // SAFETY: both fields were validated, so `*ptr` is a valid map whose
        // parts lie in bytes the caller lent us mutably.
        let map = unsafe { &mut *ptr };
        let slots = map.index.len();
        let fits = if map.entries.is_empty() {
            slots == 0 || slots.is_power_of_two()
        } else {
            slots.is_power_of_two() && slots >= 2 * map.entries.len()
        };
        if !fits {
            return Err(invalid(
                "index size is not a power of two at least twice the length",
            ));
        }
        if slots > 0 {
            let budget = map
                .entries
                .len()
                .saturating_mul(PROBE_BUDGET_PER_ENTRY)
                .saturating_add(PROBE_BUDGET_BASE);
            map.rebuild_index(slots, budget).map_err(|e| match e {
                RebuildError::Duplicate => invalid("duplicate key"),
                RebuildError::Flooded => invalid(
                    "its keys collide far beyond chance (hash flooding); such a map is refused",
                ),
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Compacted, ValidationError};

    /// `n` distinct keys whose ideal slot is 0 in every index of up to
    /// `2^bits` slots (the top `bits` bits of their mixed hash are zero).
    fn colliding_keys(n: usize, bits: u32) -> Vec<u64> {
        (0u64..)
            .filter(|k| slot_of(k, 1 << bits) == 0)
            .take(n)
            .collect()
    }

    #[test]
    fn crafted_collisions_are_refused_within_the_probe_budget() {
        let keys = colliding_keys(1024, 12);
        let map: CHashMap<u64, u8> = keys.iter().map(|&k| (k, 1)).collect();
        assert_eq!(map.index.len(), 2048);
        // Locally such a map works (slowly: it was built by the owner).
        assert_eq!(map.get(&keys[1000]), Some(&1));
        let compacted = Compacted::new(map);
        match Compacted::<CHashMap<u64, u8>>::from_bytes(compacted.as_bytes(), compacted.origin()) {
            Err(ValidationError::InvalidValue { reason, .. }) => {
                assert!(reason.contains("hash flooding"), "{reason}")
            }
            other => panic!("expected a refusal, got {:?}", other.map(|_| ())),
        }
    }

    #[test]
    fn ordinary_keys_stay_far_below_the_budget() {
        let spreads: [&dyn Fn(u64) -> u64; 4] =
            [&|i| i, &|i| i << 32, &|i| i.wrapping_mul(4096), &|i| {
                i.wrapping_mul(0x1_0000_0001) ^ 0xdead_beef
            }];
        for spread in spreads {
            let map: CHashMap<u64, u32> = (0..100_000u64).map(|i| (spread(i), i as u32)).collect();
            let compacted = Compacted::new(map);
            let back = Compacted::<CHashMap<u64, u32>>::from_bytes(
                compacted.as_bytes(),
                compacted.origin(),
            )
            .expect("an ordinary map validates");
            assert_eq!(back.get(&spread(77_777)), Some(&77_777));
        }
    }
}
