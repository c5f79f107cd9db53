use kay::prelude::*;

#[kay::actor_trait]
pub trait Listener {
    fn hear(&mut self, count: u32, world: &mut World);
}

#[kay::implements]
impl<T: Listener> Listener for Box<T> {
    fn hear(&mut self, count: u32, world: &mut World) {
        (**self).hear(count, world);
    }
}

#[kay::implements]
impl Listener for Box<u32> {
    fn hear(&mut self, count: u32, _: &mut World) {
        **self = count;
    }
}

fn main() {}
