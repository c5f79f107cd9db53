//! `CHashMap<K, V>`: a hash map that can live in compact form.
//!
//! Entries sit in a dense `CVec<(K, V)>` in insertion order (removal moves
//! the last entry into the gap); a second `CVec<u32>` is an open-addressing
//! index (linear probing, load at most 1/2) of positions in the entries.
//! Iteration order therefore depends only on the sequence of operations,
//! never on addresses or random seeds, which keeps simulations deterministic.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{BuildHasher, Hash};

use rustc_hash::FxBuildHasher;

use crate::cvec::CVec;
use crate::traits::Compact;
use crate::validate::{ValidationError, Validator};

const EMPTY: u32 = u32::MAX;

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

fn hash_of<Q: Hash + ?Sized>(key: &Q) -> usize {
    FxBuildHasher.hash_one(key) as usize
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
        let mut slot = hash_of(key) & mask;
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

    /// Puts entry position `pos` into the index; `Err` if its key is already there.
    fn index_entry(&mut self, pos: usize) -> Result<(), ()> {
        let mask = self.index.len() - 1;
        let key = &self.entries[pos].0;
        let mut slot = hash_of(key) & mask;
        loop {
            let at = self.index[slot];
            if at == EMPTY {
                self.index[slot] = pos as u32;
                return Ok(());
            }
            if self.entries[at as usize].0 == *key {
                return Err(());
            }
            slot = (slot + 1) & mask;
        }
    }

    /// Rebuilds the index with `slots` slots (a power of two > len).
    fn rebuild_index(&mut self, slots: usize) -> Result<(), ()> {
        if self.index.len() != slots {
            self.index = std::iter::repeat_n(EMPTY, slots).collect();
        } else {
            self.index.iter_mut().for_each(|slot| *slot = EMPTY);
        }
        (0..self.entries.len()).try_for_each(|pos| self.index_entry(pos))
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
            let rebuilt = self.rebuild_index(slots);
            debug_assert!(rebuilt.is_ok(), "keys in a CHashMap are unique");
        } else {
            let indexed = self.index_entry(len);
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
            let ideal = hash_of(&self.entries[pos as usize].0) & mask;
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
            map.rebuild_index(slots)
                .map_err(|()| invalid("duplicate key"))?;
        }
        Ok(())
    }
}
