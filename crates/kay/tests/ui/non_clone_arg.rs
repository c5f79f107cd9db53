use kay::prelude::*;

/// Compact, but not Clone.
#[derive(Compact)]
pub struct Token {
    value: u32,
}

#[derive(Compact, Clone)]
pub struct Counter {
    id: CounterID,
    count: u32,
}

#[kay::actor]
impl Counter {
    pub fn use_token(&mut self, token: Token, _: &mut World) {
        self.count = token.value;
    }
}

fn main() {}
