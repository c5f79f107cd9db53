//! [`ClassSetup`]: installing a class's handlers and spawners.

use std::marker::PhantomData;
use std::sync::Arc;

use crate::actor::{Actor, ActorTrait, Fate, Message, Recipient};
use crate::class::Handler;
use crate::cycle::panic::PanicPolicy;
use crate::id::ShortTypeID;
use crate::registry::TypeEntry;
use crate::reply::Request;
use crate::sync::{Unpoisoned, WriteUnpoisoned};
use crate::system::ActorSystem;
use crate::world::World;

/// Installs handlers and spawners of class `A`: given to [`Actor::setup`],
/// or from [`ActorSystem::class`].
pub struct ClassSetup<'a, A: Actor> {
    pub(crate) system: &'a mut ActorSystem,
    pub(crate) type_id: ShortTypeID,
    pub(crate) _actor: PhantomData<A>,
}

impl<A: Actor> ClassSetup<'_, A> {
    /// This class's type id.
    pub fn type_id(&self) -> ShortTypeID {
        self.type_id
    }

    /// Handles message `M` with `f`, for single instances and for broadcasts.
    /// `f` returns `()` or a [`Fate`].
    pub fn handler<M: Message, R: Into<Fate>>(
        &mut self,
        f: impl Fn(&mut A, &M, &mut World) -> R + Send + Sync + 'static,
    ) -> &mut Self {
        let message = self.system.message_id::<M>();
        let handler = Handler::for_messages::<A, M, _>(move |a: &mut A, m: &M, w: &mut World| {
            f(a, m, w).into()
        });
        self.system.install(self.type_id, message, handler);
        self
    }

    /// Like [`handler`](Self::handler), for a handler that must still run
    /// after the system has panicked (for rendering, inspection, snapshots
    /// and shutting down), see [Panics](ActorSystem#panics).
    pub fn essential_handler<M: Message, R: Into<Fate>>(
        &mut self,
        f: impl Fn(&mut A, &M, &mut World) -> R + Send + Sync + 'static,
    ) -> &mut Self {
        self.handler(f);
        self.mark::<M>(|h| h.essential = true)
    }

    /// Like [`handler`](Self::handler), for a request: if the request is
    /// dropped (no recipient, the handler panicked, the system is panicked)
    /// the asker's `Reply` resolves to that error at once.
    pub fn request_handler<M: Request, R: Into<Fate>>(
        &mut self,
        f: impl Fn(&mut A, &M, &mut World) -> R + Send + Sync + 'static,
    ) -> &mut Self {
        self.handler(f);
        self.mark::<M>(|h| h.fail_request_for::<M>())
    }

    /// [`request_handler`](Self::request_handler) that still runs after a
    /// panic, like [`essential_handler`](Self::essential_handler).
    pub fn essential_request_handler<M: Request, R: Into<Fate>>(
        &mut self,
        f: impl Fn(&mut A, &M, &mut World) -> R + Send + Sync + 'static,
    ) -> &mut Self {
        self.essential_handler(f);
        self.mark::<M>(|h| h.fail_request_for::<M>())
    }

    /// What this class does when one of its handlers or spawners panics
    /// (default: [`PanicPolicy::Stop`], see [Panics](ActorSystem#panics)).
    pub fn on_panic(&mut self, policy: PanicPolicy) -> &mut Self {
        let class = self.system.classes[self.type_id.get() as usize]
            .as_mut()
            .expect("registered class");
        for shard in &mut class.shards {
            shard.state.policy = policy;
            shard.store.policy = policy;
        }
        self
    }

    /// Shows instances with their `Debug` in panic reports
    /// (`#[kay::actor]` does this for actors that implement `Debug`).
    pub fn debug_state(&mut self) -> &mut Self
    where
        A: std::fmt::Debug,
    {
        self.debug_state_with(|a| format!("{a:?}"))
    }

    /// Shows instances with `format` in panic reports.
    pub fn debug_state_with(&mut self, format: fn(&A) -> String) -> &mut Self {
        let class = self.system.classes[self.type_id.get() as usize]
            .as_mut()
            .expect("registered class");
        for shard in &mut class.shards {
            shard.store.debug = Some(Box::new(move |actor: &dyn std::any::Any| {
                format(
                    actor
                        .downcast_ref::<A>()
                        .expect("a store of class A holds A's"),
                )
            }));
        }
        self
    }

    /// For the macros: names message `M` and sets its formatter.
    #[doc(hidden)]
    pub fn describe_message<M: Message>(
        &mut self,
        name: &'static str,
        format: fn(&M) -> String,
    ) -> &mut Self {
        self.system
            .name_message::<M>(name)
            .debug_message_with::<M>(format);
        self
    }

    /// Changes the table entry of message `M` with `f`.
    fn mark<M: Message>(&mut self, f: impl FnOnce(&mut Handler)) -> &mut Self {
        let message = self.system.message_id::<M>();
        let class = self.system.classes[self.type_id.get() as usize]
            .as_mut()
            .expect("registered class");
        if let Some(handler) = class.handlers.get_mut(message) {
            f(handler);
        }
        self
    }

    /// Handles message `M` with `A`'s [`Recipient<M>`] impl.
    pub fn recipient<M: Message>(&mut self) -> &mut Self
    where
        A: Recipient<M>,
    {
        self.handler(|a: &mut A, m: &M, w: &mut World| a.receive(m, w))
    }

    /// Spawns instances from message `M` (see [`World::spawn`]).
    pub fn spawner<M: Message>(
        &mut self,
        f: impl Fn(A::ID, &M, &mut World) -> A + Send + Sync + 'static,
    ) -> &mut Self {
        let message = self.system.message_id::<M>();
        self.system
            .install(self.type_id, message, Handler::spawner::<A, M, _>(f));
        self
    }

    /// Declares that `A` implements actor trait `T`: broadcasts to `T` reach
    /// `A`'s instances, and `T`'s messages sent to an `A` are handled by the
    /// handlers registered here for them.
    pub fn implements<T: ActorTrait + ?Sized>(&mut self) -> &mut Self {
        let trait_id = self.system.register_trait::<T>();
        let types = self.system.shared.types.locked();
        let (TypeEntry::Trait(t), TypeEntry::Class(class)) = (
            &types[trait_id.get() as usize],
            &types[self.type_id.get() as usize],
        ) else {
            unreachable!("trait and class entries")
        };
        let mut implementors = t.implementors.write_locked();
        if !implementors.iter().any(|c| c.type_id == class.type_id) {
            implementors.push(Arc::clone(class));
        }
        drop(implementors);
        drop(types);
        self
    }
}
