//! The target's data path (DESIGN §6, §8): put/get/head/delete/locate on its local store,
//! get-from-neighbor while objects are in motion (`neighbor`), and receiving rebalanced objects
//! (`receive`). Built per request from what it uses; counters of the running rebalance are a
//! message away.

mod neighbor;
mod receive;

pub use neighbor::Newest;
pub use receive::reb_bucket_known;

use std::sync::Arc;

use super::meta::MetaHandle;
use crate::error::{Error, Result};
use crate::logic::{names, placement};
use crate::proto::codec::{CHUNK_SIZE, Conn};
use crate::proto::msg::ByteRange;
use crate::proto::msg::{
    Data, DeleteObject, GetObject, HeadObject, Locate, Located, Msg, PutDone, PutObject, Reply,
    Rpc, StampQuery,
};
use crate::proto::pool::Pool;
use crate::store::LocalStore;
use crate::store::object::{self as store, ObjectWriter};
use crate::types::checksum::Checksum;
use crate::types::object::{ObjAttrs, ObjKey, ObjMeta, Tomb};
use crate::types::smap::NodeId;

/// Objects up to this size are read whole and sent in one write.
const SMALL_GET: u64 = 64 * 1024;
/// PUT bodies up to this size are taken into memory, then written whole (the size up to
/// which a client may also send them inside the request).
const SMALL_PUT: u64 = crate::proto::msg::INLINE_PUT;

/// A PUT body that has arrived: in memory (small) or in a temp file.
enum Received {
    Small { data: Vec<u8>, checksum: String },
    File(Box<store::ObjectWriter>),
}

impl Received {
    fn checksum(&self) -> String {
        match self {
            Received::Small { checksum, .. } => checksum.clone(),
            Received::File(w) => w.checksum(),
        }
    }

    async fn abort(self) {
        if let Received::File(w) = self {
            w.abort().await;
        }
    }

    /// The temp file holding the object and its trailer `meta`, on `mountpath`: not durable
    /// until installed with `install_flushed`.
    async fn finish(
        self,
        meta: &ObjMeta,
        mountpath: std::path::PathBuf,
    ) -> Result<store::TempObject> {
        match self {
            Received::Small { data, .. } => {
                let meta = meta.clone();
                tokio::task::spawn_blocking(move || {
                    store::write_temp_unsynced_open(&mountpath, &meta, &data)
                })
                .await
                .map_err(|e| Error::Io(std::io::Error::other(e)))?
            }
            Received::File(w) => w.finish_unsynced(meta).await,
        }
    }
}

/// What serving one data request needs.
pub struct DataPath<'a> {
    pub me: &'a NodeId,
    pub meta: &'a MetaHandle,
    pub pool: &'a Arc<Pool>,
    pub store: &'a Arc<LocalStore>,
    /// When this target last heard from a primary (see `neighbor::heard_from_primary`).
    pub contact: &'a super::Contact,
}

/// How a GET reads: verify the checksum first, and which bytes.
#[derive(Clone, Copy, Debug, Default)]
pub struct Read {
    pub verify: bool,
    pub range: Option<ByteRange>,
}

impl Read {
    /// The (offset, len) of `meta`'s body to send.
    pub fn span(&self, meta: &ObjMeta) -> Result<(u64, u64)> {
        match self.range {
            None => Ok((0, meta.size)),
            Some(r) => r.within(meta.size).ok_or_else(|| {
                Error::BadRequest(format!(
                    "range not satisfiable: {}/{} has {} bytes, the range starts at {}",
                    meta.bucket, meta.object, meta.size, r.offset
                ))
            }),
        }
    }
}

fn check_attrs(a: &ObjAttrs) -> Result<()> {
    a.check().map_err(Error::BadRequest)
}

pub(crate) fn not_found(key: &ObjKey) -> Error {
    Error::NotFound(format!(
        "object {}/{} does not exist",
        key.bucket, key.object
    ))
}

impl DataPath<'_> {
    fn check_key(&self, key: &ObjKey) -> Result<()> {
        names::validate_bucket(&key.bucket)?;
        names::validate_object(&key.object)?;
        if !self.meta.get().bmd.buckets.contains(&key.bucket) {
            return Err(Error::NotFound(format!(
                "bucket {:?} does not exist",
                key.bucket
            )));
        }
        Ok(())
    }

    /// Under our (possibly newer) map, is someone else the owner? Then send the client there.
    fn redirect_if_not_owner(&self, key: &ObjKey) -> Option<Msg> {
        let meta = self.meta.get();
        let smap = meta.smap.as_ref()?;
        let owner = placement::owner(smap, &key.bucket, &key.object)?;
        (&owner.id != self.me).then(|| Msg::Redirect {
            node: owner.id.clone(),
            addr: owner.addr.clone(),
        })
    }

    /// Before acting as the owner of `key`: this target's map is current enough (see
    /// [`current_map`](Self::current_map)), and under it someone else is not the owner (then
    /// the client is sent there).
    async fn route_as_owner(&self, key: &ObjKey) -> Result<Option<Msg>> {
        self.current_map().await?;
        Ok(self.redirect_if_not_owner(key))
    }

    /// Serves one data request; `None` when the reply was streamed on `conn`.
    pub async fn serve(&self, conn: &mut Conn, corr: u64, d: Data) -> Result<Option<Msg>> {
        match d {
            Data::Locate(Locate { key }) => {
                self.check_key(&key)?;
                if let Some(r) = self.route_as_owner(&key).await? {
                    return Ok(Some(r));
                }
                let i = self.store.proper(&key.bucket, &key.object).ok_or_else(|| {
                    Error::NoSpace(format!("t[{}] has no enabled mountpath", self.me))
                })?;
                let at = Located {
                    target: self.me.0.clone(),
                    mountpath: self.store.path_of(i).display().to_string(),
                };
                Ok(Some(Msg::Reply(Locate::reply(at))))
            }
            Data::Put(PutObject {
                key,
                size,
                attrs,
                inline,
            }) => {
                self.check_key(&key)?;
                check_attrs(&attrs)?;
                if let Some(d) = &inline
                    && (d.len() as u64 != size || size > SMALL_PUT)
                {
                    return Err(Error::BadRequest(format!(
                        "{key}: a body sent with the put must be its whole size ({size} bytes, \
                         got {}) and at most {SMALL_PUT} bytes",
                        d.len()
                    )));
                }
                if let Some(r) = self.route_as_owner(&key).await? {
                    return Ok(Some(r));
                }
                self.put(conn, corr, key, size, attrs, inline)
                    .await
                    .map(Some)
            }
            Data::Get(GetObject {
                key,
                verify,
                local,
                range,
            }) => {
                self.check_key(&key)?;
                if !local && let Some(r) = self.route_as_owner(&key).await? {
                    return Ok(Some(r));
                }
                let read = Read { verify, range };
                self.get(conn, corr, &key, read, local).await?;
                Ok(None)
            }
            Data::Head(HeadObject { key, local }) => {
                self.check_key(&key)?;
                if !local && let Some(r) = self.route_as_owner(&key).await? {
                    return Ok(Some(r));
                }
                self.head(&key, local)
                    .await
                    .map(|m| Some(Msg::Reply(HeadObject::reply(m))))
            }
            Data::Delete(DeleteObject {
                key,
                local,
                stamp,
                smap_version,
            }) => {
                self.check_key(&key)?;
                if local {
                    self.saw_map(smap_version);
                } else if let Some(r) = self.route_as_owner(&key).await? {
                    return Ok(Some(r));
                }
                self.delete(&key, local, stamp)
                    .await
                    .map(|()| Some(Msg::Reply(DeleteObject::reply(()))))
            }
            Data::Stamp(StampQuery { key, smap_version }) => {
                self.check_key(&key)?;
                // Noted before the answer: once the asker has it, this target no longer acts
                // as an owner under an older map.
                self.saw_map(smap_version);
                let s = self.store.stamp(&key.bucket, &key.object);
                Ok(Some(Msg::Reply(StampQuery::reply(s))))
            }
            Data::List(_) => Err(Error::BadRequest(
                "listings are served by the router".into(),
            )),
        }
    }

    /// Takes an object body into a temp file on mountpath `mp`: refused before any byte moves
    /// when it cannot fit (or the temp file cannot be made), then "go ahead", then the body,
    /// hashed as it lands. A full disk is reported as such, and no partial file stays.
    /// Refuses (before any byte moves) a write of `size` bytes to mountpath `mp` that a full
    /// or failing disk could not take.
    pub(crate) fn room_for(&self, mp: usize, size: u64) -> Result<()> {
        let path = self.store.path_of(mp);
        if let Some(m) = self.store.mps.get(mp)
            && m.io_fault()
        {
            let e = std::io::Error::other("injected I/O failure (fault fail_io)");
            m.note_io_error(&e);
            return Err(e.into());
        }
        if let Some(c) = super::stats::capacity(&path)
            && c.avail < size.saturating_add(1 << 20)
        {
            return Err(Error::NoSpace(format!(
                "mountpath {} has {} bytes free, the object needs {size}",
                path.display(),
                c.avail
            )));
        }
        Ok(())
    }

    /// Takes a small body into memory: the temp file is then written and made durable in
    /// one trip off the runtime, where streaming it costs one trip per file operation. What
    /// is refused before the body is sent: no room, a mountpath known to fail; a temp file
    /// that cannot be made is reported after the body (at most 64 KiB) arrived.
    async fn receive_small(
        &self,
        conn: &mut Conn,
        corr: u64,
        mp: usize,
        size: u64,
    ) -> Result<(Vec<u8>, String)> {
        self.room_for(mp, size)?;
        store::refuse_if_full(&self.store.path_of(mp))?;
        // Go ahead: the body is sent only now, so a refusal costs no transfer.
        conn.send(corr, Msg::Reply(Reply::Ok)).await?;
        let mut data = Vec::with_capacity(size as usize);
        let mut hasher = Checksum::new();
        conn.recv_body(&mut data, size, |d| hasher.update(d))
            .await?;
        Ok((data, hasher.hex()))
    }

    pub(crate) async fn receive_body(
        &self,
        conn: &mut Conn,
        corr: u64,
        mp: usize,
        size: u64,
    ) -> Result<ObjectWriter> {
        self.room_for(mp, size)?;
        let path = self.store.path_of(mp);
        let mut w = match ObjectWriter::create(&path).await {
            Ok(w) => w,
            Err(Error::Io(e)) => {
                // A full disk is not a failing one.
                if e.raw_os_error() != Some(28)
                    && let Some(m) = self.store.mps.get(mp)
                {
                    m.note_io_error(&e);
                }
                return Err(store::no_space(Error::Io(e)));
            }
            Err(e) => return Err(e),
        };
        // Go ahead: the body is sent only now, so a refusal costs no transfer.
        if let Err(e) = conn.send(corr, Msg::Reply(Reply::Ok)).await {
            w.abort().await;
            return Err(e);
        }
        let mut left = size;
        while left > 0 {
            let wrote = match conn.next_body_chunk(&mut left).await {
                Ok(d) => w.write(d).await,
                Err(e) => Err(e),
            };
            if let Err(e) = wrote {
                w.abort().await;
                return Err(store::no_space(e));
            }
        }
        Ok(w)
    }

    async fn put(
        &self,
        conn: &mut Conn,
        corr: u64,
        key: ObjKey,
        size: u64,
        attrs: ObjAttrs,
        inline: Option<Vec<u8>>,
    ) -> Result<Msg> {
        let mp = self.store.mountpath_for(&key.bucket, &key.object)?;
        let w = if let Some(data) = inline {
            // The body came with the request: the same refusals as before a go-ahead.
            self.room_for(mp, size)?;
            store::refuse_if_full(&self.store.path_of(mp))?;
            let checksum = crate::types::checksum::of(&data);
            Received::Small { data, checksum }
        } else if size <= SMALL_PUT {
            let (data, checksum) = self.receive_small(conn, corr, mp, size).await?;
            Received::Small { data, checksum }
        } else {
            Received::File(Box::new(self.receive_body(conn, corr, mp, size).await?))
        };
        // While a rebalance settles, a copy elsewhere may be newer than ours (written on the
        // previous owner), and a target still on an older map may act as this object's owner:
        // every other target is told our map and asked its stamp before the write is made,
        // or the write is refused. The new version beats every copy seen.
        let elsewhere = match self.fence(&key).await {
            Ok(v) => v,
            Err(e) => {
                w.abort().await;
                return Err(e);
            }
        };
        // Ownership is checked again at install time, under the install barrier: a map that
        // changed while the body travelled sends the client to the new owner, and nothing is
        // stored here (it would be stranded behind a rebalance walk that already went by).
        let _barrier = self.store.installs.read().await;
        if let Some(Msg::Redirect { node, .. }) = self.redirect_if_not_owner(&key) {
            w.abort().await;
            return Err(Error::MapChanged(format!(
                "the cluster map changed while {key} was sent: it now belongs to t[{node}]; put it again"
            )));
        }
        // A new write must beat the copy (or delete) here even if it was stamped by a node
        // whose clock runs ahead of ours (Lamport-style).
        let existing = self
            .store
            .newest_stamp(&key.bucket, &key.object)
            .max(elsewhere);
        let meta = ObjMeta {
            bucket: key.bucket.clone(),
            object: key.object.clone(),
            size,
            checksum: w.checksum(),
            version: store::next_version().max(existing.saturating_add(1)),
            mtime: crate::types::unix_ms(),
            attrs,
        };
        let tmp = match w.finish(&meta, self.store.path_of(mp)).await {
            Ok(t) => t,
            // A small body's temp file is made only now (see `receive_small`): a mountpath
            // that cannot take it is noted as failing here, as at creation for a large one.
            Err(Error::Io(e)) => {
                if let Some(m) = self.store.mps.get(mp) {
                    m.note_io_error(&e);
                }
                return Err(Error::Io(e));
            }
            Err(e) => return Err(e),
        };
        if self.store.install_flushed(&meta, tmp, mp).await? == crate::store::Install::Superseded {
            // Only a corrupt stamp far in the future can beat the one chosen above: say so
            // rather than report a write that is not there.
            return Err(Error::BadRequest(format!(
                "{key}: a copy stamped in the future (v{existing}) is stored; delete it first"
            )));
        }
        Ok(Msg::Reply(Reply::Put(PutDone {
            version: meta.version,
            checksum: meta.checksum,
        })))
    }

    async fn get(
        &self,
        conn: &mut Conn,
        corr: u64,
        key: &ObjKey,
        read: Read,
        local: bool,
    ) -> Result<()> {
        if local {
            return match self.serve_local(conn, corr, key, read).await? {
                true => Ok(()),
                false => Err(not_found(key)),
            };
        }
        // Two rounds: an object in flight to us is installed here before its sender deletes
        // it, so if the others lost it between our look and theirs, it is here now.
        for round in 0..2 {
            // One look here answers both "is the newest copy here?" and, for a small object,
            // "what is in it?" — when no one else needs asking. Otherwise the look is repeated
            // after the others answered: while they did, a newer copy may have arrived here
            // (and left its sender), and the first look would read back the older one.
            let found = self.find_local(key, read);
            let mine =
                self.store
                    .stamp_beside(&key.bucket, &key.object, found.as_ref().map(|f| &f.meta));
            let (newest, asked) = match self.newest_without_asking(mine) {
                Some(n) => (n, false),
                None => (self.newest_given(key, mine).await?, true),
            };
            match newest {
                Newest::Here => {
                    let served = if asked {
                        self.serve_local(conn, corr, key, read).await?
                    } else {
                        self.serve_found(conn, corr, read, found).await?
                    };
                    if served {
                        return Ok(());
                    }
                }
                Newest::At(addr) => match self.relay_from(&addr, conn, corr, key, read).await {
                    Err(Error::NotFound(_)) => {}
                    other => return other,
                },
                Newest::Deleted => return Err(not_found(key)),
                Newest::Nowhere if round == 0 => {}
                Newest::Nowhere => return Err(self.missing(key)),
            }
        }
        Err(self.missing(key))
    }

    /// An object found nowhere: not found — unless a mountpath of this target failed, which may
    /// have held it; then say so rather than claim it never existed.
    fn missing(&self, key: &ObjKey) -> Error {
        match self.store.failed_note() {
            Some(note) => Error::Unavailable(format!(
                "{key} cannot be read: not on this target's working mountpaths, and {note}"
            )),
            None => not_found(key),
        }
    }

    /// The local copy of `key`, with its data when it is small and needs no verification (else
    /// with its file, open).
    /// Read on the runtime thread, as every lookup of a trailer is: for a small object the
    /// trailer read already brings in most of the file, and a hop to the blocking pool costs
    /// more than the read (two thread wake-ups per GET).
    fn find_local(&self, key: &ObjKey, read: Read) -> Option<crate::store::Found> {
        let small = if read.verify { 0 } else { SMALL_GET };
        self.store.find_reading(&key.bucket, &key.object, small)
    }

    /// Streams the local copy if there is one; `Ok(false)` when there is none.
    async fn serve_local(
        &self,
        conn: &mut Conn,
        corr: u64,
        key: &ObjKey,
        read: Read,
    ) -> Result<bool> {
        let found = self.find_local(key, read);
        self.serve_found(conn, corr, read, found).await
    }

    /// Sends `found`: from memory when its data was read with it, else streamed from its file.
    async fn serve_found(
        &self,
        conn: &mut Conn,
        corr: u64,
        read: Read,
        found: Option<crate::store::Found>,
    ) -> Result<bool> {
        let Some(found) = found else {
            return Ok(false);
        };
        let (offset, len) = read.span(&found.meta)?;
        let mut file = match found.held {
            store::Held::Data(data) => {
                let body = &data[offset as usize..(offset + len) as usize];
                conn.send_with_body(corr, Msg::Reply(Reply::Object(found.meta)), body)
                    .await?;
                return Ok(true);
            }
            // The file the lookup opened: the version its meta describes.
            store::Held::File(f) => f,
        };
        if read.verify {
            let meta = found.meta.clone();
            file = tokio::task::spawn_blocking(move || {
                store::verify_data(&file, &meta).map(|()| file)
            })
            .await
            .map_err(|e| Error::Io(std::io::Error::other(e)))??;
        }
        conn.send(corr, Msg::Reply(Reply::Object(found.meta)))
            .await?;
        // The client reads the body straight into its destination: the largest frames cost it
        // (and the wire) least.
        conn.send_file(corr, file, offset, len, CHUNK_SIZE).await?;
        Ok(true)
    }

    async fn head(&self, key: &ObjKey, local: bool) -> Result<ObjMeta> {
        let here = || {
            self.store
                .find(&key.bucket, &key.object)
                .map(|(_, _, m)| m)
                .ok_or_else(|| not_found(key))
        };
        if local {
            return here();
        }
        for round in 0..2 {
            match self.newest(key).await? {
                Newest::Here => {
                    if let Ok(m) = here() {
                        return Ok(m);
                    }
                }
                Newest::At(addr) => {
                    let req = HeadObject {
                        key: key.clone(),
                        local: true,
                    };
                    match self.pool.rpc(&addr, req, neighbor::PEER_TIMEOUT).await {
                        Err(Error::NotFound(_)) => {}
                        other => return other,
                    }
                }
                Newest::Deleted => return Err(not_found(key)),
                Newest::Nowhere if round == 0 => {}
                Newest::Nowhere => return Err(self.missing(key)),
            }
        }
        Err(self.missing(key))
    }

    /// A delete. The owner records it durably (and stamps it above any copy it knows, so a
    /// copy stamped by a clock that runs ahead still goes), then has every other target remove
    /// its copies up to that stamp: previous owners, mid-rebalance senders.
    async fn delete(&self, key: &ObjKey, local: bool, stamp: Option<u64>) -> Result<()> {
        if local {
            let upto = stamp.unwrap_or(u64::MAX);
            return match self
                .store
                .delete_copies(&key.bucket, &key.object, upto)
                .await?
            {
                true => Ok(()),
                false => Err(not_found(key)),
            };
        }
        // While settling, the delete must beat copies elsewhere too (stamped by a clock that
        // runs ahead); a target that does not answer is dealt with below.
        let elsewhere = self.fence(key).await.unwrap_or(0);
        let tomb = Tomb {
            bucket: key.bucket.clone(),
            object: key.object.clone(),
            version: store::next_version().max(
                self.store
                    .newest_stamp(&key.bucket, &key.object)
                    .max(elsewhere)
                    .saturating_add(1),
            ),
            generation: self.meta.get().rmd.version,
        };
        let mut found = self.store.delete(&tomb).await?;
        let req = DeleteObject {
            key: key.clone(),
            local: true,
            stamp: Some(tomb.version),
            smap_version: self.map_version(),
        };
        // "Not found" only when every target that may hold a copy said so: one that did not
        // answer may hold it (written under the previous map). The delete record here is
        // durable and newer than any such copy, so the delete holds either way.
        let mut unsure = None;
        for a in self.ask_other_targets(req).await {
            match a.reply {
                Ok(()) => found = true,
                Err(Error::NotFound(_)) => {}
                Err(e) if !a.emptied => unsure = Some((a.addr, e)),
                Err(_) => {}
            }
        }
        // While a rebalance settles, a target that did not hear of the delete may still act as
        // the owner under an older map and serve its copy: the delete is not confirmed.
        if let Some((addr, e)) = &unsure
            && self
                .store
                .settling
                .load(std::sync::atomic::Ordering::Relaxed)
        {
            return Err(Error::Unavailable(format!(
                "{key}: deleted here, but the target at {addr} did not answer ({e}) and may \
                 still serve a copy while the cluster rebalances; delete it again"
            )));
        }
        if found || unsure.is_some() {
            Ok(())
        } else {
            Err(not_found(key))
        }
    }
}
