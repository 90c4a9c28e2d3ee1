//! The driver registry: the one place that maps a builder type (`qemu`, `virtualbox-iso`, …)
//! to the native driver that builds it. `--engine auto`, validation and the native engine all
//! ask it. Adding a hypervisor is one module plus one [`DriverEntry`] in [`DriverRegistry::builtin`];
//! tests register their own drivers the same way with [`DriverRegistry::register`].

use crate::driver::{Driver, DriverEnv, DriverResult};
use crate::DriverError;
use serde_json::{Map, Value};
use std::sync::Arc;

/// Makes a driver from the builder block. Must not create anything (it runs at validation).
pub type MakeDriver =
    Arc<dyn Fn(&Map<String, Value>, DriverEnv) -> DriverResult<Box<dyn Driver>> + Send + Sync>;

/// One native driver.
#[derive(Clone)]
pub struct DriverEntry {
    /// The builder `type` it builds (Packer's name).
    pub builder_type: String,
    /// Shown by `doctor` and in errors, e.g. "QEMU (QMP)".
    pub description: String,
    /// Builds a driver from the builder's settings and the build environment.
    pub make: MakeDriver,
}

impl std::fmt::Debug for DriverEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DriverEntry")
            .field("builder_type", &self.builder_type)
            .field("description", &self.description)
            .finish_non_exhaustive()
    }
}

impl DriverEntry {
    /// An entry for `builder_type` whose drivers `make` builds.
    pub fn new(
        builder_type: impl Into<String>,
        description: impl Into<String>,
        make: impl Fn(&Map<String, Value>, DriverEnv) -> DriverResult<Box<dyn Driver>>
            + Send
            + Sync
            + 'static,
    ) -> DriverEntry {
        DriverEntry {
            builder_type: builder_type.into(),
            description: description.into(),
            make: Arc::new(make),
        }
    }
}

/// Builder types with a native driver. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct DriverRegistry {
    entries: Vec<DriverEntry>,
}

impl DriverRegistry {
    /// The drivers this crate ships.
    pub fn builtin() -> DriverRegistry {
        DriverRegistry::default()
            .register(qemu())
            .register(virtualbox())
            .register(vmware())
    }

    /// Add `entry`, replacing one for the same builder type.
    pub fn register(mut self, entry: DriverEntry) -> DriverRegistry {
        self.entries
            .retain(|e| e.builder_type != entry.builder_type);
        self.entries.push(entry);
        self
    }

    /// The entry for `builder_type`, if it has a native driver.
    pub fn get(&self, builder_type: &str) -> Option<&DriverEntry> {
        self.entries.iter().find(|e| e.builder_type == builder_type)
    }

    /// Whether `builder_type` can be built natively.
    pub fn supports(&self, builder_type: &str) -> bool {
        self.get(builder_type).is_some()
    }

    /// The builder types with a native driver, in registration order.
    pub fn builder_types(&self) -> Vec<&str> {
        self.entries
            .iter()
            .map(|e| e.builder_type.as_str())
            .collect()
    }

    /// Make the driver for `builder` (its `type` key picks the entry).
    pub fn make(
        &self,
        builder: &Map<String, Value>,
        env: DriverEnv,
    ) -> DriverResult<Box<dyn Driver>> {
        let t = builder.get("type").and_then(Value::as_str).unwrap_or("");
        let entry = self.get(t).ok_or_else(|| DriverError::NoDriver {
            builder_type: t.to_string(),
            available: self.builder_types().join(", "),
        })?;
        (entry.make)(builder, env)
    }
}

/// QEMU, driven over QMP (builder type `qemu`).
fn qemu() -> DriverEntry {
    DriverEntry::new("qemu", "QEMU (QMP)", |builder, env| {
        let cfg = crate::qemu::QemuConfig::from_builder(builder, env)?;
        Ok(Box::new(crate::qemu::QemuDriver::new(cfg)) as Box<dyn Driver>)
    })
}

fn virtualbox() -> DriverEntry {
    use crate::virtualbox::{VBoxConfig, VirtualBoxDriver};
    DriverEntry::new(
        "virtualbox-iso",
        "VirtualBox (VBoxManage)",
        |builder, env| {
            let cfg = VBoxConfig::from_builder(builder, env)?;
            Ok(Box::new(VirtualBoxDriver::new(cfg)) as Box<dyn Driver>)
        },
    )
}

fn vmware() -> DriverEntry {
    DriverEntry::new(
        "vmware-iso",
        "VMware Workstation (vmrest or vmrun, VNC typing)",
        |builder, env| {
            let cfg = crate::vmware::VmwareConfig::from_builder(builder, env)?;
            Ok(Box::new(crate::vmware::VmwareDriver::new(cfg)) as Box<dyn Driver>)
        },
    )
}
