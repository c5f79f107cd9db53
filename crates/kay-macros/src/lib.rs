//! The code generation behind `#[kay::actor]`, `#[kay::actor_trait]` and
//! `#[kay::implements]`: users write plain Rust structs, impl blocks and
//! traits; the macros generate typed IDs, one message type per handler, the
//! methods that send those messages, and the registration of every handler.
//!
//! Use the macros through the `kay` crate (`#[kay::actor]`, ...): the
//! generated code names only `::kay::..` and `::core::..` paths, so a crate
//! that depends on `kay` alone needs nothing else.
//!
//! # Example
//!
//! ```
//! use kay::prelude::*;
//!
//! /// An actor class: a `Compact` struct with an `id` field of its ID type.
//! #[derive(Compact, Clone)]
//! pub struct Counter {
//!     id: CounterID,
//!     count: u32,
//!     listeners: CVec<CounterListenerID>,
//! }
//!
//! /// An actor trait: messages that several classes handle.
//! #[kay::actor_trait]
//! pub trait CounterListener {
//!     fn on_count_change(&mut self, new_count: u32, world: &mut World);
//! }
//!
//! #[kay::actor]
//! impl Counter {
//!     /// A spawner: `CounterID::spawn(initial, world)` creates a counter.
//!     pub fn spawn(id: CounterID, initial: u32, _: &mut World) -> Counter {
//!         Counter { id, count: initial, listeners: CVec::new() }
//!     }
//!
//!     /// A handler: `counter_id.add(amount, world)` sends it a message.
//!     pub fn add(&mut self, amount: u32, world: &mut World) {
//!         self.count += amount;
//!         for listener in self.listeners.iter() {
//!             listener.on_count_change(self.count, world);
//!         }
//!     }
//!
//!     pub fn add_listener(&mut self, listener: CounterListenerID, _: &mut World) {
//!         self.listeners.push(listener);
//!     }
//!
//!     /// A request: `counter_id.count(world)` returns a `Reply<u32>`.
//!     pub fn count(&self, _: &mut World) -> u32 {
//!         self.count
//!     }
//! }
//!
//! #[derive(Compact, Clone)]
//! pub struct Screen { id: ScreenID, shown: u32 }
//!
//! #[kay::actor]
//! impl Screen {
//!     pub fn spawn(id: ScreenID, counter: CounterID, world: &mut World) -> Screen {
//!         counter.add_listener(id.into(), world); // ScreenID → CounterListenerID
//!         Screen { id, shown: 0 }
//!     }
//!
//!     pub fn shown(&self, _: &mut World) -> u32 {
//!         self.shown
//!     }
//! }
//!
//! #[kay::implements]
//! impl CounterListener for Screen {
//!     fn on_count_change(&mut self, new_count: u32, _: &mut World) {
//!         self.shown = new_count;
//!     }
//! }
//!
//! let mut system = ActorSystem::new(Config::default());
//! system.register::<Counter>(); // installs every handler and spawner of Counter
//! system.register::<Screen>(); // ... and those of the traits Screen implements
//! let mut world = system.world();
//!
//! let counter = CounterID::spawn(10, &mut world);
//! let screen = ScreenID::spawn(counter, &mut world);
//! system.process_all_messages();
//!
//! counter.add(5, &mut world);
//! system.process_all_messages();
//! assert_eq!(system.block_on(counter.count(&mut world)), Ok(15));
//! assert_eq!(system.block_on(screen.shown(&mut world)), Ok(15));
//!
//! // Broadcasts reach every instance of a class, or every implementor of a trait.
//! CounterListenerID::local_broadcast(&mut world).on_count_change(0, &mut world);
//! system.process_all_messages();
//! assert_eq!(system.block_on(screen.shown(&mut world)), Ok(0));
//! ```
//!
//! # `#[kay::actor] impl Name { .. }`
//!
//! The struct `Name` derives `Compact` and `Clone` and has a field
//! `id: NameID`. The macro goes on one inherent impl block; its methods are
//! classified by their shape:
//!
//! | method | what it is | generated `NameID` method |
//! |---|---|---|
//! | `fn m(&mut self, args.., world: &mut World)` | handler | `id.m(args.., world)` |
//! | `fn m(&self, args.., world: &mut World)` | handler that does not mutate | `id.m(args.., world)` |
//! | `fn m(&mut self, .., world: &mut World) -> Fate` | handler deciding whether the actor lives on | `id.m(args.., world)` |
//! | `fn m(&self, .., world: &mut World) -> T` | request (any other `T: Compact + Send`) | `id.m(args.., world) -> Reply<T>` |
//! | `fn spawn..(id: NameID, args.., world: &mut World) -> Self` | spawner (no receiver, name starts with `spawn`) | `NameID::spawn..(args.., world) -> NameID` |
//! | `#[message] fn m(&mut self, msg: &M, world: &mut World)` | handler of the existing message type `M`, as it is (e.g. the continuation of a request, see `kay::Reply::then_send`, or a message other code sends with `world.send`) | — (send an `M`) |
//! | any other associated function or constant | left alone | — |
//!
//! Arguments are `Compact` values taken by value (`amount: u32`, cloned out
//! of the queued message) or by reference (`history: &CVec<u32>`, a
//! reference into the queued message, no copy); the ID method takes the
//! owned type either way. `#[essential]` on a handler registers it with
//! `ClassSetup::essential_handler` (it still runs after a panic). `#[cfg]`
//! and doc comments of a handler carry over to its ID method. Handlers and
//! spawners (and the methods of `#[kay::implements]` impls) get `#[inline]`
//! unless they carry an inline attribute already: kay inlines each handler
//! into its dispatch loop, as it does a hand-written closure.
//!
//! Generated: the `NameID` type, `impl kay::Actor for Name` (whose `setup`
//! registers every handler and spawner, so `system.register::<Name>()` is
//! all it takes), one hidden message struct per handler, the send methods,
//! and `NameID::local_broadcast(world)` / `NameID::global_broadcast(world)`.
//!
//! # `#[kay::actor_trait] trait X { .. }`
//!
//! Every method of an actor trait is a handler taking `&mut self` (with the
//! same argument and return forms as above; default bodies are kept). The
//! trait is kept as written; generated are the `XID` type, `impl
//! kay::ActorTrait for dyn X`, one message struct per method, send methods on
//! `XID` (a message to an `XID` is handled by the concrete class named in
//! the ID, at run time), and `XID::local_broadcast(world)` /
//! `XID::global_broadcast(world)`, which reach every implementor.
//!
//! # `#[kay::implements] impl X for Name { .. }`
//!
//! Keeps the impl and generates `impl From<NameID> for XID` and the
//! registration of `X`'s handlers on `Name`: `system.register::<Name>()`
//! installs them, wherever the impl is (it is collected with `inventory`).
//!
//! # IDs and naming
//!
//! Every generated ID is a `Copy`, 8-byte `#[repr(transparent)]` newtype over
//! `kay::RawID` implementing `kay::TypedID`, `Compact`, `Debug`
//! (`CounterID(0_2.0@0)`), `Display` and `FromStr` (the raw ID's text form),
//! `Hash`, `Eq` and `Ord`. The ID of class `Name` is `NameID`, declared next
//! to the `#[kay::actor] impl` block, always `pub`; the ID of trait `X` is
//! `XID`, declared next to the trait with the trait's visibility. Where a
//! macro refers to an ID by path, it appends `ID` to the last segment of the
//! class's or trait's path: `#[kay::implements] impl a::b::X for c::Name`
//! uses `a::b::XID` and `c::NameID`.
//!
//! # Rules and limits
//!
//! - One `#[kay::actor]` impl block per class (it declares the ID type);
//!   helper methods that are not handlers go into a plain `impl` block.
//! - Actor classes and traits cannot be generic, and neither can handlers:
//!   every message type is concrete. Handlers cannot be `async`, `const` or
//!   `unsafe`, and take no `&mut` arguments (messages are read-only).
//! - The last parameter of every handler and spawner is `&mut World`.
//! - `local_broadcast`, `global_broadcast`, `from_raw` and `as_raw` are
//!   taken by the ID types and cannot name handlers.
//! - Misuse is reported as a compile error at the offending token, saying
//!   how to fix it; `kay`'s `tests/ui` shows every such message.
//!
//! # What the expansion looks like
//!
//! For `pub fn increment_by(&mut self, amount: u32, world: &mut World)` and
//! `pub fn count(&self, _: &mut World) -> u32` of `Counter`, roughly:
//!
//! ```text
//! #[derive(::kay::Compact)]
//! struct __kay_Counter_increment_by { amount: u32 }
//! #[derive(::kay::Compact)]
//! struct __kay_Counter_count { __kay_reply: ::kay::ReplyTo<u32> }
//!
//! impl ::kay::Actor for Counter {
//!     type ID = CounterID;
//!     fn id(&self) -> CounterID { self.id }
//!     fn setup(class: &mut ::kay::ClassSetup<'_, Self>) {
//!         class.handler(|actor: &mut Counter, msg: &__kay_Counter_increment_by, world: &mut ::kay::World| {
//!             <Counter>::increment_by(actor, msg.amount.clone(), world)
//!         });
//!         class.request_handler(|actor: &mut Counter, msg: &__kay_Counter_count, world: &mut ::kay::World| {
//!             let result = <Counter>::count(actor, world);
//!             world.reply(msg.__kay_reply, result);
//!         });
//!     }
//! }
//!
//! impl CounterID {
//!     pub fn increment_by(self, amount: u32, world: &mut ::kay::World) {
//!         world.send(self, __kay_Counter_increment_by { amount });
//!     }
//!     pub fn count(self, world: &mut ::kay::World) -> ::kay::Reply<u32> {
//!         let (to, reply) = world.request_to::<u32>(self);
//!         world.send(self, __kay_Counter_count { __kay_reply: to });
//!         reply
//!     }
//!     pub fn local_broadcast(world: &mut ::kay::World) -> Self { world.local_broadcast::<Counter>() }
//!     pub fn global_broadcast(world: &mut ::kay::World) -> Self { world.global_broadcast::<Counter>() }
//! }
//! ```
//!
//! The handlers are ordinary `ClassSetup::handler` closures, exactly what
//! hand-written registration uses, and the handler methods are marked
//! `#[inline]`, so both cost the same.
//!
//! # Layout of this crate
//!
//! A thin `proc-macro` shell over plain functions returning
//! `syn::Result<TokenStream>`: `actor`, `actor_trait` and `implements` expand
//! one macro each; `handler` classifies methods, `types` checks and rewrites
//! message types, `message` generates a method's message, send method and
//! registration, and `ids` generates ID types and holds the naming
//! convention.

mod actor;
mod actor_trait;
mod handler;
mod ids;
mod implements;
mod message;
mod types;

use proc_macro::TokenStream;

/// Runs `expand`; on an error that stops the expansion, emits the error and
/// the item unchanged (without kay's `#[essential]` markers), so that the
/// rest of the crate still sees the item and the error stands alone.
fn run(
    attr: TokenStream,
    item: TokenStream,
    expand: fn(
        proc_macro2::TokenStream,
        proc_macro2::TokenStream,
    ) -> syn::Result<proc_macro2::TokenStream>,
) -> TokenStream {
    let item = proc_macro2::TokenStream::from(item);
    match expand(attr.into(), item.clone()) {
        Ok(tokens) => tokens.into(),
        Err(error) => {
            let mut tokens = error.into_compile_error();
            tokens.extend(handler::strip_essential(item));
            tokens.into()
        }
    }
}

/// Makes a struct an actor class: put it on the inherent `impl Name { .. }`
/// block whose methods are the actor's handlers and spawners.
///
/// Generates the `NameID` type, `impl kay::Actor for Name` registering every
/// handler and spawner, one message per handler, and the `NameID` methods
/// that send them (the `kay_macros` crate docs describe every form).
///
/// ```
/// use kay::prelude::*;
///
/// #[derive(Compact, Clone)]
/// pub struct Account {
///     id: AccountID,
///     balance: i64,
///     log: CVec<i64>,
/// }
///
/// #[kay::actor]
/// impl Account {
///     /// Spawner: `AccountID::spawn(balance, world) -> AccountID`.
///     pub fn spawn(id: AccountID, balance: i64, _: &mut World) -> Self {
///         Account { id, balance, log: CVec::new() }
///     }
///
///     /// Handler: `account.deposit(amount, world)`.
///     pub fn deposit(&mut self, amount: i64, _: &mut World) {
///         self.balance += amount;
///         self.log.push(amount);
///     }
///
///     /// By reference: reads the queued message in place.
///     pub fn deposit_all(&mut self, amounts: &CVec<i64>, world: &mut World) {
///         for amount in amounts.iter() {
///             self.id.deposit(*amount, world);
///         }
///     }
///
///     /// `Fate::Die` removes the actor after the handler.
///     pub fn close(&mut self, _: &mut World) -> Fate {
///         Fate::Die
///     }
///
///     /// Request: `account.balance(world) -> Reply<i64>`.
///     pub fn balance(&self, _: &mut World) -> i64 {
///         self.balance
///     }
///
///     /// Still runs after a handler panicked (for inspection and snapshots).
///     #[essential]
///     pub fn audit(&self, _: &mut World) -> CVec<i64> {
///         self.log.clone()
///     }
/// }
///
/// let mut system = ActorSystem::new(Config::default());
/// system.register::<Account>();
/// let mut world = system.world();
/// let account = AccountID::spawn(100, &mut world);
/// account.deposit_all(vec![5, 10].into(), &mut world);
/// // `deposit_all` sends two `deposit`s, handled in the next message cycle.
/// system.process_all_messages();
/// assert_eq!(system.block_on(account.balance(&mut world)), Ok(115));
/// assert_eq!(system.block_on(account.audit(&mut world)).unwrap().to_vec(), vec![5, 10]);
///
/// AccountID::local_broadcast(&mut world).close(&mut world);
/// system.process_all_messages();
/// assert_eq!(system.instance_count::<Account>(), 0);
/// ```
#[proc_macro_attribute]
pub fn actor(attr: TokenStream, item: TokenStream) -> TokenStream {
    run(attr, item, actor::expand)
}

/// Declares an actor trait: a set of handlers that several actor classes
/// implement, addressed through the trait's ID type `XID`.
///
/// Every method takes `&mut self` and ends with `world: &mut World`; it may
/// return `()`, `Fate` or a request's answer, and may have a default body.
/// Classes implement the trait with `#[kay::implements]`;
/// their IDs convert into `XID` with `.into()`.
///
/// ```
/// use kay::prelude::*;
///
/// #[kay::actor_trait]
/// pub trait Damageable {
///     fn damage(&mut self, amount: u32, world: &mut World) -> Fate;
///     fn health(&mut self, world: &mut World) -> u32;
/// }
///
/// #[derive(Compact, Clone)]
/// pub struct Tree { id: TreeID, health: u32 }
///
/// #[kay::actor]
/// impl Tree {
///     pub fn spawn(id: TreeID, _: &mut World) -> Self { Tree { id, health: 3 } }
/// }
///
/// #[kay::implements]
/// impl Damageable for Tree {
///     fn damage(&mut self, amount: u32, _: &mut World) -> Fate {
///         self.health = self.health.saturating_sub(amount);
///         if self.health == 0 { Fate::Die } else { Fate::Live }
///     }
///     fn health(&mut self, _: &mut World) -> u32 { self.health }
/// }
///
/// let mut system = ActorSystem::new(Config::default());
/// system.register::<Tree>();
/// let mut world = system.world();
/// let tree: DamageableID = TreeID::spawn(&mut world).into();
/// tree.damage(1, &mut world); // dispatched to `Tree` at run time
/// assert_eq!(system.block_on(tree.health(&mut world)), Ok(2));
/// DamageableID::local_broadcast(&mut world).damage(5, &mut world);
/// system.process_all_messages();
/// assert_eq!(system.instance_count::<Tree>(), 0);
/// ```
#[proc_macro_attribute]
pub fn actor_trait(attr: TokenStream, item: TokenStream) -> TokenStream {
    run(attr, item, actor_trait::expand)
}

/// Implements an actor trait for an actor class: put it on
/// `impl Trait for Class { .. }`.
///
/// Generates `impl From<ClassID> for TraitID` and registers the trait's
/// handlers on the class whenever `system.register::<Class>()` runs, from
/// any module or crate. The trait's ID is found by appending `ID` to the
/// trait's path (`a::b::X` → `a::b::XID`), the class's likewise.
///
/// ```
/// use kay::prelude::*;
///
/// mod traits {
///     use kay::prelude::*;
///
///     #[kay::actor_trait]
///     pub trait Greeter {
///         fn greet(&mut self, times: u32, world: &mut World);
///     }
/// }
///
/// #[derive(Compact, Clone)]
/// pub struct Robot { id: RobotID, greeted: u32 }
///
/// #[kay::actor]
/// impl Robot {
///     pub fn spawn(id: RobotID, _: &mut World) -> Self { Robot { id, greeted: 0 } }
/// }
///
/// #[kay::implements]
/// impl traits::Greeter for Robot {
///     fn greet(&mut self, times: u32, _: &mut World) { self.greeted += times; }
/// }
///
/// let mut system = ActorSystem::new(Config::default());
/// system.register::<Robot>();
/// let mut world = system.world();
/// let robot = RobotID::spawn(&mut world);
/// let greeter: traits::GreeterID = robot.into();
/// greeter.greet(2, &mut world);
/// system.process_all_messages();
/// assert_eq!(system.with_instances::<Robot, _>(|r| r.greeted), vec![2]);
/// ```
#[proc_macro_attribute]
pub fn implements(attr: TokenStream, item: TokenStream) -> TokenStream {
    run(attr, item, implements::expand)
}
