//! The command-line edge-case table, tests/cases.json: vectors with the line they compose
//! to, and lines no composer writes with what each dialect makes of them. Shared with the
//! win32 crate's tests, which run it through Windows' own parsers under wine.
#![allow(dead_code)]

use serde::Deserialize;

#[derive(Deserialize)]
pub struct Cases {
    pub compose: Vec<ComposeCase>,
    pub parse: Vec<ParseCase>,
}

#[derive(Deserialize)]
pub struct ComposeCase {
    pub argv: Vec<String>,
    pub line: String,
    pub note: String,
}

#[derive(Deserialize)]
pub struct ParseCase {
    pub line: String,
    pub c_runtime: Vec<String>,
    pub command_line_to_argv_w: Vec<String>,
    pub note: String,
}

pub fn cases() -> Cases {
    serde_json::from_str(include_str!("../cases.json")).expect("cases.json parses")
}
