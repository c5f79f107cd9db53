use compact::Compact;

#[derive(Compact)]
struct Agent {
    id: u32,
    name: String,
    trips: Vec<u32>,
}

#[derive(Compact)]
#[repr(u8)]
enum Event {
    Arrived(u32),
    Said { text: &'static str },
}

fn main() {}
