use kay::prelude::*;

#[derive(Compact, Clone)]
pub struct Counter {
    id: u32,
    count: u32,
}

#[kay::actor]
impl Counter {
    pub fn add(&mut self, amount: u32, _: &mut World) {
        self.count += amount;
    }
}

fn main() {}
