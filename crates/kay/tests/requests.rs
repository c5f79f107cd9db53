//! Local request/reply: `Reply<T>` futures, `block_on`, and requests that
//! can never be answered resolving to an error instead of hanging.
#![allow(missing_docs)]

use kay::{Actor, ActorSystem, ClassSetup, Compact, Config, ReplyError, ReplyTo, World};

kay::typed_id!(pub AccountID);

#[derive(Compact, Clone)]
pub struct Account {
    id: AccountID,
    balance: i64,
}

#[derive(Compact, Clone)]
pub struct Open {
    balance: i64,
}

#[derive(Compact, Clone)]
pub struct Balance {
    reply: ReplyTo<i64>,
}

#[derive(Compact, Clone)]
pub struct Close;

impl Actor for Account {
    type ID = AccountID;
    fn id(&self) -> AccountID {
        self.id
    }
    fn setup(class: &mut ClassSetup<Self>) {
        class
            .spawner(|id, o: &Open, _: &mut World| Account {
                id,
                balance: o.balance,
            })
            .handler(|a: &mut Account, b: &Balance, world: &mut World| {
                world.reply(b.reply, a.balance)
            })
            .handler(|_: &mut Account, _: &Close, _: &mut World| kay::Fate::Die);
    }
}

fn ask(world: &mut World, account: AccountID) -> kay::Reply<i64> {
    let (reply_to, reply) = world.request::<i64>();
    world.send(account, Balance { reply: reply_to });
    reply
}

#[test]
fn block_on_drives_cycles_until_the_reply_arrives() {
    let mut system = ActorSystem::new(Config::default());
    system.register::<Account>();
    let mut world = system.world();
    let a = world.spawn::<Account, _>(Open { balance: 42 });
    let b = world.spawn::<Account, _>(Open { balance: -7 });
    let (ra, rb) = (ask(&mut world, a), ask(&mut world, b));
    assert_eq!(system.block_on(rb), Ok(-7));
    assert_eq!(system.block_on(ra), Ok(42));
}

#[test]
fn a_request_to_a_dead_actor_resolves_to_an_error() {
    let mut system = ActorSystem::new(Config::default());
    system.register::<Account>();
    let mut world = system.world();
    let a = world.spawn::<Account, _>(Open { balance: 1 });
    world.send(a, Close);
    system.process_all_messages();
    let reply = ask(&mut world, a);
    assert_eq!(system.block_on(reply), Err(ReplyError::NoReply));
    // The system still works afterwards.
    let b = world.spawn::<Account, _>(Open { balance: 5 });
    let reply = ask(&mut world, b);
    assert_eq!(system.block_on(reply), Ok(5));
}

#[test]
fn dropped_replies_are_ignored_and_slots_reused() {
    let mut system = ActorSystem::new(Config::default());
    system.register::<Account>();
    let mut world = system.world();
    let a = world.spawn::<Account, _>(Open { balance: 3 });
    for _ in 0..100 {
        drop(ask(&mut world, a));
    }
    system.process_all_messages();
    let reply = ask(&mut world, a);
    assert_eq!(system.block_on(reply), Ok(3));
}

#[test]
fn replies_work_from_any_executor() {
    // A hand-rolled poll loop stands in for a foreign executor.
    let mut system = ActorSystem::new(Config::default());
    system.register::<Account>();
    let mut world = system.world();
    let a = world.spawn::<Account, _>(Open { balance: 9 });
    let mut reply = Box::pin(ask(&mut world, a));
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    assert!(reply.as_mut().poll(&mut cx).is_pending());
    system.process_all_messages();
    assert_eq!(reply.as_mut().poll(&mut cx), std::task::Poll::Ready(Ok(9)));
}
