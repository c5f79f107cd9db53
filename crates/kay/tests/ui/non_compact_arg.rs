use kay::prelude::*;

#[derive(Compact, Clone)]
pub struct Counter {
    id: CounterID,
    names: CVec<CString>,
}

#[kay::actor]
impl Counter {
    pub fn add_name(&mut self, name: String, _: &mut World) {
        self.names.push(name.as_str().into());
    }

    pub fn add_names(&mut self, names: &Vec<String>, _: &mut World) {
        let _ = names;
    }
}

fn main() {}
