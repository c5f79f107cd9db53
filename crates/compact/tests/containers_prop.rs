//! Property tests: every container against its `std` model through random
//! operation sequences, with compact → mutate (spill) → recompact cycles,
//! validation round trips and decompaction in between.

use std::collections::HashMap;
use std::sync::atomic::{AtomicIsize, Ordering};

use compact::{
    CBox, CHashMap, COption, CString, CVec, Compact, Compacted, ValidationError, Validator,
};
use proptest::prelude::*;

/// A value that counts how many of it are alive, to catch leaks and double drops.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Tracked(u32);

static LIVE: AtomicIsize = AtomicIsize::new(0);

impl Tracked {
    fn new(v: u32) -> Self {
        LIVE.fetch_add(1, Ordering::SeqCst);
        Tracked(v)
    }
}

impl Clone for Tracked {
    fn clone(&self) -> Self {
        Tracked::new(self.0)
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        LIVE.fetch_sub(1, Ordering::SeqCst);
    }
}

// SAFETY: a plain u32 with a drop counter: no dynamic part; moving it is a copy.
unsafe impl Compact for Tracked {
    const IS_STATIC: bool = true;
    fn is_still_compact(&self) -> bool {
        true
    }
    fn dynamic_size_bytes(&self) -> usize {
        0
    }
    unsafe fn compact(source: *mut Self, dest: *mut Self, _: *mut u8) {
        // SAFETY: forwarded from the caller (equal or disjoint pointers).
        unsafe { std::ptr::copy(source, dest, 1) }
    }
    unsafe fn decompact(source: *const Self) -> Self {
        // SAFETY: forwarded from the caller.
        unsafe { std::ptr::read(source) }
    }
    unsafe fn validate(_: *mut Self, _: &mut Validator<'_>) -> Result<(), ValidationError> {
        Ok(())
    }
}

/// Operations shared by the vector models.
#[derive(Debug, Clone)]
enum VecOp<T> {
    Push(T),
    Pop,
    Insert(usize, T),
    Remove(usize),
    SwapRemove(usize),
    Set(usize, T),
    Truncate(usize),
    RetainEven,
    Reverse,
    /// Compact the whole value (as an owner would) and keep working on it in place.
    Compact,
    /// Compact again if it spilled.
    Recompact,
    /// Copy the bytes, validate them at their new address and continue there.
    Revalidate,
    /// Move the value back onto the heap.
    Decompact,
}

fn vec_op<T: std::fmt::Debug + Clone + 'static>(
    elem: impl Strategy<Value = T> + Clone + 'static,
) -> impl Strategy<Value = VecOp<T>> {
    prop_oneof![
        4 => elem.clone().prop_map(VecOp::Push),
        1 => Just(VecOp::Pop),
        1 => (any::<usize>(), elem.clone()).prop_map(|(i, v)| VecOp::Insert(i, v)),
        1 => any::<usize>().prop_map(VecOp::Remove),
        1 => any::<usize>().prop_map(VecOp::SwapRemove),
        2 => (any::<usize>(), elem).prop_map(|(i, v)| VecOp::Set(i, v)),
        1 => (0usize..20).prop_map(VecOp::Truncate),
        1 => Just(VecOp::RetainEven),
        1 => Just(VecOp::Reverse),
        1 => Just(VecOp::Compact),
        1 => Just(VecOp::Recompact),
        1 => Just(VecOp::Revalidate),
        1 => Just(VecOp::Decompact),
    ]
}

/// A value that is either on the heap or in a compact buffer.
enum Holder<T: Compact + Default> {
    Heap(T),
    Compact(Compacted<T>),
}

impl<T: Compact + Default> Holder<T> {
    fn get(&mut self) -> &mut T {
        match self {
            Holder::Heap(v) => v,
            Holder::Compact(c) => c,
        }
    }

    /// Handles the storage operations; returns false for ordinary operations.
    fn storage_op<E>(&mut self, op: &VecOp<E>) -> bool {
        if !matches!(
            op,
            VecOp::Compact | VecOp::Recompact | VecOp::Revalidate | VecOp::Decompact
        ) {
            return false;
        }
        let taken = std::mem::replace(self, Holder::Heap(T::default()));
        *self = match (op, taken) {
            (VecOp::Compact, Holder::Heap(v)) => Holder::Compact(Compacted::new(v)),
            (VecOp::Compact, Holder::Compact(c)) => Holder::Compact(Compacted::new(c.into_inner())),
            (VecOp::Recompact, Holder::Compact(mut c)) => {
                let moved = c.recompact();
                assert!(c.is_still_compact());
                // A value that only shrank in place may use less than its buffer.
                assert!(c.total_size_bytes() <= c.as_bytes().len());
                if moved {
                    assert_eq!(c.total_size_bytes(), c.as_bytes().len());
                }
                Holder::Compact(c)
            }
            (VecOp::Revalidate, Holder::Compact(mut c)) => {
                c.recompact();
                let copy =
                    Compacted::<T>::from_bytes(c.as_bytes(), c.origin()).expect("valid bytes");
                // The copy is independent: the original, compact, owns no heap
                // memory, so dropping it frees nothing the copy uses. (Bitwise
                // copies are new values: the `Tracked` test skips this step.)
                drop(c);
                Holder::Compact(copy)
            }
            (VecOp::Decompact, Holder::Compact(c)) => Holder::Heap(c.into_inner()),
            (_, h) => h,
        };
        true
    }
}

fn index(i: usize, len: usize) -> Option<usize> {
    (len > 0).then(|| i % len)
}

/// Applies a vector operation to both the real value and the model.
fn apply_vec<T: Clone, M>(
    v: &mut CVec<T>,
    model: &mut Vec<M>,
    op: VecOp<M>,
    conv: impl Fn(&M) -> T,
    even: impl Fn(&M) -> bool,
) where
    M: Clone,
{
    match op {
        VecOp::Push(x) => {
            v.push(conv(&x));
            model.push(x);
        }
        VecOp::Pop => {
            assert_eq!(v.pop().is_some(), model.pop().is_some());
        }
        VecOp::Insert(i, x) => {
            let i = i % (model.len() + 1);
            v.insert(i, conv(&x));
            model.insert(i, x);
        }
        VecOp::Remove(i) => {
            if let Some(i) = index(i, model.len()) {
                v.remove(i);
                model.remove(i);
            }
        }
        VecOp::SwapRemove(i) => {
            if let Some(i) = index(i, model.len()) {
                v.swap_remove(i);
                model.swap_remove(i);
            }
        }
        VecOp::Set(i, x) => {
            if let Some(i) = index(i, model.len()) {
                v[i] = conv(&x);
                model[i] = x;
            }
        }
        VecOp::Truncate(n) => {
            v.truncate(n);
            model.truncate(n);
        }
        VecOp::RetainEven => {
            let keep: Vec<bool> = model.iter().map(&even).collect();
            let mut it = keep.iter();
            v.retain(|_| *it.next().unwrap());
            let mut it = keep.iter();
            model.retain(|_| *it.next().unwrap());
        }
        VecOp::Reverse => {
            v.reverse();
            model.reverse();
        }
        VecOp::Compact | VecOp::Recompact | VecOp::Revalidate | VecOp::Decompact => unreachable!(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn cvec_u32_matches_vec(ops in proptest::collection::vec(vec_op(any::<u32>()), 0..120)) {
        let mut holder = Holder::Heap(CVec::<u32>::new());
        let mut model = Vec::new();
        for op in ops {
            if !holder.storage_op(&op) {
                apply_vec(holder.get(), &mut model, op, |x| *x, |x| x % 2 == 0);
            }
            prop_assert_eq!(&holder.get()[..], &model[..]);
        }
    }

    #[test]
    fn cvec_tracked_has_no_leaks_or_double_drops(ops in proptest::collection::vec(vec_op(any::<u32>()), 0..120)) {
        let before = LIVE.load(Ordering::SeqCst);
        {
            let mut holder = Holder::Heap(CVec::<Tracked>::new());
            let mut model: Vec<u32> = Vec::new();
            for op in ops {
                let op = if matches!(op, VecOp::Revalidate) { VecOp::Recompact } else { op };
                if !holder.storage_op(&op) {
                    apply_vec(holder.get(), &mut model, op, |x| Tracked::new(*x), |x| x % 2 == 0);
                }
                let got: Vec<u32> = holder.get().iter().map(|t| t.0).collect();
                prop_assert_eq!(got, model.clone());
            }
        }
        // Other tests in this binary run concurrently but never touch `Tracked`.
        prop_assert_eq!(LIVE.load(Ordering::SeqCst), before);
    }

    #[test]
    fn cvec_of_cstring_matches_vec_of_string(
        ops in proptest::collection::vec(vec_op("[a-zé✓]{0,12}"), 0..80),
        appends in proptest::collection::vec((any::<usize>(), "[x-z]{1,30}"), 0..10),
    ) {
        let mut holder = Holder::Heap(CVec::<CString>::new());
        let mut model: Vec<String> = Vec::new();
        let mut appends = appends.into_iter();
        for op in ops {
            if !holder.storage_op(&op) {
                apply_vec(holder.get(), &mut model, op, |s| CString::from(s.as_str()), |s| s.len() % 2 == 0);
            }
            // Grow one inner string in place: the inner spills, the outer stays put.
            if let Some((i, tail)) = appends.next()
                && let Some(i) = index(i, model.len())
            {
                holder.get()[i].push_str(&tail);
                model[i].push_str(&tail);
            }
            let got: Vec<&str> = holder.get().iter().map(|s| s.as_str()).collect();
            let want: Vec<&str> = model.iter().map(|s| s.as_str()).collect();
            prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn chashmap_matches_hashmap(ops in proptest::collection::vec(map_op(), 0..150)) {
        let mut holder = Holder::Heap(CHashMap::<u32, CVec<u64>>::new());
        let mut model: HashMap<u32, Vec<u64>> = HashMap::new();
        for op in ops {
            match op {
                MapOp::Storage(s) => { holder.storage_op::<()>(&s); }
                MapOp::Insert(k, v) => {
                    let old = holder.get().insert(k, v.clone().into());
                    prop_assert_eq!(old.map(Vec::from), model.insert(k, v));
                }
                MapOp::Remove(k) => {
                    prop_assert_eq!(holder.get().remove(&k).map(Vec::from), model.remove(&k));
                }
                MapOp::PushInto(k, x) => {
                    if let Some(v) = holder.get().get_mut(&k) { v.push(x); }
                    if let Some(v) = model.get_mut(&k) { v.push(x); }
                }
                MapOp::Clear => {
                    holder.get().clear();
                    model.clear();
                }
            }
            let map = holder.get();
            prop_assert_eq!(map.len(), model.len());
            for (k, v) in &model {
                prop_assert_eq!(map.get(k).map(|c| &c[..]), Some(&v[..]));
            }
            for k in 0..40u32 {
                prop_assert_eq!(map.contains_key(&k), model.contains_key(&k));
            }
            let mut keys: Vec<u32> = map.keys().copied().collect();
            keys.sort_unstable();
            let mut model_keys: Vec<u32> = model.keys().copied().collect();
            model_keys.sort_unstable();
            prop_assert_eq!(keys, model_keys);
        }
    }

    #[test]
    fn coption_and_cbox_round_trip(values in proptest::collection::vec(proptest::option::of("[a-z]{0,20}"), 0..30)) {
        let v: CVec<COption<CBox<CString>>> = values
            .iter()
            .map(|o| o.as_ref().map(|s| CBox::new(CString::from(s.as_str()))).into())
            .collect();
        let c = Compacted::new(v);
        prop_assert!(c.is_still_compact());
        let copy = Compacted::<CVec<COption<CBox<CString>>>>::from_bytes(c.as_bytes(), c.origin()).unwrap();
        let got: Vec<Option<String>> = copy.iter().map(|o| o.as_option().map(|b| b.to_string())).collect();
        prop_assert_eq!(got, values);
    }
}

#[derive(Debug, Clone)]
enum MapOp {
    Insert(u32, Vec<u64>),
    Remove(u32),
    PushInto(u32, u64),
    Clear,
    Storage(VecOp<()>),
}

fn map_op() -> impl Strategy<Value = MapOp> {
    prop_oneof![
        6 => (0u32..40, proptest::collection::vec(any::<u64>(), 0..6)).prop_map(|(k, v)| MapOp::Insert(k, v)),
        3 => (0u32..40).prop_map(MapOp::Remove),
        2 => (0u32..40, any::<u64>()).prop_map(|(k, x)| MapOp::PushInto(k, x)),
        1 => Just(MapOp::Clear),
        1 => Just(MapOp::Storage(VecOp::Compact)),
        1 => Just(MapOp::Storage(VecOp::Recompact)),
        1 => Just(MapOp::Storage(VecOp::Revalidate)),
        1 => Just(MapOp::Storage(VecOp::Decompact)),
    ]
}

#[test]
fn compact_cvec_shrinks_in_place_and_grows_by_spilling() {
    let mut c = Compacted::new(CVec::from(vec![1u64, 2, 3]));
    c.pop();
    assert!(c.is_still_compact(), "shrinking keeps compact form");
    c.push(9);
    assert!(!c.is_still_compact(), "growing spills to the heap");
    assert!(c.recompact());
    assert!(c.is_still_compact());
    assert_eq!(&c[..], &[1, 2, 9]);
    assert_eq!(c.as_bytes().len(), 16 + 24);
}

#[test]
#[should_panic(expected = "call recompact() first")]
fn as_bytes_of_spilled_value_panics_clearly() {
    let mut c = Compacted::new(CString::from("ab"));
    c.push_str("cdefghijklmnop");
    let _ = c.as_bytes();
}

#[test]
fn zero_sized_elements_work_in_both_forms() {
    let mut v: CVec<()> = CVec::new();
    for _ in 0..1000 {
        v.push(());
    }
    let mut c = Compacted::new(v);
    assert_eq!(
        c.as_bytes().len(),
        16,
        "no dynamic bytes for zero-sized elements"
    );
    c.push(());
    c.recompact();
    let copy = Compacted::<CVec<()>>::from_bytes(c.as_bytes(), c.origin()).unwrap();
    assert_eq!(copy.len(), 1001);
    assert_eq!(c.into_inner().into_vec().len(), 1001);
}

#[test]
fn std_like_conversions_and_traits() {
    let v: CVec<u8> = (1..=3).collect();
    assert_eq!(v, vec![1, 2, 3]);
    assert_eq!(format!("{v:?}"), "[1, 2, 3]");
    let w: Vec<u8> = v.clone().into();
    assert_eq!(w, [1, 2, 3]);
    let s: CString = "a".parse().unwrap();
    assert_eq!(s, "a");
    let mut s = s;
    s.push('é');
    assert_eq!(s.pop(), Some('é'));
    let m: CHashMap<&str, i32> = [("x", 1), ("y", 2)].into_iter().collect();
    assert_eq!(m.get("y"), Some(&2));
    let o: COption<u8> = Some(1).into();
    assert_eq!(Option::from(o), Some(1));
    assert_eq!(*CBox::new(5u8), 5);
}

#[derive(Debug, Clone)]
enum StrOp {
    PushStr(String),
    Push(char),
    Pop,
    Truncate(usize),
    Clear,
    Storage(VecOp<()>),
}

fn str_op() -> impl Strategy<Value = StrOp> {
    prop_oneof![
        4 => "[a-zé✓🦀]{0,10}".prop_map(StrOp::PushStr),
        2 => any::<char>().prop_map(StrOp::Push),
        2 => Just(StrOp::Pop),
        1 => (0usize..40).prop_map(StrOp::Truncate),
        1 => Just(StrOp::Clear),
        1 => Just(StrOp::Storage(VecOp::Compact)),
        1 => Just(StrOp::Storage(VecOp::Recompact)),
        1 => Just(StrOp::Storage(VecOp::Revalidate)),
        1 => Just(StrOp::Storage(VecOp::Decompact)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn cstring_matches_string(ops in proptest::collection::vec(str_op(), 0..100)) {
        let mut holder = Holder::Heap(CString::new());
        let mut model = String::new();
        for op in ops {
            match op {
                StrOp::Storage(s) => { holder.storage_op::<()>(&s); }
                StrOp::PushStr(s) => { holder.get().push_str(&s); model.push_str(&s); }
                StrOp::Push(c) => { holder.get().push(c); model.push(c); }
                StrOp::Pop => prop_assert_eq!(holder.get().pop(), model.pop()),
                StrOp::Truncate(n) => {
                    // Only on char boundaries, as String requires.
                    if model.is_char_boundary(n.min(model.len())) {
                        holder.get().truncate(n);
                        model.truncate(n);
                    }
                }
                StrOp::Clear => { holder.get().clear(); model.clear(); }
            }
            prop_assert_eq!(holder.get().as_str(), model.as_str());
        }
    }
}
