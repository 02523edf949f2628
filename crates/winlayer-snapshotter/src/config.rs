//! The daemon's settings: a TOML file whose keys mirror the command-line flags, then the flags,
//! then defaults that work out of the box.
//!
//! ```toml
//! root = "/var/lib/winlayer"            # where metadata.redb and snapshots/ live
//! address = "/run/winlayer/winlayer.sock" # unix socket, or \\.\pipe\NAME on Windows
//! mode = "windows"                      # windows | cimfs | blockcim | linux
//! containerd_address = "/run/containerd/containerd.sock" # whose content service the differ reads
//! # blockcim mode only, under the names of containerd's blockcim snapshotter settings:
//! enable_layer_integrity = false        # verified (sealed) layer and merged CIMs
//! append_vhd_footer = false             # a fixed-VHD footer after each of them
//! unformatted_scratch = false           # unformatted scratch disks, 40 GiB or more
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::layout::{BlockCimOptions, Mode};

/// Settings; `None` means "not given here".
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The root directory.
    pub root: Option<PathBuf>,
    /// The socket path (or pipe name) to serve on.
    pub address: Option<String>,
    /// The mode.
    pub mode: Option<Mode>,
    /// containerd's own socket (or pipe), where the differ reads and writes layer blobs.
    pub containerd_address: Option<String>,
    /// `blockcim` mode: verified layer and merged CIMs.
    pub enable_layer_integrity: Option<bool>,
    /// `blockcim` mode: a fixed-VHD footer after each layer and merged CIM.
    pub append_vhd_footer: Option<bool>,
    /// `blockcim` mode: unformatted scratch disks.
    pub unformatted_scratch: Option<bool>,
}

/// Settings with every value decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// The root directory.
    pub root: PathBuf,
    /// The socket path (or pipe name).
    pub address: String,
    /// The mode.
    pub mode: Mode,
    /// containerd's socket (or pipe).
    pub containerd_address: String,
    /// `blockcim` mode's settings (all off unless asked for).
    pub block: BlockCimOptions,
}

/// Configuration files larger than this are refused unread.
const MAX_CONFIG_LEN: u64 = 1 << 20;

impl Config {
    /// Reads a TOML configuration file.
    pub fn load(path: &Path) -> Result<Config> {
        let io = |e| Error::io("reading configuration", path, e);
        let len = std::fs::metadata(path).map_err(io)?.len();
        if len > MAX_CONFIG_LEN {
            return Err(Error::invalid_argument(format!(
                "{}: {len} bytes is too large for a configuration",
                path.display()
            )));
        }
        Config::parse(&std::fs::read_to_string(path).map_err(io)?)
            .map_err(|e| Error::invalid_argument(format!("{}: {}", path.display(), e.message())))
    }

    /// Parses TOML configuration text.
    pub fn parse(text: &str) -> Result<Config> {
        toml::from_str(text).map_err(|e| Error::invalid_argument(format!("invalid configuration: {e}")))
    }

    /// Values from `flags` win over this file's, and defaults fill the rest.
    pub fn merge(self, flags: Config) -> Settings {
        Settings {
            root: flags.root.or(self.root).unwrap_or_else(default_root),
            address: flags.address.or(self.address).unwrap_or_else(default_address),
            mode: flags.mode.or(self.mode).unwrap_or_else(default_mode),
            containerd_address: flags
                .containerd_address
                .or(self.containerd_address)
                .unwrap_or_else(default_containerd_address),
            block: BlockCimOptions {
                enable_layer_integrity: flags
                    .enable_layer_integrity
                    .or(self.enable_layer_integrity)
                    .unwrap_or_default(),
                append_vhd_footer: flags.append_vhd_footer.or(self.append_vhd_footer).unwrap_or_default(),
                unformatted_scratch: flags.unformatted_scratch.or(self.unformatted_scratch).unwrap_or_default(),
            },
        }
    }
}

/// `C:\ProgramData\winlayer` on Windows, `/var/lib/winlayer` elsewhere.
pub fn default_root() -> PathBuf {
    if cfg!(windows) { PathBuf::from(r"C:\ProgramData\winlayer") } else { PathBuf::from("/var/lib/winlayer") }
}

/// `\\.\pipe\winlayer` on Windows, `/run/winlayer/winlayer.sock` elsewhere.
pub fn default_address() -> String {
    if cfg!(windows) { r"\\.\pipe\winlayer".into() } else { "/run/winlayer/winlayer.sock".into() }
}

/// Where containerd listens by default: `\\.\pipe\containerd-containerd` on Windows,
/// `/run/containerd/containerd.sock` elsewhere.
pub fn default_containerd_address() -> String {
    if cfg!(windows) { r"\\.\pipe\containerd-containerd".into() } else { "/run/containerd/containerd.sock".into() }
}

/// `windows` on Windows; `linux` elsewhere, the only mode whose mounts work there.
pub fn default_mode() -> Mode {
    if cfg!(windows) { Mode::Windows } else { Mode::Linux }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_file_and_defaults_fill_the_rest() {
        let file = Config::parse("root = \"/srv/w\"\nmode = \"cimfs\"\n").unwrap();
        let flags = Config { mode: Some(Mode::Windows), ..Config::default() };
        let settings = file.merge(flags);
        assert_eq!(settings.root, Path::new("/srv/w"));
        assert_eq!(settings.mode, Mode::Windows);
        assert_eq!(settings.address, default_address());
        assert_eq!(Config::default().merge(Config::default()).root, default_root());
    }

    #[test]
    fn blockcim_settings_under_containerd_names() {
        let file = Config::parse(
            "mode = \"blockcim\"\nenable_layer_integrity = true\nappend_vhd_footer = true\nunformatted_scratch = true\n",
        )
        .unwrap();
        let flags = Config { unformatted_scratch: Some(false), ..Config::default() };
        let settings = file.merge(flags);
        assert_eq!(settings.mode, Mode::Blockcim);
        assert_eq!(
            settings.block,
            BlockCimOptions { enable_layer_integrity: true, append_vhd_footer: true, unformatted_scratch: false }
        );
        assert_eq!(Config::default().merge(Config::default()).block, BlockCimOptions::default());
    }

    #[test]
    fn bad_configuration_is_an_error_naming_the_problem() {
        for (text, needle) in [
            ("rooot = \"/x\"", "rooot"),
            ("mode = \"lcow\"", "lcow"),
            ("root = 3", "root"),
            ("root = \"/x", "invalid configuration"),
        ] {
            let err = Config::parse(text).unwrap_err();
            assert!(err.message().contains(needle), "{text}: {err}");
        }
    }
}
