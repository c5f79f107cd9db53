use kay::prelude::*;

#[derive(Compact, Clone)]
pub struct Counter {
    id: CounterID,
    count: u32,
}

#[kay::actor]
impl Counter {
    pub fn spawn(id: CounterID, count: u32) -> Self {
        Counter { id, count }
    }

    pub fn add(&mut self, amount: u32) {
        self.count += amount;
    }

    pub fn reset(&mut self) {
        self.count = 0;
    }

    pub fn world_first(&mut self, _: &mut World, amount: u32) {
        self.count = amount;
    }
}

fn main() {}
