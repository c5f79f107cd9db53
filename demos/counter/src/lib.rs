//! The classic kay counter example: a `Counter` actor that tells its
//! listeners (through the `CounterListener` actor trait) whenever it changes,
//! and a `Logger` that listens.
//!
//! ```
//! use counter::{CounterID, LoggerID};
//!
//! let mut system = counter::system();
//! let mut world = system.world();
//! let counter = CounterID::spawn(13, &mut world);
//! let logger = LoggerID::spawn(counter, &mut world);
//! system.process_all_messages(); // the logger exists and listens
//! counter.increment_by(2, &mut world);
//! system.process_all_messages();
//! assert_eq!(system.block_on(counter.count(&mut world)).unwrap(), 15);
//! assert_eq!(system.block_on(logger.seen(&mut world)).unwrap(), 1);
//! ```

use kay::prelude::*;

/// Counts, remembers every value it had, and tells its listeners.
#[derive(Compact, Clone)]
pub struct Counter {
    id: CounterID,
    count: u32,
    history: CVec<u32>,
    listeners: CVec<CounterListenerID>,
}

/// Anything that wants to hear about a counter's changes.
#[kay::actor_trait]
pub trait CounterListener {
    /// The counter changed to `new_count`; `history` holds every value it had.
    fn on_count_change(&mut self, new_count: u32, history: &CVec<u32>, world: &mut World);
}

#[kay::actor]
impl Counter {
    /// A counter starting at `initial_count`.
    pub fn spawn(id: CounterID, initial_count: u32, _: &mut World) -> Counter {
        Counter {
            id,
            count: initial_count,
            history: vec![initial_count].into(),
            listeners: CVec::new(),
        }
    }

    /// Adds `amount` and tells every listener.
    pub fn increment_by(&mut self, amount: u32, world: &mut World) {
        self.count += amount;
        self.history.push(self.count);
        for listener in self.listeners.iter() {
            listener.on_count_change(self.count, self.history.clone(), world);
        }
    }

    /// From now on, tells `listener` about every change.
    pub fn add_listener(&mut self, listener: CounterListenerID, _: &mut World) {
        self.listeners.push(listener);
    }

    /// The current count (a request).
    pub fn count(&self, _: &mut World) -> u32 {
        self.count
    }
}

impl Counter {
    /// A checksum of this counter's state.
    pub fn checksum(&self) -> u64 {
        mix(self
            .history
            .iter()
            .map(|&v| u64::from(v))
            .chain([u64::from(self.count)]))
    }
}

impl Logger {
    /// A checksum of this logger's state.
    pub fn checksum(&self) -> u64 {
        mix(self
            .last_history
            .iter()
            .map(|&v| u64::from(v))
            .chain([u64::from(self.seen)]))
    }

    /// How many changes it saw, and the last history.
    pub fn state(&self) -> (u32, Vec<u32>) {
        (self.seen, self.last_history.to_vec())
    }
}

/// FNV-1a over numbers.
fn mix(values: impl Iterator<Item = u64>) -> u64 {
    values.fold(0xcbf2_9ce4_8422_2325, |hash, value| {
        (hash ^ value).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Listens to one counter and remembers what it saw.
#[derive(Compact, Clone)]
pub struct Logger {
    id: LoggerID,
    seen: u32,
    last_history: CVec<u32>,
}

#[kay::actor]
impl Logger {
    /// A logger listening to `counter`.
    pub fn spawn(id: LoggerID, counter: CounterID, world: &mut World) -> Logger {
        counter.add_listener(id.into(), world);
        Logger {
            id,
            seen: 0,
            last_history: CVec::new(),
        }
    }

    /// How many changes this logger saw (a request).
    pub fn seen(&self, _: &mut World) -> u32 {
        self.seen
    }

    /// The counter's history at the last change seen (a request).
    pub fn last_history(&self, _: &mut World) -> CVec<u32> {
        self.last_history.clone()
    }
}

#[kay::implements]
impl CounterListener for Logger {
    fn on_count_change(&mut self, _new_count: u32, history: &CVec<u32>, _: &mut World) {
        self.seen += 1;
        self.last_history = history.clone();
    }
}

/// A system with the counter example's classes and trait registered.
pub fn system() -> ActorSystem {
    system_with(Config::default())
}

/// [`system`] with a configuration of its own (e.g. a machine of a
/// topology).
pub fn system_with(config: Config) -> ActorSystem {
    let mut system = ActorSystem::new(config);
    register(&mut system);
    system
}

/// Registers the example's classes and trait.
pub fn register(system: &mut ActorSystem) {
    system.register::<Counter>();
    system.register::<Logger>();
    system.register_trait::<dyn CounterListener>();
}
