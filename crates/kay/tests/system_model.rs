//! The actor system against a plain model: random sequences of spawns,
//! messages, growth, deaths, broadcasts (with deaths and growth during the
//! scan) and messages to stale IDs, checked instance by instance.
#![allow(missing_docs)]

use std::collections::BTreeMap;

use kay::{Actor, ActorSystem, CString, CVec, ClassSetup, Compact, Config, Fate, TypedID, World};
use proptest::prelude::*;

kay::typed_id!(pub ItemID);

#[derive(Compact, Clone, Debug)]
pub struct Item {
    id: ItemID,
    key: u32,
    total: u64,
    log: CVec<u32>,
    name: CString,
}

#[derive(Compact, Clone)]
pub struct Make {
    key: u32,
}
#[derive(Compact, Clone)]
pub struct Bump {
    amount: u32,
}
#[derive(Compact, Clone)]
pub struct Grow {
    n: u32,
}
#[derive(Compact, Clone)]
pub struct Rename {
    name: CString,
}
#[derive(Compact, Clone)]
pub struct Kill;
/// Broadcast: items whose `total % modulus == 0` die, others with
/// `key % 3 == 0` grow by `n`.
#[derive(Compact, Clone)]
pub struct Sweep {
    modulus: u64,
    n: u32,
}

impl Actor for Item {
    type ID = ItemID;
    fn id(&self) -> ItemID {
        self.id
    }
    fn setup(class: &mut ClassSetup<Self>) {
        class
            .spawner(|id, m: &Make, _: &mut World| Item {
                id,
                key: m.key,
                total: 0,
                log: CVec::new(),
                name: CString::new(),
            })
            .handler(|i: &mut Item, m: &Bump, _: &mut World| i.total += u64::from(m.amount))
            .handler(|i: &mut Item, m: &Grow, _: &mut World| i.log.extend(0..m.n))
            .handler(|i: &mut Item, m: &Rename, _: &mut World| i.name = m.name.clone())
            .handler(|_: &mut Item, _: &Kill, _: &mut World| Fate::Die)
            .handler(|i: &mut Item, m: &Sweep, _: &mut World| {
                if i.total.is_multiple_of(m.modulus) {
                    return Fate::Die;
                }
                if i.key.is_multiple_of(3) {
                    i.log.extend(0..m.n);
                }
                Fate::Live
            });
    }
}

#[derive(Clone, Debug, PartialEq)]
struct Model {
    key: u32,
    total: u64,
    log: Vec<u32>,
    name: String,
}

#[derive(Clone, Debug)]
enum Op {
    Spawn(u32),
    Bump(usize, u32),
    Grow(usize, u32),
    Rename(usize, String),
    Kill(usize),
    Sweep(u64, u32),
    Process,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => any::<u32>().prop_map(Op::Spawn),
        4 => (any::<usize>(), 0u32..50).prop_map(|(i, a)| Op::Bump(i, a)),
        2 => (any::<usize>(), 0u32..300).prop_map(|(i, n)| Op::Grow(i, n)),
        1 => (any::<usize>(), "[a-z]{0,40}").prop_map(|(i, s)| Op::Rename(i, s)),
        2 => any::<usize>().prop_map(Op::Kill),
        1 => (2u64..6, 0u32..100).prop_map(|(m, n)| Op::Sweep(m, n)),
        3 => Just(Op::Process),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn system_matches_model(ops in proptest::collection::vec(op(), 1..150)) {
        let mut system = ActorSystem::new(Config::default());
        system.register::<Item>();
        let mut world = system.world();
        // Every ID ever handed out, dead or alive, so stale IDs get messages too.
        let mut ids: Vec<ItemID> = Vec::new();
        let mut model: BTreeMap<ItemID, Model> = BTreeMap::new();
        let mut expected_lost = 0u64;
        // Operations are applied to the model when the system processes them.
        let mut pending: Vec<(ItemID, Op)> = Vec::new();
        let pick = |ids: &Vec<ItemID>, i: usize| (!ids.is_empty()).then(|| ids[i % ids.len()]);

        let apply = |model: &mut BTreeMap<ItemID, Model>, pending: &mut Vec<(ItemID, Op)>, lost: &mut u64| {
            // One message cycle per dependency level is not needed here: no
            // handler sends messages, so one process call handles everything
            // in sending order.
            for (id, op) in pending.drain(..) {
                match op {
                    Op::Spawn(key) => {
                        model.insert(id, Model { key, total: 0, log: vec![], name: String::new() });
                    }
                    Op::Sweep(modulus, n) => {
                        model.retain(|_, m| m.total % modulus != 0);
                        for m in model.values_mut().filter(|m| m.key % 3 == 0) {
                            m.log.extend(0..n);
                        }
                    }
                    other => match model.get_mut(&id) {
                        None => *lost += 1,
                        Some(m) => match other {
                            Op::Bump(_, a) => m.total += u64::from(a),
                            Op::Grow(_, n) => m.log.extend(0..n),
                            Op::Rename(_, s) => m.name = s,
                            Op::Kill(_) => {
                                model.remove(&id);
                            }
                            _ => unreachable!(),
                        },
                    },
                }
            }
        };

        for op in ops {
            match op {
                Op::Spawn(key) => {
                    let id = world.spawn::<Item, _>(Make { key });
                    ids.push(id);
                    pending.push((id, op));
                }
                Op::Bump(i, a) => if let Some(id) = pick(&ids, i) {
                    world.send(id, Bump { amount: a });
                    pending.push((id, op));
                },
                Op::Grow(i, n) => if let Some(id) = pick(&ids, i) {
                    world.send(id, Grow { n });
                    pending.push((id, op));
                },
                Op::Rename(i, ref s) => if let Some(id) = pick(&ids, i) {
                    world.send(id, Rename { name: s.as_str().into() });
                    pending.push((id, op.clone()));
                },
                Op::Kill(i) => if let Some(id) = pick(&ids, i) {
                    world.send(id, Kill);
                    pending.push((id, op));
                },
                Op::Sweep(modulus, n) => {
                    let everyone = world.local_broadcast::<Item>();
                    world.send(everyone, Sweep { modulus, n });
                    pending.push((everyone, op));
                }
                Op::Process => {
                    system.process_all_messages();
                    apply(&mut model, &mut pending, &mut expected_lost);
                    check(&system, &model, expected_lost)?;
                }
            }
        }
        system.process_all_messages();
        apply(&mut model, &mut pending, &mut expected_lost);
        check(&system, &model, expected_lost)?;
    }
}

fn check(
    system: &ActorSystem,
    model: &BTreeMap<ItemID, Model>,
    lost: u64,
) -> Result<(), TestCaseError> {
    let mut actual: Vec<(ItemID, Model)> = system.with_instances::<Item, _>(|i| {
        (
            i.id,
            Model {
                key: i.key,
                total: i.total,
                log: i.log.to_vec(),
                name: i.name.to_string(),
            },
        )
    });
    actual.sort_by_key(|(id, _)| *id);
    let expected: Vec<(ItemID, Model)> = model.iter().map(|(k, v)| (*k, v.clone())).collect();
    prop_assert_eq!(actual.len(), expected.len());
    for ((aid, a), (eid, e)) in actual.iter().zip(&expected) {
        prop_assert_eq!(aid.as_raw(), eid.as_raw());
        prop_assert_eq!(a, e);
    }
    prop_assert_eq!(system.instance_count::<Item>(), model.len());
    prop_assert_eq!(system.stats().lost(), lost);
    Ok(())
}
