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

/// A snapshot of the populated system after 10 turns, in a new directory.
fn saved() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut system = ActorSystem::with_storage(dir.path(), config(1)).unwrap();
    register(&mut system);
    populate(&mut system);
    run_to(&mut system, 10);
    system.snapshot().unwrap();
    dir
}

/// A fresh system over `dir` that tries to load; returns the error's text
/// (panics if it loads) after checking that nothing was loaded.
fn refused(dir: &Path) -> String {
    let mut system = ActorSystem::with_storage(dir, config(1)).unwrap();
    register(&mut system);
    let error = match system.load() {
        Ok(loaded) => panic!("a damaged snapshot loaded: {loaded:?}"),
        Err(e) => e.to_string(),
    };
    let stats = system.stats();
    assert!(
        stats.classes.iter().all(|c| c.instances == 0) && system.current_turn() == 0,
        "a refused load left something behind: {error}"
    );
    error
}

/// Where the slot count of the first run of class `class`'s shard 0 lies
/// in a `system` file (of a system without networking): behind the turn,
/// cycle and outside timer count, the timers, the reply table and the
/// classes listed before it (see `kay::persist`).
fn first_run_slots(system: &[u8], class: u16) -> usize {
    let u64_at = |at: usize| u64::from_le_bytes(system[at..at + 8].try_into().unwrap()) as usize;
    let mut at = 24;
    let timers = u64_at(at);
    at += 8;
    for _ in 0..timers {
        // id, due, every, recipient, message id, origin, message.
        at += 8 * 4 + 2 + 8;
        at += 8 + u64_at(at);
    }
    at += 8; // late answers
    assert_eq!(u64_at(at), 0, "no reply slots in this test's snapshots");
    at += 8;
    assert_eq!(u64_at(at), 0, "no free reply slots");
    at += 8;
    let classes = u64_at(at);
    at += 8;
    assert!(classes > 0);
    let listed = u32::from_le_bytes(system[at..at + 4].try_into().unwrap());
    assert_eq!(listed, u32::from(class), "the class is listed first");
    at += 4 + 8; // the class, its shard count
    assert!(u64_at(at) > 0, "shard 0 has bins");
    at += 8 + 1; // the bin count, the first bin
    assert!(u64_at(at) > 0, "the bin has runs");
    at += 8 + 8; // the run count, the first run's origin
    at
}

/// The newest generation's directory in `dir`.
fn newest_dir(dir: &Path) -> std::path::PathBuf {
    chunky::Generations::open(dir, 2)
        .unwrap()
        .newest()
        .unwrap()
        .unwrap()
        .dir
}

/// Writes the next generation with the newest one's files and metadata as
/// `change` leaves them: a planted snapshot whose checksums are right.
fn plant(dir: &Path, change: impl FnOnce(&mut Vec<(String, Vec<u8>)>, &mut Vec<u8>)) {
    let generations = chunky::Generations::open(dir, 2).unwrap();
    let newest = generations.newest().unwrap().unwrap();
    let mut files: Vec<(String, Vec<u8>)> = newest
        .files
        .iter()
        .map(|f| (f.name.clone(), newest.read(&f.name).unwrap().to_vec()))
        .collect();
    let mut meta = newest.meta.clone();
    change(&mut files, &mut meta);
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    generations.write(newest.number + 1, &meta, &refs).unwrap();
}

fn file_mut<'a>(files: &'a mut [(String, Vec<u8>)], name: &str) -> &'a mut Vec<u8> {
    &mut files
        .iter_mut()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no file {name}"))
        .1
}

#[test]
fn damaged_snapshot_files_are_refused_naming_the_file() {
    let cell = {
        let mut system = ActorSystem::new(config(1));
        register(&mut system);
        cell_type(&mut system)
    };
    let store = format!("store-{cell}-0");
    type Damage = fn(&Path, &str);
    let cases: [(&str, Damage, &str); 5] = [
        (
            "truncated store",
            |g, s| {
                let path = g.join(s);
                let len = std::fs::metadata(&path).unwrap().len();
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .unwrap()
                    .set_len(len - 5)
                    .unwrap();
            },
            "",
        ),
        (
            "bit flip in a store",
            |g, s| {
                let path = g.join(s);
                let mut bytes = std::fs::read(&path).unwrap();
                bytes[100] ^= 0x10;
                std::fs::write(&path, bytes).unwrap();
            },
            "checksum",
        ),
        (
            "bit flip in the system file",
            |g, _| {
                let path = g.join("system");
                let mut bytes = std::fs::read(&path).unwrap();
                bytes[3] ^= 1;
                std::fs::write(&path, bytes).unwrap();
            },
            "checksum",
        ),
        (
            "missing file",
            |g, s| std::fs::remove_file(g.join(s)).unwrap(),
            "missing",
        ),
        (
            "bit flip in the manifest",
            |g, _| {
                let path = g.join("MANIFEST");
                let mut bytes = std::fs::read(&path).unwrap();
                bytes[20] ^= 4;
                std::fs::write(&path, bytes).unwrap();
            },
            "MANIFEST",
        ),
    ];
    for (what, damage, says) in cases {
        let dir = saved();
        let generation = newest_dir(dir.path());
        damage(&generation, &store);
        let error = refused(dir.path());
        let names_file =
            error.contains(&store) || error.contains("system") || error.contains("MANIFEST");
        assert!(names_file && error.contains(says), "{what}: {error}");
        eprintln!("{what}: {error}");
    }
}

#[test]
fn planted_snapshots_with_right_checksums_are_refused_and_nothing_is_loaded() {
    let (cell, bag) = {
        let mut system = ActorSystem::new(config(1));
        register(&mut system);
        let mut world = system.world();
        let bag = world.local_broadcast::<Bag>().as_raw().type_id.get();
        (cell_type(&mut system), bag)
    };
    type Plant = Box<dyn FnOnce(&mut Vec<(String, Vec<u8>)>, &mut Vec<u8>)>;
    let cases: Vec<(&str, Plant, &str)> = vec![
        (
            "another shard's instances",
            Box::new(move |files, _| {
                let other = file_mut(files, &format!("store-{cell}-1")).clone();
                let mine = file_mut(files, &format!("store-{cell}-0"));
                let n = mine.len().min(other.len());
                mine[..n].copy_from_slice(&other[..n]);
            }),
            "does not belong in this store",
        ),
        (
            "an instance listed twice",
            Box::new(move |files, _| {
                let mine = file_mut(files, &format!("store-{cell}-0"));
                // The second slot a copy of the first.
                let size = kay::compact::static_size_bytes::<Cell>().next_multiple_of(8);
                let first = mine[..size].to_vec();
                mine[size..2 * size].copy_from_slice(&first);
            }),
            "",
        ),
        (
            "garbage in a dynamic actor",
            Box::new(move |files, _| {
                let bags = file_mut(files, &format!("store-{bag}-0"));
                bags.iter_mut().for_each(|b| *b = 0xA5);
            }),
            "",
        ),
        (
            // Four billion slots of a store that holds a few thousand: the
            // stores must not grow towards the claim before it is checked.
            "a system file claiming far more slots than the store holds",
            Box::new(move |files, _| {
                let size = kay::compact::static_size_bytes::<Cell>().next_multiple_of(8);
                let most = (file_mut(files, &format!("store-{cell}-0")).len() / size) as u64;
                let system = file_mut(files, "system");
                // The slot count of the first run of the class's shard 0,
                // found by reading the file's structure (a search for a
                // page-aligned origin could stop at a timer's message
                // whose address happens to be page-aligned).
                let at = first_run_slots(system, cell);
                let word = u64::from_le_bytes(system[at..at + 8].try_into().unwrap());
                assert!((1..=most).contains(&word), "a run's slot count, not {word}");
                system[at..at + 8].copy_from_slice(&u64::from(u32::MAX - 2).to_le_bytes());
            }),
            "the slots the system file lists need",
        ),
        (
            // An instance number far beyond every block handed out: refused
            // before the index makes room for it.
            "an instance numbered in a block nobody was given",
            Box::new(move |files, _| {
                let mine = file_mut(files, &format!("store-{cell}-0"));
                // The IDs in the first slot (a `CellID`: instance, type,
                // machine 0, version), renumbered in shard 0 of 4.
                let size = kay::compact::static_size_bytes::<Cell>();
                for k in (0..size - 7).step_by(8) {
                    if mine[k + 4..k + 6] == cell.to_le_bytes() && mine[k + 6] == 0 {
                        mine[k..k + 4].copy_from_slice(&4_000_000_000u32.to_le_bytes());
                    }
                }
            }),
            "no lane was given",
        ),
        (
            "a truncated system file",
            Box::new(|files, _| {
                file_mut(files, "system").pop();
            }),
            "ends early",
        ),
        (
            "another format",
            Box::new(|_, meta| meta[8] = 99),
            "format 99",
        ),
        (
            "not a kay snapshot",
            Box::new(|_, meta| meta[0] = b'X'),
            "not a kay snapshot",
        ),
    ];
    for (what, change, says) in cases {
        let dir = saved();
        plant(dir.path(), change);
        let error = refused(dir.path());
        assert!(error.contains(says), "{what}: {error}");
        assert!(
            error.contains("gen-"),
            "{what}: the error names no file: {error}"
        );
        eprintln!("{what}: {error}");
        // Without the planted generation, the one before loads whole.
        std::fs::remove_dir_all(newest_dir(dir.path())).unwrap();
        let mut system = ActorSystem::with_storage(dir.path(), config(1)).unwrap();
        register(&mut system);
        let loaded = system.load().unwrap().unwrap();
        assert_eq!(loaded.turn, 10);
    }
}

#[test]
fn a_snapshot_of_another_registry_is_refused_naming_the_first_difference() {
    let dir = saved();
    let mut system = ActorSystem::with_storage(dir.path(), config(1)).unwrap();
    // Registered in the other order: type ids would mean other classes.
    system.register::<Bag>();
    system.register::<Cell>();
    let error = system.load().unwrap_err().to_string();
    assert!(
        error.contains("registries differ at entry")
            && error.contains("Bag")
            && error.contains("gen-"),
        "{error}"
    );
    eprintln!("{error}");
}

#[cfg(unix)]
#[test]
fn snapshots_never_follow_links_out_of_their_directory() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("precious"), b"keep me").unwrap();
    // A link planted where the live stores go is removed, not followed.
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), dir.path().join("live")).unwrap();
    let mut system = ActorSystem::with_storage(dir.path(), config(1)).unwrap();
    register(&mut system);
    populate(&mut system);
    system.snapshot().unwrap();
    drop(system);
    assert_eq!(
        std::fs::read(outside.path().join("precious")).unwrap(),
        b"keep me"
    );
    // A snapshot file replaced by a link (to a copy with the right bytes)
    // is refused.
    let generation = newest_dir(dir.path());
    let copy = outside.path().join("system-copy");
    std::fs::copy(generation.join("system"), &copy).unwrap();
    std::fs::remove_file(generation.join("system")).unwrap();
    std::os::unix::fs::symlink(&copy, generation.join("system")).unwrap();
    let error = refused(dir.path());
    assert!(
        error.contains("system") && error.contains("link"),
        "{error}"
    );
}

/// The child of the kill test: loads the newest snapshot in `dir` (or
/// starts the population), then runs turn after turn, snapshotting after
/// each, until it is killed.
#[test]
fn snapshotter() {
    let Ok(dir) = std::env::var("KAY_PERSIST_KILL") else {
        return;
    };
    // The parent's system was just dropped; a process forked meanwhile
    // by another test of this binary may hold its lock until it execs.
    let mut tries = 0;
    let mut system = loop {
        match ActorSystem::with_storage(&dir, config(1)) {
            Ok(system) => break system,
            Err(e) if tries < 400 && e.to_string().contains("another system") => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err(e) => panic!("{e}"),
        }
    };
    register(&mut system);
    if system.load().unwrap().is_none() {
        populate(&mut system);
        system.snapshot().unwrap();
    }
    loop {
        let next = system.current_turn() + 1;
        run_to(&mut system, next);
        system.snapshot().unwrap();
    }
}

/// A process killed with SIGKILL at random points while it snapshots (200
/// times; each next process goes on from what the last one left) always
/// leaves a generation that loads whole, and its state is exactly the
/// uninterrupted run's at that turn.
#[test]
fn a_process_killed_while_snapshotting_always_leaves_a_loadable_generation() {
    // The uninterrupted run's digest after each turn.
    let mut reference = ActorSystem::new(config(1));
    register(&mut reference);
    populate(&mut reference);
    let mut digests = vec![String::new(), hash(&digest(&reference)).to_string()];
    let dir = tempfile::tempdir().unwrap();
    let kills = std::env::var("KAY_PERSIST_KILLS").map_or(200, |k| k.parse().unwrap());
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut turns = Vec::new();
    for _ in 0..kills {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "snapshotter", "--nocapture", "--test-threads=1"])
            .env("KAY_PERSIST_KILL", dir.path())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(std::time::Duration::from_micros(5_000 + rng % 25_000));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let mut system = ActorSystem::with_storage(dir.path(), config(1)).unwrap();
        register(&mut system);
        let Some(loaded) = system.load().unwrap_or_else(|e| {
            panic!("a killed snapshot left a generation that fails to load: {e}")
        }) else {
            continue; // killed before its first snapshot
        };
        while digests.len() as u64 <= loaded.turn {
            let next = reference.current_turn() + 1;
            run_to(&mut reference, next);
            digests.push(hash(&digest(&reference)).to_string());
        }
        assert_eq!(
            hash(&digest(&system)).to_string(),
            digests[loaded.turn as usize],
            "the state loaded for turn {} is not the uninterrupted run's",
            loaded.turn
        );
        turns.push(loaded.turn);
    }
    assert!(turns.windows(2).all(|w| w[0] <= w[1]), "{turns:?}");
    assert!(
        turns.len() > kills / 2,
        "most processes lived to snapshot: {turns:?}"
    );
    eprintln!(
        "{kills} kills; loaded turns {} to {}",
        turns.first().unwrap(),
        turns.last().unwrap()
    );
}

/// The child of the full-disk test: snapshots at turn 5, then with files
/// limited to 20 KB (as a full disk would stop them) tries again.
#[test]
fn limited_snapshotter() {
    let Ok(dir) = std::env::var("KAY_PERSIST_FULL") else {
        return;
    };
    let mut system = ActorSystem::with_storage(&dir, config(1)).unwrap();
    register(&mut system);
    populate(&mut system);
    run_to(&mut system, 5);
    system.snapshot().unwrap();
    // SAFETY: plain system calls with valid arguments; a write past the
    // limit then fails with EFBIG instead of killing the process (SIGXFSZ
    // ignored). The live stores' chunk files exist already.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        let limit = libc::rlimit {
            rlim_cur: 20_000,
            rlim_max: 20_000,
        };
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &limit), 0);
    }
    match system.snapshot() {
        Ok(_) => println!("WROTE"),
        Err(e) => println!("REFUSED {e}"),
    }
}

#[test]
fn a_full_disk_fails_the_snapshot_and_keeps_the_previous_one() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "limited_snapshotter",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("KAY_PERSIST_FULL", dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("REFUSED") && stdout.contains("File too large"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut system = ActorSystem::with_storage(dir.path(), config(1)).unwrap();
    register(&mut system);
    assert_eq!(system.load().unwrap().unwrap().turn, 5);
    // No half generation was left behind.
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// A snapshot written in the background holds the state of the turn it
/// was started after, however far the system runs meanwhile.
#[test]
fn a_background_snapshot_holds_the_turn_it_started_at() {
    let dir = tempfile::tempdir().unwrap();
    let mut system = ActorSystem::with_storage(dir.path(), config(2)).unwrap();
    register(&mut system);
    populate(&mut system);
    run_to(&mut system, 10);
    let expected = digest(&system);
    let started = system.snapshot_in_background().unwrap();
    assert_eq!(started.turn, 10);
    run_to(&mut system, 30);
    let written = system.wait_for_snapshot().expect("one under way").unwrap();
    assert_eq!(written.generation, started.generation);
    assert!(written.written >= written.pause);
    assert!(system.wait_for_snapshot().is_none());
    // Another one, left to the system's drop to finish.
    system.snapshot_in_background().unwrap();
    let at_30 = digest(&system);
    drop(system);

    let mut loaded = ActorSystem::with_storage(dir.path(), config(1)).unwrap();
    register(&mut loaded);
    assert_eq!(loaded.load().unwrap().unwrap().turn, 30);
    assert_eq!(digest(&loaded), at_30);
    // One system per directory at a time.
    let err = ActorSystem::with_storage(dir.path(), config(1))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("another system"), "{err}");
    drop(loaded);
    // The older generation (turn 10) is the state of turn 10.
    let newest = newest_dir(dir.path());
    std::fs::remove_dir_all(newest).unwrap();
    let mut older = ActorSystem::with_storage(dir.path(), config(1)).unwrap();
    register(&mut older);
    assert_eq!(older.load().unwrap().unwrap().turn, 10);
    assert_eq!(digest(&older), expected);
}

/// Live stores on the heap (`Config::live_stores_in_files = false`) give
/// the same snapshots: saved with files, loaded on the heap and back.
#[test]
fn live_stores_on_the_heap_snapshot_and_load_the_same() {
    let heap = |threads| Config {
        live_stores_in_files: false,
        ..config(threads)
    };
    let dir = tempfile::tempdir().unwrap();
    let mut system = ActorSystem::with_storage(dir.path(), heap(2)).unwrap();
    register(&mut system);
    populate(&mut system);
    run_to(&mut system, 20);
    let expected = digest(&system);
    system.snapshot().unwrap();
    drop(system);
    assert!(
        std::fs::read_dir(dir.path().join("live")).map_or(true, |mut d| d.next().is_none()),
        "no live files on the heap"
    );
    let mut files = ActorSystem::with_storage(dir.path(), config(1)).unwrap();
    register(&mut files);
    files.load().unwrap().unwrap();
    assert_eq!(digest(&files), expected);
    run_to(&mut files, 30);
    files.snapshot().unwrap();
    let at_30 = digest(&files);
    drop(files);
    let mut heap_again = ActorSystem::with_storage(dir.path(), heap(1)).unwrap();
    register(&mut heap_again);
    heap_again.load().unwrap().unwrap();
    assert_eq!(digest(&heap_again), at_30);
}

/// Stores of several chunks per shard, loaded both ways: mapped from the
/// snapshot copy-on-write (`Config::map_snapshots_on_load`, the default:
/// full chunks and the partial last one) or read into memory; either way
/// the run goes on as the uninterrupted one, writes never reach the
/// snapshot's files, and files that someone else could write are read,
/// not mapped. Mapped stores stay mapped until the first turn, which
/// copies them into the process's own memory (Linux: the snapshot's files
/// are in `/proc/self/maps` after the load, not after the turn).
#[test]
fn large_stores_are_read_or_mapped_copy_on_write_and_go_on_the_same() {
    const MANY: u64 = 150_000;
    let dir = tempfile::tempdir().unwrap();
    let mut whole = ActorSystem::with_storage(dir.path(), config(2)).unwrap();
    register(&mut whole);
    {
        let mut world = whole.world();
        for k in 0..MANY {
            world.spawn::<Cell, _>(SpawnCell {
                seed: k * 7919 + 1,
                peer: CellID::from_raw(kay::RawID::default()),
                born: 0,
            });
        }
        whole.turn();
    }
    run_to(&mut whole, 3);
    let saved = whole.snapshot().unwrap();
    let generation = saved.dir.clone();
    let cell = cell_type(&mut whole);
    let files_before = store_files(dir.path(), cell);
    let at_save = hash(&digest(&whole));
    run_to(&mut whole, 6);
    let expected = hash(&digest(&whole));
    drop(whole);

    let load = |threads, map| {
        let config = Config {
            map_snapshots_on_load: map,
            ..config(threads)
        };
        let mut system = ActorSystem::with_storage(dir.path(), config).unwrap();
        register(&mut system);
        let report = system.load().unwrap().expect("a snapshot");
        assert_eq!(report.generation, saved.generation);
        assert_eq!(hash(&digest(&system)), at_save);
        (system, report)
    };
    for (threads, map) in [(1, false), (2, false), (1, true), (2, true)] {
        let (mut system, report) = load(threads, map);
        assert!(
            report.state_bytes > 4 << 20,
            "several chunks per shard: {report:?}"
        );
        let mapped = if map { report.state_bytes } else { 0 };
        assert_eq!(report.mapped_bytes, mapped, "map {map}");
        #[cfg(target_os = "linux")]
        {
            assert_eq!(maps_files_in(&generation), map, "mapped after the load");
            run_to(&mut system, 4);
            assert!(!maps_files_in(&generation), "copied by the first turn");
        }
        run_to(&mut system, 6);
        assert_eq!(
            hash(&digest(&system)),
            expected,
            "threads {threads}, map {map}"
        );
        drop(system);
        // The turns wrote to the loaded stores, not to the snapshot.
        assert_eq!(store_files(dir.path(), cell), files_before);
    }

    // A store file others may write is read, not mapped: the same state.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for entry in std::fs::read_dir(&generation).unwrap() {
            let path = entry.unwrap().path();
            if path
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("store-")
            {
                let mut permissions = std::fs::metadata(&path).unwrap().permissions();
                permissions.set_mode(permissions.mode() | 0o020);
                std::fs::set_permissions(&path, permissions).unwrap();
            }
        }
        let (mut system, report) = load(2, true);
        assert_eq!(report.mapped_bytes, 0, "group-writable files are read");
        run_to(&mut system, 6);
        assert_eq!(hash(&digest(&system)), expected);
    }
}

/// Whether this process maps a file of directory `dir`.
#[cfg(target_os = "linux")]
fn maps_files_in(dir: &std::path::Path) -> bool {
    let dir = dir.canonicalize().unwrap();
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    maps.lines()
        .any(|line| line.contains(&*dir.to_string_lossy()))
}

kay::typed_id!(pub LiarID);

static LIARS_LIE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
static FIRST_LIAR: std::sync::Mutex<Option<kay::RawID>> = std::sync::Mutex::new(None);

/// An actor whose `id` answers its own ID, or, once `LIARS_LIE` is set,
/// the first liar's: safe code the system must survive.
#[derive(Compact, Clone, Debug)]
pub struct Liar {
    id: LiarID,
    pokes: u32,
}

#[derive(Compact, Clone)]
pub struct SpawnLiar;

#[derive(Compact, Clone)]
pub struct Prod;

impl Actor for Liar {
    type ID = LiarID;
    fn id(&self) -> LiarID {
        if LIARS_LIE.load(std::sync::atomic::Ordering::Relaxed) {
            LiarID::from_raw(FIRST_LIAR.lock().unwrap().expect("spawned"))
        } else {
            self.id
        }
    }
    fn setup(class: &mut ClassSetup<Self>) {
        class
            .spawner(|id, _: &SpawnLiar, _: &mut World| Liar { id, pokes: 0 })
            .handler(|liar: &mut Liar, _: &Prod, _: &mut World| liar.pokes += 1);
    }
}

/// An `Actor::id` that answers other IDs after a load than the load
/// checked: the loaded system still runs (the index is built from the
/// instances' IDs when the store is first used); the instances it cannot
/// index are not reached by ID, and nothing panics.
#[test]
fn an_actor_whose_id_changes_after_the_load_does_not_stop_the_system() {
    use std::sync::atomic::Ordering::Relaxed;
    let dir = tempfile::tempdir().unwrap();
    {
        let mut system = ActorSystem::with_storage(dir.path(), config(2)).unwrap();
        system.register::<Liar>();
        let mut world = system.world();
        let first = world.spawn::<Liar, _>(SpawnLiar);
        *FIRST_LIAR.lock().unwrap() = Some(first.as_raw());
        for _ in 0..99 {
            world.spawn::<Liar, _>(SpawnLiar);
        }
        system.turn();
        system.snapshot().unwrap();
    }
    let mut system = ActorSystem::with_storage(dir.path(), config(2)).unwrap();
    system.register::<Liar>();
    system.load().unwrap().unwrap();
    LIARS_LIE.store(true, Relaxed);
    let mut world = system.world();
    let everyone = world.local_broadcast::<Liar>();
    world.send(everyone, Prod);
    system.turn();
    LIARS_LIE.store(false, Relaxed);
    assert_eq!(system.instance_count::<Liar>(), 100);
    assert!(
        system
            .with_instances::<Liar, _>(|l| l.pokes)
            .iter()
            .all(|&p| p == 1)
    );
}

kay::typed_id!(pub TallyID);

/// A class without dynamic parts (so its stores are mapped) whose drops
/// are counted.
#[derive(Compact, Clone, Debug)]
pub struct Tally {
    id: TallyID,
    value: u64,
}

static TALLIES_DROPPED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl Drop for Tally {
    fn drop(&mut self) {
        TALLIES_DROPPED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

#[derive(Compact, Clone)]
pub struct SpawnTally(u64);

impl Actor for Tally {
    type ID = TallyID;
    fn id(&self) -> TallyID {
        self.id
    }
    fn setup(class: &mut ClassSetup<Self>) {
        class.spawner(|id, s: &SpawnTally, _: &mut World| Tally { id, value: s.0 });
    }
}

/// A planted store whose damage lies pieces into a mapped chunk of a
/// class with drop glue: the instances validated before it are dropped
/// once, the rest never, and nothing is loaded. (A class with dynamic
/// parts, whose stores are read, is refused the same way.)
#[test]
fn a_refusal_deep_in_a_mapped_chunk_drops_only_what_was_validated() {
    use std::sync::atomic::Ordering::Relaxed;
    const TALLIES: u64 = 20_000;
    let one_shard = Config {
        shards: 1,
        ..config(1)
    };
    let dir = tempfile::tempdir().unwrap();
    let (tally, bag) = {
        let mut system = ActorSystem::with_storage(dir.path(), one_shard.clone()).unwrap();
        register(&mut system);
        system.register::<Tally>();
        let mut world = system.world();
        for k in 0..TALLIES {
            world.spawn::<Tally, _>(SpawnTally(k));
        }
        for k in 0..2000 {
            world.spawn::<Bag, _>(SpawnBag(k));
        }
        for _ in 0..6 {
            system.turn();
        }
        system.snapshot().unwrap();
        (
            world.local_broadcast::<Tally>().as_raw().type_id.get(),
            world.local_broadcast::<Bag>().as_raw().type_id.get(),
        )
    };
    // Past the first pieces (32 KiB each) of the first chunk: instance
    // `damaged` (slots of 16 bytes, in spawn order) is given the ID of
    // another class.
    let damaged = TALLIES as usize * 3 / 4;
    let slot = 16;
    let load = |dir: &Path| {
        let mut system = ActorSystem::with_storage(dir, one_shard.clone()).unwrap();
        register(&mut system);
        system.register::<Tally>();
        let before = TALLIES_DROPPED.load(Relaxed);
        let error = system.load().unwrap_err().to_string();
        assert!(system.stats().classes.iter().all(|c| c.instances == 0));
        drop(system);
        (error, TALLIES_DROPPED.load(Relaxed) - before)
    };
    {
        // Whole, the Tallies load mapped, the Bags (dynamic parts) read.
        let mut system = ActorSystem::with_storage(dir.path(), one_shard.clone()).unwrap();
        register(&mut system);
        system.register::<Tally>();
        let report = system.load().unwrap().unwrap();
        assert_eq!(report.mapped_bytes, TALLIES * slot as u64, "{report:?}");
        assert!(report.state_bytes > report.mapped_bytes);
    }
    let at = damaged * slot..damaged * slot + 8;
    let mut original = [0u8; 8];
    plant(dir.path(), |files, _| {
        let tallies = file_mut(files, &format!("store-{tally}-0"));
        assert!(tallies.len() >= TALLIES as usize * slot);
        // An ID of another class.
        original.copy_from_slice(&tallies[at.clone()]);
        tallies[at.clone()].copy_from_slice(&[0xA5; 8]);
    });
    let (error, dropped) = load(dir.path());
    assert!(error.contains("does not belong"), "{error}");
    // Validated (as values of the type) a piece of 32 KiB at a time, then
    // indexed: the pieces up to the one the refused instance is in.
    let per_piece = (32 << 10) / slot;
    assert_eq!(
        dropped,
        (damaged / per_piece + 1) * per_piece,
        "the validated ones, once each"
    );
    eprintln!("{error}");

    // The class with dynamic parts: read, refused the same way.
    plant(dir.path(), |files, _| {
        file_mut(files, &format!("store-{tally}-0"))[at].copy_from_slice(&original);
        let bags = file_mut(files, &format!("store-{bag}-0"));
        let at = bags.len() * 3 / 4;
        bags[at..at + 64].iter_mut().for_each(|b| *b = 0xA5);
    });
    let (error, dropped) = load(dir.path());
    assert!(error.contains("fails validation"), "{error}");
    assert_eq!(dropped, TALLIES as usize, "every Tally was validated");
}

kay::typed_id!(pub RelayID);

/// Passes a value along a chain, hop by hop: with a cap on cycles per
/// turn, turns end with messages still waiting.
#[derive(Compact, Clone, Debug)]
pub struct Relay {
    id: RelayID,
    value: u64,
    next: RelayID,
    passed: u32,
}

#[derive(Compact, Clone)]
pub struct SpawnRelay {
    seed: u64,
    next: RelayID,
}

#[derive(Compact, Clone)]
#[repr(C)]
pub struct Pass {
    value: u64,
    hops: u32,
    note: CVec<u32>,
}

#[derive(Compact, Clone)]
pub struct Stir(u64);

impl Actor for Relay {
    type ID = RelayID;
    fn id(&self) -> RelayID {
        self.id
    }
    fn setup(class: &mut ClassSetup<Self>) {
        class
            .spawner(|id, m: &SpawnRelay, _: &mut World| Relay {
                id,
                value: m.seed,
                next: m.next,
                passed: 0,
            })
            .handler(|r: &mut Relay, m: &Pass, world: &mut World| {
                r.value = r.value.rotate_left(5) ^ m.value ^ u64::from(m.note.len() as u32);
                r.passed += 1;
                if m.hops == 4 && r.passed.is_multiple_of(5) {
                    // Spawns that may wait when the turn is cut short.
                    world.spawn::<Relay, _>(SpawnRelay {
                        seed: r.value,
                        next: r.id,
                    });
                }
                if m.hops > 0 {
                    let mut note = m.note.clone();
                    note.push(m.hops);
                    world.send(
                        r.next,
                        Pass {
                            value: r.value,
                            hops: m.hops - 1,
                            note,
                        },
                    );
                }
            })
            .handler(|r: &mut Relay, m: &Stir, _: &mut World| {
                r.value = r.value.wrapping_mul(31).wrapping_add(m.0);
            });
    }
}

fn relay_digest(system: &ActorSystem) -> String {
    let mut relays = system.with_instances::<Relay, _>(|r| format!("{r:?}"));
    relays.sort();
    let stats = system.stats();
    let counters: Vec<String> = (stats.classes.iter())
        .map(|c| format!("{} {:?} {}", c.name, c.handled, c.instances))
        .collect();
    format!(
        "turn {}\n{}\n{}",
        system.current_turn(),
        relays.join("\n"),
        counters.join("\n")
    )
}

/// A snapshot taken while messages wait in inboxes (a turn cut short by
/// `max_cycles_per_call`, and messages sent from outside since the last
/// turn, a broadcast and spawns among them) carries them: the loaded
/// system handles them in the next turn exactly as the uninterrupted one
/// does.
#[test]
fn messages_waiting_in_inboxes_are_snapshotted_and_handled_the_same() {
    for threads in [1, 2] {
        let config = || Config {
            max_cycles_per_call: 3,
            ..config(threads)
        };
        let start = |dir: &Path| {
            let mut system = ActorSystem::with_storage(dir, config()).unwrap();
            system.register::<Relay>();
            system
        };
        let send_some = |system: &mut ActorSystem, turn: u64, relays: &[RelayID]| {
            let mut world = system.world();
            for (k, relay) in relays
                .iter()
                .enumerate()
                .skip(turn as usize % 7)
                .step_by(37)
            {
                world.send(
                    *relay,
                    Pass {
                        value: turn * 1000 + k as u64,
                        hops: 8,
                        note: CVec::new(),
                    },
                );
            }
        };
        let stir = |system: &mut ActorSystem, turn: u64| {
            let mut world = system.world();
            let everyone = world.local_broadcast::<Relay>();
            world.send(everyone, Stir(turn));
        };
        // The run up to the snapshot point, the same in both.
        let prepare = |system: &mut ActorSystem| {
            let mut world = system.world();
            let mut relays = Vec::new();
            let mut previous = RelayID::from_raw(kay::RawID::default());
            for k in 0..600u64 {
                previous = world.spawn::<Relay, _>(SpawnRelay {
                    seed: k * 977 + 3,
                    next: previous,
                });
                relays.push(previous);
            }
            system.turn();
            for turn in 1..20 {
                send_some(system, turn, &relays);
                let report = system.turn();
                assert!(report.messages_left, "the turns are cut short");
            }
            // Sent from outside after the last turn: they wait too.
            send_some(system, 20, &relays);
            stir(system, 20);
            let mut world = system.world();
            for k in 0..3 {
                world.spawn::<Relay, _>(SpawnRelay {
                    seed: k,
                    next: relays[k as usize],
                });
            }
            relays
        };
        let go_on = |system: &mut ActorSystem, relays: &[RelayID]| {
            for turn in 21..30 {
                system.turn();
                send_some(system, turn, relays);
            }
            for _ in 0..20 {
                system.turn();
            }
            relay_digest(system)
        };

        let whole_dir = tempfile::tempdir().unwrap();
        let mut whole = start(whole_dir.path());
        let relays = prepare(&mut whole);
        let expected = go_on(&mut whole, &relays);
        drop(whole);

        let dir = tempfile::tempdir().unwrap();
        let mut first = start(dir.path());
        let relays_again = prepare(&mut first);
        assert_eq!(relays_again, relays);
        let at_snapshot = relay_digest(&first);
        first.snapshot().expect("a snapshot with messages waiting");
        drop(first);
        let mut second = start(dir.path());
        second.load().unwrap().expect("the snapshot");
        assert_eq!(relay_digest(&second), at_snapshot);
        assert_eq!(go_on(&mut second, &relays), expected, "threads {threads}");
    }
}

/// Planted waiting messages (right checksums) are refused, naming the
/// system file, and nothing is loaded: one for another shard's instance,
/// a spawn of a live number, one of no message type, one in a lane that does not exist,
/// and one whose bytes fail validation as its type.
#[test]
fn planted_waiting_messages_are_refused_and_nothing_is_loaded() {
    const MARK: u64 = 0x5EED_F00D_CAFE_0001;
    let saved = || {
        let dir = tempfile::tempdir().unwrap();
        let mut system = ActorSystem::with_storage(dir.path(), config(1)).unwrap();
        system.register::<Relay>();
        let mut world = system.world();
        let mut previous = RelayID::from_raw(kay::RawID::default());
        for k in 0..50 {
            previous = world.spawn::<Relay, _>(SpawnRelay {
                seed: k,
                next: previous,
            });
        }
        system.turn();
        let note: Vec<u32> = vec![1, 2, 3];
        world.send(
            previous,
            Pass {
                value: MARK,
                hops: 3,
                note: note.into(),
            },
        );
        system
            .snapshot()
            .expect("a snapshot with a message waiting");
        dir
    };
    // The waiting message's fields, found by its value: lane (4 bytes),
    // message id (2), recipient (8), origin (8), length (8), then the
    // message (its value first).
    type Change = fn(&mut [u8], usize);
    let cases: [(&str, Change, &str); 5] = [
        (
            "another shard's instance",
            |s, at| s[at - 24] ^= 1,
            "waits in",
        ),
        (
            "a spawn of a live number",
            |s, at| s[at - 25] |= 0x80,
            "of a live number",
        ),
        (
            "no message type",
            |s, at| s[at - 26..at - 24].copy_from_slice(&[0xF0, 0x7F]),
            "no type",
        ),
        (
            "a lane that does not exist",
            |s, at| s[at - 30..at - 26].copy_from_slice(&[0xFF, 0, 0, 0]),
            "lane 255",
        ),
        (
            "bytes that fail validation",
            |s, at| s[at + 16..at + 40].fill(0xA5),
            "fails validation",
        ),
    ];
    for (what, change, says) in cases {
        let dir = saved();
        plant(dir.path(), |files, _| {
            let system = file_mut(files, "system");
            let at = (0..system.len() - 8)
                .find(|&at| system[at..at + 8] == MARK.to_le_bytes())
                .expect("the waiting message");
            change(system, at);
        });
        let mut system = ActorSystem::with_storage(dir.path(), config(1)).unwrap();
        system.register::<Relay>();
        let error = system.load().unwrap_err().to_string();
        assert!(
            error.contains(says) && error.contains("system"),
            "{what}: {error}"
        );
        assert_eq!(system.instance_count::<Relay>(), 0, "{what}");
        assert_eq!(
            system.turn().handled,
            0,
            "{what}: nothing waits after a refusal"
        );
        eprintln!("{what}: {error}");
    }
}

/// A planted system file listing a bin of slots larger than any chunk
/// (with no runs, so no store bytes are needed for it) is refused, not
/// a panic.
#[test]
fn a_planted_bin_of_huge_slots_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut system = ActorSystem::with_storage(dir.path(), config(1)).unwrap();
        system.register::<Relay>();
        system.turn();
        system.snapshot().unwrap();
    }
    plant(dir.path(), |files, _| {
        let system = file_mut(files, "system");
        // turn, cycle, outside timers, timer count, the (empty) reply
        // table's late count, slot count and free count, class count (8
        // bytes each), the class (4), its shard count (8): shard 0's bin
        // count.
        let at = 8 * 8 + 4 + 8;
        assert_eq!(system[at - 8..at], 4u64.to_le_bytes(), "four shards");
        assert_eq!(system[at..at + 8], 0u64.to_le_bytes(), "no bins");
        system[at..at + 8].copy_from_slice(&1u64.to_le_bytes());
        let mut bin = vec![30u8];
        bin.extend_from_slice(&0u64.to_le_bytes());
        system.splice(at + 8..at + 8, bin);
    });
    let mut system = ActorSystem::with_storage(dir.path(), config(1)).unwrap();
    system.register::<Relay>();
    let error = system.load().unwrap_err().to_string();
    assert!(error.contains("bin 30"), "{error}");
}

/// Spawns waiting in a planted snapshot (right checksums) must spawn a
/// fresh instance where nothing is: a spawn of a number not handed out
/// yet, or of the same number twice, is refused and nothing is loaded.
#[test]
fn planted_waiting_spawns_are_refused_and_nothing_is_loaded() {
    const MARK: u64 = 0x5EED_0000_0000_0000;
    let saved = || {
        let dir = tempfile::tempdir().unwrap();
        let mut system = ActorSystem::with_storage(dir.path(), config(1)).unwrap();
        system.register::<Relay>();
        let mut world = system.world();
        for k in 0..20 {
            world.spawn::<Relay, _>(SpawnRelay {
                seed: k,
                next: RelayID::from_raw(kay::RawID::default()),
            });
        }
        system.turn();
        // Five spawns waiting (over four shards: the first and the fifth
        // in the same one).
        for k in 0..5 {
            world.spawn::<Relay, _>(SpawnRelay {
                seed: MARK + k,
                next: RelayID::from_raw(kay::RawID::default()),
            });
        }
        system.snapshot().expect("a snapshot with spawns waiting");
        dir
    };
    // A spawn's record: ... recipient (8), origin (8), length (8), then
    // the message (`SpawnRelay`: its seed first).
    let find = |system: &[u8], k: u64| {
        (0..system.len() - 8)
            .find(|&at| system[at..at + 8] == (MARK + k).to_le_bytes())
            .expect("the spawn")
    };
    type Change = Box<dyn Fn(&mut Vec<u8>, &dyn Fn(&[u8], u64) -> usize)>;
    let cases: Vec<(&str, Change, &str)> = vec![
        (
            "a number not handed out yet",
            Box::new(|s, find| {
                let at = find(s, 0);
                let instance = u32::from_le_bytes(s[at - 24..at - 20].try_into().unwrap());
                s[at - 24..at - 20].copy_from_slice(&(instance + 4 * 500).to_le_bytes());
            }),
            "not handed out",
        ),
        (
            "the same number twice",
            Box::new(|s, find| {
                let first = find(s, 0);
                let recipient = s[first - 24..first - 16].to_vec();
                let fifth = find(s, 4);
                s[fifth - 24..fifth - 16].copy_from_slice(&recipient);
            }),
            "spawned twice",
        ),
    ];
    for (what, change, says) in cases {
        let dir = saved();
        // Unchanged, it loads.
        {
            let mut system = ActorSystem::with_storage(dir.path(), config(1)).unwrap();
            system.register::<Relay>();
            system.load().unwrap().unwrap();
            system.turn();
            assert_eq!(system.instance_count::<Relay>(), 25, "the spawns waited");
        }
        plant(dir.path(), |files, _| {
            change(file_mut(files, "system"), &find)
        });
        let mut system = ActorSystem::with_storage(dir.path(), config(1)).unwrap();
        system.register::<Relay>();
        let error = system.load().unwrap_err().to_string();
        assert!(
            error.contains(says) && error.contains("system"),
            "{what}: {error}"
        );
        assert_eq!(system.instance_count::<Relay>(), 0, "{what}");
        eprintln!("{what}: {error}");
    }
}

kay::typed_id!(pub KeeperID);
kay::typed_id!(pub AskerID);

/// Answers requests a turn late: it keeps their `ReplyTo`s in its state
/// and answers them when settled; one in five it never answers (the
/// asker's timeout ends those).
#[derive(Compact, Clone, Debug)]
pub struct Keeper {
    id: KeeperID,
    value: u64,
    pending: CVec<kay::ReplyTo<u64>>,
}

#[derive(Compact, Clone)]
pub struct Ask {
    reply: kay::ReplyTo<u64>,
}

impl kay::Request for Ask {
    type Answer = u64;
    fn reply_to(&self) -> kay::ReplyTo<u64> {
        self.reply
    }
}

#[derive(Compact, Clone)]
pub struct Settle(u64);

impl Actor for Keeper {
    type ID = KeeperID;
    fn id(&self) -> KeeperID {
        self.id
    }
    fn setup(class: &mut ClassSetup<Self>) {
        class
            .spawner(|id, value: &u64, _: &mut World| Keeper {
                id,
                value: *value,
                pending: CVec::new(),
            })
            .request_handler(|k: &mut Keeper, m: &Ask, _: &mut World| {
                k.value = k.value.wrapping_mul(31).wrapping_add(7);
                if !k.value.is_multiple_of(5) {
                    k.pending.push(m.reply);
                }
            })
            .handler(|k: &mut Keeper, m: &Settle, world: &mut World| {
                for (n, reply) in k.pending.iter().enumerate() {
                    world.reply(*reply, k.value % 1000 + m.0 * 10 + n as u64);
                }
                k.pending = CVec::new();
            });
    }
}

/// Asks a keeper every turn from its handler (`then_send`), with a
/// timeout of two turns, and folds what comes back into its state.
#[derive(Compact, Clone, Debug)]
pub struct Asker {
    id: AskerID,
    keeper: KeeperID,
    sum: u64,
    answers: u32,
    timeouts: u32,
    last_timeout: u64,
}

#[derive(Compact, Clone)]
pub struct Go;

#[derive(Compact, Clone)]
pub struct Got {
    value: u64,
    timed_out: u64,
}

impl kay::Continue<u64> for Got {
    fn answered(&mut self, answer: Result<u64, kay::ReplyError>) {
        match answer {
            Ok(value) => self.value = value,
            Err(kay::ReplyError::TimedOut { turn }) => self.timed_out = turn,
            Err(e) => panic!("unexpected {e}"),
        }
    }
}

impl Actor for Asker {
    type ID = AskerID;
    fn id(&self) -> AskerID {
        self.id
    }
    fn setup(class: &mut ClassSetup<Self>) {
        class
            .spawner(|id, keeper: &KeeperID, _: &mut World| Asker {
                id,
                keeper: *keeper,
                sum: 0,
                answers: 0,
                timeouts: 0,
                last_timeout: 0,
            })
            .handler(|a: &mut Asker, _: &Go, world: &mut World| {
                let (reply_to, reply) = world.request_to::<u64>(a.keeper);
                world.send(a.keeper, Ask { reply: reply_to });
                let reply = reply.timeout(2, world);
                reply.then_send(
                    a.id,
                    Got {
                        value: 0,
                        timed_out: 0,
                    },
                    world,
                );
            })
            .handler(|a: &mut Asker, m: &Got, _: &mut World| {
                if m.timed_out > 0 {
                    a.timeouts += 1;
                    a.last_timeout = m.timed_out;
                } else {
                    a.answers += 1;
                    a.sum = a.sum.wrapping_mul(3).wrapping_add(m.value);
                }
            });
    }
}

fn asking_system(dir: &Path, threads: usize, register_continuation: bool) -> ActorSystem {
    let mut system = ActorSystem::with_storage(dir, config(threads)).unwrap();
    system.register::<Keeper>();
    system.register::<Asker>();
    if register_continuation {
        system.register_continuation::<u64, Got>();
    }
    system
}

/// One turn of the asking simulation: every asker asks, every keeper
/// settles what it was asked before.
fn asking_turn(system: &mut ActorSystem) {
    let turn = system.current_turn();
    let mut world = system.world();
    let askers = world.local_broadcast::<Asker>();
    let keepers = world.local_broadcast::<Keeper>();
    world.send(askers, Go);
    world.send(keepers, Settle(turn));
    system.turn();
}

fn asking_digest(system: &ActorSystem) -> String {
    let mut keepers = system.with_instances::<Keeper, _>(|k| format!("{k:?}"));
    let mut askers = system.with_instances::<Asker, _>(|a| format!("{a:?}"));
    keepers.sort();
    askers.sort();
    format!(
        "turn {}\n{}\n{}\nlate {}",
        system.current_turn(),
        keepers.join("\n"),
        askers.join("\n"),
        system.stats().late_replies
    )
}

/// Requests asked from handlers and answered turns later (continuations
/// of `then_send`, with timeouts; the keepers hold the `ReplyTo`s in
/// their state) are carried by a snapshot: the loaded system answers them,
/// times them out and hands out request tokens exactly as the
/// uninterrupted one (1 and 2 threads). Without `register_continuation`
/// the snapshot is refused, naming the call, and nothing is written.
#[test]
fn requests_pending_across_turns_are_snapshotted_and_answered_the_same() {
    let populate = |system: &mut ActorSystem| {
        let mut world = system.world();
        for k in 0..40u64 {
            let keeper = world.spawn::<Keeper, _>(k * 7919 + 1);
            for _ in 0..3 {
                world.spawn::<Asker, _>(keeper);
            }
        }
        system.turn();
    };
    for threads in [1, 2] {
        let whole_dir = tempfile::tempdir().unwrap();
        let mut whole = asking_system(whole_dir.path(), threads, true);
        populate(&mut whole);
        for _ in 0..60 {
            asking_turn(&mut whole);
        }
        let expected = asking_digest(&whole);
        let (answers, timeouts) = whole
            .with_instances::<Asker, _>(|a| (a.answers, a.timeouts))
            .into_iter()
            .fold((0, 0), |(x, y), (a, t)| (x + a, y + t));
        assert!(
            answers > 4000 && timeouts > 500,
            "the run answers requests and times some out: {answers} answers, {timeouts} timeouts"
        );
        drop(whole);

        let dir = tempfile::tempdir().unwrap();
        let mut first = asking_system(dir.path(), threads, true);
        populate(&mut first);
        for _ in 0..30 {
            asking_turn(&mut first);
        }
        let at_snapshot = asking_digest(&first);
        first
            .snapshot()
            .expect("a snapshot with continuations pending");
        drop(first);
        let mut second = asking_system(dir.path(), threads, true);
        let loaded = second.load().unwrap().expect("the snapshot");
        assert!(loaded.continuations > 50, "{loaded:?}");
        assert_eq!(asking_digest(&second), at_snapshot);
        for _ in 30..60 {
            asking_turn(&mut second);
        }
        assert_eq!(asking_digest(&second), expected, "threads {threads}");
    }

    // Not registered: refused, naming the call; no generation written.
    let dir = tempfile::tempdir().unwrap();
    let mut system = asking_system(dir.path(), 1, false);
    populate(&mut system);
    asking_turn(&mut system);
    let error = system.snapshot().unwrap_err().to_string();
    assert!(
        error.contains("register_continuation::<u64, persist::Got>()"),
        "{error}"
    );
    assert!(
        chunky::Generations::open(dir.path(), 2)
            .unwrap()
            .newest()
            .unwrap()
            .is_none()
    );
    // And a snapshot of one that registered it cannot be loaded by a
    // program that did not.
    let dir = tempfile::tempdir().unwrap();
    let mut system = asking_system(dir.path(), 1, true);
    populate(&mut system);
    asking_turn(&mut system);
    system.snapshot().unwrap();
    drop(system);
    let mut other = asking_system(dir.path(), 1, false);
    let error = other.load().unwrap_err().to_string();
    assert!(
        error.contains("system")
            && error.contains("persist::Got")
            && error.contains("not registered"),
        "{error}"
    );
    assert_eq!(other.current_turn(), 0);
}

/// Where the reply table's slots lie in a snapshot's `system` file that
/// holds no timers (it follows the turn, cycle, outside timer count and
/// the timer count): each slot's offset and state, and the offset of the
/// free list behind them.
fn reply_slots(system: &[u8]) -> (Vec<(usize, u8)>, usize) {
    let u64_at = |at: usize| u64::from_le_bytes(system[at..at + 8].try_into().unwrap()) as usize;
    assert_eq!(u64_at(24), 0, "no timers");
    let count = u64_at(40);
    let mut at = 48;
    let mut slots = Vec::new();
    for _ in 0..count {
        let state = system[at + 4];
        slots.push((at, state));
        at += 5;
        if state == 2 {
            at += 8 + 1; // deadline, machine
            at += 8 + u64_at(at); // message type
            at += 8 + u64_at(at); // answer type
            at += 8 + 8; // recipient, origin
            at += 8 + u64_at(at); // message
        }
    }
    (slots, at)
}

/// Planted reply tables (right checksums) are refused, naming the system
/// file, and nothing is loaded: a generation out of range, an unknown
/// state, a continuation whose message fails validation as its type, a
/// free list naming a slot that is not free, one missing a free slot.
#[test]
fn planted_reply_tables_are_refused_and_nothing_is_loaded() {
    let saved = || {
        let dir = tempfile::tempdir().unwrap();
        let mut system = asking_system(dir.path(), 1, true);
        let mut world = system.world();
        for k in 0..6u64 {
            let keeper = world.spawn::<Keeper, _>(k * 7919 + 1);
            world.spawn::<Asker, _>(keeper);
        }
        for _ in 0..4 {
            asking_turn(&mut system);
        }
        system.snapshot().unwrap();
        dir
    };
    let refused = |dir: &Path| {
        let mut system = asking_system(dir, 1, true);
        let error = system.load().unwrap_err().to_string();
        assert!(error.contains("system"), "{error}");
        assert_eq!(system.current_turn(), 0, "{error}");
        assert!(
            system.stats().classes.iter().all(|c| c.instances == 0),
            "{error}"
        );
        error
    };
    type Change = fn(&mut Vec<u8>, &[(usize, u8)], usize);
    let cases: [(&str, Change); 5] = [
        ("generation", |system, slots, _| {
            let at = slots[0].0;
            system[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        }),
        ("unknown state 9", |system, slots, _| {
            system[slots[0].0 + 4] = 9;
        }),
        ("fails validation", |system, slots, _| {
            // The first continuation's message, cut to 8 bytes.
            let (at, _) = *slots
                .iter()
                .find(|(_, state)| *state == 2)
                .expect("a continuation");
            let u64_at = |system: &Vec<u8>, at: usize| {
                u64::from_le_bytes(system[at..at + 8].try_into().unwrap()) as usize
            };
            let mut p = at + 5 + 9;
            p += 8 + u64_at(system, p);
            p += 8 + u64_at(system, p);
            p += 16;
            let len = u64_at(system, p);
            assert!(len > 8);
            system[p..p + 8].copy_from_slice(&8u64.to_le_bytes());
            system.drain(p + 8 + 8..p + 8 + len);
        }),
        ("listed as free", |system, slots, free| {
            // A continuation's slot named free instead of a free one.
            let busy = slots.iter().position(|(_, state)| *state == 2).unwrap() as u32;
            let n = u64::from_le_bytes(system[free..free + 8].try_into().unwrap());
            assert!(n > 0, "some slots are free");
            system[free + 8..free + 12].copy_from_slice(&busy.to_le_bytes());
        }),
        ("reply slots are free", |system, _, free| {
            // The last free slot dropped from the list.
            let n = u64::from_le_bytes(system[free..free + 8].try_into().unwrap());
            system[free..free + 8].copy_from_slice(&(n - 1).to_le_bytes());
            let end = free + 8 + 4 * n as usize;
            system.drain(end - 4..end);
        }),
    ];
    for (expected, change) in cases {
        let dir = saved();
        plant(dir.path(), |files, _| {
            let system = file_mut(files, "system");
            let (slots, free) = reply_slots(system);
            assert!(
                slots.iter().any(|(_, state)| *state == 2),
                "continuations were saved"
            );
            change(system, &slots, free);
        });
        let error = refused(dir.path());
        assert!(error.contains(expected), "{expected}: {error}");
    }
}

/// A request an outside `Reply` waits for does not stop a snapshot; the
/// future stays with its process: there it resolves, and in the loaded
/// system the request is abandoned (its answer counted as late).
#[test]
fn an_outside_future_stays_behind_and_its_request_is_abandoned_in_the_loaded_system() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = asking_system(dir.path(), 1, true);
    let mut world = first.world();
    let keeper = world.spawn::<Keeper, _>(1u64);
    first.turn();
    let (reply_to, reply) = world.request_to::<u64>(keeper);
    world.send(keeper, Ask { reply: reply_to });
    first.turn(); // the keeper keeps the ReplyTo
    first
        .snapshot()
        .expect("an outside future does not stop a snapshot");
    // Here, the future resolves when the keeper settles.
    world.send(keeper, Settle(7));
    first.block_on(reply).expect("an answer");
    assert_eq!(first.stats().late_replies, 0);
    drop(world);
    drop(first);

    let mut second = asking_system(dir.path(), 1, true);
    second.load().unwrap().expect("the snapshot");
    let mut world = second.world();
    world.send(keeper, Settle(7));
    second.turn();
    assert_eq!(
        second.stats().late_replies,
        1,
        "the abandoned request's answer"
    );
}

/// Runs `f` with `tracing` output captured; returns what it logged.
fn logged(f: impl FnOnce()) -> String {
    #[derive(Clone, Default)]
    struct Capture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Capture {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    let bytes = capture.0.lock().unwrap().clone();
    String::from_utf8(bytes).unwrap()
}

/// A system that takes snapshots warns, once per kind, when a handler
/// makes a continuation of a kind not registered (a snapshot taken while
/// one waits would fail), rather than only when such a snapshot is tried;
/// a registered kind, or a system without storage, is not warned about.
#[test]
fn an_unregistered_continuation_is_warned_about_when_it_is_made() {
    let run = |storage: bool, register: bool| {
        let dir = tempfile::tempdir().unwrap();
        logged(|| {
            let mut system = if storage {
                asking_system(dir.path(), 1, register)
            } else {
                let mut system = ActorSystem::new(config(1));
                system.register::<Keeper>();
                system.register::<Asker>();
                system
            };
            let mut world = system.world();
            let keeper = world.spawn::<Keeper, _>(1u64);
            world.spawn::<Asker, _>(keeper);
            world.spawn::<Asker, _>(keeper);
            system.turn();
            for _ in 0..3 {
                asking_turn(&mut system);
            }
        })
    };
    let said = run(true, false);
    let call = "register_continuation::<u64, persist::Got>()";
    assert_eq!(said.matches(call).count(), 1, "{said}");
    assert!(!run(true, true).contains(call));
    assert!(!run(false, false).contains(call));
}
