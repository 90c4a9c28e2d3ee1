//! Test support (feature `testing`): a throwaway PostgreSQL server from Debian's
//! `postgresql` package, on loopback, in a temp dir, stopped when dropped. As root it runs
//! as `nobody` (PostgreSQL refuses to run as root). `OSIMAGER_PG_BIN` overrides where the
//! server's programs are (default: the newest `/usr/lib/postgresql/*/bin`).

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A running PostgreSQL server.
pub struct TestPostgres {
    child: Child,
    dir: tempfile::TempDir,
    /// Its TCP port on 127.0.0.1.
    pub port: u16,
    next_db: AtomicU64,
}

fn bin_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("OSIMAGER_PG_BIN") {
        return d.into();
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| rd.flatten().map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    versions.retain(|p| p.join("postgres").exists());
    versions.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    versions.pop().unwrap_or_else(|| {
        panic!(
            "no PostgreSQL server under /usr/lib/postgresql: run scripts/setup-deps.sh \
             (Debian package postgresql), or set OSIMAGER_PG_BIN"
        )
    })
}

/// Run as `nobody` when we are root.
fn as_user(cmd: &mut Command) -> &mut Command {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        cmd.uid(65534).gid(65534);
    }
    cmd
}

fn chown_nobody(p: &Path) {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        std::os::unix::fs::chown(p, Some(65534), Some(65534))
            .unwrap_or_else(|e| panic!("chown {} to nobody: {e}", p.display()));
    }
}

impl TestPostgres {
    /// initdb into a temp dir and start the server on a free loopback port; waits until
    /// it accepts connections.
    pub fn start() -> TestPostgres {
        let bin = bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("osimager-pg-")
            .tempdir()
            .expect("a temp dir for PostgreSQL");
        chown_nobody(dir.path());
        let data = dir.path().join("data");
        let out = as_user(
            Command::new(bin.join("initdb"))
                .args(["-D"])
                .arg(&data)
                .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
                .env("LC_ALL", "C"),
        )
        .output()
        .unwrap_or_else(|e| panic!("running {}/initdb: {e}", bin.display()));
        assert!(
            out.status.success(),
            "initdb failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let log = std::fs::File::create(dir.path().join("postgres.log")).expect("a log file");
        chown_nobody(&dir.path().join("postgres.log"));
        let child = as_user(
            Command::new(bin.join("postgres"))
                .arg("-D")
                .arg(&data)
                .arg("-k")
                .arg(dir.path())
                .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-F"])
                .args(["-c", "max_connections=300", "-c", "shared_buffers=32MB"])
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log"))
                .stderr(log),
        )
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}/postgres: {e}", bin.display()));
        let pg = TestPostgres {
            child,
            dir,
            port,
            next_db: AtomicU64::new(0),
        };
        let t0 = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "PostgreSQL did not listen within 60 s: {}",
                pg.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        pg
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
    }

    /// The URL of a database on it.
    pub fn url(&self, db: &str) -> String {
        format!("postgresql://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Make a new empty database; returns its URL.
    pub async fn new_database(&self) -> String {
        let name = format!("t{}", self.next_db.fetch_add(1, Ordering::SeqCst));
        let t0 = Instant::now();
        loop {
            match tokio_postgres::connect(&self.url("postgres"), tokio_postgres::NoTls).await {
                Ok((client, conn)) => {
                    let task = tokio::spawn(conn);
                    client
                        .batch_execute(&format!("CREATE DATABASE {name}"))
                        .await
                        .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
                    drop(client);
                    let _ = task.await;
                    return self.url(&name);
                }
                // Still starting up.
                Err(e) if t0.elapsed() < Duration::from_secs(60) => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("connecting to the test PostgreSQL: {e}\n{}", self.log()),
            }
        }
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        // Fast shutdown: SIGINT; the postmaster stops its backends and exits.
        // SAFETY: kill with a pid of our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(20) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
