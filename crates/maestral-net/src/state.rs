//! The state directory's files, written safely: every write goes to a temp file of its own
//! (`O_EXCL`, owner-only where it holds a secret), is synced, renamed over the file and the
//! directory synced, so a crash leaves the old file or the new one, never half of one, and two
//! writers never truncate each other's temp file. A file that cannot be read is set aside as
//! `NAME.broken` (then `NAME.broken.1`, `.2`, …: an earlier one is never overwritten). One app
//! instance at a time holds the directory's lock.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The files a device keeps in its state directory, by name.
pub mod files {
    /// This device's id, one line.
    pub const DEVICE_ID: &str = "device-id";
    /// The last song and the last page per song.
    pub const POSITIONS: &str = "positions.json";
    /// The performer's set lists (concert programs) and the one in use.
    pub const SET_LISTS: &str = "setlists.json";
    /// The window's screen settings: layout, rotation, dark pages, UI size, large page number.
    pub const SETTINGS: &str = "settings.json";
    /// A Choir Master's session: certificate (private key), id, token, address, position.
    pub const MASTER_SESSION: &str = "master-session.json";
    /// A Choir Master's certificate (with its private key), kept across its sessions and
    /// restarts: it signs the Master's refusals, so a singer holding a code of an earlier
    /// session is told for good that it no longer works.
    pub const MASTER_IDENTITY: &str = "master-identity.json";
    /// A Follower's session: the join code (with its token) and what it last showed.
    pub const FOLLOWER_SESSION: &str = "follower-session.json";
    /// A Follower's certificate (with its private key) and the session it was made for: the
    /// Master binds a device id to the certificate it first joined with for the whole session,
    /// so joining the same session again (after Leave, a role switch or a restart) must use it.
    /// Replaced when another session is joined.
    pub const FOLLOWER_IDENTITY: &str = "follower-identity.json";
    /// A Solo pairing: this device's certificate and key, the partner's id, address, key and
    /// certificate fingerprint, and the shared position.
    pub const SOLO_PAIRING: &str = "solo-pairing.json";
    /// Held (`flock`) by the app instance using the directory.
    pub const LOCK: &str = "lock";
}

/// Writes `bytes` to `path` atomically (see the module doc); `secret`: readable by the owner
/// only (mode 0600 on Unix). Creates the directory if needed.
pub fn write_atomically(path: &Path, bytes: &[u8], secret: bool) -> io::Result<()> {
    let dir = parent(path);
    create_private_dir(dir)?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(if secret { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = secret;
    // A name no other writer uses: this process, a counter and a random part.
    let (tmp, mut file) = loop {
        let tmp =
            dir.join(format!(".{name}.{}.{:016x}.tmp", std::process::id(), rand::random::<u64>()));
        match opts.open(&tmp) {
            Ok(f) => break (tmp, f),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    };
    let written = file.write_all(bytes).and_then(|()| file.sync_all());
    drop(file);
    let renamed = written.and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = renamed {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(dir)
}

/// Removes `path` (a missing file is fine) and syncs the directory, so the removal survives a
/// crash.
pub fn remove(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => sync_dir(parent(path)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Moves an unreadable file aside, to the first free `NAME.broken`, `NAME.broken.1`, … (an
/// earlier broken file is never overwritten); returns where it went.
pub fn set_aside(path: &Path) -> io::Result<PathBuf> {
    for n in 0..1000u32 {
        let mut name = path.as_os_str().to_owned();
        name.push(".broken");
        if n > 0 {
            name.push(format!(".{n}"));
        }
        let aside = PathBuf::from(name);
        // A hard link fails where the name is taken, where a rename would replace it.
        match std::fs::hard_link(path, &aside) {
            Ok(()) => {
                std::fs::remove_file(path)?;
                sync_dir(parent(path))?;
                return Ok(aside);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            // No hard links here (some file systems): a rename to a name checked free.
            Err(_) if !aside.exists() => {
                std::fs::rename(path, &aside)?;
                return Ok(aside);
            }
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other("too many broken copies already kept"))
}

/// Why a state file could not be used. The file is never lost: a corrupt one is set aside.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateFileError {
    #[error("could not read {} ({reason})", path.display())]
    Read { path: PathBuf, reason: String },
    #[error("{} is unreadable ({reason}); it was kept as {}", path.display(), aside.display())]
    SetAside { path: PathBuf, aside: PathBuf, reason: String },
    #[error(
        "{} is unreadable ({reason}) and could not be set aside ({why})",
        path.display()
    )]
    Stuck { path: PathBuf, reason: String, why: String },
}

/// Reads a JSON state file: `Ok(None)` when there is none; a file that does not parse as a `T`
/// is set aside and the error says where it went.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, StateFileError> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(StateFileError::Read { path: path.to_owned(), reason: e.to_string() });
        }
    };
    match serde_json::from_slice::<T>(&text) {
        Ok(v) => Ok(Some(v)),
        Err(e) => {
            let reason = if text.is_empty() { "it is empty".to_owned() } else { e.to_string() };
            Err(broken(path, reason))
        }
    }
}

/// Sets `path` aside because of `reason`, as the error to report.
pub fn broken(path: &Path, reason: String) -> StateFileError {
    match set_aside(path) {
        Ok(aside) => StateFileError::SetAside { path: path.to_owned(), aside, reason },
        Err(e) => StateFileError::Stuck { path: path.to_owned(), reason, why: e.to_string() },
    }
}

/// The lock on a state directory, held while this value lives.
#[derive(Debug)]
pub struct StateLock {
    _file: File,
}

/// Why the state directory's lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another app instance holds it.
    #[error(
        "another Maestral is already running on {} — close it, or give this one its own --state-dir",
        dir.display()
    )]
    Held { dir: PathBuf },
    /// The directory cannot be written (nothing can be remembered, but nothing can be
    /// overwritten either).
    #[error("{} cannot be written ({reason}); this run will not remember anything", dir.display())]
    Unwritable { dir: PathBuf, reason: String },
}

/// Takes the lock of `dir` (creating the directory), without waiting.
pub fn lock(dir: &Path) -> Result<StateLock, LockError> {
    let unwritable =
        |e: io::Error| LockError::Unwritable { dir: dir.to_owned(), reason: e.to_string() };
    let path = dir.join(files::LOCK);
    let file = match create_private_dir(dir).and_then(|()| {
        OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path)
    }) {
        Ok(f) => f,
        // A read-only directory may still hold a lock file to lock (a lock needs no write).
        Err(e) => File::open(&path).map_err(|_| unwritable(e))?,
    };
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            return Err(LockError::Held { dir: dir.to_owned() });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(unwritable(e)),
    }
    // A folder made before it was made private (or by hand): others lose their access; the
    // owner's own bits stay as they are (a read-only folder stays read-only).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(dir)
            && meta.permissions().mode() & 0o077 != 0
        {
            let owner_only = std::fs::Permissions::from_mode(meta.permissions().mode() & 0o700);
            let _ = std::fs::set_permissions(dir, owner_only);
        }
    }
    // Writable at all? A directory we can lock but not write still says so, once.
    let probe = dir.join(format!(".probe.{}", std::process::id()));
    match OpenOptions::new().write(true).create(true).truncate(true).open(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(StateLock { _file: file })
        }
        Err(e) => Err(unwritable(e)),
    }
}

/// Creates `dir` and its missing parents for the owner only (0700 on Unix): the folder holds
/// session tokens and private keys.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Syncs a directory's entries (a rename is durable only then). Not possible on Windows; a
/// no-op there.
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "maestral-state-{name}-{}-{:x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    #[cfg(unix)]
    #[test]
    fn the_state_folder_is_the_owner_s_alone() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |d: &Path| std::fs::metadata(d).expect("meta").permissions().mode() & 0o777;
        let base = temp_dir("private");
        // Made by the app: 0700, parents included.
        let made = base.join("a").join("state");
        let held = lock(&made).expect("locks");
        assert_eq!(mode(&made), 0o700);
        assert_eq!(mode(&base.join("a")), 0o700);
        drop(held);
        // Made before, open to all: others lose their access at the next start.
        let old = base.join("old");
        std::fs::create_dir_all(&old).expect("dir");
        std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let _held = lock(&old).expect("locks");
        assert_eq!(mode(&old), 0o700);
        let _ = std::fs::remove_dir_all(base);
    }

    #[test]
    fn a_write_replaces_the_file_whole_and_leaves_no_temp_file() {
        let dir = temp_dir("write");
        let path = dir.join("f.json");
        write_atomically(&path, b"{\"a\":1}", false).expect("first write");
        write_atomically(&path, b"{\"a\":2}", true).expect("second write");
        assert_eq!(std::fs::read(&path).expect("read"), b"{\"a\":2}");
        let names: Vec<_> = std::fs::read_dir(&dir)
            .expect("list")
            .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
            .collect();
        assert_eq!(names, ["f.json"], "temp files left behind");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "a secret is the owner's only");
        }
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn concurrent_writers_each_leave_a_whole_file() {
        let dir = temp_dir("race");
        let path = dir.join("f.json");
        let writers: Vec<_> = (0..8u8)
            .map(|i| {
                let path = path.clone();
                std::thread::spawn(move || {
                    let body = vec![b'a' + i; 64 * 1024];
                    for _ in 0..20 {
                        write_atomically(&path, &body, false).expect("write");
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().expect("writer");
        }
        let bytes = std::fs::read(&path).expect("read");
        assert_eq!(bytes.len(), 64 * 1024);
        assert!(bytes.iter().all(|b| *b == bytes[0]), "two writers' bytes mixed in one file");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_corrupt_file_is_set_aside_and_an_earlier_broken_one_is_kept() {
        let dir = temp_dir("broken");
        let path = dir.join("s.json");
        std::fs::write(&path, b"{ first").expect("write");
        let err = read_json::<serde_json::Value>(&path).expect_err("corrupt");
        assert!(err.to_string().contains("s.json.broken"), "{err}");
        std::fs::write(&path, b"").expect("write");
        let err = read_json::<serde_json::Value>(&path).expect_err("empty");
        assert!(err.to_string().contains("it is empty"), "{err}");
        assert!(err.to_string().contains("s.json.broken.1"), "{err}");
        assert_eq!(std::fs::read(dir.join("s.json.broken")).expect("kept"), b"{ first");
        assert!(!path.exists());
        assert_eq!(read_json::<serde_json::Value>(&path), Ok(None));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_second_lock_on_the_directory_is_refused_until_the_first_goes() {
        let dir = temp_dir("lock");
        let first = lock(&dir).expect("first lock");
        let second = lock(&dir).expect_err("second lock");
        assert!(matches!(second, LockError::Held { .. }), "{second}");
        assert!(second.to_string().contains("already running"), "{second}");
        drop(first);
        lock(&dir).expect("free again");
        let _ = std::fs::remove_dir_all(dir);
    }
}
