//! Panics in handlers: [`PanicReport`], [`PanicPolicy`], the panic hook
//! that notes locations, and the catch used around handler calls. What
//! happens after a panic is written once, in the "Panics" section of the
//! [`ActorSystem`](crate::ActorSystem) docs.

use std::any::Any;
use std::cell::RefCell;
use std::fmt;
use std::sync::Once;

use crate::id::RawID;

/// What a class does when one of its handlers or spawners panics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PanicPolicy {
    /// Enter the panicked state (see the [module docs](crate::ActorSystem#panics)).
    #[default]
    Stop,
    /// Drop the message for the faulting instance and carry on.
    DropMessage,
    /// Remove the faulting instance and carry on.
    RemoveInstance,
}

/// A caught panic of a handler or spawner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PanicReport {
    /// The instance whose handler panicked (for a spawner: the ID it was
    /// spawning, which then does not exist).
    pub actor: RawID,
    /// The class's type name.
    pub class: &'static str,
    /// The message type's name.
    pub message: &'static str,
    /// The panic's message.
    pub text: String,
    /// Where it panicked (`file:line:column`), if the panic hook saw it.
    pub location: Option<String>,
    /// The message cycle it happened in (counted from 1).
    pub cycle: u64,
    /// What the class's policy did about it.
    pub policy: PanicPolicy,
    /// The actor's state after the panic, if the class registered its
    /// `Debug` ([`ClassSetup::debug_state`](crate::ClassSetup::debug_state)).
    pub actor_debug: Option<String>,
    /// The message, if its `Debug` was registered
    /// ([`ActorSystem::debug_message`](crate::ActorSystem::debug_message)).
    pub message_debug: Option<String>,
}

impl fmt::Display for PanicReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} panicked handling {} in message cycle {}: {}",
            self.class, self.actor, self.message, self.cycle, self.text
        )?;
        if let Some(location) = &self.location {
            write!(f, " (at {location})")?;
        }
        if let Some(actor) = &self.actor_debug {
            write!(f, "\n  actor: {actor}")?;
        }
        if let Some(message) = &self.message_debug {
            write!(f, "\n  message: {message}")?;
        }
        Ok(())
    }
}

/// A panic caught in a shard, before the system names its class, message
/// and cycle.
pub(crate) struct Caught {
    pub(crate) actor: RawID,
    pub(crate) text: String,
    pub(crate) location: Option<String>,
    pub(crate) actor_debug: Option<String>,
    /// Filled in by the dispatch, which knows the message.
    pub(crate) message: Option<crate::registry::MessageID>,
    pub(crate) message_debug: Option<String>,
}

impl Caught {
    /// Takes the panic's text from `payload` and its location from the hook.
    pub(crate) fn new(
        actor: RawID,
        payload: Box<dyn Any + Send>,
        actor_debug: Option<String>,
    ) -> Caught {
        Caught {
            actor,
            text: payload_text(payload),
            location: LAST_LOCATION.with(|l| l.borrow_mut().take()),
            actor_debug,
            message: None,
            message_debug: None,
        }
    }
}

/// The text of a panic payload (a `&str` or `String` for `panic!`).
pub(crate) fn payload_text(payload: Box<dyn Any + Send>) -> String {
    let text = if let Some(text) = payload.downcast_ref::<&'static str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "<a panic payload that is not a string>".to_owned()
    };
    // The payload may own anything; dropping it may panic in turn.
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(payload)));
    text
}

thread_local! {
    /// The location of this thread's last panic, left by the hook.
    static LAST_LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Installs (once per process) a panic hook that notes each panic's
/// location for [`Caught::new`] and then calls the hook it replaced, so
/// panics are still printed as usual.
pub(crate) fn install_hook() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if let Some(location) = info.location() {
                let _ = LAST_LOCATION.try_with(|l| {
                    if let Ok(mut l) = l.try_borrow_mut() {
                        *l = Some(location.to_string());
                    }
                });
            }
            previous(info);
        }));
    });
}

/// Runs `f`, catching a panic.
#[inline(always)]
pub(crate) fn catch<R>(f: impl FnOnce() -> R) -> Result<R, Box<dyn Any + Send>> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
}

impl crate::ActorSystem {
    /// Whether the system is panicked: a handler of a class with
    /// [`PanicPolicy::Stop`] panicked and [`clear_panic`](Self::clear_panic)
    /// was not called since. Ordinary messages are then kept, not handled.
    pub fn is_panicked(&self) -> bool {
        self.panicked
    }

    /// The first panic report since the last [`clear_panic`](Self::clear_panic).
    pub fn panic_report(&self) -> Option<&PanicReport> {
        self.reports.first()
    }

    /// The panic reports since the last [`clear_panic`](Self::clear_panic),
    /// in the order they happened (at most [`MAX_PANIC_REPORTS`](crate::MAX_PANIC_REPORTS); see
    /// [`panic_count`](Self::panic_count) for all).
    pub fn panic_reports(&self) -> &[PanicReport] {
        &self.reports
    }

    /// How many panics were caught since the last `clear_panic`.
    pub fn panic_count(&self) -> u64 {
        self.panics
    }

    /// Leaves the panicked state and returns the reports: the next message
    /// cycles handle every kept message first, in the order it would have
    /// been handled (the messages that panicked are not retried).
    pub fn clear_panic(&mut self) -> Vec<PanicReport> {
        self.set_panicked(false);
        self.panics = 0;
        std::mem::take(&mut self.reports)
    }
}
