//! The network side: a tokio runtime on threads of its own, a listener,
//! and one task per peer that connects (or takes the accepted connection),
//! runs the handshake, and then moves frames between the socket and the
//! system's thread until the connection ends; then it starts over, with
//! backoff. The system's thread never touches a socket: it hands frames
//! to a peer's queue and reads [`Event`]s.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc as tmpsc;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

use crate::id::MachineID;
use crate::net::frame::{self, Frame, Hello, Kind, PROOF_LEN};
use crate::registry::Fingerprint;

type Link = Framed<TcpStream, LengthDelimitedCodec>;

/// What the network tells the system's thread.
pub(crate) enum Event {
    /// A connection to `machine` passed the handshake; the peer had run
    /// `turn` turns.
    Joined {
        machine: MachineID,
        epoch: u64,
        turn: u64,
    },
    /// A well-formed batch or turn-end frame from `machine`.
    Frame {
        machine: MachineID,
        epoch: u64,
        bytes: Bytes,
    },
    /// The connection to `machine` ended.
    Lost {
        machine: MachineID,
        epoch: u64,
        reason: String,
    },
}

/// What the system's thread asks of a peer's task.
pub(crate) enum Outgoing {
    /// Send a frame on the connection `epoch` (if it ended, never).
    Frame { epoch: u64, bytes: Bytes },
    /// Close the connection of `epoch`, saying why.
    Close { epoch: u64, reason: String },
}

/// What the system's thread and a peer's task share.
#[derive(Default)]
pub(crate) struct PeerState {
    pub(crate) connected: AtomicBool,
    /// Bytes of frames queued and not yet written.
    pub(crate) queued: AtomicUsize,
}

/// The system's handle on one peer.
pub(crate) struct PeerLink {
    pub(crate) tx: tmpsc::UnboundedSender<Outgoing>,
    pub(crate) state: Arc<PeerState>,
}

/// What every task needs to run handshakes.
pub(crate) struct Context {
    pub(crate) me: MachineID,
    pub(crate) machines: Vec<SocketAddr>,
    pub(crate) secret: Vec<u8>,
    pub(crate) fingerprint: Fingerprint,
    pub(crate) max_frame_bytes: usize,
    /// Turns this system has run (for `Hello`).
    pub(crate) turn: Arc<AtomicU64>,
    pub(crate) events: mpsc::Sender<Event>,
}

pub(crate) fn codec(max_frame_bytes: usize) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .little_endian()
        .length_field_length(4)
        .max_frame_length(max_frame_bytes)
        .new_codec()
}

/// Starts the listener and one task per peer on `runtime`; returns the
/// system's links, by machine (`None` for this one).
pub(crate) fn start(
    runtime: &tokio::runtime::Runtime,
    context: Context,
    listener: std::net::TcpListener,
) -> Vec<Option<PeerLink>> {
    let context = Arc::new(context);
    let machines = context.machines.len();
    let mut links = Vec::with_capacity(machines);
    let mut accepted = Vec::with_capacity(machines);
    for m in 0..machines {
        if m == context.me.0 as usize {
            links.push(None);
            accepted.push(None);
            continue;
        }
        let (tx, rx) = tmpsc::unbounded_channel();
        let state = Arc::new(PeerState::default());
        let (accept_tx, accept_rx) = tmpsc::channel(4);
        accepted.push(Some(accept_tx));
        links.push(Some(PeerLink {
            tx,
            state: Arc::clone(&state),
        }));
        let peer = MachineID(m as u8);
        let context = Arc::clone(&context);
        runtime.spawn(peer_task(context, peer, rx, state, accept_rx));
    }
    let _guard = runtime.enter();
    let listener = TcpListener::from_std(listener).expect("a listener in non-blocking mode");
    runtime.spawn(accept_task(context, listener, accepted));
    links
}

/// Accepts connections from machines with a higher id and hands each,
/// after its handshake, to its peer's task.
async fn accept_task(
    context: Arc<Context>,
    listener: TcpListener,
    accepted: Vec<Option<tmpsc::Sender<(Link, u64)>>>,
) {
    let accepted = Arc::new(accepted);
    loop {
        let Ok((stream, address)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let context = Arc::clone(&context);
        let accepted = Arc::clone(&accepted);
        tokio::spawn(async move {
            let mut link = Framed::new(stream, codec(context.max_frame_bytes));
            let handshake = tokio::time::timeout(
                Duration::from_secs(10),
                handshake(&context, &mut link, None),
            )
            .await
            .unwrap_or_else(|_| Err("the handshake timed out".to_owned()));
            match handshake {
                Ok((machine, turn)) => {
                    if let Some(Some(to)) = accepted.get(machine.0 as usize) {
                        let _ = to.send((link, turn)).await;
                    }
                }
                Err(reason) => tracing::error!(
                    machine = context.me.0,
                    %address,
                    "kay net: refused a connection from {address}: {reason}"
                ),
            }
        });
    }
}

/// Connects to `peer` (or waits for its connection) over and over; while
/// connected, moves frames both ways.
async fn peer_task(
    context: Arc<Context>,
    peer: MachineID,
    mut outgoing: tmpsc::UnboundedReceiver<Outgoing>,
    state: Arc<PeerState>,
    mut accepted: tmpsc::Receiver<(Link, u64)>,
) {
    let mut epoch = 0;
    let mut backoff = Duration::from_millis(20);
    loop {
        // Lower ids accept, higher ids dial.
        let (mut link, turn) = if peer < context.me {
            let address = context.machines[peer.0 as usize];
            let connected = match TcpStream::connect(address).await {
                Ok(stream) => {
                    let _ = stream.set_nodelay(true);
                    let mut link = Framed::new(stream, codec(context.max_frame_bytes));
                    match handshake(&context, &mut link, Some(peer)).await {
                        Ok((_, turn)) => Some((link, turn)),
                        Err(reason) => {
                            tracing::error!(
                                machine = context.me.0,
                                peer = peer.0,
                                "kay net: handshake with machine {} at {address} failed: {reason}",
                                peer.0
                            );
                            None
                        }
                    }
                }
                Err(_) => None,
            };
            match connected {
                Some(link) => link,
                None => {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                    continue;
                }
            }
        } else {
            match accepted.recv().await {
                Some(link) => link,
                None => return,
            }
        };
        backoff = Duration::from_millis(20);
        epoch += 1;
        state.connected.store(true, Relaxed);
        if context
            .events
            .send(Event::Joined {
                machine: peer,
                epoch,
                turn,
            })
            .is_err()
        {
            return;
        }
        let reason = run_link(&context, peer, epoch, &mut link, &mut outgoing, &state).await;
        state.connected.store(false, Relaxed);
        let _ = SinkExt::<Bytes>::close(&mut link).await;
        if context
            .events
            .send(Event::Lost {
                machine: peer,
                epoch,
                reason,
            })
            .is_err()
        {
            return;
        }
    }
}

/// Moves frames until the connection ends; returns why it did.
async fn run_link(
    context: &Context,
    peer: MachineID,
    epoch: u64,
    link: &mut Link,
    outgoing: &mut tmpsc::UnboundedReceiver<Outgoing>,
    state: &PeerState,
) -> String {
    loop {
        tokio::select! {
            incoming = link.next() => {
                let bytes: BytesMut = match incoming {
                    Some(Ok(bytes)) => bytes,
                    Some(Err(error)) => return format!("bad frame: {error}"),
                    None => return "the peer closed the connection".to_owned(),
                };
                match frame::parse(&bytes) {
                    Ok(Frame::Batch(_) | Frame::TurnEnd { .. }) => {}
                    Ok(other) => {
                        let reason = format!("unexpected frame after the handshake: {:?}", kind_of(&other));
                        let _ = link.send(Bytes::from(frame::simple(Kind::Refuse, reason.as_bytes()))).await;
                        return reason;
                    }
                    Err(error) => {
                        let reason = format!("malformed frame: {error}");
                        let _ = link.send(Bytes::from(frame::simple(Kind::Refuse, reason.as_bytes()))).await;
                        return reason;
                    }
                }
                if context.events.send(Event::Frame { machine: peer, epoch, bytes: bytes.freeze() }).is_err() {
                    return "the system is gone".to_owned();
                }
            }
            out = outgoing.recv() => {
                let Some(out) = out else { return "the system is gone".to_owned() };
                if let Err(reason) = write(link, epoch, out, state).await {
                    return reason;
                }
                // Whatever else is queued goes out in the same flush.
                while let Ok(out) = outgoing.try_recv() {
                    if let Err(reason) = write(link, epoch, out, state).await {
                        return reason;
                    }
                }
                if let Err(error) = SinkExt::<Bytes>::flush(link).await {
                    return format!("write failed: {error}");
                }
            }
        }
    }
}

/// Feeds one outgoing item to the link (without flushing).
async fn write(
    link: &mut Link,
    epoch: u64,
    out: Outgoing,
    state: &PeerState,
) -> Result<(), String> {
    match out {
        Outgoing::Frame { epoch: only, bytes } => {
            state.queued.fetch_sub(bytes.len(), Relaxed);
            if only != epoch {
                return Ok(());
            }
            link.feed(bytes)
                .await
                .map_err(|error| format!("write failed: {error}"))
        }
        Outgoing::Close { epoch: of, reason } if of == epoch => {
            let _ = link
                .send(Bytes::from(frame::simple(Kind::Refuse, reason.as_bytes())))
                .await;
            Err(reason)
        }
        Outgoing::Close { .. } => Ok(()),
    }
}

fn kind_of(frame: &Frame<'_>) -> Kind {
    match frame {
        Frame::Hello(_) => Kind::Hello,
        Frame::Proof(_) => Kind::Proof,
        Frame::Refuse(_) => Kind::Refuse,
        Frame::Batch(_) => Kind::Batch,
        Frame::TurnEnd { .. } => Kind::TurnEnd,
    }
}

/// The proof that `prover` knows the secret, for the challenge
/// `verifier_nonce` (and the prover's own nonce and registry hash).
fn proof(
    secret: &[u8],
    prover: MachineID,
    verifier_nonce: &[u8; PROOF_LEN],
    prover_nonce: &[u8; PROOF_LEN],
    fingerprint_hash: u64,
) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(b"kay-net-v1");
    mac.update(&[prover.0]);
    mac.update(verifier_nonce);
    mac.update(prover_nonce);
    mac.update(&fingerprint_hash.to_le_bytes());
    mac
}

async fn next_frame(link: &mut Link) -> Result<BytesMut, String> {
    match link.next().await {
        Some(Ok(bytes)) => Ok(bytes),
        Some(Err(error)) => Err(format!("bad frame: {error}")),
        None => Err("the peer closed the connection during the handshake".to_owned()),
    }
}

/// Refuses the connection: tells the peer why, and returns it as the error.
async fn refuse<T>(link: &mut Link, reason: String) -> Result<T, String> {
    let _ = link
        .send(Bytes::from(frame::simple(Kind::Refuse, reason.as_bytes())))
        .await;
    Err(reason)
}

/// Runs the handshake (see the module docs of `net`): both sides send a
/// `Hello`, then a `Proof`; each checks the other's version, machine,
/// proof and fingerprint. Returns the peer's machine and turn.
pub(crate) async fn handshake(
    context: &Context,
    link: &mut Link,
    expect: Option<MachineID>,
) -> Result<(MachineID, u64), String> {
    let mut nonce = [0u8; PROOF_LEN];
    getrandom::fill(&mut nonce).map_err(|error| format!("no randomness: {error}"))?;
    let text = context.fingerprint.lines().join("\n");
    let hash = context.fingerprint.hash();
    let hello = frame::hello(&Hello {
        machine: context.me,
        nonce,
        turn: context.turn.load(Relaxed),
        fingerprint_hash: hash,
        fingerprint: &text,
    });
    link.send(Bytes::from(hello))
        .await
        .map_err(|error| format!("write failed: {error}"))?;
    let bytes = next_frame(link).await?;
    let theirs = match frame::parse(&bytes) {
        Ok(Frame::Hello(hello)) => hello,
        Ok(Frame::Refuse(reason)) => return Err(format!("the peer refused: {reason}")),
        Ok(other) => {
            return refuse(link, format!("expected a hello, got {:?}", kind_of(&other))).await;
        }
        Err(error) => return refuse(link, format!("bad hello: {error}")).await,
    };
    let machine = theirs.machine;
    let valid = match expect {
        Some(expected) => machine == expected,
        None => (machine.0 as usize) < context.machines.len() && machine > context.me,
    };
    if !valid {
        return refuse(
            link,
            format!(
                "machine {} is not expected here (this is machine {} of {})",
                machine.0,
                context.me.0,
                context.machines.len()
            ),
        )
        .await;
    }
    let ours = proof(&context.secret, context.me, &theirs.nonce, &nonce, hash)
        .finalize()
        .into_bytes();
    link.send(Bytes::from(frame::simple(Kind::Proof, &ours)))
        .await
        .map_err(|error| format!("write failed: {error}"))?;
    let bytes = next_frame(link).await?;
    let their_proof = match frame::parse(&bytes) {
        Ok(Frame::Proof(proof)) => proof,
        Ok(Frame::Refuse(reason)) => return Err(format!("the peer refused: {reason}")),
        Ok(other) => {
            return refuse(link, format!("expected a proof, got {:?}", kind_of(&other))).await;
        }
        Err(error) => return refuse(link, format!("bad proof: {error}")).await,
    };
    if proof(
        &context.secret,
        machine,
        &nonce,
        &theirs.nonce,
        theirs.fingerprint_hash,
    )
    .verify_slice(&their_proof)
    .is_err()
    {
        return refuse(
            link,
            format!(
                "wrong secret: machine {} does not know the cluster secret",
                machine.0
            ),
        )
        .await;
    }
    if theirs.fingerprint_hash != hash {
        let their_fingerprint =
            Fingerprint::from_lines(theirs.fingerprint.lines().map(str::to_owned).collect());
        let difference = context
            .fingerprint
            .first_difference(&their_fingerprint)
            .map_or_else(
                || "registries differ (their hash does not match their lines)".to_owned(),
                |difference| difference.to_string(),
            );
        return refuse(
            link,
            format!(
                "fingerprint mismatch between machine {} and machine {}: {difference}",
                context.me.0, machine.0
            ),
        )
        .await;
    }
    Ok((machine, theirs.turn))
}
