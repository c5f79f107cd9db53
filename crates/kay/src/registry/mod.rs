//! The registry: registering classes, actor traits and message types, the
//! dense numbers they get (a class's or trait's [`ShortTypeID`], a message
//! type's [`MessageID`]) and their names, and installing handlers
//! ([`ClassSetup`]).

mod fingerprint;
mod setup;

pub use fingerprint::{Difference, Fingerprint};
pub use setup::ClassSetup;

use std::any::TypeId;
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::{Arc, RwLock};

use crate::actor::{Actor, ActorTrait, Message};
use crate::class::handlers::MessageDebug;
use crate::class::lanes::{GlobalShard, MAX_LANES, SenderLane};
use crate::class::{Class, ClassShared, Handler, Shard, ShardState};
use crate::cycle::pool::Job;
use crate::error::Error;
use crate::id::ShortTypeID;
use crate::store::{ActorOps, Store};
use crate::sync::{Unpoisoned, WriteUnpoisoned};
use crate::system::ActorSystem;
use crate::world::World;

/// A dense number for a message type, given when a handler for it is registered.
#[repr(transparent)]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct MessageID(pub(crate) u16);

/// What the fingerprint records of a message type.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MessageLayout {
    pub(crate) size: usize,
    pub(crate) align: usize,
    pub(crate) is_static: bool,
    /// `Compact::FIELDS`.
    pub(crate) fields: &'static str,
}

/// The most message types (the tag's other 15 bits, minus [`UNKNOWN`](crate::inbox::record::UNKNOWN)
/// and the two tags of answers on the wire, `0x7FFD` and `0x7FFE`).
pub(crate) const MAX_MESSAGE_TYPES: usize = 0x7FFD;

/// A registered class or trait, as senders see it.
#[derive(Clone)]
pub(crate) enum TypeEntry {
    Class(Arc<ClassShared>),
    Trait(Arc<TraitShared>),
}

/// An actor trait and the classes that implement it.
pub(crate) struct TraitShared {
    pub(crate) name: &'static str,
    pub(crate) implementors: RwLock<Vec<Arc<ClassShared>>>,
}

impl ActorSystem {
    /// The type id the next registered class or trait gets.
    pub(crate) fn next_type_id(&self, name: &'static str) -> Result<ShortTypeID, Error> {
        let len = self.shared.types.locked().len();
        u16::try_from(len)
            .ok()
            .filter(|&id| id < u16::MAX)
            .map(ShortTypeID)
            .ok_or(Error::TooManyTypes {
                name,
                limit: u16::MAX as usize,
            })
    }

    #[inline]
    pub(crate) fn known_type<T: ?Sized + 'static>(&self) -> Option<ShortTypeID> {
        self.known_type_of(TypeId::of::<T>())
    }

    /// See [`known_type`](Self::known_type) (not generic: once in the binary).
    #[inline(never)]
    fn known_type_of(&self, key: TypeId) -> Option<ShortTypeID> {
        self.shared.type_ids.locked().get(&key).copied()
    }

    pub(crate) fn add_type(&self, key: TypeId, entry: TypeEntry) -> ShortTypeID {
        let mut types = self.shared.types.write_locked();
        let id = ShortTypeID(types.len() as u16);
        types.push(entry);
        self.shared.type_ids.write_locked().insert(key, id);
        id
    }

    /// Registers actor class `A` and installs its handlers ([`Actor::setup`]).
    ///
    /// # Panics
    /// If [`try_register`](Self::try_register) returns an error, or `A`'s
    /// alignment is above 8 bytes.
    pub fn register<A: Actor>(&mut self) -> ShortTypeID {
        self.try_register::<A>()
            .unwrap_or_else(|error| panic!("{error}"))
    }

    /// Registers actor class `A` and installs its handlers
    /// ([`Actor::setup`]), or says why not: `A` is registered already, or
    /// no more classes or shards fit.
    ///
    /// # Panics
    /// If `A`'s alignment is above 8 bytes (a property of the type, found
    /// by the first test run).
    pub fn try_register<A: Actor>(&mut self) -> Result<ShortTypeID, Error> {
        let name = std::any::type_name::<A>();
        if self.known_type::<A>().is_some() {
            return Err(Error::AlreadyRegistered { name });
        }
        assert!(
            align_of::<A>() <= 8,
            "actor {name} has an alignment above 8 bytes, which instance stores do not support"
        );
        // The class's type-erased parts are made by one shared function
        // (its stores too, from `A`'s table of operations); only the setup
        // is per class.
        let type_id = self.add_class(TypeId::of::<A>(), name, ActorOps::of::<A>())?;
        A::setup(&mut ClassSetup {
            system: self,
            type_id,
            _actor: PhantomData,
        });
        for trait_impl in crate::private::trait_impls_of(TypeId::of::<A>()) {
            (trait_impl.setup)(self);
        }
        Ok(type_id)
    }

    /// Registers a class named `name` (of type `key`, whose operations are
    /// `ops`): its id, shared parts, shards with their stores, and worlds.
    /// See [`try_register`](Self::try_register).
    #[inline(never)]
    fn add_class(
        &mut self,
        key: TypeId,
        name: &'static str,
        ops: ActorOps,
    ) -> Result<ShortTypeID, Error> {
        let type_id = self.next_type_id(name)?;
        let shards = self.config.shards as u32;
        let first_global = self.global_shards.len() as u32;
        let limit = MAX_LANES as usize - 1;
        if first_global as usize + shards as usize > limit {
            return Err(Error::TooManyShards {
                name,
                shards: first_global as usize + shards as usize,
                limit,
            });
        }
        let shared = Arc::new(ClassShared::new(
            name,
            type_id,
            shards,
            GlobalShard(first_global),
            &self.all,
            self.config.inbox_chunk_size,
            self.config.inbox_retain_bytes,
        ));
        let added = self.add_type(key, TypeEntry::Class(Arc::clone(&shared)));
        debug_assert_eq!(added, type_id);
        let ident: String = name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let ident = &ident[ident.len().saturating_sub(60)..];
        let shards = (0..shards)
            .map(|s| {
                let store = Store::new(
                    self.storage.clone(),
                    format!("c{}s{s}_{ident}", type_id.get()),
                    shards,
                    ops,
                );
                let mut state = ShardState::new(
                    World::new(
                        Arc::clone(&self.shared),
                        SenderLane::of(GlobalShard(first_global + s)),
                    ),
                    name,
                );
                state.panicked = self.panicked;
                Shard {
                    store,
                    state,
                    work: Vec::new(),
                    resume: false,
                    resuming: None,
                    taken: 0,
                }
            })
            .collect();
        let mut class = Class {
            shared,
            handlers: Box::default(),
            shards,
        };
        // The heap parts of `class` stay where they are when it moves.
        self.global_shards
            .extend(class.shards.iter_mut().zip(class.shared.shards.iter()).map(
                |(shard, shared)| Job {
                    handlers: NonNull::from(&*class.handlers),
                    shard: NonNull::from(shard),
                    shared: NonNull::from(shared),
                },
            ));
        self.all.set_lanes(1 + self.global_shards.len() as u32);
        let at = type_id.get() as usize;
        if self.classes.len() <= at {
            self.classes.resize_with(at + 1, || None);
        }
        self.classes[at] = Some(class);
        Ok(type_id)
    }

    /// Registers actor trait `T` (also done on first use by
    /// [`ClassSetup::implements`]); returns its type id.
    ///
    /// # Panics
    /// If [`try_register_trait`](Self::try_register_trait) returns an error.
    pub fn register_trait<T: ActorTrait + ?Sized>(&mut self) -> ShortTypeID {
        self.try_register_trait::<T>()
            .unwrap_or_else(|error| panic!("{error}"))
    }

    /// Registers actor trait `T` (again: returns its type id), or says why
    /// not: no more classes and traits fit.
    pub fn try_register_trait<T: ActorTrait + ?Sized>(&mut self) -> Result<ShortTypeID, Error> {
        if let Some(id) = self.known_type::<T>() {
            return Ok(id);
        }
        let name = std::any::type_name::<T>();
        self.next_type_id(name)?;
        let entry = TraitShared {
            name,
            implementors: RwLock::new(Vec::new()),
        };
        Ok(self.add_type(TypeId::of::<T>(), TypeEntry::Trait(Arc::new(entry))))
    }

    /// Handler registration for class `A` outside [`Actor::setup`].
    ///
    /// # Panics
    /// If `A` is not registered.
    pub fn class<A: Actor>(&mut self) -> ClassSetup<'_, A> {
        self.try_class::<A>()
            .unwrap_or_else(|error| panic!("{error}"))
    }

    /// Handler registration for class `A` outside [`Actor::setup`], or
    /// [`Error::NotRegistered`].
    pub fn try_class<A: Actor>(&mut self) -> Result<ClassSetup<'_, A>, Error> {
        let type_id = self.known_type::<A>().ok_or(Error::NotRegistered {
            name: std::any::type_name::<A>(),
        })?;
        Ok(ClassSetup {
            system: self,
            type_id,
            _actor: PhantomData,
        })
    }

    /// The id of message type `M`, registering it if new. A thin generic
    /// shell over [`message_id_of`](Self::message_id_of), so that each
    /// message type adds only a few instructions of machine code.
    #[inline]
    pub(crate) fn message_id<M: Message>(&mut self) -> MessageID {
        crate::actor::refuse_process_local::<M>();
        let id = self.message_id_of(
            TypeId::of::<M>(),
            std::any::type_name::<M>(),
            MessageLayout {
                size: compact::static_size_bytes::<M>(),
                align: align_of::<M>(),
                is_static: M::IS_STATIC,
                fields: M::FIELDS,
            },
            crate::timer::restore_timer_message::<M>,
        );
        #[cfg(feature = "net")]
        {
            let at = id.0 as usize;
            if self.message_net_ops.len() <= at {
                self.message_net_ops.resize(at + 1, None);
            }
            self.message_net_ops[at] = Some(crate::net::NetOps::of::<M>());
        }
        id
    }

    /// See [`message_id`](Self::message_id).
    #[inline(never)]
    fn message_id_of(
        &mut self,
        key: TypeId,
        name: &'static str,
        layout: MessageLayout,
        restore: crate::timer::RestoreTimerMessage,
    ) -> MessageID {
        assert!(
            layout.align <= 8,
            "message {name} has an alignment above 8 bytes, which inboxes do not support"
        );
        let mut ids = self.shared.message_ids.write_locked();
        let mut names = self.shared.message_names.write_locked();
        *ids.entry(key).or_insert_with(|| {
            assert!(
                names.len() < MAX_MESSAGE_TYPES,
                "too many message types to register {name} (at most {})",
                MAX_MESSAGE_TYPES
            );
            let id = names.len() as u16;
            names.push(name);
            self.message_types.push((name, layout));
            self.message_restore.push(restore);
            MessageID(id)
        })
    }

    pub(crate) fn install(
        &mut self,
        type_id: ShortTypeID,
        message: MessageID,
        mut handler: Handler,
    ) {
        handler.debug_message = self.message_debug.get(&message).cloned();
        let class = self.classes[type_id.get() as usize]
            .as_mut()
            .expect("registered class");
        if class.handlers.insert(message, handler).is_err() {
            let existing = class.handlers.get(message).expect("the entry in the way");
            let names = self.shared.message_names.locked();
            panic!(
                "{} already has a {:?} for message {}; a class has one handler or spawner per message type",
                class.shared.name, existing.kind, names[message.0 as usize]
            );
        }
    }

    /// Shows messages of type `M` with their `Debug` in panic reports.
    pub fn debug_message<M: Message + std::fmt::Debug>(&mut self) -> &mut Self {
        self.debug_message_with::<M>(|m| format!("{m:?}"))
    }

    /// Shows messages of type `M` with `format` in panic reports.
    pub fn debug_message_with<M: Message>(&mut self, format: fn(&M) -> String) -> &mut Self {
        let message = self.message_id::<M>();
        let debug = MessageDebug::new(format);
        for class in self.classes.iter_mut().flatten() {
            if let Some(handler) = class.handlers.get_mut(message) {
                handler.debug_message = Some(debug.clone());
            }
        }
        self.message_debug.insert(message, debug);
        self
    }

    /// Names message type `M` `name` in statistics and panic reports
    /// (instead of its type name); the macros name their hidden message
    /// types `Class::method`.
    pub fn name_message<M: Message>(&mut self, name: &'static str) -> &mut Self {
        let message = self.message_id::<M>();
        self.shared.message_names.write_locked()[message.0 as usize] = name;
        self
    }
}
