use compact::Compact;

#[derive(Compact)]
union Bits {
    int: u32,
    float: f32,
}

fn main() {}
