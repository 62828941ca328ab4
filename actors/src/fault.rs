//! Fault injection for tests only. Compiled in with the `fault-injection` feature (enabled by
//! the workspace's test builds through a dev-dependency, never by `cargo build`), and driven by
//! the `SHOAL_FAULTS` environment variable of a `noded` process: a comma-separated list of
//! `name=value` pairs, for example `hold_bmd_refusals=3`.
//!
//! Without the feature every probe is a constant `None`, so release builds carry no hook.

/// The value of fault `name`, if it is set for this process.
#[cfg(feature = "fault-injection")]
pub fn value(name: &str) -> Option<u64> {
    use std::sync::OnceLock;
    static FAULTS: OnceLock<Vec<(String, u64)>> = OnceLock::new();
    FAULTS
        .get_or_init(|| parse(&std::env::var("SHOAL_FAULTS").unwrap_or_default()))
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| *v)
}

#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn value(_name: &str) -> Option<u64> {
    None
}

/// Counts an event a fault waits for (no-op without the feature).
#[cfg(feature = "fault-injection")]
pub fn hit(event: &'static str) {
    counter(event).fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn hit(_event: &'static str) {}

/// How often `event` happened in this process.
#[cfg(feature = "fault-injection")]
pub fn hits(event: &'static str) -> u64 {
    counter(event).load(std::sync::atomic::Ordering::Relaxed)
}

#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn hits(_event: &'static str) -> u64 {
    0
}

#[cfg(feature = "fault-injection")]
fn counter(event: &'static str) -> &'static std::sync::atomic::AtomicU64 {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static COUNTERS: OnceLock<Mutex<HashMap<&'static str, &'static std::sync::atomic::AtomicU64>>> =
        OnceLock::new();
    let mut m = COUNTERS
        .get_or_init(Default::default)
        .lock()
        .expect("poisoned");
    m.entry(event)
        .or_insert_with(|| Box::leak(Box::new(std::sync::atomic::AtomicU64::new(0))))
}

/// Is switch `name` on? Switches are files in the directory named by `SHOAL_FAULT_DIR`: a test
/// turns a fault on and off at run time by creating and removing `<dir>/<name>` (for example
/// `disk_full`; for mountpaths `fail_io_<dir name>`, `full_<dir name>` and `slow_resilver`).
#[cfg(feature = "fault-injection")]
pub fn switch(name: &str) -> bool {
    switch_dir().is_some_and(|d| d.join(name).exists())
}

/// `SHOAL_FAULT_DIR`, read once.
#[cfg(feature = "fault-injection")]
fn switch_dir() -> Option<&'static std::path::Path> {
    use std::sync::OnceLock;
    static DIR: OnceLock<Option<std::path::PathBuf>> = OnceLock::new();
    DIR.get_or_init(|| std::env::var_os("SHOAL_FAULT_DIR").map(Into::into))
        .as_deref()
}

#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn switch(_name: &str) -> bool {
    false
}

/// Like [`switch`], but the switch turns itself off when read as on (a fault that fires once,
/// such as a panic in one actor).
pub fn take_switch(name: &str) -> bool {
    #[cfg(feature = "fault-injection")]
    if switch(name)
        && let Some(d) = std::env::var_os("SHOAL_FAULT_DIR")
    {
        return std::fs::remove_file(std::path::Path::new(&d).join(name)).is_ok();
    }
    let _ = name;
    false
}

/// Panics in supervised child `child` when a test asks for it: once when the switch
/// `panic_<child>` is on (the switch turns off), and at every call while `panic_always_<child>`
/// is on (a child that keeps failing). Called from each child's start and periodic work.
pub fn maybe_panic(child: &str) {
    if take_switch(&format!("panic_{child}")) {
        panic!("fault panic_{child}: injected panic");
    }
    if switch(&format!("panic_always_{child}")) {
        panic!("fault panic_always_{child}: injected panic");
    }
}

/// True when run-time fault switches may be set (the feature is on and `SHOAL_FAULT_DIR` is
/// given): actors without a timer of their own then poll for injected panics.
pub fn switches_enabled() -> bool {
    #[cfg(feature = "fault-injection")]
    {
        switch_dir().is_some()
    }
    #[cfg(not(feature = "fault-injection"))]
    {
        false
    }
}

/// Where to connect instead of `addr`: `SHOAL_FAULT_ROUTES="DEST>VIA,DEST>VIA"` sends this node's
/// connections to DEST through VIA (a fault-injecting relay a test runs, to cut or slow links
/// between particular nodes).
pub fn route(addr: &str) -> std::borrow::Cow<'_, str> {
    #[cfg(feature = "fault-injection")]
    {
        use std::sync::OnceLock;
        static ROUTES: OnceLock<Vec<(String, String)>> = OnceLock::new();
        let routes = ROUTES.get_or_init(|| {
            std::env::var("SHOAL_FAULT_ROUTES")
                .unwrap_or_default()
                .split(',')
                .filter_map(|r| r.split_once('>'))
                .map(|(d, v)| (d.trim().to_string(), v.trim().to_string()))
                .collect()
        });
        if let Some((_, via)) = routes.iter().find(|(d, _)| d == addr) {
            return std::borrow::Cow::Owned(via.clone());
        }
    }
    std::borrow::Cow::Borrowed(addr)
}

/// `hold_bmd_refusals=N`: should a bucket map arriving now be held back? Yes until this node
/// has refused N rebalanced objects of a bucket it did not know (or for 10 s at most), so a test
/// can show that senders keep such objects.
pub fn hold_bmd(started: std::time::Instant) -> bool {
    let Some(n) = value("hold_bmd_refusals") else {
        return false;
    };
    let refused = hits("reb_bucket_busy");
    if refused >= n {
        static SAID: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        if !SAID.swap(true, std::sync::atomic::Ordering::Relaxed) {
            tracing::warn!(refused, "fault hold_bmd_refusals: bucket map released");
        }
        return false;
    }
    started.elapsed() < std::time::Duration::from_secs(10)
}

/// Parses `a=1,b=2`; a bare name means 1, malformed values are ignored.
#[cfg_attr(not(feature = "fault-injection"), allow(dead_code))]
fn parse(spec: &str) -> Vec<(String, u64)> {
    spec.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .filter_map(|kv| match kv.split_once('=') {
            Some((k, v)) => v.trim().parse().ok().map(|v| (k.trim().to_string(), v)),
            None => Some((kv.to_string(), 1)),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_pairs_and_bare_names() {
        let f = super::parse(" hold_bmd_refusals=3, panic_stats ,bad=x,");
        assert_eq!(
            f,
            vec![
                ("hold_bmd_refusals".to_string(), 3),
                ("panic_stats".to_string(), 1)
            ]
        );
    }
}
