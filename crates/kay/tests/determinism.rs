//! Multi-core execution is deterministic (docs/architecture.md), and concurrent
//! sends into one shard lose and duplicate nothing.
//!
//! # The simulation
//! Three classes and one actor trait, driven by two broadcasts per frame:
//! - `Agent`s pay upkeep to `Cell`s, ping friends, report to an `Observer`
//!   (a `Cell` or a `Tracker`, through the trait ID), grow a log, split off
//!   children (spawns into their own class), introduce them to friends, and
//!   die when out of energy or old (reporting their energy to a `Tracker`).
//! - `Cell`s (`Observer`s) bank the upkeep and spawn new `Agent`s from it.
//! - `Tracker`s (`Observer`s) count births and deaths, keep a growing text
//!   history, spawn new `Cell`s from the energy of the dead, and broadcast a
//!   `Census` to every `Agent` from inside a handler.
//!
//! All choices come from a xorshift generator stored in each actor (seeded
//! from its name, which is derived from its parent's) and from the messages
//! it got; nothing depends on timing. Growth: `CVec`s (logs, friend lists,
//! visitor lists) and a `CString` (tracker history) grow every frame, so
//! instances are re-compacted all the time.
//!
//! # What is checked
//! - `same_state_on_1_2_3_and_8_threads`: with a fixed shard count, every
//!   instance of every class, in ID order, hashed field by field (IDs and the
//!   order of logged messages included), is byte-identical for 1, 2, 3 and 8
//!   threads, and in two runs with the same thread count.
//! - `instance_counts_and_lost_messages_match`: the statistics (instances,
//!   messages handled by type, messages to dead actors, lost) agree too.
//! - `different_shard_counts_still_run_correctly`: the shard count is
//!   configuration, so it may change IDs and how messages from different
//!   senders interleave, but it must not change what the simulation does.
//!   For 1, 4 and 7 shards: the same instance counts, the same energy per
//!   class (and energy is conserved exactly: it only moves into actors that
//!   never die, or into spawns), the same statistics apart from broadcast
//!   records, and the same multiset of ID-free instance states.
//!
//!   That holds because the workload makes every decision independent of
//!   IDs and of the interleaving of senders: in a frame's first message
//!   cycle only the test's two broadcasts arrive, and that is where actors
//!   decide (spawn, die, pick targets) from their own state; in later cycles
//!   handlers only add up what arrives, insert into name-sorted sets, log
//!   (capped, so only the contents depend on arrival order) or count births
//!   (a tracker's census goes out at fixed counts). Spawns arrive in cycle
//!   two and censuses later, so which agents a census reaches is fixed too.
//! - `many_shards_send_to_one_actor`: 2,000 actors in 8 shards, on 4
//!   threads, send numbered messages to one actor of their own class while
//!   its shard is being handled; it counts every message once and sees each
//!   sender's numbers in order, without gaps.

#![allow(missing_docs)]

use kay::{
    Actor, ActorSystem, ActorTrait, CString, CVec, ClassSetup, Compact, Config, Fate, RawID, Stats,
    TypedID, World,
};

kay::typed_id!(pub AgentID);
kay::typed_id!(pub CellID);
kay::typed_id!(pub TrackerID);
kay::typed_id!(pub ObserverID);
kay::typed_id!(pub NodeID);

// ------------------------------------------------------------ parameters

/// The seed of the initial population.
const SEED: u64 = 0x6b61_795f_6465_7465;
const INITIAL_AGENTS: usize = 700;
const INITIAL_CELLS: usize = 40;
const TRACKERS: usize = 4;
const FRAMES: u32 = 30;
/// The shard count of the thread-count comparisons.
const SHARDS: usize = 4;

const AGENT_ENERGY: u64 = 100;
/// Agents with at least this much energy may split off a child.
const SPLIT_AT: u64 = 60;
/// Cells with at least this much energy spawn an agent (of `AGENT_ENERGY`).
const CELL_SPAWN_AT: u64 = 150;
/// Trackers with at least this much energy spawn a cell with `NEW_CELL_ENERGY`.
const TRACKER_SPAWN_AT: u64 = 600;
const NEW_CELL_ENERGY: u64 = 300;
/// Each tracker broadcasts a census to all agents after this many births.
const CENSUS_EVERY: u64 = 64;
const MAX_FRIENDS: usize = 6;
const LOG_CAP: usize = 96;
const VISITOR_CAP: usize = 160;

// ------------------------------------------------------------ helpers

/// SplitMix64: a good 64-bit mixer, for names and seeds.
fn mix(a: u64, b: u64) -> u64 {
    let mut z = a ^ b.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// One step of xorshift64*: the per-actor generator (state never 0).
fn roll(state: &mut u64) -> u64 {
    let mut x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    x.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

/// A generator state from a name.
fn seed(name: u64) -> u64 {
    mix(name, 1) | 1
}

/// FNV-1a over explicitly little-endian field bytes, in a fixed order.
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn bytes(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01B3);
        }
    }
    fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.bytes(&v.to_le_bytes());
    }
    fn len(&mut self, n: usize) {
        self.u64(n as u64);
    }
    fn id(&mut self, id: impl TypedID) {
        let RawID {
            instance,
            type_id,
            machine,
            version,
        } = id.as_raw();
        self.u32(instance);
        self.bytes(&type_id.get().to_le_bytes());
        self.bytes(&[machine.0, version]);
    }
    fn str(&mut self, s: &str) {
        self.len(s.len());
        self.bytes(s.as_bytes());
    }
}

/// A friend: its name (the sort key, independent of IDs) and its ID.
#[derive(Compact, Clone, Copy, Debug)]
pub struct Friend {
    name: u64,
    id: AgentID,
}

/// Adds `friend` to a list kept sorted by name and capped at `MAX_FRIENDS`
/// (the largest names stay). The result depends only on the set of friends
/// ever added, not on the order they were added in.
fn befriend(friends: &mut CVec<Friend>, friend: Friend) {
    let Err(at) = friends.binary_search_by_key(&friend.name, |f| f.name) else {
        return;
    };
    friends.insert(at, friend);
    if friends.len() > MAX_FRIENDS {
        friends.remove(0);
    }
}

/// Pushes to a log unless it is full: the length stays independent of
/// arrival order even where the contents are not.
fn log_capped(log: &mut CVec<u64>, cap: usize, value: u64) {
    if log.len() < cap {
        log.push(value);
    }
}

// ------------------------------------------------------------ messages

#[derive(Compact, Clone)]
pub struct SpawnAgent {
    name: u64,
    energy: u64,
    tracker: TrackerID,
    cells: CVec<CellID>,
    friends: CVec<Friend>,
}
#[derive(Compact, Clone)]
pub struct SpawnCell {
    name: u64,
    energy: u64,
    tracker: TrackerID,
    neighbours: CVec<CellID>,
}
#[derive(Compact, Clone)]
pub struct SpawnTracker {
    name: u64,
}
/// Broadcast to all agents by the test, once per frame.
#[derive(Compact, Clone)]
pub struct Step {
    frame: u32,
}
#[derive(Compact, Clone)]
pub struct Ping {
    from: u64,
    payload: u64,
}
#[derive(Compact, Clone)]
pub struct Introduce {
    friend: Friend,
}
/// Broadcast to all agents by a tracker, from inside a handler.
#[derive(Compact, Clone)]
pub struct Census {
    births: u64,
}
#[derive(Compact, Clone)]
pub struct Deposit {
    from: u64,
    amount: u64,
}
/// `Observer` message, broadcast to the trait by the test once per frame.
#[derive(Compact, Clone)]
pub struct Observe {
    frame: u32,
}
/// `Observer` message, sent to one observer through its trait ID.
#[derive(Compact, Clone)]
pub struct Report {
    from: u64,
    value: u64,
}
#[derive(Compact, Clone)]
pub struct Died {
    name: u64,
    energy: u64,
    age: u32,
}
#[derive(Compact, Clone)]
pub struct Born {
    name: u64,
}

// ------------------------------------------------------------ Observer (trait)

/// Actors that watch the simulation: `Cell` and `Tracker`. Handles `Observe`
/// and `Report`.
pub struct Observer;
impl ActorTrait for Observer {
    type ID = ObserverID;
}
impl From<CellID> for ObserverID {
    fn from(id: CellID) -> Self {
        ObserverID(id.0)
    }
}
impl From<TrackerID> for ObserverID {
    fn from(id: TrackerID) -> Self {
        ObserverID(id.0)
    }
}

// ------------------------------------------------------------ Agent

#[derive(Compact, Clone, Debug)]
pub struct Agent {
    id: AgentID,
    name: u64,
    rng: u64,
    energy: u64,
    age: u32,
    children: u32,
    pings: u32,
    introduced: u32,
    census: u64,
    tracker: TrackerID,
    cells: CVec<CellID>,
    friends: CVec<Friend>,
    /// Own rolls, ping payloads and censuses, in arrival order.
    log: CVec<u64>,
}

impl Actor for Agent {
    type ID = AgentID;
    fn id(&self) -> AgentID {
        self.id
    }
    fn setup(class: &mut ClassSetup<Self>) {
        class
            .spawner(Agent::spawn)
            .handler(Agent::step)
            .handler(Agent::ping)
            .handler(Agent::introduce)
            .handler(Agent::census);
    }
}

impl Agent {
    fn spawn(id: AgentID, m: &SpawnAgent, world: &mut World) -> Agent {
        world.send(m.tracker, Born { name: m.name });
        let mut friends = CVec::new();
        for f in m.friends.iter() {
            befriend(&mut friends, *f);
        }
        Agent {
            id,
            name: m.name,
            rng: seed(m.name),
            energy: m.energy,
            age: 0,
            children: 0,
            pings: 0,
            introduced: 0,
            census: 0,
            tracker: m.tracker,
            cells: m.cells.clone(),
            friends,
            log: CVec::new(),
        }
    }

    fn max_age(&self) -> u32 {
        12 + (self.name % 24) as u32
    }

    fn step(&mut self, m: &Step, world: &mut World) -> Fate {
        self.age += 1;
        let r = roll(&mut self.rng);
        log_capped(&mut self.log, LOG_CAP, r ^ u64::from(m.frame));

        // Upkeep, paid to one of its cells.
        let cost = (1 + r % 4).min(self.energy);
        if cost > 0 {
            let cell = self.cells[(r >> 8) as usize % self.cells.len()];
            world.send(
                cell,
                Deposit {
                    from: self.name,
                    amount: cost,
                },
            );
            self.energy -= cost;
        }

        // Gossip: up to two pings to friends (who may have died).
        for _ in 0..(r >> 16) % 3 {
            let p = roll(&mut self.rng);
            if let Some(f) = self.friends.get(p as usize % self.friends.len().max(1)) {
                let ping = Ping {
                    from: self.name,
                    payload: p,
                };
                world.send(f.id, ping);
            }
        }

        // A report to an observer, through the trait ID.
        let observer: ObserverID = if (r >> 20) & 1 == 0 {
            self.cells[0].into()
        } else {
            self.tracker.into()
        };
        let report = Report {
            from: self.name,
            value: self.energy,
        };
        world.send(observer, report);

        if self.energy == 0 || self.age > self.max_age() {
            let died = Died {
                name: self.name,
                energy: self.energy,
                age: self.age,
            };
            world.send(self.tracker, died);
            return Fate::Die;
        }
        if self.energy >= SPLIT_AT && (r >> 24).is_multiple_of(4) {
            self.split(r, world);
        }
        Fate::Live
    }

    /// Spawns a child with half the energy, introduces it to a friend and
    /// befriends it.
    fn split(&mut self, r: u64, world: &mut World) {
        let energy = self.energy / 2;
        self.energy -= energy;
        let name = mix(self.name, u64::from(self.children));
        self.children += 1;
        let mut friends: CVec<Friend> = self.friends.iter().take(2).copied().collect();
        friends.push(Friend {
            name: self.name,
            id: self.id,
        });
        let mut cells: CVec<CellID> = self.cells.iter().skip(1).copied().collect();
        cells.push(self.cells[0]);
        let child = world.spawn::<Agent, _>(SpawnAgent {
            name,
            energy,
            tracker: self.tracker,
            cells,
            friends,
        });
        let friend = Friend { name, id: child };
        if !self.friends.is_empty() {
            let to = self.friends[(r >> 32) as usize % self.friends.len()].id;
            world.send(to, Introduce { friend });
        }
        befriend(&mut self.friends, friend);
    }

    fn ping(&mut self, m: &Ping, _: &mut World) {
        self.pings += 1;
        log_capped(&mut self.log, LOG_CAP, m.payload ^ m.from);
    }

    fn introduce(&mut self, m: &Introduce, _: &mut World) {
        self.introduced += 1;
        befriend(&mut self.friends, m.friend);
    }

    fn census(&mut self, m: &Census, _: &mut World) {
        self.census = self.census.wrapping_add(m.births);
        log_capped(&mut self.log, LOG_CAP, m.births);
    }
}

// ------------------------------------------------------------ Cell

#[derive(Compact, Clone, Debug)]
pub struct Cell {
    id: CellID,
    name: u64,
    energy: u64,
    deposits: u64,
    deposited: u64,
    reports: u64,
    report_sum: u64,
    observed: u32,
    tracker: TrackerID,
    neighbours: CVec<CellID>,
    /// The agents it spawned, in spawn order.
    spawned: CVec<Friend>,
    /// Depositors, in arrival order.
    visitors: CVec<u64>,
}

impl Actor for Cell {
    type ID = CellID;
    fn id(&self) -> CellID {
        self.id
    }
    fn setup(class: &mut ClassSetup<Self>) {
        class
            .spawner(Cell::spawn)
            .handler(Cell::deposit)
            .handler(Cell::observe)
            .handler(Cell::report)
            .implements::<Observer>();
    }
}

impl Cell {
    fn spawn(id: CellID, m: &SpawnCell, _: &mut World) -> Cell {
        Cell {
            id,
            name: m.name,
            energy: m.energy,
            deposits: 0,
            deposited: 0,
            reports: 0,
            report_sum: 0,
            observed: 0,
            tracker: m.tracker,
            neighbours: m.neighbours.clone(),
            spawned: CVec::new(),
            visitors: CVec::new(),
        }
    }

    fn deposit(&mut self, m: &Deposit, _: &mut World) {
        self.energy += m.amount;
        self.deposits += 1;
        self.deposited += m.amount;
        log_capped(&mut self.visitors, VISITOR_CAP, m.from ^ m.amount);
    }

    /// Spawns up to two agents from banked energy.
    fn observe(&mut self, _: &Observe, world: &mut World) {
        self.observed += 1;
        for _ in 0..2 {
            if self.energy < CELL_SPAWN_AT {
                break;
            }
            self.energy -= AGENT_ENERGY;
            let name = mix(self.name, self.spawned.len() as u64);
            let mut cells = CVec::new();
            cells.push(self.id);
            cells.extend(self.neighbours.iter().copied());
            let friends: CVec<Friend> = self.spawned.iter().rev().take(3).copied().collect();
            let id = world.spawn::<Agent, _>(SpawnAgent {
                name,
                energy: AGENT_ENERGY,
                tracker: self.tracker,
                cells,
                friends,
            });
            self.spawned.push(Friend { name, id });
        }
    }

    fn report(&mut self, m: &Report, _: &mut World) {
        self.reports += 1;
        self.report_sum = self.report_sum.wrapping_add(m.value ^ m.from);
    }
}

// ------------------------------------------------------------ Tracker

#[derive(Compact, Clone, Debug)]
pub struct Tracker {
    id: TrackerID,
    name: u64,
    energy: u64,
    births: u64,
    deaths: u64,
    born_name_sum: u64,
    died_age_sum: u64,
    died_name_sum: u64,
    reports: u64,
    report_sum: u64,
    censuses: u32,
    /// The cells it spawned, in spawn order.
    cells: CVec<CellID>,
    /// One entry per frame.
    history: CString,
}

impl Actor for Tracker {
    type ID = TrackerID;
    fn id(&self) -> TrackerID {
        self.id
    }
    fn setup(class: &mut ClassSetup<Self>) {
        class
            .spawner(Tracker::spawn)
            .handler(Tracker::died)
            .handler(Tracker::born)
            .handler(Tracker::observe)
            .handler(Tracker::report)
            .implements::<Observer>();
    }
}

impl Tracker {
    fn spawn(id: TrackerID, m: &SpawnTracker, _: &mut World) -> Tracker {
        Tracker {
            id,
            name: m.name,
            energy: 0,
            births: 0,
            deaths: 0,
            born_name_sum: 0,
            died_age_sum: 0,
            died_name_sum: 0,
            reports: 0,
            report_sum: 0,
            censuses: 0,
            cells: CVec::new(),
            history: CString::new(),
        }
    }

    fn died(&mut self, m: &Died, _: &mut World) {
        self.energy += m.energy;
        self.deaths += 1;
        self.died_age_sum += u64::from(m.age);
        self.died_name_sum = self.died_name_sum.wrapping_add(m.name);
    }

    /// Every `CENSUS_EVERY` births, broadcasts a census to all agents.
    fn born(&mut self, m: &Born, world: &mut World) {
        self.births += 1;
        self.born_name_sum = self.born_name_sum.wrapping_add(m.name);
        if self.births.is_multiple_of(CENSUS_EVERY) {
            self.censuses += 1;
            let everyone = world.local_broadcast::<Agent>();
            world.send(
                everyone,
                Census {
                    births: self.births,
                },
            );
        }
    }

    /// Writes history and spawns a cell from the energy of the dead.
    fn observe(&mut self, m: &Observe, world: &mut World) {
        use std::fmt::Write;
        let _ = write!(
            self.history,
            "{}:{}/{}/{};",
            m.frame, self.births, self.deaths, self.energy
        );
        if self.energy >= TRACKER_SPAWN_AT {
            self.energy -= NEW_CELL_ENERGY;
            let neighbours: CVec<CellID> = self.cells.iter().rev().take(2).copied().collect();
            let cell = world.spawn::<Cell, _>(SpawnCell {
                name: mix(self.name, self.cells.len() as u64),
                energy: NEW_CELL_ENERGY,
                tracker: self.id,
                neighbours,
            });
            self.cells.push(cell);
        }
    }

    fn report(&mut self, m: &Report, _: &mut World) {
        self.reports += 1;
        self.report_sum = self.report_sum.wrapping_add(m.value ^ m.from);
    }
}

// ------------------------------------------------------------ running it

/// What a run ends with.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Outcome {
    /// Every field of every instance, instances in ID order (IDs included).
    state_hash: u64,
    /// The ID-free fields of every instance, as a multiset (see [`Digest`]).
    id_free_hash: u64,
    /// Instances of Agent, Cell, Tracker.
    instances: [usize; 3],
    /// Energy held by all Agents, Cells, Trackers.
    energy: [u64; 3],
    stats: StatsSummary,
}

/// The comparable part of [`Stats`].
#[derive(Debug, Clone, PartialEq, Eq)]
struct StatsSummary {
    /// Per class: name, instances, queued, to missing instances, without handler.
    classes: Vec<(String, usize, usize, u64, u64)>,
    /// Per class: messages handled, by message type (sorted).
    handled: Vec<(String, Vec<(String, u64)>)>,
    undeliverable: u64,
    lost: u64,
}

impl StatsSummary {
    fn of(stats: &Stats) -> Self {
        let short = |name: &str| name.rsplit("::").next().unwrap_or(name).to_owned();
        StatsSummary {
            classes: stats
                .classes
                .iter()
                .map(|c| {
                    let name = short(c.name);
                    (name, c.instances, c.queued, c.no_recipient, c.no_handler)
                })
                .collect(),
            handled: stats
                .classes
                .iter()
                .map(|c| {
                    let mut h: Vec<(String, u64)> =
                        c.handled.iter().map(|(m, n)| (short(m), *n)).collect();
                    h.sort();
                    (short(c.name), h)
                })
                .collect(),
            undeliverable: stats.undeliverable,
            lost: stats.lost(),
        }
    }

    /// Messages of type `message` handled by class `class`.
    fn handled(&self, class: &str, message: &str) -> u64 {
        self.handled
            .iter()
            .filter(|(c, _)| c == class)
            .flat_map(|(_, h)| h.iter())
            .filter(|(m, _)| m == message)
            .map(|(_, n)| *n)
            .sum()
    }
}

fn new_system(threads: usize, shards: usize) -> ActorSystem {
    ActorSystem::new(Config {
        threads,
        shards,
        ..Config::default()
    })
}

/// Spawns the initial population (from outside, deterministically).
fn populate(world: &mut World) {
    let mut rng = seed(SEED);
    let trackers: Vec<TrackerID> = (0..TRACKERS)
        .map(|t| {
            world.spawn::<Tracker, _>(SpawnTracker {
                name: mix(SEED, t as u64),
            })
        })
        .collect();
    let mut cells: Vec<CellID> = Vec::new();
    for c in 0..INITIAL_CELLS {
        let neighbours: CVec<CellID> = cells.iter().rev().take(2).copied().collect();
        cells.push(world.spawn::<Cell, _>(SpawnCell {
            name: mix(SEED ^ 0xCE11, c as u64),
            energy: 0,
            tracker: trackers[c % TRACKERS],
            neighbours,
        }));
    }
    let mut agents: Vec<Friend> = Vec::new();
    for a in 0..INITIAL_AGENTS {
        let home: CVec<CellID> = (0..3)
            .map(|_| cells[roll(&mut rng) as usize % cells.len()])
            .collect();
        let friends: CVec<Friend> = (0..4)
            .filter(|_| !agents.is_empty())
            .map(|_| agents[roll(&mut rng) as usize % agents.len()])
            .collect();
        let name = mix(SEED ^ 0xA6E7, a as u64);
        let id = world.spawn::<Agent, _>(SpawnAgent {
            name,
            energy: AGENT_ENERGY,
            tracker: trackers[a % TRACKERS],
            cells: home,
            friends,
        });
        agents.push(Friend { name, id });
    }
}

/// Runs the simulation with `threads` workers and `shards` shards per class.
fn run(threads: usize, shards: usize) -> Outcome {
    let mut system = new_system(threads, shards);
    system.register::<Agent>();
    system.register::<Cell>();
    system.register::<Tracker>();
    let mut world = system.world();
    populate(&mut world);
    system.process_all_messages();
    for frame in 0..FRAMES {
        let agents = world.local_broadcast::<Agent>();
        world.send(agents, Step { frame });
        let observers = world.local_broadcast_trait::<Observer>();
        world.send(observers, Observe { frame });
        system.process_all_messages();
    }
    outcome(&system)
}

/// How an instance is hashed. Every field goes into the state hash; the
/// fields that depend neither on IDs nor on the arrival order of messages
/// from different senders also go into the ID-free hash.
trait Digest: Actor + Clone {
    /// Feeds the ID-free fields to `h`.
    fn hash_id_free(&self, h: &mut Fnv);
    /// Feeds the other fields: IDs, and contents in arrival order.
    fn hash_ids_and_order(&self, h: &mut Fnv);
}

impl Digest for Agent {
    fn hash_id_free(&self, h: &mut Fnv) {
        h.u64(self.name);
        h.u64(self.rng);
        h.u64(self.energy);
        h.u32(self.age);
        h.u32(self.children);
        h.u32(self.pings);
        h.u32(self.introduced);
        h.u64(self.census);
        h.len(self.cells.len());
        h.len(self.friends.len());
        self.friends.iter().for_each(|f| h.u64(f.name));
        h.len(self.log.len());
    }
    fn hash_ids_and_order(&self, h: &mut Fnv) {
        h.id(self.id);
        h.id(self.tracker);
        self.cells.iter().for_each(|c| h.id(*c));
        self.friends.iter().for_each(|f| h.id(f.id));
        self.log.iter().for_each(|v| h.u64(*v));
    }
}

impl Digest for Cell {
    fn hash_id_free(&self, h: &mut Fnv) {
        h.u64(self.name);
        h.u64(self.energy);
        h.u64(self.deposits);
        h.u64(self.deposited);
        h.u64(self.reports);
        h.u64(self.report_sum);
        h.u32(self.observed);
        h.len(self.neighbours.len());
        h.len(self.spawned.len());
        self.spawned.iter().for_each(|f| h.u64(f.name));
        h.len(self.visitors.len());
    }
    fn hash_ids_and_order(&self, h: &mut Fnv) {
        h.id(self.id);
        h.id(self.tracker);
        self.neighbours.iter().for_each(|n| h.id(*n));
        self.spawned.iter().for_each(|f| h.id(f.id));
        self.visitors.iter().for_each(|v| h.u64(*v));
    }
}

impl Digest for Tracker {
    fn hash_id_free(&self, h: &mut Fnv) {
        h.u64(self.name);
        h.u64(self.energy);
        h.u64(self.births);
        h.u64(self.deaths);
        h.u64(self.born_name_sum);
        h.u64(self.died_age_sum);
        h.u64(self.died_name_sum);
        h.u64(self.reports);
        h.u64(self.report_sum);
        h.u32(self.censuses);
        h.len(self.cells.len());
        h.str(&self.history);
    }
    fn hash_ids_and_order(&self, h: &mut Fnv) {
        h.id(self.id);
        self.cells.iter().for_each(|c| h.id(*c));
    }
}

/// Collects the instances of `A` in ID order; feeds each one's full hash to
/// `state` and pushes its ID-free hash to `id_free`.
fn digest<A: Digest>(system: &ActorSystem, state: &mut Fnv, id_free: &mut Vec<u64>) -> Vec<A> {
    let mut all = system.with_instances::<A, _>(A::clone);
    all.sort_by_key(|a| a.id().as_raw());
    state.len(all.len());
    for a in &all {
        let mut full = Fnv::new();
        a.hash_id_free(&mut full);
        a.hash_ids_and_order(&mut full);
        state.u64(full.0);
        let mut free = Fnv::new();
        a.hash_id_free(&mut free);
        id_free.push(free.0);
    }
    all
}

/// Hashes every instance of every class in ID order (`state_hash`), and
/// their ID-free fields as a sorted multiset (`id_free_hash`).
fn outcome(system: &ActorSystem) -> Outcome {
    let mut state = Fnv::new();
    let mut id_free = Vec::new();
    let agents = digest::<Agent>(system, &mut state, &mut id_free);
    let cells = digest::<Cell>(system, &mut state, &mut id_free);
    let trackers = digest::<Tracker>(system, &mut state, &mut id_free);
    id_free.sort_unstable();
    let mut id_free_hash = Fnv::new();
    id_free.iter().for_each(|v| id_free_hash.u64(*v));
    Outcome {
        state_hash: state.0,
        id_free_hash: id_free_hash.0,
        instances: [agents.len(), cells.len(), trackers.len()],
        energy: [
            agents.iter().map(|a| a.energy).sum(),
            cells.iter().map(|c| c.energy).sum(),
            trackers.iter().map(|t| t.energy).sum(),
        ],
        stats: StatsSummary::of(&system.stats()),
    }
}

/// The energy of the initial population; nothing creates or destroys any.
const TOTAL_ENERGY: u64 = INITIAL_AGENTS as u64 * AGENT_ENERGY;

/// Checks that a run did real work: every kind of event happened.
fn assert_eventful(o: &Outcome) {
    let s = &o.stats;
    assert_eq!(
        o.energy.iter().sum::<u64>(),
        TOTAL_ENERGY,
        "energy is conserved"
    );
    assert!(o.instances[0] >= 300, "agents: {:?}", o.instances);
    assert!(
        o.instances[1] > INITIAL_CELLS,
        "trackers spawned cells: {:?}",
        o.instances
    );
    assert_eq!(o.instances[2], TRACKERS);
    let spawned_agents = s.handled("Agent", "SpawnAgent") as usize;
    assert!(
        spawned_agents > 2 * INITIAL_AGENTS,
        "agents spawned: {spawned_agents}"
    );
    let deaths = s.handled("Tracker", "Died") as usize;
    assert!(deaths > INITIAL_AGENTS, "deaths: {deaths}");
    assert_eq!(
        spawned_agents - deaths,
        o.instances[0],
        "births - deaths = agents"
    );
    assert!(s.handled("Agent", "Census") > 0, "censuses were broadcast");
    assert!(s.handled("Agent", "Introduce") > 0);
    assert!(s.handled("Cell", "Report") > 0 && s.handled("Tracker", "Report") > 0);
    let agent = s.classes.iter().find(|c| c.0 == "Agent").unwrap();
    assert!(agent.3 > 0, "some pings went to dead agents");
    assert_eq!(agent.4, 0, "no message without handler");
    assert_eq!(s.undeliverable, 0);
    assert_eq!(s.lost, agent.3, "only messages to dead agents are lost");
    assert!(s.classes.iter().all(|c| c.2 == 0), "nothing left queued");
}

#[test]
fn same_state_on_1_2_3_and_8_threads() {
    let reference = run(1, SHARDS);
    assert_eventful(&reference);
    // The second run with 8 threads checks run-to-run repeatability.
    for threads in [2, 3, 8, 8] {
        let other = run(threads, SHARDS);
        assert_eq!(
            other.state_hash, reference.state_hash,
            "the state with {threads} threads differs from the state with 1 thread"
        );
    }
}

#[test]
fn instance_counts_and_lost_messages_match() {
    let reference = run(1, SHARDS);
    for threads in [2, 8] {
        let other = run(threads, SHARDS);
        assert_eq!(other.instances, reference.instances, "{threads} threads");
        assert_eq!(other.energy, reference.energy, "{threads} threads");
        assert_eq!(other.stats, reference.stats, "{threads} threads");
    }
}

#[test]
fn different_shard_counts_still_run_correctly() {
    let reference = run(2, SHARDS);
    for shards in [1, 7] {
        let other = run(2, shards);
        assert_eventful(&other);
        assert_eq!(other.instances, reference.instances, "{shards} shards");
        assert_eq!(other.energy, reference.energy, "{shards} shards");
        assert_eq!(
            other.id_free_hash, reference.id_free_hash,
            "{shards} shards"
        );
        // Broadcasts may be counted per shard; every other message is the
        // same, and so are the messages that found no recipient.
        for (class, message) in [
            ("Agent", "SpawnAgent"),
            ("Agent", "Ping"),
            ("Agent", "Introduce"),
            ("Cell", "SpawnCell"),
            ("Cell", "Deposit"),
            ("Cell", "Report"),
            ("Tracker", "Died"),
            ("Tracker", "Born"),
            ("Tracker", "Report"),
        ] {
            assert_eq!(
                other.stats.handled(class, message),
                reference.stats.handled(class, message),
                "{class} handled {message} with {shards} shards"
            );
        }
        assert_eq!(
            other.stats.classes, reference.stats.classes,
            "{shards} shards"
        );
        assert_eq!(other.stats.lost, reference.stats.lost, "{shards} shards");
    }
}

// ------------------------------------------------------------ stress: one inbox

/// A node of the stress test: senders number their messages per sender; the
/// one sink checks that every sender's numbers arrive in order, without gaps.
#[derive(Compact, Clone, Debug)]
pub struct Node {
    id: NodeID,
    index: u32,
    sent: u32,
    sink: NodeID,
    received: u64,
    violations: u64,
    /// For the sink: the last number seen from each sender (by index).
    last: CVec<u32>,
}

/// Spawns the sink, which expects hits from `senders` senders (itself included).
#[derive(Compact, Clone)]
pub struct SpawnSink {
    senders: u32,
}
#[derive(Compact, Clone)]
pub struct SpawnSender {
    index: u32,
    sink: NodeID,
}
/// Broadcast: send `per_round` hits to the sink now and in `rounds - 1`
/// more message cycles.
#[derive(Compact, Clone)]
pub struct Fire {
    per_round: u32,
    rounds: u32,
}
#[derive(Compact, Clone)]
pub struct Hit {
    from: u32,
    seq: u32,
}

impl Actor for Node {
    type ID = NodeID;
    fn id(&self) -> NodeID {
        self.id
    }
    fn setup(class: &mut ClassSetup<Self>) {
        class
            .spawner(|id, m: &SpawnSink, _: &mut World| Node {
                id,
                index: 0,
                sent: 0,
                sink: id,
                received: 0,
                violations: 0,
                last: vec![0; m.senders as usize].into(),
            })
            .spawner(|id, m: &SpawnSender, _: &mut World| Node {
                id,
                index: m.index,
                sent: 0,
                sink: m.sink,
                received: 0,
                violations: 0,
                last: CVec::new(),
            })
            .handler(|n: &mut Node, m: &Fire, world: &mut World| {
                for _ in 0..m.per_round {
                    n.sent += 1;
                    world.send(
                        n.sink,
                        Hit {
                            from: n.index,
                            seq: n.sent,
                        },
                    );
                }
                if m.rounds > 1 {
                    let again = Fire {
                        per_round: m.per_round,
                        rounds: m.rounds - 1,
                    };
                    world.send(n.id, again);
                }
            })
            .handler(|n: &mut Node, m: &Hit, _: &mut World| {
                n.received += 1;
                let last = &mut n.last[m.from as usize];
                if m.seq != *last + 1 {
                    n.violations += 1;
                }
                *last = m.seq;
            });
    }
}

#[test]
fn many_shards_send_to_one_actor() {
    const SENDERS: u32 = 2_000;
    const PER_ROUND: u32 = 3;
    const ROUNDS: u32 = 3;
    const FRAMES: u32 = 8;
    let mut system = new_system(4, 8);
    system.register::<Node>();
    let mut world = system.world();
    let sink = world.spawn::<Node, _>(SpawnSink { senders: SENDERS });
    for index in 1..SENDERS {
        world.spawn::<Node, _>(SpawnSender { index, sink });
    }
    system.process_all_messages();
    for _ in 0..FRAMES {
        let all = world.local_broadcast::<Node>();
        world.send(
            all,
            Fire {
                per_round: PER_ROUND,
                rounds: ROUNDS,
            },
        );
        system.process_all_messages();
    }

    let per_sender = PER_ROUND * ROUNDS * FRAMES;
    let nodes = system.with_instances::<Node, _>(Node::clone);
    assert_eq!(nodes.len(), SENDERS as usize);
    assert!(nodes.iter().all(|n| n.sent == per_sender));
    let sink = nodes.iter().find(|n| n.id == sink).expect("the sink lives");
    assert_eq!(
        sink.violations, 0,
        "per-sender order broken or messages lost"
    );
    assert_eq!(sink.received, u64::from(SENDERS * per_sender));
    for (from, last) in sink.last.iter().enumerate() {
        assert_eq!(*last, per_sender, "sender {from}");
    }
    let stats = system.stats();
    assert_eq!(stats.lost(), 0);
    assert_eq!(
        stats.class("Node").unwrap().handled("Hit"),
        u64::from(SENDERS * per_sender)
    );
}
