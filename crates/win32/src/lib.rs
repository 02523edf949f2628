//! The Windows APIs nothing else replaces, loaded at run time.
//!
//! winlayer reads and writes every layer format itself, but a few things only Windows can do:
//! mount CIM images and write the CIM kinds that are not publicly specified (cimfs.dll),
//! attach virtual disks (virtdisk.dll), format a container's scratch disk and set up a base
//! layer (computestorage.dll), the legacy layer calls Docker and containerd used for years
//! (vmcompute.dll), and the Offline Registry library (offreg.dll).
//!
//! Nothing here is linked at build time: each DLL is loaded when first asked for, from
//! System32 only, and each function is looked up by name. So the crate builds and is tested
//! on any OS, against a test double exporting the same symbols (crates/win32-double), and a
//! Windows build that lacks a DLL or a function says so by name instead of failing to start.
//! Every call returns a typed [`Error`] naming the call that failed.
//!
//! Above the raw bindings sit the backends the rest of winlayer uses on Windows:
//! [`cim_sink::CimSink`] (a layer sink writing a CIM through cimfs.dll), [`scratch`] (a
//! formatted scratch VHDX through virtdisk and computestorage), [`vmcompute::Vmcompute::process_base_layer`]
//! (ProcessBaseImage/ProcessUtilityImage after a base layer is built), [`system::os_version`]
//! (the real OS build), and on Windows [`pipe`] (the snapshotter's named pipe, limited to
//! Administrators and SYSTEM). [`available`] reports which of them this machine offers.

// This crate is winlayer's only door to foreign code: calling a function pointer obtained
// from a DLL, and handing it raw pointers, cannot be done without `unsafe`. Every unsafe
// block carries a SAFETY comment saying why its pointers are valid.
#![allow(unsafe_code)]

#[macro_use]
mod dll;
mod error;
mod guid;
mod wide;

pub mod block_cim;
pub mod cim_sink;
pub mod cimfs;
pub mod computestorage;
pub mod offreg;
#[cfg(windows)]
pub mod pipe;
pub mod scratch;
pub mod security;
pub mod shell;
pub mod system;
pub mod virtdisk;
pub mod vmcompute;

pub use dll::Source;
pub use error::{Code, Error, Result};
pub use guid::Guid;

/// Every bound function, by DLL.
pub fn bindings() -> Vec<(&'static str, &'static [&'static str])> {
    vec![
        (cimfs::CimFsDll::DLL, cimfs::CimFsDll::FUNCTIONS),
        (virtdisk::VirtDiskDll::DLL, virtdisk::VirtDiskDll::FUNCTIONS),
        (computestorage::ComputeStorageDll::DLL, computestorage::ComputeStorageDll::FUNCTIONS),
        (vmcompute::VmcomputeDll::DLL, vmcompute::VmcomputeDll::FUNCTIONS),
        (offreg::OffregDll::DLL, offreg::OffregDll::FUNCTIONS),
        (system::Kernel32Dll::DLL, system::Kernel32Dll::FUNCTIONS),
        (system::NtdllDll::DLL, system::NtdllDll::FUNCTIONS),
        (system::Advapi32Dll::DLL, system::Advapi32Dll::FUNCTIONS),
        (shell::Shell32Dll::DLL, shell::Shell32Dll::FUNCTIONS),
    ]
}

/// One backend and whether this machine offers it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Backend {
    /// What it does.
    pub name: &'static str,
    /// The DLL functions it needs.
    pub needs: &'static str,
    /// `None` when available, otherwise why not.
    pub unavailable: Option<String>,
}

/// Which Windows backends `source` offers, each with the reason when it does not.
pub fn available(source: &Source) -> Vec<Backend> {
    let why = |r: Result<()>| r.err().map(|e| e.to_string());
    let os = system::os_version(source).map(|v| (v.version.build, v.revision)).map_err(|e| e.to_string());
    let cims = cimfs::support(source, os);
    vec![
        Backend {
            name: "CIM writer (cimwriter.dll, else cimfs.dll)",
            needs: "CimCreateImage … CimCommitImage",
            unavailable: why(cimfs::CimFs::load(source).and_then(|c| c.require_writer())),
        },
        Backend {
            name: "CimFS mounts (cimfs.dll)",
            needs: "CimMountImage, CimDismountImage; build 26100, or 20348.2031 on",
            unavailable: cims.cimfs,
        },
        Backend {
            name: "block and merged CIM mounts (cimfs.dll)",
            needs: "CimMergeMountImage; build 27766 on",
            unavailable: cims.block_mounts,
        },
        Backend {
            name: "verified CIMs (cimfs.dll)",
            needs: "CimSealImage, CimGetVerificationInformation, CimMount(Merge)VerifiedImage; build 27800 on",
            unavailable: cims.verified,
        },
        Backend {
            name: "block CIM writes (cimwriter.dll, else cimfs.dll)",
            needs: "CimCreateImage2, CimAddFsToMergedImage2, CimTombstoneFile, CimCreateMergeLink; cimwriter.dll or build 27766",
            unavailable: cims.block_writes,
        },
        Backend {
            name: "scratch formatter (virtdisk.dll + computestorage.dll)",
            needs: "CreateVirtualDisk, HcsFormatWritableLayerVhd",
            unavailable: why(scratch::ScratchFormatter::load(source).map(drop)),
        },
        Backend {
            name: "base layer processing (vmcompute.dll)",
            needs: "ProcessBaseImage, ProcessUtilityImage",
            unavailable: why(vmcompute::Vmcompute::load(source).and_then(|v| v.require_processing())),
        },
        Backend {
            name: "offline registry (offreg.dll)",
            needs: "ORCreateHive … ORMergeHives",
            unavailable: why(offreg::OfflineRegistry::load(source).map(drop)),
        },
    ]
}
