//! The synchronisation primitives of the lock-free code, switched between std
//! and [loom](https://docs.rs/loom) by the crate-specific `--cfg kay_loom`.
//!
//! Lock-free modules import atomics and cells from here, never from `std`
//! directly, so that `RUSTFLAGS="--cfg kay_loom" cargo test --release --test
//! inbox_loom` can explore every interleaving of them. Both sides have the
//! same API: loom's, which for [`UnsafeCell`] means `with`/`with_mut` taking
//! a closure instead of `get`, so loom can track each access.
//!
//! Model: tokio's `src/loom/mod.rs`.

#![allow(
    unused_imports,
    dead_code,
    reason = "a shim: not every primitive is used in every build (e.g. \
              AtomicBool only with debug assertions)"
)]

#[cfg(not(kay_loom))]
mod imp {
    pub use std::hint::spin_loop;
    pub use std::sync::Mutex;
    pub use std::sync::atomic::{
        AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering,
    };

    /// A value created on first use and never changed: `std`'s `OnceLock`
    /// holding a box (loom has no `OnceLock`; its build has its own).
    #[derive(Debug, Default)]
    pub struct OnceBox<T>(std::sync::OnceLock<Box<T>>);

    impl<T> OnceBox<T> {
        /// An empty cell.
        pub fn new() -> OnceBox<T> {
            OnceBox(std::sync::OnceLock::new())
        }

        /// The value, made by `init` if there is none yet (once, also when
        /// several threads ask at the same time).
        #[inline]
        pub fn get_or_init(&self, init: impl FnOnce() -> Box<T>) -> &T {
            self.0.get_or_init(init)
        }

        /// The value, if it was made.
        #[inline]
        pub fn get(&self) -> Option<&T> {
            self.0.get().map(|value| &**value)
        }
    }

    /// `std::cell::UnsafeCell` behind loom's closure-based API.
    #[derive(Debug, Default)]
    #[repr(transparent)]
    pub struct UnsafeCell<T: ?Sized>(std::cell::UnsafeCell<T>);

    impl<T> UnsafeCell<T> {
        /// A cell holding `value`.
        pub const fn new(value: T) -> UnsafeCell<T> {
            UnsafeCell(std::cell::UnsafeCell::new(value))
        }

        /// The value, consuming the cell.
        pub fn into_inner(self) -> T {
            self.0.into_inner()
        }
    }

    impl<T: ?Sized> UnsafeCell<T> {
        /// Calls `f` with a shared raw pointer to the value; the caller of
        /// `f`'s dereference guarantees no concurrent mutable access.
        #[inline(always)]
        pub fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
            f(self.0.get())
        }

        /// Calls `f` with a mutable raw pointer to the value; the caller of
        /// `f`'s dereference guarantees the access is exclusive.
        #[inline(always)]
        pub fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
            f(self.0.get())
        }
    }
}

#[cfg(kay_loom)]
mod imp {
    pub use loom::cell::UnsafeCell;
    pub use loom::sync::Mutex;
    pub use loom::sync::atomic::{
        AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering,
    };

    /// `OnceBox` under loom: a pointer published with `Release` after the
    /// value is made under a mutex, read with `Acquire` (double-checked), so
    /// that loom explores the lazy creation of lanes too.
    #[derive(Debug)]
    pub struct OnceBox<T> {
        value: AtomicPtr<T>,
        init: Mutex<()>,
        /// Owns a `Box<T>`: `Send` and `Sync` as that is.
        _owns: std::marker::PhantomData<Box<T>>,
    }

    impl<T> Default for OnceBox<T> {
        fn default() -> Self {
            OnceBox::new()
        }
    }

    impl<T> OnceBox<T> {
        /// An empty cell.
        pub fn new() -> OnceBox<T> {
            OnceBox {
                value: AtomicPtr::new(std::ptr::null_mut()),
                init: Mutex::new(()),
                _owns: std::marker::PhantomData,
            }
        }

        /// The value, made by `init` if there is none yet.
        pub fn get_or_init(&self, init: impl FnOnce() -> Box<T>) -> &T {
            let value = self.value.load(Ordering::Acquire);
            if !value.is_null() {
                // SAFETY: published once, after it was made; freed only by
                // `Drop`, which needs `&mut self`.
                return unsafe { &*value };
            }
            let _made_by_one = self.init.lock().unwrap();
            let value = self.value.load(Ordering::Acquire);
            if !value.is_null() {
                // SAFETY: as above.
                return unsafe { &*value };
            }
            let value = Box::into_raw(init());
            self.value.store(value, Ordering::Release);
            // SAFETY: just made and published; see above.
            unsafe { &*value }
        }

        /// The value, if it was made.
        pub fn get(&self) -> Option<&T> {
            let value = self.value.load(Ordering::Acquire);
            // SAFETY: as in `get_or_init`.
            (!value.is_null()).then(|| unsafe { &*value })
        }
    }

    impl<T> Drop for OnceBox<T> {
        fn drop(&mut self) {
            let value = self.value.load(Ordering::Relaxed);
            if !value.is_null() {
                // SAFETY: made by `Box::into_raw` in `get_or_init`, and no
                // reference to it outlives `&self`.
                drop(unsafe { Box::from_raw(value) });
            }
        }
    }

    /// Under loom a spin is a yield, so that a model with a waiting loop
    /// terminates.
    pub fn spin_loop() {
        loom::thread::yield_now();
    }
}

pub use imp::*;

/// Locks that go on after a panic poisoned them: kay's locks guard lists and
/// tables (registered types, lanes in use, reply slots) that every writer
/// leaves whole before anything can panic, and handler panics are caught
/// and reported elsewhere, so a poisoned lock holds good data. One helper
/// instead of `unwrap_or_else(|e| e.into_inner())` at every use.
pub(crate) trait Unpoisoned {
    /// The guard of a `Mutex`, or the read guard of an `RwLock`.
    type Guard<'a>
    where
        Self: 'a;
    /// Locks (a `Mutex`) or reads (an `RwLock`), poisoned or not.
    fn locked(&self) -> Self::Guard<'_>;
}

#[cfg(kay_loom)]
impl<T: ?Sized> Unpoisoned for loom::sync::Mutex<T> {
    type Guard<'a>
        = loom::sync::MutexGuard<'a, T>
    where
        T: 'a;
    fn locked(&self) -> loom::sync::MutexGuard<'_, T> {
        self.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl<T: ?Sized> Unpoisoned for std::sync::Mutex<T> {
    type Guard<'a>
        = std::sync::MutexGuard<'a, T>
    where
        T: 'a;
    fn locked(&self) -> std::sync::MutexGuard<'_, T> {
        self.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl<T: ?Sized> Unpoisoned for std::sync::RwLock<T> {
    type Guard<'a>
        = std::sync::RwLockReadGuard<'a, T>
    where
        T: 'a;
    fn locked(&self) -> std::sync::RwLockReadGuard<'_, T> {
        self.read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Writing to an `RwLock`, poisoned or not (see [`Unpoisoned`]).
pub(crate) trait WriteUnpoisoned<T: ?Sized> {
    /// The write guard.
    fn write_locked(&self) -> std::sync::RwLockWriteGuard<'_, T>;
}

impl<T: ?Sized> WriteUnpoisoned<T> for std::sync::RwLock<T> {
    fn write_locked(&self) -> std::sync::RwLockWriteGuard<'_, T> {
        self.write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(all(test, not(kay_loom)))]
mod tests {
    use super::*;

    #[test]
    fn unsafe_cell_gives_access() {
        let cell = UnsafeCell::new(1_u32);
        // SAFETY: the cell is local; this is the only access.
        cell.with_mut(|p| unsafe { *p += 1 });
        // SAFETY: no mutable access is live.
        assert_eq!(cell.with(|p| unsafe { *p }), 2);
        assert_eq!(cell.into_inner(), 2);
    }
}
