use compact::Compact;

#[derive(Compact)]
enum Message {
    Ping,
    Move { x: i32, y: i32 },
}

fn main() {}
