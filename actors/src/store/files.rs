//! Atomic metadata files (Smap, RMD, BMD, config, node ID): a temp file in the same directory,
//! fsync, rename, fsync of the directory — so a crash leaves the old or the new file, never a
//! torn one.

use std::io::Write;
use std::path::Path;

use serde::{Serialize, de::DeserializeOwned};

use crate::error::{Error, Result};

// ---------------------------------------------------------------------------------------------

/// Writes `value` to `path` atomically (temp, fsync, rename, fsync dir).
pub fn persist<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let buf = rmp_serde::to_vec_named(value).map_err(|e| Error::Encode(e.to_string()))?;
    write_atomic(path, &buf)
}

pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| Error::BadRequest(format!("{} has no parent", path.display())))?;
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.tmp.{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("f"),
        std::process::id()
    ));
    {
        // Owner-only: the config carries password hashes and sealed keys, and nothing in the
        // metadata is anyone else's business.
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    sync_dir(dir)
}

/// Makes everything written on the filesystem holding `path` durable (syncfs(2)): one journal
/// commit for a whole batch of new files and renames, where an fsync per file and per
/// directory would cost one each.
pub fn sync_fs(path: &Path) -> Result<()> {
    let f = std::fs::File::open(path)?;
    rustix::fs::syncfs(&f).map_err(std::io::Error::from)?;
    Ok(())
}

/// Makes renames and new entries in `dir` durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

/// Loads a value written by [`persist`]; `Ok(None)` when the file does not exist.
pub fn load<T: DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    match std::fs::read(path) {
        Ok(buf) => rmp_serde::from_slice(&buf)
            .map(Some)
            .map_err(|e| Error::Decode(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn persist_and_load_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x/smap");
        assert!(load::<Vec<u32>>(&p).unwrap().is_none());
        persist(&p, &vec![1u32, 2, 3]).unwrap();
        assert_eq!(load::<Vec<u32>>(&p).unwrap(), Some(vec![1, 2, 3]));
        std::fs::write(&p, b"\xc1garbage").unwrap();
        assert!(load::<Vec<u32>>(&p).is_err());
    }
}
