//! The code the kay macros generate uses absolute paths only: it compiles in
//! a module without the implicit prelude, next to items that shadow every
//! name it could otherwise pick up.

#![allow(missing_docs)]

#[no_implicit_prelude]
mod no_prelude {
    // Items that shadow prelude, crate and runtime names the generated code
    // must not rely on.
    #[allow(dead_code)]
    pub mod core {}
    #[allow(dead_code)]
    pub mod kay {}
    #[allow(dead_code)]
    pub mod compact {}
    #[allow(dead_code)]
    pub mod inventory {}
    #[allow(dead_code)]
    pub struct Option;
    #[allow(dead_code)]
    pub struct Result;
    #[allow(dead_code)]
    pub struct Clone;
    #[allow(dead_code)]
    pub struct Copy;
    #[allow(dead_code)]
    pub struct From;
    #[allow(dead_code)]
    pub struct Compact;
    #[allow(dead_code)]
    pub struct Actor;
    #[allow(dead_code)]
    pub struct ActorSystem;
    #[allow(dead_code)]
    pub struct ClassSetup;
    #[allow(dead_code)]
    pub struct TypedID;
    #[allow(dead_code)]
    pub struct RawID;
    #[allow(dead_code)]
    pub struct Reply;
    #[allow(dead_code)]
    pub struct ReplyTo;
    #[allow(dead_code)]
    pub struct TypeId;
    #[allow(dead_code)]
    pub struct TraitImpl;
    #[allow(dead_code, non_camel_case_types)]
    pub struct str;
    #[allow(dead_code, non_camel_case_types)]
    pub struct u32;
    // Constants and unit structs would turn a binding of the same name
    // into a pattern: generated bindings must not see them. (Except
    // `world`, the name of the generated ID methods' last parameter, as in
    // the user's own handlers, which such a constant would break as well.)
    #[allow(dead_code, non_camel_case_types)]
    pub struct msg;
    #[allow(dead_code, non_upper_case_globals)]
    pub const class: ::core::primitive::u8 = 0;
    #[allow(dead_code, non_camel_case_types)]
    pub struct actor;
    #[allow(dead_code, non_upper_case_globals)]
    pub const id: ::core::primitive::u8 = 0;
    #[allow(dead_code, non_upper_case_globals)]
    pub const result: ::core::primitive::u8 = 0;
    #[allow(dead_code, non_camel_case_types)]
    pub struct to;
    #[allow(dead_code, non_camel_case_types)]
    pub struct reply;
    #[allow(dead_code, non_upper_case_globals)]
    pub const raw: ::core::primitive::u8 = 0;
    #[allow(dead_code, non_upper_case_globals)]
    pub const f: ::core::primitive::u8 = 0;
    #[allow(dead_code, non_upper_case_globals)]
    pub const s: ::core::primitive::u8 = 0;

    #[derive(::kay::Compact, ::core::clone::Clone)]
    pub struct Thing {
        id: ThingID,
        pub n: ::core::primitive::u32,
        pub seen: ::kay::CVec<::core::primitive::u32>,
    }

    #[::kay::actor_trait]
    pub trait Poke {
        fn poke(&mut self, by: ::core::primitive::u32, world: &mut ::kay::World);
        fn poke_all(&mut self, by: &::kay::CVec<::core::primitive::u32>, world: &mut ::kay::World);
        fn poked(&mut self, world: &mut ::kay::World) -> ::core::primitive::u32;
    }

    #[::kay::actor]
    impl Thing {
        pub fn spawn(me: ThingID, n: ::core::primitive::u32, _: &mut ::kay::World) -> Self {
            Thing {
                id: me,
                n,
                seen: ::kay::CVec::new(),
            }
        }

        /// A message argument named `world`, next to the generated `world` parameter.
        pub fn add(
            &mut self,
            world: ::core::primitive::u32,
            items: &::kay::CVec<::core::primitive::u32>,
            w: &mut ::kay::World,
        ) {
            let _ = w;
            self.n += world;
            for m in items.iter() {
                self.seen.push(*m);
            }
        }

        pub fn get(&self, _: &mut ::kay::World) -> ::core::primitive::u32 {
            self.n
        }

        pub fn stop(&mut self, _: &mut ::kay::World) -> ::kay::Fate {
            ::kay::Fate::Die
        }

        #[essential]
        pub fn keep_going(&mut self, _: &mut ::kay::World) {}
    }

    #[::kay::implements]
    impl Poke for Thing {
        fn poke(&mut self, by: ::core::primitive::u32, _: &mut ::kay::World) {
            self.n += by;
        }
        fn poke_all(&mut self, by: &::kay::CVec<::core::primitive::u32>, _: &mut ::kay::World) {
            for b in by.iter() {
                self.n += *b;
            }
        }
        fn poked(&mut self, _: &mut ::kay::World) -> ::core::primitive::u32 {
            self.n
        }
    }
}

use kay::prelude::*;
use no_prelude::{Poke, PokeID, Thing, ThingID};

#[test]
fn macros_work_without_the_implicit_prelude() {
    let mut system = ActorSystem::new(Config::default());
    system.register::<Thing>();
    system.register_trait::<dyn Poke>();
    let mut world = system.world();
    let thing = ThingID::spawn(1, &mut world);
    thing.add(2, vec![7].into(), &mut world);
    let poke: PokeID = thing.into();
    poke.poke(3, &mut world);
    PokeID::local_broadcast(&mut world).poke_all(vec![1, 1].into(), &mut world);
    thing.keep_going(&mut world);
    system.process_all_messages();
    assert_eq!(system.block_on(thing.get(&mut world)), Ok(8));
    assert_eq!(system.block_on(poke.poked(&mut world)), Ok(8));
    assert_eq!(
        system.with_instances::<Thing, _>(|t| t.seen.to_vec()),
        vec![vec![7]]
    );
    ThingID::local_broadcast(&mut world).stop(&mut world);
    system.process_all_messages();
    assert_eq!(system.instance_count::<Thing>(), 0);
}
