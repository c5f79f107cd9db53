//! The registry: the dense numbers of registered types (classes, actor
//! traits, message types) and their names.

/// A dense number for a message type, given when a handler for it is registered.
#[repr(transparent)]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct MessageId(pub(crate) u16);

/// The most message types (the tag's other 15 bits, minus [`UNKNOWN`](crate::inbox::record::UNKNOWN)).
pub(crate) const MAX_MESSAGE_TYPES: usize = 0x7FFF;
