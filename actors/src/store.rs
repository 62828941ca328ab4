//! Persistence: atomic metadata files (Smap, RMD, BMD, node ID) and the object file format.
//!
//! Every write is atomic: a temp file in the same directory, fsync, rename, fsync of the
//! directory. An object file is its data followed by a trailer — the MessagePack [`ObjMeta`], its
//! length and a magic — so bodies stream to disk while their checksum is computed, and the
//! metadata lands in the same rename as the data.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use tokio::io::AsyncWriteExt;

use crate::error::{Error, Result};

const MAGIC: &[u8; 4] = b"SHO1";
const TRAILER_FIXED: u64 = 8; // u32 meta length + magic
/// Metadata trailers larger than this are treated as corrupt (names are bounded well below).
const MAX_META: u32 = 64 * 1024;
/// Longest object name accepted, bytes.
pub const MAX_NAME: usize = 1024;

/// Metadata stored with every object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjMeta {
    pub bucket: String,
    pub object: String,
    pub size: u64,
    /// xxh3-64 of the content, lower-case hex.
    pub checksum: String,
    /// Write stamp: nanoseconds since the epoch at the first write, made unique and monotonic
    /// per node. The newest write wins when a rebalance brings an older copy.
    pub version: u64,
    /// Unix milliseconds of the write.
    pub mtime: u64,
}

// ---------------------------------------------------------------------------------------------
// Metadata files
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
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    sync_dir(dir);
    Ok(())
}

fn sync_dir(dir: &Path) {
    // Makes the rename durable; best effort where directories cannot be opened.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
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

// ---------------------------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------------------------

/// Checks a bucket name: short, and safe as one path component.
pub fn validate_bucket(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && name != "."
        && name != "..";
    if ok {
        Ok(())
    } else {
        Err(Error::BadRequest(format!(
            "invalid bucket name {name:?}: use 1-64 of [A-Za-z0-9._-]"
        )))
    }
}

pub fn validate_object(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_NAME || name.contains('\0') {
        return Err(Error::BadRequest(format!(
            "invalid object name (1-{MAX_NAME} bytes, no NUL)"
        )));
    }
    Ok(())
}

/// Encodes an object name as one file name: `[A-Za-z0-9._-]` kept, everything else `%XX`; names
/// whose encoding would be too long for a file name become `~<xxh3 hex>` (the full name lives in
/// the trailer).
pub fn encode_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if out.len() > 200 || out == "." || out == ".." || out.starts_with('.') {
        format!("~{:016x}", xxhash_rust::xxh3::xxh3_64(name.as_bytes()))
    } else {
        out
    }
}

/// Where `bucket/object` lives under a mountpath root.
pub fn object_path(mountpath: &Path, bucket: &str, object: &str) -> PathBuf {
    mountpath
        .join("objs")
        .join(bucket)
        .join(encode_name(object))
}

pub fn bucket_dir(mountpath: &Path, bucket: &str) -> PathBuf {
    mountpath.join("objs").join(bucket)
}

pub fn tmp_dir(mountpath: &Path) -> PathBuf {
    mountpath.join("tmp")
}

// ---------------------------------------------------------------------------------------------
// Versions
// ---------------------------------------------------------------------------------------------

static LAST_VERSION: AtomicU64 = AtomicU64::new(0);

/// A fresh write stamp: wall-clock nanoseconds, strictly increasing within this process.
pub fn next_version() -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut last = LAST_VERSION.load(Ordering::Relaxed);
    loop {
        let v = now.max(last + 1);
        match LAST_VERSION.compare_exchange_weak(last, v, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return v,
            Err(cur) => last = cur,
        }
    }
}

pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub fn unix_secs() -> u64 {
    unix_ms() / 1000
}

// ---------------------------------------------------------------------------------------------
// Object files
// ---------------------------------------------------------------------------------------------

/// Streams one object into a temp file on its mountpath, hashing as it goes.
pub struct ObjectWriter {
    file: tokio::io::BufWriter<tokio::fs::File>,
    tmp: PathBuf,
    hasher: xxhash_rust::xxh3::Xxh3,
    written: u64,
}

static TMP_SEQ: AtomicU64 = AtomicU64::new(0);

impl ObjectWriter {
    pub async fn create(mountpath: &Path) -> Result<Self> {
        if crate::fault::switch("disk_full") {
            return Err(Error::NoSpace(format!(
                "{}: no space left on device (fault disk_full)",
                mountpath.display()
            )));
        }
        let dir = tmp_dir(mountpath);
        tokio::fs::create_dir_all(&dir).await?;
        let tmp = dir.join(format!(
            "{}.{}",
            std::process::id(),
            TMP_SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let file = tokio::fs::File::create(&tmp).await.map_err(map_space)?;
        Ok(ObjectWriter {
            file: tokio::io::BufWriter::with_capacity(256 * 1024, file),
            tmp,
            hasher: xxhash_rust::xxh3::Xxh3::new(),
            written: 0,
        })
    }

    pub fn observe(&mut self, data: &[u8]) {
        self.hasher.update(data);
        self.written += data.len() as u64;
    }

    /// Adopts a hash computed alongside while the body was written through [`Self::file`].
    pub fn observe_digest(&mut self, hasher: xxhash_rust::xxh3::Xxh3) {
        self.hasher = hasher;
    }

    pub fn file(&mut self) -> &mut tokio::io::BufWriter<tokio::fs::File> {
        &mut self.file
    }

    pub fn checksum(&self) -> String {
        format!("{:016x}", self.hasher.digest())
    }

    pub fn written(&self) -> u64 {
        self.written
    }

    /// Appends the trailer and makes the temp file durable; the caller renames it into place.
    pub async fn finish(mut self, meta: &ObjMeta) -> Result<TempObject> {
        let m = rmp_serde::to_vec_named(meta).map_err(|e| Error::Encode(e.to_string()))?;
        self.file.write_all(&m).await.map_err(map_space)?;
        self.file
            .write_all(&(m.len() as u32).to_be_bytes())
            .await
            .map_err(map_space)?;
        self.file.write_all(MAGIC).await.map_err(map_space)?;
        self.file.flush().await.map_err(map_space)?;
        self.file.get_ref().sync_all().await.map_err(map_space)?;
        Ok(TempObject {
            tmp: self.tmp.clone(),
            done: false,
        })
    }

    /// Removes the temp file (abandoned write).
    pub async fn abort(self) {
        let _ = tokio::fs::remove_file(&self.tmp).await;
    }
}

fn map_space(e: std::io::Error) -> Error {
    if e.raw_os_error() == Some(28) {
        Error::NoSpace(e.to_string())
    } else {
        Error::Io(e)
    }
}

/// A complete, durable object file waiting to be renamed into place; removed if dropped.
pub struct TempObject {
    tmp: PathBuf,
    done: bool,
}

impl TempObject {
    /// Renames into `dest` atomically (creating its directory).
    pub fn commit(mut self, dest: &Path) -> Result<()> {
        if let Some(dir) = dest.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::rename(&self.tmp, dest)?;
        if let Some(dir) = dest.parent() {
            sync_dir(dir);
        }
        self.done = true;
        Ok(())
    }
}

impl Drop for TempObject {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Reads the trailer of an object file.
pub fn read_meta(path: &Path) -> Result<ObjMeta> {
    let mut f = std::fs::File::open(path)?;
    read_meta_from(&mut f, path)
}

fn read_meta_from(f: &mut std::fs::File, path: &Path) -> Result<ObjMeta> {
    let len = f.metadata()?.len();
    let corrupt = |why: &str| Error::Decode(format!("{}: {why}", path.display()));
    if len < TRAILER_FIXED {
        return Err(corrupt("too short for an object file"));
    }
    f.seek(SeekFrom::Start(len - TRAILER_FIXED))?;
    let mut fixed = [0u8; 8];
    f.read_exact(&mut fixed)?;
    if &fixed[4..] != MAGIC {
        return Err(corrupt("bad magic"));
    }
    let mlen = u32::from_be_bytes(fixed[..4].try_into().expect("4 bytes"));
    if mlen > MAX_META || u64::from(mlen) + TRAILER_FIXED > len {
        return Err(corrupt("bad trailer length"));
    }
    f.seek(SeekFrom::Start(len - TRAILER_FIXED - u64::from(mlen)))?;
    let mut m = vec![0u8; mlen as usize];
    f.read_exact(&mut m)?;
    let meta: ObjMeta = rmp_serde::from_slice(&m).map_err(|e| corrupt(&e.to_string()))?;
    if meta.size + u64::from(mlen) + TRAILER_FIXED != len {
        return Err(corrupt("size does not match the file"));
    }
    Ok(meta)
}

/// Opens an object for reading: the file positioned at the start of the data, and its meta.
pub async fn open_object(path: &Path) -> Result<(tokio::fs::File, ObjMeta)> {
    let p = path.to_path_buf();
    let (f, meta) = tokio::task::spawn_blocking(move || -> Result<_> {
        let mut f = std::fs::File::open(&p)?;
        let meta = read_meta_from(&mut f, &p)?;
        f.seek(SeekFrom::Start(0))?;
        Ok((f, meta))
    })
    .await
    .map_err(|e| Error::Io(std::io::Error::other(e)))??;
    Ok((tokio::fs::File::from_std(f), meta))
}

/// Recomputes the checksum of an object's data.
pub fn verify(path: &Path) -> Result<ObjMeta> {
    let mut f = std::fs::File::open(path)?;
    let meta = read_meta_from(&mut f, path)?;
    f.seek(SeekFrom::Start(0))?;
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    let mut left = meta.size;
    let mut buf = vec![0u8; 256 * 1024];
    while left > 0 {
        let n = (left as usize).min(buf.len());
        f.read_exact(&mut buf[..n])?;
        h.update(&buf[..n]);
        left -= n as u64;
    }
    let sum = format!("{:016x}", h.digest());
    if sum != meta.checksum {
        return Err(Error::Checksum(format!(
            "{}/{}: stored {} computed {sum}",
            meta.bucket, meta.object, meta.checksum
        )));
    }
    Ok(meta)
}

/// Striped per-object locks: make check-then-rename of one object atomic against other writers.
pub struct ObjLocks {
    stripes: Vec<tokio::sync::Mutex<()>>,
}

impl Default for ObjLocks {
    fn default() -> Self {
        ObjLocks {
            stripes: (0..256).map(|_| tokio::sync::Mutex::new(())).collect(),
        }
    }
}

impl ObjLocks {
    pub async fn lock(&self, bucket: &str, object: &str) -> tokio::sync::MutexGuard<'_, ()> {
        let h = xxhash_rust::xxh3::xxh3_64(format!("{bucket}/{object}").as_bytes());
        self.stripes[(h % self.stripes.len() as u64) as usize]
            .lock()
            .await
    }
}

/// Walks every object file under a mountpath, calling `f` with its path.
pub fn walk_objects(mountpath: &Path, mut f: impl FnMut(&Path, &str) -> bool) -> Result<()> {
    let root = mountpath.join("objs");
    let buckets = match std::fs::read_dir(&root) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    for b in buckets.flatten() {
        let bucket = b.file_name().to_string_lossy().to_string();
        let Ok(entries) = std::fs::read_dir(b.path()) else {
            continue;
        };
        for e in entries.flatten() {
            if !f(&e.path(), &bucket) {
                return Ok(());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_encode_to_single_components() {
        assert_eq!(encode_name("plain-name_1.txt"), "plain-name_1.txt");
        assert_eq!(encode_name("a/b c"), "a%2Fb%20c");
        assert!(!encode_name("..").contains('/'));
        assert!(encode_name("..").starts_with('~'));
        let long = "x/".repeat(300);
        let e = encode_name(&long);
        assert!(e.starts_with('~') && e.len() < 40);
        assert_ne!(encode_name("a/b"), encode_name("a%2Fb"));
    }

    #[test]
    fn versions_strictly_increase() {
        let a = next_version();
        let b = next_version();
        assert!(b > a);
    }

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

    #[tokio::test]
    async fn object_write_read_verify() {
        let dir = tempfile::tempdir().unwrap();
        let mp = dir.path();
        let mut w = ObjectWriter::create(mp).await.unwrap();
        let data = b"hello object";
        w.observe(data);
        w.file().write_all(data).await.unwrap();
        let meta = ObjMeta {
            bucket: "b".into(),
            object: "o/1".into(),
            size: data.len() as u64,
            checksum: w.checksum(),
            version: next_version(),
            mtime: unix_ms(),
        };
        let tmp = w.finish(&meta).await.unwrap();
        let dest = object_path(mp, "b", "o/1");
        tmp.commit(&dest).unwrap();
        assert_eq!(read_meta(&dest).unwrap(), meta);
        assert_eq!(verify(&dest).unwrap(), meta);
        let (mut f, m) = open_object(&dest).await.unwrap();
        let mut buf = vec![0u8; m.size as usize];
        tokio::io::AsyncReadExt::read_exact(&mut f, &mut buf)
            .await
            .unwrap();
        assert_eq!(&buf, data);
        // Flip a data byte: verify must catch it.
        let mut raw = std::fs::read(&dest).unwrap();
        raw[0] ^= 1;
        std::fs::write(&dest, raw).unwrap();
        assert!(matches!(verify(&dest), Err(Error::Checksum(_))));
        // Temp dir is empty: nothing left behind.
        assert_eq!(std::fs::read_dir(tmp_dir(mp)).unwrap().count(), 0);
    }

    #[test]
    fn corrupt_trailers_are_errors_not_panics() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        for bytes in [
            &b""[..],
            b"SHO1",
            b"\0\0\0\x05SHO1",
            b"xxxx\xff\xff\xff\xffSHO1",
        ] {
            std::fs::write(&p, bytes).unwrap();
            assert!(read_meta(&p).is_err());
        }
    }
}
