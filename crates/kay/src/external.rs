//! [`External<T>`]: state that is neither compacted nor persisted.

use std::cell::Cell;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicPtr, Ordering};

use compact::{Compact, ValidationError, Validator};

/// A value that lives outside the compact world (a file handle, a GPU
/// buffer): the actor holds only a pointer to it. It is never compacted,
/// persisted or sent: bytes claiming to hold one are refused by validation.
///
/// # Not in messages
/// A message is copied byte for byte into inboxes, once per shard for a
/// broadcast, so an `External` inside one would end up with several owners
/// (or be leaked). Its [`Compact::PROCESS_LOCAL`] makes every message type
/// holding it as a field fail to build where it is sent, spawned with or
/// handled; one hidden inside a `CVec`, `CBox` or `CHashMap` of a message
/// (where the constant cannot reach) makes the send panic before anything
/// is written. Give the actor holding it an ID-addressed message instead,
/// or create the value in the spawner:
///
/// ```compile_fail
/// use kay::{ActorSystem, Compact, Config, External};
/// # kay::typed_id!(pub HolderID);
/// # #[derive(Compact, Clone)]
/// # pub struct Holder { id: HolderID }
/// # impl kay::Actor for Holder {
/// #     type ID = HolderID;
/// #     fn id(&self) -> HolderID { self.id }
/// #     fn setup(_: &mut kay::ClassSetup<Self>) {}
/// # }
/// #[derive(Compact, Clone)]
/// pub struct Handover { file: External<String> }
///
/// let mut system = ActorSystem::new(Config::default());
/// system.register::<Holder>();
/// let mut world = system.world();
/// let everyone = world.local_broadcast::<Holder>();
/// // error: this message type holds an External
/// world.send(everyone, Handover { file: External::new("handle".into()) });
/// ```
///
/// # Not persisted
/// A snapshot ([`crate::persist`]) saves the actor without the value:
/// after a load the handle is empty ([`is_empty`](Self::is_empty)), and the
/// actor restores it when it gets [`Loaded`](crate::persist::Loaded), which
/// the system sends right after a load to every instance of each class
/// that handles it:
///
/// ```
/// use kay::{Actor, ActorSystem, ClassSetup, Compact, Config, External, World};
/// use kay::persist::Loaded;
/// kay::typed_id!(pub LoggerID);
///
/// #[derive(Compact, Clone)]
/// pub struct Logger { id: LoggerID, path: kay::CString, file: External<Vec<String>> }
/// #[derive(Compact, Clone)]
/// pub struct Open(kay::CString);
///
/// impl Actor for Logger {
///     type ID = LoggerID;
///     fn id(&self) -> LoggerID { self.id }
///     fn setup(class: &mut ClassSetup<Self>) {
///         class
///             .spawner(|id, open: &Open, _: &mut World| Logger {
///                 id,
///                 path: open.0.clone(),
///                 file: External::new(Vec::new()), // e.g. a file handle
///             })
///             // After a load: open it again (the state says which).
///             .handler(|logger: &mut Logger, _: &Loaded, _: &mut World| {
///                 assert!(logger.file.is_empty());
///                 logger.file = External::new(vec![format!("reopened {}", &*logger.path)]);
///             });
///     }
/// }
///
/// let dir = tempfile::tempdir().unwrap();
/// let mut system = ActorSystem::with_storage(dir.path(), Config::default()).unwrap();
/// system.register::<Logger>();
/// let mut world = system.world();
/// world.spawn::<Logger, _>(Open("log.txt".into()));
/// system.turn();
/// system.snapshot().unwrap();
/// drop((world, system));
///
/// let mut system = ActorSystem::with_storage(dir.path(), Config::default()).unwrap();
/// system.register::<Logger>();
/// system.load().unwrap();
/// system.turn(); // handles `Loaded` first
/// let lines = system.with_instances::<Logger, _>(|l| l.file.get().cloned());
/// assert_eq!(lines, [Some(vec!["reopened log.txt".to_string()])]);
/// ```
///
/// It has exactly one owner. `clone()` *moves* the value into the clone (so
/// actor structs deriving `Clone` keep working); using the original
/// afterwards panics with a clear message instead of sharing the value.
///
/// ```
/// use kay::External;
/// let file = External::new(String::from("handle"));
/// let moved = file.clone();
/// assert_eq!(moved.len(), 6);
/// assert!(std::panic::catch_unwind(|| file.len()).is_err());
/// ```
pub struct External<T> {
    ptr: AtomicPtr<T>,
    /// Owns a `T`: `Send`/`Sync` exactly when `T` is.
    _owns: std::marker::PhantomData<T>,
}

impl<T> External<T> {
    /// Moves `value` to the heap under this handle.
    pub fn new(value: T) -> Self {
        External {
            ptr: AtomicPtr::new(Box::into_raw(Box::new(value))),
            _owns: std::marker::PhantomData,
        }
    }

    /// Whether the handle holds no value: after a snapshot was loaded (an
    /// `External` is not persisted) or after its value moved to a clone.
    pub fn is_empty(&self) -> bool {
        self.ptr.load(Ordering::Acquire).is_null()
    }

    /// The value, if the handle holds one (see [`is_empty`](Self::is_empty)).
    pub fn get(&self) -> Option<&T> {
        let ptr = self.ptr.load(Ordering::Acquire);
        // SAFETY: a non-null pointer is the live box this handle owns.
        (!ptr.is_null()).then(|| unsafe { &*ptr })
    }

    /// The value mutably, if the handle holds one.
    pub fn get_mut(&mut self) -> Option<&mut T> {
        let ptr = *self.ptr.get_mut();
        // SAFETY: as in `get`, borrowed mutably through `&mut self`.
        (!ptr.is_null()).then(|| unsafe { &mut *ptr })
    }

    fn live(&self) -> *mut T {
        let ptr = self.ptr.load(Ordering::Acquire);
        assert!(
            !ptr.is_null(),
            "External<{}> used after its value moved to a clone: an External has exactly one owner",
            std::any::type_name::<T>()
        );
        ptr
    }

    /// Takes the value out.
    ///
    /// # Panics
    /// If it already moved to a clone.
    pub fn into_inner(self) -> T {
        let ptr = self.live();
        self.ptr.store(std::ptr::null_mut(), Ordering::Release);
        // SAFETY: `ptr` came from `Box::into_raw` and is owned by this handle,
        // which no longer points at it.
        *unsafe { Box::from_raw(ptr) }
    }
}

impl<T> Deref for External<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: a non-null pointer is the live box this handle owns.
        unsafe { &*self.live() }
    }
}

impl<T> DerefMut for External<T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, borrowed mutably through `&mut self`.
        unsafe { &mut *self.live() }
    }
}

impl<T> Clone for External<T> {
    /// Moves the value into the returned handle; the original becomes empty.
    fn clone(&self) -> Self {
        let ptr = self.live();
        self.ptr.store(std::ptr::null_mut(), Ordering::Release);
        External {
            ptr: AtomicPtr::new(ptr),
            _owns: std::marker::PhantomData,
        }
    }
}

impl<T> Drop for External<T> {
    fn drop(&mut self) {
        let ptr = *self.ptr.get_mut();
        if !ptr.is_null() {
            // SAFETY: the live box this handle owns, freed once.
            drop(unsafe { Box::from_raw(ptr) });
        }
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for External<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ptr = self.ptr.load(Ordering::Acquire);
        if ptr.is_null() {
            f.write_str("External(<moved>)")
        } else {
            // SAFETY: the live box this handle owns.
            f.debug_tuple("External").field(unsafe { &*ptr }).finish()
        }
    }
}

thread_local! {
    /// Set while this thread measures a message before copying it into
    /// inboxes (see [`measuring_message`]).
    static MEASURING_MESSAGE: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f`, which measures a message about to be copied into inboxes: an
/// `External` met inside it panics (before anything is written) instead of
/// being copied.
#[inline]
pub(crate) fn measuring_message<R>(f: impl FnOnce() -> R) -> R {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            MEASURING_MESSAGE.set(self.0);
        }
    }
    let _reset = Reset(MEASURING_MESSAGE.replace(true));
    f()
}

// SAFETY: only the pointer is part of the compact value; moving it moves
// ownership. It has no dynamic part, and validation refuses it because a
// pointer from another process or file is meaningless.
unsafe impl<T: 'static> Compact for External<T> {
    /// An `External` has one owner in this process: a message holding one
    /// does not compile (see [`World::send`](crate::World::send)).
    const PROCESS_LOCAL: bool = true;

    fn is_still_compact(&self) -> bool {
        true
    }
    fn dynamic_size_bytes(&self) -> usize {
        // Every message is measured before it is copied (see
        // `measuring_message`): refuse here, while nothing is written yet.
        assert!(
            !MEASURING_MESSAGE.get(),
            "External<{}> inside a message: messages are copied byte for byte, while an \
             External has one owner in this process; send an ID of the actor holding it, \
             or plain data, instead",
            std::any::type_name::<T>()
        );
        0
    }
    unsafe fn compact(source: *mut Self, dest: *mut Self, _: *mut u8) {
        // SAFETY: equal or disjoint valid pointers (caller); a bitwise move.
        unsafe { std::ptr::copy(source, dest, 1) }
    }
    unsafe fn decompact(source: *const Self) -> Self {
        // SAFETY: a bitwise move out of a valid value (caller).
        unsafe { std::ptr::read(source) }
    }
    unsafe fn validate(
        value: *mut Self,
        validator: &mut Validator<'_>,
    ) -> Result<(), ValidationError> {
        if validator.resets_process_local() {
            // A snapshot being loaded: the pointer meant something only in
            // the process that wrote it. The handle starts empty (see
            // `crate::persist`: the actor restores it on `Loaded`).
            // SAFETY: `value` points at the handle's bytes in the buffer
            // being validated (caller); a null pointer is the empty state.
            unsafe {
                std::ptr::addr_of_mut!((*value).ptr).write(AtomicPtr::new(std::ptr::null_mut()))
            };
            return Ok(());
        }
        Err(ValidationError::Unsupported {
            type_name: std::any::type_name::<Self>(),
            hint: "External state stays in its process: it is never sent or persisted",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use compact::{Limits, validate_in_place_with};

    /// Bytes of a struct holding an `External` (as a snapshot saved them):
    /// refused by default, loaded empty with `reset_process_local`, and the
    /// empty handle drops and refills soundly.
    #[test]
    fn an_external_from_saved_bytes_comes_back_empty() {
        #[derive(compact::Compact)]
        struct Holder {
            n: u64,
            file: External<String>,
        }
        let holder = Holder {
            n: 7,
            file: External::new("handle".to_owned()),
        };
        // The saved bytes, pointer and all (as a snapshot copies a slot).
        let mut words = [0u64; 2];
        // SAFETY: `Holder` is two words (a u64 and a pointer), copied as
        // plain bytes into an aligned buffer of that size.
        unsafe {
            std::ptr::copy_nonoverlapping(
                (&holder as *const Holder).cast::<u8>(),
                words.as_mut_ptr().cast::<u8>(),
                size_of::<Holder>(),
            )
        };
        // SAFETY: viewing the initialised words as bytes.
        let bytes = unsafe {
            std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), size_of::<Holder>())
        };
        assert!(validate_in_place_with::<Holder>(bytes, 0, &Limits::default()).is_err());
        let reset = Limits {
            reset_process_local: true,
            ..Limits::default()
        };
        let loaded = validate_in_place_with::<Holder>(bytes, 0, &reset).unwrap();
        assert_eq!(loaded.n, 7);
        assert!(loaded.file.is_empty() && loaded.file.get().is_none());
        loaded.file = External::new("reopened".to_owned());
        assert_eq!(loaded.file.get().map(String::as_str), Some("reopened"));
        // SAFETY: the loaded value is valid and dropped once here; the
        // original keeps its own box.
        unsafe { std::ptr::drop_in_place(loaded) };
        assert_eq!(&*holder.file, "handle");
    }
}
