//! tar -> CIM -> tar gives back the canonical form of the input.

mod common;

use common::*;

#[test]
fn generated_small_layer_round_trips() {
    let t = tempfile::tempdir().unwrap();
    let tar = gen_layer(&t.path().join("small.tar"), &["--profile", "small", "--seed", "7"]);
    create(&tar, &t.path().join("small.cim"), None);
    let (want, got) = (canonical(&tar), export(&t.path().join("small.cim")));
    if want != got {
        assert_eq!(listing(&want), listing(&got));
    }
    assert!(want == got, "canonical tars differ in bytes");
}
