//! The fingerprint of a system's registry: what two systems must agree on
//! before they exchange messages (networking) or one loads the other's
//! state (snapshots).

use std::fmt;

use crate::ActorSystem;
use crate::class::handlers::HandlerKind;
use crate::registry::TypeEntry;
use crate::sync::Unpoisoned;

/// What a system registered, in order: the shard count, every class (its
/// instances' size, fields as declared and the messages it handles), every
/// actor trait (its implementors) and every message type (its size,
/// alignment and fields). Type
/// ids and message ids are positions in registration order, so two
/// systems agree on what an ID or a message tag means exactly when their
/// fingerprints are equal.
///
/// It is a list of lines (readable, so that a mismatch can name the first
/// type that differs) and a 64-bit hash of them (FNV-1a: the same on every
/// platform and run). Type names come from [`std::any::type_name`], which
/// the same source built by the same compiler spells the same.
///
/// ```
/// # use kay::{ActorSystem, Config};
/// let a = ActorSystem::new(Config::default());
/// let b = ActorSystem::new(Config::default());
/// assert_eq!(a.fingerprint(), b.fingerprint());
/// assert_eq!(a.fingerprint().hash(), b.fingerprint().hash());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fingerprint {
    lines: Vec<String>,
}

/// The first entry where two fingerprints differ (see
/// [`Fingerprint::first_difference`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Difference<'a> {
    /// The entry's position.
    pub at: usize,
    /// This system's entry there, if it has one.
    pub ours: Option<&'a str>,
    /// The other system's entry there, if it has one.
    pub theirs: Option<&'a str>,
}

impl fmt::Display for Difference<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.ours, self.theirs) {
            (Some(ours), Some(theirs)) => write!(
                f,
                "registries differ at entry {}: here `{ours}`, there `{theirs}`",
                self.at
            ),
            (Some(ours), None) => write!(
                f,
                "registries differ at entry {}: only here: `{ours}`",
                self.at
            ),
            (None, Some(theirs)) => write!(
                f,
                "registries differ at entry {}: only there: `{theirs}`",
                self.at
            ),
            (None, None) => write!(f, "registries are equal"),
        }
    }
}

impl Fingerprint {
    /// The version of the line format; part of the first line.
    pub const VERSION: u32 = 2;

    /// The entries, one per line: a header, the shard count, then classes
    /// and traits by type id, then message types by id.
    pub fn lines(&self) -> &[String] {
        &self.lines
    }

    /// A fingerprint of these lines (as another system sent them).
    pub(crate) fn from_lines(lines: Vec<String>) -> Fingerprint {
        Fingerprint { lines }
    }

    /// A 64-bit FNV-1a hash of the lines (each followed by `\n`).
    pub fn hash(&self) -> u64 {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for line in &self.lines {
            for &byte in line.as_bytes().iter().chain(b"\n") {
                hash ^= u64::from(byte);
                hash = hash.wrapping_mul(0x0100_0000_01b3);
            }
        }
        hash
    }

    /// The first entry where `self` and `other` differ, if any.
    pub fn first_difference<'a>(&'a self, other: &'a Fingerprint) -> Option<Difference<'a>> {
        let len = self.lines.len().max(other.lines.len());
        (0..len).find_map(|at| {
            let ours = self.lines.get(at).map(String::as_str);
            let theirs = other.lines.get(at).map(String::as_str);
            (ours != theirs).then_some(Difference { at, ours, theirs })
        })
    }
}

impl ActorSystem {
    /// The fingerprint of everything registered so far (see
    /// [`Fingerprint`]).
    pub fn fingerprint(&self) -> Fingerprint {
        let mut lines = vec![
            format!("kay fingerprint v{}", Fingerprint::VERSION),
            format!("shards {}", self.config.shards),
        ];
        let types = self.shared.types.locked();
        for (id, entry) in types.iter().enumerate() {
            match entry {
                TypeEntry::Class(shared) => {
                    let class = self.classes[id].as_ref().expect("a registered class");
                    let (size, is_static, fields) = class.shards[0].store.layout();
                    let handles: Vec<String> = class
                        .handlers
                        .iter()
                        .map(|(message, handler)| {
                            let kind = match handler.kind {
                                HandlerKind::Spawner => "s",
                                HandlerKind::Handler if handler.essential => "e",
                                HandlerKind::Handler => "",
                            };
                            format!("{}{kind}", message.0)
                        })
                        .collect();
                    lines.push(format!(
                        "class {id} {} size {size} {} fields {fields} handles [{}]",
                        shared.name,
                        if is_static { "static" } else { "dynamic" },
                        handles.join(",")
                    ));
                }
                TypeEntry::Trait(shared) => {
                    let implementors: Vec<String> = shared
                        .implementors
                        .locked()
                        .iter()
                        .map(|class| class.type_id.get().to_string())
                        .collect();
                    lines.push(format!(
                        "trait {id} {} implemented by [{}]",
                        shared.name,
                        implementors.join(",")
                    ));
                }
            }
        }
        drop(types);
        for (id, (name, layout)) in self.message_types.iter().enumerate() {
            lines.push(format!(
                "message {id} {name} size {} align {} {} fields {}",
                layout.size,
                layout.align,
                if layout.is_static {
                    "static"
                } else {
                    "dynamic"
                },
                layout.fields
            ));
        }
        Fingerprint { lines }
    }
}
