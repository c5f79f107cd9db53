//! What `#[kay::actor]`, `#[kay::actor_trait]` and `#[kay::implements]`
//! generate: ID types, send methods, spawners, requests, `&self` and `&T`
//! handlers, `Fate`, broadcasts, trait dispatch and trait broadcasts.

#![allow(missing_docs)]

use std::collections::HashSet;

use kay::prelude::*;
use kay::{RawID, ReplyError};

// ---------------------------------------------------------------- a class

#[derive(Compact, Clone, Debug)]
pub struct Tally {
    id: TallyID,
    total: u64,
    log: CVec<u64>,
    name: CString,
    pings: u32,
}

#[kay::actor]
impl Tally {
    /// The usual spawner.
    pub fn spawn(id: TallyID, start: u64, world: &mut World) -> Tally {
        Tally::spawn_named(id, start, "tally".into(), world)
    }

    /// A second spawner, with `Self` as the return type.
    pub fn spawn_named(id: TallyID, start: u64, name: CString, _: &mut World) -> Self {
        Tally {
            id,
            total: start,
            log: CVec::new(),
            name,
            pings: 0,
        }
    }

    pub fn add(&mut self, amount: u64, _: &mut World) {
        self.total += amount;
        self.log.push(amount);
    }

    /// Takes its argument by reference into the queued message.
    pub fn add_all(&mut self, amounts: &CVec<u64>, _: &mut World) {
        for a in amounts.iter() {
            self.record(*a);
        }
    }

    /// Several arguments, patterns and unusual names that the generated code also uses.
    pub fn mixed(
        &mut self,
        (a, b): (u64, u64),
        _: u32,
        world: u64,
        msg: &CVec<u64>,
        actor: COption<u64>,
        w: &mut World,
    ) {
        let _ = w;
        self.total += a * b + world + msg.iter().sum::<u64>() + actor.into_option().unwrap_or(0);
    }

    /// `Self` as an argument type means the class.
    pub fn take_total_of(&mut self, other: Self, _: &mut World) {
        self.total = other.total;
    }

    /// Sends to another actor from a handler.
    pub fn forward(&mut self, to: TallyID, amount: u64, world: &mut World) {
        to.add(amount, world);
    }

    /// Sends to itself: the ID is an ordinary value.
    pub fn ping_self(&mut self, times: u32, world: &mut World) {
        self.pings += 1;
        if times > 1 {
            self.id.ping_self(times - 1, world);
        }
    }

    pub fn total(&self, _: &mut World) -> u64 {
        self.total
    }

    /// A request answering with a compact container.
    pub fn log(&self, _: &mut World) -> CVec<u64> {
        self.log.clone()
    }

    pub fn name(&self, _: &mut World) -> CString {
        self.name.clone()
    }

    /// A request taking arguments.
    pub fn total_plus(&self, extra: u64, also: &CVec<u64>, _: &mut World) -> u64 {
        self.total + extra + also.iter().sum::<u64>()
    }

    /// Dies if the total is above `limit`.
    pub fn die_above(&mut self, limit: u64, _: &mut World) -> Fate {
        if self.total > limit {
            Fate::Die
        } else {
            Fate::Live
        }
    }

    #[essential]
    pub fn essential_add(&mut self, amount: u64, world: &mut World) {
        let _ = world;
        self.record(amount);
    }

    /// Private handlers get private send methods.
    fn secret(&mut self, _: &mut World) {
        self.total = 4242;
    }

    pub fn call_secret(&mut self, world: &mut World) {
        self.id.secret(world);
    }

    #[cfg(any())]
    pub fn compiled_out(&mut self, _: NotAType, _: &mut World) {}

    /// Not a handler: an associated function that does not start with `spawn`.
    pub fn helper(x: u64) -> u64 {
        x * 2
    }

    /// Not a handler either: an associated constant.
    pub const LIMIT: u64 = 1000;
}

impl Tally {
    /// Helpers live in plain impl blocks.
    fn record(&mut self, amount: u64) {
        self.total += amount;
        self.log.push(amount);
    }
}

fn system() -> (ActorSystem, World) {
    let mut system = ActorSystem::new(Config::default());
    system.register::<Tally>();
    system.register::<Listener>();
    system.register::<OtherListener>();
    let world = system.world();
    (system, world)
}

fn ask<T: 'static>(system: &mut ActorSystem, reply: Reply<T>) -> T {
    system.block_on(reply).expect("an answer")
}

#[test]
fn ids_are_8_byte_copy_newtypes_with_text_forms() {
    assert_eq!(size_of::<TallyID>(), 8);
    assert_eq!(size_of::<ListenerTraitID>(), 8);
    let raw = RawID::new(kay::ShortTypeID::new(0x1F), 0x2A, kay::MachineID(0), 3);
    let id = TallyID::from_raw(raw);
    let copy = id;
    assert_eq!(copy, id);
    assert_eq!(id.as_raw(), raw);
    assert_eq!(id.0, raw);
    assert_eq!(id.to_string(), "1F_2A.3@0");
    assert_eq!(format!("{id:?}"), "TallyID(1F_2A.3@0)");
    assert_eq!("1F_2A.3@0".parse::<TallyID>().unwrap(), id);
    assert!("nope".parse::<TallyID>().is_err());
    let other = TallyID::from_raw(RawID::new(
        kay::ShortTypeID::new(0x1F),
        0x2B,
        kay::MachineID(0),
        3,
    ));
    assert!(id < other);
    assert_eq!(HashSet::from([id, other, id]).len(), 2);
    let trait_id: ListenerTraitID = ListenerID::from_raw(raw).into();
    assert_eq!(trait_id.as_raw(), raw);
    assert_eq!(Tally::helper(2), 4);
    assert_eq!(Tally::LIMIT, 1000);
}

#[test]
fn spawners_handlers_and_requests() {
    let (mut system, mut world) = system();
    let a = TallyID::spawn(10, &mut world);
    let b = TallyID::spawn_named(100, "b".into(), &mut world);
    a.add(5, &mut world);
    a.add_all(vec![1, 2, 3].into(), &mut world);
    b.forward(a, 7, &mut world);
    system.process_all_messages();
    assert_eq!(ask(&mut system, a.total(&mut world)), 10 + 5 + 6 + 7);
    assert_eq!(
        ask(&mut system, a.log(&mut world)).to_vec(),
        vec![5, 1, 2, 3, 7]
    );
    assert_eq!(ask(&mut system, b.name(&mut world)).as_str(), "b");
    assert_eq!(ask(&mut system, a.name(&mut world)).as_str(), "tally");
    let also: CVec<u64> = vec![1, 1].into();
    assert_eq!(ask(&mut system, b.total_plus(3, also, &mut world)), 105);

    a.mixed((2, 3), 9, 10, vec![1, 2].into(), Some(4).into(), &mut world);
    system.process_all_messages();
    assert_eq!(ask(&mut system, a.total(&mut world)), 28 + 6 + 10 + 3 + 4);
    let a_copy = system
        .with_instances::<Tally, _>(Clone::clone)
        .into_iter()
        .find(|t| t.id == a);
    b.take_total_of(a_copy.unwrap(), &mut world);
    a.call_secret(&mut world);
    system.process_all_messages();
    assert_eq!(ask(&mut system, a.total(&mut world)), 4242);
    assert_eq!(ask(&mut system, b.total(&mut world)), 51);

    a.ping_self(5, &mut world);
    a.essential_add(8, &mut world);
    system.process_all_messages();
    let tally = system.with_instances::<Tally, _>(|t| (t.id, t.pings, t.total));
    assert!(tally.contains(&(a, 5, 4250)), "{tally:?}");
}

#[test]
fn fate_die_removes_the_actor_and_requests_to_it_fail() {
    let (mut system, mut world) = system();
    let small = TallyID::spawn(1, &mut world);
    let big = TallyID::spawn(500, &mut world);
    TallyID::local_broadcast(&mut world).die_above(100, &mut world);
    system.process_all_messages();
    assert_eq!(system.instance_count::<Tally>(), 1);
    assert_eq!(ask(&mut system, small.total(&mut world)), 1);
    assert_eq!(
        system.block_on(big.total(&mut world)),
        Err(ReplyError::NoRecipient)
    );
}

#[test]
fn broadcasts_reach_every_instance_once() {
    let (mut system, mut world) = system();
    let ids: Vec<TallyID> = (0..100).map(|i| TallyID::spawn(i, &mut world)).collect();
    system.process_all_messages();
    TallyID::local_broadcast(&mut world).add(1000, &mut world);
    TallyID::global_broadcast(&mut world).add_all(vec![1, 1].into(), &mut world);
    system.process_all_messages();
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(ask(&mut system, id.total(&mut world)), i as u64 + 1002);
    }
}

// ---------------------------------------------------------------- a trait

/// An actor trait; its ID is `ListenerTraitID`.
#[kay::actor_trait]
pub trait ListenerTrait {
    fn hear(&mut self, value: u64, world: &mut World);
    fn hear_all(&mut self, values: &CVec<u64>, world: &mut World);
    /// Trait methods can be requests too.
    fn heard(&mut self, world: &mut World) -> u64;
    /// And decide the actor's fate; default bodies are kept.
    fn leave(&mut self, _world: &mut World) -> Fate {
        Fate::Die
    }
    #[essential]
    fn essential_hear(&mut self, value: u64, world: &mut World);
}

#[derive(Compact, Clone)]
pub struct Listener {
    id: ListenerID,
    heard: u64,
}

#[kay::actor]
impl Listener {
    pub fn spawn(id: ListenerID, world: &mut World) -> Listener {
        // Its own ID converts into the trait's ID.
        let me: ListenerTraitID = id.into();
        me.hear(1, world);
        Listener { id, heard: 0 }
    }
}

#[kay::implements]
impl ListenerTrait for Listener {
    fn hear(&mut self, value: u64, _: &mut World) {
        self.heard += value;
    }
    fn hear_all(&mut self, values: &CVec<u64>, _: &mut World) {
        self.heard += values.iter().sum::<u64>();
    }
    fn heard(&mut self, _: &mut World) -> u64 {
        self.heard
    }
    fn essential_hear(&mut self, value: u64, world: &mut World) {
        self.hear(value, world);
    }
}

mod elsewhere {
    //! Another class, implementing the trait from another module by path.
    use kay::prelude::*;

    #[derive(Compact, Clone)]
    pub struct OtherListener {
        id: OtherListenerID,
        pub heard: u64,
    }

    #[kay::actor]
    impl OtherListener {
        pub fn spawn(id: OtherListenerID, _: &mut World) -> Self {
            OtherListener { id, heard: 0 }
        }
    }

    #[kay::implements]
    impl super::ListenerTrait for OtherListener {
        fn hear(&mut self, value: u64, _: &mut World) {
            self.heard += 10 * value;
        }
        fn hear_all(&mut self, values: &CVec<u64>, _: &mut World) {
            self.heard += 10 * values.iter().sum::<u64>();
        }
        fn heard(&mut self, _: &mut World) -> u64 {
            self.heard
        }
        fn leave(&mut self, _: &mut World) -> Fate {
            Fate::Live
        }
        fn essential_hear(&mut self, value: u64, _: &mut World) {
            self.heard += 10 * value;
        }
    }
}
use elsewhere::{OtherListener, OtherListenerID};

#[test]
fn trait_messages_dispatch_to_the_concrete_class() {
    let (mut system, mut world) = system();
    let l: ListenerTraitID = ListenerID::spawn(&mut world).into();
    let o: ListenerTraitID = OtherListenerID::spawn(&mut world).into();
    system.process_all_messages();
    for id in [l, o] {
        id.hear(2, &mut world);
        id.hear_all(vec![3, 4].into(), &mut world);
        id.essential_hear(1, &mut world);
    }
    system.process_all_messages();
    assert_eq!(ask(&mut system, l.heard(&mut world)), 1 + 2 + 7 + 1);
    assert_eq!(ask(&mut system, o.heard(&mut world)), 10 * (2 + 7 + 1));
}

#[test]
fn trait_broadcasts_reach_every_implementor() {
    let (mut system, mut world) = system();
    let ls: Vec<ListenerID> = (0..3).map(|_| ListenerID::spawn(&mut world)).collect();
    let os: Vec<OtherListenerID> = (0..2).map(|_| OtherListenerID::spawn(&mut world)).collect();
    system.process_all_messages();
    ListenerTraitID::local_broadcast(&mut world).hear(5, &mut world);
    ListenerTraitID::global_broadcast(&mut world).hear_all(vec![1].into(), &mut world);
    system.process_all_messages();
    for l in &ls {
        let id: ListenerTraitID = (*l).into();
        assert_eq!(ask(&mut system, id.heard(&mut world)), 1 + 5 + 1);
    }
    assert_eq!(
        system.with_instances::<OtherListener, _>(|o| o.heard),
        vec![60, 60]
    );
    assert_eq!(os.len(), 2);

    // The default `leave` kills listeners; `OtherListener` overrides it.
    ListenerTraitID::local_broadcast(&mut world).leave(&mut world);
    system.process_all_messages();
    assert_eq!(system.instance_count::<Listener>(), 0);
    assert_eq!(system.instance_count::<OtherListener>(), 2);
}

#[test]
fn register_trait_is_idempotent_and_optional() {
    let mut system = ActorSystem::new(Config::default());
    let first = system.register_trait::<dyn ListenerTrait>();
    system.register::<Listener>();
    assert_eq!(system.register_trait::<dyn ListenerTrait>(), first);
    let mut world = system.world();
    let l = ListenerID::spawn(&mut world);
    system.process_all_messages();
    let id: ListenerTraitID = l.into();
    assert_eq!(ask(&mut system, id.heard(&mut world)), 1);
}
