use kay::prelude::*;

#[derive(Compact, Clone)]
pub struct Counter {
    id: CounterID,
    count: u32,
}

#[kay::actor]
impl Counter {
    pub fn spawn(_id: CounterID, count: u32, _: &mut World) -> u32 {
        count
    }

    pub fn spawn_nothing(_id: CounterID, _: &mut World) {}

    pub fn spawn_without_id(_: &mut World) -> Self {
        panic!("never called: this file must not compile")
    }
}

fn main() {}
