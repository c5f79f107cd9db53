use kay::prelude::*;

#[derive(Compact, Clone)]
pub struct Counter {
    id: CounterID,
    count: u32,
}

#[kay::actor]
impl Counter {
    pub async fn add(&mut self, amount: u32, _: &mut World) {
        self.count += amount;
    }

    pub const fn get(&self, _: &mut World) -> u32 {
        self.count
    }

    pub unsafe fn poke(&mut self, _: &mut World) {}
}

#[kay::actor_trait]
pub trait Listener {
    async fn hear(&mut self, count: u32, world: &mut World);
}

fn main() {}
