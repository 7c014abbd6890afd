//! What each role keeps in the state directory, and the writer thread that keeps it (fsync must
//! not stall the engine). Every file here holds a secret (a token, a key, a private key): each
//! is written owner-only, through [`crate::state::write_atomically`].
//!
//! - `master-session.json` ([`SavedSession`]): the Master's certificate, session id, token,
//!   address and position, so a restarted Master resumes its session and stored codes work;
//! - `follower-session.json` ([`SavedMembership`]): the join code and what the Follower last
//!   showed, so a restarted Follower rejoins by itself; removed on `SESSION_END`, a refusal and
//!   Leave;
//! - `solo-pairing.json` ([`SavedPairing`]): this device's certificate, listener and key, the
//!   partner's id, name, certificate fingerprint, listener and key, the call-back counters, and
//!   the shared position with its stamps; removed on Unpair.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use maestral_protocol::{DeviceId, SoloState};
use tokio::sync::mpsc;

use super::error::SyncError;
use super::worker::Internal;
use crate::state::{self, files};

/// A Master's session as kept in its state directory.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct SavedSession {
    pub(crate) listen: SocketAddr,
    pub(crate) cert_pem: String,
    pub(crate) state: maestral_sync::MasterState,
    /// Each device id that joined the session, with the fingerprint of the certificate it
    /// joined with: a join under that id from another certificate is refused for the whole
    /// session, across a restart of the Master too.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub(crate) bound: std::collections::BTreeMap<DeviceId, String>,
}

/// A Follower's session as kept in its state directory.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct SavedMembership {
    /// The join code it joined with (the Master's address, session, token, fingerprint).
    pub(crate) join_code: String,
    pub(crate) session: maestral_sync::FollowerResume,
    /// The certificate (and private key) this Follower joins with: the Master binds the
    /// member's link to it, so a rejoin after a restart proves it is the same member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) cert_pem: Option<String>,
}

/// The certificate a Follower joins one session with ([`files::FOLLOWER_IDENTITY`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct SavedIdentity {
    pub(crate) session_id: String,
    pub(crate) cert_pem: String,
}

/// A Choir Master's certificate, kept across sessions ([`files::MASTER_IDENTITY`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct SavedMasterIdentity {
    pub(crate) cert_pem: String,
}

/// A Solo pairing as kept in the state directory.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct SavedPairing {
    /// This device's certificate (and private key): the partner pinned its fingerprint.
    pub(crate) cert_pem: String,
    /// Where this device's call-back listener was bound (bound there again after a restart,
    /// where the partner will call).
    pub(crate) listen: Option<SocketAddr>,
    pub(crate) partner: SavedPartner,
    /// The shared position and layout, with their stamps.
    pub(crate) state: Option<SoloState>,
    /// The page this device showed: after a restart it is alone until the partner answers,
    /// and shows that page (absent in older files: its half of the kept spread).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) shown: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct SavedPartner {
    pub(crate) id: DeviceId,
    pub(crate) name: String,
    /// The partner's DTLS certificate fingerprint (`sha-256 AB:…`), pinned at pairing.
    pub(crate) fingerprint: String,
    /// The key the partner's call-backs must prove (this device made it).
    pub(crate) my_key: String,
    /// The partner's listener and the key it accepts, from its `PAIR_INFO`.
    pub(crate) host: Option<SocketAddr>,
    pub(crate) their_key: Option<String>,
    /// The counter of this device's latest call-back (each call uses a larger one).
    pub(crate) sent: u64,
    /// The counter of the partner's latest accepted call-back (a replay is refused).
    pub(crate) seen: u64,
}

/// Reads one role's file: `Ok(None)` when there is none; a file that does not parse is set
/// aside and reported.
pub(crate) fn load<T: serde::de::DeserializeOwned>(
    dir: &Path,
    name: &'static str,
) -> Result<Option<T>, SyncError> {
    state::read_json::<T>(&dir.join(name)).map_err(|error| SyncError::StateFile { name, error })
}

/// The Master's saved session, if it has one running. A file whose token is not one a Master
/// makes is set aside (reported), and a new session starts.
pub(crate) fn load_session(dir: &Path) -> Result<Option<SavedSession>, SyncError> {
    let saved = load::<SavedSession>(dir, files::MASTER_SESSION)?
        .filter(|s| s.state.session_id.is_some() && s.state.session_token.is_some());
    if let Some(token) = saved.as_ref().and_then(|s| s.state.session_token.as_ref())
        && let Err(reason) = check_token(token)
    {
        let error = state::broken(&dir.join(files::MASTER_SESSION), reason);
        return Err(SyncError::StateFile { name: files::MASTER_SESSION, error });
    }
    Ok(saved)
}

/// Whether a stored token is one a Master makes (`Core::new_token`: 16 random bytes in
/// base32, 26 characters) or at least as long: 26 to 256 characters, letters, digits, `-` and
/// `_` only. An empty, short or odd token in a state file (damaged, edited, or written by
/// another account) is never used: a Master would let anyone who guesses it join, a Follower
/// would send it wherever its file says.
pub(crate) fn check_token(token: &maestral_protocol::SessionToken) -> Result<(), String> {
    let t = token.expose();
    if !(26..=256).contains(&t.len()) {
        return Err(format!("its session token has {} characters, not 26 to 256", t.len()));
    }
    if !t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err("its session token holds characters a token never has".into());
    }
    Ok(())
}

/// What a state directory holds for each role, as far as choosing the role at start needs (a
/// look only: a broken file is reported and set aside by the role that loads it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stored {
    /// A Master's session is kept.
    pub master_session: bool,
    /// A Follower's session is kept: `Some(host)`, the Master's listener (if readable).
    pub follower: Option<Option<SocketAddr>>,
    /// A Solo pairing is kept: `Some(host)`, the partner's listener (if known).
    pub solo: Option<Option<SocketAddr>>,
}

/// Looks at what `dir` keeps for each role.
pub fn stored(dir: &Path) -> Stored {
    let read = |name: &str| -> Option<serde_json::Value> {
        let text = std::fs::read(dir.join(name)).ok()?;
        Some(serde_json::from_slice(&text).unwrap_or(serde_json::Value::Null))
    };
    let master_session = read(files::MASTER_SESSION)
        .is_some_and(|v| !v["state"]["session_id"].is_null() || v.is_null());
    let follower = read(files::FOLLOWER_SESSION).map(|v| {
        v["join_code"]
            .as_str()
            .and_then(|c| c.parse::<crate::joincode::JoinCode>().ok())
            .map(|c| c.host)
    });
    // A pairing that names no partner is no pairing to resume (the Solo role still loads the
    // file, and reports and sets aside a broken one).
    let solo = read(files::SOLO_PAIRING)
        .filter(|v| v["partner"]["id"].is_string())
        .map(|v| v["partner"]["host"].as_str().and_then(|h| h.parse::<SocketAddr>().ok()));
    Stored { master_session, follower, solo }
}

/// One job for the writer: new content for the file, or `None` to remove it.
struct Job {
    path: PathBuf,
    bytes: Option<Vec<u8>>,
}

/// The thread that writes the role's files: for each file the newest content wins, each write
/// atomic and owner-only. Each result is reported as [`Internal::Saved`]; a failure streak of
/// one file is reported to the app once.
pub(crate) struct StateWriter {
    dir: PathBuf,
    jobs: Option<crossbeam_channel::Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
    failing: HashSet<&'static str>,
    done: mpsc::UnboundedSender<Internal>,
}

impl StateWriter {
    pub(crate) fn new(dir: PathBuf, done: mpsc::UnboundedSender<Internal>) -> Self {
        StateWriter { dir, jobs: None, thread: None, failing: HashSet::new(), done }
    }

    /// Writes `value` as the file `name` (on the writer thread).
    pub(crate) fn save(&mut self, name: &'static str, value: &impl serde::Serialize) {
        match serde_json::to_vec_pretty(value) {
            Ok(bytes) => self.send(name, Some(bytes)),
            Err(e) => tracing::warn!("{name} could not be encoded: {e}"),
        }
    }

    /// Removes the file `name` (on the writer thread, so a write still queued cannot bring it
    /// back).
    pub(crate) fn remove(&mut self, name: &'static str) {
        self.send(name, None);
    }

    fn send(&mut self, name: &'static str, bytes: Option<Vec<u8>>) {
        let path = self.dir.join(name);
        if self.jobs.is_none() {
            let (tx, rx) = crossbeam_channel::unbounded::<Job>();
            let done = self.done.clone();
            let spawned = std::thread::Builder::new()
                .name("maestral-state".into())
                .spawn(move || write_jobs(&rx, &done));
            match spawned {
                Ok(thread) => {
                    self.jobs = Some(tx);
                    self.thread = Some(thread);
                }
                Err(e) => {
                    tracing::warn!("could not start the thread that keeps {name}: {e}");
                    return;
                }
            }
        }
        if let Some(jobs) = &self.jobs
            && jobs.send(Job { path, bytes }).is_err()
        {
            tracing::warn!("the state writer has stopped; {name} is not kept");
        }
    }

    /// A write finished: the error to tell the app, once per failure streak of a file.
    pub(crate) fn finished(&mut self, name: &str, error: Option<String>) -> Option<SyncError> {
        let key = [files::MASTER_SESSION, files::FOLLOWER_SESSION, files::SOLO_PAIRING]
            .into_iter()
            .find(|n| *n == name)?;
        match error {
            None => {
                self.failing.remove(key);
                None
            }
            Some(reason) if self.failing.insert(key) => {
                Some(SyncError::SaveState { path: self.dir.join(key), reason })
            }
            Some(_) => None,
        }
    }

    /// Waits until every queued write has landed (a restart reads them).
    pub(crate) async fn finish(&mut self) {
        self.jobs = None;
        if let Some(thread) = self.thread.take()
            && tokio::task::spawn_blocking(move || thread.join()).await.is_err()
        {
            tracing::warn!("the state writer panicked; the last write may be lost");
        }
    }
}

fn write_jobs(rx: &crossbeam_channel::Receiver<Job>, done: &mpsc::UnboundedSender<Internal>) {
    while let Ok(first) = rx.recv() {
        // Newest content per file; in the order the files were first asked for.
        let mut batch: Vec<Job> = vec![first];
        while let Ok(job) = rx.try_recv() {
            match batch.iter_mut().find(|j| j.path == job.path) {
                Some(older) => *older = job,
                None => batch.push(job),
            }
        }
        for Job { path, bytes } in batch {
            let result = match bytes {
                Some(b) => state::write_atomically(&path, &b, true),
                None => state::remove(&path),
            };
            let name =
                path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let error = result.err().map(|e| e.to_string());
            if done.send(Internal::Saved { name, error }).is_err() {
                // The worker is gone; the remaining jobs are still written.
                tracing::debug!("a state write finished after the sync thread stopped");
            }
        }
    }
}
