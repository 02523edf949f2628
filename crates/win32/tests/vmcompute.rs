//! vmcompute.dll against the test double.

mod common;

use std::path::{Path, PathBuf};

use common::Double;
use serde_json::json;
use win32::vmcompute::Vmcompute;

fn info() -> serde_json::Value {
    json!({"flavour": 1, "home_dir": ""})
}

#[test]
fn legacy_layer_calls() {
    let d = Double::new();
    d.script(json!({"GetLayerMountPath": {"mount_path": r"\\?\Volume{5f3c}\"}}));
    let vm = Vmcompute::load(&d.source()).unwrap();
    let layer = Path::new(r"C:\layers\sandbox-1");
    let parents = [PathBuf::from(r"C:\layers\app"), PathBuf::from(r"C:\layers\base")];
    let (app, base) = (vm.layer_id(&parents[0]).unwrap(), vm.layer_id(&parents[1]).unwrap());
    assert_ne!(app, base);
    vm.import_layer(layer, Path::new(r"C:\tmp\import"), &parents).unwrap();
    vm.export_layer(layer, Path::new(r"C:\tmp\export"), &parents).unwrap();
    vm.activate_layer(layer).unwrap();
    vm.prepare_layer(layer, &parents).unwrap();
    assert_eq!(vm.layer_mount_path(layer).unwrap(), r"\\?\Volume{5f3c}\");
    vm.unprepare_layer(layer).unwrap();
    vm.deactivate_layer(layer).unwrap();
    vm.destroy_layer(layer).unwrap();
    vm.process_base_image(Path::new(r"C:\layers\base")).unwrap();
    vm.process_utility_image(Path::new(r"C:\layers\base\UtilityVM")).unwrap();
    d.assert_covered("vmcompute.dll");

    let descriptors = json!([
        {"layer_id": app.to_string(), "flags": 0, "path": r"C:\layers\app"},
        {"layer_id": base.to_string(), "flags": 0, "path": r"C:\layers\base"},
    ]);
    let id = r"C:\layers\sandbox-1";
    assert_eq!(
        d.args_of("ImportLayer"),
        [json!({"info": info(), "id": id, "path": r"C:\tmp\import", "layers": descriptors})]
    );
    assert_eq!(
        d.args_of("ExportLayer"),
        [json!({"info": info(), "id": id, "path": r"C:\tmp\export", "layers": descriptors})]
    );
    assert_eq!(d.args_of("PrepareLayer"), [json!({"info": info(), "id": id, "layers": descriptors})]);
    for call in ["ActivateLayer", "UnprepareLayer", "DeactivateLayer", "DestroyLayer"] {
        assert_eq!(d.args_of(call), [json!({"info": info(), "id": id})], "{call}");
    }
    // GUIDs come from the folder names.
    let names: Vec<_> = d.args_of("NameToGuid").iter().map(|a| a["name"].clone()).collect();
    assert_eq!(names[..2], [json!("app"), json!("base")]);
    assert!(vm.layer_id(Path::new(r"C:\\")).is_err());
    assert_eq!(vm.layer_id(Path::new(r"C:\layers\app\")).unwrap(), app);
    // The size protocol: length first, then the text.
    assert_eq!(
        d.args_of("GetLayerMountPath"),
        [
            json!({"info": info(), "id": id, "length_in": 0, "buffer_null": true}),
            json!({"info": info(), "id": id, "length_in": 18, "buffer_null": false}),
        ]
    );
}

#[test]
fn no_parents_pass_an_empty_array() {
    let d = Double::new();
    let vm = Vmcompute::load(&d.source()).unwrap();
    vm.prepare_layer(Path::new(r"C:\l"), &[]).unwrap();
    assert_eq!(d.args_of("PrepareLayer")[0]["layers"], json!([]));
    assert_eq!(vm.layer_mount_path(Path::new(r"C:\l")).unwrap(), "");
    assert_eq!(d.args_of("GetLayerMountPath").len(), 1, "no second call for an empty path");
}

#[test]
fn base_layer_processing_runs_utility_vm_only_when_present() {
    let d = Double::new();
    let vm = Vmcompute::load(&d.source()).unwrap();
    vm.require_processing().unwrap();
    let dir = tempfile::tempdir().unwrap();
    vm.process_base_layer(dir.path()).unwrap();
    assert_eq!(d.names(), ["ProcessBaseImage"]);
    std::fs::create_dir(dir.path().join("UtilityVM")).unwrap();
    vm.process_base_layer(dir.path()).unwrap();
    let root = dir.path().to_str().unwrap();
    assert_eq!(d.args_of("ProcessBaseImage")[1], json!({"path": root}));
    assert_eq!(d.args_of("ProcessUtilityImage"), [json!({"path": dir.path().join("UtilityVM").to_str().unwrap()})]);
}

#[test]
fn failure_stops_before_the_utility_vm() {
    let d = Double::new();
    d.script(json!({"ProcessBaseImage": {"ret": 0x8000_4005u32 as i32}}));
    let vm = Vmcompute::load(&d.source()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("UtilityVM")).unwrap();
    let err = vm.process_base_layer(dir.path()).unwrap_err();
    assert!(err.to_string().starts_with("ProcessBaseImage ("), "{err}");
    assert!(err.to_string().ends_with("HRESULT 0x80004005 (E_FAIL: unspecified failure)"), "{err}");
    assert!(d.args_of("ProcessUtilityImage").is_empty());
}
