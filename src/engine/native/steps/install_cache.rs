//! `--cache use|refresh`: look the build's install up in the install cache
//! ([`crate::install_cache`]). A hit hands the cached disks to the driver (the VM then boots the
//! installed system: no ISO, no boot_wait, no boot command) and holds the entry until the build
//! ends; a miss says why (which input changed since the cached install of this target) and is
//! stored by `save_install` once the guest answers on SSH.

use crate::engine::native::resources::Resource;
use crate::engine::native::resources::Vm;
use crate::engine::native::runner::Runner;
use crate::engine::native::{NativeError, Settings};
use crate::engine::Build;
use crate::install_cache::key::{self, KeyContext};
use crate::install_cache::{CacheError, CacheMode, KeyInputs, Lease, Store, DEFAULT_MAX_SIZE};
use async_trait::async_trait;
use osimager_drivers::bootcmd::{render, Fields};
use osimager_drivers::DiskState;
use std::path::Path;
use std::sync::Arc;

/// What the cache decided.
pub(crate) enum Cache {
    /// Not used for this build.
    Off,
    /// The VM starts from the cached install.
    Hit,
    /// Install, then store as `key` (`save_install`).
    Miss(Miss),
}

impl Cache {
    pub fn hit(&self) -> bool {
        matches!(self, Cache::Hit)
    }
}

pub(crate) struct Miss {
    pub store: Store,
    pub key: String,
    pub inputs: KeyInputs,
    /// `refresh`: replace an existing entry.
    pub replace: bool,
}

/// The entry a build uses, held (shared lock) until the VM is gone.
struct Held {
    lease: std::sync::Mutex<Option<Lease>>,
    what: String,
}

#[async_trait]
impl Resource for Held {
    fn describe(&self) -> String {
        self.what.clone()
    }
    async fn undo(&self) -> Result<(), String> {
        self.lease.lock().map(|mut l| l.take()).ok();
        Ok(())
    }
    fn leave(&self) -> Option<Vec<String>> {
        None
    }
}

/// The boot command as typed, except the HTTP server's address, which changes every build
/// and only says where the answer file is served.
pub(crate) fn typed_boot_command(s: &Settings) -> String {
    let text = s.boot_command.concat();
    let fields = Fields::new()
        .with("Name", s.vm_name.clone())
        .with("HTTPIP", "{{ .HTTPIP }}")
        .with("HTTPPort", "{{ .HTTPPort }}");
    render(&text, &fields).unwrap_or(text)
}

/// Why this build cannot use the cache, if it cannot.
fn unusable(b: &Build, s: &Settings, disk_state: bool) -> Option<String> {
    if s.ssh.is_none() {
        return Some(
            "the build has no SSH communicator (the install is cached when the guest first \
             answers on SSH)"
                .into(),
        );
    }
    if !disk_state {
        return Some(format!(
            "the {} driver cannot save this VM's disk state (QEMU: qcow2 disks, no \
             use_backing_file)",
            b.plan.builder_type()
        ));
    }
    None
}

fn open_store(b: &Build) -> Result<Store, String> {
    let dir = b
        .options
        .cache
        .dir
        .clone()
        .unwrap_or_else(|| b.plan.inputs.install_cache_dir.clone());
    if dir.as_os_str().is_empty() {
        return Err("no cache directory (the plan was not prepared)".into());
    }
    let dir = b.context.absolute(&dir);
    Store::open(dir, b.options.cache.max_size.unwrap_or(DEFAULT_MAX_SIZE))
        .map_err(|e| e.to_string())
}

/// The key of this build.
async fn key_inputs(
    b: &Build,
    s: &Settings,
    salt: &[u8],
    temp: &Path,
) -> Result<KeyInputs, NativeError> {
    let iso = match &s.iso {
        Some(req) => crate::iso::identity(req).await.map_err(NativeError::Iso)?,
        None => String::new(),
    };
    let boot = typed_boot_command(s);
    Ok(key::inputs(
        &b.plan,
        &boot,
        &KeyContext {
            iso: &iso,
            temp_dir: temp,
            http_directory: s.http_directory.as_deref(),
            env: &b.context.vars,
            salt,
        },
    ))
}

fn short(key: &str) -> &str {
    key.get(..12).unwrap_or(key)
}

/// Why a build missed: what changed since the last cached install of the same target.
fn miss_reason(store: &Store, target: &str, inputs: &KeyInputs) -> String {
    match store.previous_for(target) {
        None => format!("no cached install of {target}"),
        Some(prev) => {
            let changes = inputs.diff(&prev.meta.inputs);
            let list: Vec<String> = changes.iter().map(ToString::to_string).collect();
            format!(
                "changed since the cached install {} of {target}: {}",
                short(&prev.meta.key),
                if list.is_empty() {
                    "nothing recorded (cache format)".to_string()
                } else {
                    list.join(", ")
                }
            )
        }
    }
}

pub(crate) async fn run(
    r: &Runner,
    b: &Build,
    s: &Settings,
    vm: &Vm,
    temp: &Path,
) -> Result<Cache, NativeError> {
    let caps = vm.lock().await.capabilities();
    if let Some(why) = unusable(b, s, caps.disk_state) {
        r.skip(&format!("install cache not used: {why}"));
        return Ok(Cache::Off);
    }
    let (store, salt) = match open_store(b).and_then(|st| {
        let salt = st.salt().map_err(|e| e.to_string())?;
        Ok((st, salt))
    }) {
        Ok(x) => x,
        Err(e) => {
            r.events.warn(format!("install cache not used: {e}"));
            return Ok(Cache::Off);
        }
    };
    let inputs = key_inputs(b, s, &salt, temp).await?;
    let key = inputs.key();
    let mode = b.options.cache.mode;
    if mode == CacheMode::Use {
        match store.lease(&key) {
            Ok(Some(lease)) => {
                let state = DiskState {
                    files: lease.files(),
                };
                match vm.lock().await.use_disk_state(&state) {
                    Ok(()) => {
                        r.events.log(format!(
                            "install cache: hit {} ({}, {}): the VM boots the cached install; \
                             no ISO, boot_wait or boot command",
                            short(&key),
                            store_path(&lease.dir),
                            describe_origin(&lease)
                        ));
                        r.register(Arc::new(Held {
                            what: format!("use of the cached install {}", short(&key)),
                            lease: std::sync::Mutex::new(Some(lease)),
                        }));
                        return Ok(Cache::Hit);
                    }
                    Err(e) => r.events.warn(format!(
                        "install cache: the cached install {} cannot be used ({e}): installing",
                        short(&key)
                    )),
                }
            }
            Ok(None) => {}
            Err(e @ CacheError::Damaged { .. }) => {
                r.events.warn(format!("{e}: installing from the media"));
            }
            Err(e) => {
                r.events.warn(format!("install cache not used: {e}"));
                return Ok(Cache::Off);
            }
        }
    }
    let reason = if mode == CacheMode::Refresh {
        "--cache refresh".to_string()
    } else {
        miss_reason(&store, &b.plan.target, &inputs)
    };
    r.events.log(format!(
        "install cache: miss ({reason}): installing from the media; the install will be cached \
         as {}",
        short(&key)
    ));
    Ok(Cache::Miss(Miss {
        store,
        key,
        inputs,
        replace: mode == CacheMode::Refresh,
    }))
}

fn store_path(p: &Path) -> String {
    p.display().to_string()
}

fn describe_origin(l: &Lease) -> String {
    let when = humantime_secs(l.meta.created);
    format!(
        "installed {when} by a build of {} {}",
        l.meta.target, l.meta.name
    )
}

/// RFC 3339 (UTC, seconds) for an epoch time.
pub(crate) fn humantime_secs(secs: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// `-n` with `--cache use|refresh`: what the cache would do. Creates nothing.
pub(crate) async fn dry_run(r: &Runner, b: &Build, s: &Settings) -> Result<(), NativeError> {
    let scratch = b.context.driver_env(
        &s.build_name,
        b.context.temp_root.join("osimager-validate"),
        s.diag_dir.clone(),
    );
    let caps = b
        .context
        .drivers
        .make(&b.plan.builder, scratch)
        .map(|d| d.capabilities())
        .map_err(NativeError::CreateVm)?;
    if let Some(why) = unusable(b, s, caps.disk_state) {
        r.events.log(format!(
            "dry run: the install cache would not be used: {why}"
        ));
        return Ok(());
    }
    let store = open_store(b).map_err(NativeError::InstallCache)?;
    let salt = store
        .salt()
        .map_err(|e| NativeError::InstallCache(e.to_string()))?;
    let temp = b
        .options
        .temp_dir
        .as_ref()
        .map(|t| b.context.absolute(t))
        .unwrap_or_else(|| b.context.temp_root.clone());
    let inputs = key_inputs(b, s, &salt, &temp).await?;
    let key = inputs.key();
    let exists =
        b.options.cache.mode == CacheMode::Use && store.entries().iter().any(|e| e.meta.key == key);
    if exists {
        r.events
            .log(format!("dry run: install cache: would hit {}", short(&key)));
    } else {
        let reason = if b.options.cache.mode == CacheMode::Refresh {
            "--cache refresh".to_string()
        } else {
            miss_reason(&store, &b.plan.target, &inputs)
        };
        r.events.log(format!(
            "dry run: install cache: would miss ({reason}) and cache the install as {}",
            short(&key)
        ));
    }
    Ok(())
}

/// After a hit the guest may have resumed a system saved long ago (the driver restores its
/// memory: its clock stopped when it was saved). One command in the guest compares its clock
/// with this host's and, when they differ by more than a few seconds, sets it (as root, else
/// with `sudo -n`); the build log says what happened.
pub(crate) async fn guest_clock(
    r: &Runner,
    session: &super::wait_for_ssh::SharedSession,
) -> Result<(), NativeError> {
    let guard = session.lock().await;
    let Some(sess) = guard.as_ref() else {
        r.skip("no SSH session");
        return Ok(());
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let script = format!(
        "t={now}; g=$(date -u +%s) || exit 4; d=$((t - g)); a=${{d#-}}; \
         if [ \"$a\" -le 5 ]; then echo ok $d; exit 0; fi; \
         date -u -s @$t >/dev/null 2>&1 || sudo -n date -u -s @$t >/dev/null 2>&1 || \
         {{ echo unset $d; exit 3; }}; echo set $d"
    );
    let (word, secs) = match sess.exec_capture(&script).await {
        Ok((_, out, _)) => {
            let mut it = out.split_whitespace();
            (
                it.next().unwrap_or("").to_string(),
                it.next().and_then(|d| d.parse::<i64>().ok()),
            )
        }
        Err(_) => (String::new(), None),
    };
    match (word.as_str(), secs) {
        ("ok", Some(d)) => r.skip(&format!("the guest's clock is right ({d:+} s)")),
        ("set", Some(d)) => r.events.log(format!(
            "the guest's clock was {d} s behind (it resumed the cached install as saved): set \
             to this host's time"
        )),
        ("unset", Some(d)) => r.events.warn(format!(
            "the guest's clock is {d} s behind (it resumed the cached install as saved) and \
             could not be set: `date -s` needs root or sudo without a password for {}",
            sess.username()
        )),
        _ => r.skip("the guest's clock could not be read (`date -u +%s`)"),
    }
    Ok(())
}
