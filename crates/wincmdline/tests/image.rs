//! Entrypoint/Cmd/ArgsEscaped as containerd, its CRI plugin and moby turn them into a process.

use wincmdline::image::{ImageCommand, Overrides, Process, ResolveError, Runtime, resolve};

fn image(entrypoint: &[&str], cmd: &[&str], args_escaped: bool) -> ImageCommand {
    let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect();
    ImageCommand { entrypoint: v(entrypoint), cmd: v(cmd), args_escaped }
}

fn user(entrypoint: Option<&[&str]>, cmd: &[&str]) -> Overrides {
    let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<String>>();
    Overrides { entrypoint: entrypoint.map(v), cmd: v(cmd) }
}

fn line(p: &Process) -> String {
    p.line().unwrap()
}

#[test]
fn shell_form_from_the_classic_builder() {
    // moby's classic builder on Windows: one pre-escaped element, ArgsEscaped.
    let img = image(&[], &["cmd /S /C echo \"hi there\""], true);
    for runtime in [Runtime::Containerd, Runtime::Cri, Runtime::Moby] {
        let p = resolve(&img, &Overrides::default(), runtime).unwrap();
        assert_eq!(p.command_line.as_deref(), Some("cmd /S /C echo \"hi there\""), "{runtime:?}");
        assert!(p.args.is_empty() && p.warnings.is_empty(), "{runtime:?}");
    }
}

#[test]
fn exec_form_without_args_escaped_goes_through_args() {
    let img = image(&["C:\\Program Files\\app.exe"], &["--port", "80"], false);
    for runtime in [Runtime::Containerd, Runtime::Cri, Runtime::Moby] {
        let p = resolve(&img, &Overrides::default(), runtime).unwrap();
        assert_eq!(p.args, ["C:\\Program Files\\app.exe", "--port", "80"]);
        assert_eq!(line(&p), "\"C:\\Program Files\\app.exe\" --port 80");
    }
}

#[test]
fn buildkit_exec_form_with_args_escaped_is_flagged() {
    // BuildKit sets ArgsEscaped on an exec-form CMD: element 0 is used raw and splits.
    let img = image(&[], &["C:\\Program Files\\app.exe", "--port", "80"], true);
    for runtime in [Runtime::Containerd, Runtime::Cri, Runtime::Moby] {
        let p = resolve(&img, &Overrides::default(), runtime).unwrap();
        assert_eq!(p.command_line.as_deref(), Some("C:\\Program Files\\app.exe --port 80"), "{runtime:?}");
        assert_eq!(p.warnings.len(), 1, "{runtime:?}");
        assert!(p.warnings[0].contains("BuildKit"), "{}", p.warnings[0]);
    }
    // Without a space in the program, nothing is lost and nothing is said.
    let img = image(&[], &["app.exe", "a b"], true);
    let p = resolve(&img, &Overrides::default(), Runtime::Containerd).unwrap();
    assert_eq!((line(&p), p.warnings.len()), ("app.exe \"a b\"".to_string(), 0));
}

#[test]
fn entrypoint_plus_user_args() {
    let img = image(&["powershell -Command"], &["Get-Date"], true);
    // containerd: the entrypoint stays raw, the user's arguments are escaped.
    let p = resolve(&img, &user(None, &["Write-Host", "a b"]), Runtime::Containerd).unwrap();
    assert_eq!(p.command_line.as_deref(), Some("powershell -Command Write-Host \"a b\""));
    let p = resolve(&img, &user(None, &["Write-Host", "a b"]), Runtime::Cri).unwrap();
    assert_eq!(p.command_line.as_deref(), Some("powershell -Command Write-Host \"a b\""));
    // moby drops ArgsEscaped once arguments are given: the entrypoint is quoted whole.
    let p = resolve(&img, &user(None, &["Write-Host", "a b"]), Runtime::Moby).unwrap();
    assert_eq!(p.args, ["powershell -Command", "Write-Host", "a b"]);
    assert_eq!(line(&p), "\"powershell -Command\" Write-Host \"a b\"");
    assert!(p.warnings[0].contains("ignored once arguments are given"), "{:?}", p.warnings);
}

#[test]
fn user_args_override_an_escaped_cmd() {
    let img = image(&[], &["cmd /S /C dir"], true);
    // containerd: the command no longer comes from the image, so everything is escaped as args.
    let p = resolve(&img, &user(None, &["ping", "-n", "1", "localhost"]), Runtime::Containerd).unwrap();
    assert_eq!(p.args, ["ping", "-n", "1", "localhost"]);
    assert_eq!(p.command_line, None);
    // CRI keeps a command line, but escapes element 0 because it came from the user.
    let p = resolve(&img, &user(None, &["C:\\my tools\\ping.exe", "x"]), Runtime::Cri).unwrap();
    assert_eq!(p.command_line.as_deref(), Some("\"C:\\my tools\\ping.exe\" x"));
    let p = resolve(&img, &user(None, &["ping", "x"]), Runtime::Moby).unwrap();
    assert_eq!(p.args, ["ping", "x"]);
}

#[test]
fn entrypoint_overrides() {
    let img = image(&["app.exe"], &["--default"], true);
    assert!(matches!(
        resolve(&img, &user(Some(&["other.exe"]), &[]), Runtime::Containerd),
        Err(ResolveError::Unsupported(_))
    ));
    // A user entrypoint drops the image's Cmd in CRI and moby alike.
    for runtime in [Runtime::Cri, Runtime::Moby] {
        let p = resolve(&img, &user(Some(&["other.exe", "a b"]), &[]), runtime).unwrap();
        assert_eq!(line(&p), "other.exe \"a b\"", "{runtime:?}");
    }
    // Clearing the entrypoint leaves the image's Cmd.
    let p = resolve(&img, &user(Some(&[]), &[]), Runtime::Moby).unwrap();
    assert_eq!(line(&p), "--default");
}

#[test]
fn nothing_to_run() {
    for runtime in [Runtime::Containerd, Runtime::Cri, Runtime::Moby] {
        assert_eq!(resolve(&image(&[], &[], true), &Overrides::default(), runtime), Err(ResolveError::NoCommand));
    }
}

#[test]
fn image_config_json_reads_nulls_and_absences() {
    let c: ImageCommand = serde_json::from_str(r#"{"Entrypoint":null,"Cmd":["a"],"ArgsEscaped":null}"#).unwrap();
    assert_eq!(c, image(&[], &["a"], false));
    let c: ImageCommand = serde_json::from_str(r#"{"ArgsEscaped":true,"Env":["X=1"]}"#).unwrap();
    assert_eq!(c, image(&[], &[], true));
    assert!(serde_json::from_str::<ImageCommand>(r#"{"Cmd":"not a list"}"#).is_err());
}
