//! The target's data path (DESIGN §6, §8): put/get/head/delete/locate on its local store,
//! get-from-neighbor while objects are in motion (`neighbor`), and receiving rebalanced objects
//! (`receive`). Built per request from what it uses; counters of the running rebalance are a
//! message away.

mod neighbor;
mod receive;

pub use receive::reb_bucket_known;

use std::sync::Arc;

use super::meta::MetaHandle;
use crate::error::{Error, Result};
use crate::logic::{names, placement};
use crate::proto::codec::Conn;
use crate::proto::msg::{
    Data, DeleteObject, GetObject, HeadObject, Locate, Located, Msg, PutDone, PutObject, Reply, Rpc,
};
use crate::proto::pool::Pool;
use crate::store::LocalStore;
use crate::store::object::{self as store, ObjectWriter};
use crate::types::object::{ObjKey, ObjMeta};
use crate::types::smap::NodeId;

/// What serving one data request needs.
pub struct DataPath<'a> {
    pub me: &'a NodeId,
    pub meta: &'a MetaHandle,
    pub pool: &'a Arc<Pool>,
    pub store: &'a Arc<LocalStore>,
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

    /// Serves one data request; `None` when the reply was streamed on `conn`.
    pub async fn serve(&self, conn: &mut Conn, corr: u64, d: Data) -> Result<Option<Msg>> {
        match d {
            Data::Locate(Locate { key }) => {
                self.check_key(&key)?;
                if let Some(r) = self.redirect_if_not_owner(&key) {
                    return Ok(Some(r));
                }
                let i = self.store.mountpath_for(&key.bucket, &key.object);
                let at = Located {
                    target: self.me.0.clone(),
                    mountpath: self.store.path_of(i).display().to_string(),
                };
                Ok(Some(Msg::Reply(Locate::reply(at))))
            }
            Data::Put(PutObject { key, size }) => {
                self.check_key(&key)?;
                if let Some(r) = self.redirect_if_not_owner(&key) {
                    return Ok(Some(r));
                }
                self.put(conn, corr, key, size).await.map(Some)
            }
            Data::Get(GetObject { key, verify, local }) => {
                self.check_key(&key)?;
                if !local && let Some(r) = self.redirect_if_not_owner(&key) {
                    return Ok(Some(r));
                }
                self.get(conn, corr, &key, verify, local).await?;
                Ok(None)
            }
            Data::Head(HeadObject { key, local }) => {
                self.check_key(&key)?;
                if !local && let Some(r) = self.redirect_if_not_owner(&key) {
                    return Ok(Some(r));
                }
                self.head(&key, local)
                    .await
                    .map(|m| Some(Msg::Reply(HeadObject::reply(m))))
            }
            Data::Delete(DeleteObject { key, local }) => {
                self.check_key(&key)?;
                if !local && let Some(r) = self.redirect_if_not_owner(&key) {
                    return Ok(Some(r));
                }
                self.delete(&key, local)
                    .await
                    .map(|()| Some(Msg::Reply(DeleteObject::reply(()))))
            }
            Data::List(_) => Err(Error::BadRequest(
                "listings are served by the router".into(),
            )),
        }
    }

    async fn put(&self, conn: &mut Conn, corr: u64, key: ObjKey, size: u64) -> Result<Msg> {
        let mp = self.store.mountpath_for(&key.bucket, &key.object);
        let path = self.store.path_of(mp).to_path_buf();
        if let Some(c) = super::stats::capacity(&path)
            && c.avail < size.saturating_add(1 << 20)
        {
            return Err(Error::NoSpace(format!(
                "mountpath {} has {} bytes free, object needs {size}",
                path.display(),
                c.avail
            )));
        }
        // Go ahead: the client sends the body only now, so a refusal costs no transfer.
        conn.send(corr, Msg::Reply(Reply::Ok)).await?;
        let mut w = ObjectWriter::create(&path).await?;
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        let recv = {
            let file = w.file();
            conn.recv_body(file, size, |d| hasher.update(d)).await
        };
        if let Err(e) = recv {
            w.abort().await;
            return Err(e);
        }
        w.observe_digest(hasher);
        // A new write must beat the copy here even if it was stamped by a node whose clock
        // runs ahead of ours (Lamport-style).
        let existing = self
            .store
            .find(&key.bucket, &key.object)
            .map(|(_, _, m)| m.version)
            .unwrap_or(0);
        let meta = ObjMeta {
            bucket: key.bucket.clone(),
            object: key.object.clone(),
            size,
            checksum: w.checksum(),
            version: store::next_version().max(existing + 1),
            mtime: crate::types::unix_ms(),
        };
        let tmp = w.finish(&meta).await?;
        self.store.install(&meta, tmp, mp).await?;
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
        verify: bool,
        local: bool,
    ) -> Result<()> {
        // Two rounds: an object in flight to us is installed here before its sender deletes
        // it, so if the neighbours lost it between our local look and theirs, it is here now.
        for round in 0..2 {
            if self.serve_local(conn, corr, key, verify).await? {
                return Ok(());
            }
            if local {
                return Err(not_found(key));
            }
            match self.serve_from_neighbor(conn, corr, key, verify).await {
                Err(Error::NotFound(_)) if round == 0 => continue,
                other => return other,
            }
        }
        Err(not_found(key))
    }

    /// Streams the local copy if there is one; `Ok(false)` when there is none.
    async fn serve_local(
        &self,
        conn: &mut Conn,
        corr: u64,
        key: &ObjKey,
        verify: bool,
    ) -> Result<bool> {
        let Some((_, path, _)) = self.store.find(&key.bucket, &key.object) else {
            return Ok(false);
        };
        if verify {
            let p = path.clone();
            tokio::task::spawn_blocking(move || store::verify(&p))
                .await
                .map_err(|e| Error::Io(std::io::Error::other(e)))??;
        }
        match store::open_object(&path).await {
            Ok((mut f, meta)) => {
                conn.send(corr, Msg::Reply(Reply::Object(meta.clone())))
                    .await?;
                conn.send_body(corr, &mut f, meta.size).await?;
                Ok(true)
            }
            // Moved away between the lookup and the open.
            Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn head(&self, key: &ObjKey, local: bool) -> Result<ObjMeta> {
        if let Some((_, _, m)) = self.store.find(&key.bucket, &key.object) {
            return Ok(m);
        }
        if local {
            return Err(not_found(key));
        }
        match self.neighbor_lookup(key).await {
            Ok((_, meta)) => Ok(meta),
            // Arrived here while we asked around (see `get`).
            Err(Error::NotFound(_)) => self
                .store
                .find(&key.bucket, &key.object)
                .map(|(_, _, m)| m)
                .ok_or_else(|| not_found(key)),
            Err(e) => Err(e),
        }
    }

    async fn delete(&self, key: &ObjKey, local: bool) -> Result<()> {
        let mut found = self
            .store
            .delete(&key.bucket, &key.object, store::next_version())
            .await?;
        if !local {
            // Remove it wherever else it is: previous owners, or mid-rebalance senders.
            let req = DeleteObject {
                key: key.clone(),
                local: true,
            };
            for (_, r) in self.ask_other_targets(req).await {
                if r.is_ok() {
                    found = true;
                }
            }
        }
        if found { Ok(()) } else { Err(not_found(key)) }
    }
}
