//! Receiving rebalanced objects (DESIGN §8): the receiver says go ahead (or refuses) before any
//! body byte, writes the object to a temp file while checking its checksum, re-checks the
//! generation and the bucket, installs it durably, and only then acknowledges — the sender
//! deletes its copy on that acknowledgement alone.

use super::DataPath;
use crate::error::{Error, Result};
use crate::logic::names;
use crate::node::names as actor_names;
use crate::node::rebalance::RebMsg;
use crate::proto::codec::Conn;
use crate::proto::msg::{
    Msg, REB_BATCH_MAX_BYTES, REB_BATCH_MAX_OBJS, RebAck, RebBatch, RebBatchAck, RebObject,
    RebTomb, Reply,
};
use crate::store::object as store;
use crate::types::checksum;
use crate::types::object::ObjMeta;
use crate::types::smap::Bmd;

/// May a rebalanced object of `bucket` be installed here? A bucket this target does not know is
/// either not here yet (our bucket map is older than the sender's: refuse with busy, the sender
/// keeps its copy and retries) or destroyed (ours is as new: refuse for good, the sender's copy
/// goes with the bucket). Never acknowledge it as stored.
pub fn reb_bucket_known(bmd: &Bmd, bucket: &str, sender_bmd: u64) -> Result<()> {
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

fn check_generation(current: u64, generation: u64) -> Result<()> {
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
    Ok(())
}

impl DataPath<'_> {
    /// Tells this node's rebalance actor (if running) about received objects.
    fn count(&self, msg: RebMsg) {
        if let Some(r) = actor_names::lookup::<RebMsg>(&actor_names::rebalance(self.me)) {
            let _ = r.cast(msg);
        }
    }

    pub async fn receive_reb_object(
        &self,
        conn: &mut Conn,
        corr: u64,
        o: RebObject,
    ) -> Result<Msg> {
        let RebObject {
            generation,
            meta,
            bmd_version,
        } = o;
        let now = self.meta.get();
        check_generation(now.rmd.version, generation)?;
        names::validate_bucket(&meta.bucket)?;
        names::validate_object(&meta.object)?;
        reb_bucket_known(&now.bmd, &meta.bucket, bmd_version)?;
        check_plausible(&meta)?;
        let mp = self.store.mountpath_for(&meta.bucket, &meta.object)?;
        // A full disk refuses before any byte moves: the sender keeps its copy and backs off.
        let w = self.receive_body(conn, corr, mp, meta.size).await?;
        if w.checksum() != meta.checksum {
            let got = w.checksum();
            // Not counted as an error of the generation here: the sender retries and counts the
            // object once if it never arrives, so that "N errors" means N objects.
            w.abort().await;
            return Err(Error::Checksum(format!(
                "{}/{}: sent {} received {got}",
                meta.bucket, meta.object, meta.checksum
            )));
        }
        let tmp = w.finish_unsynced(&meta).await?;
        // Checked again after the body, under the install barrier as a put's ownership is: a
        // newer generation (whose walk might go by before the install), or a destroyed
        // bucket, wins.
        let _barrier = self.store.installs.read().await;
        let now = self.meta.get();
        check_generation(now.rmd.version, generation)?;
        reb_bucket_known(&now.bmd, &meta.bucket, bmd_version)?;
        // Acknowledged only once installed (or superseded by a newer copy or delete here).
        self.store.install_flushed(&meta, tmp, mp).await?;
        self.count(RebMsg::Received {
            generation,
            objs: 1,
            bytes: meta.size,
        });
        Ok(Msg::Reply(Reply::RebAck(RebAck { stored: true })))
    }
}

/// A stamp a day or more ahead of our clock is corrupt: it would beat every later write.
fn check_plausible(meta: &ObjMeta) -> Result<()> {
    if meta.version > store::next_version().saturating_add(86_400_000_000_000) {
        return Err(Error::BadRequest(format!(
            "{}/{}: implausible version {} (from the future)",
            meta.bucket, meta.object, meta.version
        )));
    }
    Ok(())
}

impl DataPath<'_> {
    /// A batch of small rebalanced objects: checked whole before the go-ahead (a refusal costs
    /// no transfer), received into memory (bounded by [`REB_BATCH_MAX_BYTES`]), written as temp
    /// files, installed, and made durable with one flush per filesystem before the
    /// acknowledgement says which are stored.
    pub async fn receive_reb_batch(&self, conn: &mut Conn, corr: u64, b: RebBatch) -> Result<Msg> {
        let RebBatch {
            generation,
            bmd_version,
            metas,
        } = b;
        if metas.is_empty() || metas.len() > REB_BATCH_MAX_OBJS {
            return Err(Error::BadRequest(format!(
                "a rebalance batch holds 1 to {REB_BATCH_MAX_OBJS} objects, not {}",
                metas.len()
            )));
        }
        let total = metas
            .iter()
            .try_fold(0u64, |t, m| t.checked_add(m.size))
            .filter(|&t| t <= REB_BATCH_MAX_BYTES)
            .ok_or_else(|| {
                Error::BadRequest(format!(
                    "a rebalance batch holds at most {REB_BATCH_MAX_BYTES} bytes"
                ))
            })?;
        let now = self.meta.get();
        check_generation(now.rmd.version, generation)?;
        let mut mps = Vec::with_capacity(metas.len());
        let mut need: Vec<(usize, u64)> = Vec::new();
        for m in &metas {
            names::validate_bucket(&m.bucket)?;
            names::validate_object(&m.object)?;
            reb_bucket_known(&now.bmd, &m.bucket, bmd_version)?;
            check_plausible(m)?;
            let mp = self.store.mountpath_for(&m.bucket, &m.object)?;
            match need.iter_mut().find(|(i, _)| *i == mp) {
                Some((_, n)) => *n += m.size,
                None => need.push((mp, m.size)),
            }
            mps.push(mp);
        }
        for &(mp, bytes) in &need {
            self.room_for(mp, bytes)?;
        }
        conn.send(corr, Msg::Reply(Reply::Ok)).await?;
        let mut body = Vec::with_capacity(total as usize);
        conn.recv_body(&mut body, total, |_| {}).await?;

        // Temp files and checksums off the runtime; nothing is durable yet.
        let st = self.store.clone();
        let written = tokio::task::spawn_blocking(move || {
            let mut at = 0usize;
            let mut out = Vec::with_capacity(metas.len());
            for (m, mp) in metas.into_iter().zip(mps) {
                let data = &body[at..at + m.size as usize];
                at += m.size as usize;
                let sum = checksum::of(data);
                let r = if sum != m.checksum {
                    Err(Error::Checksum(format!(
                        "{}/{}: sent {} received {sum}",
                        m.bucket, m.object, m.checksum
                    )))
                } else {
                    store::write_temp_unsynced(&st.path_of(mp), &m, data)
                };
                out.push((m, mp, r));
            }
            out
        })
        .await
        .map_err(|e| Error::Io(std::io::Error::other(e)))?;

        // Checked again after the bodies, under the install barrier (see `receive_reb_object`).
        let _barrier = self.store.installs.read().await;
        let now = self.meta.get();
        check_generation(now.rmd.version, generation)?;
        let mut stored = vec![false; written.len()];
        let mut idx = Vec::with_capacity(written.len());
        let mut items = Vec::with_capacity(written.len());
        for (i, (m, mp, r)) in written.into_iter().enumerate() {
            match r {
                Ok(tmp) if reb_bucket_known(&now.bmd, &m.bucket, bmd_version).is_ok() => {
                    idx.push(i);
                    items.push((m, tmp, mp));
                }
                Ok(_) => {}
                Err(e @ Error::Checksum(_)) => {
                    tracing::warn!(error = %e, "rebalanced object failed its checksum");
                }
                Err(e) => tracing::warn!(error = %e, "rebalanced object not written"),
            }
        }
        let sizes: Vec<u64> = items.iter().map(|(m, _, _)| m.size).collect();
        let results = self.store.install_batch(items).await;
        let (mut objs, mut bytes) = (0, 0);
        for ((i, r), size) in idx.into_iter().zip(results).zip(sizes) {
            match r {
                Ok(_) => {
                    stored[i] = true;
                    objs += 1;
                    bytes += size;
                }
                Err(e) => tracing::warn!(error = %e, "rebalanced object not installed"),
            }
        }
        if objs > 0 {
            self.count(RebMsg::Received {
                generation,
                objs,
                bytes,
            });
        }
        Ok(Msg::Reply(Reply::RebBatchAck(RebBatchAck { stored })))
    }
}

impl DataPath<'_> {
    /// A delete record moving to this (new) owner of its object: older copies here go.
    pub async fn receive_tomb(&self, rt: RebTomb) -> Result<Msg> {
        let RebTomb {
            generation,
            tomb,
            bmd_version,
        } = rt;
        names::validate_bucket(&tomb.bucket)?;
        names::validate_object(&tomb.object)?;
        let _barrier = self.store.installs.read().await;
        let now = self.meta.get();
        check_generation(now.rmd.version, generation)?;
        reb_bucket_known(&now.bmd, &tomb.bucket, bmd_version)?;
        self.store.apply_tomb(&tomb).await?;
        Ok(Msg::Reply(Reply::RebAck(RebAck { stored: true })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn generations_older_and_newer_are_refused_differently() {
        assert!(check_generation(5, 5).is_ok());
        assert!(matches!(check_generation(5, 6), Err(Error::Busy(_))));
        assert!(matches!(check_generation(5, 4), Err(Error::BadRequest(m)) if m.contains("stale")));
    }
}
