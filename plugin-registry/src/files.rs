//! The two filesystem guarantees the store is built on: a file is replaced
//! whole or not at all, and one writer at a time holds the registry lock.

use std::fs::File;
use std::io::Write as _;
use std::path::Path;

use crate::RegistryError;

/// Replaces `path` with `bytes` so that readers see the old file or the new
/// one, never a mix, even across a crash: a temporary file in the same
/// directory (its name starts with `.tmp`), fsynced, renamed over `path`,
/// then the directory fsynced so the rename itself is durable.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), RegistryError> {
    let dir = path.parent().expect("registry files live in a directory");
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .map_err(RegistryError::io("create a temporary file in", dir))?;
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(RegistryError::io("write", tmp.path()))?;
    tmp.persist(path)
        .map_err(|e| RegistryError::io("replace", path)(e.error))?;
    sync_dir(dir)
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> Result<(), RegistryError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(RegistryError::io("sync", dir))
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> Result<(), RegistryError> {
    Ok(())
}

/// An exclusive lock on the registry, released when dropped. It is an
/// advisory lock on an open file (`flock` on Unix, `LockFileEx` on Windows),
/// so it excludes other processes and other handles in this process alike,
/// and the kernel drops it if the holder dies.
pub(crate) struct RegistryLock {
    _file: File,
}

impl RegistryLock {
    /// Waits until no one else holds the lock on `path`.
    pub(crate) fn acquire(path: &Path) -> Result<Self, RegistryError> {
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(RegistryError::io("open", path))?;
        file.lock().map_err(RegistryError::io("lock", path))?;
        Ok(Self { _file: file })
    }
}
