//! What actors and messages are: [`Actor`], [`Fate`], [`Recipient`], [`ActorTrait`].

use compact::Compact;

use crate::id::TypedID;
use crate::registry::ClassSetup;
use crate::world::World;

/// An actor class: a `Compact` struct whose instances live densely in one
/// instance store and are reached through their typed ID.
///
/// Implementing it by hand (the `#[kay::actor]` macro generates the same):
/// ```
/// use kay::{Actor, ClassSetup, Compact, Fate, TypedID, World};
///
/// kay::typed_id!(pub MoverID);
///
/// #[derive(Compact, Clone)]
/// pub struct Mover { id: MoverID, x: f32 }
///
/// #[derive(Compact, Clone)]
/// pub struct Tick { dt: f32 }
///
/// impl Actor for Mover {
///     type ID = MoverID;
///     fn id(&self) -> MoverID { self.id }
///     fn setup(class: &mut ClassSetup<Self>) {
///         class.handler(|m: &mut Mover, tick: &Tick, _: &mut World| { m.x += tick.dt; Fate::Live });
///     }
/// }
/// ```
pub trait Actor: Compact + Send + 'static {
    /// The typed ID of this class.
    type ID: TypedID;

    /// This instance's ID (the runtime reads it to keep its index up to date).
    fn id(&self) -> Self::ID;

    /// Installs the class's handlers and spawners; called by
    /// [`ActorSystem::register`](crate::ActorSystem::register).
    fn setup(class: &mut ClassSetup<Self>) {
        let _ = class;
    }
}

/// Whether an actor lives on after handling a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Fate {
    /// Keep the actor.
    #[default]
    Live,
    /// Remove the actor after the handler returns.
    Die,
}

impl From<()> for Fate {
    fn from(_: ()) -> Self {
        Fate::Live
    }
}

/// A handler that only panics (`|_, _, _| panic!(..)`, or `todo!()`) returns
/// `!` under edition 2024's never-type fallback; it may be registered like
/// any other.
impl From<crate::private::Never> for Fate {
    fn from(never: crate::private::Never) -> Self {
        never
    }
}

/// Anything that can be sent: a `Compact`, `Send` value. Messages are
/// compacted into the recipient's inbox and handed to handlers by
/// reference, in place, possibly on another thread.
///
/// A message is copied byte for byte into inboxes (once per shard for a
/// broadcast), so it must not hold an [`External`](crate::External), whose
/// value has exactly one owner: sending, spawning with or handling such a
/// message type is a compile error (raised when the program is built, by
/// `cargo build`/`test`, not `cargo check`).
pub trait Message: Compact + Send + 'static {}

impl<T: Compact + Send + 'static> Message for T {}

/// Fails the build if `M` is process-local (holds an `External`).
#[inline(always)]
pub(crate) fn refuse_process_local<M: Message>() {
    const {
        assert!(
            !M::PROCESS_LOCAL,
            "this message type holds an External (Compact::PROCESS_LOCAL): messages are copied \
             byte for byte, while an External has one owner in this process; send an ID of the \
             actor holding it, or plain data, instead"
        )
    }
}

/// The macro-free way to handle a message type: implement it, then register
/// it with [`ClassSetup::recipient`]. Handlers registered this way and as
/// closures cost the same.
pub trait Recipient<M: Message>: Actor {
    /// Handles one message.
    fn receive(&mut self, msg: &M, world: &mut World) -> Fate;
}

/// Marks an actor trait: a set of messages that several classes handle, with
/// an ID type that names the concrete class at run time. Declare the trait's
/// ID with [`typed_id!`](crate::typed_id) and a marker type implementing this.
pub trait ActorTrait: 'static {
    /// The trait's typed ID.
    type ID: TypedID;
}
