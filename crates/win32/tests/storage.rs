//! virtdisk.dll, computestorage.dll and the scratch formatter against the test double.

mod common;

use std::path::{Path, PathBuf};

use common::Double;
use serde_json::json;
use win32::computestorage::{ComputeStorage, OsLayerOptions, OsLayerType};
use win32::scratch::ScratchFormatter;
use win32::virtdisk::{CreateOptions, OpenOptions, VirtDisk, attach_flags, open_flags};
use win32::{Error, Guid};

const NIL: &str = "00000000-0000-0000-0000-000000000000";

fn storage_type() -> serde_json::Value {
    json!({"device_id": 0, "vendor_id": NIL})
}

#[test]
fn creates_opens_attaches_and_detaches() {
    let d = Double::new();
    d.script(json!({"GetVirtualDiskPhysicalPath": {"path": r"\\.\PhysicalDrive3"}}));
    let vd = VirtDisk::load(&d.source()).unwrap();
    let id: Guid = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0".parse().unwrap();
    let options = CreateOptions {
        max_size: 10 << 30,
        block_size: 1 << 20,
        sector_size: 512,
        physical_sector_size: 4096,
        parent: Some(PathBuf::from(r"C:\s\blank-base.vhdx")),
        source: None,
        unique_id: id,
        open_flags: open_flags::CACHED_IO,
        flags: 0,
    };
    let disk = vd.create(Path::new(r"C:\s\blank.vhdx"), &options).unwrap();
    disk.attach(attach_flags::BYPASS_DEFAULT_ENCRYPTION_POLICY).unwrap();
    assert_eq!(disk.physical_path().unwrap(), r"\\.\PhysicalDrive3");
    disk.detach().unwrap();
    drop(disk);
    let opened = vd
        .open(
            Path::new(r"C:\s\sandbox.vhdx"),
            &OpenOptions { flags: open_flags::CACHED_IO, read_only: true, ..Default::default() },
        )
        .unwrap();
    drop(opened);

    assert_eq!(
        d.args_of("CreateVirtualDisk"),
        [json!({
            "storage_type": storage_type(), "path": r"C:\s\blank.vhdx", "access": 0, "security_null": true,
            "flags": 0, "provider_flags": 0, "overlapped_null": true, "handle": "disk1",
            "parameters": {
                "version": 2, "unique_id": id.to_string(), "maximum_size": 10u64 << 30,
                "block_size_in_bytes": 1 << 20, "sector_size_in_bytes": 512, "physical_sector_size_in_bytes": 4096,
                "parent_path": r"C:\s\blank-base.vhdx", "source_path": null, "open_flags": 8,
                "parent_storage_type": storage_type(), "source_storage_type": storage_type(), "resiliency_guid": NIL,
            },
        })]
    );
    assert_eq!(
        d.args_of("AttachVirtualDisk"),
        [json!({
            "disk": "disk1", "security_null": true, "flags": 0x20, "provider_flags": 0, "overlapped_null": true,
            "parameters": {"version": 2, "restricted_offset": 0, "restricted_length": 0},
        })]
    );
    assert_eq!(d.args_of("GetVirtualDiskPhysicalPath"), [json!({"disk": "disk1", "size_in_bytes": 520})]);
    assert_eq!(d.args_of("DetachVirtualDisk"), [json!({"disk": "disk1", "flags": 0, "provider_flags": 0})]);
    assert_eq!(
        d.args_of("OpenVirtualDisk"),
        [json!({
            "storage_type": storage_type(), "path": r"C:\s\sandbox.vhdx", "access": 0, "flags": 8, "handle": "disk2",
            "parameters": {"version": 2, "get_info_only": 0, "read_only": 1, "resiliency_guid": NIL},
        })]
    );
    assert_eq!(d.args_of("CloseHandle"), [json!({"handle": "disk1"}), json!({"handle": "disk2"})]);
    d.assert_covered("virtdisk.dll");
}

#[test]
fn physical_path_grows_its_buffer() {
    let d = Double::new();
    let long = format!(r"\\?\{}", "x".repeat(400));
    d.script(json!({"GetVirtualDiskPhysicalPath": {"path": long}}));
    let vd = VirtDisk::load(&d.source()).unwrap();
    let disk = vd.open(Path::new("a.vhdx"), &OpenOptions::default()).unwrap();
    assert_eq!(disk.physical_path().unwrap(), long);
    let sizes: Vec<_> = d.args_of("GetVirtualDiskPhysicalPath").iter().map(|a| a["size_in_bytes"].clone()).collect();
    assert_eq!(sizes, [json!(520), json!(810)]);
}

#[test]
fn win32_errors_are_typed() {
    let d = Double::new();
    d.script(json!({"CreateVirtualDisk": {"ret": 80}}));
    let vd = VirtDisk::load(&d.source()).unwrap();
    let err =
        vd.create(Path::new(r"C:\x.vhdx"), &CreateOptions { max_size: 1 << 30, ..Default::default() }).unwrap_err();
    assert_eq!(err.to_string(), r"CreateVirtualDisk (C:\x.vhdx): error 80 (ERROR_FILE_EXISTS: the file exists)");
    assert!(d.args_of("CloseHandle").is_empty(), "no handle to close after a failure");
}

#[test]
fn computestorage_calls() {
    let d = Double::new();
    let vd = VirtDisk::load(&d.source()).unwrap();
    let cs = ComputeStorage::load(&d.source()).unwrap();
    let disk = vd.open(Path::new(r"C:\l\uvm.vhdx"), &OpenOptions::default()).unwrap();
    cs.format_writable_layer_vhd(&disk).unwrap();
    cs.setup_base_os_layer(Path::new(r"C:\l"), None, &OsLayerOptions::new(OsLayerType::Container)).unwrap();
    let vm = OsLayerOptions { disable_ci_cache_optimization: true, ..OsLayerOptions::new(OsLayerType::Vm) };
    cs.setup_base_os_layer(Path::new(r"C:\l\UtilityVM"), Some(&disk), &vm).unwrap();
    let skip = OsLayerOptions { skip_update_bcd_for_boot: true, ..OsLayerOptions::new(OsLayerType::Container) };
    cs.setup_base_os_volume(Path::new(r"C:\l"), r"\\?\Volume{1}\", &skip).unwrap();

    assert_eq!(d.args_of("HcsFormatWritableLayerVhd"), [json!({"disk": "disk1"})]);
    assert_eq!(
        d.args_of("HcsSetupBaseOSLayer"),
        [
            json!({"layer": r"C:\l", "disk": null, "options": r#"{"Type":"Container"}"#}),
            json!({"layer": r"C:\l\UtilityVM", "disk": "disk1", "options": r#"{"Type":"Vm","DisableCiCacheOptimization":true}"#}),
        ]
    );
    assert_eq!(
        d.args_of("HcsSetupBaseOSVolume"),
        [
            json!({"layer": r"C:\l", "volume": r"\\?\Volume{1}\", "options": r#"{"Type":"Container","SkipUpdateBcdForBoot":true}"#})
        ]
    );
    d.assert_covered("computestorage.dll");
}

#[test]
fn scratch_template_is_containerds() {
    let d = Double::new();
    let formatter = ScratchFormatter::load(&d.source()).unwrap();
    formatter
        .create_template(Path::new(r"C:\root\blank-base.vhdx"), Path::new(r"C:\root\blank.vhdx"), 10 << 30)
        .unwrap();
    assert_eq!(
        d.names(),
        ["CreateVirtualDisk", "HcsFormatWritableLayerVhd", "CloseHandle", "CreateVirtualDisk", "CloseHandle"]
    );
    let created = d.args_of("CreateVirtualDisk");
    let base = &created[0]["parameters"];
    assert_eq!(
        (base["maximum_size"].clone(), base["block_size_in_bytes"].clone()),
        (json!(10u64 << 30), json!(1 << 20))
    );
    assert_eq!(base["parent_path"], json!(null));
    let diff = &created[1]["parameters"];
    assert_eq!(diff["parent_path"], json!(r"C:\root\blank-base.vhdx"));
    assert_eq!((diff["maximum_size"].clone(), diff["open_flags"].clone()), (json!(0), json!(8)));
    assert_eq!(d.args_of("HcsFormatWritableLayerVhd"), [json!({"disk": "disk1"})]);
    assert!(matches!(formatter.create_formatted(Path::new("z.vhdx"), 0), Err(Error::Argument { .. })));
}
