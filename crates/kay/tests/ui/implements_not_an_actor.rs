use kay::prelude::*;

#[kay::actor_trait]
pub trait Listener {
    fn hear(&mut self, count: u32, world: &mut World);
}

/// Not an actor: no #[kay::actor] impl.
#[derive(Compact, Clone)]
pub struct Plain {
    count: u32,
}

#[kay::implements]
impl Listener for Plain {
    fn hear(&mut self, count: u32, _: &mut World) {
        self.count = count;
    }
}

fn main() {}
