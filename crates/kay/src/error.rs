//! [`Error`]: what kay refuses when it meets input it does not control.

/// What kay refuses when it meets input it does not control.
///
/// Programming errors that a test run finds at once (a handler registered
/// twice for one message type, an actor with an alignment above 8 bytes)
/// stay panics with clear messages. Errors a program may want to handle —
/// registration that depends on configuration or plugins, a type that may
/// or may not be registered — are this type, returned by the `try_`
/// methods ([`ActorSystem::try_register`](crate::ActorSystem::try_register),
/// [`try_register_trait`](crate::ActorSystem::try_register_trait),
/// [`try_class`](crate::ActorSystem::try_class)); their panicking
/// counterparts panic with the same text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The class was registered before.
    #[error("{name} is already registered")]
    AlreadyRegistered {
        /// The class's type name.
        name: &'static str,
    },
    /// No more classes and actor traits fit the type ids.
    #[error("too many actor classes and traits to register {name} (at most {limit})")]
    TooManyTypes {
        /// The type's name.
        name: &'static str,
        /// The most classes and traits a system holds.
        limit: usize,
    },
    /// The class's shards would exceed the shards a system can have.
    #[error(
        "registering {name} would make {shards} shards over all classes (at most {limit}); \
         lower Config::shards"
    )]
    TooManyShards {
        /// The class's type name.
        name: &'static str,
        /// The shards there would be.
        shards: usize,
        /// The most shards over all classes.
        limit: usize,
    },
    /// The class or trait is not registered in this system.
    #[error("{name} is not registered")]
    NotRegistered {
        /// The type's name.
        name: &'static str,
    },
}
