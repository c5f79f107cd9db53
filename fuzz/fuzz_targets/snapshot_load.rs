//! Coverage-guided fuzzing of kay's snapshot loading
//! (`ActorSystem::load`): a real snapshot (static and dynamic actors,
//! timers, dead and reused instance numbers, a message and a spawn
//! waiting, requests pending with continuations and their `ReplyTo`s
//! held in actors' state) with one of its files replaced or altered by the input,
//! planted with right checksums (so that the fuzzer gets past them),
//! loads or gives an error, never a panic; a system that loaded runs
//! turns and snapshots again.
//!
//! Input: byte 0 picks the file (the metadata, the system file or a store
//! file), byte 1 the mode (bit 0 clear: replace the file with the rest;
//! set: XOR the rest into it at the offset of bytes 2..4; bit 1: load
//! with `Config::map_snapshots_on_load`, the stores mapped copy-on-write
//! instead of read).
//!
//! `cd fuzz && TMPDIR=/dev/shm CARGO_BUILD_JOBS=1 cargo +nightly fuzz run snapshot_load -- -max_total_time=120`
#![no_main]

use std::sync::OnceLock;

#[path = "common/planted.rs"]
mod planted;
use kay::{Actor, ActorSystem, CString, CVec, ClassSetup, Compact, Config, Fate, World};
use libfuzzer_sys::fuzz_target;

kay::typed_id!(pub CellID);
kay::typed_id!(pub BagID);

#[derive(Compact, Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum Mood {
    Calm,
    Busy(u32),
}

#[derive(Compact, Clone)]
pub struct Cell {
    id: CellID,
    value: u64,
    alive: bool,
    mood: Mood,
}

#[derive(Compact, Clone)]
pub struct Bag {
    id: BagID,
    items: CVec<u32>,
    name: CString,
    /// Requests to itself, answered at the next `Grow`.
    pending: CVec<kay::ReplyTo<u32>>,
}

#[derive(Compact, Clone)]
pub struct Ask {
    reply: kay::ReplyTo<u32>,
}

/// Takes the answer to an `Ask` (a continuation).
#[derive(Compact, Clone)]
pub struct Got(u32);

impl kay::Continue<u32> for Got {
    fn answered(&mut self, answer: Result<u32, kay::ReplyError>) {
        self.0 = answer.unwrap_or(u32::MAX);
    }
}

#[derive(Compact, Clone)]
pub struct Seed(u64);
#[derive(Compact, Clone)]
pub struct Step(u32);
#[derive(Compact, Clone)]
pub struct Grow(u32);

impl Actor for Cell {
    type ID = CellID;
    fn id(&self) -> CellID {
        self.id
    }
    fn setup(class: &mut ClassSetup<Self>) {
        class
            .spawner(|id, s: &Seed, _: &mut World| Cell {
                id,
                value: s.0,
                alive: true,
                mood: Mood::Calm,
            })
            .handler(|c: &mut Cell, s: &Step, world: &mut World| {
                c.value = c.value.wrapping_mul(31).wrapping_add(u64::from(s.0));
                c.mood = Mood::Busy(s.0);
                if c.value % 5 == 0 {
                    world.spawn::<Cell, _>(Seed(c.value));
                    return Fate::Die;
                }
                Fate::Live
            });
    }
}

impl Actor for Bag {
    type ID = BagID;
    fn id(&self) -> BagID {
        self.id
    }
    fn setup(class: &mut ClassSetup<Self>) {
        class
            .spawner(|id, s: &Seed, world: &mut World| {
                world.send_every(2, id, Grow(s.0 as u32));
                Bag {
                    id,
                    items: CVec::new(),
                    name: format!("bag {}", s.0).into(),
                    pending: CVec::new(),
                }
            })
            .handler(|b: &mut Bag, g: &Grow, world: &mut World| {
                b.items.push(g.0);
                if b.items.len() > 20 {
                    b.items = CVec::new();
                }
                for reply in b.pending.iter() {
                    world.reply(*reply, g.0);
                }
                b.pending = CVec::new();
                let (reply_to, reply) = world.request_to::<u32>(b.id);
                world.send(b.id, Ask { reply: reply_to });
                reply.then_send(b.id, Got(0), world);
            })
            .handler(|b: &mut Bag, a: &Ask, _: &mut World| b.pending.push(a.reply))
            .handler(|b: &mut Bag, g: &Got, _: &mut World| b.items.push(g.0));
    }
}

fn config(map: bool) -> Config {
    Config {
        threads: 1,
        map_snapshots_on_load: map,
        ..Config::default()
    }
}

fn system(dir: &std::path::Path, map: bool) -> ActorSystem {
    let mut system = ActorSystem::with_storage(dir, config(map)).unwrap();
    system.register::<Cell>();
    system.register::<Bag>();
    system.register_continuation::<u32, Got>();
    system
}

fn run(system: &mut ActorSystem, turns: u32) {
    let mut world = system.world();
    for t in 0..turns {
        let cells = world.local_broadcast::<Cell>();
        world.send(cells, Step(t));
        system.turn();
    }
}

/// The files and metadata of a real snapshot.
fn original() -> &'static (Vec<(String, Vec<u8>)>, Vec<u8>) {
    static ORIGINAL: OnceLock<(Vec<(String, Vec<u8>)>, Vec<u8>)> = OnceLock::new();
    ORIGINAL.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("kay-fuzz-snap-orig-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        {
            let mut system = system(&dir, false);
            let mut world = system.world();
            for k in 0..40 {
                world.spawn::<Cell, _>(Seed(k * 7 + 1));
            }
            for k in 0..6 {
                world.spawn::<Bag, _>(Seed(k));
            }
            run(&mut system, 9);
            // A message waiting in every shard's inbox, and a spawn: the
            // snapshot carries them.
            let mut world = system.world();
            let cells = world.local_broadcast::<Cell>();
            world.send(cells, Step(99));
            world.spawn::<Cell, _>(Seed(5));
            system.snapshot().unwrap();
        }
        let snapshot = planted::newest(&dir);
        let _ = std::fs::remove_dir_all(&dir);
        snapshot
    })
}

fuzz_target!(|data: &[u8]| {
    let [which, mode, rest @ ..] = data else {
        return;
    };
    let (files, meta) = original();
    let mut files = files.clone();
    let mut meta = meta.clone();
    let target = match usize::from(*which) % (files.len() + 1) {
        0 => &mut meta,
        k => &mut files[k - 1].1,
    };
    if mode % 2 == 0 {
        *target = rest.to_vec();
    } else if let [a, b, patch @ ..] = rest {
        planted::xor_at(target, usize::from(u16::from_le_bytes([*a, *b])), patch);
    }
    let dir = planted::plant("kay-fuzz-snap", &files, &meta);
    let mut loaded = system(&dir, mode & 2 != 0);
    if let Ok(Some(_)) = loaded.load() {
        // What loaded is sound: it runs, is read and saved again.
        run(&mut loaded, 3);
        let _ = loaded.with_instances::<Bag, _>(|b| (b.items.len(), b.name.len()));
        loaded.snapshot().expect("a loaded system snapshots again");
    } else {
        assert_eq!(
            loaded.instance_count::<Cell>() + loaded.instance_count::<Bag>(),
            0
        );
    }
    drop(loaded);
    let _ = std::fs::remove_dir_all(&dir);
});
