//! Registration the system refuses comes back as a `kay::Error` from the
//! `try_` methods (the plain methods panic with the same text), and leaves
//! the system working.

#![allow(missing_docs)]

use kay::{Actor, ActorSystem, ClassSetup, Compact, Config, Error, World};

macro_rules! counter_class {
    ($name:ident, $id:ident) => {
        kay::typed_id!(pub $id);
        #[derive(Compact, Clone)]
        pub struct $name {
            id: $id,
            count: u64,
        }
        impl Actor for $name {
            type ID = $id;
            fn id(&self) -> $id {
                self.id
            }
            fn setup(class: &mut ClassSetup<Self>) {
                class
                    .spawner(|id, _: &Spawn, _: &mut World| $name { id, count: 0 })
                    .handler(|a: &mut $name, _: &Bump, _: &mut World| a.count += 1);
            }
        }
    };
}

#[derive(Compact, Clone)]
pub struct Spawn;
#[derive(Compact, Clone)]
pub struct Bump;

counter_class!(First, FirstID);
counter_class!(Second, SecondID);
counter_class!(Third, ThirdID);

#[test]
fn a_class_registered_twice_is_an_error() {
    let mut system = ActorSystem::new(Config::default());
    assert!(system.try_register::<First>().is_ok());
    let error = system.try_register::<First>().unwrap_err();
    assert!(matches!(error, Error::AlreadyRegistered { name } if name.ends_with("First")));
    assert!(error.to_string().ends_with("First is already registered"));
    let panic = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        system.register::<First>();
    }))
    .unwrap_err();
    assert!(
        panic
            .downcast_ref::<String>()
            .unwrap()
            .ends_with("First is already registered")
    );
}

#[test]
fn an_unregistered_class_is_an_error() {
    let mut system = ActorSystem::new(Config::default());
    system.register::<First>();
    let error = system.try_class::<Second>().err().unwrap();
    assert!(matches!(error, Error::NotRegistered { name } if name.ends_with("Second")));
    assert!(system.try_class::<First>().is_ok());
}

/// 6,000 shards per class: the third class would need 18,000 of the 16,383
/// shards a system has. It is refused; the two registered classes work on.
#[test]
fn too_many_shards_is_an_error_and_the_system_works_on() {
    let mut system = ActorSystem::new(Config {
        shards: 6_000,
        ..Config::default()
    });
    system.register::<First>();
    system.register::<Second>();
    let error = system.try_register::<Third>().unwrap_err();
    assert_eq!(
        error,
        Error::TooManyShards {
            name: std::any::type_name::<Third>(),
            shards: 18_000,
            limit: 16_383,
        }
    );
    assert!(error.to_string().contains("lower Config::shards"));
    let mut world = system.world();
    let first = world.spawn::<First, _>(Spawn);
    let second = world.spawn::<Second, _>(Spawn);
    system.turn();
    world.send(first, Bump);
    world.send(second, Bump);
    system.turn();
    assert_eq!(system.with_instances::<First, _>(|a| a.count), vec![1]);
    assert_eq!(system.with_instances::<Second, _>(|a| a.count), vec![1]);
}
