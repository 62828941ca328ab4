//! Group commit of filesystem flushes. Batches that finish their renames while a flush of
//! their filesystem is already running wait for it and then share the next one, so N
//! concurrent batches cost about two flushes instead of N.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};

#[derive(Default)]
pub struct FsFlush {
    by_dev: std::sync::Mutex<HashMap<u64, Arc<Group>>>,
}

#[derive(Default)]
struct Group {
    /// Tickets handed out: one per caller, taken after its writes.
    issued: AtomicU64,
    /// Every ticket up to this one is covered by a flush that has completed.
    done: AtomicU64,
    /// One flush at a time per filesystem.
    running: tokio::sync::Mutex<()>,
}

impl FsFlush {
    /// Returns once everything written on `path`'s filesystem (device `dev`) before this call
    /// is durable.
    pub async fn flush(&self, dev: u64, path: &Path) -> Result<()> {
        let g = self
            .by_dev
            .lock()
            .expect("poisoned")
            .entry(dev)
            .or_default()
            .clone();
        let ticket = g.issued.fetch_add(1, Ordering::SeqCst) + 1;
        let _run = g.running.lock().await;
        if g.done.load(Ordering::SeqCst) >= ticket {
            // A flush that started after our writes has completed meanwhile.
            return Ok(());
        }
        // Every ticket issued so far was taken after its writes: this flush covers them all.
        let upto = g.issued.load(Ordering::SeqCst);
        let p = path.to_path_buf();
        tokio::task::spawn_blocking(move || super::files::sync_fs(&p))
            .await
            .map_err(|e| Error::Io(std::io::Error::other(e)))??;
        g.done.fetch_max(upto, Ordering::SeqCst);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_callers_share_flushes_and_each_waits_for_one() {
        let dir = tempfile::tempdir().unwrap();
        let f = Arc::new(FsFlush::default());
        let dev = std::fs::metadata(dir.path()).unwrap().dev();
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let (f, p) = (f.clone(), dir.path().to_path_buf());
            tasks.push(tokio::spawn(async move { f.flush(dev, &p).await }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let g = f.by_dev.lock().unwrap().values().next().unwrap().clone();
        // Every caller is covered by a completed flush.
        assert_eq!(g.issued.load(Ordering::SeqCst), 16);
        assert_eq!(g.done.load(Ordering::SeqCst), 16);
        // A path that does not exist is an error, not a silent success.
        assert!(f.flush(dev, &dir.path().join("missing")).await.is_err());
    }
}
