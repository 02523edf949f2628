//! The paths hcsshim treats specially when it builds base layers and CIM container layers
//! (`internal/wclayer/cim/common.go`, `process.go`, `internal/wclayer/converttobaselayer.go`,
//! `legacy.go`).

/// Where a container's registry hives live, relative to the layer.
pub const CONFIG_DIR: [&str; 4] = ["Files", "Windows", "System32", "config"];

/// One of the five registry hives of a container.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hive {
    /// File name in `Files/Windows/System32/config`.
    pub config: &'static str,
    /// The merged hive in `Hives/` (hcsshim's spelling; file systems compare it
    /// case-insensitively).
    pub base: &'static str,
    /// A layer's differencing hive in `Hives/` (Windows' exports spell it `DefaultUser_Delta`
    /// and so on; hcsshim compares case-insensitively).
    pub delta: &'static str,
}

/// The five hives, in hcsshim's order. `DEFAULT` pairs with `DEFAULTUSER_BASE`/`_DELTA`.
pub const HIVES: [Hive; 5] = [
    Hive { config: "SYSTEM", base: "SYSTEM_BASE", delta: "SYSTEM_DELTA" },
    Hive { config: "SOFTWARE", base: "SOFTWARE_BASE", delta: "SOFTWARE_DELTA" },
    Hive { config: "SAM", base: "SAM_BASE", delta: "SAM_DELTA" },
    Hive { config: "SECURITY", base: "SECURITY_BASE", delta: "SECURITY_DELTA" },
    Hive { config: "DEFAULT", base: "DEFAULTUSER_BASE", delta: "DEFAULTUSER_DELTA" },
];

/// The root file hcsshim writes into a base layer so container start-up knows the hives are
/// part of the root file system, and its content.
pub const LAYOUT: &str = "layout";
/// The content of [`LAYOUT`].
pub const LAYOUT_CONTENT: &[u8] = b"vhd-with-hives\n";

/// The utility VM's boot configuration store, required in a base layer that has a utility VM.
pub const BCD: [&str; 6] = ["UtilityVM", "Files", "EFI", "Microsoft", "Boot", "BCD"];

/// The utility VM's files hcsshim keeps outside the CIM too, compared exactly (as hcsshim does).
const UTILITY_VM_STD_FILES: [&str; 4] = [
    "UtilityVM/Files/Windows/System32/config/SYSTEM",
    "UtilityVM/Files/Windows/System32/config/SOFTWARE",
    "UtilityVM/Files/EFI/Microsoft/Boot/BCD",
    "UtilityVM/Files/EFI/Microsoft/Boot/bootmgfw.efi",
];

/// Whether two names are the same name to hcsshim and NTFS alike: ASCII letters in any case.
/// (hcsshim's `strings.EqualFold` would also fold a few non-ASCII letters, such as `ſ` to `s`,
/// that NTFS keeps apart; such a name is an ordinary file to winlayer.)
pub fn same_name(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// The path of a config hive, `Files/Windows/System32/config/<name>`.
pub fn config_path(hive: &Hive) -> String {
    format!("{}/{}", CONFIG_DIR.join("/"), hive.config)
}

/// The hive whose `Hives/<H>_DELTA` is `path`.
pub fn delta_hive(path: &str) -> Option<&'static Hive> {
    let name = path.strip_prefix("Hives/")?;
    HIVES.iter().find(|h| same_name(name, h.delta))
}

/// The hive whose `Hives/<H>_BASE` `name` (a name in `Hives/`) is.
pub fn base_hive(name: &str) -> Option<&'static Hive> {
    HIVES.iter().find(|h| same_name(name, h.base))
}

/// The hive whose config file `path` is.
pub fn config_hive(path: &str) -> Option<&'static Hive> {
    HIVES.iter().find(|h| same_name(path, &config_path(h)))
}

/// Whether hcsshim's CIM importer writes `path` into the layer directory before the CIM (a
/// "std file", processed or kept on the host): the delta hives and the config hives
/// (case-insensitively), the utility VM's hives, BCD and boot manager (exactly).
pub fn is_std_file(path: &str) -> bool {
    delta_hive(path).is_some() || config_hive(path).is_some() || UTILITY_VM_STD_FILES.contains(&path)
}

/// Every std file of a layer directory that may exist: for the delta and config hives, every
/// spelling is looked up case-insensitively.
pub fn std_file_paths() -> impl Iterator<Item = String> {
    let hives = HIVES.iter().flat_map(|h| [format!("Hives/{}", h.delta), config_path(h)]);
    hives.chain(UTILITY_VM_STD_FILES.iter().map(|s| s.to_string()))
}

/// Whether `names` (a path as names) is something a CIM container layer importer generates:
/// the root `layout` file or a `Hives/<H>_BASE` hive.
pub fn is_generated(names: &[String]) -> bool {
    match names {
        [one] => same_name(one, LAYOUT),
        [hives, name] => same_name(hives, "Hives") && base_hive(name).is_some(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn std_files_as_hcsshim_spells_them() {
        for p in [
            "Hives/System_Delta",
            "Hives/DefaultUser_Delta",
            "Hives/DEFAULTUSER_DELTA",
            "Files/Windows/System32/config/SAM",
            "Files/windows/system32/CONFIG/default",
            "UtilityVM/Files/EFI/Microsoft/Boot/BCD",
            "UtilityVM/Files/EFI/Microsoft/Boot/bootmgfw.efi",
            "UtilityVM/Files/Windows/System32/config/SOFTWARE",
        ] {
            assert!(is_std_file(p), "{p}");
        }
        for p in [
            "Hives/Default_Delta",
            "Hives/SYSTEM_BASE",
            "Files/Windows/System32/config/SAM.LOG1",
            "UtilityVM/Files/EFI/Microsoft/Boot/bcd",
            "UtilityVM/Files/Windows/System32/config/SAM",
            "Files/Windows/System32/config/ſystem",
        ] {
            assert!(!is_std_file(p), "{p}");
        }
        assert_eq!(delta_hive("Hives/defaultuser_delta").map(|h| h.config), Some("DEFAULT"));
        assert_eq!(base_hive("DefaultUser_Base").map(|h| h.config), Some("DEFAULT"));
        let names = |p: &[&str]| p.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(is_generated(&names(&["layout"])) && is_generated(&names(&["Hives", "sam_base"])));
        assert!(!is_generated(&names(&["Hives", "SAM_DELTA"])) && !is_generated(&names(&["Files", "layout"])));
        assert_eq!(std_file_paths().count(), 14);
    }
}
