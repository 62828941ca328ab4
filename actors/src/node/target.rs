//! The target's data path (DESIGN §6, §8): put/get/head/delete/list/locate on its mountpaths,
//! get-from-neighbor while objects are in motion, receiving rebalanced objects, and starting and
//! preempting rebalance generations.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ractor::{Actor, ActorCell};

use super::{Ctx, NodeArgs};
use crate::error::{Error, Result};
use crate::lifecycle::PlanMove;
use crate::mountpath::{Mountpath, MountpathActor};
use crate::placement::{self, MountpathKey};
use crate::rebalance::{self, RebHandle};
use crate::smap::{NodeId, Smap};
use crate::store::{self, ObjMeta, ObjectWriter};
use crate::wire::{Conn, Msg, ObjEntry, ObjKey};

/// How long a delete is remembered, so an older copy in flight cannot bring the object back.
const TOMBSTONE_TTL: Duration = Duration::from_secs(600);
const TOMBSTONE_MAX: usize = 100_000;
const PEER_TIMEOUT: Duration = Duration::from_secs(10);

pub struct TargetCtx {
    pub mountpaths: Vec<Arc<Mountpath>>,
    keys: Vec<MountpathKey>,
    pub locks: store::ObjLocks,
    /// uname → (delete stamp, when): deletes win over older copies arriving later.
    tombstones: Mutex<HashMap<String, (u64, Instant)>>,
    /// The running (or last) rebalance generation.
    pub reb: tokio::sync::Mutex<Option<RebHandle>>,
    /// A rebalance marker was present at start: the last run was interrupted.
    pub interrupted: bool,
}

impl TargetCtx {
    pub fn open(args: &NodeArgs) -> Result<Self> {
        let mut paths = args.mountpaths.clone();
        if paths.is_empty() {
            paths.push(args.data_dir.join("mp0"));
        }
        let mut mountpaths = Vec::new();
        for p in paths {
            std::fs::create_dir_all(&p)?;
            let p = p.canonicalize()?;
            // Half-written objects of a crashed run are garbage: the sender still has them.
            let _ = std::fs::remove_dir_all(store::tmp_dir(&p));
            std::fs::create_dir_all(store::tmp_dir(&p))?;
            mountpaths.push(Arc::new(Mountpath::new(p)));
        }
        let keys = mountpaths.iter().map(|m| m.key.clone()).collect();
        let interrupted = args.data_dir.join(rebalance::MARKER).exists();
        if interrupted {
            tracing::warn!("rebalance marker found: the last rebalance was interrupted");
        }
        Ok(TargetCtx {
            mountpaths,
            keys,
            locks: Default::default(),
            tombstones: Mutex::new(HashMap::new()),
            reb: tokio::sync::Mutex::new(None),
            interrupted,
        })
    }

    pub async fn start(&self, _ctx: &Arc<Ctx>, supervisor: ActorCell) -> Result<()> {
        for mp in &self.mountpaths {
            Actor::spawn_linked(None, MountpathActor, mp.clone(), supervisor.clone())
                .await
                .map_err(|e| Error::Remote(format!("mountpath actor: {e}")))?;
        }
        Ok(())
    }

    pub fn has_marker(&self, ctx: &Ctx) -> bool {
        ctx.data_dir.join(rebalance::MARKER).exists()
    }

    /// Index of the mountpath that should hold `bucket/object`.
    pub fn mountpath_for(&self, bucket: &str, object: &str) -> usize {
        let d = placement::digest(&placement::uname(bucket, object));
        placement::mountpath_index(&self.keys, d).unwrap_or(0)
    }

    pub fn object_paths(&self, bucket: &str, object: &str) -> impl Iterator<Item = PathBuf> + '_ {
        let (b, o) = (bucket.to_string(), object.to_string());
        self.mountpaths
            .iter()
            .map(move |m| store::object_path(&m.path, &b, &o))
    }

    /// Finds a local copy: the proper mountpath first, then the others (not yet resilvered).
    pub fn find_local(&self, bucket: &str, object: &str) -> Option<(usize, PathBuf, ObjMeta)> {
        let first = self.mountpath_for(bucket, object);
        let order =
            std::iter::once(first).chain((0..self.mountpaths.len()).filter(|&i| i != first));
        for i in order {
            let p = store::object_path(&self.mountpaths[i].path, bucket, object);
            if let Ok(m) = store::read_meta(&p)
                && m.bucket == bucket
                && m.object == object
            {
                return Some((i, p, m));
            }
        }
        None
    }

    // ---- metadata reactions ---------------------------------------------------------------

    /// Starts a new rebalance generation when the RMD moved past the running one.
    pub async fn on_meta(&self, ctx: &Arc<Ctx>) {
        let meta = ctx.meta();
        let want = meta.rmd.version;
        if want == 0 || meta.smap.is_none() {
            return;
        }
        let mut reb = self.reb.lock().await;
        if let Some(h) = reb.as_ref()
            && h.generation >= want
        {
            return;
        }
        if !meta.rmd.participants.is_empty() && !meta.rmd.participants.contains(&ctx.me.id) {
            // Not part of this generation (e.g. joined right after it started).
            return;
        }
        if let Some(old) = reb.take() {
            tracing::info!(old = old.generation, new = want, "preempting rebalance");
            old.abort().await;
        }
        match rebalance::start(ctx.clone(), want).await {
            Ok(h) => *reb = Some(h),
            Err(e) => tracing::error!(error = %e, "cannot start rebalance g{want}"),
        }
    }

    pub async fn stop_rebalance(&self) {
        if let Some(h) = self.reb.lock().await.take() {
            h.abort().await;
        }
    }

    /// Removes bucket directories the cluster no longer has (destroyed while this node was
    /// away), so a later bucket of the same name starts empty.
    pub async fn drop_unknown_buckets(&self, known: &std::collections::BTreeSet<String>) {
        let mut stale = std::collections::BTreeSet::new();
        for mp in &self.mountpaths {
            if let Ok(rd) = std::fs::read_dir(mp.path.join("objs")) {
                for e in rd.flatten() {
                    let name = e.file_name().to_string_lossy().to_string();
                    if !known.contains(&name) {
                        stale.insert(name);
                    }
                }
            }
        }
        for b in stale {
            tracing::info!(bucket = %b, "removing a bucket destroyed while this node was away");
            self.remove_bucket(&b).await;
        }
    }

    pub async fn remove_bucket(&self, bucket: &str) {
        for mp in &self.mountpaths {
            let dir = store::bucket_dir(&mp.path, bucket);
            let _ = tokio::fs::remove_dir_all(&dir).await;
        }
        for mp in &self.mountpaths {
            let m = mp.clone();
            let _ = tokio::task::spawn_blocking(move || m.recount()).await;
        }
    }

    fn tombstone(&self, bucket: &str, object: &str) -> Option<u64> {
        let key = placement::uname(bucket, object);
        let t = self.tombstones.lock().expect("poisoned");
        t.get(&key)
            .filter(|(_, at)| at.elapsed() < TOMBSTONE_TTL)
            .map(|(v, _)| *v)
    }

    fn set_tombstone(&self, bucket: &str, object: &str, version: u64) {
        let mut t = self.tombstones.lock().expect("poisoned");
        if t.len() >= TOMBSTONE_MAX {
            t.retain(|_, (_, at)| at.elapsed() < TOMBSTONE_TTL);
        }
        if t.len() < TOMBSTONE_MAX {
            t.insert(placement::uname(bucket, object), (version, Instant::now()));
        }
    }

    /// Installs a complete temp object unless a newer copy (or a newer delete) is already
    /// here. Returns true when installed. Older copies on other mountpaths are removed.
    pub async fn install(
        &self,
        meta: &ObjMeta,
        tmp: store::TempObject,
        dest_mp: usize,
    ) -> Result<bool> {
        let _g = self.locks.lock(&meta.bucket, &meta.object).await;
        if self
            .tombstone(&meta.bucket, &meta.object)
            .is_some_and(|v| v >= meta.version)
        {
            return Ok(false);
        }
        let mut olds = Vec::new();
        for (i, mp) in self.mountpaths.iter().enumerate() {
            let p = store::object_path(&mp.path, &meta.bucket, &meta.object);
            if let Ok(m) = store::read_meta(&p) {
                if m.version >= meta.version {
                    return Ok(false);
                }
                olds.push((i, p, m.size));
            }
        }
        let dest = store::object_path(&self.mountpaths[dest_mp].path, &meta.bucket, &meta.object);
        tmp.commit(&dest)?;
        self.mountpaths[dest_mp].added(meta.size);
        for (i, p, size) in olds {
            if i != dest_mp {
                let _ = std::fs::remove_file(&p);
            }
            self.mountpaths[i].removed(size);
        }
        Ok(true)
    }

    /// Removes the local copy of `meta` if it is still that version (after a peer acked it).
    pub async fn remove_if_version(&self, meta: &ObjMeta) -> Result<bool> {
        let _g = self.locks.lock(&meta.bucket, &meta.object).await;
        for mp in &self.mountpaths {
            let p = store::object_path(&mp.path, &meta.bucket, &meta.object);
            if let Ok(m) = store::read_meta(&p)
                && m.version == meta.version
            {
                std::fs::remove_file(&p)?;
                mp.removed(m.size);
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Moves an object to its proper local mountpath (same filesystem: a rename).
    pub async fn move_local(
        &self,
        from: &std::path::Path,
        meta: &ObjMeta,
        to_mp: usize,
    ) -> Result<()> {
        let _g = self.locks.lock(&meta.bucket, &meta.object).await;
        let dest = store::object_path(&self.mountpaths[to_mp].path, &meta.bucket, &meta.object);
        if let Ok(m) = store::read_meta(&dest)
            && m.version >= meta.version
        {
            // A newer copy is already in place; the misplaced one is stale.
            let _ = std::fs::remove_file(from);
            return Ok(());
        }
        if let Some(dir) = dest.parent() {
            std::fs::create_dir_all(dir)?;
        }
        if std::fs::rename(from, &dest).is_err() {
            // Different filesystems: copy to a temp file on the destination, then rename.
            let tmp = store::tmp_dir(&self.mountpaths[to_mp].path)
                .join(format!("mv.{}", store::next_version()));
            std::fs::copy(from, &tmp)?;
            std::fs::File::open(&tmp)?.sync_all()?;
            std::fs::rename(&tmp, &dest)?;
            std::fs::remove_file(from)?;
        }
        let from_mp = self
            .mountpaths
            .iter()
            .position(|m| from.starts_with(&m.path));
        if let Some(i) = from_mp {
            self.mountpaths[i].removed(meta.size);
        }
        self.mountpaths[to_mp].added(meta.size);
        Ok(())
    }

    // ---- data requests ----------------------------------------------------------------------

    pub async fn serve_data(
        &self,
        ctx: &Arc<Ctx>,
        conn: &mut Conn,
        corr: u64,
        body: Msg,
    ) -> Result<Option<Msg>> {
        match body {
            Msg::Locate { key } => {
                check_key(ctx, &key)?;
                if let Some(r) = self.redirect_if_not_owner(ctx, &key) {
                    return Ok(Some(r));
                }
                let i = self.mountpath_for(&key.bucket, &key.object);
                Ok(Some(Msg::Located {
                    target: ctx.me.id.clone(),
                    mountpath: self.mountpaths[i].path.display().to_string(),
                }))
            }
            Msg::PutObject { key, size } => {
                check_key(ctx, &key)?;
                if let Some(r) = self.redirect_if_not_owner(ctx, &key) {
                    return Ok(Some(r));
                }
                self.put(conn, corr, key, size).await.map(Some)
            }
            Msg::GetObject { key, verify, local } => {
                check_key(ctx, &key)?;
                if !local && let Some(r) = self.redirect_if_not_owner(ctx, &key) {
                    return Ok(Some(r));
                }
                self.get(ctx, conn, corr, key, verify, local).await?;
                Ok(None)
            }
            Msg::HeadObject { key, local } => {
                check_key(ctx, &key)?;
                if !local && let Some(r) = self.redirect_if_not_owner(ctx, &key) {
                    return Ok(Some(r));
                }
                if let Some((_, _, m)) = self.find_local(&key.bucket, &key.object) {
                    return Ok(Some(Msg::Object(m)));
                }
                if local {
                    return Err(not_found(&key));
                }
                match self.neighbor_lookup(ctx, &key).await {
                    Ok((_, meta)) => Ok(Some(Msg::Object(meta))),
                    // Arrived here while we asked around (see `get`).
                    Err(Error::NotFound(_)) => self
                        .find_local(&key.bucket, &key.object)
                        .map(|(_, _, m)| Some(Msg::Object(m)))
                        .ok_or_else(|| not_found(&key)),
                    Err(e) => Err(e),
                }
            }
            Msg::DeleteObject { key, local } => {
                check_key(ctx, &key)?;
                if !local && let Some(r) = self.redirect_if_not_owner(ctx, &key) {
                    return Ok(Some(r));
                }
                self.delete(ctx, key, local).await.map(Some)
            }
            other => Err(Error::BadRequest(format!(
                "not a data request: {}",
                other.name()
            ))),
        }
    }

    /// Under our (possibly newer) map, is someone else the owner? Then send the client there.
    fn redirect_if_not_owner(&self, ctx: &Ctx, key: &ObjKey) -> Option<Msg> {
        let meta = ctx.meta();
        let smap = meta.smap.as_ref()?;
        let owner = placement::owner(smap, &key.bucket, &key.object)?;
        (owner.id != ctx.me.id).then(|| Msg::Redirect {
            node: owner.id.clone(),
            addr: owner.addr.clone(),
        })
    }

    async fn put(&self, conn: &mut Conn, corr: u64, key: ObjKey, size: u64) -> Result<Msg> {
        let mp = self.mountpath_for(&key.bucket, &key.object);
        let path = self.mountpaths[mp].path.clone();
        if let Some(c) = crate::stats::capacity(&path)
            && c.avail < size.saturating_add(1 << 20)
        {
            return Err(Error::NoSpace(format!(
                "mountpath {} has {} bytes free, object needs {size}",
                path.display(),
                c.avail
            )));
        }
        // Go ahead: the client sends the body only now, so a refusal costs no transfer.
        conn.send(corr, Msg::Ok).await?;
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
            .find_local(&key.bucket, &key.object)
            .map(|(_, _, m)| m.version)
            .unwrap_or(0);
        let meta = ObjMeta {
            bucket: key.bucket.clone(),
            object: key.object.clone(),
            size,
            checksum: w.checksum(),
            version: store::next_version().max(existing + 1),
            mtime: store::unix_ms(),
        };
        let tmp = w.finish(&meta).await?;
        self.install(&meta, tmp, mp).await?;
        Ok(Msg::Put {
            version: meta.version,
            checksum: meta.checksum,
        })
    }

    async fn get(
        &self,
        ctx: &Arc<Ctx>,
        conn: &mut Conn,
        corr: u64,
        key: ObjKey,
        verify: bool,
        local: bool,
    ) -> Result<()> {
        // Two rounds: an object in flight to us is installed here before its sender deletes
        // it, so if the neighbours lost it between our local look and theirs, it is here now.
        for round in 0..2 {
            if self.serve_local(conn, corr, &key, verify).await? {
                return Ok(());
            }
            if local {
                return Err(not_found(&key));
            }
            match self
                .serve_from_neighbor(ctx, conn, corr, &key, verify)
                .await
            {
                Err(Error::NotFound(_)) if round == 0 => continue,
                other => return other,
            }
        }
        Err(not_found(&key))
    }

    /// Streams the local copy if there is one; `Ok(false)` when there is none.
    async fn serve_local(
        &self,
        conn: &mut Conn,
        corr: u64,
        key: &ObjKey,
        verify: bool,
    ) -> Result<bool> {
        let Some((_, path, _)) = self.find_local(&key.bucket, &key.object) else {
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
                conn.send(corr, Msg::Object(meta.clone())).await?;
                conn.send_body(corr, &mut f, meta.size).await?;
                Ok(true)
            }
            // Moved away between the lookup and the open.
            Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Get-from-neighbor: the object may still be on its previous owner or in flight.
    async fn serve_from_neighbor(
        &self,
        ctx: &Arc<Ctx>,
        conn: &mut Conn,
        corr: u64,
        key: &ObjKey,
        verify: bool,
    ) -> Result<()> {
        let (addr, _) = self.neighbor_lookup(ctx, key).await?;
        let mut peer = ctx.pool.get(&addr, PEER_TIMEOUT).await?;
        let pc = peer
            .start(Msg::GetObject {
                key: key.clone(),
                verify,
                local: true,
            })
            .await?;
        let meta = match peer.finish(pc).await? {
            Msg::Object(m) => m,
            other => return Err(crate::client::unexpected(&other)),
        };
        conn.send(corr, Msg::Object(meta.clone())).await?;
        // Relay chunk by chunk: memory stays at one chunk.
        let mut left = meta.size;
        while left > 0 {
            let env = peer.recv_reply().await?;
            match env.body {
                Msg::Chunk(d) => {
                    left = left.saturating_sub(d.len() as u64);
                    conn.send(corr, Msg::Chunk(d)).await?;
                }
                Msg::Error(w) => return Err(w.into()),
                other => return Err(crate::client::unexpected(&other)),
            }
        }
        ctx.pool.put(&addr, peer);
        Ok(())
    }

    /// Sends `msg` to every other target in the map at once; answers by address.
    async fn ask_other_targets(&self, ctx: &Arc<Ctx>, msg: Msg) -> Vec<(String, Result<Msg>)> {
        let meta = ctx.meta();
        let Some(smap) = meta.smap.as_ref() else {
            return Vec::new();
        };
        let calls = smap
            .targets
            .values()
            .filter(|t| t.id != ctx.me.id)
            .map(|t| {
                let (addr, msg) = (t.addr.clone(), msg.clone());
                async move {
                    let r = ctx.call(&addr, msg, Duration::from_secs(5)).await;
                    (addr, r)
                }
            });
        futures::future::join_all(calls).await
    }

    /// Asks every other target for its local copy; the newest wins.
    async fn neighbor_lookup(&self, ctx: &Arc<Ctx>, key: &ObjKey) -> Result<(String, ObjMeta)> {
        let msg = Msg::HeadObject {
            key: key.clone(),
            local: true,
        };
        let mut best: Option<(String, ObjMeta)> = None;
        for (addr, r) in self.ask_other_targets(ctx, msg).await {
            if let Ok(Msg::Object(m)) = r
                && best.as_ref().is_none_or(|(_, b)| m.version > b.version)
            {
                best = Some((addr, m));
            }
        }
        best.ok_or_else(|| not_found(key))
    }

    async fn delete(&self, ctx: &Arc<Ctx>, key: ObjKey, local: bool) -> Result<Msg> {
        let mut found = false;
        {
            let _g = self.locks.lock(&key.bucket, &key.object).await;
            for mp in &self.mountpaths {
                let p = store::object_path(&mp.path, &key.bucket, &key.object);
                if let Ok(m) = store::read_meta(&p)
                    && m.object == key.object
                {
                    std::fs::remove_file(&p)?;
                    mp.removed(m.size);
                    found = true;
                }
            }
            // Remember the delete: a copy still in flight must not bring the object back.
            self.set_tombstone(&key.bucket, &key.object, store::next_version());
        }
        if !local {
            // Remove it wherever else it is: previous owners, or mid-rebalance senders.
            let msg = Msg::DeleteObject {
                key: key.clone(),
                local: true,
            };
            for (_, r) in self.ask_other_targets(ctx, msg).await {
                if matches!(r, Ok(Msg::Ok)) {
                    found = true;
                }
            }
        }
        if found {
            Ok(Msg::Ok)
        } else {
            Err(not_found(&key))
        }
    }

    pub async fn list_local(&self, bucket: &str, prefix: &str) -> Result<Vec<ObjEntry>> {
        let dirs: Vec<PathBuf> = self
            .mountpaths
            .iter()
            .map(|m| store::bucket_dir(&m.path, bucket))
            .collect();
        let (bucket, prefix) = (bucket.to_string(), prefix.to_string());
        tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            for d in dirs {
                let Ok(rd) = std::fs::read_dir(&d) else {
                    continue;
                };
                for e in rd.flatten() {
                    if let Ok(m) = store::read_meta(&e.path())
                        && m.bucket == bucket
                        && m.object.starts_with(&prefix)
                    {
                        out.push(ObjEntry {
                            name: m.object,
                            size: m.size,
                            checksum: m.checksum,
                            version: m.version,
                        });
                    }
                }
            }
            out
        })
        .await
        .map_err(|e| Error::Io(std::io::Error::other(e)))
    }

    // ---- rebalance receive ------------------------------------------------------------------

    pub async fn receive_reb_object(
        &self,
        ctx: &Arc<Ctx>,
        conn: &mut Conn,
        corr: u64,
        generation: u64,
        meta: ObjMeta,
        sender_bmd: u64,
    ) -> Result<Msg> {
        let current = ctx.meta().rmd.version;
        if generation > current {
            return Err(Error::Busy(format!(
                "rebalance g{generation} has not started here yet (at g{current})"
            )));
        }
        if generation < current {
            return Err(Error::BadRequest(format!(
                "stale rebalance generation g{generation} (current g{current})"
            )));
        }
        store::validate_bucket(&meta.bucket)?;
        store::validate_object(&meta.object)?;
        reb_bucket_known(&ctx.meta().bmd, &meta.bucket, sender_bmd)?;
        let mp = self.mountpath_for(&meta.bucket, &meta.object);
        conn.send(corr, Msg::Ok).await?;
        let mut w = ObjectWriter::create(&self.mountpaths[mp].path).await?;
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        let recv = {
            let file = w.file();
            conn.recv_body(file, meta.size, |d| hasher.update(d)).await
        };
        if let Err(e) = recv {
            w.abort().await;
            return Err(e);
        }
        w.observe_digest(hasher);
        if w.checksum() != meta.checksum {
            let got = w.checksum();
            w.abort().await;
            rebalance::count_error(ctx, generation).await;
            return Err(Error::Checksum(format!(
                "{}/{}: sent {} received {got}",
                meta.bucket, meta.object, meta.checksum
            )));
        }
        let tmp = w.finish(&meta).await?;
        // Checked again after the body: a newer generation, or a destroyed bucket, wins.
        let now = ctx.meta();
        if now.rmd.version != generation {
            return Err(Error::BadRequest(format!(
                "stale rebalance generation g{generation} (current g{})",
                now.rmd.version
            )));
        }
        // Only an object that is installed (or superseded by a newer copy or delete here) is
        // acknowledged: the sender deletes its copy on this answer.
        reb_bucket_known(&now.bmd, &meta.bucket, sender_bmd)?;
        self.install(&meta, tmp, mp).await?;
        rebalance::count_rx(ctx, generation, meta.size).await;
        Ok(Msg::RebAck { stored: true })
    }

    /// Dry run: objects and bytes this target would send to each destination under `smap`.
    pub async fn plan_moves(&self, ctx: &Arc<Ctx>, smap: &Smap) -> Result<Vec<PlanMove>> {
        let paths: Vec<PathBuf> = self.mountpaths.iter().map(|m| m.path.clone()).collect();
        let smap = smap.clone();
        let me: NodeId = ctx.me.id.clone();
        tokio::task::spawn_blocking(move || {
            let mut per: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
            for p in paths {
                let _ = store::walk_objects(&p, |path, _| {
                    if let Ok(m) = store::read_meta(path)
                        && let Some(o) = placement::owner(&smap, &m.bucket, &m.object)
                        && o.id != me
                    {
                        let e = per.entry(o.id.0.clone()).or_default();
                        e.0 += 1;
                        e.1 += m.size;
                    }
                    true
                });
            }
            per.into_iter()
                .map(|(to, (objs, bytes))| PlanMove {
                    from: me.0.clone(),
                    to,
                    objs,
                    bytes,
                })
                .collect()
        })
        .await
        .map_err(|e| Error::Io(std::io::Error::other(e)))
    }
}

/// May a rebalanced object of `bucket` be installed here? A bucket this target does not know is
/// either not here yet (our bucket map is older than the sender's: refuse with busy, the sender
/// keeps its copy and retries) or destroyed (ours is as new: refuse for good, the sender's copy
/// goes with the bucket). Never acknowledge it as stored.
pub fn reb_bucket_known(bmd: &crate::smap::Bmd, bucket: &str, sender_bmd: u64) -> Result<()> {
    if bmd.buckets.contains(bucket) {
        return Ok(());
    }
    if sender_bmd == 0 || bmd.version < sender_bmd {
        crate::fault::hit("reb_bucket_busy");
        return Err(Error::Busy(format!(
            "bucket {bucket:?} is not in this target's bucket map yet (v{}, sender has v{sender_bmd})",
            bmd.version
        )));
    }
    Err(Error::NotFound(format!(
        "bucket {bucket:?} was destroyed (bucket map v{})",
        bmd.version
    )))
}

fn not_found(key: &ObjKey) -> Error {
    Error::NotFound(format!(
        "object {}/{} does not exist",
        key.bucket, key.object
    ))
}

fn check_key(ctx: &Ctx, key: &ObjKey) -> Result<()> {
    store::validate_bucket(&key.bucket)?;
    store::validate_object(&key.object)?;
    if !ctx.meta().bmd.buckets.contains(&key.bucket) {
        return Err(Error::NotFound(format!(
            "bucket {:?} does not exist",
            key.bucket
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smap::Bmd;

    #[test]
    fn rebalanced_objects_of_unknown_buckets_are_never_acknowledged() {
        let bmd = Bmd {
            version: 3,
            buckets: ["data".to_string()].into(),
        };
        assert!(reb_bucket_known(&bmd, "data", 3).is_ok());
        // Our bucket map lags the sender's: not yet, the sender keeps its copy and retries.
        assert!(matches!(
            reb_bucket_known(&bmd, "new", 4),
            Err(Error::Busy(m)) if m.contains("not in this target's bucket map yet")
        ));
        // A sender that does not say which map it has is treated as newer.
        assert!(matches!(
            reb_bucket_known(&bmd, "new", 0),
            Err(Error::Busy(_))
        ));
        // As new as the sender's and still unknown: destroyed.
        assert!(matches!(
            reb_bucket_known(&bmd, "gone", 3),
            Err(Error::NotFound(_))
        ));
    }
}
