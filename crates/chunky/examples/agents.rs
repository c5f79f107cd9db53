//! Agents in compact form, kept in memory-mapped files.
//!
//! Run 1 spawns agents into a `MultiArena` over `MmapStorage`, each agent one
//! contiguous compact value in a slot. A few "turns" move them and let some
//! grow a trip log: a grown `CVec` spills to the heap and the agent is
//! re-compacted into a slot of the next size class, as kay's instance stores
//! will do. Everything is dropped, reopened from the files, validated (the
//! files are mapped at a new address, so every pointer is checked and
//! rebased) and checked against the expected totals.
//!
//! `cargo run --release -p chunky --example agents [-- N]`

use std::time::Instant;

use chunky::{Arena, ChunkSize, MultiArena, MultiSlot, Storage};
use compact::{CString, CVec, Compact, compact_into, validate_in_place};

#[derive(Compact, Clone, Default)]
struct Agent {
    id: u32,
    pos: [f32; 2],
    vel: [f32; 2],
    name: CString,
    trips: CVec<u32>,
}

/// Each slot starts with the address it was written at (the origin that
/// validation needs to rebase pointers), then the compact agent.
const HEADER: usize = 8;

fn store(agents: &mut MultiArena, agent: Agent) -> chunky::Result<MultiSlot> {
    let slot = agents.push(HEADER + agent.total_size_bytes())?;
    let bytes = agents.at_mut(slot);
    let origin = bytes[HEADER..].as_ptr() as u64;
    bytes[..HEADER].copy_from_slice(&origin.to_le_bytes());
    compact_into(agent, &mut bytes[HEADER..]).expect("slots are 16-aligned and large enough");
    Ok(slot)
}

fn load(bytes: &mut [u8]) -> Result<&mut Agent, compact::ValidationError> {
    let origin = u64::from_le_bytes(bytes[..HEADER].try_into().expect("8 bytes")) as usize;
    validate_in_place::<Agent>(&mut bytes[HEADER..], origin)
}

/// An index entry: the slot size of the agent's bin and its slot there.
fn encode(slot: MultiSlot) -> [u8; 8] {
    ((slot.bin.slot_size() as u64) << 32 | u64::from(slot.slot.get())).to_le_bytes()
}

fn decode(bytes: &[u8]) -> chunky::Result<MultiSlot> {
    let v = u64::from_le_bytes(bytes.try_into().expect("8 bytes"));
    Ok(MultiSlot {
        bin: chunky::BinIndex::for_size((v >> 32) as usize)?,
        slot: chunky::SlotIndex::new(v as u32),
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: u32 = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(200_000);
    let turns = 5u32;
    let dir = std::env::temp_dir().join(format!("kay-agents-demo-{}", std::process::id()));
    let chunk = ChunkSize::new(1 << 20)?;

    let started = Instant::now();
    {
        let storage = Storage::mmap(&dir)?;
        let mut agents = MultiArena::open(&storage, "agents", chunk)?;
        let mut index = Arena::open(&storage, "agent_index", 8, chunk)?;
        for id in 0..n {
            let agent = Agent {
                id,
                pos: [id as f32, 0.0],
                vel: [1.0, 0.5],
                name: format!("agent-{id}").as_str().into(),
                trips: CVec::new(),
            };
            let slot = store(&mut agents, agent)?;
            let entry = index.push()?;
            index.at_mut(entry).copy_from_slice(&encode(slot));
        }
        let spawned = started.elapsed();

        let mut moved = 0usize;
        for turn in 0..turns {
            for entry in index.indices() {
                let slot = decode(index.at(entry))?;
                let agent = load(agents.at_mut(slot))?;
                agent.pos[0] += agent.vel[0];
                agent.pos[1] += agent.vel[1];
                if agent.id % 4 == turn % 4 {
                    agent.trips.push(turn); // grows: spills to the heap
                }
                if !agent.is_still_compact() {
                    // Move it out (its compact parts still point into the old
                    // slot, which stays alive until it is freed below) and
                    // compact it into a slot of the right size class.
                    let grown = std::mem::take(agent);
                    let new_slot = store(&mut agents, grown)?;
                    agents.free(slot);
                    index.at_mut(entry).copy_from_slice(&encode(new_slot));
                    moved += 1;
                }
            }
        }
        println!(
            "spawned {n} agents in {:.1} ms; {turns} turns with {moved} re-compactions in {:.1} ms",
            spawned.as_secs_f64() * 1e3,
            (started.elapsed() - spawned).as_secs_f64() * 1e3
        );
        let bins: Vec<String> = agents
            .bins()
            .filter(|(_, arena)| !arena.is_empty())
            .map(|(_, arena)| format!("{} B × {}", arena.slot_size(), arena.len()))
            .collect();
        println!("size classes in use: {}", bins.join(", "));
    } // dropped: metadata written, files unmapped

    let reopened = Instant::now();
    let storage = Storage::mmap(&dir)?;
    let mut agents = MultiArena::open(&storage, "agents", chunk)?;
    let index = Arena::open(&storage, "agent_index", 8, chunk)?;
    let (mut trips, mut x_sum, mut names_ok) = (0usize, 0f64, 0u32);
    for entry in index.indices() {
        let agent = load(agents.at_mut(decode(index.at(entry))?))?;
        trips += agent.trips.len();
        x_sum += f64::from(agent.pos[0]);
        names_ok += u32::from(agent.name.as_str() == format!("agent-{}", agent.id));
    }
    let expected_trips: usize = (0..n)
        .map(|id| (0..turns).filter(|t| id % 4 == t % 4).count())
        .sum();
    let expected_x: f64 = (0..n).map(|id| f64::from(id as f32 + turns as f32)).sum();
    println!(
        "reopened and validated {} agents in {:.1} ms: {trips} trips, names ok: {names_ok}",
        index.len(),
        reopened.elapsed().as_secs_f64() * 1e3
    );
    assert_eq!(index.len(), n as usize);
    assert_eq!(
        trips, expected_trips,
        "trip logs survived re-compaction and reopening"
    );
    assert_eq!(names_ok, n);
    assert!(
        (x_sum - expected_x).abs() < 1e-6 * expected_x.max(1.0),
        "positions survived"
    );
    drop((agents, index, storage));
    std::fs::remove_dir_all(&dir)?;
    println!("ok");
    Ok(())
}
