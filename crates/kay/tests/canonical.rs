//! The canonical example of kay's design (the README's, which it keeps
//! in step with), with
//! `use kay::prelude::*;` as its only import.
#![cfg_attr(rustfmt, rustfmt::skip)]
#![allow(missing_docs)]

use kay::prelude::*;

#[derive(Compact, Clone)]
pub struct Counter { id: CounterID, count: u32, history: CVec<u32>, listeners: CVec<CounterListenerID> }

#[kay::actor_trait]
pub trait CounterListener {
    fn on_count_change(&mut self, new_count: u32, history: &CVec<u32>, world: &mut World);
}

#[kay::actor]
impl Counter {
    pub fn spawn(id: CounterID, initial_count: u32, _: &mut World) -> Counter {
        Counter { id, count: initial_count, history: vec![initial_count].into(), listeners: CVec::new() }
    }
    pub fn increment_by(&mut self, amount: u32, world: &mut World) {
        self.count += amount;
        self.history.push(self.count);
        for l in self.listeners.iter() { l.on_count_change(self.count, self.history.clone(), world); }
    }
    pub fn add_listener(&mut self, listener: CounterListenerID, _: &mut World) { self.listeners.push(listener); }
    pub fn count(&self, _: &mut World) -> u32 { self.count }          // a request
}

#[derive(Compact, Clone)]
pub struct Logger { id: LoggerID, seen: u32 }

#[kay::actor]
impl Logger {
    pub fn spawn(id: LoggerID, counter: CounterID, world: &mut World) -> Logger {
        counter.add_listener(id.into(), world);
        Logger { id, seen: 0 }
    }
}

#[kay::implements]
impl CounterListener for Logger {
    fn on_count_change(&mut self, _n: u32, _h: &CVec<u32>, _: &mut World) { self.seen += 1; }
}

fn main() {
    let mut system = ActorSystem::new(Config::default());
    system.register::<Counter>();
    system.register::<Logger>();
    system.register_trait::<dyn CounterListener>();   // or the macro's generated setup fn
    let mut world = system.world();
    let counter = CounterID::spawn(13, &mut world);
    LoggerID::spawn(counter, &mut world);
    counter.increment_by(2, &mut world);
    system.process_all_messages();
    assert_eq!(system.block_on(counter.count(&mut world)).unwrap(), 15);
}

#[test]
fn the_canonical_example_runs() {
    main();
}
