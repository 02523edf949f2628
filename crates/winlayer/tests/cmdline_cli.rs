//! `winlayer cmdline` and `winlayer version` as a user runs them.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn winlayer(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_winlayer"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    assert!(o.status.success(), "failed: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout.clone()).unwrap()
}

#[test]
fn compose_and_parse_round_trip() {
    let o = winlayer(&["cmdline", "compose", "--", r"C:\Program Files\app.exe", "-x", r#"a "b""#, "", r"C:\dir\"], "");
    let line = stdout(&o);
    assert_eq!(line, "\"C:\\Program Files\\app.exe\" -x \"a \\\"b\\\"\" \"\" C:\\dir\\\n");
    for dialect in ["c-runtime", "command-line-to-argv-w"] {
        let o = winlayer(&["cmdline", "parse", "--json", "--dialect", dialect, line.trim_end()], "");
        let argv: Vec<String> = serde_json::from_str(&stdout(&o)).unwrap();
        assert_eq!(argv, [r"C:\Program Files\app.exe", "-x", r#"a "b""#, "", r"C:\dir\"]);
    }
}

#[test]
fn escape_all_is_containerds_join() {
    let o = winlayer(&["cmdline", "compose", "--escape-all", "--", r#"odd"name"#, "x y"], "");
    assert_eq!(stdout(&o), "odd\\\"name \"x y\"\n");
}

#[test]
fn parse_text_escapes_control_characters() {
    let o = winlayer(&["cmdline", "parse", "p a\u{1b}[31mb \"\""], "");
    assert_eq!(stdout(&o), "0: p\n1: a\\u{1b}[31mb\n2: \n");
}

#[test]
fn refusals_are_errors_with_reasons() {
    let o = winlayer(&["cmdline", "compose", "--", "a\"b", "x"], "");
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no quoting can carry"));
    let o = winlayer(&["cmdline", "from-image", "-"], "{\"config\": {\"Env\": []}}");
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no command"));
    let o = winlayer(&["cmdline", "from-image", "-"], "[1, 2");
    assert!(String::from_utf8_lossy(&o.stderr).contains("not an image config"));
}

#[test]
fn from_image_follows_each_runtime() {
    let config = r#"{"architecture":"amd64","os":"windows","config":{"Entrypoint":["powershell -Command"],"Cmd":["Get-Date"],"ArgsEscaped":true}}"#;
    let o = winlayer(&["cmdline", "from-image", "-", "--", "Write-Host", "a b"], config);
    assert_eq!(stdout(&o), "powershell -Command Write-Host \"a b\"\n");
    let o = winlayer(&["cmdline", "from-image", "--runtime", "moby", "--json", "-", "--", "Write-Host", "a b"], config);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["line"], "\"powershell -Command\" Write-Host \"a b\"");
    assert_eq!(v["commandLine"], serde_json::Value::Null);
    assert_eq!(v["warnings"].as_array().unwrap().len(), 1);
    let o = winlayer(
        &["cmdline", "from-image", "--runtime", "cri", "--entrypoint", "cmd", "--entrypoint", "/c", "-"],
        config,
    );
    assert_eq!(stdout(&o), "cmd /c\n");
    // docker inspect's capitalised "Config" works too, and BuildKit's pitfall is reported.
    let inspect = r#"[{"Id":"x"}]"#;
    assert!(!winlayer(&["cmdline", "from-image", "-"], inspect).status.success());
    let inspect = r#"{"Config":{"Cmd":["C:\\Program Files\\a.exe","x"],"ArgsEscaped":true}}"#;
    let o = winlayer(&["cmdline", "from-image", "-"], inspect);
    assert_eq!(stdout(&o), "C:\\Program Files\\a.exe x\n");
    assert!(String::from_utf8_lossy(&o.stderr).contains("BuildKit"));
}

#[test]
fn version_says_plainly_where_it_runs() {
    let o = winlayer(&["version", "--json"], "");
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["winlayer"], env!("CARGO_PKG_VERSION"));
    assert_eq!(v["platform"], std::env::consts::OS);
    if cfg!(windows) {
        assert!(v["windows"]["build"].as_u64().unwrap() > 0, "{v}");
        let backends = v["windows"]["backends"].as_array().unwrap();
        assert_eq!(backends.len(), 8);
        // Under wine: no cimfs.dll, so each CIM capability names the missing DLL.
        for b in backends.iter().filter(|b| b["name"].as_str().unwrap().contains("CIM")) {
            assert!(b["unavailable"].as_str().is_some_and(|why| why.contains("cimfs.dll")), "{b}");
        }
    } else {
        assert_eq!(v["windows"], serde_json::Value::Null);
        let text = stdout(&winlayer(&["version"], ""));
        assert!(text.contains("not running on Windows"), "{text}");
    }
}
