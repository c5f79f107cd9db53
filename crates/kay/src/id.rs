//! Actor identities: [`RawID`], typed IDs and broadcast addresses.

use std::fmt;
use std::str::FromStr;

use compact::Compact;

/// A dense number for an actor class or actor trait, given at registration.
#[repr(transparent)]
#[derive(Compact, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Default)]
pub struct ShortTypeID(pub(crate) u16);

impl ShortTypeID {
    /// The number.
    pub const fn get(self) -> u16 {
        self.0
    }

    /// Wraps a number (for parsing and tests; real ids come from registration).
    pub const fn new(id: u16) -> Self {
        ShortTypeID(id)
    }
}

/// The machine an actor lives on: its index in the topology.
#[repr(transparent)]
#[derive(Compact, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Default)]
pub struct MachineID(pub u8);

/// Instance number addressing every instance of a class on this machine.
pub(crate) const LOCAL_BROADCAST: u32 = u32::MAX;
/// Instance number addressing every instance of a class on every machine.
pub(crate) const GLOBAL_BROADCAST: u32 = u32::MAX - 1;
/// The largest instance number an actor can have.
pub(crate) const MAX_INSTANCE: u32 = u32::MAX - 2;

/// The untyped identity of an actor (or a broadcast address): 8 bytes.
///
/// It formats as `"{type:X}_{instance:X}.{version:X}@{machine:X}"` (hex) and
/// parses back. The version changes each time an instance number is reused,
/// so a stale ID of a dead actor misses instead of hitting its successor
/// (until the `u8` version wraps after 256 reuses of the same number).
#[repr(C)]
#[derive(Compact, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct RawID {
    /// The instance number within its class (or a broadcast marker).
    pub instance: u32,
    /// The class, or for a trait broadcast the trait.
    pub type_id: ShortTypeID,
    /// The machine the actor lives on.
    pub machine: MachineID,
    /// The reuse count of the instance number.
    pub version: u8,
}

const _: () = assert!(size_of::<RawID>() == 8);

impl RawID {
    /// Assembles an ID.
    pub const fn new(type_id: ShortTypeID, instance: u32, machine: MachineID, version: u8) -> Self {
        RawID {
            instance,
            type_id,
            machine,
            version,
        }
    }

    /// The address of every instance of `type_id` on `machine`.
    pub const fn local_broadcast(type_id: ShortTypeID, machine: MachineID) -> Self {
        RawID::new(type_id, LOCAL_BROADCAST, machine, 0)
    }

    /// The address of every instance of `type_id` on every machine.
    pub const fn global_broadcast(type_id: ShortTypeID, machine: MachineID) -> Self {
        RawID::new(type_id, GLOBAL_BROADCAST, machine, 0)
    }

    /// Whether this addresses all instances (locally or globally).
    pub const fn is_broadcast(&self) -> bool {
        self.instance >= GLOBAL_BROADCAST
    }

    /// Whether this addresses all instances on all machines.
    pub const fn is_global_broadcast(&self) -> bool {
        self.instance == GLOBAL_BROADCAST
    }

    /// The ID packed into 8 bytes (instance, type, machine, version), as
    /// snapshots store it.
    pub(crate) fn as_u64(self) -> u64 {
        u64::from(self.instance)
            | u64::from(self.type_id.0) << 32
            | u64::from(self.machine.0) << 48
            | u64::from(self.version) << 56
    }

    /// The ID [`as_u64`](Self::as_u64) packed.
    pub(crate) fn from_u64(v: u64) -> RawID {
        RawID::new(
            ShortTypeID((v >> 32) as u16),
            v as u32,
            MachineID((v >> 48) as u8),
            (v >> 56) as u8,
        )
    }
}

impl fmt::Display for RawID {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:X}_{:X}.{:X}@{:X}",
            self.type_id.0, self.instance, self.version, self.machine.0
        )
    }
}

impl fmt::Debug for RawID {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why a string is not a [`RawID`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid actor ID {input:?}: {reason} (expected \"{{type:X}}_{{instance:X}}.{{version:X}}@{{machine:X}}\", e.g. \"1F_2A.0@0\")"
)]
pub struct ParseIDError {
    input: String,
    reason: &'static str,
}

impl FromStr for RawID {
    type Err = ParseIDError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason| ParseIDError {
            input: s.to_owned(),
            reason,
        };
        let (type_id, rest) = s.split_once('_').ok_or_else(|| err("missing '_'"))?;
        let (instance, rest) = rest.split_once('.').ok_or_else(|| err("missing '.'"))?;
        let (version, machine) = rest.split_once('@').ok_or_else(|| err("missing '@'"))?;
        let hex = |part: &str, what| {
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
                Err(err(what))
            } else {
                u64::from_str_radix(part, 16).map_err(|_| err(what))
            }
        };
        let type_id = hex(type_id, "type is not a hex u16")?;
        let instance = hex(instance, "instance is not a hex u32")?;
        let version = hex(version, "version is not a hex u8")?;
        let machine = hex(machine, "machine is not a hex u8")?;
        Ok(RawID::new(
            ShortTypeID(u16::try_from(type_id).map_err(|_| err("type is not a hex u16"))?),
            u32::try_from(instance).map_err(|_| err("instance is not a hex u32"))?,
            MachineID(u8::try_from(machine).map_err(|_| err("machine is not a hex u8"))?),
            u8::try_from(version).map_err(|_| err("version is not a hex u8"))?,
        ))
    }
}

/// An ID that knows what it points at: an actor class's `FooID`, or an actor
/// trait's `BarID`. It is a `Copy` 8-byte newtype over [`RawID`].
pub trait TypedID: Copy + Eq + std::hash::Hash + fmt::Debug + Compact + 'static {
    /// Wraps a raw ID.
    fn from_raw(raw: RawID) -> Self;
    /// The raw ID.
    fn as_raw(&self) -> RawID;
}

impl TypedID for RawID {
    fn from_raw(raw: RawID) -> Self {
        raw
    }
    fn as_raw(&self) -> RawID {
        *self
    }
}

/// Declares a typed ID newtype for an actor class or trait without the
/// `#[kay::actor]` macro: `kay::typed_id!(pub CounterID);` gives a `Copy`
/// 8-byte `CounterID` implementing [`TypedID`], `Display` and `FromStr`.
#[macro_export]
macro_rules! typed_id {
    ($(#[$meta:meta])* $vis:vis $name:ident) => {
        $(#[$meta])*
        #[repr(transparent)]
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, $crate::compact::Compact)]
        $vis struct $name(pub $crate::RawID);

        impl $crate::TypedID for $name {
            fn from_raw(raw: $crate::RawID) -> Self {
                $name(raw)
            }
            fn as_raw(&self) -> $crate::RawID {
                self.0
            }
        }

        impl ::core::fmt::Debug for $name {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                ::core::write!(f, "{}({})", ::core::stringify!($name), self.0)
            }
        }

        impl ::core::fmt::Display for $name {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                ::core::fmt::Display::fmt(&self.0, f)
            }
        }

        impl ::core::str::FromStr for $name {
            type Err = $crate::ParseIDError;
            fn from_str(s: &str) -> ::core::result::Result<Self, Self::Err> {
                s.parse::<$crate::RawID>().map($name)
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_id_is_eight_bytes_and_round_trips_through_text() {
        let id = RawID::new(ShortTypeID(0x1F), 0x2A, MachineID(3), 7);
        assert_eq!(id.to_string(), "1F_2A.7@3");
        assert_eq!("1F_2A.7@3".parse::<RawID>().unwrap(), id);
        let b = RawID::local_broadcast(ShortTypeID(2), MachineID(0));
        assert_eq!(b.to_string().parse::<RawID>().unwrap(), b);
        assert!(b.is_broadcast() && !b.is_global_broadcast());
    }

    #[test]
    fn bad_id_text_gives_a_clear_error() {
        for bad in [
            "",
            "1F",
            "1F_2A",
            "1F_2A.7",
            "1F_2A.7@",
            "G_1.0@0",
            "1_1.100@0",
            "10000_1.0@0",
            "1_-1.0@0",
        ] {
            let e = bad.parse::<RawID>().unwrap_err();
            assert!(e.to_string().contains("expected"), "{e}");
        }
    }
}
