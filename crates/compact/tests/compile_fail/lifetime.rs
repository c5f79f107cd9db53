use compact::Compact;

#[derive(Compact)]
struct Borrowed<'a> {
    name: &'a str,
}

fn main() {}
