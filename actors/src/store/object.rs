//! The object file format. An object file is its data followed by a trailer — the MessagePack
//! [`ObjMeta`], its length and a magic — so bodies stream to disk while their checksum is
//! computed, and the metadata lands in the same rename as the data. Writes are atomic: a temp
//! file on the same mountpath, renamed into place; durable once the filesystem is flushed, which
//! installs share (`LocalStore::install_flushed`), before anything is acknowledged.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};
use crate::logic::names::encode_name;
use crate::types::checksum::Checksum;
pub use crate::types::object::ObjMeta;

const MAGIC: &[u8; 4] = b"SHO1";
const TRAILER_FIXED: u64 = 8; // u32 meta length + magic
/// Metadata trailers larger than this are treated as corrupt (names are bounded well below).
const MAX_META: u32 = 64 * 1024;
/// Bytes read from an object file's end to find its trailer in one go.
const TAIL_READ: u64 = 4096;
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

/// Where a bucket's delete records live under a mountpath root.
pub fn tomb_dir(mountpath: &Path, bucket: &str) -> PathBuf {
    mountpath.join("tombs").join(bucket)
}

/// Reads a delete record.
pub fn read_tomb(path: &Path) -> Result<crate::types::object::Tomb> {
    super::files::load(path)?.ok_or_else(|| {
        Error::Io(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{}: no delete record", path.display()),
        ))
    })
}

/// Walks every delete record under a mountpath, calling `f` with its path.
pub fn walk_tombs(mountpath: &Path, mut f: impl FnMut(&Path, &str) -> bool) -> Result<()> {
    walk_dir(&mountpath.join("tombs"), |e, b| f(&e.path(), b))
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

// ---------------------------------------------------------------------------------------------
// Object files
// ---------------------------------------------------------------------------------------------

/// Streams one object into a temp file on its mountpath, hashing as it goes. Pieces are
/// written on the blocking pool from the buffers they arrived in (no copy), several to a trip
/// (one vectored write), with one trip in flight while the next pieces arrive: each trip wakes
/// two threads, so a trip per 128 KiB piece cost more than the writes needed. Small pieces are
/// gathered (copied) into one first.
pub struct ObjectWriter {
    /// The file while no write is in flight; the write in flight has it meanwhile.
    file: Option<std::fs::File>,
    in_flight: Option<tokio::task::JoinHandle<(std::fs::File, std::io::Result<()>)>>,
    gather: bytes::BytesMut,
    /// Pieces waiting for the next trip, in order, and their length.
    pending: Vec<bytes::Bytes>,
    pending_len: usize,
    tmp: PathBuf,
    hasher: Checksum,
    written: u64,
}

/// Pieces smaller than this are gathered before they are written.
const WRITE_MIN: usize = 128 << 10;
/// Bytes that go to the file in one trip to the blocking pool (the last trip, with the
/// trailer and the fsync, takes whatever is left). Bounds what a writer holds: about twice
/// this, half of it being written.
const WRITE_BATCH: usize = 512 << 10;

static TMP_SEQ: AtomicU64 = AtomicU64::new(0);

impl ObjectWriter {
    pub async fn create(mountpath: &Path) -> Result<Self> {
        refuse_if_full(mountpath)?;
        let dir = tmp_dir(mountpath);
        let tmp = dir.join(format!(
            "{}.{}",
            std::process::id(),
            TMP_SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let path = tmp.clone();
        // One trip: the directory is made only when it is missing (the mountpath makes it).
        let file = tokio::task::spawn_blocking(move || match std::fs::File::create(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(&dir)?;
                std::fs::File::create(&path)
            }
            other => other,
        })
        .await
        .map_err(|e| Error::Io(std::io::Error::other(e)))?
        .map_err(map_space)?;
        Ok(ObjectWriter {
            file: Some(file),
            in_flight: None,
            gather: bytes::BytesMut::new(),
            pending: Vec::new(),
            pending_len: 0,
            tmp,
            hasher: Checksum::new(),
            written: 0,
        })
    }

    /// Appends `data` to the object's body.
    pub async fn write(&mut self, data: bytes::Bytes) -> Result<()> {
        self.hasher.update(&data);
        self.written += data.len() as u64;
        if data.len() >= WRITE_MIN {
            self.take_gathered();
            self.queue(data);
        } else {
            self.gather.extend_from_slice(&data);
            if self.gather.len() >= WRITE_MIN {
                self.take_gathered();
            }
        }
        if self.pending_len >= WRITE_BATCH {
            self.submit().await?;
        }
        Ok(())
    }

    fn queue(&mut self, piece: bytes::Bytes) {
        self.pending_len += piece.len();
        self.pending.push(piece);
    }

    /// Queues what was gathered (before any later piece: the order is the body's).
    fn take_gathered(&mut self) {
        if !self.gather.is_empty() {
            let piece = self.gather.split().freeze();
            self.queue(piece);
        }
    }

    /// Waits for the write in flight, if any, and takes the file for the next step.
    async fn settle(&mut self) -> Result<std::fs::File> {
        if let Some(w) = self.in_flight.take() {
            let (file, res) = w.await.map_err(|e| Error::Io(std::io::Error::other(e)))?;
            res.map_err(map_space)?;
            return Ok(file);
        }
        self.file.take().ok_or_else(|| {
            Error::Io(std::io::Error::other(
                "the temp file was lost with a failed write",
            ))
        })
    }

    /// Starts writing the pending pieces once the write before them is done.
    async fn submit(&mut self) -> Result<()> {
        let mut file = self.settle().await?;
        let pieces = std::mem::take(&mut self.pending);
        self.pending_len = 0;
        self.in_flight = Some(tokio::task::spawn_blocking(move || {
            let res = write_pieces(&mut file, &pieces);
            (file, res)
        }));
        Ok(())
    }

    pub fn checksum(&self) -> String {
        self.hasher.hex()
    }

    pub fn written(&self) -> u64 {
        self.written
    }

    /// Appends the trailer; the caller renames the temp file into place. Nothing is durable
    /// yet: `LocalStore::install_flushed` makes it so (one flush of the filesystem, shared).
    pub async fn finish_unsynced(mut self, meta: &ObjMeta) -> Result<TempObject> {
        let m = rmp_serde::to_vec_named(meta).map_err(|e| Error::Encode(e.to_string()))?;
        self.gather.extend_from_slice(&m);
        self.gather
            .extend_from_slice(&(m.len() as u32).to_be_bytes());
        self.gather.extend_from_slice(MAGIC);
        self.take_gathered();
        let last = std::mem::take(&mut self.pending);
        let mut file = self.settle().await?;
        let (file, id) = tokio::task::spawn_blocking(move || {
            write_pieces(&mut file, &last)?;
            let id = file_id(&file)?;
            Ok::<_, std::io::Error>((file, id))
        })
        .await
        .map_err(|e| Error::Io(std::io::Error::other(e)))?
        .map_err(map_space)?;
        Ok(TempObject {
            tmp: self.tmp.clone(),
            file: Some(file),
            id,
            synced: false,
            done: false,
        })
    }

    /// Removes the temp file (abandoned write).
    pub async fn abort(mut self) {
        let _ = self.settle().await;
        let _ = tokio::fs::remove_file(&self.tmp).await;
    }
}

/// Starts writing `file`'s dirty pages to disk without waiting for them: the flush that
/// makes the object durable then finds its data on the way (or there) instead of starting
/// it, and the disk works while the rest of the body is still arriving.
fn start_writeback(file: &std::fs::File) {
    use std::os::fd::AsRawFd;
    // Advisory: the flush writes whatever this did not, and an error writing it back stays
    // with the file until `Unsynced::written_back` asks, after the flush.
    // SAFETY: a plain system call on an open descriptor; no memory is passed.
    unsafe {
        libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE);
    }
}

/// Writes `pieces` whole and in order, in as few vectored writes as the file takes, and starts
/// their writeback.
fn write_pieces(file: &mut std::fs::File, pieces: &[bytes::Bytes]) -> std::io::Result<()> {
    use std::io::{IoSlice, Write};
    let mut slices: Vec<IoSlice<'_>> = pieces.iter().map(|p| IoSlice::new(p)).collect();
    let mut left = &mut slices[..];
    IoSlice::advance_slices(&mut left, 0);
    while !left.is_empty() {
        match file.write_vectored(left) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut left, n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    start_writeback(file);
    Ok(())
}

/// Test builds: the fault switch `disk_full` makes every new object on `mountpath` fail as a
/// full disk would.
pub fn refuse_if_full(mountpath: &Path) -> Result<()> {
    if crate::fault::switch("disk_full") {
        return Err(Error::NoSpace(format!(
            "{}: no space left on device (fault disk_full)",
            mountpath.display()
        )));
    }
    Ok(())
}

/// An I/O error that is really a full disk, as such (the sender then backs off instead of
/// calling the receiver unreachable).
pub fn no_space(e: Error) -> Error {
    match e {
        Error::Io(io) => map_space(io),
        other => other,
    }
}

fn map_space(e: std::io::Error) -> Error {
    if e.raw_os_error() == Some(28) {
        Error::NoSpace(e.to_string())
    } else {
        Error::Io(e)
    }
}

/// A complete object file waiting to be renamed into place; removed if dropped.
pub struct TempObject {
    tmp: PathBuf,
    /// The writer's descriptor, for a streamed body: it keeps the file's writeback errors (its
    /// writeback started while the body was arriving) until [`Unsynced::written_back`] asks.
    file: Option<std::fs::File>,
    /// Which file a path names, once renamed.
    id: FileId,
    /// Made durable by [`TempObject::sync`].
    synced: bool,
    done: bool,
}

/// Which file: its device, its inode, and its last write (an inode number freed by a
/// delete may be given to the next file made).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileId {
    pub dev: u64,
    ino: u64,
    mtime_ns: i128,
}

impl FileId {
    fn of(m: &std::fs::Metadata) -> FileId {
        use std::os::unix::fs::MetadataExt;
        FileId {
            dev: m.dev(),
            ino: m.ino(),
            mtime_ns: m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128,
        }
    }
}

fn file_id(f: &std::fs::File) -> std::io::Result<FileId> {
    Ok(FileId::of(&f.metadata()?))
}

/// The size of the object `bucket/object` whose file is `len` bytes long, without reading its
/// trailer: exact for an object without attributes (its trailer's length follows from its
/// names and the widths of its numbers), an over-estimate by its attributes' bytes otherwise.
pub fn size_from_len(bucket: &str, object: &str, len: u64) -> u64 {
    // A version is nanoseconds since the epoch and an mtime milliseconds: both take the
    // widest encoding of a number. The size is encoded here as 0 (one byte).
    let like = ObjMeta {
        bucket: bucket.to_string(),
        object: object.to_string(),
        size: 0,
        checksum: crate::types::checksum::of(&[]),
        version: u64::MAX,
        mtime: u64::from(u32::MAX) + 1,
        attrs: Default::default(),
    };
    let Ok(meta) = rmp_serde::to_vec_named(&like) else {
        return len;
    };
    let rest = meta.len() as u64 - 1 + TRAILER_FIXED;
    // MessagePack's width of an unsigned number.
    let width = |n: u64| match n {
        0..=127 => 1,
        128..=0xff => 2,
        0x100..=0xffff => 3,
        0x1_0000..=0xffff_ffff => 5,
        _ => 9,
    };
    [1, 2, 3, 5, 9]
        .into_iter()
        .map(|w| len.saturating_sub(rest + w))
        .find(|&size| len == size + rest + width(size))
        .unwrap_or_else(|| len.saturating_sub(rest + 9))
}

/// Which file is at `p`.
pub fn path_id(p: &Path) -> std::io::Result<FileId> {
    Ok(FileId::of(&std::fs::metadata(p)?))
}

impl TempObject {
    /// Makes the temp file's data durable (before a rename that replaces an older copy).
    pub fn sync(&mut self) -> Result<()> {
        match &self.file {
            Some(f) => f.sync_all()?,
            None => std::fs::File::open(&self.tmp)?.sync_all()?,
        }
        self.synced = true;
        Ok(())
    }

    /// Renames into `dest` atomically, creating its directory. Nothing is durable yet: the
    /// caller flushes the whole filesystem ([`super::files::sync_fs`]), then asks the result
    /// whether the data made it ([`Unsynced::written_back`]), before acknowledging.
    pub fn commit_unsynced(mut self, dest: &Path) -> Result<Unsynced> {
        let dir = dest
            .parent()
            .ok_or_else(|| Error::BadRequest(format!("{} has no parent", dest.display())))?;
        // The directory is there but for a bucket's first object: tried first, not looked up
        // before every rename (a path walk per install).
        match std::fs::rename(&self.tmp, dest) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(dir)?;
                std::fs::rename(&self.tmp, dest)?;
            }
            other => other?,
        }
        self.done = true;
        Ok(Unsynced {
            path: dest.to_path_buf(),
            file: self.file.take(),
            id: self.id,
            synced: self.synced,
        })
    }
}

/// An object file renamed into place before its filesystem was flushed.
pub struct Unsynced {
    pub path: PathBuf,
    file: Option<std::fs::File>,
    id: FileId,
    /// Made durable before the rename ([`TempObject::sync`]): nothing left to check.
    synced: bool,
}

impl Unsynced {
    /// After the flush of its filesystem: whether the kernel wrote the file's data back. A
    /// `syncfs` reports a writeback error once, to whichever descriptor of the filesystem asks
    /// first — another install's flush, or another process's — so success of our own flush
    /// does not prove it; the error also stays with the file, for its own descriptors. The
    /// writer's, when it was kept, saw every write; a new one sees an error nobody has taken.
    pub fn written_back(&self) -> std::io::Result<()> {
        use std::os::fd::AsRawFd;
        if self.synced {
            return Ok(());
        }
        let opened;
        let f = match &self.file {
            Some(f) => f,
            None => match std::fs::File::open(&self.path) {
                // Deleted since, or replaced by a newer copy: stored, then gone.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Ok(f) if file_id(&f)? != self.id => return Ok(()),
                other => {
                    opened = other?;
                    &opened
                }
            },
        };
        let flags = libc::SYNC_FILE_RANGE_WAIT_BEFORE
            | libc::SYNC_FILE_RANGE_WRITE
            | libc::SYNC_FILE_RANGE_WAIT_AFTER;
        // SAFETY: a plain system call on an open descriptor; no memory is passed. With
        // WAIT_BEFORE it reports the file's writeback errors since the descriptor was opened.
        match unsafe { libc::sync_file_range(f.as_raw_fd(), 0, 0, flags) } {
            0 => Ok(()),
            _ => Err(std::io::Error::last_os_error()),
        }
    }

    /// Made durable before the rename: nothing could be lost after it.
    pub fn synced_before_rename(&self) -> bool {
        self.synced
    }

    /// Which file it is.
    pub fn id(&self) -> FileId {
        self.id
    }

    /// The file `id` at `path`, renamed there by an install that did not confirm it, to be
    /// checked by another (see [`Self::written_back`]).
    pub fn at(path: PathBuf, id: FileId) -> Unsynced {
        Unsynced {
            path,
            file: None,
            id,
            synced: false,
        }
    }

    /// Whether `path` still names this file (and not a newer copy renamed over it).
    pub fn still_at_path(&self) -> bool {
        path_id(&self.path).is_ok_and(|id| id == self.id)
    }
}

/// Writes a whole small object (data and trailer) to a temp file on `mountpath` in one trip
/// off the runtime, not yet durable: see [`TempObject::commit_unsynced`]. The file is closed
/// once written: a rebalance batch holds many, and the check after the flush opens each again
/// (see [`Unsynced::written_back`]).
pub fn write_temp_unsynced(mountpath: &Path, meta: &ObjMeta, data: &[u8]) -> Result<TempObject> {
    write_temp(mountpath, meta, data, false)
}

/// As [`write_temp_unsynced`], keeping the file open for the check after the flush: one
/// object (a put) spares an open, a stat and a close, and the writer's own descriptor sees
/// every writeback error of the file.
pub fn write_temp_unsynced_open(
    mountpath: &Path,
    meta: &ObjMeta,
    data: &[u8],
) -> Result<TempObject> {
    write_temp(mountpath, meta, data, true)
}

fn write_temp(mountpath: &Path, meta: &ObjMeta, data: &[u8], keep: bool) -> Result<TempObject> {
    refuse_if_full(mountpath)?;
    let dir = tmp_dir(mountpath);
    let tmp = dir.join(format!(
        "{}.{}",
        std::process::id(),
        TMP_SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let m = rmp_serde::to_vec_named(meta).map_err(|e| Error::Encode(e.to_string()))?;
    let mut buf = Vec::with_capacity(data.len() + m.len() + TRAILER_FIXED as usize);
    buf.extend_from_slice(data);
    buf.extend_from_slice(&m);
    buf.extend_from_slice(&(m.len() as u32).to_be_bytes());
    buf.extend_from_slice(MAGIC);
    let mut t = TempObject {
        tmp: tmp.clone(),
        file: None,
        id: FileId {
            dev: 0,
            ino: 0,
            mtime_ns: 0,
        },
        synced: false,
        done: false,
    };
    // One write: the file exists only as a temp until renamed, and is removed if this fails.
    // The temp directory exists but for the first write on a mountpath.
    let write = || -> std::io::Result<(FileId, std::fs::File)> {
        let mut f = std::fs::File::create(&tmp)?;
        std::io::Write::write_all(&mut f, &buf)?;
        Ok((file_id(&f)?, f))
    };
    let (id, f) = match write() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(&dir).map_err(map_space)?;
            write().map_err(map_space)?
        }
        other => other.map_err(map_space)?,
    };
    t.id = id;
    t.file = keep.then_some(f);
    Ok(t)
}

/// Reads a whole object file at once (one open, one read): its meta, and its data appended to
/// `out` (a batch body read in place, no copy); on an error `out` is left as it was. For small
/// objects only — the caller bounds the size (`max`; a larger file is an error, read it
/// streaming instead). Also says which file it read, so that the copy can later be removed
/// only if it is still that file.
pub fn read_small_into(path: &Path, max: u64, out: &mut Vec<u8>) -> Result<(ObjMeta, FileId)> {
    let mut f = std::fs::File::open(path)?;
    let md = f.metadata()?;
    let len = md.len();
    if len > max + u64::from(MAX_META) + TRAILER_FIXED {
        return Err(Error::BadRequest(format!(
            "{}: {len} bytes is not a small object",
            path.display()
        )));
    }
    let start = out.len();
    out.reserve(len as usize);
    // Bounded by the length: no further read to find the end.
    let res = (&mut f)
        .take(len)
        .read_to_end(out)
        .map_err(Error::from)
        .and_then(|_| meta_from_file_bytes(&out[start..], path))
        .and_then(|m| {
            if m.size > max {
                Err(Error::BadRequest(format!(
                    "{}: {} bytes is not a small object",
                    path.display(),
                    m.size
                )))
            } else {
                Ok(m)
            }
        });
    match res {
        Ok(meta) => {
            out.truncate(start + meta.size as usize);
            Ok((meta, FileId::of(&md)))
        }
        Err(e) => {
            out.truncate(start);
            Err(e)
        }
    }
}

/// The trailer of an object file held whole in memory.
fn meta_from_file_bytes(buf: &[u8], path: &Path) -> Result<ObjMeta> {
    let corrupt = |why: &str| Error::Decode(format!("{}: {why}", path.display()));
    let len = buf.len();
    let fixed = TRAILER_FIXED as usize;
    if len < fixed {
        return Err(corrupt("too short for an object file"));
    }
    if &buf[len - 4..] != MAGIC {
        return Err(corrupt("bad magic"));
    }
    let mlen = u32::from_be_bytes(buf[len - fixed..len - 4].try_into().expect("4 bytes"));
    if mlen > MAX_META || mlen as usize + fixed > len {
        return Err(corrupt("bad trailer length"));
    }
    let start = len - fixed - mlen as usize;
    let meta: ObjMeta =
        rmp_serde::from_slice(&buf[start..len - fixed]).map_err(|e| corrupt(&e.to_string()))?;
    if meta.size != start as u64 {
        return Err(corrupt("size does not match the file"));
    }
    Ok(meta)
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

/// What a look at an object file holds besides its metadata.
#[derive(Debug)]
pub enum Held {
    /// The whole data: the object was small.
    Data(Vec<u8>),
    /// The file, open (its data starts at offset 0): sent from as it is, with no second open,
    /// it is the very version the metadata describes even if the object is replaced meanwhile.
    File(std::fs::File),
}

#[cfg(test)]
impl Held {
    pub fn data(&self) -> Option<&[u8]> {
        match self {
            Held::Data(d) => Some(d),
            Held::File(_) => None,
        }
    }
}

/// An object file's metadata and, when its data is at most about `whole` bytes, the data too:
/// one open and one read for a small object (a GET's whole answer, where looking up the
/// trailer alone would already read most of the file); otherwise the open file.
pub fn read_meta_and_small(path: &Path, whole: u64) -> Result<(ObjMeta, Held)> {
    let mut f = std::fs::File::open(path)?;
    if whole == 0 {
        return read_meta_from(&mut f, path).map(|m| (m, Held::File(f)));
    }
    // One read into room for one byte more than a small file: what comes back short of that
    // is the whole file (files are replaced, never changed in place), learnt without a stat.
    // The buffer is not zeroed first: the read fills what it returns. At an offset, so that a
    // file given back open still reads from its start.
    let room = (whole + TAIL_READ) as usize + 1;
    let mut buf = Vec::with_capacity(room);
    let n = loop {
        match rustix::io::pread(&f, rustix::buffer::spare_capacity(&mut buf), 0) {
            Err(rustix::io::Errno::INTR) => {}
            other => break other.map_err(std::io::Error::from)?,
        }
    };
    if n < room {
        // A trailer that does not add up in what came back (a read cut short by something
        // other than the end) is checked again the long way, which reads by the stated size.
        if let Ok(meta) = meta_from_file_bytes(&buf, path) {
            buf.truncate(meta.size as usize);
            return Ok((meta, Held::Data(buf)));
        }
    }
    read_meta_from(&mut f, path).map(|m| (m, Held::File(f)))
}

fn read_meta_from(f: &mut std::fs::File, path: &Path) -> Result<ObjMeta> {
    use std::os::unix::fs::FileExt;
    let len = f.metadata()?.len();
    let corrupt = |why: &str| Error::Decode(format!("{}: {why}", path.display()));
    if len < TRAILER_FIXED {
        return Err(corrupt("too short for an object file"));
    }
    // One read of the file's tail holds a usual trailer whole (walks read every object's).
    let tail_len = len.min(TAIL_READ);
    let mut tail = vec![0u8; tail_len as usize];
    f.read_exact_at(&mut tail, len - tail_len)?;
    let fixed = &tail[tail.len() - TRAILER_FIXED as usize..];
    if &fixed[4..] != MAGIC {
        return Err(corrupt("bad magic"));
    }
    let mlen = u32::from_be_bytes(fixed[..4].try_into().expect("4 bytes"));
    if mlen > MAX_META || u64::from(mlen) + TRAILER_FIXED > len {
        return Err(corrupt("bad trailer length"));
    }
    let m = if u64::from(mlen) + TRAILER_FIXED <= tail_len {
        let end = tail.len() - TRAILER_FIXED as usize;
        tail[end - mlen as usize..end].to_vec()
    } else {
        let mut m = vec![0u8; mlen as usize];
        f.read_exact_at(&mut m, len - TRAILER_FIXED - u64::from(mlen))?;
        m
    };
    let meta: ObjMeta = rmp_serde::from_slice(&m).map_err(|e| corrupt(&e.to_string()))?;
    if meta.size + u64::from(mlen) + TRAILER_FIXED != len {
        return Err(corrupt("size does not match the file"));
    }
    Ok(meta)
}

/// Opens an object for reading (its data starts at offset 0): the file and its meta.
pub async fn open_object(path: &Path) -> Result<(std::fs::File, ObjMeta)> {
    let p = path.to_path_buf();
    tokio::task::spawn_blocking(move || -> Result<_> {
        let mut f = std::fs::File::open(&p)?;
        let meta = read_meta_from(&mut f, &p)?;
        Ok((f, meta))
    })
    .await
    .map_err(|e| Error::Io(std::io::Error::other(e)))?
}

/// Recomputes the checksum of an object's data (tests: a GET checks its open file with
/// [`verify_data`]).
#[cfg(test)]
pub fn verify(path: &Path) -> Result<ObjMeta> {
    let mut f = std::fs::File::open(path)?;
    let meta = read_meta_from(&mut f, path)?;
    verify_data(&f, &meta)?;
    Ok(meta)
}

/// Checks that the data of the open object file `f` hashes to `meta`'s checksum (positioned
/// reads: the file's cursor does not move).
pub fn verify_data(f: &std::fs::File, meta: &ObjMeta) -> Result<()> {
    use std::os::unix::fs::FileExt;
    let mut h = Checksum::new();
    let mut at = 0;
    let mut buf = vec![0u8; 256 * 1024];
    while at < meta.size {
        let n = ((meta.size - at) as usize).min(buf.len());
        f.read_exact_at(&mut buf[..n], at)?;
        h.update(&buf[..n]);
        at += n as u64;
    }
    let sum = h.hex();
    if sum != meta.checksum {
        return Err(Error::Checksum(format!(
            "{}/{}: stored {} computed {sum}",
            meta.bucket, meta.object, meta.checksum
        )));
    }
    Ok(())
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
    fn stripe(&self, bucket: &str, object: &str) -> &tokio::sync::Mutex<()> {
        let h = xxhash_rust::xxh3::xxh3_64(format!("{bucket}/{object}").as_bytes());
        &self.stripes[(h % self.stripes.len() as u64) as usize]
    }

    pub async fn lock(&self, bucket: &str, object: &str) -> tokio::sync::MutexGuard<'_, ()> {
        self.stripe(bucket, object).lock().await
    }

    /// The same lock, taken from a blocking thread (never from async code: it would block a
    /// runtime worker).
    pub fn blocking_lock(&self, bucket: &str, object: &str) -> tokio::sync::MutexGuard<'_, ()> {
        self.stripe(bucket, object).blocking_lock()
    }
}

/// Walks every object file under a mountpath, calling `f` with its path.
pub fn walk_objects(mountpath: &Path, mut f: impl FnMut(&Path, &str) -> bool) -> Result<()> {
    walk_dir(&mountpath.join("objs"), |e, b| f(&e.path(), b))
}

/// As [`walk_objects`], with each file's directory entry: its name and its length are had
/// without opening it.
pub fn walk_object_entries(
    mountpath: &Path,
    f: impl FnMut(&std::fs::DirEntry, &str) -> bool,
) -> Result<()> {
    walk_dir(&mountpath.join("objs"), f)
}

/// Walks `<root>/<bucket>/<file>`.
fn walk_dir(root: &Path, mut f: impl FnMut(&std::fs::DirEntry, &str) -> bool) -> Result<()> {
    let root = root.to_path_buf();
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
            if !f(&e, &bucket) {
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
    fn versions_strictly_increase() {
        let a = next_version();
        let b = next_version();
        assert!(b > a);
    }

    /// The meta of `b/o` holding `data`, stamped `version`.
    fn meta_of(data: &[u8], version: u64) -> ObjMeta {
        ObjMeta {
            bucket: "b".into(),
            object: "o".into(),
            size: data.len() as u64,
            checksum: format!("{:016x}", xxhash_rust::xxh3::xxh3_64(data)),
            version,
            mtime: 0,
            attrs: Default::default(),
        }
    }

    /// An object's size from its file's length alone: exact without attributes, whatever the
    /// widths of its numbers and names; over by its attributes' bytes with them.
    #[test]
    fn a_files_length_says_its_objects_size() {
        let dir = tempfile::tempdir().unwrap();
        let sizes = [
            0, 1, 100, 127, 128, 200, 255, 256, 300, 65_535, 65_536, 70_000,
        ];
        for name in ["o", &"n".repeat(40), &"l".repeat(200)] {
            for size in sizes {
                let data = vec![9u8; size];
                let mut meta = meta_of(&data, next_version());
                meta.object = name.to_string();
                meta.mtime = crate::types::unix_ms();
                let path = dir.path().join("f");
                write_temp_unsynced(dir.path(), &meta, &data)
                    .unwrap()
                    .commit_unsynced(&path)
                    .unwrap();
                let len = std::fs::metadata(&path).unwrap().len();
                assert_eq!(size_from_len("b", name, len), size as u64, "{name} {size}");
                meta.attrs.content_type = Some("text/plain".into());
                write_temp_unsynced(dir.path(), &meta, &data)
                    .unwrap()
                    .commit_unsynced(&path)
                    .unwrap();
                let len = std::fs::metadata(&path).unwrap().len();
                let est = size_from_len("b", name, len);
                assert!(est > size as u64 && est <= size as u64 + 12, "{est} {size}");
            }
        }
    }

    /// A bucket's first object makes its directory; a temp gone before its rename is an error
    /// that leaves nothing at the destination.
    #[test]
    fn a_commit_makes_the_directory_it_needs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("objs/b/o.obj");
        let meta = meta_of(b"one", 1);
        write_temp_unsynced(dir.path(), &meta, b"one")
            .unwrap()
            .commit_unsynced(&path)
            .unwrap();
        assert_eq!(read_meta(&path).unwrap(), meta);
        let t = write_temp_unsynced(dir.path(), &meta, b"one").unwrap();
        std::fs::remove_file(&t.tmp).unwrap();
        let lost = dir.path().join("objs/c/o.obj");
        let e = t.commit_unsynced(&lost).err().expect("no temp to rename");
        assert!(
            matches!(&e, Error::Io(io) if io.kind() == std::io::ErrorKind::NotFound),
            "{e}"
        );
        assert!(!lost.exists());
    }

    #[test]
    fn the_check_after_the_flush_names_the_file_it_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("o.obj");
        let meta = meta_of(b"one", 1);
        let u = write_temp_unsynced(dir.path(), &meta, b"one")
            .unwrap()
            .commit_unsynced(&path)
            .unwrap();
        assert!(u.still_at_path());
        u.written_back().unwrap();
        assert!(u.still_at_path());
        // A newer copy renamed over it: the path no longer names the file checked.
        write_temp_unsynced(dir.path(), &meta_of(b"two", 2), b"two")
            .unwrap()
            .commit_unsynced(&path)
            .unwrap();
        assert!(!u.still_at_path());
        // Replaced before its check: the newer copy is not its to judge.
        u.written_back().unwrap();
        // Deleted before its check: stored, then gone, not a failure.
        let gone = write_temp_unsynced(dir.path(), &meta, b"one")
            .unwrap()
            .commit_unsynced(&dir.path().join("g.obj"))
            .unwrap();
        std::fs::remove_file(dir.path().join("g.obj")).unwrap();
        gone.written_back().unwrap();
        assert!(!gone.still_at_path());
    }

    /// A put's temp file keeps its writer's descriptor through the rename, for the check after
    /// the flush; a batch's does not (it holds many).
    #[test]
    fn a_put_keeps_its_writer_descriptor_for_the_check_and_a_batch_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let meta = meta_of(b"one", 1);
        let kept = write_temp_unsynced_open(dir.path(), &meta, b"one").unwrap();
        assert!(kept.file.is_some());
        let u = kept.commit_unsynced(&dir.path().join("k.obj")).unwrap();
        assert!(u.file.is_some());
        // Checked on the writer's descriptor: even once unlinked, its own data was written.
        std::fs::remove_file(dir.path().join("k.obj")).unwrap();
        u.written_back().unwrap();
        let closed = write_temp_unsynced(dir.path(), &meta, b"one").unwrap();
        assert!(closed.file.is_none());
        assert_eq!(read_meta(&closed.tmp).unwrap(), meta);
    }

    #[test]
    fn small_reads_append_in_place_and_refuse_what_is_not_an_object() {
        let dir = tempfile::tempdir().unwrap();
        let data = b"hello batch";
        let meta = meta_of(data, 7);
        let t = write_temp_unsynced(dir.path(), &meta, data).unwrap();
        let path = dir.path().join("o.obj");
        t.commit_unsynced(&path).unwrap();
        let mut body = b"before".to_vec();
        let (read, id) = read_small_into(&path, 1024, &mut body).unwrap();
        assert_eq!(read, meta);
        assert_eq!(id, path_id(&path).unwrap(), "it names the file it read");
        assert_eq!(body, b"beforehello batch");
        // The trailer agrees with the streaming reader's view.
        assert_eq!(read_meta(&path).unwrap(), meta);
        // Too large for a small read: refused, `out` untouched.
        assert!(matches!(
            read_small_into(&path, 1, &mut body),
            Err(Error::BadRequest(_))
        ));
        assert_eq!(body, b"beforehello batch");
        // Torn or foreign files: errors, never a panic, `out` untouched.
        let full = std::fs::read(&path).unwrap();
        for cut in [0, 3, 8, full.len() - 1] {
            std::fs::write(&path, &full[..cut]).unwrap();
            assert!(
                read_small_into(&path, 1024, &mut body).is_err(),
                "cut {cut}"
            );
            assert_eq!(body, b"beforehello batch");
        }
        let mut bad = full.clone();
        let n = bad.len();
        bad[n - 5] ^= 0xff; // the trailer length
        std::fs::write(&path, &bad).unwrap();
        assert!(read_small_into(&path, 1024, &mut body).is_err());

        // A trailer larger than the one tail read (big user metadata): read in a second step.
        let mut big = meta.clone();
        big.attrs.user_meta.insert("k".into(), "v".repeat(10_000));
        let t = write_temp_unsynced(dir.path(), &big, data).unwrap();
        t.commit_unsynced(&path).unwrap();
        assert_eq!(read_meta(&path).unwrap(), big);
        let mut whole = Vec::new();
        assert_eq!(read_small_into(&path, 1024, &mut whole).unwrap().0, big);
        assert_eq!(whole, data);
    }

    /// A GET's lookup: a small object comes back whole with its trailer, a larger one (or
    /// `whole` 0) as its trailer alone; torn files are errors, never a panic.
    #[test]
    fn meta_and_small_data_in_one_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("o.obj");
        let small = vec![5u8; 1000];
        write_temp_unsynced(dir.path(), &meta_of(&small, 9), &small)
            .unwrap()
            .commit_unsynced(&path)
            .unwrap();
        let (m, held) = read_meta_and_small(&path, 1000).unwrap();
        assert_eq!((m, held.data()), (meta_of(&small, 9), Some(&small[..])));
        let (m, held) = read_meta_and_small(&path, 0).unwrap();
        assert_eq!((m, held.data()), (meta_of(&small, 9), None));

        let large = vec![6u8; 3 * TAIL_READ as usize];
        write_temp_unsynced(dir.path(), &meta_of(&large, 9), &large)
            .unwrap()
            .commit_unsynced(&path)
            .unwrap();
        let (m, held) = read_meta_and_small(&path, 1000).unwrap();
        assert_eq!(m, meta_of(&large, 9));
        // The open file comes back, and it is the version read even once replaced.
        let Held::File(mut f) = held else {
            panic!("a large object came back whole")
        };
        write_temp_unsynced(dir.path(), &meta_of(&small, 10), &small)
            .unwrap()
            .commit_unsynced(&path)
            .unwrap();
        let mut body = vec![0u8; large.len()];
        std::io::Read::read_exact(&mut f, &mut body).unwrap();
        assert_eq!(body, large);

        // At the boundary: a file of `whole + TAIL_READ` bytes comes back whole (one read), one
        // byte more comes back open.
        let trailer = std::fs::metadata(&path).unwrap().len() as usize - small.len();
        for (extra, whole) in [(0, true), (1, false)] {
            let data = vec![7u8; 1000 + TAIL_READ as usize - trailer + extra];
            write_temp_unsynced(dir.path(), &meta_of(&data, 11), &data)
                .unwrap()
                .commit_unsynced(&path)
                .unwrap();
            assert_eq!(
                std::fs::metadata(&path).unwrap().len(),
                1000 + TAIL_READ + extra as u64
            );
            let (m, held) = read_meta_and_small(&path, 1000).unwrap();
            assert_eq!(m, meta_of(&data, 11));
            match held {
                Held::Data(d) => assert!(whole && d == data, "extra {extra}"),
                Held::File(mut f) => {
                    assert!(!whole, "extra {extra}");
                    let mut body = vec![0u8; data.len()];
                    std::io::Read::read_exact(&mut f, &mut body).unwrap();
                    assert_eq!(body, data);
                }
            }
        }

        let full = std::fs::read(&path).unwrap();
        for cut in [0, 3, 8, 100, full.len() - 1] {
            std::fs::write(&path, &full[..cut]).unwrap();
            assert!(read_meta_and_small(&path, 1 << 20).is_err(), "cut {cut}");
        }
    }

    /// The meta of what `w` holds, as `b/object`.
    fn written_meta(object: &str, w: &ObjectWriter) -> ObjMeta {
        ObjMeta {
            bucket: "b".into(),
            object: object.into(),
            size: w.written(),
            checksum: w.checksum(),
            version: next_version(),
            mtime: crate::types::unix_ms(),
            attrs: Default::default(),
        }
    }

    #[tokio::test]
    async fn object_write_read_verify() {
        let dir = tempfile::tempdir().unwrap();
        let mp = dir.path();
        let mut w = ObjectWriter::create(mp).await.unwrap();
        let data = b"hello object";
        w.write(bytes::Bytes::from_static(data)).await.unwrap();
        let meta = written_meta("o/1", &w);
        let tmp = w.finish_unsynced(&meta).await.unwrap();
        let dest = object_path(mp, "b", "o/1");
        tmp.commit_unsynced(&dest).unwrap();
        assert_eq!(read_meta(&dest).unwrap(), meta);
        assert_eq!(verify(&dest).unwrap(), meta);
        let (f, m) = open_object(&dest).await.unwrap();
        let mut buf = vec![0u8; m.size as usize];
        std::os::unix::fs::FileExt::read_exact_at(&f, &mut buf, 0).unwrap();
        assert_eq!(&buf, data);
        // Flip a data byte: verify must catch it.
        let mut raw = std::fs::read(&dest).unwrap();
        raw[0] ^= 1;
        std::fs::write(&dest, raw).unwrap();
        assert!(matches!(verify(&dest), Err(Error::Checksum(_))));
        // Temp dir is empty: nothing left behind.
        assert_eq!(std::fs::read_dir(tmp_dir(mp)).unwrap().count(), 0);
    }

    /// A body that arrives in pieces of every size (gathered when small, written as they came
    /// when large, in any order) is stored byte for byte, with the checksum of the whole; an
    /// aborted one leaves nothing behind.
    #[tokio::test]
    async fn a_body_in_pieces_of_any_size_is_stored_whole() {
        let dir = tempfile::tempdir().unwrap();
        let mp = dir.path();
        let data: Vec<u8> = (0..1_500_000u32).map(|i| (i % 247) as u8).collect();
        let mut w = ObjectWriter::create(mp).await.unwrap();
        let mut at = 0;
        for (k, len) in [
            1usize,
            70_000,
            300_000,
            5,
            WRITE_MIN,
            WRITE_MIN - 1,
            2,
            600_000,
        ]
        .into_iter()
        .cycle()
        .enumerate()
        {
            if at == data.len() {
                break;
            }
            let end = (at + len).min(data.len());
            // Some pieces are views into one larger buffer, as received chunks are.
            let piece = if k % 2 == 0 {
                bytes::Bytes::copy_from_slice(&data[at..end])
            } else {
                bytes::Bytes::from(data.clone()).slice(at..end)
            };
            w.write(piece).await.unwrap();
            at = end;
        }
        assert_eq!(w.written(), data.len() as u64);
        let whole = format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&data));
        assert_eq!(w.checksum(), whole);
        let meta = written_meta("big", &w);
        let dest = object_path(mp, "b", "big");
        w.finish_unsynced(&meta)
            .await
            .unwrap()
            .commit_unsynced(&dest)
            .unwrap();
        assert_eq!(verify(&dest).unwrap(), meta);
        let (f, _) = open_object(&dest).await.unwrap();
        let mut back = vec![0u8; data.len()];
        std::os::unix::fs::FileExt::read_exact_at(&f, &mut back, 0).unwrap();
        assert!(back == data, "the stored body differs");

        let mut w = ObjectWriter::create(mp).await.unwrap();
        w.write(bytes::Bytes::from(data.clone())).await.unwrap();
        w.abort().await;
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
