//! Handler table entries: type-erased, monomorphised thunks.
//!
//! Each registered handler becomes a plain function pointer instantiated for
//! its actor type, message type and closure type, so the per-instance loop of
//! a broadcast inlines the handler body. Closures and [`Recipient`] impls go
//! through the same thunk and cost the same.
//!
//! [`Recipient`]: crate::Recipient

use std::any::Any;

use compact::static_size_bytes;

use crate::actor::{Actor, Fate, Message};
use crate::class::ShardState;
use crate::cycle::panic::Caught;
use crate::id::{RawID, TypedID};
use crate::inbox::Inbox;
use crate::inbox::record::{RECORD_HEADER, SPAWN_TAG, write_header};
use crate::registry::MessageID;
use crate::reply::{ReplyError, Request};
use crate::store::{Delivery, InstanceStore, Store};
use crate::world::World;

/// Whether a table entry handles messages for existing instances or spawns new ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandlerKind {
    /// `fn(&mut A, &M, &mut World) -> Fate`.
    Handler,
    /// `fn(A::ID, &M, &mut World) -> A`.
    Spawner,
}

type Thunk = unsafe fn(*mut (), *const (), RawID, *const u8, &mut ShardState) -> u8;

/// What a thunk reports: the recipient existed ([`DELIVERED`]), and a
/// panic was caught ([`PANICKED`]).
pub(crate) const DELIVERED: u8 = 1;
/// See [`DELIVERED`].
pub(crate) const PANICKED: u8 = 2;
/// No recipient, but a live instance of another version holds its number
/// (the ID is stale).
pub(crate) const STALE: u8 = 4;

/// Cleans up after the handler panicked and unwound out of its thunk (see
/// [`recover`] and [`recover_spawn`]).
type Recover = unsafe fn(*mut (), RawID, Box<dyn Any + Send>, &mut ShardState) -> u8;

/// Copies a record of the handler's message into another inbox (see
/// [`keep`]).
type Keep = unsafe fn(*const u8, RawID, u16, &Inbox);

/// Fails the reply of a request record (see [`fail_request`]).
type FailRequest = unsafe fn(*const u8, &mut World, ReplyError);

/// Starts the world's partial of a request record to a broadcast ID (see
/// [`open_partial`]).
type OpenPartial = unsafe fn(*const u8, &mut World);

/// One entry of a class's handler table.
pub(crate) struct Handler {
    pub(crate) kind: HandlerKind,
    /// Runs even after a panic (see `ClassSetup::essential_handler`).
    pub(crate) essential: bool,
    thunk: Thunk,
    /// Cleans up after a panic of the handler.
    recover: Recover,
    /// Keeps a record while the system is panicked.
    pub(crate) keep: Keep,
    /// For requests: resolves the asker's `Reply` with an error when the
    /// record is dropped or kept.
    pub(crate) fail_request: Option<FailRequest>,
    /// For requests: starts the shard's (possibly empty) partial of a
    /// request to a broadcast ID before its instances answer.
    pub(crate) open_partial: Option<OpenPartial>,
    /// Formats the message for panic reports, if its `Debug` was registered.
    pub(crate) debug_message: Option<MessageDebug>,
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
            recover,
            keep: keep::<M>,
            fail_request: None,
            open_partial: None,
            debug_message: None,
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
            recover: recover_spawn,
            keep: keep::<M>,
            fail_request: None,
            open_partial: None,
            debug_message: None,
            data,
            _closure: closure,
        }
    }

    /// Marks the handler as answering requests of type `M`.
    pub(crate) fn fail_request_for<M: Request>(&mut self) {
        self.fail_request = Some(fail_request::<M>);
        self.open_partial = Some(open_partial::<M>);
    }

    /// Runs the handler; returns [`DELIVERED`] if a recipient existed, plus
    /// [`PANICKED`] if panics were caught (and pushed to `caught`): those of
    /// a broadcast's handlers, and of an instance's `Drop`.
    ///
    /// A panic of the handler for one recipient (or of a spawner) unwinds
    /// out of here: the dispatch catches it around its whole drain and
    /// calls [`recover`](Self::recover).
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
        state: &mut ShardState,
    ) -> u8 {
        // SAFETY: forwarded from the caller; `data` points to the closure the
        // thunk was instantiated for, kept alive by `_closure`.
        unsafe { (self.thunk)(store, self.data, recipient, payload, state) }
    }

    /// Cleans up after the handler panicked with `panic` for `recipient`
    /// and unwound out of [`call`](Self::call): reports it (to
    /// `state.caught`), applies the class's policy, and hands back a
    /// spawn's ID. Returns what `call` would have.
    ///
    /// # Safety
    ///
    /// `store` is the `InstanceStore` of this handler's actor type.
    pub(crate) unsafe fn recover(
        &self,
        store: *mut (),
        recipient: RawID,
        panic: Box<dyn Any + Send>,
        state: &mut ShardState,
    ) -> u8 {
        // SAFETY: forwarded from the caller.
        unsafe { (self.recover)(store, recipient, panic, state) }
    }
}

/// A class's handlers and spawners, found by a record's inbox tag in one
/// lookup.
///
/// Entry `2 * message` holds the handler of `message`, entry
/// `2 * message + 1` its spawner; a record's tag (the message id, with
/// [`SPAWN_TAG`] for spawns) rotated left by one bit is exactly that index.
/// So a spawn record can only reach a spawner and any other record only a
/// handler, without a test in the dispatch loop.
#[derive(Default)]
pub(crate) struct HandlerTable {
    entries: Vec<Option<Handler>>,
}

const _: () = assert!(SPAWN_TAG == 1 << 15);

impl HandlerTable {
    /// The entry a record with inbox tag `tag` goes to.
    #[inline(always)]
    pub(crate) fn for_tag(&self, tag: u16) -> Option<&Handler> {
        self.entries.get(tag.rotate_left(1) as usize)?.as_ref()
    }

    /// Every handler and spawner, by message id (handlers before spawners).
    pub(crate) fn iter(&self) -> impl Iterator<Item = (MessageID, &Handler)> {
        self.entries
            .iter()
            .enumerate()
            .filter_map(|(at, h)| Some((MessageID((at / 2) as u16), h.as_ref()?)))
    }

    fn at(message: MessageID, kind: HandlerKind) -> usize {
        2 * message.0 as usize + usize::from(kind == HandlerKind::Spawner)
    }

    /// The handler or spawner of `message`.
    pub(crate) fn get(&self, message: MessageID) -> Option<&Handler> {
        let at = Self::at(message, HandlerKind::Handler);
        let both = at..(at + 2).min(self.entries.len());
        self.entries.get(both)?.iter().flatten().next()
    }

    /// The handler or spawner of `message`, to change.
    pub(crate) fn get_mut(&mut self, message: MessageID) -> Option<&mut Handler> {
        let at = Self::at(message, HandlerKind::Handler);
        let both = at..(at + 2).min(self.entries.len());
        self.entries.get_mut(both)?.iter_mut().flatten().next()
    }

    /// Installs `handler` for `message`; gives it back if the message has
    /// a handler or spawner already.
    pub(crate) fn insert(&mut self, message: MessageID, handler: Handler) -> Result<(), Handler> {
        if self.get(message).is_some() {
            return Err(handler);
        }
        let at = Self::at(message, handler.kind);
        if self.entries.len() <= at {
            self.entries.resize_with(at + 1, || None);
        }
        self.entries[at] = Some(handler);
        Ok(())
    }
}

/// A formatter of one message type for panic reports: `fn(&M) -> String`,
/// called on a record's payload.
#[derive(Clone)]
pub(crate) struct MessageDebug {
    show: unsafe fn(*const u8, &(dyn Any + Send + Sync)) -> String,
    format: std::sync::Arc<dyn Any + Send + Sync>,
}

impl MessageDebug {
    pub(crate) fn new<M: Message>(format: fn(&M) -> String) -> MessageDebug {
        /// # Safety
        /// `payload` points to a valid `M`; `format` is a `fn(&M) -> String`.
        unsafe fn show<M: 'static>(payload: *const u8, format: &(dyn Any + Send + Sync)) -> String {
            let format = format
                .downcast_ref::<fn(&M) -> String>()
                .expect("a formatter of this message type");
            // SAFETY: caller.
            format(unsafe { &*payload.cast::<M>() })
        }
        MessageDebug {
            show: show::<M>,
            format: std::sync::Arc::new(format),
        }
    }

    /// Formats the message at `payload`.
    ///
    /// # Safety
    /// `payload` points to a valid message of the type this was made for.
    pub(crate) unsafe fn show(&self, payload: *const u8) -> String {
        // SAFETY: caller; `format` was made for the same type as `show`.
        unsafe { (self.show)(payload, &*self.format) }
    }
}

/// Copies the record of message `M` at `payload` (for `recipient`, with
/// inbox tag `tag`) into `inbox`, re-laying out its compact parts there.
///
/// # Safety
/// `payload` points to a valid compact `M` that stays valid during the
/// call; the caller is `inbox`'s only writer.
unsafe fn keep<M: Message>(payload: *const u8, recipient: RawID, tag: u16, inbox: &Inbox) {
    let source = payload.cast::<M>().cast_mut();
    // SAFETY: a valid `M` (caller).
    let size = RECORD_HEADER + unsafe { (*source).total_size_bytes() };
    let write = |buf: &mut [u8]| {
        write_header(buf, recipient);
        let dest = buf[RECORD_HEADER..].as_mut_ptr();
        // SAFETY: records are 8-aligned and sized for the whole message;
        // compacting a compact value copies it and leaves the source
        // intact (compact parts own nothing), like a broadcast's copies.
        unsafe { M::compact(source, dest.cast(), dest.add(static_size_bytes::<M>())) };
    };
    // SAFETY: single writer (caller).
    unsafe { inbox.push_with_unshared(size, tag, write) };
}

/// A broadcast request's record reaches a shard: the shard's partial of
/// its answers starts (empty), so that the asker gets one partial from
/// this machine even if no instance is here to answer.
///
/// # Safety
/// `payload` points to a valid `M`.
unsafe fn open_partial<M: Request>(payload: *const u8, world: &mut World) {
    // SAFETY: a valid `M` (caller).
    let request = unsafe { &*payload.cast::<M>() };
    let (token, machine) = request.reply_to().token();
    if token.is_gather() {
        world.gather::<M::Answer>(token, machine);
    }
}

/// Resolves the reply of the request `M` at `payload` with `error`.
///
/// # Safety
/// `payload` points to a valid compact `M`.
unsafe fn fail_request<M: Request>(payload: *const u8, world: &mut World, error: ReplyError) {
    // SAFETY: a valid `M` (caller).
    let request = unsafe { &*payload.cast::<M>() };
    world.fail_reply(request.reply_to(), error);
}

/// # Safety
/// See [`Handler::call`]; `data` points to an `F`.
unsafe fn handle<A, M, F>(
    store: *mut (),
    data: *const (),
    recipient: RawID,
    payload: *const u8,
    state: &mut ShardState,
) -> u8
where
    A: Actor,
    M: Message,
    F: Fn(&mut A, &M, &mut World) -> Fate + Send + Sync + 'static,
{
    // SAFETY: guaranteed by the caller (see `Handler::call`).
    let (store, f, message) = unsafe {
        (
            InstanceStore::<A>::of(store),
            &*data.cast::<F>(),
            &*payload.cast::<M>(),
        )
    };
    let ShardState {
        world,
        died,
        caught,
        ..
    } = state;
    if recipient.is_broadcast() {
        let before = caught.len();
        store.broadcast(|actor| f(actor, message, world), died, caught);
        return if caught.len() > before {
            DELIVERED | PANICKED
        } else {
            DELIVERED
        };
    }
    match store.deliver(recipient, |actor| f(actor, message, world), caught) {
        Delivery::Handled => DELIVERED,
        Delivery::Died => {
            died.push(recipient);
            DELIVERED
        }
        Delivery::Panicked { died: dead } => {
            if dead {
                died.push(recipient);
            }
            DELIVERED | PANICKED
        }
        Delivery::NoRecipient if store.is_occupied(recipient.instance) => STALE,
        Delivery::NoRecipient => 0,
    }
}

/// See [`Handler::recover`]. Not generic: the store knows its class.
///
/// # Safety
/// `store` points at the `Store` of the handler's class.
unsafe fn recover(
    store: *mut (),
    recipient: RawID,
    panic: Box<dyn Any + Send>,
    state: &mut ShardState,
) -> u8 {
    // SAFETY: caller.
    let store = unsafe { &mut *store.cast::<Store>() };
    match store.recover(recipient, panic, &mut state.caught) {
        Delivery::Panicked { died: true } => state.died.push(recipient),
        Delivery::Panicked { died: false } => {}
        other => unreachable!("recovering from a panic gave {other:?}"),
    }
    DELIVERED | PANICKED
}

/// See [`Handler::recover`]: a spawner panicked, so nothing was created;
/// the ID goes back.
///
/// # Safety
/// None (the signature is shared with [`recover`]).
unsafe fn recover_spawn(
    _: *mut (),
    recipient: RawID,
    panic: Box<dyn Any + Send>,
    state: &mut ShardState,
) -> u8 {
    state.caught.push(Caught::new(recipient, panic, None));
    state.died.push(recipient);
    DELIVERED | PANICKED
}

/// # Safety
/// See [`Handler::call`]; `data` points to an `F`.
unsafe fn spawn<A, M, F>(
    store: *mut (),
    data: *const (),
    recipient: RawID,
    payload: *const u8,
    state: &mut ShardState,
) -> u8
where
    A: Actor,
    M: Message,
    F: Fn(A::ID, &M, &mut World) -> A + Send + Sync + 'static,
{
    // SAFETY: guaranteed by the caller (see `Handler::call`).
    let (store, f, message) = unsafe {
        (
            InstanceStore::<A>::of(store),
            &*data.cast::<F>(),
            &*payload.cast::<M>(),
        )
    };
    let world = &mut state.world;
    // Spawn records carry a fresh ID from `World::spawn` (see `SPAWN_TAG`);
    // refuse anything else rather than replace a live instance.
    if recipient.is_broadcast() || store.is_occupied(recipient.instance) {
        return 0;
    }
    // A panic here unwinds to the dispatch, which calls `recover_spawn`.
    let actor = f(A::ID::from_raw(recipient), message, world);
    assert_eq!(
        actor.id().as_raw(),
        recipient,
        "a spawner of {} must return the actor with the id it was given",
        std::any::type_name::<A>()
    );
    store.insert(recipient, actor);
    DELIVERED
}
