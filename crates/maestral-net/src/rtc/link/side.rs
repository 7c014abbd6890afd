//! The side path of a [`Link`](super::Link): copies of register updates travel as UDP datagrams
//! straight between the two devices, outside SCTP.
//!
//! rtc-sctp 0.21.1 holds every message of an association behind lost chunks: after a
//! retransmission timeout (1 s at least, doubled at each) the congestion window is one packet
//! and the lost chunks fill it until they are retransmitted again, so unordered copies on
//! `maestral-copy` wait as long as the original. Measured under 30 % loss toward a Follower
//! (`cargo xtask faults --only "loss 30% to followers"`): pages waited up to 6.7 s. A datagram
//! waits for nothing.
//!
//! Each side binds a UDP socket on the link's address. Once the link opens it says, on a
//! reliable channel negotiated out of band ([`SIDE_CHANNEL_LABEL`], SCTP stream
//! [`SIDE_CHANNEL_ID`]), where that socket is and the key datagrams to it are to be sealed
//! with: `{"ip": IP, "port": N, "key": HEX64}`, the key random and fresh for the link. A
//! datagram is `SEQ (8 bytes, big-endian) | ChaCha20-Poly1305(key, nonce = 4 zero bytes | SEQ,
//! aad = "maestral-side-v1", text)`: sealed and authenticated as the DTLS channel would be, and
//! only the peer, told the key over DTLS, can make one. SEQ starts at 1 and never repeats under
//! a key (only the peer seals with it). The receiver takes a datagram that opens under its own
//! key with a SEQ it has not taken (a window of the last 64), from any address, and hands the
//! text on as a copy ([`LinkEvent::Copy`]): the engine applies it by the message's own rules,
//! so a copy that comes twice or late changes nothing. So a side can take datagrams before it
//! has heard where the peer's socket is.
//! Until the peer's announcement arrives (or where it never does: a peer without the channel),
//! this side's copies go on `maestral-copy`. An announcement is taken only if its address is the
//! one ICE validated for the link (the remote side of the selected candidate pair, which
//! answered connectivity checks): a peer cannot make this side send datagrams to a third host.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use maestral_protocol::{SIDE_CHANNEL_ID, SIDE_CHANNEL_LABEL};
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use serde::{Deserialize, Serialize};
use tokio::net::UdpSocket;
use tokio::runtime::Handle;
use webrtc::data_channel::{DataChannel, DataChannelEvent, RTCDataChannelInit};
use webrtc::peer_connection::PeerConnection;

use super::{LinkEvent, Shared};
use crate::rtc::{RtcError, webrtc_error};
use crate::sig::{hex, unhex};

/// A copy longer than this goes on the copy channel only (one datagram, never fragmented).
pub(super) const MAX_SIDE_TEXT: usize = 1200;

const CONTEXT: &[u8] = b"maestral-side-v1";
/// The sequence number before the sealed text, the AEAD tag after it.
const HEADER: usize = 8 + 16;

#[derive(Serialize, Deserialize)]
struct Hello {
    ip: IpAddr,
    port: u16,
    key: String,
}

/// The sequence numbers taken from the peer: the highest, and which of the 63 below it.
#[derive(Default)]
struct Window {
    top: u64,
    below: u64,
}

impl Window {
    /// Takes `seq` if it is new (not taken, and within 64 of the highest).
    fn take(&mut self, seq: u64) -> bool {
        if seq > self.top {
            let shift = seq - self.top;
            self.below = if shift >= 64 { 0 } else { (self.below << shift) | (1 << (shift - 1)) };
            if self.top == 0 {
                self.below = 0;
            }
            self.top = seq;
            return true;
        }
        let back = self.top - seq;
        if seq == 0 || back == 0 || back > 63 || self.below & (1 << (back - 1)) != 0 {
            return false;
        }
        self.below |= 1 << (back - 1);
        true
    }
}

/// Where the peer takes datagrams, and the key to seal them with.
struct Peer {
    addr: SocketAddr,
    key: [u8; 32],
}

/// This side's datagram socket and the key datagrams to it are sealed with, and the peer's
/// once announced.
pub(super) struct Side {
    socket: UdpSocket,
    here: SocketAddr,
    key: [u8; 32],
    state: Mutex<SideState>,
    hello: Arc<dyn DataChannel>,
}

#[derive(Default)]
struct SideState {
    sent: u64,
    taken: Window,
    peer: Option<Peer>,
}

/// Where a peer's announcement `text` says to send its datagrams, if it is whole and names
/// `validated`, the address ICE validated for the link.
fn announced(text: &str, validated: Option<IpAddr>) -> Option<Peer> {
    let h = serde_json::from_str::<Hello>(text).ok()?;
    let key = unhex(&h.key).and_then(|k| <[u8; 32]>::try_from(k).ok())?;
    if h.ip.is_unspecified() || h.ip.is_multicast() || h.port == 0 {
        return None;
    }
    if validated.map(|v| v.to_canonical()) != Some(h.ip.to_canonical()) {
        tracing::warn!(
            "a peer named {} for its datagrams, not its link's address {validated:?}: ignored",
            h.ip
        );
        return None;
    }
    Some(Peer { addr: SocketAddr::new(h.ip, h.port), key })
}

/// `text` as datagram number `seq`, sealed with `key`.
fn seal(key: &[u8; 32], seq: u64, text: &[u8]) -> Vec<u8> {
    let mut datagram = Vec::with_capacity(HEADER + text.len());
    datagram.extend_from_slice(&seq.to_be_bytes());
    let mut body = text.to_vec();
    let sealed = aead_key(key).seal_in_place_append_tag(nonce(seq), Aad::from(CONTEXT), &mut body);
    // Sealing fails only for a text over ~256 GiB.
    if sealed.is_ok() {
        datagram.extend_from_slice(&body);
    }
    datagram
}

/// The number and text of a datagram sealed with `key`; `None` for anything else (too short or
/// long, altered, another key, not UTF-8).
fn unseal(key: &[u8; 32], datagram: &[u8]) -> Option<(u64, String)> {
    if datagram.len() <= HEADER || datagram.len() > HEADER + MAX_SIDE_TEXT {
        return None;
    }
    let seq = u64::from_be_bytes(datagram[..8].try_into().ok()?);
    let mut body = datagram[8..].to_vec();
    let text = aead_key(key).open_in_place(nonce(seq), Aad::from(CONTEXT), &mut body).ok()?;
    Some((seq, String::from_utf8(text.to_vec()).ok()?))
}

fn aead_key(key: &[u8; 32]) -> LessSafeKey {
    let key = UnboundKey::new(&CHACHA20_POLY1305, key)
        .unwrap_or_else(|_| unreachable!("ChaCha20-Poly1305 takes a 32-byte key"));
    LessSafeKey::new(key)
}

/// Each side's key is its own and fresh for the link, and `seq` never repeats under it.
fn nonce(seq: u64) -> Nonce {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&seq.to_be_bytes());
    Nonce::assume_unique_for_key(n)
}

impl Side {
    fn lock(&self) -> std::sync::MutexGuard<'_, SideState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// This side's datagram address (tests send forged datagrams to it).
    pub(super) fn addr(&self) -> SocketAddr {
        self.here
    }

    /// Where the peer's datagrams come from, once it has said (they are sent from the socket
    /// it announced).
    fn peer_addr(&self) -> Option<SocketAddr> {
        self.lock().peer.as_ref().map(|p| p.addr)
    }

    /// Whether the peer has said where its socket is (copies go as datagrams).
    pub(super) fn ready(&self) -> bool {
        self.lock().peer.is_some()
    }

    /// Says where this side's socket is, on the side channel (once the link is open).
    pub(super) async fn say_hello(&self) {
        let hello = Hello { ip: self.here.ip(), port: self.here.port(), key: hex(&self.key) };
        if let Ok(text) = serde_json::to_string(&hello) {
            let _ = self.hello.send_text(&text).await;
        }
    }

    /// The peer's announcement (the first valid one; a later one changes nothing), taken only
    /// if it names `validated`, the address ICE validated for the link.
    fn heard(&self, text: &str, validated: Option<IpAddr>) {
        let Some(peer) = announced(text, validated) else { return };
        let mut state = self.lock();
        if state.peer.is_none() {
            state.peer = Some(peer);
        }
    }

    /// The next datagram of `text` and where it goes; `None` if it cannot go this way (the
    /// peer has not said where it is, or the text is too long for one datagram).
    fn sealed(&self, text: &str) -> Option<(SocketAddr, Vec<u8>)> {
        if text.len() > MAX_SIDE_TEXT {
            return None;
        }
        let mut state = self.lock();
        let (to, key) = state.peer.as_ref().map(|p| (p.addr, p.key))?;
        state.sent += 1;
        Some((to, seal(&key, state.sent, text.as_bytes())))
    }

    /// Sends `text` as a sealed datagram to the peer; `false` if it cannot go this way.
    pub(super) async fn send(&self, text: &str) -> bool {
        let Some((to, datagram)) = self.sealed(text) else { return false };
        // Lost or refused, it was only a copy.
        let _ = self.socket.send_to(&datagram, to).await;
        true
    }

    /// Sends `text` as a sealed datagram now, without waiting; `false` if it did not go (no
    /// side path, too long, or the socket's buffer full).
    pub(super) fn send_now(&self, text: &str) -> bool {
        let Some((to, datagram)) = self.sealed(text) else { return false };
        self.socket.try_send_to(&datagram, to).is_ok()
    }

    /// The text of a datagram, if the peer sealed it (under this side's key, with a sequence
    /// number not taken before).
    fn open(&self, datagram: &[u8]) -> Option<String> {
        let (seq, text) = unseal(&self.key, datagram)?;
        self.lock().taken.take(seq).then_some(text)
    }

    /// How many copies went as datagrams.
    pub(super) fn sent(&self) -> u64 {
        self.lock().sent
    }
}

/// Binds this side's datagram socket on the link's address and makes the side channel on `pc`
/// (nothing where the address is unspecified or no socket can be bound: copies then go on the
/// copy channel).
pub(super) async fn attach(
    shared: &Arc<Shared>,
    pc: &dyn PeerConnection,
    ip: IpAddr,
) -> Result<(), RtcError> {
    let init = RTCDataChannelInit { negotiated: Some(SIDE_CHANNEL_ID), ..Default::default() };
    let hello =
        pc.create_data_channel(SIDE_CHANNEL_LABEL, Some(init)).await.map_err(webrtc_error)?;
    // The socket and its reader live on the side runtime where the thread names one (the sync
    // thread's control runtime: never busy when a datagram comes), else on the link's own.
    let runtime = side_runtime().unwrap_or_else(|| shared.runtime.clone());
    let bound = if ip.is_unspecified() {
        None
    } else {
        match bind(&runtime, ip) {
            Ok(socket) => socket.local_addr().ok().map(|here| (socket, here)),
            Err(e) => {
                tracing::warn!("no side path for copies on {ip}: {e}");
                None
            }
        }
    };
    let Some((socket, here)) = bound else {
        // The channel still made, so the peer's announcement is read (and ignored).
        drop(shared.runtime.spawn(listen(Weak::new(), None, hello)));
        return Ok(());
    };
    let side = Arc::new(Side {
        socket,
        here,
        key: rand::random(),
        state: Mutex::default(),
        hello: Arc::clone(&hello),
    });
    shared.lock().side = Some(Arc::clone(&side));
    drop(shared.runtime.spawn(listen(Arc::downgrade(shared), Some(Arc::clone(&side)), hello)));
    drop(runtime.spawn(receive(Arc::downgrade(shared), side)));
    Ok(())
}

thread_local! {
    /// The runtime side paths made on this thread go on ([`set_side_runtime`]).
    static SIDE_RUNTIME: std::cell::RefCell<Option<Handle>> = const { std::cell::RefCell::new(None) };
}

/// Links made on this thread from now on read their side path's datagrams on `runtime`
/// (`None`: on the runtime the link is made on). The sync thread names its control runtime
/// here, on its own thread and on each of its bulk runtime's threads.
pub(crate) fn set_side_runtime(runtime: Option<Handle>) {
    SIDE_RUNTIME.with(|r| *r.borrow_mut() = runtime);
}

fn side_runtime() -> Option<Handle> {
    SIDE_RUNTIME.with(|r| r.borrow().clone())
}

/// A datagram socket on `ip` (any port), registered with `runtime`.
fn bind(runtime: &Handle, ip: IpAddr) -> std::io::Result<UdpSocket> {
    let socket = std::net::UdpSocket::bind(SocketAddr::new(ip, 0))?;
    socket.set_nonblocking(true)?;
    let _context = runtime.enter();
    UdpSocket::from_std(socket)
}

/// Reads the peer's announcement off the side channel; ends with the connection.
async fn listen(shared: Weak<Shared>, side: Option<Arc<Side>>, hello: Arc<dyn DataChannel>) {
    while let Some(event) = hello.poll().await {
        match event {
            DataChannelEvent::OnMessage(m) => {
                if let (Some(side), Ok(text)) = (&side, std::str::from_utf8(&m.data)) {
                    side.heard(text, validated_ip(&shared).await);
                }
            }
            DataChannelEvent::OnClose => break,
            _ => {}
        }
    }
}

/// The address ICE validated for the link: the remote side of its selected candidate pair (the
/// peer answered connectivity checks there). `None` before one is selected, or once closed.
async fn validated_ip(shared: &Weak<Shared>) -> Option<IpAddr> {
    let pc = shared.upgrade()?.peer_connection().ok()?;
    let ice = pc.sctp().await?.transport().ice_transport();
    let pair = ice.get_selected_candidate_pair().await.ok()??;
    pair.remote().address.parse().ok()
}

/// Datagrams per second that fail to open under this side's key before the rest of that second's
/// are dropped unopened. The socket takes datagrams from any address until the peer has said
/// where it is (then only from there), and is read on the control thread, which may run before
/// every other thread: junk from the LAN must not take a core. A copy dropped so is refreshed
/// within a second, and its original goes on the link as ever.
const MAX_REFUSED_PER_SECOND: u32 = 64;

/// Hands the peer's datagrams on as copies, between the link's Open and its close; ends (within
/// a second) once the link is closing or gone.
async fn receive(shared: Weak<Shared>, side: Arc<Side>) {
    let mut buf = vec![0u8; HEADER + MAX_SIDE_TEXT + 1];
    let (mut second, mut refused) = (tokio::time::Instant::now(), 0u32);
    loop {
        let got =
            tokio::time::timeout(Duration::from_secs(1), side.socket.recv_from(&mut buf)).await;
        let Some(shared) = shared.upgrade() else { return };
        let state = shared.lock();
        if state.closing {
            return;
        }
        let Ok(Ok((n, from))) = got else { continue };
        if !state.opened || side.peer_addr().is_some_and(|peer| peer != from) {
            continue;
        }
        if second.elapsed() >= Duration::from_secs(1) {
            (second, refused) = (tokio::time::Instant::now(), 0);
        }
        if refused >= MAX_REFUSED_PER_SECOND {
            continue;
        }
        match side.open(&buf[..n]) {
            Some(text) => Shared::emit(&state, LinkEvent::Copy(text)),
            None => refused += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{HEADER, MAX_SIDE_TEXT, Window, announced, seal, unseal};

    #[test]
    fn datagrams_go_only_to_the_address_ice_validated() {
        let key = "ab".repeat(32);
        let hello = |ip: &str| format!(r#"{{"ip":"{ip}","port":4000,"key":"{key}"}}"#);
        let link: std::net::IpAddr = "192.168.1.7".parse().expect("ip");
        let peer = announced(&hello("192.168.1.7"), Some(link)).expect("its own address");
        assert_eq!(peer.addr, "192.168.1.7:4000".parse::<std::net::SocketAddr>().expect("addr"));
        assert!(announced(&hello("192.168.1.99"), Some(link)).is_none(), "a third host");
        assert!(announced(&hello("192.168.1.7"), None).is_none(), "nothing validated yet");
        let mapped: std::net::IpAddr = "::ffff:192.168.1.7".parse().expect("ip");
        assert!(announced(&hello("192.168.1.7"), Some(mapped)).is_some(), "IPv4-mapped");
        assert!(announced(&hello("0.0.0.0"), Some(link)).is_none());
        assert!(announced("{}", Some(link)).is_none());
    }

    #[test]
    fn only_an_untouched_datagram_under_the_right_key_opens() {
        let key = [7u8; 32];
        let sealed = seal(&key, 42, b"page 3");
        assert_eq!(unseal(&key, &sealed), Some((42, "page 3".to_owned())));
        assert!(!sealed.windows(6).any(|w| w == b"page 3"), "the text travels sealed");
        assert_eq!(unseal(&[8u8; 32], &sealed), None, "another key");
        for at in [0, 7, 8, sealed.len() - 1] {
            let mut bad = sealed.clone();
            bad[at] ^= 1;
            assert_eq!(unseal(&key, &bad), None, "byte {at} changed");
        }
        assert_eq!(unseal(&key, &sealed[..HEADER]), None, "no text");
        assert_eq!(unseal(&key, &sealed[..sealed.len() - 1]), None, "cut short");
        assert_eq!(unseal(&key, &[]), None);
        let long = seal(&key, 1, "x".repeat(MAX_SIDE_TEXT + 1).as_bytes());
        assert_eq!(unseal(&key, &long), None, "over the limit");
        assert_eq!(unseal(&key, &seal(&key, 1, &[0xff, 0xfe])), None, "signed, but not text");
    }

    #[test]
    fn the_window_takes_each_number_once_and_nothing_far_behind() {
        let mut w = Window::default();
        assert!(!w.take(0), "0 is never sent");
        assert!(w.take(1));
        assert!(!w.take(1), "a replay");
        assert!(w.take(3));
        assert!(w.take(2), "reordered, still new");
        assert!(!w.take(2));
        assert!(w.take(100));
        assert!(!w.take(36), "64 or more behind the highest");
        assert!(w.take(37));
        assert!(!w.take(37));
        assert!(!w.take(3), "taken long ago, now out of the window");
        assert!(w.take(1000));
        assert!(!w.take(100));
    }
}
