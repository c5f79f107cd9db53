use kay::prelude::*;

#[kay::actor_trait]
pub trait Listener {
    const LIMIT: u32;
    type Item;
    fn hear(&mut self, count: u32);
    fn with_self(&mut self, other: Self, world: &mut World);
}

fn main() {}
