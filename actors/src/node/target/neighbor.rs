//! Where the newest copy of an object is (DESIGN §8). Normally the owner's own copy. While a
//! rebalance may still bring objects here (the store is `settling`), or when there is no copy
//! here, the other targets are asked for their stamps too: a newer copy elsewhere (its owner was
//! away, or it is in flight) is relayed chunk by chunk (get-from-neighbor), and a newer delete
//! anywhere wins over every older copy — a deleted or overwritten object never reads back.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::DataPath;
use crate::error::{Error, Result};
use crate::proto::codec::Conn;
use crate::proto::msg::{GetObject, Msg, Reply, Rpc, StampQuery};
use crate::types::object::{ObjKey, Stamp};

pub(super) const PEER_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the newest version of an object is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Newest {
    Here,
    /// On the target at this address.
    At(String),
    /// Its newest stamp is a delete.
    Deleted,
    Nowhere,
}

/// The newest of this target's stamp and the others' (at their addresses). Ties favour a
/// delete, then this target.
pub fn choose(mine: Option<Stamp>, others: &[(String, Stamp)]) -> Newest {
    let best_other = others.iter().max_by_key(|(_, s)| (s.version, s.deleted));
    match (mine, best_other) {
        (None, None) => Newest::Nowhere,
        (Some(m), None) => {
            if m.deleted {
                Newest::Deleted
            } else {
                Newest::Here
            }
        }
        (m, Some((addr, o))) => {
            let m_ver = m.as_ref().map(|m| (m.version, m.deleted));
            if m_ver.is_some_and(|mv| mv >= (o.version, o.deleted)) {
                if m.as_ref().is_some_and(|m| m.deleted) {
                    Newest::Deleted
                } else {
                    Newest::Here
                }
            } else if o.deleted {
                Newest::Deleted
            } else {
                Newest::At(addr.clone())
            }
        }
    }
}

/// One other target's answer to a request sent to all of them.
pub(super) struct Answer<T> {
    pub addr: String,
    /// Its data was moved off and checked (maintenance after a clean rebalance): it holds no
    /// copy that matters, so its silence changes nothing.
    pub emptied: bool,
    pub reply: Result<T>,
}

impl DataPath<'_> {
    /// Sends `req` to every other target in the map at once.
    pub(super) async fn ask_other_targets<R: Rpc + Clone>(&self, req: R) -> Vec<Answer<R::Reply>> {
        let meta = self.meta.get();
        let Some(smap) = meta.smap.as_ref() else {
            return Vec::new();
        };
        let calls = smap.targets.values().filter(|t| &t.id != self.me).map(|t| {
            let (addr, req) = (t.addr.clone(), req.clone());
            let emptied = t.emptied();
            async move {
                let reply = self.pool.rpc(&addr, req, Duration::from_secs(5)).await;
                Answer {
                    addr,
                    emptied,
                    reply,
                }
            }
        });
        futures::future::join_all(calls).await
    }

    /// Where the newest version of `key` is. The others are asked only when this target may
    /// be missing something (no copy here, or a rebalance still settling). Then every one of
    /// them must answer: a target that did not may hold the newest copy (written there under
    /// the previous map, not moved yet), so "nowhere" or "here" would be a guess that reads a
    /// written object as missing, or an overwritten one back — the request fails instead.
    pub(super) async fn newest(&self, key: &ObjKey) -> Result<Newest> {
        let mine = self.store.stamp(&key.bucket, &key.object);
        self.newest_given(key, mine).await
    }

    /// Settled, with a stamp here: what this owner has is the newest there is, and no one
    /// needs asking. `None` when the others must be asked.
    pub(super) fn newest_without_asking(&self, mine: Option<Stamp>) -> Option<Newest> {
        let settled = !self.store.settling.load(Ordering::Relaxed);
        (settled && mine.is_some()).then(|| choose(mine, &[]))
    }

    /// As [`newest`](Self::newest), with this target's own stamp already looked up.
    pub(super) async fn newest_given(&self, key: &ObjKey, mine: Option<Stamp>) -> Result<Newest> {
        if let Some(n) = self.newest_without_asking(mine) {
            return Ok(n);
        }
        Ok(choose(mine, &self.others_stamps(key).await?))
    }

    /// Before a write while a rebalance settles: every other target is told this target's map
    /// (one still acting as the owner under an older map stops, see
    /// [`current_map`](Self::current_map)) and asked for its stamp. The newest version among
    /// their copies and deletes, which the write must beat; 0 when settled.
    pub(super) async fn fence(&self, key: &ObjKey) -> Result<u64> {
        if !self.store.settling.load(Ordering::Relaxed) {
            return Ok(0);
        }
        let others = self.others_stamps(key).await?;
        Ok(others.iter().map(|(_, s)| s.version).max().unwrap_or(0))
    }

    /// The stamps of `key` on the other targets, each told this target's map version. Every
    /// one that may hold a copy must answer.
    async fn others_stamps(&self, key: &ObjKey) -> Result<Vec<(String, Stamp)>> {
        let q = StampQuery {
            key: key.clone(),
            smap_version: self.map_version(),
        };
        let mut others: Vec<(String, Stamp)> = Vec::new();
        for a in self.ask_other_targets(q).await {
            match a.reply {
                Ok(Some(s)) => others.push((a.addr, s)),
                // Nothing there (a target that does not know the bucket has no copy of it).
                Ok(None) | Err(Error::NotFound(_)) => {}
                Err(_) if a.emptied => {}
                Err(e) => {
                    return Err(Error::Unavailable(format!(
                        "{key}: cannot tell where its newest copy is: the target at {} did not \
                         answer ({e}) and may hold it",
                        a.addr
                    )));
                }
            }
        }
        Ok(others)
    }

    /// The version of this target's map.
    pub(super) fn map_version(&self) -> u64 {
        self.meta.get().smap.as_ref().map_or(0, |s| s.version)
    }

    /// Notes the map version a peer acts under.
    pub(super) fn saw_map(&self, version: u64) {
        self.store.map_seen.fetch_max(version, Ordering::Relaxed);
    }

    /// Before acting as an owner: when another target has acted under a newer map than ours,
    /// a push was missed (this target may be cut off from the primary) and the owner of any
    /// object may have changed. Wait for that map (a keepalive brings it), or refuse: serving
    /// as the owner under the older map would read back values the new owner replaced.
    pub(super) async fn current_map(&self) -> Result<()> {
        self.joined().await?;
        self.heard_from_primary()?;
        let need = self.store.map_seen.load(Ordering::Relaxed);
        if need == 0 || need <= self.map_version() {
            return Ok(());
        }
        let meta = self.meta.get();
        let wait = meta.config.keepalive.interval() * 2;
        let mut rx = self.meta.subscribe();
        let caught_up = rx.wait_for(|m| m.smap.as_ref().is_some_and(|s| s.version >= need));
        match tokio::time::timeout(wait, caught_up).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(Error::Unavailable(format!(
                "t[{}] has cluster map v{} while other targets act under v{need}: it may no \
                 longer own this object and waits for the newer map (is it cut off from the \
                 primary?)",
                self.me,
                self.map_version()
            ))),
        }
    }

    /// Before acting as an owner: this target heard from a primary lately. The primary removes a
    /// node silent for `keepalive.remove_after_ms` from the map without a rebalance, and its
    /// objects get new owners; a target cut off from everyone cannot learn that. It stops acting
    /// as an owner after half that silence, before anyone else can take its objects.
    fn heard_from_primary(&self) -> Result<()> {
        let meta = self.meta.get();
        let ka = &meta.config.keepalive;
        // Never below two beats: one late answer is not silence.
        let lease = Duration::from_millis(ka.remove_after_ms / 2).max(ka.interval() * 2);
        let silence = self.contact.silence();
        if silence <= lease {
            return Ok(());
        }
        Err(Error::Unavailable(format!(
            "t[{}] has not heard from the primary for {} s: it may have been removed from the \
             cluster map and no longer own this object (is it cut off?)",
            self.me,
            silence.as_secs()
        )))
    }

    /// Before acting as an owner after a restart: the cluster has answered this target's join
    /// (see `LocalStore::joined`). A join the primary is slow to answer is waited for, as a
    /// missed map is; one that does not come is refused.
    async fn joined(&self) -> Result<()> {
        if *self.store.joined.borrow() {
            return Ok(());
        }
        let wait = self.meta.get().config.keepalive.interval() * 2;
        let mut rx = self.store.joined.subscribe();
        match tokio::time::timeout(wait, rx.wait_for(|j| *j)).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(Error::Unavailable(format!(
                "t[{}] restarted and has not rejoined the cluster yet: its map (v{}) may be out \
                 of date",
                self.me,
                self.map_version()
            ))),
        }
    }

    /// Relays the copy at `addr` to the client, chunk by chunk: memory stays at one chunk.
    pub(super) async fn relay_from(
        &self,
        addr: &str,
        conn: &mut Conn,
        corr: u64,
        key: &ObjKey,
        read: super::Read,
    ) -> Result<()> {
        let get = Msg::from(GetObject {
            key: key.clone(),
            verify: read.verify,
            local: true,
            range: read.range,
        });
        let (mut link, first) = self.pool.exchange(addr, get, PEER_TIMEOUT).await?;
        let meta = match first {
            Msg::Reply(Reply::Object(m)) => m,
            other => {
                return Err(Error::Protocol(format!(
                    "unexpected {} from a neighbour's get",
                    other.name()
                )));
            }
        };
        let (_, mut left) = read.span(&meta)?;
        conn.send(corr, Msg::Reply(Reply::Object(meta.clone())))
            .await?;
        // Each chunk goes on as it came, a view of its frame, not a copy.
        while left > 0 {
            let d = link.conn.next_body_chunk(&mut left).await?;
            conn.send_body_bytes(corr, &d).await?;
        }
        self.pool.release(link);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copy(v: u64) -> Stamp {
        Stamp {
            version: v,
            deleted: false,
        }
    }
    fn del(v: u64) -> Stamp {
        Stamp {
            version: v,
            deleted: true,
        }
    }

    #[test]
    fn the_newest_stamp_wins_and_deletes_win_ties() {
        let at = |a: &str, s: Stamp| (a.to_string(), s);
        assert_eq!(choose(None, &[]), Newest::Nowhere);
        assert_eq!(choose(Some(copy(5)), &[]), Newest::Here);
        assert_eq!(choose(Some(del(5)), &[]), Newest::Deleted);
        assert_eq!(choose(Some(copy(5)), &[at("a", copy(4))]), Newest::Here);
        assert_eq!(
            choose(Some(copy(5)), &[at("a", copy(4)), at("b", copy(9))]),
            Newest::At("b".into())
        );
        // A newer delete anywhere: gone, whatever copies remain elsewhere.
        assert_eq!(
            choose(Some(copy(5)), &[at("a", del(7)), at("b", copy(6))]),
            Newest::Deleted
        );
        // A delete here beats an older copy elsewhere (a target that was away).
        assert_eq!(choose(Some(del(8)), &[at("a", copy(3))]), Newest::Deleted);
        assert_eq!(choose(None, &[at("a", copy(3))]), Newest::At("a".into()));
        // Equal stamps: the delete wins, then our own copy.
        assert_eq!(choose(Some(copy(7)), &[at("a", del(7))]), Newest::Deleted);
        assert_eq!(choose(Some(copy(7)), &[at("a", copy(7))]), Newest::Here);
    }
}
