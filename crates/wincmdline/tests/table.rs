//! The edge-case table (tests/cases.json, shared with the win32 crate's tests under wine):
//! every row composes to its expected line and parses back in both dialects; lines no
//! composer writes are pinned per dialect; and any vector round-trips.

mod cases;

use cases::cases;
use proptest::prelude::*;
use wincmdline::{Dialect, compose, escape_args, parse};

const DIALECTS: [Dialect; 2] = [Dialect::CRuntime, Dialect::CommandLineToArgvW];

#[test]
fn table_composes_and_round_trips() {
    let cases = cases();
    assert!(cases.compose.len() >= 30, "the table keeps at least 30 rows");
    for case in &cases.compose {
        let line = compose(&case.argv).unwrap_or_else(|e| panic!("{}: {e}", case.note));
        assert_eq!(line, case.line, "{}", case.note);
        for dialect in DIALECTS {
            assert_eq!(parse(&line, dialect), case.argv, "{} ({dialect:?})", case.note);
        }
    }
}

#[test]
fn table_pins_each_dialect() {
    for case in cases().parse {
        assert_eq!(parse(&case.line, Dialect::CRuntime), case.c_runtime, "{}", case.note);
        assert_eq!(parse(&case.line, Dialect::CommandLineToArgvW), case.command_line_to_argv_w, "{}", case.note);
    }
}

#[test]
fn escape_args_matches_go_escape_arg_joins() {
    // Go's EscapeArg escapes the program like any argument (hcsshim's join).
    assert_eq!(escape_args(&["C:\\Program Files\\a.exe", "x y", ""]).unwrap(), r#""C:\Program Files\a.exe" "x y" """#);
    assert_eq!(escape_args(&["a\"b"]).unwrap(), r#"a\"b"#);
}

fn argument() -> impl Strategy<Value = String> {
    // Weighted toward the characters the rules care about.
    let ch = prop_oneof![
        4 => Just('\\'),
        4 => Just('"'),
        3 => Just(' '),
        1 => Just('\t'),
        1 => Just('\n'),
        4 => Just('a'),
        1 => Just('ü'),
        1 => Just('😀'),
        1 => any::<char>().prop_filter("no NUL", |c| *c != '\0'),
    ];
    prop::collection::vec(ch, 0..12).prop_map(|v| v.into_iter().collect())
}

fn program() -> impl Strategy<Value = String> {
    argument().prop_map(|s| s.replace('"', ""))
}

proptest! {
    #[test]
    fn any_vector_round_trips(program in program(), args in prop::collection::vec(argument(), 0..6)) {
        let argv: Vec<String> = std::iter::once(program).chain(args).collect();
        let line = compose(&argv).unwrap();
        for dialect in DIALECTS {
            prop_assert_eq!(parse(&line, dialect), argv.clone());
        }
    }

    #[test]
    fn parsing_is_total_and_stable(line in "[ \t\"\\\\ab\u{fc}]{0,24}") {
        // Whatever a line holds, a parsed vector composes into a line that parses the same.
        for dialect in DIALECTS {
            let argv = parse(&line, dialect);
            if let Some(program) = argv.first() && !program.contains('"') {
                let again = compose(&argv).unwrap();
                prop_assert_eq!(parse(&again, dialect), argv);
            }
        }
    }
}
