//! Request routing for one connection: queries any node answers, control requests for the
//! primary (forwarded by other nodes), node-to-node messages (metadata, final lifecycle steps,
//! votes), and the data path (redirected by proxies, served by targets). Each request goes to the
//! subsystem that owns it — an actor by name, or the target's data path — after the checks of
//! DESIGN §10.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::meta::MetaHandle;
use super::primary::PrimaryMsg;
use super::{Contact, Kit, Restarts, names};
use crate::error::{Error, Result};
use crate::logic::auth::{self, Checker, Secret};
use crate::logic::oidc::OidcKeys;
use crate::logic::perm::{self, Action};
use crate::logic::{names as name_rules, placement};
use crate::proto::codec::{Conn, Envelope};
use crate::proto::msg::{
    AuthOp, AuthReply, Control, Data, GetClusterStatus, GetConfig, GetMetrics, GetNodeStats,
    GetSmap, Handshake, ListBuckets, ListObjects, Msg, Peer, Query, Reb, Rpc, VoteRequest,
};
use crate::proto::pool::Pool;
use crate::store::LocalStore;
use crate::types::auth::{PrincipalKind, WhoAmI};
use crate::types::lifecycle::NodeAction;
use crate::types::meta::MetaUpdate;
use crate::types::object::{MAX_PAGE, ObjEntry, ObjPage};
use crate::types::smap::{Node, NodeId, Role};
use crate::types::status::NodeStats;

/// How long a control request may take at the primary.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a request waits for a restarting primary actor.
const PRIMARY_WAIT: Duration = Duration::from_secs(3);

/// What the server needs to route requests: this node's identity, its metadata, the pool, the
/// target's store, and the counters it reports. Actors are reached by name.
pub struct Router {
    pub me: Node,
    pub meta: MetaHandle,
    pool: Arc<Pool>,
    secret: Option<Secret>,
    store: Option<Arc<LocalStore>>,
    contact: Arc<Contact>,
    restarts: Arc<Restarts>,
    metrics: Arc<super::metrics::RequestMetrics>,
    started: Instant,
    standby: bool,
    /// Hands the final step of a lifecycle operation to the node's supervisor.
    on_action: ActionSink,
}

/// Where final lifecycle steps go (the node actor), without the server depending on it.
pub type ActionSink = Arc<dyn Fn(NodeAction) + Send + Sync>;

impl Router {
    pub fn new(kit: &Kit, on_action: ActionSink) -> Self {
        Router {
            me: kit.me.clone(),
            meta: kit.meta.clone(),
            pool: kit.pool.clone(),
            secret: kit.secret.clone(),
            store: kit.store.clone(),
            contact: kit.contact.clone(),
            restarts: kit.restarts.clone(),
            metrics: kit.metrics.clone(),
            started: kit.started,
            standby: kit.args.standby,
            on_action,
        }
    }

    fn data_path(&self) -> Result<super::target::DataPath<'_>> {
        let store = self
            .store
            .as_ref()
            .ok_or_else(|| Error::BadRequest("this node is not a target".into()))?;
        Ok(super::target::DataPath {
            me: &self.me.id,
            meta: &self.meta,
            pool: &self.pool,
            store,
            contact: &self.contact,
        })
    }

    /// What requests are checked against: the cluster's auth switch, this node's secret, the
    /// cluster it belongs to, its users, roles and revocations, and the external issuers' keys.
    fn checker<'a>(
        &'a self,
        meta: &'a crate::types::meta::Meta,
        oidc: &'a Option<Arc<OidcKeys>>,
    ) -> Checker<'a> {
        Checker {
            enabled: meta.config.auth.enabled,
            secret: self.secret.as_ref(),
            uuid: meta.smap.as_ref().map(|s| s.uuid.as_str()),
            cfg: &meta.config.auth,
            oidc: oidc.as_deref(),
        }
    }

    /// The external issuers' keys, when the config trusts any (read from disk, cached until
    /// the files change). A key file that cannot be read is logged, and external tokens are
    /// then refused.
    fn oidc_keys(meta: &crate::types::meta::Meta) -> Option<Arc<OidcKeys>> {
        if !meta.config.auth.enabled {
            return None;
        }
        match crate::store::keys::oidc_keys(&meta.config.auth.oidc) {
            Ok(k) => k,
            Err(e) => {
                tracing::warn!("external tokens cannot be checked: {e}");
                None
            }
        }
    }

    /// Handles one request. Returns the reply to send, or `None` when the handler already
    /// answered on `conn` itself (streamed bodies, replies before acting). Counted and timed
    /// by operation for `/metrics`.
    pub async fn handle(&self, conn: &mut Conn, env: Envelope) -> Result<Option<Msg>> {
        let op = env.body.name();
        let started = Instant::now();
        let res = self.route(conn, env).await;
        self.metrics.observe(op, res.is_ok(), started.elapsed());
        res
    }

    async fn route(&self, conn: &mut Conn, env: Envelope) -> Result<Option<Msg>> {
        let Envelope {
            from,
            corr,
            token,
            body,
            ..
        } = env;
        let meta = self.meta.get();
        let keys = Self::oidc_keys(&meta);
        let ck = self.checker(&meta, &keys);
        let token = token.as_deref();
        match body {
            Msg::Query(q) => {
                ck.authorize(&from, token, Action::View)?;
                self.query(q).await.map(Some)
            }
            Msg::Control(c) => self.control(c, &from, token).await.map(Some),
            Msg::Peer(p) => {
                ck.node(&from, token)?;
                self.peer(conn, corr, p, &from).await
            }
            Msg::Data(mut d) => {
                ck.authorize(&from, token, data_action(&d))?;
                // A map version is taken only from a node (with auth on, one holding a node token
                // of this cluster; it may be newer than our map, so membership cannot be asked):
                // from a client it could make this target refuse to act as an owner until it
                // learned a map that never comes.
                if from.0 == crate::client::CLIENT_ID || ck.node(&from, token).is_err() {
                    d.forget_map_version();
                }
                self.data(conn, corr, d).await
            }
            Msg::Reb(r) => {
                ck.node(&from, token)?;
                auth::check_member(meta.smap.as_ref(), &from)?;
                let dp = self.data_path()?;
                match r {
                    Reb::Object(o) => dp.receive_reb_object(conn, corr, o).await.map(Some),
                    Reb::Tomb(t) => dp.receive_tomb(t).await.map(Some),
                    Reb::Batch(b) => dp.receive_reb_batch(conn, corr, b).await.map(Some),
                    Reb::PlanMoves(p) => {
                        let moves = dp.store.plan_moves(&self.me.id, &p.smap).await?;
                        Ok(Some(Msg::Reply(crate::proto::msg::PlanMoves::reply(moves))))
                    }
                }
            }
            Msg::Storage(s) => {
                let action = match &s {
                    crate::proto::msg::Storage::Mountpath(_) => {
                        Action::Cluster("attach, detach, enable or disable mountpaths")
                    }
                    _ => Action::View,
                };
                ck.authorize(&from, token, action)?;
                let store = self.store.as_ref().ok_or_else(|| {
                    Error::BadRequest(format!(
                        "{} is a proxy: storage requests go to a target",
                        self.me.id
                    ))
                })?;
                let rows = match &s {
                    crate::proto::msg::Storage::Show(_) => self.node_stats().await?.mountpaths,
                    _ => Vec::new(),
                };
                super::storage::serve(&self.me.id, store, rows, s)
                    .await
                    .map(Some)
            }
            other => Err(Error::BadRequest(format!(
                "unexpected {} for a {}",
                other.name(),
                self.me.role.as_str()
            ))),
        }
    }

    // ---- queries ------------------------------------------------------------------------------

    async fn query(&self, q: Query) -> Result<Msg> {
        let meta = self.meta.get();
        let reply = match q {
            Query::GetSmap(_) => {
                GetSmap::reply(meta.smap.clone().ok_or_else(|| {
                    Error::NotFound("this node has not joined a cluster yet".into())
                })?)
            }
            Query::GetConfig(_) => {
                GetConfig::reply(Box::new(meta.config.masked(self.secret.is_some())))
            }
            Query::ListBuckets(_) => ListBuckets::reply(meta.bmd.buckets.iter().cloned().collect()),
            Query::GetNodeStats(_) => GetNodeStats::reply(Box::new(self.node_stats().await?)),
            Query::GetMetrics(_) => GetMetrics::reply(self.metrics_text().await),
        };
        Ok(Msg::Reply(reply))
    }

    /// This node's stats: the stats actor's latest sample, plus object counts and restarts.
    pub async fn node_stats(&self) -> Result<NodeStats> {
        let stats = names::lookup::<super::stats::StatsMsg>(&names::stats(&self.me.id))
            .ok_or_else(|| Error::Unavailable("the stats actor is not running".into()))?;
        let mut s = ractor::call_t!(stats, super::stats::StatsMsg::Get, 2000)
            .map_err(|e| Error::Unavailable(format!("stats actor: {e}")))?;
        s.uptime_secs = self.started.elapsed().as_secs();
        s.restarts = self.restarts.snapshot();
        if let Some(store) = &self.store {
            s.mountpaths = super::storage::mountpath_rows(store, &s.mountpaths);
            s.resilver = super::storage::resilver_status(&self.me.id)
                .await
                .ok()
                .flatten();
            (s.object_count, s.object_bytes) = store.totals();
        }
        Ok(s)
    }

    /// `/metrics`: the request metrics and what `show cluster` / `show rebalance` show of
    /// this node, read now (what cannot be read is left out rather than failing the scrape).
    async fn metrics_text(&self) -> String {
        let stats = self.node_stats().await.ok();
        let target_rebalance =
            match names::lookup::<super::rebalance::RebMsg>(&names::rebalance(&self.me.id)) {
                Some(r) => ractor::call_t!(r, super::rebalance::RebMsg::Status, 2000)
                    .ok()
                    .flatten(),
                None => None,
            };
        let cluster_rebalance = match names::lookup::<PrimaryMsg>(&names::primary(&self.me.id)) {
            Some(p) if self.meta.get().is_primary(&self.me.id) => {
                ractor::call_t!(p, PrimaryMsg::Snapshot, 2000)
                    .ok()
                    .and_then(|s| s.rebalance)
            }
            _ => None,
        };
        let snap = super::metrics::Snapshot {
            id: self.me.id.0.clone(),
            role: self.me.role.as_str().to_string(),
            resilver: stats.as_ref().and_then(|s| s.resilver.clone()),
            stats,
            target_rebalance,
            cluster_rebalance,
        };
        super::metrics::render(&self.metrics, &snap)
    }

    // ---- control ------------------------------------------------------------------------------

    async fn control(&self, c: Control, from: &NodeId, token: Option<&str>) -> Result<Msg> {
        let meta = self.meta.get();
        let keys = Self::oidc_keys(&meta);
        let ck = self.checker(&meta, &keys);
        let mut by = None;
        if let Control::Auth(op) = &c {
            match op {
                // Any node answers these: every node has the users and the secret.
                AuthOp::Login {
                    user,
                    password,
                    ttl_secs,
                } => return self.login(&meta, user, password, *ttl_secs).await,
                AuthOp::WhoAmI => {
                    let principal = ck.identify(from, token)?;
                    let who = WhoAmI {
                        auth_enabled: meta.config.auth.enabled,
                        principal,
                        exp: token.and_then(token_exp),
                    };
                    return Ok(Msg::Reply(AuthOp::reply(Box::new(AuthReply {
                        whoami: Some(who),
                        ..Default::default()
                    }))));
                }
                // A holder may revoke their own token (logout); other tokens, token IDs and
                // users need an admin (the match is exact: a token of one's own does not
                // carry a `jti` or `user` along).
                AuthOp::Revoke {
                    token: Some(t),
                    jti: None,
                    user: None,
                } => {
                    let p = ck.identify(from, token)?;
                    if meta.config.auth.enabled {
                        let secret = ck.secret.ok_or_else(|| {
                            Error::Unauthorized("this node has no cluster secret".into())
                        })?;
                        let target = auth::revocable(secret, t)?;
                        if target.sub != p.subject || p.kind != PrincipalKind::User {
                            perm::check(&p, Action::Cluster("revoke another user's token"))?;
                        }
                    }
                    by = Some(p.subject);
                }
                _ => {
                    let p = ck.authorize(from, token, control_action(&c))?;
                    by = Some(p.subject);
                }
            }
        } else if c.is_from_node() {
            ck.node(from, token)?;
            match &c {
                // Join is how non-members become members: the joiner itself asks (forwarded
                // joins keep the joiner's identity and token).
                Control::Join(j) if j.node.id == *from => {}
                Control::Join(_) => {
                    return Err(Error::Forbidden(format!(
                        "{from} may only ask to join for itself"
                    )));
                }
                // An unknown node is told so and rejoins (see keepalive).
                Control::Keepalive(_) if meta.is_primary(&self.me.id) => {}
                _ => auth::check_member(meta.smap.as_ref(), from)?,
            }
        } else if c.is_admin() {
            let p = ck.authorize(from, token, control_action(&c))?;
            by = meta.config.auth.enabled.then_some(p.subject);
        } else {
            ck.authorize(from, token, Action::View)?;
        }
        if !meta.is_primary(&self.me.id) {
            return self.forward_to_primary(c, from, token).await;
        }
        // A new user's password is hashed here, on the primary's node, outside its actor
        // (argon2 is slow on purpose); only the hash goes into the config.
        let c = match c {
            Control::Auth(AuthOp::UserAdd {
                name,
                password,
                roles,
                ..
            }) => {
                perm::validate_password(&name, &password)?;
                let hash = tokio::task::spawn_blocking(move || auth::hash_password(&password))
                    .await
                    .map_err(|e| Error::Unavailable(format!("password hashing: {e}")))??;
                Control::Auth(AuthOp::UserAdd {
                    name,
                    password: String::new(),
                    roles,
                    password_hash: hash,
                })
            }
            other => other,
        };
        // The primary actor may be restarting after a failure: wait for it a little (its
        // supervisor's back-off) rather than fail the client at once.
        let name = names::primary(&self.me.id);
        let mut wait = Duration::from_millis(25);
        loop {
            if let Some(p) = names::lookup::<PrimaryMsg>(&name) {
                let res = match &c {
                    Control::GetClusterStatus(_) => self.cluster_status(&p).await,
                    c => primary_call(&p, c.clone(), by.clone()).await,
                };
                match res {
                    // It died between the lookup and the call: look again.
                    Err(Error::Unavailable(_)) if wait < PRIMARY_WAIT => {}
                    other => return other,
                }
            } else if wait >= PRIMARY_WAIT || !self.meta.get().is_primary(&self.me.id) {
                return Err(Error::Unavailable(
                    "the primary actor is not running (restarting, or this node is stepping down); try again".into(),
                ));
            }
            tokio::time::sleep(wait).await;
            wait *= 2;
        }
    }

    /// A login: the password checked against the user's hash, and a token with an ID the
    /// AuthN service can revoke. Unknown users and wrong passwords get the same answer (and
    /// the same work), so a caller cannot tell which users exist.
    async fn login(
        &self,
        meta: &crate::types::meta::Meta,
        user: &str,
        password: &str,
        ttl_secs: u64,
    ) -> Result<Msg> {
        let cfg = &meta.config.auth;
        if !cfg.enabled {
            return Err(Error::BadRequest(
                "auth is off on this cluster: nobody needs to log in".into(),
            ));
        }
        let secret = self.secret.clone().ok_or_else(|| {
            Error::Unauthorized("this node has no cluster secret: it cannot issue tokens".into())
        })?;
        let rec = cfg.user(user).cloned();
        let hash = rec.as_ref().map(|u| u.password_hash.clone());
        let password = password.to_string();
        // Both argon2 runs (the dummy hash is made once, on first use) stay off the runtime.
        let ok = tokio::task::spawn_blocking(move || {
            auth::verify_password(&password, hash.as_deref().unwrap_or_else(|| dummy_hash()))
        })
        .await
        .map_err(|e| Error::Unavailable(format!("password check: {e}")))?;
        let Some(rec) = rec.filter(|_| ok) else {
            tracing::info!(user = %crate::logic::format::safe(user), "login refused");
            return Err(Error::Unauthorized("wrong user name or password".into()));
        };
        let ttl = match ttl_secs {
            0 => cfg.token_ttl(),
            n => n.min(MAX_TOKEN_TTL_SECS),
        };
        let iat = crate::logic::authn::next_iat(cfg, &rec.name, crate::types::unix_secs());
        let (token, exp) = auth::issue(&secret, &rec.name, ttl, auth::new_jti(), iat)?;
        tracing::info!(user = %rec.name, ttl, "login");
        Ok(Msg::Reply(AuthOp::reply(Box::new(AuthReply {
            token: Some(token),
            exp: Some(exp),
            ..Default::default()
        }))))
    }

    /// `show cluster`: the map's facts from the primary actor, live stats from every node
    /// (asked from here, not from inside the actor).
    async fn cluster_status(&self, p: &ractor::ActorRef<PrimaryMsg>) -> Result<Msg> {
        let snap = ractor::call_t!(p, PrimaryMsg::Snapshot, 10_000)
            .map_err(|e| Error::Unavailable(format!("primary actor: {e}")))?;
        let stats = super::primary::fetch_stats(&self.pool, &snap.smap).await;
        let status = crate::logic::view::cluster_status(
            &snap.smap,
            &stats,
            &snap.offline,
            snap.rebalance,
            crate::types::unix_secs(),
        );
        Ok(Msg::Reply(GetClusterStatus::reply(Box::new(status))))
    }

    /// Relays a control request to the primary in the sender's name, with the sender's own
    /// token: the primary checks who really asks (a node's join, a client's admin token).
    async fn forward_to_primary(
        &self,
        c: Control,
        from: &NodeId,
        token: Option<&str>,
    ) -> Result<Msg> {
        let addr = self.meta.get().primary_addr().ok_or_else(|| {
            // Retryable: a proxy asked while it is still starting (or still a standby) may
            // know the primary a moment later; a joiner must not give up on it.
            Error::Unavailable("no primary known yet: this node has not joined".into())
        })?;
        let mut conn =
            crate::proto::Conn::connect(&addr, from.clone(), Duration::from_secs(5)).await?;
        conn.token = token.map(str::to_string);
        tokio::time::timeout(CONTROL_TIMEOUT, conn.request(Msg::Control(c)))
            .await
            .map_err(|_| Error::Timeout(format!("primary {addr} did not answer")))?
    }

    // ---- node to node -------------------------------------------------------------------------

    async fn peer(
        &self,
        conn: &mut Conn,
        corr: u64,
        p: Peer,
        from: &NodeId,
    ) -> Result<Option<Msg>> {
        let meta = self.meta.get();
        match p {
            Peer::Metasync(upd) => {
                auth::check_from_primary(meta.smap.as_ref(), from, upd.smap.as_ref())?;
                self.contact.touch();
                self.meta.apply(*upd).await?;
                Ok(Some(Msg::Reply(MetaUpdate::reply(()))))
            }
            Peer::Action(action) => {
                auth::check_from_primary(meta.smap.as_ref(), from, None)?;
                // Silence at once, before the primary drops us from the map: a heartbeat in
                // between would be answered "not in the map" and trigger a rejoin — of a node
                // on its way out (a decommissioned one came back as a ghost target that owned
                // objects and held its address, nemesis long seed 2002).
                if let Some(k) =
                    names::lookup::<super::keepalive::KeepaliveMsg>(&names::keepalive(&self.me.id))
                {
                    ractor::call_t!(k, super::keepalive::KeepaliveMsg::Suspend, 5000)
                        .map_err(|e| Error::Unavailable(format!("keepalive: {e}")))?;
                }
                if action == NodeAction::StopKeepalive {
                    if let Some(r) =
                        names::lookup::<super::rebalance::RebMsg>(&names::rebalance(&self.me.id))
                    {
                        let _ = r.cast(super::rebalance::RebMsg::Stop);
                    }
                    return Ok(Some(Msg::Reply(NodeAction::reply(()))));
                }
                // Reply first: the action may end this process.
                conn.send(corr, Msg::Reply(NodeAction::reply(()))).await?;
                (self.on_action)(action);
                Ok(None)
            }
            Peer::Vote(v) => {
                auth::check_member(meta.smap.as_ref(), from)?;
                let VoteRequest {
                    candidate,
                    old_primary,
                } = v;
                let yes = super::election::vote(
                    &self.meta,
                    &self.pool,
                    &self.contact,
                    &candidate,
                    &old_primary,
                )
                .await;
                Ok(Some(Msg::Reply(VoteRequest::reply(
                    crate::proto::msg::Vote { yes },
                ))))
            }
            Peer::Handshake(Handshake { uuid }) => {
                if let Some(s) = &meta.smap
                    && s.uuid != uuid
                {
                    return Err(Error::ClusterIntegrity(format!(
                        "this node belongs to cluster {}, not {uuid}",
                        s.uuid
                    )));
                }
                if !self.standby && meta.smap.is_some() {
                    return Err(Error::BadRequest(
                        "this node is already a cluster member".into(),
                    ));
                }
                Ok(Some(Msg::Reply(Handshake::reply(Box::new(
                    self.me.clone(),
                )))))
            }
        }
    }

    // ---- data path ----------------------------------------------------------------------------

    async fn data(&self, conn: &mut Conn, corr: u64, d: Data) -> Result<Option<Msg>> {
        if let Data::List(l) = d {
            let meta = self.meta.get();
            check_bucket(&meta, &l.bucket)?;
            let page = if l.local {
                let limit = (l.limit as usize).clamp(1, MAX_PAGE);
                let store = &self.data_path()?.store;
                // Read before the walk: a rebalance that starts during it is caught too.
                let settling = store.settling.load(std::sync::atomic::Ordering::Relaxed);
                let mut page = store
                    .list(&l.bucket, &l.prefix, l.start_after.as_deref(), limit)
                    .await?;
                page.settling |=
                    settling || store.settling.load(std::sync::atomic::Ordering::Relaxed);
                page.smap_version = meta.smap.as_ref().map_or(0, |s| s.version);
                page
            } else {
                list_fresh(&self.pool, &self.meta, l).await?
            };
            return Ok(Some(Msg::Reply(ListObjects::reply(page))));
        }
        match self.me.role {
            Role::Proxy => redirect(&self.meta.get(), &d).map(Some),
            Role::Target => self.data_path()?.serve(conn, corr, d).await,
        }
    }
}

async fn primary_call(
    p: &ractor::ActorRef<PrimaryMsg>,
    c: Control,
    by: Option<String>,
) -> Result<Msg> {
    let res = p
        .call(
            |reply| PrimaryMsg::Control(c, by, reply),
            Some(CONTROL_TIMEOUT),
        )
        .await
        .map_err(|e| Error::Unavailable(format!("primary actor: {e}")))?;
    match res {
        ractor::rpc::CallResult::Success(r) => r.map(Msg::Reply),
        ractor::rpc::CallResult::Timeout => {
            Err(Error::Timeout("the primary did not answer in time".into()))
        }
        // It may have acted before it stopped: not an error to retry blindly.
        ractor::rpc::CallResult::SenderError => Err(Error::Remote(
            "the primary actor stopped while handling the request".into(),
        )),
    }
}

use crate::types::auth::MAX_TOKEN_TTL_SECS;

/// A hash to check unknown users' passwords against, so that they cost what known ones do.
fn dummy_hash() -> &'static str {
    static H: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    H.get_or_init(|| auth::hash_password("not a password of anyone").unwrap_or_default())
}

/// The expiry a token claims (unverified: only shown back to its holder by `whoami`).
fn token_exp(token: &str) -> Option<u64> {
    use base64::Engine;
    let payload = token.split('.').nth(1)?;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    serde_json::from_slice::<serde_json::Value>(&raw)
        .ok()?
        .get("exp")?
        .as_u64()
}

/// What a data request does to which bucket.
fn data_action(d: &Data) -> Action<'_> {
    match d {
        Data::List(l) => Action::Read(&l.bucket),
        Data::Get(g) => Action::Read(&g.key.bucket),
        Data::Head(h) => Action::Read(&h.key.bucket),
        Data::Locate(l) => Action::Read(&l.key.bucket),
        Data::Stamp(s) => Action::Read(&s.key.bucket),
        Data::Put(p) => Action::Write(&p.key.bucket),
        Data::Delete(x) => Action::Write(&x.key.bucket),
    }
}

/// What an admin control request needs, described for a refusal.
fn control_action(c: &Control) -> Action<'_> {
    match c {
        Control::CreateBucket(b) => Action::Bucket(&b.bucket),
        Control::DestroyBucket(b) => Action::Bucket(&b.bucket),
        Control::Lifecycle(_) => {
            Action::Cluster("change a node's lifecycle (maintenance, shutdown, decommission)")
        }
        Control::AdminJoin(_) => Action::Cluster("join nodes to the cluster"),
        Control::RemoveFromSmap(_) => Action::Cluster("remove nodes from the cluster map"),
        Control::Cluster(_) => Action::Cluster("shut down or decommission the cluster"),
        Control::S3Keys(_) => Action::Cluster("manage S3 access keys"),
        Control::Rebalance(_) => Action::Cluster("pause, resume or throttle rebalancing"),
        Control::Auth(_) => Action::Cluster("manage users, roles and tokens"),
        _ => Action::View,
    }
}

fn check_bucket(meta: &crate::types::meta::Meta, bucket: &str) -> Result<()> {
    name_rules::validate_bucket(bucket)?;
    if !meta.bmd.buckets.contains(bucket) {
        return Err(Error::NotFound(format!("bucket {bucket:?} does not exist")));
    }
    Ok(())
}

/// Proxies answer data requests with the owner target's address.
fn redirect(meta: &crate::types::meta::Meta, d: &Data) -> Result<Msg> {
    let key = match d {
        Data::Put(p) => &p.key,
        Data::Get(g) => &g.key,
        Data::Head(h) => &h.key,
        Data::Delete(x) => &x.key,
        Data::Locate(l) => &l.key,
        Data::List(_) | Data::Stamp(_) => {
            return Err(Error::BadRequest(
                "listings and stamps are not redirected".into(),
            ));
        }
    };
    check_bucket(meta, &key.bucket)?;
    name_rules::validate_object(&key.object)?;
    let smap = meta
        .smap
        .as_ref()
        .ok_or_else(|| Error::NotFound("no cluster map yet".into()))?;
    let owner = placement::owner(smap, &key.bucket, &key.object)
        .ok_or_else(|| Error::NotFound("no active targets in the cluster".into()))?;
    Ok(Msg::Redirect {
        node: owner.id.clone(),
        addr: owner.addr.clone(),
    })
}

/// A listing across every target under this node's newest map: when a target has listed under
/// a newer one (the map is on its way here), wait for it — briefly — and list again.
async fn list_fresh(pool: &Pool, meta: &MetaHandle, l: ListObjects) -> Result<ObjPage> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    let mut rx = meta.subscribe();
    loop {
        let m = meta.get();
        match list_all(pool, &m, l.clone()).await {
            Err(Error::Unavailable(e)) if e.contains(STALE_MAP) => {
                let newer = |x: &Arc<crate::types::meta::Meta>| {
                    x.smap.as_ref().map_or(0, |s| s.version)
                        > m.smap.as_ref().map_or(0, |s| s.version)
                };
                if tokio::time::timeout_at(deadline, rx.wait_for(newer))
                    .await
                    .is_err()
                {
                    return Err(Error::Unavailable(e));
                }
            }
            other => return other,
        }
    }
}

/// Marks the error of a router whose map is older than a target's.
const STALE_MAP: &str = "cluster map here is older";

/// One page of a bucket listing across every target: each target's own page after the same
/// point, merged in name order, the newest copy of a name kept (an object caught between two
/// targets mid-rebalance is listed once). Memory holds one page per target.
async fn list_all(
    pool: &Pool,
    meta: &crate::types::meta::Meta,
    mut l: ListObjects,
) -> Result<ObjPage> {
    // A page made only of delete records says nothing: go on to the next one.
    loop {
        let page = list_page(pool, meta, l.clone()).await?;
        match page.next {
            Some(n) if page.entries.is_empty() => l.start_after = Some(n),
            _ => return Ok(page),
        }
    }
}

/// One page of [`list_all`], possibly empty once the deleted names are dropped.
///
/// Each target is asked for about its share of the page, not for a whole page: the names are
/// spread evenly by placement, so T targets × a full page each made every page cost T times the
/// reads on the targets and T pages of memory here. When the shares fall short of a page (one
/// target's names run denser), the page goes on from where they ended, asking each target for
/// all that is left: at most two rounds however the names are spread.
async fn list_page(
    pool: &Pool,
    meta: &crate::types::meta::Meta,
    l: ListObjects,
) -> Result<ObjPage> {
    let smap = meta
        .smap
        .as_ref()
        .ok_or_else(|| Error::NotFound("no cluster map yet".into()))?;
    let limit = (l.limit as usize).clamp(1, MAX_PAGE);
    let mut entries: Vec<ObjEntry> = Vec::new();
    let mut after = l.start_after.clone();
    let more = loop {
        let left = limit - entries.len();
        // Shares first; whatever a later round is for, it asks for all that is left.
        let share = match after == l.start_after {
            true => target_share(left, smap.targets.len()),
            false => left,
        };
        let (span, horizon) = list_span(pool, smap, &l, after.clone(), share).await?;
        entries.extend(span);
        match horizon {
            Some(h) if entries.len() < limit => after = Some(h),
            Some(h) => break Some(h),
            None => break None,
        }
    };
    // The names the page covers: up to the limit, or to where the targets' pages ended.
    let next = if entries.len() > limit {
        entries.truncate(limit);
        entries.last().map(|e| e.name.clone())
    } else {
        more
    };
    // A name whose newest record anywhere is a delete is gone, whatever older copies remain.
    entries.retain(|e| !e.deleted);
    Ok(ObjPage {
        entries,
        next,
        settling: false,
        smap_version: 0,
    })
}

/// How many entries to ask each of `targets` for, to fill `left` of a page in one go most of
/// the time: an even share with a margin for uneven spread, and small pages whole.
fn target_share(left: usize, targets: usize) -> usize {
    (left * 5 / 4 / targets.max(1) + 32).min(left)
}

/// Every target's names after `after` (at most `share` each), merged in name order with the
/// newest record of each name kept, up to the horizon: where the shortest truncated target
/// page ends, as beyond it that target may hold names not seen yet. `None` for the horizon
/// when no target has more.
async fn list_span(
    pool: &Pool,
    smap: &crate::types::smap::Smap,
    l: &ListObjects,
    after: Option<String>,
    share: usize,
) -> Result<(Vec<ObjEntry>, Option<String>)> {
    let mut merged: std::collections::BTreeMap<String, ObjEntry> = Default::default();
    let mut horizon: Option<String> = None;
    // Targets are read one after the other's answer, not at one instant: an object that a
    // rebalance moves from A to B after B was read and before A was read is in neither page.
    // It is installed on B before A lets it go, so when a target says objects are moving, a
    // second round (merged with the first) finds it on B.
    for _round in 0..2 {
        let calls = smap.targets.values().map(|t| {
            let req = ListObjects {
                local: true,
                limit: share as u32,
                start_after: after.clone(),
                ..l.clone()
            };
            let (addr, id, emptied) = (t.addr.clone(), t.id.clone(), t.emptied());
            async move {
                (
                    id,
                    emptied,
                    pool.rpc(&addr, req, Duration::from_secs(30)).await,
                )
            }
        });
        let mut moving = false;
        for (id, emptied, r) in futures::future::join_all(calls).await {
            match r {
                // A target knows a newer map than this router: a target added since may hold
                // objects this listing would not ask for. Fail (retryable) rather than omit.
                Ok(page) if page.smap_version > smap.version => {
                    return Err(Error::Unavailable(format!(
                        "cannot list {} yet: the {STALE_MAP} (v{}) than t[{id}]'s (v{}); try again",
                        l.bucket, smap.version, page.smap_version
                    )));
                }
                Ok(page) => {
                    moving |= page.settling;
                    if let Some(n) = &page.next
                        && horizon.as_ref().is_none_or(|h| n < h)
                    {
                        horizon = Some(n.clone());
                    }
                    for e in page.entries {
                        match merged.get(&e.name) {
                            Some(cur) if !e.newer_than(cur) => {}
                            _ => {
                                merged.insert(e.name.clone(), e);
                            }
                        }
                    }
                }
                // Only a target whose data moved off cleanly may stay silent: any other one
                // (a maintenance or shutdown still migrating) may hold the only copy.
                Err(e) if !emptied => {
                    return Err(Error::Offline(format!(
                        "cannot list {}: target t[{id}] did not answer: {e}",
                        l.bucket
                    )));
                }
                Err(_) => {}
            }
        }
        if !moving {
            break;
        }
    }
    let span = merged
        .into_values()
        .filter(|e| horizon.as_ref().is_none_or(|h| &e.name <= h))
        .collect();
    Ok((span, horizon))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::msg::{Data, Reply};
    use crate::types::meta::Meta;
    use crate::types::smap::Smap;

    /// A target that lists nothing, under map version `v`.
    async fn target_at_version(v: u64) -> String {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let mut c = Conn::new(s, NodeId("t1".into()), 1 << 20);
                    while let Ok(Some(env)) = c.recv().await {
                        let page = ObjPage {
                            smap_version: v,
                            ..Default::default()
                        };
                        let _ = c.send(env.corr, Msg::Reply(Reply::Objects(page))).await;
                    }
                });
            }
        });
        addr
    }

    /// A target holding `names`, answering listings as a real one does (in name order after
    /// the cursor, `next` when truncated), and recording the page size each request asked for.
    async fn target_holding(mut names: Vec<String>) -> (String, Arc<std::sync::Mutex<Vec<u32>>>) {
        names.sort();
        let asked = Arc::new(std::sync::Mutex::new(Vec::new()));
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let seen = asked.clone();
        tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                let (names, seen) = (names.clone(), seen.clone());
                tokio::spawn(async move {
                    let mut c = Conn::new(s, NodeId("t".into()), 1 << 24);
                    while let Ok(Some(env)) = c.recv().await {
                        let Msg::Data(Data::List(q)) = env.body else {
                            panic!("not a listing: {:?}", env.body.name());
                        };
                        seen.lock().unwrap().push(q.limit);
                        let after: Vec<&String> = names
                            .iter()
                            .filter(|n| q.start_after.as_ref().is_none_or(|a| *n > a))
                            .collect();
                        let take = after.len().min(q.limit as usize);
                        let page = ObjPage {
                            entries: after[..take]
                                .iter()
                                .map(|n| ObjEntry {
                                    name: n.to_string(),
                                    size: 1,
                                    checksum: String::new(),
                                    version: 1,
                                    mtime: 0,
                                    etag: None,
                                    deleted: false,
                                })
                                .collect(),
                            next: (take < after.len()).then(|| after[take - 1].clone()),
                            ..Default::default()
                        };
                        let _ = c.send(env.corr, Msg::Reply(Reply::Objects(page))).await;
                    }
                });
            }
        });
        (addr, asked)
    }

    /// Each target is asked for about its share of a page, not a whole page; a page still
    /// comes back full, every name once and in order, when one target holds most of them.
    #[tokio::test]
    async fn a_page_asks_each_target_for_its_share_and_is_still_full() {
        let all: Vec<String> = (0..1000).map(|i| format!("o{i:04}")).collect();
        // Uneven: t0 holds 80 % of the names, t1 and t2 10 % each.
        let mut held = [Vec::new(), Vec::new(), Vec::new()];
        for (i, n) in all.iter().enumerate() {
            held[match i % 10 {
                0 => 1,
                1 => 2,
                _ => 0,
            }]
            .push(n.clone());
        }
        let mut smap = Smap::bootstrap(Node::new(NodeId("p1".into()), Role::Proxy, "p".into()));
        let mut asked = Vec::new();
        for (k, names) in held.into_iter().enumerate() {
            let (addr, a) = target_holding(names).await;
            let t = Node::new(NodeId(format!("t{k}")), Role::Target, addr);
            smap.targets.insert(t.id.clone(), t);
            asked.push(a);
        }
        let meta = Meta {
            smap: Some(smap),
            ..Default::default()
        };
        let pool = Pool::new(NodeId("p1".into()), Box::new(|| None));
        let mut listed = Vec::new();
        let mut pages = 0;
        let mut l = ListObjects {
            limit: 300,
            ..listing()
        };
        loop {
            let page = list_all(&pool, &meta, l.clone()).await.unwrap();
            pages += 1;
            listed.extend(page.entries.iter().map(|e| e.name.clone()));
            match page.next {
                Some(n) => {
                    assert_eq!(page.entries.len(), 300, "a page before the last is full");
                    l.start_after = Some(n);
                }
                None => break,
            }
        }
        assert_eq!(listed, all);
        assert_eq!(pages, 4);
        for a in &asked {
            let a = a.lock().unwrap().clone();
            // No target is asked for a whole page, and a page takes at most two rounds.
            assert!(
                a.iter().all(|&n| n as usize <= target_share(300, 3)),
                "{a:?}"
            );
            assert!(
                a.len() <= 2 * pages,
                "{} requests for {pages} pages",
                a.len()
            );
        }
        assert!(target_share(300, 3) < 300 && target_share(10_000, 20) < 1_000);
    }

    fn meta_with(version: u64, target_addr: &str) -> Meta {
        let mut smap = Smap::bootstrap(Node::new(NodeId("p1".into()), Role::Proxy, "p".into()));
        let t = Node::new(NodeId("t1".into()), Role::Target, target_addr.into());
        smap.targets.insert(t.id.clone(), t);
        smap.version = version;
        Meta {
            smap: Some(smap),
            ..Default::default()
        }
    }

    fn listing() -> ListObjects {
        ListObjects {
            bucket: "b".into(),
            prefix: String::new(),
            start_after: None,
            limit: 10,
            local: false,
        }
    }

    /// A router whose map is older than a target's may not know a target added since: it
    /// waits for the newer map and lists again, and fails (retryable) rather than omit.
    #[tokio::test]
    async fn a_listing_under_an_older_map_than_a_targets_waits_for_it_or_fails() {
        let addr = target_at_version(7).await;
        let pool = Pool::new(NodeId("p1".into()), Box::new(|| None));
        let (tx, rx) = tokio::sync::watch::channel(Arc::new(meta_with(6, &addr)));
        let handle = MetaHandle::new(rx, &NodeId("p1".into()));
        let err = list_fresh(&pool, &handle, listing()).await.unwrap_err();
        assert!(
            matches!(&err, Error::Unavailable(m) if m.contains("v6") && m.contains("v7")),
            "{err}"
        );
        // The newer map arrives while the router waits: the listing goes through.
        let later = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            tx.send(Arc::new(meta_with(7, &addr))).unwrap();
            tx
        });
        let page = list_fresh(&pool, &handle, listing()).await.unwrap();
        assert!(page.entries.is_empty());
        drop(later.await.unwrap());
    }
}
