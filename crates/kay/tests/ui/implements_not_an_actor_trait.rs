use kay::prelude::*;

/// Not an actor trait: no #[kay::actor_trait].
pub trait Listener {
    fn hear(&mut self, count: u32, world: &mut World);
}

#[derive(Compact, Clone)]
pub struct Counter {
    id: CounterID,
    count: u32,
}

#[kay::actor]
impl Counter {}

#[kay::implements]
impl Listener for Counter {
    fn hear(&mut self, count: u32, _: &mut World) {
        self.count = count;
    }
}

fn main() {}
