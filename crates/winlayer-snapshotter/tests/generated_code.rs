//! The gRPC code in src/proto/ is generated from the vendored protos in proto/ with a pure-Rust
//! protobuf compiler (protox) and tonic-prost-build, then committed, so building needs no
//! protoc. This test regenerates it and fails when the committed files differ; run it with
//! `WINLAYER_REGENERATE=1` to rewrite them after changing a proto or a generator version.

use std::fs;
use std::path::Path;

const GENERATED: [&str; 4] = [
    "containerd.services.content.v1.rs",
    "containerd.services.diff.v1.rs",
    "containerd.services.snapshots.v1.rs",
    "containerd.types.rs",
];

#[test]
fn committed_grpc_code_matches_the_vendored_protos() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let descriptors = protox::compile(
        ["services/snapshots/v1/snapshots.proto", "services/diff/v1/diff.proto", "services/content/v1/content.proto"],
        [crate_dir.join("proto")],
    )
    .expect("the vendored protos compile");
    let out = tempfile::tempdir().unwrap();
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .emit_rerun_if_changed(false)
        .out_dir(out.path())
        .compile_fds(descriptors)
        .expect("code generation succeeds");

    let regenerate = std::env::var_os("WINLAYER_REGENERATE").is_some();
    let mut stale = Vec::new();
    for name in GENERATED {
        let fresh = fs::read_to_string(out.path().join(name)).expect("generator wrote the file");
        let committed_path = crate_dir.join("src/proto").join(name);
        if regenerate {
            fs::write(&committed_path, &fresh).unwrap();
        } else if fs::read_to_string(&committed_path).ok().as_deref() != Some(fresh.as_str()) {
            stale.push(name);
        }
    }
    assert!(stale.is_empty(), "src/proto/{stale:?} differ from the protos: run with WINLAYER_REGENERATE=1");
}
