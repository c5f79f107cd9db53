use kay::prelude::*;

#[derive(Compact, Clone)]
pub struct Cell<T: Compact + Clone> {
    id: CellID,
    value: T,
}

#[kay::actor]
impl<T: Compact + Clone> Cell<T> {
    pub fn set(&mut self, value: T, _: &mut World) {
        self.value = value;
    }
}

#[derive(Compact, Clone)]
pub struct Wrapper<T: Compact + Clone> {
    value: T,
}

#[kay::actor]
impl Wrapper<u32> {
    pub fn set(&mut self, value: u32, _: &mut World) {
        self.value = value;
    }
}

#[kay::actor_trait]
pub trait Holder<T> {
    fn hold(&mut self, value: u32, world: &mut World);
}

fn main() {}
