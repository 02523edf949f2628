//! `winlayer cim create --block`, `cim merge --block`, `cim mount --block`, `cim umount
//! --volume`: block CIMs through Windows' DLLs (win32::block_cim). The block format is not
//! public, so on other systems these fail before anything is read or written.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::json;
use win32::Guid;
use win32::block_cim::{self, BlockLayer};
use win32::cimfs::{CimFs, ImagePath};
use winlayer_core::dir::DirOptions;
use winlayer_core::{Error, Result};

use crate::io::print;
use crate::tar::{read_layer, source_date_epoch};

/// The CIM DLLs, or why not: on other systems, at once.
fn cim_dlls() -> Result<CimFs> {
    block_cim::load(&win32::Source::System)
}

/// A layer named on the command line: `FILE` (holding `layer.cim`) or `FILE/NAME.cim`, the
/// form containerd's `parentCimPaths` use.
pub fn layer_image(arg: &Path) -> ImagePath {
    let name = arg.file_name().and_then(|n| n.to_str()).filter(|n| n.to_ascii_lowercase().ends_with(".cim"));
    match (name, arg.parent()) {
        (Some(name), Some(block)) if !block.as_os_str().is_empty() => {
            ImagePath { dir: block.to_path_buf(), name: name.to_string() }
        }
        _ => ImagePath { dir: arg.to_path_buf(), name: "layer.cim".into() },
    }
}

/// `cim create --block`.
#[allow(clippy::too_many_arguments)]
pub fn create(
    file: &Path,
    name: &str,
    from: &Path,
    integrity: bool,
    vhd_footer: bool,
    options: (bool, &str),
    json: bool,
) -> Result<ExitCode> {
    let fs = cim_dlls()?;
    let layer = BlockLayer { file: file.to_path_buf(), name: name.to_string(), integrity, vhd_footer };
    let dir_options =
        DirOptions { base: options.0, owner: options.1.to_string(), source_date_epoch: source_date_epoch()? };
    let hash = block_cim::write_layer(&fs, &layer, |sink| read_layer(from, dir_options, sink, "writing"))?;
    let hash = hash.as_deref().map(block_cim::hex);
    let summary = json!({
        "block": file, "name": name, "writer": fs.writer_dll(), "root_hash": hash, "vhd_footer": vhd_footer,
    });
    print(json, &summary, |o| {
        write!(o, "{} ({name}) written by {}", file.display(), fs.writer_dll())?;
        if let Some(h) = &hash {
            write!(o, "; sealed, root hash {h} (in {})", block_cim::INTEGRITY_CHECKSUM)?;
        }
        writeln!(o, "{}", if vhd_footer { "; VHD footer appended" } else { "" })
    })
}

/// `cim merge --block`.
pub fn merge(out: &Path, name: &str, layers: &[PathBuf], integrity: bool, json: bool) -> Result<ExitCode> {
    let fs = cim_dlls()?;
    let sources: Vec<ImagePath> = layers.iter().map(|l| layer_image(l)).collect();
    let image = ImagePath { dir: out.to_path_buf(), name: name.to_string() };
    let hash = block_cim::merge(&fs, &image, &sources, integrity, false)?.as_deref().map(block_cim::hex);
    let summary = json!({ "block": out, "name": name, "sources": layers, "root_hash": hash });
    print(json, &summary, |o| {
        write!(o, "{} ({name}): merged from {} layers", out.display(), sources.len())?;
        writeln!(o, "{}", hash.as_ref().map(|h| format!("; sealed, root hash {h}")).unwrap_or_default())
    })
}

/// `cim mount --block`: prints the volume path.
pub fn mount(
    image: &Path,
    layers: &[PathBuf],
    root_hash: Option<&str>,
    verified: bool,
    volume: Guid,
) -> Result<ExitCode> {
    let fs = cim_dlls()?;
    let image = layer_image(image);
    let hash = match (root_hash, verified) {
        (Some(hex), _) => {
            Some(block_cim::parse_hex(hex).ok_or_else(|| Error::Invalid(format!("--root-hash {hex:?}: not hex")))?)
        }
        (None, true) => Some(block_cim::read_checksum(&image.dir)?),
        (None, false) => None,
    };
    let sources: Vec<ImagePath> = layers.iter().map(|l| layer_image(l)).collect();
    let path = block_cim::mount(&fs, &image, &sources, hash.as_deref(), volume)?;
    println!("{path}");
    Ok(ExitCode::SUCCESS)
}

/// `cim umount --volume`.
pub fn dismount(volume: Guid) -> Result<ExitCode> {
    cim_dlls()?.dismount(volume).map_err(|e| Error::Invalid(e.to_string()))?;
    Ok(ExitCode::SUCCESS)
}
