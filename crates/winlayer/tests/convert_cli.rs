//! `winlayer image convert` and `image verify-conversion` as a script drives them, on layouts:
//! the destination is required, the `--json` report carries each layer's converted and
//! source sizes (the converted one is the blob's), and verification exits 0 on an untouched
//! conversion, 1 on one with a changed byte and 2 when there is nothing to check.
#![cfg(unix)]

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::{Value, json};
use winlayer_oci::digest;

fn run(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_winlayer"))
        .args(args)
        .current_dir(dir)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .unwrap()
}

fn ok(args: &[&str], dir: &Path) -> Value {
    let out = run(args, dir);
    assert!(out.status.success(), "winlayer {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("winlayer {args:?}: not JSON ({e})"))
}

fn blob(layout: &Path, digest: &str) -> std::path::PathBuf {
    layout.join("blobs/sha256").join(digest.strip_prefix("sha256:").unwrap())
}

#[test]
fn convert_reports_sizes_and_verify_conversion_exits_by_outcome() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    fs::create_dir_all(d.join("tree/app")).unwrap();
    fs::write(d.join("tree/app/tool.exe"), vec![b'M'; 50_000]).unwrap();
    fs::create_dir(d.join("work")).unwrap();
    ok(&["image", "from-scratch", "tree", "--platform", "windows/amd64:10.0.20348.1", "-t", "oci:src:1", "--json"], d);

    // Neither -t nor --attach: a usage error naming both.
    let out = run(&["image", "convert", "oci:src:1", "--to", "cimfs"], d);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--tag") && err.contains("--attach"), "{err}");

    let work = ["--work-dir", "work", "--json"];
    let args = |extra: &[&'static str]| [&["image", "convert", "oci:src:1", "--to", "cimfs"], extra, &work].concat();
    let r = ok(&args(&["-t", "oci:out", "--attach"]), d);
    let layers = r["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1);
    let l = &layers[0];
    assert_eq!(
        fs::metadata(blob(&d.join("out"), l["digest"].as_str().unwrap())).unwrap().len(),
        l["size"].as_u64().unwrap()
    );
    let source_blob = fs::read(blob(&d.join("src"), l["source_digest"].as_str().unwrap())).unwrap();
    assert!(l["source_size"].as_u64().unwrap() > source_blob.len() as u64, "the uncompressed tar is larger: {l}");
    assert_eq!(
        r["destinations"],
        json!([{"name": "oci:out", "how": "tagged"}, {"name": "oci:src", "how": "referrer, through index.json (no name)"}])
    );
    assert_eq!(fs::read_dir(d.join("work")).unwrap().count(), 0, "work left behind");

    // Untouched: exit 0 (the source is in the other layout, so --source).
    let v = ok(&["image", "verify-conversion", "oci:out", "--source", "oci:src", "--work-dir", "work", "--json"], d);
    assert_eq!((v["ok"].clone(), v["manifest"].clone()), (json!(true), r["manifest"].clone()));

    // One byte changed, the manifest and index.json fixed up: exit 1, the layer named.
    let out_dir = d.join("out");
    let mut index: Value = serde_json::from_slice(&fs::read(out_dir.join("index.json")).unwrap()).unwrap();
    let mut m: Value =
        serde_json::from_slice(&fs::read(blob(&out_dir, index["manifests"][0]["digest"].as_str().unwrap())).unwrap())
            .unwrap();
    let mut bytes = fs::read(blob(&out_dir, l["digest"].as_str().unwrap())).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x10;
    let changed = digest::of(&bytes).to_string();
    fs::write(blob(&out_dir, &changed), &bytes).unwrap();
    m["layers"][0]["digest"] = json!(changed);
    let mb = serde_json::to_vec(&m).unwrap();
    let md = digest::of(&mb).to_string();
    fs::write(blob(&out_dir, &md), &mb).unwrap();
    index["manifests"][0]["digest"] = json!(md);
    index["manifests"][0]["size"] = json!(mb.len());
    fs::write(out_dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    let out = run(&["image", "verify-conversion", "oci:out", "--source", "oci:src", "--work-dir", "work"], d);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!(
            "layer 0 MISMATCH the image lists {changed}, converting the source gives {}",
            l["digest"].as_str().unwrap()
        )),
        "{text}"
    );
    assert!(text.contains("is NOT what converting"), "{text}");

    // Not a converted image: exit 2, said why.
    let out = run(&["image", "verify-conversion", "oci:src:1", "--work-dir", "work"], d);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("not a converted image"), "{err}");
}
