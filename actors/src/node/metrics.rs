//! `GET /metrics` (DESIGN §15): this node in the Prometheus text format. Requests are counted
//! and timed as they are served; everything else (capacity, memory, objects, rebalance and
//! resilver counters, restarts) is read at scrape time from the same sources as `show cluster`
//! and `show rebalance`, so the two never disagree.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::types::status::{NodeStats, RebalanceStatus, ResilverStatus, TargetRebStatus};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpOutcome {
    op: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Op {
    op: String,
}

fn latency_histogram() -> Histogram {
    // 0.1 ms … ~3.3 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

/// Request counters and latencies of one node (kept for its lifetime).
pub struct RequestMetrics {
    requests: Family<OpOutcome, Counter>,
    latency: Family<Op, Histogram, fn() -> Histogram>,
}

impl Default for RequestMetrics {
    fn default() -> Self {
        RequestMetrics {
            requests: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
        }
    }
}

impl RequestMetrics {
    pub fn observe(&self, op: &str, ok: bool, took: Duration) {
        let outcome = if ok { "ok" } else { "error" };
        self.requests
            .get_or_create(&OpOutcome {
                op: op.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
        self.latency
            .get_or_create(&Op { op: op.to_string() })
            .observe(took.as_secs_f64());
    }
}

/// What a scrape shows beside the request metrics.
#[derive(Default)]
pub struct Snapshot {
    pub id: String,
    pub role: String,
    pub stats: Option<NodeStats>,
    /// A target's view of the latest generation.
    pub target_rebalance: Option<TargetRebStatus>,
    /// The primary's cluster-wide view (as `show rebalance`).
    pub cluster_rebalance: Option<RebalanceStatus>,
    pub resilver: Option<ResilverStatus>,
}

fn gauge(r: &mut Registry, name: &str, help: &str, unit: Option<Unit>, v: f64) {
    let g = Gauge::<f64, AtomicU64>::default();
    g.set(v);
    match unit {
        Some(u) => r.register_with_unit(name, help, u, g),
        None => r.register(name, help, g),
    }
}

/// A counter read from elsewhere (its `_total` suffix is added by the encoder).
fn counter(r: &mut Registry, name: &str, help: &str, unit: Option<Unit>, v: u64) {
    let c = Counter::<u64>::default();
    c.inc_by(v);
    match unit {
        Some(u) => r.register_with_unit(name, help, u, c),
        None => r.register(name, help, c),
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MpLabels {
    mountpath: String,
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Child {
    child: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Info {
    node: String,
    role: String,
    version: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Job {
    id: String,
    stage: String,
}

/// The text exposition.
pub fn render(req: &RequestMetrics, s: &Snapshot) -> String {
    let mut root = Registry::with_prefix("shoal");
    root.register(
        "requests",
        "Requests served by this node, by operation and outcome",
        req.requests.clone(),
    );
    root.register_with_unit(
        "request_duration",
        "Time to serve a request, by operation",
        Unit::Seconds,
        req.latency.clone(),
    );
    let info = Family::<Info, Gauge>::default();
    info.get_or_create(&Info {
        node: s.id.clone(),
        role: s.role.clone(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
    .set(1);
    root.register(
        "node",
        "This node (always 1; its ID and role are the labels)",
        info,
    );
    if let Some(st) = &s.stats {
        let r = &mut root;
        gauge(
            r,
            "memory_used_ratio",
            "Host memory in use",
            None,
            st.mem_used_pct / 100.0,
        );
        gauge(
            r,
            "memory_available",
            "Host memory available",
            Some(Unit::Bytes),
            st.mem_avail as f64,
        );
        gauge(
            r,
            "process_resident_memory",
            "This node's resident memory",
            Some(Unit::Bytes),
            st.rss as f64,
        );
        gauge(
            r,
            "cpu_used_ratio",
            "Host CPU in use",
            None,
            st.cpu_used_pct / 100.0,
        );
        gauge(
            r,
            "uptime",
            "Since this node started",
            Some(Unit::Seconds),
            st.uptime_secs as f64,
        );
        gauge(
            r,
            "capacity_used_ratio",
            "Used share of the mountpaths' filesystems",
            None,
            st.cap_used_pct / 100.0,
        );
        gauge(
            r,
            "capacity_available",
            "Available on the mountpaths' filesystems",
            Some(Unit::Bytes),
            st.cap_avail as f64,
        );
        gauge(
            r,
            "capacity_total",
            "Size of the mountpaths' filesystems",
            Some(Unit::Bytes),
            st.cap_total as f64,
        );
        gauge(
            r,
            "objects",
            "Objects stored on this target",
            None,
            st.object_count as f64,
        );
        gauge(
            r,
            "object",
            "Bytes of the objects stored on this target",
            Some(Unit::Bytes),
            st.object_bytes as f64,
        );
        let used = Family::<MpLabels, Gauge<f64, AtomicU64>>::default();
        let avail = Family::<MpLabels, Gauge<f64, AtomicU64>>::default();
        let total = Family::<MpLabels, Gauge<f64, AtomicU64>>::default();
        let objs = Family::<MpLabels, Gauge<f64, AtomicU64>>::default();
        for m in &st.mountpaths {
            let l = MpLabels {
                mountpath: m.path.clone(),
                state: m.state.as_str().to_string(),
            };
            used.get_or_create(&l).set(m.used as f64);
            avail.get_or_create(&l).set(m.avail as f64);
            total.get_or_create(&l).set(m.total as f64);
            objs.get_or_create(&l).set(m.objects as f64);
        }
        r.register_with_unit(
            "mountpath_used",
            "Used on a mountpath's filesystem",
            Unit::Bytes,
            used,
        );
        r.register_with_unit(
            "mountpath_available",
            "Available on a mountpath's filesystem",
            Unit::Bytes,
            avail,
        );
        r.register_with_unit(
            "mountpath_size",
            "Size of a mountpath's filesystem",
            Unit::Bytes,
            total,
        );
        r.register("mountpath_objects", "Objects on a mountpath", objs);
        let restarts = Family::<Child, Counter>::default();
        for (child, n) in &st.restarts {
            restarts
                .get_or_create(&Child {
                    child: child.clone(),
                })
                .inc_by(*n);
        }
        r.register(
            "supervisor_restarts",
            "Restarts of this node's supervised children",
            restarts,
        );
    }
    if let Some(t) = &s.target_rebalance {
        let r = root.sub_registry_with_label((
            "rebalance".into(),
            crate::types::smap::rebalance_id(t.generation).into(),
        ));
        let r = r.sub_registry_with_prefix("rebalance");
        counter(
            r,
            "tx_objects",
            "Objects this target sent in the generation",
            None,
            t.tx_objs,
        );
        counter(
            r,
            "tx",
            "Bytes this target sent in the generation",
            Some(Unit::Bytes),
            t.tx_bytes,
        );
        counter(
            r,
            "rx_objects",
            "Objects this target received in the generation",
            None,
            t.rx_objs,
        );
        counter(
            r,
            "rx",
            "Bytes this target received in the generation",
            Some(Unit::Bytes),
            t.rx_bytes,
        );
        counter(
            r,
            "local_objects",
            "Objects moved between this target's mountpaths",
            None,
            t.local_objs,
        );
        counter(
            r,
            "local",
            "Bytes moved between this target's mountpaths",
            Some(Unit::Bytes),
            t.local_bytes,
        );
        counter(r, "errors", "Objects that failed to move", None, t.errors);
        gauge(
            r,
            "objects_to_move",
            "Objects this target found misplaced",
            None,
            t.objs_total as f64,
        );
        gauge(
            r,
            "paused",
            "1 while held by nodectl rebalance pause",
            None,
            f64::from(u8::from(t.paused)),
        );
        let stage = Family::<Job, Gauge<f64, AtomicU64>>::default();
        stage
            .get_or_create(&Job {
                id: crate::types::smap::rebalance_id(t.generation),
                stage: t.stage.as_str().into(),
            })
            .set(1.0);
        r.register(
            "stage",
            "The generation's stage on this target (1 for the current one)",
            stage,
        );
    }
    if let Some(c) = &s.cluster_rebalance {
        let r = root.sub_registry_with_prefix("cluster_rebalance");
        let r = r.sub_registry_with_label(("rebalance".into(), c.id.clone().into()));
        counter(
            r,
            "moved_objects",
            "Objects moved in the generation, all targets",
            None,
            c.objs_moved,
        );
        counter(
            r,
            "moved",
            "Bytes moved in the generation, all targets",
            Some(Unit::Bytes),
            c.bytes_moved,
        );
        counter(
            r,
            "errors",
            "Objects that failed to move, all targets",
            None,
            c.errors,
        );
        gauge(
            r,
            "objects_to_move",
            "Objects to move in the generation",
            None,
            c.objs_total as f64,
        );
        gauge(
            r,
            "running",
            "1 while the generation runs",
            None,
            f64::from(u8::from(c.is_running())),
        );
        gauge(
            r,
            "paused",
            "1 while paused",
            None,
            f64::from(u8::from(c.paused)),
        );
        gauge(
            r,
            "stalled",
            "1 while no progress for rebalance.stall_secs",
            None,
            f64::from(u8::from(c.stalled)),
        );
    }
    if let Some(v) = &s.resilver {
        let r = root.sub_registry_with_prefix("resilver");
        let r = r.sub_registry_with_label(("resilver".into(), v.id.clone().into()));
        counter(
            r,
            "moved_objects",
            "Objects the resilver moved",
            None,
            v.objs_moved,
        );
        counter(
            r,
            "moved",
            "Bytes the resilver moved",
            Some(Unit::Bytes),
            v.bytes_moved,
        );
        counter(
            r,
            "errors",
            "Objects the resilver failed to move",
            None,
            v.errors,
        );
        gauge(
            r,
            "running",
            "1 while the resilver runs",
            None,
            f64::from(u8::from(v.is_running())),
        );
    }
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = encode(&mut out, &root);
    out
}
