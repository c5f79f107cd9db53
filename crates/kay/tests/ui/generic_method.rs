use kay::prelude::*;

#[derive(Compact, Clone)]
pub struct Counter {
    id: CounterID,
    count: u32,
}

#[kay::actor]
impl Counter {
    pub fn add<T: Into<u32>>(&mut self, amount: T, _: &mut World) {
        self.count += amount.into();
    }

    pub fn add_where(&mut self, amount: u32, _: &mut World)
    where
        u32: Copy,
    {
        self.count += amount;
    }

    pub fn add_impl(&mut self, amount: impl Into<u32>, _: &mut World) {
        self.count += amount.into();
    }
}

#[kay::actor_trait]
pub trait Listener {
    fn hear<T>(&mut self, value: T, world: &mut World);
}

fn main() {}
