//! ntdll, kernel32, advapi32 and shell32 bindings against the test double, and what a
//! missing DLL or function looks like.

mod common;

use common::{Double, hex};
use serde_json::json;
use win32::cimfs::CimFs;
use win32::security::{PIPE_SDDL, Security, pipe_security_descriptor};
use win32::shell::Shell;
use win32::system::{Version, os_version};
use win32::{Error, Source};
use winlayer_core::security::SecurityDescriptor;

#[test]
fn os_version_reads_all_three_sources() {
    let d = Double::new();
    d.script(json!({
        "RtlGetVersion": {"version": {"major": 10, "minor": 0, "build": 26100}},
        "GetVersionExW": {"version": {"major": 6, "minor": 2, "build": 9200}},
        "RegGetValueW": {"dword": 4061},
    }));
    let v = os_version(&d.source()).unwrap();
    assert_eq!(v.version, Version { major: 10, minor: 0, build: 26100 });
    assert_eq!(v.reported_to_process, Version { major: 6, minor: 2, build: 9200 });
    assert_eq!(v.revision, Some(4061));
    assert_eq!(v.to_string(), "10.0.26100.4061");
    assert_eq!(d.args_of("RtlGetVersion"), [json!({"size": 276})]);
    assert_eq!(d.args_of("GetVersionExW"), [json!({"size": 276})]);
    assert_eq!(
        d.args_of("RegGetValueW"),
        [json!({
            "key": "HKEY_LOCAL_MACHINE", "subkey": r"SOFTWARE\Microsoft\Windows NT\CurrentVersion", "value": "UBR",
            "flags": 0x10, "type_null": true, "size_in": 4,
        })]
    );
    d.assert_covered("ntdll.dll");
}

#[test]
fn missing_ubr_is_none_and_failures_are_typed() {
    let d = Double::new();
    d.script(json!({"RegGetValueW": {"missing": true}}));
    assert_eq!(os_version(&d.source()).unwrap().revision, None);
    let d = Double::new();
    d.script(json!({"RtlGetVersion": {"ret": 0xC000_000Du32 as i32}}));
    let err = os_version(&d.source()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "RtlGetVersion: NTSTATUS 0xC000000D (STATUS_INVALID_PARAMETER: an invalid parameter was passed)"
    );
}

#[test]
fn command_line_to_argv_reads_and_frees_the_block() {
    let d = Double::new();
    d.script(json!({"CommandLineToArgvW": {"argv": ["C:\\a b\\p.exe", "ünï", ""]}}));
    let shell = Shell::load(&d.source()).unwrap();
    assert_eq!(shell.command_line_to_argv(r#""C:\a b\p.exe" ünï """#).unwrap(), ["C:\\a b\\p.exe", "ünï", ""]);
    assert_eq!(d.args_of("CommandLineToArgvW"), [json!({"line": r#""C:\a b\p.exe" ünï """#})]);
    assert_eq!(d.args_of("LocalFree"), [json!({"null": false, "allocated_by_double": true})]);
    d.assert_covered("shell32.dll");
}

#[test]
fn object_dacl_round_trips_through_get_security_info() {
    let d = Double::new();
    let sd = pipe_security_descriptor();
    d.script(json!({"GetSecurityInfo": {"descriptor": hex(&sd)}}));
    let security = Security::load(&d.source()).unwrap();
    let got = security.object_dacl(0x1234).unwrap();
    assert_eq!(SecurityDescriptor::from_bytes(&got).unwrap().to_sddl(), PIPE_SDDL);
    assert_eq!(
        d.args_of("GetSecurityInfo"),
        [json!({
            "handle": "unknown:0x1234", "object_type": 6, "security_information": 4,
            "owner_null": true, "group_null": true, "dacl_null": true, "sacl_null": true, "descriptor_null": false,
        })]
    );
    assert_eq!(d.args_of("GetSecurityDescriptorLength"), [json!({"allocated_by_double": true})]);
    assert_eq!(d.args_of("LocalFree"), [json!({"null": false, "allocated_by_double": true})]);
}

#[test]
fn shared_dlls_are_covered_by_the_modules_using_them() {
    let d = Double::new();
    d.script(json!({"CommandLineToArgvW": {"argv": ["p"]}, "GetSecurityInfo": {"descriptor": "01000480"}}));
    os_version(&d.source()).unwrap();
    Shell::load(&d.source()).unwrap().command_line_to_argv("p").unwrap();
    Security::load(&d.source()).unwrap().object_dacl(0).unwrap();
    let vd = win32::virtdisk::VirtDisk::load(&d.source()).unwrap();
    drop(vd.open(std::path::Path::new("a.vhdx"), &Default::default()).unwrap());
    d.assert_covered("kernel32.dll");
    d.assert_covered("advapi32.dll");
}

#[test]
fn pipe_descriptor_is_administrators_and_system_only() {
    let sd = SecurityDescriptor::from_bytes(&pipe_security_descriptor()).unwrap();
    assert_eq!(sd.to_sddl(), "D:P(A;;FA;;;SY)(A;;FA;;;BA)");
    assert!(sd.owner.is_none() && sd.group.is_none() && sd.sacl.is_none());
}

#[test]
fn missing_functions_and_dlls_are_named() {
    // A real library that exports none of cimfs.dll's functions.
    let other = if cfg!(windows) { "kernel32.dll" } else { "libc.so.6" };
    let fs = CimFs::load(&Source::File(other.into())).unwrap();
    let err = fs.require_writer().unwrap_err();
    assert_eq!(err.to_string(), "this Windows build lacks CimCreateImage (not exported by cimfs.dll)");
    let err = fs.create_image(std::path::Path::new("d"), None, Some("n")).err().unwrap();
    assert!(matches!(err, Error::Missing { symbol: Some("CimCreateImage"), .. }), "{err}");

    let err = CimFs::load(&Source::File("/nonexistent/cimfs.dll".into())).err().unwrap();
    assert!(err.to_string().contains("cimfs.dll"), "{err}");
    if !cfg!(windows) {
        let err = CimFs::load(&Source::System).err().unwrap();
        assert_eq!(err.to_string(), "cimfs.dll is not available: not running on Windows");
    }
}

#[test]
fn availability_report_against_the_double() {
    let d = Double::new();
    d.script(json!({"RtlGetVersion": {"version": {"major": 10, "minor": 0, "build": 27800}}}));
    let report = win32::available(&d.source());
    assert_eq!(report.len(), 8);
    assert!(report.iter().all(|b| b.unavailable.is_none()), "{report:?}");
    if !cfg!(windows) {
        assert!(win32::available(&Source::System).iter().all(|b| b.unavailable.is_some()));
    }
}

#[test]
fn cim_support_follows_the_build_and_the_exports() {
    let d = Double::new();
    let os = |build: u32, revision: Option<u32>| Ok((build, revision));
    let s = win32::cimfs::support(&d.source(), os(20348, Some(2030)));
    assert!(s.cimfs.as_deref().unwrap().contains("20348.2031"), "{s:?}");
    let s = win32::cimfs::support(&d.source(), os(20348, Some(2031)));
    assert_eq!(s.cimfs, None);
    assert!(s.block_mounts.as_deref().unwrap().contains("27766"), "{s:?}");
    assert_eq!(s.writer, Some("cimwriter.dll"), "the double exports the writer's calls under cimwriter.dll's name too");
    assert_eq!(s.block_writes, None, "cimwriter.dll writes block CIMs on any build");
    let s = win32::cimfs::support(&d.source(), os(27766, None));
    assert_eq!((s.cimfs.clone(), s.block_mounts.clone()), (None, None));
    assert!(s.verified.as_deref().unwrap().contains("27800"), "{s:?}");
    let s = win32::cimfs::support(&d.source(), os(27800, None));
    assert_eq!(
        s,
        win32::cimfs::Support {
            cimfs: None,
            block_mounts: None,
            verified: None,
            block_writes: None,
            writer: Some("cimwriter.dll")
        }
    );
    let s = win32::cimfs::support(&d.source(), Err("RtlGetVersion failed".into()));
    assert!(s.cimfs.as_deref().unwrap().contains("RtlGetVersion failed"));
    // A library without the calls: every capability names what is missing.
    let other = if cfg!(windows) { "kernel32.dll" } else { "libc.so.6" };
    let s = win32::cimfs::support(&Source::File(other.into()), os(27800, None));
    assert_eq!(s.writer, Some("cimfs.dll"));
    assert!(s.cimfs.as_deref().unwrap().contains("does not export CimMountImage"), "{s:?}");
    assert!(s.block_writes.as_deref().unwrap().contains("CimCreateImage"), "{s:?}");
}
