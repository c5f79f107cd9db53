//! Snapshots and resume (`ActorSystem::with_storage`, `snapshot`, `load`):
//! a run that snapshots at turn 50, exits, and is loaded in a new process
//! that runs 50 more turns ends exactly where a run of 100 turns ends (1
//! and 2 threads); damaged, foreign or planted snapshots are refused with
//! an error naming the file, and nothing is loaded.

#![allow(missing_docs)]

use std::path::Path;
use std::process::Command;

use kay::{
    Actor, ActorSystem, CVec, ClassSetup, Compact, Config, Fate, PersistError, TypedID, World,
};

kay::typed_id!(pub CellID);
kay::typed_id!(pub BagID);

/// A static actor: mixes its value every turn, pokes a peer, and now and
/// then dies and has a successor spawned (so instance numbers are reused).
#[derive(Compact, Clone, Debug)]
pub struct Cell {
    id: CellID,
    value: u64,
    peer: CellID,
    flag: u8,
    born: u32,
}

#[derive(Compact, Clone)]
pub struct SpawnCell {
    seed: u64,
    peer: CellID,
    born: u32,
}

#[derive(Compact, Clone)]
pub struct Step(u32);

#[derive(Compact, Clone)]
pub struct Poke(u64);

impl Actor for Cell {
    type ID = CellID;
    fn id(&self) -> CellID {
        self.id
    }
    fn setup(class: &mut ClassSetup<Self>) {
        class
            .spawner(|id, m: &SpawnCell, _: &mut World| Cell {
                id,
                value: m.seed,
                peer: m.peer,
                flag: (m.seed % 7) as u8,
                born: m.born,
            })
            .handler(|c: &mut Cell, m: &Step, world: &mut World| {
                c.value = c
                    .value
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407 + u64::from(m.0));
                world.send(c.peer, Poke(c.value >> 7));
                if c.value.is_multiple_of(13) && m.0.is_multiple_of(3) {
                    let successor = world.spawn::<Cell, _>(SpawnCell {
                        seed: c.value,
                        peer: c.id,
                        born: m.0,
                    });
                    world.send(successor, Poke(u64::from(m.0)));
                    return Fate::Die;
                }
                if c.value.is_multiple_of(17) {
                    // A peer that may be dead by now: counted, not delivered.
                    c.peer = c.id;
                }
                Fate::Live
            })
            .handler(|c: &mut Cell, m: &Poke, _: &mut World| {
                c.value ^= m.0.rotate_left(11);
                c.flag = c.flag.wrapping_add(1);
            });
    }
}

/// A dynamic actor: its list grows by timers and is cut back (so it moves
/// between bins).
#[derive(Compact, Clone, Debug)]
pub struct Bag {
    id: BagID,
    items: CVec<u64>,
    grown: u32,
}

#[derive(Compact, Clone)]
pub struct SpawnBag(u32);

#[derive(Compact, Clone)]
pub struct Grow(u32);

impl Actor for Bag {
    type ID = BagID;
    fn id(&self) -> BagID {
        self.id
    }
    fn setup(class: &mut ClassSetup<Self>) {
        class
            .spawner(|id, m: &SpawnBag, world: &mut World| {
                world.send_every(3 + u64::from(m.0 % 4), id, Grow(m.0));
                Bag {
                    id,
                    items: CVec::new(),
                    grown: 0,
                }
            })
            .handler(|b: &mut Bag, m: &Grow, world: &mut World| {
                b.grown += 1;
                for k in 0..(m.0 % 40 + 10) {
                    b.items.push(u64::from(k * m.0) ^ u64::from(b.grown));
                }
                if b.items.len() > 300 {
                    let kept: Vec<u64> = b.items.iter().take(3).copied().collect();
                    b.items = kept.into();
                }
                if b.grown.is_multiple_of(5) {
                    world.send_after(2, b.id, Grow(m.0 + 1));
                }
            });
    }
}

const CELLS: u64 = 3_000;
const BAGS: u32 = 40;

fn config(threads: usize) -> Config {
    Config {
        threads,
        ..Config::default()
    }
}

fn register(system: &mut ActorSystem) {
    system.register::<Cell>();
    system.register::<Bag>();
}

/// Spawns the population (turn 1).
fn populate(system: &mut ActorSystem) {
    let mut world = system.world();
    let mut previous = None;
    for k in 0..CELLS {
        let peer = previous.unwrap_or(CellID::from_raw(kay::RawID::default()));
        previous = Some(world.spawn::<Cell, _>(SpawnCell {
            seed: k * 7919 + 1,
            peer,
            born: 0,
        }));
    }
    for k in 0..BAGS {
        world.spawn::<Bag, _>(SpawnBag(k));
    }
    system.turn();
}

/// Runs turns until the system's turn is `until`: each broadcasts a step.
fn run_to(system: &mut ActorSystem, until: u64) {
    let mut world = system.world();
    while system.current_turn() < until {
        let next = system.current_turn() as u32 + 1;
        let everyone = world.local_broadcast::<Cell>();
        world.send(everyone, Step(next));
        let turn = system.turn();
        assert!(!turn.messages_left);
    }
}

/// Everything observable about the state: every instance with its ID,
/// sorted, and the message counters.
fn digest(system: &ActorSystem) -> String {
    let mut cells = system.with_instances::<Cell, _>(|c| format!("{:?}", c));
    cells.sort();
    let mut bags = system.with_instances::<Bag, _>(|b| format!("{:?}", b));
    bags.sort();
    let stats = system.stats();
    let counters: Vec<String> = stats
        .classes
        .iter()
        .map(|c| format!("{} {:?} {}", c.name, c.handled, c.instances))
        .collect();
    format!(
        "turn {}\n{}\n{}\n{}\ntimers {}",
        system.current_turn(),
        cells.join("\n"),
        bags.join("\n"),
        counters.join("\n"),
        stats.pending_timers
    )
}

/// A stable hash of a digest (printed by child processes).
fn hash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The store files of the newest generation in `dir` for the class whose
/// type id is `type_id`, with their bytes.
fn store_files(dir: &Path, type_id: u16) -> Vec<(String, Vec<u8>)> {
    let newest = chunky::Generations::open(dir, 2)
        .unwrap()
        .newest()
        .unwrap()
        .expect("a generation");
    let prefix = format!("store-{type_id}-");
    let mut files: Vec<_> = newest
        .files
        .iter()
        .filter(|f| f.name.starts_with(&prefix))
        .map(|f| (f.name.clone(), newest.read(&f.name).unwrap().to_vec()))
        .collect();
    files.sort();
    files
}

fn cell_type(system: &mut ActorSystem) -> u16 {
    let mut world = system.world();
    world.local_broadcast::<Cell>().as_raw().type_id.get()
}

/// The child process's part: `KAY_PERSIST_PHASE` = `first` (populate, run
/// to 50, snapshot) or `second` (load, run to 100, snapshot, print the
/// digest's hash), in `KAY_PERSIST_DIR` on `KAY_PERSIST_THREADS` threads.
#[test]
fn child() {
    let Ok(phase) = std::env::var("KAY_PERSIST_PHASE") else {
        return;
    };
    let dir = std::env::var("KAY_PERSIST_DIR").unwrap();
    let threads: usize = std::env::var("KAY_PERSIST_THREADS")
        .unwrap()
        .parse()
        .unwrap();
    let mut system = ActorSystem::with_storage(&dir, config(threads)).unwrap();
    register(&mut system);
    match phase.as_str() {
        "first" => {
            assert!(system.load().unwrap().is_none());
            populate(&mut system);
            run_to(&mut system, 50);
            let report = system.snapshot().unwrap();
            assert_eq!(report.turn, 50);
            assert!(report.instances > CELLS / 2);
            println!("SNAPSHOT {}", report.instances);
        }
        "second" => {
            let report = system
                .load()
                .unwrap()
                .expect("the snapshot of the first phase");
            assert_eq!(report.turn, 50);
            assert_eq!(system.current_turn(), 50);
            if let Ok(dump) = std::env::var("KAY_PERSIST_DUMP") {
                std::fs::write(format!("{dump}.loaded50"), digest(&system)).unwrap();
            }
            let until: u64 = std::env::var("KAY_PERSIST_UNTIL").map_or(100, |u| u.parse().unwrap());
            run_to(&mut system, until);
            system.snapshot().unwrap();
            let text = digest(&system);
            if let Ok(dump) = std::env::var("KAY_PERSIST_DUMP") {
                std::fs::write(format!("{dump}.second"), &text).unwrap();
            }
            println!("DIGEST {:016x}", hash(&text));
        }
        other => panic!("unknown phase {other}"),
    }
}

fn run_child(phase: &str, dir: &Path, threads: usize) -> String {
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env("KAY_PERSIST_PHASE", phase)
        .env("KAY_PERSIST_DIR", dir)
        .env("KAY_PERSIST_THREADS", threads.to_string())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{phase} phase failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
fn resumed_equals_uninterrupted_on_one_and_two_threads() {
    // The uninterrupted run, with a snapshot at 100 to compare bytes.
    let whole_dir = tempfile::tempdir().unwrap();
    let mut whole = ActorSystem::with_storage(whole_dir.path(), config(1)).unwrap();
    register(&mut whole);
    let cell_type = cell_type(&mut whole);
    populate(&mut whole);
    run_to(&mut whole, 50);
    if let Ok(dump) = std::env::var("KAY_PERSIST_DUMP") {
        std::fs::write(format!("{dump}.whole50"), digest(&whole)).unwrap();
    }
    let until: u64 = std::env::var("KAY_PERSIST_UNTIL").map_or(100, |u| u.parse().unwrap());
    run_to(&mut whole, until);
    whole.snapshot().unwrap();
    let text = digest(&whole);
    if let Ok(dump) = std::env::var("KAY_PERSIST_DUMP") {
        std::fs::write(format!("{dump}.whole"), &text).unwrap();
    }
    let expected = format!("DIGEST {:016x}", hash(&text));
    let expected_cells = store_files(whole_dir.path(), cell_type);
    assert!(!expected_cells.is_empty());
    drop(whole);

    for (first, second) in [(1, 1), (2, 2), (1, 2)] {
        let dir = tempfile::tempdir().unwrap();
        let out = run_child("first", dir.path(), first);
        assert!(out.contains("SNAPSHOT"), "{out}");
        let out = run_child("second", dir.path(), second);
        assert!(
            out.contains(&expected),
            "threads {first} then {second}: resumed run differs from the uninterrupted one:\n{out}"
        );
        // The static class's slots are byte for byte the same (padding
        // included).
        assert_eq!(
            store_files(dir.path(), cell_type),
            expected_cells,
            "threads {first} then {second}: store bytes differ"
        );
    }
}

#[test]
fn loading_without_a_snapshot_or_storage_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let mut system = ActorSystem::with_storage(dir.path(), config(1)).unwrap();
    register(&mut system);
    assert!(system.load().unwrap().is_none());
    let mut plain = ActorSystem::new(config(1));
    register(&mut plain);
    assert!(matches!(plain.snapshot(), Err(PersistError::NoStorage)));
    assert!(matches!(plain.load(), Err(PersistError::NoStorage)));
    // A system that ran cannot load over its state.
    populate(&mut system);
    system.snapshot().unwrap();
    let err = system.load().unwrap_err().to_string();
    assert!(err.contains("already ran"), "{err}");
}
