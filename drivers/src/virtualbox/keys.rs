//! Which builder keys the VirtualBox driver reads, which the engine reads, and which Packer's
//! `virtualbox-iso` has but the native driver does not implement. Every other key is unknown:
//! both are reported when the driver is made (validation), before anything is created.

/// Keys the driver reads (Packer's `virtualbox-iso` names).
pub const DRIVER_KEYS: &[&str] = &[
    "type",
    "vm_name",
    "output_directory",
    "output_filename",
    "guest_os_type",
    "cpus",
    "memory",
    "disk_size",
    "disk_additional_size",
    "hard_drive_interface",
    "hard_drive_nonrotational",
    "hard_drive_discard",
    "sata_port_count",
    "nvme_port_count",
    "iso_interface",
    "firmware",
    "chipset",
    "rtc_time_base",
    "nic_type",
    "audio_controller",
    "sound",
    "usb",
    "usb_controller",
    "mouse",
    "keyboard",
    "gfx_controller",
    "gfx_vram_size",
    "gfx_accelerate_3d",
    "gfx_efi_resolution",
    "nested_virt",
    "headless",
    "vrdp_bind_address",
    "vrdp_port_min",
    "vrdp_port_max",
    "vboxmanage",
    "vboxmanage_post",
    "guest_additions_mode",
    "guest_additions_path",
    "guest_additions_interface",
    "guest_additions_sha256",
    "guest_additions_url",
    "virtualbox_version_file",
    "format",
    "export_opts",
    "skip_export",
    "keep_registered",
    "host_port_min",
    "host_port_max",
    "ssh_host_port_min",
    "ssh_host_port_max",
    "skip_nat_mapping",
    "ssh_skip_nat_mapping",
    "communicator",
    "ssh_port",
    "winrm_port",
    "boot_keygroup_interval",
    "post_shutdown_delay",
    "cd_files",
    "cd_content",
    "cd_label",
];

/// Keys the native engine reads (ISO, HTTP server, boot command, communicator, shutdown).
/// `ssh_*` and `winrm_*` keys not listed elsewhere belong to the communicator too.
pub const ENGINE_KEYS: &[&str] = &[
    "name",
    "iso_url",
    "iso_urls",
    "iso_checksum",
    "iso_checksum_url",
    "iso_checksum_type",
    "iso_target_path",
    "iso_target_extension",
    "http_directory",
    "http_content",
    "http_port_min",
    "http_port_max",
    "http_bind_address",
    "http_network_protocol",
    "boot_command",
    "boot_steps",
    "boot_wait",
    "pause_before_connecting",
    "shutdown_command",
    "shutdown_timeout",
    // Read here: only `false` is accepted (the engine always shuts the guest down itself).
    "disable_shutdown",
    "acpi_shutdown",
];

/// Packer `virtualbox-iso` keys the native driver does not implement, with what to do.
pub const UNSUPPORTED_KEYS: &[(&str, &str)] = &[
    (
        "floppy_files",
        "the native VirtualBox driver attaches no floppy; use cd_files, or --engine packer",
    ),
    (
        "floppy_dirs",
        "the native VirtualBox driver attaches no floppy; use cd_files, or --engine packer",
    ),
    (
        "floppy_content",
        "the native VirtualBox driver attaches no floppy; use cd_content, or --engine packer",
    ),
    (
        "floppy_label",
        "floppies are not supported natively; use --engine packer",
    ),
    (
        "bundle_iso",
        "the installer ISO is always detached before export natively; use --engine packer",
    ),
    (
        "disk_image",
        "virtualbox-iso installs from an ISO; disk_image belongs to other builders",
    ),
];

/// What is wrong with `key`, if anything: `Some((unsupported, message))`.
pub fn check_key(key: &str) -> Option<String> {
    if key.starts_with('_') {
        // OSImager comments (`_comment`) never reach Packer either.
        return None;
    }
    if DRIVER_KEYS.contains(&key) || ENGINE_KEYS.contains(&key) {
        return None;
    }
    if let Some((_, why)) = UNSUPPORTED_KEYS.iter().find(|(k, _)| *k == key) {
        return Some(format!(
            "not supported by the native VirtualBox driver: {why}"
        ));
    }
    if key.starts_with("ssh_") || key.starts_with("winrm_") || key.starts_with("temporary_key_pair")
    {
        return None;
    }
    let near: Vec<&str> = DRIVER_KEYS
        .iter()
        .chain(ENGINE_KEYS)
        .copied()
        .filter(|k| similar(k, key))
        .collect();
    Some(if near.is_empty() {
        "unknown key (not a virtualbox-iso key); remove it or use --engine packer".to_string()
    } else {
        format!("unknown key; did you mean {}?", near.join(" or "))
    })
}

/// Edit distance ≤ 2, for "did you mean".
fn similar(a: &str, b: &str) -> bool {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    if a.len().abs_diff(b.len()) > 2 {
        return false;
    }
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()] <= 2
}
