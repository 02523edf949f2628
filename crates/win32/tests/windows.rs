//! Checks that need Windows itself (run under wine by scripts/suites/win32.sh): the command-
//! line table through the real CommandLineToArgvW and through a C runtime's startup code, the
//! named pipe and its ACL, and the OS version of an unmanifested process.
#![cfg(windows)]
// Looking for wine's marker export goes through libloading.
#![allow(unsafe_code)]

use std::os::windows::io::AsRawHandle;
use std::os::windows::process::CommandExt;
use std::path::PathBuf;

use win32::Source;
use win32::pipe::PipeListener;
use win32::security::{PIPE_SDDL, Security};
use win32::shell::Shell;
use wincmdline::{Dialect, compose, parse};
use winlayer_core::security::SecurityDescriptor;

#[path = "../../wincmdline/tests/cases/mod.rs"]
mod cases;

use cases::cases;

#[test]
fn table_round_trips_through_command_line_to_argv_w() {
    let shell = Shell::load(&Source::System).unwrap();
    let cases = cases();
    for case in &cases.compose {
        let line = compose(&case.argv).unwrap();
        assert_eq!(line, case.line, "{}", case.note);
        assert_eq!(shell.command_line_to_argv(&line).unwrap(), case.argv, "{}: {line}", case.note);
    }
    for case in &cases.parse {
        let got = shell.command_line_to_argv(&case.line).unwrap();
        assert_eq!(got, case.command_line_to_argv_w, "{}: {}", case.note, case.line);
        assert_eq!(parse(&case.line, Dialect::CommandLineToArgvW), got, "{}", case.note);
    }
}

/// The C program scripts/win32/argv-echo.c, built with mingw (its path in WINLAYER_ARGV_ECHO).
fn argv_echo() -> PathBuf {
    let path = std::env::var_os("WINLAYER_ARGV_ECHO").expect(
        "WINLAYER_ARGV_ECHO must name argv-echo.exe (scripts/win32/argv-echo.c built with x86_64-w64-mingw32-gcc -municode)",
    );
    PathBuf::from(path)
}

#[test]
fn table_round_trips_through_a_c_runtime() {
    let echo = argv_echo();
    for case in cases().compose {
        // The program name is the echo tool's own; the rest of the line is the table's.
        let line = compose(&case.argv).unwrap();
        let rest = compose(&[&["x".to_string()], &case.argv[1..]].concat()).unwrap();
        let rest = rest.strip_prefix("x").unwrap().trim_start();
        let out = std::process::Command::new(&echo).raw_arg(rest).output().unwrap();
        assert!(out.status.success(), "{}", case.note);
        let args: Vec<String> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .skip(1)
            .map(|hex| {
                let units: Vec<u16> =
                    (0..hex.len() / 4).map(|i| u16::from_str_radix(&hex[4 * i..4 * i + 4], 16).unwrap()).collect();
                String::from_utf16(&units).unwrap()
            })
            .collect();
        assert_eq!(args, case.argv[1..], "{}: {line}", case.note);
    }
}

#[test]
fn unmanifested_processes_are_told_windows_8() {
    // This test binary has no manifest; winlayer.exe has one (checked by the suite).
    let v = win32::system::os_version(&Source::System).unwrap();
    assert_eq!((v.reported_to_process.major, v.reported_to_process.minor), (6, 2), "{v:?}");
    assert!(v.version.major >= 6, "{v:?}");
}

#[test]
fn pipe_serves_with_the_administrators_and_system_acl() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let name = format!(r"\\.\pipe\winlayer-test-{}", std::process::id());
        let mut listener = PipeListener::bind(&name).unwrap();
        // The descriptor Windows recorded is the one asked for.
        let security = Security::load(&Source::System).unwrap();
        let dacl = security.object_dacl(listener.pending().as_raw_handle() as usize).unwrap();
        assert_eq!(SecurityDescriptor::from_bytes(&dacl).unwrap().to_sddl(), PIPE_SDDL);
        // A second listener on the same name is refused (FILE_FLAG_FIRST_PIPE_INSTANCE) —
        // on Windows; wine 8 does not enforce the flag.
        if under_wine() {
            eprintln!("wine does not enforce FILE_FLAG_FIRST_PIPE_INSTANCE: squatting protection not checked");
        } else {
            assert!(PipeListener::bind(&name).is_err());
        }

        let client_name = name.clone();
        let client = tokio::spawn(async move {
            let mut pipe = tokio::net::windows::named_pipe::ClientOptions::new().open(&client_name).unwrap();
            pipe.write_all(b"ping").await.unwrap();
            let mut reply = [0u8; 4];
            pipe.read_exact(&mut reply).await.unwrap();
            reply
        });
        let mut server = listener.accept().await.unwrap();
        let mut request = [0u8; 4];
        server.read_exact(&mut request).await.unwrap();
        assert_eq!(&request, b"ping");
        server.write_all(b"pong").await.unwrap();
        assert_eq!(&client.await.unwrap(), b"pong");
        // The next instance exists with the same ACL.
        let dacl = security.object_dacl(listener.pending().as_raw_handle() as usize).unwrap();
        assert_eq!(SecurityDescriptor::from_bytes(&dacl).unwrap().to_sddl(), PIPE_SDDL);
    });
}

/// Whether this is wine (its ntdll exports `wine_get_version`).
fn under_wine() -> bool {
    // SAFETY: ntdll is loaded in every process; only a symbol's presence is checked.
    unsafe {
        let ntdll = libloading::Library::new("ntdll.dll").unwrap();
        ntdll.get::<unsafe extern "C" fn() -> *const i8>("wine_get_version").is_ok()
    }
}
