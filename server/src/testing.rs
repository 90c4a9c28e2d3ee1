//! Test support (feature `testing`): Debian's chromium driven through chromedriver
//! (WebDriver, fantoccini), headless, with the flags this machine needs (no sandbox as root, no
//! background networking: the network is closed). Used by this crate's browser tests and by
//! the osimager crate's (real builds). `OSIMAGER_BROWSER=0` skips browser tests (a skip counted
//! like the shared harness's, `tests/support`: in `<reports>/skips.log`, and a failure in CI);
//! otherwise a missing browser or an unbuilt UI fails them with what to do.

pub use fantoccini;
use fantoccini::{Client, ClientBuilder, Locator};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A headless chromium session and the directory its screenshots go to.
pub struct Browser {
    /// The WebDriver client.
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
    /// `$OSIMAGER_UI_SHOTS/<name>` or `target/ui-screenshots/<name>`.
    pub shots: PathBuf,
}

/// Whether browser tests run here (and why not).
pub fn wanted() -> bool {
    if std::env::var("OSIMAGER_BROWSER").as_deref() == Ok("0") {
        skip("OSIMAGER_BROWSER=0");
        return false;
    }
    for tool in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
        assert!(
            std::path::Path::new(tool).exists(),
            "{tool} is missing: run scripts/setup-deps.sh (Debian chromium + chromium-driver), \
             or OSIMAGER_BROWSER=0 to skip browser tests"
        );
    }
    assert!(
        crate::ui::built(),
        "the web UI is not built into this binary: run `npm ci && npm run build` in web/ and test again"
    );
    true
}

/// True in CI (`CI` is `true`/`1`, or `OSIMAGER_E2E=1`), where nothing may be skipped: the same
/// rule as the shared harness of the osimager package (`tests/support`).
fn ci() -> bool {
    matches!(std::env::var("CI").as_deref(), Ok("true") | Ok("1"))
        || std::env::var("OSIMAGER_E2E").as_deref() == Ok("1")
}

/// A visible, counted skip: one `<binary>::<test>\t<why>` line in `<reports>/skips.log`
/// (`$OSIMAGER_TEST_REPORTS`, else `<target>/test-reports`), which scripts/test-summary.sh
/// reports; in CI a panic instead.
fn skip(reason: &str) {
    let bin = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .map(|s| match s.rsplit_once('-') {
            Some((name, hash)) if hash.chars().all(|c| c.is_ascii_hexdigit()) => name.to_string(),
            _ => s,
        })
        .unwrap_or_default();
    let name = format!("{bin}::{}", std::thread::current().name().unwrap_or("?"));
    assert!(
        !ci(),
        "{name} would be skipped ({reason}), but CI (CI=true or OSIMAGER_E2E=1) runs every test: \
         install chromium and chromium-driver (scripts/setup-deps.sh) and unset OSIMAGER_BROWSER"
    );
    eprintln!("SKIPPED {name}: {reason}");
    let dir = std::env::var_os("OSIMAGER_TEST_REPORTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("test-reports"));
    let _ = std::fs::create_dir_all(&dir);
    let line = format!("{name}\t{}\n", reason.replace(['\n', '\t'], " "));
    use std::io::Write;
    let log = dir.join("skips.log");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .unwrap_or_else(|e| panic!("opening {}: {e}", log.display()));
    f.write_all(line.as_bytes())
        .unwrap_or_else(|e| panic!("writing {}: {e}", log.display()));
}

/// The cargo target dir of this test binary (`<target>/<profile>/deps/<bin>`).
fn target_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(d);
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.ancestors().nth(3).map(std::path::Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("target"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Browser {
    /// Start chromedriver and a session; screenshots go to a directory named `shot_dir`.
    pub async fn start(shot_dir: &str) -> Browser {
        let port = free_port();
        let driver = Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver");
        let profile = tempfile::tempdir().unwrap();
        let caps: serde_json::Map<String, serde_json::Value> =
            serde_json::from_value(serde_json::json!({
                "goog:chromeOptions": {
                    "binary": "/usr/bin/chromium",
                    "args": [
                        "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                        "--disable-quic", "--no-first-run", "--disable-background-networking",
                        "--disable-component-update", "--disable-sync", "--window-size=1400,1000",
                        format!("--user-data-dir={}", profile.path().display()),
                    ]
                }
            }))
            .unwrap();
        let end = Instant::now() + Duration::from_secs(20);
        let client = loop {
            match ClientBuilder::rustls()
                .expect("rustls")
                .capabilities(caps.clone())
                .connect(&format!("http://127.0.0.1:{port}"))
                .await
            {
                Ok(c) => break c,
                Err(e) => {
                    assert!(Instant::now() < end, "no WebDriver session: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        };
        let shots = std::env::var_os("OSIMAGER_UI_SHOTS")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/ui-screenshots")
            })
            .join(shot_dir);
        std::fs::create_dir_all(&shots).unwrap();
        Browser {
            client,
            driver,
            _profile: profile,
            shots,
        }
    }

    /// Save a PNG of the page as `<shots>/<name>.png`.
    pub async fn shot(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        std::fs::write(self.shots.join(format!("{name}.png")), png).unwrap();
    }

    /// Wait until `css` matches an element whose text satisfies `ok`; returns the text.
    pub async fn wait_text(
        &self,
        css: &str,
        within: Duration,
        ok: impl Fn(&str) -> bool,
    ) -> String {
        let end = Instant::now() + within;
        let mut last = String::new();
        loop {
            if let Ok(e) = self.client.find(Locator::Css(css)).await {
                if let Ok(t) = e.text().await {
                    if ok(&t) {
                        return t;
                    }
                    last = t;
                }
            }
            assert!(
                Instant::now() < end,
                "{css}: never matched; last text: {last:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// How many elements match `css`.
    pub async fn count(&self, css: &str) -> usize {
        self.client
            .find_all(Locator::Css(css))
            .await
            .map(|v| v.len())
            .unwrap_or(0)
    }

    /// The text of the first element matching `css`.
    pub async fn text(&self, css: &str) -> String {
        match self.client.find(Locator::Css(css)).await {
            Ok(e) => e.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// Wait until at least `n` elements match.
    pub async fn wait_count(&self, css: &str, n: usize, within: Duration) -> usize {
        let end = Instant::now() + within;
        loop {
            let c = self.count(css).await;
            if c >= n {
                return c;
            }
            assert!(Instant::now() < end, "{css}: {c} of {n} elements");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Click the element `css` (waiting for it).
    pub async fn click(&self, css: &str) {
        self.client
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css(css))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    }

    /// Replace the text of the input `css`.
    pub async fn fill(&self, css: &str, text: &str) {
        let e = self
            .client
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css(css))
            .await
            .unwrap();
        e.clear().await.unwrap();
        e.send_keys(text).await.unwrap();
    }

    /// Choose the option `value` of the select `css`.
    pub async fn select(&self, css: &str, value: &str) {
        let e = self
            .client
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css(css))
            .await
            .unwrap();
        e.select_by_value(value).await.unwrap();
    }

    /// Open `url`.
    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap();
    }

    /// End the session and chromedriver.
    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
    }
}
