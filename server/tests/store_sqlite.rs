//! The job-store conformance suite against the SQLite store (a fresh file per check; reopen
//! = drop the store and open the same file again, as a server restart does).

use async_trait::async_trait;
use osimager_server::store::{conformance, JobStore, SqliteStore};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

struct Sqlite {
    dir: tempfile::TempDir,
    paths: Mutex<Vec<(usize, PathBuf)>>,
}

#[async_trait]
impl conformance::Harness for Sqlite {
    async fn fresh(&self) -> Arc<dyn JobStore> {
        let p = self.dir.path().join(format!("{}.db", rand_name()));
        let s = Arc::new(SqliteStore::open(&p).unwrap());
        let key = Arc::as_ptr(&s) as *const () as usize;
        self.paths.lock().unwrap().push((key, p));
        s
    }

    async fn reopen(&self, old: Arc<dyn JobStore>) -> Arc<dyn JobStore> {
        let key = Arc::as_ptr(&old) as *const () as usize;
        let p = self
            .paths
            .lock()
            .unwrap()
            .iter()
            // The newest first: a dropped store's address may be reused.
            .rev()
            .find(|(k, _)| *k == key)
            .map(|(_, p)| p.clone())
            .expect("a store made by fresh()");
        drop(old);
        let s = Arc::new(SqliteStore::open(&p).unwrap());
        let k = Arc::as_ptr(&s) as *const () as usize;
        self.paths.lock().unwrap().push((k, p));
        s
    }
}

fn rand_name() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!("store-{}", N.fetch_add(1, Ordering::SeqCst))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_store_passes_the_conformance_suite() {
    let h = Sqlite {
        dir: tempfile::tempdir().unwrap(),
        paths: Mutex::new(Vec::new()),
    };
    conformance::run(Arc::new(h)).await;
}

#[tokio::test]
async fn sqlite_store_is_in_wal_mode_and_refuses_a_newer_schema() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("state/osimager.db");
    SqliteStore::open(&p).unwrap();
    let c = rusqlite::Connection::open(&p).unwrap();
    let mode: String = c
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    c.execute("UPDATE meta SET value = '99' WHERE key = 'schema'", [])
        .unwrap();
    drop(c);
    let e = SqliteStore::open(&p)
        .map(|_| ())
        .expect_err("a newer schema is refused")
        .to_string();
    assert!(e.contains("schema 99") && e.contains("osimager.db"), "{e}");
}
