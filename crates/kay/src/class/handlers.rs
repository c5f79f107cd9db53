//! Handler table entries: type-erased, monomorphised thunks.
//!
//! Each registered handler becomes a plain function pointer instantiated for
//! its actor type, message type and closure type, so the per-instance loop of
//! a broadcast inlines the handler body. Closures and [`Recipient`] impls go
//! through the same thunk and cost the same.
//!
//! [`Recipient`]: crate::Recipient

use std::any::Any;

use crate::actor::{Actor, Fate, Message};
use crate::class::store::{Delivery, InstanceStore};
use crate::id::{RawID, TypedID};
use crate::world::World;

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
}

/// Whether a table entry handles messages for existing instances or spawns new ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandlerKind {
    /// `fn(&mut A, &M, &mut World) -> Fate`.
    Handler,
    /// `fn(A::ID, &M, &mut World) -> A`.
    Spawner,
}

type Thunk = unsafe fn(*mut (), *const (), RawID, *const u8, &mut World, &mut Vec<RawID>) -> bool;

/// One entry of a class's handler table.
pub(crate) struct Handler {
    pub(crate) kind: HandlerKind,
    /// Runs even after a panic (see `ClassSetup::essential_handler`).
    pub(crate) essential: bool,
    thunk: Thunk,
    data: *const (),
    _closure: Box<dyn Any + Send + Sync>,
}

// SAFETY: `data` points into `_closure`, which is `Send + Sync`; the thunk
// is a plain function pointer.
unsafe impl Send for Handler {}
// SAFETY: as above; calling the closure only needs `&F`, and `F: Sync`.
unsafe impl Sync for Handler {}

impl Handler {
    /// A handler running `f` on the recipient (or on every instance for a broadcast).
    pub(crate) fn for_messages<A, M, F>(f: F) -> Handler
    where
        A: Actor,
        M: Message,
        F: Fn(&mut A, &M, &mut World) -> Fate + Send + Sync + 'static,
    {
        let closure = Box::new(f);
        let data = (&*closure as *const F).cast();
        Handler {
            kind: HandlerKind::Handler,
            essential: false,
            thunk: handle::<A, M, F>,
            data,
            _closure: closure,
        }
    }

    /// A spawner creating the recipient instance with `f`.
    pub(crate) fn spawner<A, M, F>(f: F) -> Handler
    where
        A: Actor,
        M: Message,
        F: Fn(A::ID, &M, &mut World) -> A + Send + Sync + 'static,
    {
        let closure = Box::new(f);
        let data = (&*closure as *const F).cast();
        Handler {
            kind: HandlerKind::Spawner,
            essential: false,
            thunk: spawn::<A, M, F>,
            data,
            _closure: closure,
        }
    }

    /// Runs the handler; returns whether a recipient existed.
    ///
    /// # Safety
    ///
    /// `store` is the `InstanceStore` of this handler's actor type and
    /// `payload` points to a valid compact value of its message type.
    #[inline]
    pub(crate) unsafe fn call(
        &self,
        store: *mut (),
        recipient: RawID,
        payload: *const u8,
        world: &mut World,
        died: &mut Vec<RawID>,
    ) -> bool {
        // SAFETY: forwarded from the caller; `data` points to the closure the
        // thunk was instantiated for, kept alive by `_closure`.
        unsafe { (self.thunk)(store, self.data, recipient, payload, world, died) }
    }
}

/// # Safety
/// See [`Handler::call`]; `data` points to an `F`.
unsafe fn handle<A, M, F>(
    store: *mut (),
    data: *const (),
    recipient: RawID,
    payload: *const u8,
    world: &mut World,
    died: &mut Vec<RawID>,
) -> bool
where
    A: Actor,
    M: Message,
    F: Fn(&mut A, &M, &mut World) -> Fate + Send + Sync + 'static,
{
    // SAFETY: guaranteed by the caller (see `Handler::call`).
    let (store, f, message) = unsafe {
        (
            &mut *store.cast::<InstanceStore<A>>(),
            &*data.cast::<F>(),
            &*payload.cast::<M>(),
        )
    };
    if recipient.is_broadcast() {
        store.broadcast(|actor| f(actor, message, world), died);
        return true;
    }
    match store.deliver(recipient, |actor| f(actor, message, world)) {
        Delivery::Handled => true,
        Delivery::Died => {
            died.push(recipient);
            true
        }
        Delivery::NoRecipient => false,
    }
}

/// # Safety
/// See [`Handler::call`]; `data` points to an `F`.
unsafe fn spawn<A, M, F>(
    store: *mut (),
    data: *const (),
    recipient: RawID,
    payload: *const u8,
    world: &mut World,
    _: &mut Vec<RawID>,
) -> bool
where
    A: Actor,
    M: Message,
    F: Fn(A::ID, &M, &mut World) -> A + Send + Sync + 'static,
{
    // SAFETY: guaranteed by the caller (see `Handler::call`).
    let (store, f, message) = unsafe {
        (
            &mut *store.cast::<InstanceStore<A>>(),
            &*data.cast::<F>(),
            &*payload.cast::<M>(),
        )
    };
    // Spawn records carry a fresh ID from `World::spawn` (see `SPAWN_TAG`);
    // refuse anything else rather than replace a live instance.
    if recipient.is_broadcast() || store.is_occupied(recipient.instance) {
        return false;
    }
    let actor = f(A::ID::from_raw(recipient), message, world);
    assert_eq!(
        actor.id().as_raw(),
        recipient,
        "a spawner of {} must return the actor with the id it was given",
        std::any::type_name::<A>()
    );
    store.insert(recipient, actor);
    true
}
