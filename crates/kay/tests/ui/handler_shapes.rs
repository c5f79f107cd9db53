use kay::prelude::*;

#[derive(Compact, Clone)]
pub struct Counter {
    id: CounterID,
    count: u32,
}

#[kay::actor]
impl Counter {
    pub fn consume(self, _: &mut World) {}

    pub fn boxed(self: Box<Self>, _: &mut World) {}

    pub fn mutable_arg(&mut self, count: &mut u32, _: &mut World) {
        *count = self.count;
    }

    pub fn borrowed(&mut self, name: &'static str, _: &mut World) {
        let _ = name;
    }

    pub fn nested_ref(&mut self, names: CVec<&str>, _: &mut World) {
        let _ = names;
    }

    pub fn local_broadcast(&mut self, _: &mut World) {}

    #[essential]
    pub fn spawn(id: CounterID, _: &mut World) -> Self {
        Counter { id, count: 0 }
    }

    #[essential]
    pub fn helper() {}
}

fn main() {}
