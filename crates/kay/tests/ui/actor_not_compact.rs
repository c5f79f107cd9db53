use kay::prelude::*;

#[derive(Clone)]
pub struct Counter {
    id: CounterID,
    names: Vec<String>,
}

#[kay::actor]
impl Counter {
    pub fn clear(&mut self, _: &mut World) {
        self.names.clear();
    }
}

fn main() {}
