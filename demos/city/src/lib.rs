//! The city: a grid of intersections joined by one-way lanes, and vehicles
//! (cars and buses) driving on them. Lanes, intersections, cars and buses
//! are all actors; they talk only by messages. Signals switch on timers in
//! simulation time; the city's figures are a map-reduce over the lanes.
//!
//! The model is data-oriented (see `demos/city/README.md`): a lane keeps
//! the queue of vehicles on it (ID, destination, position: 16 bytes each)
//! and moves them all in one handler per turn, so that a vehicle costs a
//! few nanoseconds per turn and a message only when it leaves a lane. Cars
//! themselves get one broadcast per turn (they count their driving time)
//! and decide where to go next when they arrive.

#![allow(missing_docs)] // actor methods document the model; the rest is small

use kay::prelude::*;
use kay::{MachineID, RawID, TypedID};

/// Simulated seconds per turn.
pub const SECONDS_PER_TURN: f32 = 0.5;
/// The length of every lane, in metres (one block).
pub const LANE_LENGTH: f32 = 200.0;
/// Front-to-front distance of queued vehicles, in metres.
pub const GAP: f32 = 7.5;
/// How far a vehicle drives in a turn at full speed (50 km/h), in metres.
pub const MAX_STEP: f32 = 13.9 * SECONDS_PER_TURN;
/// Vehicles that cross the stop line of a green lane per turn.
pub const CROSSINGS_PER_TURN: usize = 1;
/// Turns a signal phase lasts (15 s).
pub const PHASE_TURNS: u16 = 30;
/// Turns between two reports of the lanes (one simulated second).
pub const REPORT_TURNS: u64 = (1.0 / SECONDS_PER_TURN) as u64;
/// How far (in blocks, each axis) a new destination lies from where a car
/// arrived.
pub const TRIP_BLOCKS: u32 = 6;

/// Directions, in the order of a lane's `next` table.
pub const EAST: u8 = 0;
pub const NORTH: u8 = 1;
pub const WEST: u8 = 2;
pub const SOUTH: u8 = 3;

/// An intersection's coordinates packed into a `u32` (`x << 16 | y`).
#[inline]
pub fn pack(x: u32, y: u32) -> u32 {
    x << 16 | y
}

/// The coordinates of a packed intersection.
#[inline]
pub fn unpack(at: u32) -> (u32, u32) {
    (at >> 16, at & 0xFFFF)
}

/// The neighbour of `(x, y)` in direction `dir`, if inside a `w × h` grid.
pub fn neighbour(x: u32, y: u32, dir: u8, w: u32, h: u32) -> Option<(u32, u32)> {
    match dir {
        EAST if x + 1 < w => Some((x + 1, y)),
        NORTH if y + 1 < h => Some((x, y + 1)),
        WEST if x > 0 => Some((x - 1, y)),
        SOUTH if y > 0 => Some((x, y - 1)),
        _ => None,
    }
}

/// The direction to drive from `at` towards `dest`: along the axis with
/// more blocks to go (east–west on a tie), so routes run near the diagonal
/// and both axes carry traffic; `None` if already there.
#[inline]
pub fn heading(at: u32, dest: u32) -> Option<u8> {
    let ((x, y), (dx, dy)) = (unpack(at), unpack(dest));
    if (x, y) == (dx, dy) {
        return None;
    }
    Some(if dx.abs_diff(x) >= dy.abs_diff(y) {
        if dx > x { EAST } else { WEST }
    } else if dy > y {
        NORTH
    } else {
        SOUTH
    })
}

/// A xorshift step: the demo's only source of randomness, kept in actors.
#[inline]
pub fn next_random(state: &mut u64) -> u64 {
    let mut x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    x
}

/// The share of trips (in 256ths) that go downtown: near the grid's centre
/// instead of near where the car is.
pub const DOWNTOWN_TRIPS: u64 = 64;

/// A car's next destination: usually within `TRIP_BLOCKS` of `at`, one
/// trip in four near downtown (the grid's centre), never `at` itself.
pub fn next_destination(at: u32, size: u32, rng: &mut u64) -> u32 {
    if next_random(rng) % 256 < DOWNTOWN_TRIPS {
        let (w, h) = unpack(size);
        let downtown = pack(w / 2, h / 2);
        let dest = destination_near(downtown, size, rng);
        if dest != at {
            return dest;
        }
    }
    destination_near(at, size, rng)
}

/// A destination within `TRIP_BLOCKS` of `at` in a `w × h` grid, other
/// than `at`.
pub fn destination_near(at: u32, size: u32, rng: &mut u64) -> u32 {
    let ((x, y), (w, h)) = (unpack(at), unpack(size));
    loop {
        let r = next_random(rng);
        let span = 2 * TRIP_BLOCKS + 1;
        let dx = (r % u64::from(span)) as i64 - i64::from(TRIP_BLOCKS);
        let dy = ((r >> 20) % u64::from(span)) as i64 - i64::from(TRIP_BLOCKS);
        let nx = (i64::from(x) + dx).clamp(0, i64::from(w) - 1) as u32;
        let ny = (i64::from(y) + dy).clamp(0, i64::from(h) - 1) as u32;
        if (nx, ny) != (x, y) {
            return pack(nx, ny);
        }
    }
}

// ---------------------------------------------------------------- vehicles

/// Anything that drives on lanes: told when it reached its destination's
/// intersection, it picks where to go next and enters the lane that leads
/// there (`next[dir]` leaves this intersection in direction `dir`; bit
/// `dir` of `exits` says whether that lane exists). The lanes leaving the
/// intersection belong to machine `machine`: if that is another one (the
/// city is split over machines by regions), the vehicle moves there.
#[kay::actor_trait]
pub trait Vehicle {
    fn arrived(
        &mut self,
        at: u32,
        next: [LaneID; 4],
        exits: u8,
        machine: u8,
        world: &mut World,
    ) -> Fate;

    /// The vehicle crossed into another machine's region (in turn
    /// `crossed`): it goes on there, entering `lane` (an ID of that
    /// machine) towards `dest`.
    fn migrate(&mut self, lane: LaneID, dest: u32, crossed: u64, world: &mut World) -> Fate;
}

/// The copy of `lane` on `machine` (every machine builds the whole grid in
/// the same order, so a lane's ID differs between machines only in its
/// machine).
pub fn lane_on(lane: LaneID, machine: u8) -> LaneID {
    let raw = lane.as_raw();
    LaneID::from_raw(RawID::new(
        raw.type_id,
        raw.instance,
        MachineID(machine),
        raw.version,
    ))
}

/// Goes on to `lane` (of `machine`), having left the last lane in turn
/// `crossed`: enters it, or, if it belongs to another machine, has
/// `spawn_there` spawn the vehicle on it there and dies here. Either way it
/// joins the lane's queue two turns after `crossed` (see `Lane::enter`).
#[allow(clippy::too_many_arguments)]
fn drive_on(
    vehicle: VehicleID,
    serial: u32,
    lane: LaneID,
    dest: u32,
    machine: u8,
    crossed: u64,
    world: &mut World,
    spawn_there: impl FnOnce(LaneID, &mut World),
) -> Fate {
    if machine == world.machine().0 {
        lane.enter(vehicle, dest, serial, crossed, world);
        Fate::Live
    } else {
        spawn_there(lane_on(lane, machine), world);
        Fate::Die
    }
}

/// A car: drives from destination to destination, each a few blocks from
/// the last.
#[derive(Compact, Clone)]
pub struct Car {
    id: CarID,
    /// Which car this is, on any machine (IDs change when it moves).
    serial: u32,
    /// The grid's size, packed like a coordinate.
    size: u32,
    trips: u32,
    /// Turns driven (every car is ticked every turn).
    turns: u32,
    rng: u64,
}

#[kay::actor]
impl Car {
    /// A car that starts at the back of `lane`, heading for `dest`.
    pub fn spawn(
        id: CarID,
        serial: u32,
        lane: LaneID,
        dest: u32,
        size: u32,
        seed: u64,
        world: &mut World,
    ) -> Car {
        lane.enter(id.into(), dest, serial, 0, world);
        Car {
            id,
            serial,
            size,
            trips: 0,
            turns: 0,
            rng: seed | 1,
        }
    }

    /// A car that drove in from another machine's region, onto `lane`.
    #[allow(clippy::too_many_arguments)]
    pub fn spawn_moved(
        id: CarID,
        serial: u32,
        lane: LaneID,
        dest: u32,
        crossed: u64,
        size: u32,
        trips: u32,
        turns: u32,
        rng: u64,
        world: &mut World,
    ) -> Car {
        lane.enter(id.into(), dest, serial, crossed, world);
        Car {
            id,
            serial,
            size,
            trips,
            turns,
            rng,
        }
    }

    /// The per-turn broadcast.
    pub fn tick(&mut self, _: &mut World) {
        self.turns += 1;
    }
}

impl Car {
    /// Goes on to `lane` of `machine` (see [`drive_on`]).
    fn go(&self, lane: LaneID, dest: u32, machine: u8, crossed: u64, world: &mut World) -> Fate {
        let car = self.clone();
        drive_on(
            self.id.into(),
            self.serial,
            lane,
            dest,
            machine,
            crossed,
            world,
            |there, world| {
                CarID::spawn_moved_on(
                    MachineID(machine),
                    car.serial,
                    there,
                    dest,
                    crossed,
                    car.size,
                    car.trips,
                    car.turns,
                    car.rng,
                    world,
                );
            },
        )
    }
}

#[kay::implements]
impl Vehicle for Car {
    fn arrived(
        &mut self,
        at: u32,
        next: [LaneID; 4],
        exits: u8,
        machine: u8,
        world: &mut World,
    ) -> Fate {
        self.trips += 1;
        let dest = next_destination(at, self.size, &mut self.rng);
        let dir = heading(at, dest).expect("a new destination differs from here");
        debug_assert!(
            exits & (1 << dir) != 0,
            "a destination inside the grid has a lane towards it"
        );
        let crossed = world.current_turn();
        self.go(next[dir as usize], dest, machine, crossed, world)
    }

    fn migrate(&mut self, lane: LaneID, dest: u32, crossed: u64, world: &mut World) -> Fate {
        let machine = lane.as_raw().machine.0;
        self.go(lane, dest, machine, crossed, world)
    }
}

/// A bus: drives a fixed loop of stops.
#[derive(Compact, Clone)]
pub struct Bus {
    id: BusID,
    /// Which bus this is, on any machine (IDs change when it moves).
    serial: u32,
    stops: CVec<u32>,
    next_stop: u32,
    trips: u32,
}

#[kay::actor]
impl Bus {
    /// A bus on the line through `stops`, starting at the back of `lane`
    /// towards stop `first`.
    pub fn spawn(
        id: BusID,
        serial: u32,
        lane: LaneID,
        stops: &CVec<u32>,
        first: u32,
        world: &mut World,
    ) -> Bus {
        lane.enter(id.into(), stops[first as usize], serial, 0, world);
        Bus {
            id,
            serial,
            stops: stops.clone(),
            next_stop: first,
            trips: 0,
        }
    }

    /// A bus that drove in from another machine's region, onto `lane`.
    #[allow(clippy::too_many_arguments)]
    pub fn spawn_moved(
        id: BusID,
        serial: u32,
        lane: LaneID,
        stops: &CVec<u32>,
        next_stop: u32,
        crossed: u64,
        trips: u32,
        world: &mut World,
    ) -> Bus {
        lane.enter(id.into(), stops[next_stop as usize], serial, crossed, world);
        Bus {
            id,
            serial,
            stops: stops.clone(),
            next_stop,
            trips,
        }
    }
}

impl Bus {
    /// Goes on to `lane` of `machine` (see [`drive_on`]).
    fn go(&self, lane: LaneID, dest: u32, machine: u8, crossed: u64, world: &mut World) -> Fate {
        let (stops, next_stop, trips) = (self.stops.clone(), self.next_stop, self.trips);
        let serial = self.serial;
        drive_on(
            self.id.into(),
            serial,
            lane,
            dest,
            machine,
            crossed,
            world,
            |there, world| {
                BusID::spawn_moved_on(
                    MachineID(machine),
                    serial,
                    there,
                    stops,
                    next_stop,
                    crossed,
                    trips,
                    world,
                );
            },
        )
    }
}

#[kay::implements]
impl Vehicle for Bus {
    fn arrived(
        &mut self,
        at: u32,
        next: [LaneID; 4],
        _: u8,
        machine: u8,
        world: &mut World,
    ) -> Fate {
        self.trips += 1;
        let mut dest = at;
        while dest == at {
            self.next_stop = (self.next_stop + 1) % self.stops.len() as u32;
            dest = self.stops[self.next_stop as usize];
        }
        let dir = heading(at, dest).expect("the next stop differs from here");
        let crossed = world.current_turn();
        self.go(next[dir as usize], dest, machine, crossed, world)
    }

    fn migrate(&mut self, lane: LaneID, dest: u32, crossed: u64, world: &mut World) -> Fate {
        let machine = lane.as_raw().machine.0;
        self.go(lane, dest, machine, crossed, world)
    }
}

// ---------------------------------------------------------------- lanes

/// A vehicle on a lane: who, where to, and how far along (metres from the
/// lane's start; negative while queued behind the lane's start).
#[derive(Compact, Clone, Copy, Debug, PartialEq)]
pub struct Place {
    pub vehicle: VehicleID,
    pub dest: u32,
    pub pos: f32,
    /// The vehicle's serial number (see `Lane::enter`).
    pub serial: u32,
}

/// A vehicle on its way onto a lane: it left its last lane in turn
/// `crossed`, and joins the queue at the lane's tick two turns later (see
/// `Lane::enter`).
#[derive(Compact, Clone, Copy, Debug, PartialEq)]
pub struct Arrival {
    pub vehicle: VehicleID,
    pub dest: u32,
    pub serial: u32,
    pub crossed: u64,
}

/// A one-way lane from one intersection to the next, with the queue of
/// vehicles on it (the lead vehicle first).
#[derive(Compact, Clone)]
pub struct Lane {
    id: LaneID,
    /// The machine whose region the lane starts in (it reports there).
    home: u8,
    /// The intersection it leads to (packed), and the machine whose region
    /// that intersection (and the lanes leaving it) is in.
    to: u32,
    to_machine: u8,
    dir: u8,
    green: bool,
    /// The lanes leaving `to`, by direction, and which exist.
    next: [LaneID; 4],
    exits: u8,
    places: CVec<Place>,
    arriving: CVec<Arrival>,
    /// The figures of the last simulated second (taken at its last tick).
    last_second: Totals,
    /// Since the last report: metres driven, vehicle-turns, vehicle-turns
    /// spent standing, trips completed here.
    driven: f32,
    vehicle_turns: u32,
    standing: u32,
    trips: u32,
}

#[kay::actor]
impl Lane {
    pub fn spawn(id: LaneID, home: u8, to: u32, to_machine: u8, dir: u8, _: &mut World) -> Lane {
        Lane {
            id,
            home,
            to,
            to_machine,
            dir,
            green: false,
            next: [id; 4],
            exits: 0,
            places: CVec::new(),
            arriving: CVec::new(),
            last_second: Totals::default(),
            driven: 0.0,
            vehicle_turns: 0,
            standing: 0,
            trips: 0,
        }
    }

    /// Tells the lane which lanes leave its end (sent once, at setup).
    pub fn connect(&mut self, next: [LaneID; 4], exits: u8, _: &mut World) {
        self.next = next;
        self.exits = exits;
    }

    /// A vehicle that left its last lane in turn `crossed` joins the back
    /// of the queue at the lane's tick two turns later, with the others of
    /// that turn in the order of their serial numbers. That a crossing
    /// takes the same time and lands in the same order wherever the lanes
    /// are (on this machine: the message arrives in the same turn; from
    /// another machine: in the next) makes the city's figures the same on
    /// any number of machines.
    pub fn enter(
        &mut self,
        vehicle: VehicleID,
        dest: u32,
        serial: u32,
        crossed: u64,
        _: &mut World,
    ) {
        self.arriving.push(Arrival {
            vehicle,
            dest,
            serial,
            crossed,
        });
    }

    /// The signal at the lane's end changed.
    pub fn signal(&mut self, green: bool, _: &mut World) {
        self.green = green;
    }

    /// The per-turn broadcast: every vehicle drives as far as the one
    /// ahead (or the stop line) lets it; on green, the first ones cross
    /// and go on to their next lane (or arrive).
    pub fn tick(&mut self, world: &mut World) {
        let now = world.current_turn();
        if !self.arriving.is_empty() {
            self.admit(now);
        }
        self.drive(world);
        if now.is_multiple_of(REPORT_TURNS) && self.home == world.machine().0 {
            self.close_second();
        }
    }

    /// This lane's figures of the last simulated second: a request, asked
    /// of every lane at once each second (a map-reduce: see `City::step`).
    /// Lanes report on their home machine only (their copies elsewhere
    /// stay empty).
    pub fn figures(&self, _: &mut World) -> Totals {
        self.last_second
    }
}

impl Lane {
    /// Moves the vehicles, and lets the first ones cross on green.
    fn drive(&mut self, world: &mut World) {
        if self.places.is_empty() {
            return;
        }
        let mut limit = LANE_LENGTH;
        let mut driven = 0.0;
        let mut standing = 0;
        for place in self.places.as_mut_slice() {
            let to = (place.pos + MAX_STEP).min(limit).max(place.pos);
            driven += to - place.pos;
            standing += u32::from(to - place.pos < 0.5);
            place.pos = to;
            limit = to - GAP;
        }
        self.driven += driven;
        self.standing += standing;
        self.vehicle_turns += self.places.len() as u32;
        if !self.green {
            return;
        }
        for _ in 0..CROSSINGS_PER_TURN {
            match self.places.first() {
                Some(lead) if lead.pos >= LANE_LENGTH => {}
                _ => break,
            }
            let Place {
                vehicle,
                dest,
                serial,
                ..
            } = self.places.remove(0);
            let here = world.machine().0;
            match heading(self.to, dest) {
                None => {
                    self.trips += 1;
                    vehicle.arrived(self.to, self.next, self.exits, self.to_machine, world);
                }
                Some(dir) if self.to_machine == here => {
                    let turn = world.current_turn();
                    self.next[dir as usize].enter(vehicle, dest, serial, turn, world);
                }
                Some(dir) => {
                    let lane = lane_on(self.next[dir as usize], self.to_machine);
                    vehicle.migrate(lane, dest, world.current_turn(), world);
                }
            }
        }
    }

    /// Takes the figures since the last second as the last second's.
    fn close_second(&mut self) {
        self.last_second = Totals {
            vehicles: self.places.len() as u64,
            vehicle_turns: u64::from(self.vehicle_turns),
            standing: u64::from(self.standing),
            driven_mm: (f64::from(self.driven) * 1000.0).round() as u64,
            trips: u64::from(self.trips),
            reports: 1,
        };
        self.driven = 0.0;
        self.vehicle_turns = 0;
        self.standing = 0;
        self.trips = 0;
    }
}

impl Lane {
    /// Moves the vehicles that crossed two turns ago or earlier (before
    /// turn `now - 1`) from `arriving` to the back of the queue, by serial.
    fn admit(&mut self, now: u64) {
        let mut due: Vec<Arrival> = self
            .arriving
            .iter()
            .filter(|a| a.crossed + 2 <= now)
            .copied()
            .collect();
        if due.is_empty() {
            return;
        }
        self.arriving.retain(|a| a.crossed + 2 > now);
        due.sort_unstable_by_key(|a| a.serial);
        for a in due {
            let pos = match self.places.last() {
                Some(last) => (last.pos - GAP).min(0.0),
                None => 0.0,
            };
            self.places.push(Place {
                vehicle: a.vehicle,
                dest: a.dest,
                pos,
                serial: a.serial,
            });
        }
    }
}

// ---------------------------------------------------------------- intersections

/// An intersection with a signal: east–west and north–south get green in
/// turn, each for `PHASE_TURNS` (a timer in simulation time switches it).
#[derive(Compact, Clone)]
pub struct Intersection {
    id: IntersectionID,
    at: u32,
    /// 0: east–west green; 1: north–south green.
    phase: u8,
    switches: u32,
    /// The lanes that end here, by the direction they drive, and which
    /// exist.
    incoming: [LaneID; 4],
    entries: u8,
}

#[kay::actor]
impl Intersection {
    /// The intersection at `at`, where the lanes `incoming` end (by the
    /// direction they drive; bit `dir` of `entries` says which exist). It
    /// sets their signals at once.
    pub fn spawn(
        id: IntersectionID,
        at: u32,
        incoming: [LaneID; 4],
        entries: u8,
        world: &mut World,
    ) -> Intersection {
        // Neighbours start at different points of the cycle (a green wave
        // would need more care; this just spreads the switches).
        let (x, y) = unpack(at);
        let intersection = Intersection {
            id,
            at,
            phase: ((x + y) % 2) as u8,
            switches: 0,
            incoming,
            entries,
        };
        intersection.set_signals(world);
        // The first switch comes after what is left of a phase that began
        // `offset` turns ago; then one every `PHASE_TURNS`.
        let offset = (x * 7 + y * 3) % u32::from(PHASE_TURNS);
        let first = u64::from(u32::from(PHASE_TURNS) - offset);
        world.after(first, |world| id.switch(world));
        intersection
    }

    /// The signal's timer: the other direction gets green.
    pub fn switch(&mut self, world: &mut World) {
        self.phase ^= 1;
        self.switches += 1;
        self.set_signals(world);
        if self.switches == 1 {
            let id = self.id;
            world.every(u64::from(PHASE_TURNS), |world| id.switch(world));
        }
    }
}

impl Intersection {
    fn set_signals(&self, world: &mut World) {
        for dir in [EAST, NORTH, WEST, SOUTH] {
            if self.entries & (1 << dir) != 0 {
                let east_west = dir == EAST || dir == WEST;
                let green = east_west == (self.phase == 0);
                self.incoming[dir as usize].signal(green, world);
            }
        }
    }
}

// ---------------------------------------------------------------- statistics

/// Figures summed over every lane since the last report (see
/// `Lane::figures`): integers, so that their sum is the same in any order,
/// on any number of machines.
#[derive(Compact, Clone, Copy, Default, Debug, PartialEq, Eq, Hash)]
pub struct Totals {
    /// Vehicles on lanes at the reports.
    pub vehicles: u64,
    pub vehicle_turns: u64,
    pub standing: u64,
    /// Millimetres driven.
    pub driven_mm: u64,
    pub trips: u64,
    /// Lanes that reported.
    pub reports: u64,
}

impl kay::Combine for Totals {
    fn combine(&mut self, other: Totals) {
        *self = *self + other;
    }
}

impl std::ops::Add for Totals {
    type Output = Totals;
    fn add(self, o: Totals) -> Totals {
        Totals {
            vehicles: self.vehicles + o.vehicles,
            vehicle_turns: self.vehicle_turns + o.vehicle_turns,
            standing: self.standing + o.standing,
            driven_mm: self.driven_mm + o.driven_mm,
            trips: self.trips + o.trips,
            reports: self.reports + o.reports,
        }
    }
}

impl Totals {
    /// Average speed in km/h.
    pub fn avg_speed_kmh(&self) -> f64 {
        if self.vehicle_turns == 0 {
            return 0.0;
        }
        self.driven_mm as f64 / 1000.0 / (self.vehicle_turns as f64 * f64::from(SECONDS_PER_TURN))
            * 3.6
    }

    /// The share of vehicle-turns spent standing.
    pub fn waiting_share(&self) -> f64 {
        if self.vehicle_turns == 0 {
            return 0.0;
        }
        self.standing as f64 / self.vehicle_turns as f64
    }
}

// ---------------------------------------------------------------- the city

/// How big a city to build.
#[derive(Clone, Debug)]
pub struct CityConfig {
    /// Cars (buses come on top).
    pub cars: usize,
    /// Intersections east–west and north–south.
    pub width: u32,
    pub height: u32,
    /// Worker threads.
    pub threads: usize,
    pub seed: u64,
    /// Bus lines (each a loop around a rectangle of blocks, 10 buses each).
    pub bus_lines: u32,
    /// The machines the city is split over (their addresses; empty: this
    /// one alone), each owning a band of columns, and this machine's index.
    pub machines: Vec<std::net::SocketAddr>,
    pub machine: u8,
}

impl Default for CityConfig {
    fn default() -> Self {
        CityConfig {
            cars: 1_000_000,
            width: 150,
            height: 150,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            seed: 1,
            bus_lines: 4,
            machines: Vec::new(),
            machine: 0,
        }
    }
}

/// What one turn did.
#[derive(Clone, Copy, Debug, Default)]
pub struct TurnFigures {
    /// Messages handled: records taken from inboxes, plus one per instance a
    /// broadcast reached.
    pub messages: usize,
    /// The last second's totals, on turns that end a simulated second.
    pub second: Option<Totals>,
}

/// A map-reduce of the lanes' figures in flight.
type Report = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Totals, ReplyError>>>>;

/// A running city: the actor system and what the driver needs.
pub struct City {
    pub system: ActorSystem,
    world: World,
    /// The figures of the seconds asked for and not answered yet (the
    /// first machine asks; see `step`).
    reports: std::collections::VecDeque<Report>,
    pub config: CityConfig,
    pub turn: u64,
    pub lanes: usize,
    pub intersections: usize,
    /// Buses and cars that started on this machine.
    pub buses: usize,
    pub cars: usize,
}

/// The turns building a city of `cars` cars takes (the city's turn 0 is
/// the system's turn `build_turns`).
pub fn build_turns(cars: usize) -> u64 {
    3 + cars.div_ceil(CAR_BATCH) as u64
}

/// Cars spawned per turn while building.
const CAR_BATCH: usize = 1 << 16;

/// Registers the city's classes and trait.
pub fn register(system: &mut ActorSystem) {
    system.register::<Lane>();
    system.register::<Intersection>();
    system.register::<Car>();
    system.register::<Bus>();
    system.register_combine::<Totals>();
    system.register_trait::<dyn Vehicle>();
}

impl City {
    /// Builds the grid, its signals, the buses and the cars (spawned in
    /// batches, so that spawn messages never pile up).
    pub fn new(config: CityConfig) -> City {
        let system = ActorSystem::new(Self::system_config(&config));
        Self::build(config, system)
    }

    /// As [`new`](Self::new), with the system's instance stores in
    /// mmap'ed files under `dir` and its snapshots there (see
    /// [`snapshot`](Self::snapshot) and [`resume`](Self::resume)).
    pub fn with_storage(
        config: CityConfig,
        dir: &std::path::Path,
    ) -> Result<City, kay::PersistError> {
        let system = ActorSystem::with_storage(dir, Self::system_config(&config))?;
        Ok(Self::build(config, system))
    }

    /// Resumes the newest snapshot in `dir` (written by
    /// [`snapshot`](Self::snapshot) of a city of the same `config`: cars,
    /// size and seed), instead of building the city.
    ///
    /// A city over several machines resumes with every machine loading its
    /// own snapshot of the same turn (see `kay::persist`).
    pub fn resume(config: CityConfig, dir: &std::path::Path) -> Result<City, String> {
        let networked = config.machines.len() > 1;
        let mut system = ActorSystem::with_storage(dir, Self::system_config(&config))
            .map_err(|e| e.to_string())?;
        register(&mut system);
        let loaded = system
            .load()
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("no snapshot in {}", dir.display()))?;
        let (w, h) = (config.width, config.height);
        let lanes = (2 * (w * (h - 1) + h * (w - 1))) as usize;
        // (Over several machines, each holds the cars in its band now.)
        let cars = system.instance_count::<Car>();
        if (!networked && cars != config.cars) || system.instance_count::<Lane>() != lanes {
            return Err(format!(
                "the snapshot holds {cars} cars and {} lanes; resume with the --agents and --size it was written with",
                system.instance_count::<Lane>()
            ));
        }
        let built = build_turns(config.cars);
        let turn = loaded
            .turn
            .checked_sub(built)
            .ok_or("the snapshot was taken while the city was being built")?;
        let world = system.world();
        Ok(City {
            intersections: system.instance_count::<Intersection>(),
            buses: system.instance_count::<Bus>(),
            system,
            world,
            reports: Default::default(),
            config,
            turn,
            lanes,
            cars,
        })
    }

    /// Writes a snapshot of the whole city (a city made by
    /// [`with_storage`](Self::with_storage) or [`resume`](Self::resume)).
    pub fn snapshot(&mut self) -> Result<kay::SnapshotReport, kay::PersistError> {
        self.system.snapshot()
    }

    fn system_config(config: &CityConfig) -> Config {
        let regions = config.machines.len().max(1) as u32;
        let net =
            (regions > 1).then(|| kay::net::NetConfig::new(config.machines.clone(), "kay's city"));
        Config {
            threads: config.threads,
            machine: MachineID(config.machine),
            net,
            ..Config::default()
        }
    }

    /// Builds the city in `system` (see [`new`](Self::new)).
    fn build(config: CityConfig, mut system: ActorSystem) -> City {
        assert!(
            config.width >= 2 && config.height >= 2,
            "the grid needs at least 2 × 2 intersections"
        );
        let regions = config.machines.len().max(1) as u32;
        let me = config.machine;
        register(&mut system);
        let mut world = system.world();
        let (w, h) = (config.width, config.height);
        let size = pack(w, h);
        // Machine `m` owns the intersections of the `m`-th band of columns,
        // and the lanes that start there (every machine builds the whole
        // grid, so that lane IDs agree; lanes of other bands stay empty).
        let owner = |x: u32| (x * regions / w) as u8;
        // Lanes: one from every intersection in every direction that has
        // a neighbour, indexed by (start, direction).
        let at = |x: u32, y: u32| (y * w + x) as usize;
        let mut lanes: Vec<[Option<LaneID>; 4]> = vec![[None; 4]; (w * h) as usize];
        let mut lane_list = Vec::new();
        for y in 0..h {
            for x in 0..w {
                for dir in [EAST, NORTH, WEST, SOUTH] {
                    if let Some((nx, ny)) = neighbour(x, y, dir, w, h) {
                        let home = owner(x);
                        let lane = LaneID::spawn(home, pack(nx, ny), owner(nx), dir, &mut world);
                        lanes[at(x, y)][dir as usize] = Some(lane);
                        lane_list.push((lane, pack(nx, ny), x));
                    }
                }
            }
        }
        system.turn();
        let placeholder = lane_list[0].0;
        let mut intersections = 0;
        for y in 0..h {
            for x in 0..w {
                // The lanes leaving (x, y) are the next lanes of every lane
                // arriving at (x, y).
                let mut next = [placeholder; 4];
                let mut exits = 0u8;
                for dir in 0..4 {
                    if let Some(lane) = lanes[at(x, y)][dir] {
                        next[dir] = lane;
                        exits |= 1 << dir;
                    }
                }
                let mut incoming = [placeholder; 4];
                let mut entries = 0u8;
                for dir in [EAST, NORTH, WEST, SOUTH] {
                    // The lane driving in `dir` into (x, y) starts at the
                    // neighbour in the opposite direction.
                    let back = (dir + 2) % 4;
                    if let Some((fx, fy)) = neighbour(x, y, back, w, h) {
                        let lane = lanes[at(fx, fy)][dir as usize].expect("lanes both ways");
                        lane.connect(next, exits, &mut world);
                        incoming[dir as usize] = lane;
                        entries |= 1 << dir;
                    }
                }
                IntersectionID::spawn(pack(x, y), incoming, entries, &mut world);
                intersections += 1;
            }
        }
        system.turn();
        // Bus lines: loops around rectangles of blocks.
        let mut rng = config.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut buses = 0;
        for line in 0..config.bus_lines {
            let (x0, y0) = (
                (next_random(&mut rng) % u64::from(w - 1)) as u32,
                (next_random(&mut rng) % u64::from(h - 1)) as u32,
            );
            let x1 = (x0 + 3 + line % 5).min(w - 1);
            let y1 = (y0 + 3 + line % 4).min(h - 1);
            let stops: CVec<u32> =
                vec![pack(x0, y0), pack(x1, y0), pack(x1, y1), pack(x0, y1)].into();
            for bus in 0..10u32 {
                let serial = u32::MAX - (line * 10 + bus);
                let first = bus % 4;
                let (sx, sy) = unpack(stops[((first + 3) % 4) as usize]);
                let dest = stops[first as usize];
                let dir = heading(pack(sx, sy), dest).expect("stops differ");
                let lane = lanes[at(sx, sy)][dir as usize].expect("a lane towards the stop");
                if owner(sx) == me {
                    BusID::spawn(serial, lane, stops.clone(), first, &mut world);
                    buses += 1;
                }
            }
        }
        // Cars: on random lanes, heading a few blocks on, in batches.
        let mut spawned = 0;
        let mut cars = 0;
        while spawned < config.cars {
            for _ in 0..CAR_BATCH.min(config.cars - spawned) {
                // A third of the cars start nearer the centre (each
                // coordinate the mean of two uniform draws), so the city
                // is busier downtown; the rest start anywhere.
                let (lane, end, start) = if next_random(&mut rng).is_multiple_of(3) {
                    let mut coordinate = |n: u32| {
                        let a = next_random(&mut rng) % u64::from(n);
                        let b = next_random(&mut rng) % u64::from(n);
                        ((a + b) / 2) as u32
                    };
                    let (x, y) = (coordinate(w), coordinate(h));
                    let dir = (next_random(&mut rng) % 4) as u8;
                    match (lanes[at(x, y)][dir as usize], neighbour(x, y, dir, w, h)) {
                        (Some(lane), Some((ex, ey))) => (lane, pack(ex, ey), x),
                        // At the grid's edge, the lane back the other way.
                        _ => {
                            let back = (dir + 2) % 4;
                            let lane = lanes[at(x, y)][back as usize]
                                .expect("a lane one way or the other");
                            let (ex, ey) = neighbour(x, y, back, w, h).expect("its end");
                            (lane, pack(ex, ey), x)
                        }
                    }
                } else {
                    lane_list[(next_random(&mut rng) % lane_list.len() as u64) as usize]
                };
                let dest = next_destination(end, size, &mut rng);
                let seed = next_random(&mut rng);
                if owner(start) == me {
                    CarID::spawn(spawned as u32, lane, dest, size, seed, &mut world);
                    cars += 1;
                }
                spawned += 1;
            }
            system.turn();
        }
        system.turn();
        debug_assert_eq!(system.current_turn(), build_turns(config.cars));
        City {
            system,
            world,
            reports: Default::default(),
            config,
            turn: 0,
            lanes: lane_list.len(),
            intersections,
            buses,
            cars,
        }
    }

    /// One turn: every lane and every car are ticked (two broadcasts;
    /// the signals switch on timers). Every simulated second the first
    /// machine asks every lane for its figures, on every machine: one
    /// map-reduce, whose answer comes in the same turn on one machine and
    /// in the next on several.
    pub fn step(&mut self) -> TurnFigures {
        self.turn += 1;
        let world = &mut self.world;
        LaneID::local_broadcast(world).tick(world);
        CarID::local_broadcast(world).tick(world);
        // Asked in the turn whose tick ends a second (when lanes take their
        // figures; on several machines they answer in the next turn, which
        // ends none, so they give the same figures).
        let ends_second = (self.system.current_turn() + 1).is_multiple_of(REPORT_TURNS);
        if ends_second && self.config.machine == 0 {
            let lanes = LaneID::global_broadcast(world);
            let figures = lanes.figures(world).reduce(Totals::default(), |a, b| a + b);
            self.reports.push_back(Box::pin(figures));
        }
        // Every broadcast record reaches every instance of its class: count
        // the deliveries (one per lane and car), not the records (one per
        // shard).
        let delivered = self.lanes + self.system.instance_count::<Car>();
        let messages = self.system.turn().handled + delivered;
        TurnFigures {
            messages,
            second: self.answered(),
        }
    }

    /// The figures of the oldest second asked for, if they came.
    fn answered(&mut self) -> Option<Totals> {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        let report = self.reports.front_mut()?;
        match report.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(totals) => {
                self.reports.pop_front();
                Some(totals.expect("every lane answers"))
            }
            std::task::Poll::Pending => None,
        }
    }

    /// Runs quiet turns (no ticks: nothing moves) until the figures of
    /// every second asked for came, on every machine alike (two turns:
    /// the others' answers take one); returns them.
    pub fn finish(&mut self) -> Vec<Totals> {
        let mut seconds = Vec::new();
        for _ in 0..2 {
            self.system.turn();
            while let Some(totals) = self.answered() {
                seconds.push(totals);
            }
        }
        seconds
    }

    /// A hash of every actor's state (in ID order): the same seed gives the
    /// same checksum on any thread count.
    pub fn checksum(&self) -> u64 {
        let mut hash = Fnv::default();
        let mut lanes = self.system.with_instances::<Lane, _>(|l| {
            (
                l.id.0,
                l.green,
                l.places
                    .iter()
                    .map(|p| (p.vehicle.0, p.dest, p.pos.to_bits()))
                    .collect::<Vec<_>>(),
                l.trips,
            )
        });
        lanes.sort_unstable_by_key(|l| l.0);
        for (id, green, places, trips) in lanes {
            hash.raw(id);
            hash.u64(u64::from(green));
            hash.u64(u64::from(trips));
            for (vehicle, dest, pos) in places {
                hash.raw(vehicle);
                hash.u64(u64::from(dest) << 32 | u64::from(pos));
            }
        }
        let mut cars = self
            .system
            .with_instances::<Car, _>(|c| (c.id.0, c.trips, c.turns, c.rng));
        cars.sort_unstable_by_key(|c| c.0);
        for (id, trips, turns, rng) in cars {
            hash.raw(id);
            hash.u64(u64::from(trips) << 32 | u64::from(turns));
            hash.u64(rng);
        }
        let mut signals = self
            .system
            .with_instances::<Intersection, _>(|i| (i.id.0, i.phase, i.switches));
        signals.sort_unstable_by_key(|i| i.0);
        for (id, phase, switches) in signals {
            hash.raw(id);
            hash.u64(u64::from(phase) << 32 | u64::from(switches));
        }
        let mut buses = self
            .system
            .with_instances::<Bus, _>(|b| (b.id.0, b.next_stop, b.trips));
        buses.sort_unstable_by_key(|b| b.0);
        for (id, stop, trips) in buses {
            hash.raw(id);
            hash.u64(u64::from(stop) << 32 | u64::from(trips));
        }
        hash.0
    }

    /// Vehicles on each lane, with the lane's end and direction (for maps).
    pub fn lane_loads(&self) -> Vec<(u32, u8, usize)> {
        self.system
            .with_instances::<Lane, _>(|l| (l.to, l.dir, l.places.len()))
    }

    /// Trips completed by all cars so far.
    pub fn car_trips(&self) -> u64 {
        self.system
            .with_instances::<Car, _>(|c| u64::from(c.trips))
            .iter()
            .sum()
    }
}

/// FNV-1a over 64-bit words.
#[derive(Clone, Copy)]
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn u64(&mut self, v: u64) {
        for byte in v.to_le_bytes() {
            self.0 ^= u64::from(byte);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn raw(&mut self, id: RawID) {
        self.u64(
            u64::from(id.instance) << 32
                | u64::from(id.type_id.get()) << 16
                | u64::from(id.version),
        );
    }
}
