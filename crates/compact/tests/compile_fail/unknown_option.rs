use compact::Compact;

#[derive(Compact)]
#[compact(krate = "compact")]
struct Options {
    a: u8,
}

#[derive(Compact)]
struct OnField {
    #[compact(crate = "compact")]
    a: u8,
}

fn main() {}
