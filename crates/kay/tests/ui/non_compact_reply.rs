use kay::prelude::*;

#[derive(Compact, Clone)]
pub struct Counter {
    id: CounterID,
    name: CString,
}

#[kay::actor]
impl Counter {
    /// A request must answer with a `Compact` value.
    pub fn name(&self, _: &mut World) -> String {
        self.name.as_str().to_owned()
    }
}

fn main() {}
