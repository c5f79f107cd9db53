use kay::prelude::*;

#[kay::actor_trait]
pub trait Listener {
    fn by_ref(&self, world: &mut World);
    fn by_value(self, world: &mut World);
    fn no_receiver(world: &mut World);
    fn boxed(self: Box<Self>, world: &mut World);
    fn fine(&mut self, world: &mut World);
}

fn main() {}
