use kay::prelude::*;

#[kay::actor]
#[derive(Compact, Clone)]
pub struct Counter {
    id: CounterID,
    count: u32,
}

pub trait Named {
    fn name(&self) -> &'static str;
}

#[kay::actor]
impl Named for u32 {
    fn name(&self) -> &'static str {
        "u32"
    }
}

#[kay::actor]
fn not_an_impl() {}

#[kay::actor_trait]
struct NotATrait;

pub struct Plain;

#[kay::implements]
impl Plain {}

#[derive(Compact, Clone)]
pub struct Other {
    id: OtherID,
}

#[kay::actor(pub)]
impl Other {}

fn main() {}
