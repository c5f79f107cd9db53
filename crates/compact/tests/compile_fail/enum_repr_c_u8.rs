use compact::Compact;

#[derive(Compact)]
#[repr(C, u8)]
enum Message {
    Ping,
    Move { x: i32, y: i32 },
}

fn main() {}
