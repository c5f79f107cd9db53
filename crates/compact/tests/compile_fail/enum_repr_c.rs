use compact::Compact;

#[derive(Compact)]
#[repr(C)]
enum Message {
    Ping,
    Move { x: i32, y: i32 },
}

fn main() {}
