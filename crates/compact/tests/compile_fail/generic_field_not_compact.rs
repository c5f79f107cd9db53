use compact::Compact;

#[derive(Compact)]
struct Wrapper<T> {
    items: Vec<T>,
}

fn main() {}
