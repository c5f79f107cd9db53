use kay::prelude::*;

#[derive(Compact, Clone)]
pub struct Counted {
    n: u32,
}

#[derive(Compact, Clone)]
pub struct Counter {
    id: CounterID,
    count: u32,
}

#[kay::actor]
impl Counter {
    pub fn spawn(id: CounterID, _: &mut World) -> Self {
        Counter { id, count: 0 }
    }

    #[message]
    pub fn two_arguments(&mut self, m: &Counted, extra: u32, _: &mut World) {
        self.count += m.n + extra;
    }

    #[message]
    pub fn by_value(&mut self, m: Counted, _: &mut World) {
        self.count += m.n;
    }

    #[message]
    pub fn a_request(&self, m: &Counted, _: &mut World) -> u32 {
        m.n
    }

    #[message]
    pub fn spawn_counted(id: CounterID, _: &Counted, _: &mut World) -> Self {
        Counter { id, count: 0 }
    }
}

#[kay::actor_trait]
pub trait Listener {
    #[message]
    fn heard(&mut self, m: &Counted, world: &mut World);
}

fn main() {}
