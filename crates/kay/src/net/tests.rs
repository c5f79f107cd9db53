//! A system against a fake peer that knows the secret and sends what a
//! broken or hostile machine would: every bad frame or message closes the
//! connection with a reason, delivers nothing of its turn, and the system
//! keeps running and accepts the peer again.

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, mpsc};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

use super::frame::{self, Frame, Kind};
use super::peer::{Context, codec, handshake};
use super::{NetConfig, PeerStats};
use crate::{Actor, ActorSystem, ClassSetup, Compact, Config, MachineID, RawID, TypedID, World};
use compact::CVec;

crate::typed_id!(SinkID);

#[derive(Compact, Clone)]
struct Sink {
    id: SinkID,
    sum: u64,
}

#[derive(Compact, Clone)]
struct Spawn;

#[derive(Compact, Clone)]
struct Values {
    values: CVec<u32>,
}

/// Asks a sink for its sum.
#[derive(Compact, Clone)]
struct Total {
    reply: crate::ReplyTo<u64>,
}

impl crate::Request for Total {
    type Answer = u64;
    fn reply_to(&self) -> crate::ReplyTo<u64> {
        self.reply
    }
}

impl Actor for Sink {
    type ID = SinkID;
    fn id(&self) -> SinkID {
        self.id
    }
    fn setup(class: &mut ClassSetup<Self>) {
        class
            .spawner(|id, _: &Spawn, _: &mut World| Sink { id, sum: 0 })
            .handler(|sink: &mut Sink, values: &Values, _: &mut World| {
                sink.sum += values.values.iter().map(|&v| u64::from(v)).sum::<u64>();
            })
            .request_handler(|sink: &mut Sink, total: &Total, world: &mut World| {
                world.reply(total.reply, sink.sum)
            });
    }
}

type Link = Framed<TcpStream, tokio_util::codec::LengthDelimitedCodec>;

struct Fake {
    runtime: tokio::runtime::Runtime,
    context: Context,
    to: SocketAddr,
}

impl Fake {
    fn join(&self, turn: u64) -> Link {
        self.context
            .turn
            .store(turn, std::sync::atomic::Ordering::Relaxed);
        self.runtime.block_on(async {
            let stream = TcpStream::connect(self.to).await.expect("connects");
            let mut link = Framed::new(stream, codec(1 << 20));
            handshake(&self.context, &mut link, Some(MachineID(0)))
                .await
                .expect("the handshake passes");
            link
        })
    }

    fn send(&self, link: &mut Link, frames: Vec<Vec<u8>>) {
        self.runtime.block_on(async {
            for f in frames {
                link.send(Bytes::from(f)).await.expect("sent");
            }
        });
    }

    /// Reads until a `Refuse` (its reason) or the end of the connection.
    fn refusal(&self, link: &mut Link) -> Option<String> {
        self.runtime.block_on(async {
            loop {
                let next = tokio::time::timeout(Duration::from_secs(20), link.next())
                    .await
                    .expect("the system answers");
                match next {
                    Some(Ok(bytes)) => {
                        if let Ok(Frame::Refuse(reason)) = frame::parse(&bytes) {
                            return Some(reason.to_owned());
                        }
                    }
                    _ => return None,
                }
            }
        })
    }
}

/// A batch of turn `turn` with one message, whose payload is `payload`
/// (written at `origin`).
fn batch(turn: u64, tag: u16, to: RawID, payload: &[u8], origin: u64) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    frame::batch_header(&mut out, 1, turn, origin);
    frame::put_message(&mut out, tag, to, payload);
    vec![out, frame::turn_end(turn, 0)]
}

/// A valid `Values` of `values`, compacted at an origin of 0x1000.
fn values_payload(values: &[u32]) -> Vec<u8> {
    let value = compact::Compacted::new(Values {
        values: values.to_vec().into(),
    });
    let origin = value.origin() as u64;
    // Rebase its one pointer (the vector's, right behind the 8-byte
    // static part's pointer field) to origin 0x1000.
    let mut bytes = value.as_bytes().to_vec();
    let pointer = u64::from_le_bytes(bytes[0..8].try_into().unwrap());
    let rebased = pointer - origin + 0x1000;
    bytes[0..8].copy_from_slice(&rebased.to_le_bytes());
    bytes
}

/// A valid partial of the gathered request `token` with `answers`,
/// compacted at an origin of 0x1000.
fn partial_payload(token: u64, answers: &[u64]) -> Vec<u8> {
    let value = compact::Compacted::new(crate::reply::WirePartial {
        token,
        answers: answers.to_vec().into(),
    });
    let origin = value.origin() as u64;
    // Rebase the vector's pointer (right behind the 8-byte token).
    let mut bytes = value.as_bytes().to_vec();
    let pointer = u64::from_le_bytes(bytes[8..16].try_into().unwrap());
    bytes[8..16].copy_from_slice(&(pointer - origin + 0x1000).to_le_bytes());
    bytes
}

/// Runs turns until `done` (at most 2,000, a few ms apart).
fn until(system: &mut ActorSystem, done: impl Fn(&ActorSystem) -> bool) {
    for _ in 0..2_000 {
        system.turn();
        if done(system) {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("the system never got there: {:?}", system.net_stats());
}

/// The fake joins, and the system has seen it join.
fn join(fake: &Fake, system: &mut ActorSystem) -> Link {
    let joins = peer(system).joins;
    let link = fake.join(system.current_turn());
    until(system, |s| peer(s).joins > joins && peer(s).connected);
    link
}

fn peer(system: &ActorSystem) -> PeerStats {
    system.net_stats().expect("networked").peers[0].clone()
}

#[test]
fn bad_frames_and_messages_close_the_connection_and_lose_nothing_else() {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let addresses = super::loopback_addresses(2);
    let mut config = NetConfig::new(addresses.clone(), "secret");
    config.max_frame_bytes = 1 << 20;
    config.join_timeout = Duration::from_secs(20);
    // The fake sends turn ends only with its batches: never wait for it.
    config.max_turn_distance = 1_000_000;
    let mut system = ActorSystem::new(Config {
        threads: 1,
        net: Some(config),
        ..Config::default()
    });
    system.register::<Sink>();
    let (events, _kept) = mpsc::channel();
    let fake = Fake {
        runtime: tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap(),
        context: Context {
            me: MachineID(1),
            machines: addresses.clone(),
            secret: b"secret".to_vec(),
            fingerprint: system.fingerprint(),
            max_frame_bytes: 1 << 20,
            turn: Arc::new(AtomicU64::new(0)),
            events,
        },
        to: addresses[0],
    };
    system.connect().expect("binds");
    let sink = system.world().spawn::<Sink, _>(Spawn);
    let to = sink.as_raw();
    let values = crate::registry::MessageID(1);
    let sum = |system: &mut ActorSystem| system.with_instances::<Sink, _>(|s| s.sum)[0];

    // A valid message arrives.
    let mut link = join(&fake, &mut system);
    fake.send(
        &mut link,
        batch(1, values.0, to, &values_payload(&[1, 2, 3]), 0x1000),
    );
    until(&mut system, |s| peer(s).received == 1);
    assert_eq!(sum(&mut system), 6);

    // A payload whose vector points outside it: refused, nothing delivered.
    let mut bad = values_payload(&[5, 5]);
    bad[0..8].copy_from_slice(&0xdead_0000u64.to_le_bytes());
    fake.send(&mut link, batch(2, values.0, to, &bad, 0x1000));
    until(&mut system, |s| peer(s).refused == 1);
    let reason = fake.refusal(&mut link).expect("a reason");
    assert!(reason.contains("failed validation"), "{reason}");
    assert_eq!(sum(&mut system), 6);

    // An unknown message type.
    let mut link = join(&fake, &mut system);
    fake.send(&mut link, batch(3, 999, to, &[0; 8], 0));
    until(&mut system, |s| peer(s).refused == 2);
    let reason = fake.refusal(&mut link).expect("a reason");
    assert!(reason.contains("unknown message type 999"), "{reason}");

    // An answer to no open request is ignored; a malformed failure closes.
    let mut link = join(&fake, &mut system);
    let me = RawID::new(crate::ShortTypeID::new(0), 0, MachineID(0), 0);
    fake.send(&mut link, batch(5, frame::ANSWER_TAG, me, &[0; 16], 0));
    fake.send(&mut link, batch(6, frame::FAILED_TAG, me, &[0; 3], 0));
    until(&mut system, |s| peer(s).refused == 3);
    let reason = fake.refusal(&mut link).expect("a reason");
    assert!(reason.contains("malformed failed request"), "{reason}");

    // Garbage, a truncated batch, and a frame over the limit: the network
    // thread closes each connection.
    for garbage in [
        frame::simple(Kind::Hello, b"no hello"),
        vec![1, 77, 0, 0],
        batch(9, values.0, to, &[0; 16], 0)[0][..30].to_vec(),
    ] {
        let mut link = join(&fake, &mut system);
        fake.send(&mut link, vec![garbage]);
        assert!(fake.refusal(&mut link).is_some(), "closed with a reason");
    }
    let mut link = join(&fake, &mut system);
    fake.runtime.block_on(async {
        // A length prefix of 2 MiB, over the limit of 1 MiB.
        link.get_mut()
            .write_all(&(2u32 << 20).to_le_bytes())
            .await
            .unwrap();
    });
    assert!(fake.refusal(&mut link).is_none(), "closed");

    // A stranger who sends bytes without a handshake.
    fake.runtime.block_on(async {
        let mut stream = TcpStream::connect(addresses[0]).await.unwrap();
        let _ = stream.write_all(b"GET / HTTP/1.1\r\n\r\n").await;
    });
    system.turn();

    // The system still works, and the peer can join again.
    let mut link = join(&fake, &mut system);
    fake.send(
        &mut link,
        batch(20, values.0, to, &values_payload(&[10]), 0x1000),
    );
    until(&mut system, |s| peer(s).received == 3); // with the ignored answer
    assert_eq!(sum(&mut system), 16);
    assert!(peer(&system).joins >= 7);

    // Requests to every sink, on both machines. The fake's partial of the
    // first comes malformed: the connection closes, nothing is taken, and
    // the request fails naming the lost machine. The second's comes valid
    // (the request completes, in machine order), then once more (late).
    let mut world = system.world();
    let all = world.global_broadcast::<Sink>();
    let ask = |world: &mut World| {
        let (reply_to, reply) = world.request_to::<u64>(all);
        world.send(all, Total { reply: reply_to });
        (reply_to.token().0.bits(), reply.collect())
    };
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    let mut outcome = |system: &mut ActorSystem, reply: &mut crate::Collect<u64, Vec<u64>>| {
        (0..2_000)
            .find_map(|_| {
                system.turn();
                std::thread::sleep(Duration::from_millis(5));
                match std::pin::Pin::new(&mut *reply).poll(&mut cx) {
                    std::task::Poll::Ready(answers) => Some(answers),
                    std::task::Poll::Pending => None,
                }
            })
            .expect("the request completes")
    };
    let (token, mut first) = ask(&mut world);
    let mut bad = partial_payload(token, &[7, 8]);
    bad[8..16].copy_from_slice(&0xdead_0000u64.to_le_bytes());
    let refused = peer(&system).refused;
    fake.send(&mut link, batch(30, frame::ANSWER_TAG, me, &bad, 0x1000));
    until(&mut system, |s| peer(s).refused == refused + 1);
    let reason = fake.refusal(&mut link).expect("a reason");
    assert!(reason.contains("answer failed validation"), "{reason}");
    assert_eq!(
        outcome(&mut system, &mut first),
        Err(crate::ReplyError::PeerLost {
            machine: MachineID(1)
        })
    );
    let mut link = join(&fake, &mut system);
    let (token, mut second) = ask(&mut world);
    let good = partial_payload(token, &[7, 8]);
    fake.send(&mut link, batch(31, frame::ANSWER_TAG, me, &good, 0x1000));
    assert_eq!(outcome(&mut system, &mut second), Ok(vec![16, 7, 8]));
    fake.send(&mut link, batch(32, frame::ANSWER_TAG, me, &good, 0x1000));
    until(&mut system, |s| s.stats().late_replies == 1);
}

#[test]
fn a_message_larger_than_a_frame_is_refused_at_send_and_counted() {
    let addresses = super::loopback_addresses(2);
    let mut config = NetConfig::new(addresses, "secret");
    config.max_frame_bytes = 1 << 16;
    config.join_timeout = Duration::ZERO;
    let mut system = ActorSystem::new(Config {
        threads: 1,
        net: Some(config),
        ..Config::default()
    });
    system.register::<Sink>();
    system.connect().expect("binds");
    let mut world = system.world();
    let local = world.spawn::<Sink, _>(Spawn).as_raw();
    let remote = SinkID::from_raw(RawID::new(local.type_id, 0, MachineID(1), 0));
    world.send(
        remote,
        Values {
            values: vec![7; 1 << 15].into(),
        },
    );
    world.send(
        remote,
        Values {
            values: vec![7; 10].into(),
        },
    );
    system.turn();
    let stats = system.net_stats().expect("networked");
    assert_eq!(stats.too_large, 1);
    assert_eq!(stats.peers[0].sent, 1, "the small one is kept for the peer");
}
