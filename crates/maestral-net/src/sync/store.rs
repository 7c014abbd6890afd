//! The Master's session file (`master-session.json` in the state directory): reading it back
//! after a restart, and the writer thread that keeps it (fsync must not stall the engine).

use std::path::{Path, PathBuf};

use tokio::sync::mpsc;

use super::error::SyncError;
use super::worker::Internal;

/// A Master's session as kept in its state directory.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct SavedSession {
    pub(crate) listen: std::net::SocketAddr,
    pub(crate) cert_pem: String,
    pub(crate) state: maestral_sync::MasterState,
}

/// The session file in `dir`.
pub(crate) fn session_file(dir: &Path) -> PathBuf {
    dir.join("master-session.json")
}

/// The saved session, if there is a readable one with a session in it. A broken file is set
/// aside (never lost); the error says where.
pub(crate) fn load(path: &Path) -> Result<Option<SavedSession>, SyncError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(SyncError::ReadSession { path: path.to_owned(), reason: e.to_string() });
        }
    };
    match serde_json::from_str::<SavedSession>(&text) {
        Ok(s) if s.state.session_id.is_some() && s.state.session_token.is_some() => Ok(Some(s)),
        Ok(_) => Ok(None),
        Err(e) => {
            let aside = path.with_extension("json.broken");
            if let Err(rename) = std::fs::rename(path, &aside) {
                tracing::warn!("could not set {} aside: {rename}", path.display());
            }
            Err(SyncError::BrokenSession { path: path.to_owned(), aside, reason: e.to_string() })
        }
    }
}

/// Jobs for the session writer: new content, or `None` to remove the file.
pub(crate) type SessionWrites = crossbeam_channel::Sender<(PathBuf, Option<Vec<u8>>)>;

/// The thread that writes a Master's session file: newest content wins, each write is
/// `tmp` + fsync + rename, mode 0600 where the platform has modes. Each result is reported as
/// [`Internal::Saved`].
pub(crate) fn spawn_writer(
    done: mpsc::UnboundedSender<Internal>,
) -> (SessionWrites, std::thread::JoinHandle<()>) {
    let (tx, rx) = crossbeam_channel::unbounded::<(PathBuf, Option<Vec<u8>>)>();
    let handle = std::thread::spawn(move || {
        while let Ok(mut job) = rx.recv() {
            while let Ok(newer) = rx.try_recv() {
                job = newer;
            }
            let (path, bytes) = job;
            let r = match bytes {
                Some(b) => write_private_atomically(&path, &b),
                None => match std::fs::remove_file(&path) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                    _ => Ok(()),
                },
            };
            let r = r.map_err(|e| SyncError::SaveSession { path, reason: e.to_string() });
            if done.send(Internal::Saved(r.err())).is_err() {
                // The worker is gone; the remaining jobs are still written.
                tracing::debug!("session write finished after the sync thread stopped");
            }
        }
    });
    (tx, handle)
}

fn write_private_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("json.tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)
}
