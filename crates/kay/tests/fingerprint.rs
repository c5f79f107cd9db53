//! The registry's fingerprint: equal for systems that registered the same
//! things in the same order, and a readable first difference otherwise
//! (what a network handshake or a snapshot loader will report).

#![allow(missing_docs)]

use kay::{Actor, ActorSystem, CVec, ClassSetup, Compact, Config, World};

macro_rules! class {
    ($name:ident, $id:ident) => {
        kay::typed_id!(pub $id);
        #[derive(Compact, Clone)]
        pub struct $name {
            id: $id,
            log: CVec<u64>,
        }
        impl Actor for $name {
            type ID = $id;
            fn id(&self) -> $id {
                self.id
            }
            fn setup(class: &mut ClassSetup<Self>) {
                class
                    .spawner(|id, _: &Spawn, _: &mut World| $name { id, log: CVec::new() })
                    .handler(|a: &mut $name, m: &Note, _: &mut World| a.log.push(m.0));
            }
        }
    };
}

#[derive(Compact, Clone)]
pub struct Spawn;
#[derive(Compact, Clone)]
pub struct Note(u64);
#[derive(Compact, Clone)]
pub struct Extra(u32);

class!(Alpha, AlphaID);
class!(Beta, BetaID);

fn system(shards: usize, register: impl FnOnce(&mut ActorSystem)) -> ActorSystem {
    let mut system = ActorSystem::new(Config {
        shards,
        ..Config::default()
    });
    register(&mut system);
    system
}

#[test]
fn the_same_registrations_give_the_same_fingerprint() {
    let register = |s: &mut ActorSystem| {
        s.register::<Alpha>();
        s.register::<Beta>();
    };
    let a = system(4, register).fingerprint();
    let b = system(4, register).fingerprint();
    assert_eq!(a, b);
    assert_eq!(a.hash(), b.hash());
    assert_eq!(a.first_difference(&b), None);
    let lines = a.lines().join("\n");
    assert!(
        lines.starts_with("kay fingerprint v2\nshards 4\n"),
        "{lines}"
    );
    // Classes with their size, dynamic parts and handled messages (the
    // spawner of message 0, the handler of message 1); message types with
    // their sizes.
    assert!(
        lines.contains("class 0 fingerprint::Alpha size 24 dynamic fields {id: AlphaID, log: CVec<u64>} handles [0s,1]"),
        "{lines}"
    );
    assert!(
        lines.contains("class 1 fingerprint::Beta size 24 dynamic fields {id: BetaID, log: CVec<u64>} handles [0s,1]"),
        "{lines}"
    );
    assert!(
        lines.contains("message 0 fingerprint::Spawn size 0 align 1 static"),
        "{lines}"
    );
    assert!(
        lines.contains("message 1 fingerprint::Note size 8 align 8 static fields (u64)"),
        "{lines}"
    );
}

#[test]
fn a_difference_names_the_first_entry_that_differs() {
    let ab = system(4, |s| {
        s.register::<Alpha>();
        s.register::<Beta>();
    })
    .fingerprint();
    let ba = system(4, |s| {
        s.register::<Beta>();
        s.register::<Alpha>();
    })
    .fingerprint();
    assert_ne!(ab.hash(), ba.hash());
    let difference = ab.first_difference(&ba).expect("they differ");
    assert_eq!(difference.at, 2);
    let text = difference.to_string();
    assert!(text.contains("here `class 0 fingerprint::Alpha"), "{text}");
    assert!(text.contains("there `class 0 fingerprint::Beta"), "{text}");

    // One class less: its entry meets the other's first message type.
    let a = system(4, |s| {
        s.register::<Alpha>();
    })
    .fingerprint();
    let text = ab.first_difference(&a).expect("one more class").to_string();
    assert!(text.contains("here `class 1 fingerprint::Beta"), "{text}");
    assert!(
        text.contains("there `message 0 fingerprint::Spawn"),
        "{text}"
    );

    // One message type more, at the end.
    let more = system(4, |s| {
        s.register::<Alpha>();
        s.register::<Beta>();
        s.name_message::<Extra>("extra");
    })
    .fingerprint();
    let text = more
        .first_difference(&ab)
        .expect("one more message")
        .to_string();
    assert!(
        text.contains("only here: `message 2 fingerprint::Extra size 8 align 4"),
        "{text}"
    );

    let other_shards = system(2, |s| {
        s.register::<Alpha>();
        s.register::<Beta>();
    })
    .fingerprint();
    let difference = ab.first_difference(&other_shards).expect("shards differ");
    assert_eq!(
        (difference.ours, difference.theirs),
        (Some("shards 4"), Some("shards 2"))
    );
}

#[kay::actor_trait]
pub trait Listener {
    fn hear(&mut self, n: u64, world: &mut World);
}

#[derive(Compact, Clone)]
pub struct Ear {
    id: EarID,
    heard: u64,
}

#[kay::actor]
impl Ear {
    pub fn spawn(id: EarID, _: &mut World) -> Ear {
        Ear { id, heard: 0 }
    }
}

#[kay::implements]
impl Listener for Ear {
    fn hear(&mut self, n: u64, _: &mut World) {
        self.heard += n;
    }
}

#[test]
fn traits_list_their_implementors() {
    let fingerprint = system(4, |s| {
        s.register::<Ear>();
        s.register_trait::<dyn Listener>();
    })
    .fingerprint();
    let lines = fingerprint.lines().join("\n");
    assert!(
        lines.contains("trait 1 dyn fingerprint::Listener implemented by [0]"),
        "{lines}"
    );
}
