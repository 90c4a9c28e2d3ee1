//! `QemuConfig`: the QEMU builder block (Packer vocabulary) read into typed settings.

use super::config_parts::{self as parts, Firmware, QemuImgArgs, SshForward, VncConfig};
use super::value::{err, parse_size_mib, Builder, ConfigError};
use crate::bootcmd::parse_duration;
use crate::driver::{DriverEnv, Media};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `format`: the image format of the output disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskFormat {
    /// `qcow2` (the default; sparse, compressible, backing files).
    Qcow2,
    /// `raw`: a plain disk image.
    Raw,
}

impl DiskFormat {
    /// The name as `qemu-img -f`/`-O` and Packer's `format` spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            DiskFormat::Qcow2 => "qcow2",
            DiskFormat::Raw => "raw",
        }
    }
}

/// `accelerator`: `Auto` (unset/`auto`) and `Kvm` are both confirmed by a probe at launch and
/// fall back to TCG with a warning when KVM cannot really run a guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accelerator {
    /// Unset or `auto`: KVM when the probe says it works, else TCG.
    Auto,
    /// `kvm`: hardware virtualization (falls back to TCG with a warning if unusable).
    Kvm,
    /// `tcg`: QEMU's software emulation.
    Tcg,
}

/// Default delay between key presses typed through QMP (`boot_key_interval`; Packer: 100 ms).
///
/// Measured with `tests/typing_accuracy.rs` (`typing_interval_sweep`: 300 mixed characters
/// into a BIOS echo guest, 240 into the ISOLINUX prompt of the test OS; TCG; a 2-core host at
/// load 11–14 from other builds). Without vCPU pacing every interval up to 20 ms dropped keys
/// in some runs (QEMU's 16-byte PS/2 queue overflows while the vCPU thread is starved); 50 ms
/// was clean. With vCPU pacing (`pacer.rs`) 0, 2, 5 and 10 ms were all clean (3 runs each per
/// guest). 10 ms keeps a margin for guests that do real work per key (TUI redraws); it types
/// 35–45 keys/s into the BIOS guest and 22–26 keys/s into ISOLINUX under that load (a quiet
/// host is faster: the pacer only waits while the vCPU is starved).
pub const DEFAULT_KEY_INTERVAL: Duration = Duration::from_millis(10);

/// A `qemu` builder block read into typed settings, with Packer's defaults applied.
#[derive(Debug, Clone)]
pub struct QemuConfig {
    /// `vm_name`: the VM and output disk name (default `packer-<build name>`).
    pub vm_name: String,
    /// `output_directory`: where the disk images are written.
    pub output_directory: PathBuf,
    /// `qemu_binary`: the QEMU executable (default `qemu-system-x86_64`).
    pub qemu_binary: String,
    /// `disk_size` in MiB (Packer's default 40960).
    pub disk_size_mib: u64,
    /// `format`: the output disk format.
    pub format: DiskFormat,
    /// `disk_interface`: one of [`DISK_INTERFACES`] (default `virtio`).
    pub disk_interface: String,
    /// `disk_cache`: QEMU's `-drive cache=` mode (default `writeback`).
    pub disk_cache: String,
    /// `disk_discard`: `-drive discard=` (`ignore` or `unmap`).
    pub disk_discard: String,
    /// `disk_detect_zeroes`: `-drive detect-zeroes=` (`off`, `on`, `unmap`).
    pub disk_detect_zeroes: String,
    /// `disk_image`: the "ISO" is a bootable disk image copied (or backed) instead of a CD.
    pub disk_image: bool,
    /// `use_backing_file`: with `disk_image`, make a qcow2 overlay on the image instead of a copy.
    pub use_backing_file: bool,
    /// `skip_resize_disk`: with `disk_image`, keep the image's own size.
    pub skip_resize_disk: bool,
    /// `skip_compaction`: do not `qemu-img convert` the disk after the build.
    pub skip_compaction: bool,
    /// `disk_compression`: compress the qcow2 when compacting it.
    pub disk_compression: bool,
    /// `qemu_img_args`: extra `qemu-img` arguments per subcommand.
    pub qemu_img_args: QemuImgArgs,
    /// `disk_additional_size`: sizes of extra empty disks, in MiB.
    pub disk_additional_size_mib: Vec<u64>,
    /// `accelerator`: KVM, TCG or probe.
    pub accelerator: Accelerator,
    /// `cpus`: number of vCPUs (`-smp`).
    pub cpus: u32,
    /// `sockets`: CPU sockets in the `-smp` topology.
    pub sockets: Option<u32>,
    /// `cores`: cores per socket in the `-smp` topology.
    pub cores: Option<u32>,
    /// `threads`: threads per core in the `-smp` topology.
    pub threads: Option<u32>,
    /// `cpu_model`: QEMU `-cpu` model (QEMU's default when unset).
    pub cpu_model: Option<String>,
    /// `memory`: guest RAM in MiB (`-m`).
    pub memory_mib: u64,
    /// `machine_type`: QEMU `-machine` type (default `pc`).
    pub machine_type: String,
    /// The guest firmware: BIOS, a BIOS file or UEFI.
    pub firmware: Firmware,
    /// `net_device`: the NIC model (default `virtio-net`).
    pub net_device: String,
    /// `qemuargs`: extra QEMU arguments, each a list (replacing defaults with the same flag).
    pub qemuargs: Vec<Vec<String>>,
    /// `headless`: no local display window (`-display none`; a VNC display still works).
    pub headless: bool,
    /// `display`: QEMU `-display` backend when not headless.
    pub display: Option<String>,
    /// A VNC display, when the builder asks for one.
    pub vnc: Option<VncConfig>,
    /// `boot_key_interval`: delay between typed keys (default [`DEFAULT_KEY_INTERVAL`]).
    pub boot_key_interval: Duration,
    /// `cd_files`: files put on a generated ISO attached as a second CD.
    pub cd_files: Vec<PathBuf>,
    /// `cd_content`: (path on the CD, text) pairs for that generated ISO.
    pub cd_content: BTreeMap<String, String>,
    /// `cd_label`: volume label of that generated ISO.
    pub cd_label: Option<String>,
    /// Packer's floppy: `floppy_files` go flat to the root of a 1.44 MB FAT12 image (a directory
    /// adds every file below it), `floppy_dirs` keep their structure; wildcards allowed.
    pub floppy_files: Vec<PathBuf>,
    /// `floppy_dirs`: directories copied to the floppy with their structure.
    pub floppy_dirs: Vec<PathBuf>,
    /// `floppy_label` (default `packer`, as Packer).
    pub floppy_label: String,
    /// SSH forwarding, when the communicator is SSH.
    pub ssh: Option<SshForward>,
    /// What the engine knows that the builder block does not say.
    pub env: DriverEnv,
    /// The ISO and HTTP endpoint, set by `create`.
    pub media: Media,
}

/// Values `disk_interface` accepts (as Packer's QEMU builder).
pub const DISK_INTERFACES: &[&str] = &["virtio", "virtio-scsi", "scsi", "ide", "sata", "nvme"];
const CACHES: &[&str] = &["writeback", "writethrough", "none", "unsafe", "directsync"];
const DISCARDS: &[&str] = &["unmap", "ignore"];
const DETECT_ZEROES: &[&str] = &["unmap", "on", "off"];

impl QemuConfig {
    /// Read the QEMU builder block. Every error names the key and what it accepts.
    pub fn from_builder(
        builder: &Map<String, Value>,
        env: DriverEnv,
    ) -> Result<QemuConfig, ConfigError> {
        let b = Builder(builder);
        if let Some(t) = b.string("type")? {
            if t != "qemu" {
                return Err(err(
                    "type",
                    format!("{t:?} is not a QEMU builder (expected \"qemu\")"),
                ));
            }
        }
        let vm_name = b
            .string("vm_name")?
            .unwrap_or_else(|| format!("packer-{}", env.build_name));
        if vm_name.contains('/') || vm_name.starts_with('.') {
            return Err(err(
                "vm_name",
                format!("{vm_name:?} must be a plain file name"),
            ));
        }
        let output_directory = PathBuf::from(
            b.string("output_directory")?
                .unwrap_or_else(|| format!("output-{}", env.build_name)),
        );
        let format = match b.choice("format", &["qcow2", "raw"])?.as_deref() {
            Some("raw") => DiskFormat::Raw,
            _ => DiskFormat::Qcow2,
        };
        let disk_size_mib = match b.value("disk_size") {
            None => 40960,
            Some(v) => parse_size_mib("disk_size", v)?,
        };
        let disk_additional_size_mib = match b.value("disk_additional_size") {
            None => Vec::new(),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| parse_size_mib("disk_additional_size", v))
                .collect::<Result<_, _>>()?,
            Some(v) => vec![parse_size_mib("disk_additional_size", v)?],
        };
        let disk_image = b.bool("disk_image")?.unwrap_or(false);
        let use_backing_file = b.bool("use_backing_file")?.unwrap_or(false);
        if use_backing_file && (!disk_image || format != DiskFormat::Qcow2) {
            return Err(err(
                "use_backing_file",
                "needs disk_image: true and format: qcow2",
            ));
        }
        let accelerator = match b
            .choice("accelerator", &["auto", "kvm", "tcg", "none"])?
            .as_deref()
        {
            Some("kvm") => Accelerator::Kvm,
            Some("tcg") | Some("none") => Accelerator::Tcg,
            _ => Accelerator::Auto,
        };
        let firmware = parts::firmware(&b)?;
        let qemuargs = parts::qemuargs(&b)?;
        let vnc = parts::vnc(&b)?;
        let boot_key_interval = match b.string("boot_key_interval")? {
            None => DEFAULT_KEY_INTERVAL,
            Some(s) => parse_duration(&s).map_err(|e| {
                err(
                    "boot_key_interval",
                    format!("{s:?} is not a duration ({e}); write e.g. \"10ms\" or \"100ms\""),
                )
            })?,
        };
        let cd_content = b.text_files("cd_content")?;
        let floppy_label = parts::floppy_label(&b)?;
        let ssh = parts::ssh_forward(&b)?;
        let cpus = b.u32("cpus")?.unwrap_or(1).max(1);
        Ok(QemuConfig {
            vm_name,
            output_directory,
            qemu_binary: b
                .string("qemu_binary")?
                .unwrap_or_else(|| "qemu-system-x86_64".into()),
            disk_size_mib,
            format,
            disk_interface: b
                .choice("disk_interface", DISK_INTERFACES)?
                .unwrap_or_else(|| "virtio".into()),
            disk_cache: b
                .choice("disk_cache", CACHES)?
                .unwrap_or_else(|| "writeback".into()),
            disk_discard: b
                .choice("disk_discard", DISCARDS)?
                .unwrap_or_else(|| "ignore".into()),
            disk_detect_zeroes: b
                .choice("disk_detect_zeroes", DETECT_ZEROES)?
                .unwrap_or_else(|| "off".into()),
            disk_image,
            use_backing_file,
            skip_resize_disk: b.bool("skip_resize_disk")?.unwrap_or(false),
            skip_compaction: b.bool("skip_compaction")?.unwrap_or(false),
            disk_compression: b.bool("disk_compression")?.unwrap_or(false),
            qemu_img_args: parts::qemu_img_args(&b)?,
            disk_additional_size_mib,
            accelerator,
            cpus,
            sockets: b.u32("sockets")?.filter(|v| *v > 0),
            cores: b.u32("cores")?.filter(|v| *v > 0),
            threads: b.u32("threads")?.filter(|v| *v > 0),
            cpu_model: b.string("cpu_model")?,
            memory_mib: b.u64("memory")?.unwrap_or(512),
            machine_type: b.string("machine_type")?.unwrap_or_else(|| "pc".into()),
            firmware,
            net_device: b
                .string("net_device")?
                .unwrap_or_else(|| "virtio-net".into()),
            qemuargs,
            headless: b.bool("headless")?.unwrap_or(false),
            display: b.string("display")?,
            vnc,
            boot_key_interval,
            cd_files: b
                .string_list("cd_files")?
                .into_iter()
                .map(PathBuf::from)
                .collect(),
            cd_content,
            cd_label: b.string("cd_label")?,
            floppy_files: b
                .string_list("floppy_files")?
                .into_iter()
                .map(PathBuf::from)
                .collect(),
            floppy_dirs: b
                .string_list("floppy_dirs")?
                .into_iter()
                .map(PathBuf::from)
                .collect(),
            floppy_label,
            ssh,
            env,
            media: Media::default(),
        })
    }

    /// The same configuration with the ISO and HTTP endpoint of the build.
    pub fn with_media(mut self, media: Media) -> QemuConfig {
        self.media = media;
        self
    }

    /// The disk file the VM writes while it is built.
    pub fn work_disk(&self) -> PathBuf {
        self.env
            .work_dir
            .join(format!("{}.{}", self.vm_name, self.format.as_str()))
    }

    /// The disk file `export` writes: `output_directory/vm_name` (Packer's name; no extension).
    pub fn output_disk(&self, out_dir: &Path) -> PathBuf {
        out_dir.join(&self.vm_name)
    }

    /// The file the guest's serial console is written to (in the build's log directory).
    pub fn serial_log(&self) -> PathBuf {
        self.env
            .log_dir
            .join(format!("{}-serial.log", self.vm_name))
    }
}
