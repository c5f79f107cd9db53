//! An `External` cannot travel in a message: as a field it does not build
//! (see the `compile_fail` example on `External`); hidden in a container the
//! send panics before anything is written, and the system carries on.

#![allow(missing_docs)]

use std::panic::{AssertUnwindSafe, catch_unwind};

use kay::{Actor, ActorSystem, CVec, ClassSetup, Compact, Config, External, World};

kay::typed_id!(pub HolderID);

#[derive(Compact, Clone)]
pub struct Holder {
    id: HolderID,
    files: u32,
}

#[derive(Compact, Clone)]
pub struct SpawnHolder;

/// An `External` the `PROCESS_LOCAL` constant cannot see (inside a `CVec`).
#[derive(Compact, Clone)]
pub struct Handover {
    files: CVec<External<String>>,
}

impl Actor for Holder {
    type ID = HolderID;
    fn id(&self) -> HolderID {
        self.id
    }
    fn setup(class: &mut ClassSetup<Self>) {
        class
            .spawner(|id, _: &SpawnHolder, _: &mut World| Holder { id, files: 0 })
            .handler(|h: &mut Holder, m: &Handover, _: &mut World| h.files += m.files.len() as u32);
    }
}

fn handover() -> Handover {
    Handover {
        files: vec![External::new(String::from("handle"))].into(),
    }
}

#[test]
fn an_external_hidden_in_a_message_is_refused_before_anything_is_written() {
    for threads in [1, 2] {
        let mut system = ActorSystem::new(Config {
            threads,
            ..Config::default()
        });
        system.register::<Holder>();
        let mut world = system.world();
        let one = world.spawn::<Holder, _>(SpawnHolder);
        world.spawn::<Holder, _>(SpawnHolder);
        system.process_all_messages();

        let everyone = world.local_broadcast::<Holder>();
        for to in [everyone, one] {
            let err = catch_unwind(AssertUnwindSafe(|| world.send(to, handover()))).unwrap_err();
            let text = err.downcast_ref::<String>().unwrap();
            assert!(
                text.contains("External<alloc::string::String> inside a message"),
                "{text}"
            );
        }
        // Nothing was queued, and the world and system work on.
        assert_eq!(system.process_all_messages().handled, 0);
        world.send(everyone, Handover { files: CVec::new() });
        system.process_all_messages();
        assert_eq!(system.with_instances::<Holder, _>(|h| h.files), vec![0, 0]);
        // Outside messages, an External is measured as usual.
        assert_eq!(
            compact::Compact::total_size_bytes(&handover().files),
            16 + 8
        );
    }
}

/// A direct `External` field makes a type process-local (so sending it does
/// not build), through derives, tuples, arrays and options.
#[test]
fn process_local_reaches_through_fields_tuples_arrays_and_options() {
    use compact::{COption, Compact};
    #[derive(Compact, Clone)]
    struct Direct {
        file: External<u8>,
    }
    #[derive(Compact, Clone)]
    #[repr(u8)]
    enum Nested {
        A(u32),
        B((u8, [COption<Direct>; 2])),
    }
    const {
        assert!(Direct::PROCESS_LOCAL);
        assert!(Nested::PROCESS_LOCAL);
        assert!(<Option<External<u8>>>::PROCESS_LOCAL);
        assert!(!Handover::PROCESS_LOCAL);
        assert!(!<(u32, CVec<u8>)>::PROCESS_LOCAL);
    }
}
