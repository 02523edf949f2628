//! Windows command lines.
//!
//! A Windows process receives one string, not an argument vector: the creator composes it and
//! the program splits it again, usually with the C runtime's startup code or with
//! `CommandLineToArgvW`. This crate does both halves in pure Rust:
//!
//! * [`compose`] turns an argument vector into the line `CreateProcess` takes, so that both
//!   parsers below give the vector back unchanged;
//! * [`parse`] splits a line exactly as the Microsoft C runtime (2008 and later) or
//!   `CommandLineToArgvW` does — they differ on `""` inside quotes and on quotes in the
//!   program name, and both are needed: programs built with the C runtime, Rust and Go use
//!   the first, `CommandLineToArgvW` users (and Go's `DecomposeCommandLine`) the second;
//! * [`escape_args`] is the join containerd, moby and hcsshim use when no ready-made line
//!   exists (Go's `EscapeArg` on every element, program included);
//! * [`image`] turns an image config's `Entrypoint`/`Cmd`/`ArgsEscaped` into the OCI
//!   `process.args` or `process.commandLine` containerd, its CRI plugin or moby produce.

use std::borrow::Cow;
use std::iter::{Peekable, repeat_n};
use std::str::Chars;

pub mod image;

/// The longest line `CreateProcess` accepts: 32,767 UTF-16 units including the final NUL.
pub const MAX_LINE_UNITS: usize = 32_766;

/// Which splitting rules to follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Dialect {
    /// The Microsoft C runtime's startup code since Visual C++ 2008 (UCRT included): inside
    /// quotes `""` is one literal quote and the quotes stay open; quotes in the program name
    /// toggle and are dropped.
    CRuntime,
    /// `shell32!CommandLineToArgvW`: inside quotes `""` is one literal quote and closes the
    /// quotes (three quotes in a row make one literal quote); a program name that starts
    /// with a quote ends at the next quote, whatever follows.
    CommandLineToArgvW,
}

/// Why an argument vector has no command line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ComposeError {
    /// The vector is empty.
    #[error("no program: an empty argument list has no command line")]
    NoProgram,
    /// An element contains NUL, which ends a Windows string.
    #[error("argument {index} contains NUL, which cannot be part of a Windows command line")]
    Nul {
        /// Position in the vector (0 is the program).
        index: usize,
    },
    /// The program name contains `"`: the program name has no escapes, so no quoting carries it.
    #[error("the program name {0:?} contains '\"', which no quoting can carry (the program name has no escapes)")]
    QuoteInProgram(String),
    /// The line is longer than `CreateProcess` accepts.
    #[error("the command line is {units} UTF-16 units long; CreateProcess accepts at most {MAX_LINE_UNITS}")]
    TooLong {
        /// The line's length in UTF-16 units.
        units: usize,
    },
}

/// Composes the command line of `args` (program first): the program quoted when it is empty
/// or holds a space or control character, every other argument escaped with [`escape_arg`].
/// Both dialects of [`parse`] return `args` from the result.
pub fn compose<S: AsRef<str>>(args: &[S]) -> Result<String, ComposeError> {
    let (program, rest) = args.split_first().ok_or(ComposeError::NoProgram)?;
    let mut line = quote_program(program.as_ref())?.into_owned();
    for (i, arg) in rest.iter().enumerate() {
        let arg = arg.as_ref();
        if arg.contains('\0') {
            return Err(ComposeError::Nul { index: i + 1 });
        }
        line.push(' ');
        line.push_str(&escape_arg(arg));
    }
    check_length(line)
}

/// Joins `args` the way containerd, moby and hcsshim do when a process has no ready-made
/// command line: Go's `EscapeArg` on every element, the program included, separated by
/// spaces. Unlike [`compose`], a program holding `"` is escaped rather than refused, which the
/// program-name rules then read differently.
pub fn escape_args<S: AsRef<str>>(args: &[S]) -> Result<String, ComposeError> {
    if args.is_empty() {
        return Err(ComposeError::NoProgram);
    }
    let mut line = String::new();
    for (i, arg) in args.iter().enumerate() {
        let arg = arg.as_ref();
        if arg.contains('\0') {
            return Err(ComposeError::Nul { index: i });
        }
        if i > 0 {
            line.push(' ');
        }
        line.push_str(&escape_arg(arg));
    }
    check_length(line)
}

fn check_length(line: String) -> Result<String, ComposeError> {
    let units = line.encode_utf16().count();
    if units > MAX_LINE_UNITS { Err(ComposeError::TooLong { units }) } else { Ok(line) }
}

/// The program name as it must appear first on a line: quoted when empty or when it holds a
/// space or any other character up to U+0020 (only space and tab end it, but quoting the
/// rest costs nothing and is what Go's `ComposeCommandLine` does).
pub fn quote_program(program: &str) -> Result<Cow<'_, str>, ComposeError> {
    if program.contains('\0') {
        return Err(ComposeError::Nul { index: 0 });
    }
    if program.contains('"') {
        return Err(ComposeError::QuoteInProgram(program.to_string()));
    }
    if program.is_empty() || program.chars().any(|c| c <= ' ') {
        Ok(Cow::Owned(format!("\"{program}\"")))
    } else {
        Ok(Cow::Borrowed(program))
    }
}

/// One argument (not the program) escaped so both parsers read it back: quoted only when it
/// is empty or holds a space or tab; each `"` gets a backslash, and the backslashes before a
/// `"` or before the closing quote are doubled. The same text Go's `syscall.EscapeArg` gives.
pub fn escape_arg(arg: &str) -> Cow<'_, str> {
    let quote = arg.is_empty() || arg.contains([' ', '\t']);
    if !quote && !arg.contains('"') {
        return Cow::Borrowed(arg);
    }
    let mut out = String::with_capacity(arg.len() + 2);
    if quote {
        out.push('"');
    }
    let mut backslashes = 0;
    for c in arg.chars() {
        match c {
            '\\' => backslashes += 1,
            '"' => {
                // The run so far is already out once; double it and escape the quote.
                out.extend(repeat_n('\\', backslashes + 1));
                backslashes = 0;
            }
            _ => backslashes = 0,
        }
        out.push(c);
    }
    if quote {
        out.extend(repeat_n('\\', backslashes));
        out.push('"');
    }
    Cow::Owned(out)
}

/// Splits `line` into arguments the way `dialect` does. The line ends at the first NUL, as a
/// Windows string does; an empty line has no arguments (`CommandLineToArgvW` would return
/// the calling program's own path instead).
pub fn parse(line: &str, dialect: Dialect) -> Vec<String> {
    let line = line.split('\0').next().unwrap_or_default();
    if line.is_empty() {
        return Vec::new();
    }
    let mut chars = line.chars().peekable();
    let mut args = vec![program_name(&mut chars, dialect)];
    loop {
        while chars.next_if(|c| is_blank(*c)).is_some() {}
        if chars.peek().is_none() {
            return args;
        }
        args.push(argument(&mut chars, dialect));
    }
}

fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// The program name: no escapes at all.
fn program_name(chars: &mut Peekable<Chars<'_>>, dialect: Dialect) -> String {
    let mut name = String::new();
    match dialect {
        Dialect::CRuntime => {
            let mut quoted = false;
            while let Some(c) = chars.next_if(|c| quoted || !is_blank(*c)) {
                if c == '"' { quoted = !quoted } else { name.push(c) }
            }
        }
        Dialect::CommandLineToArgvW => {
            if chars.next_if_eq(&'"').is_some() {
                name.extend(chars.by_ref().take_while(|c| *c != '"'));
            } else {
                while let Some(c) = chars.next_if(|c| !is_blank(*c)) {
                    name.push(c);
                }
            }
        }
    }
    name
}

/// One argument after the program: `2n` backslashes and a quote give `n` backslashes and a
/// quote toggle, `2n+1` give `n` backslashes and a literal quote, other backslashes are
/// literal; the dialects differ only in what a run of quotes does.
fn argument(chars: &mut Peekable<Chars<'_>>, dialect: Dialect) -> String {
    let mut out = String::new();
    // CommandLineToArgvW counts quotes: 0 outside, 1 inside, 2 just closed, 3 a literal quote.
    let mut quotes = 0u8;
    loop {
        let mut backslashes = 0;
        while chars.next_if_eq(&'\\').is_some() {
            backslashes += 1;
        }
        if chars.next_if_eq(&'"').is_none() {
            out.extend(repeat_n('\\', backslashes));
            match chars.next_if(|c| quotes == 1 || !is_blank(*c)) {
                Some(c) => out.push(c),
                None => return out,
            }
            continue;
        }
        out.extend(repeat_n('\\', backslashes / 2));
        let escaped = backslashes % 2 == 1;
        match dialect {
            Dialect::CRuntime => {
                if escaped || (quotes == 1 && chars.next_if_eq(&'"').is_some()) {
                    out.push('"');
                } else {
                    quotes ^= 1;
                }
            }
            Dialect::CommandLineToArgvW => {
                if escaped {
                    out.push('"');
                } else {
                    quotes += 1;
                }
                while chars.next_if_eq(&'"').is_some() {
                    quotes += 1;
                    if quotes == 3 {
                        out.push('"');
                        quotes = 0;
                    }
                }
                if quotes == 2 {
                    quotes = 0;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dialects_differ_where_documented() {
        // MicrosoftDocs/cpp-docs#3291: CommandLineToArgvW closes the quotes after `""`.
        assert_eq!(parse(r#"p a"b"" c d"#, Dialect::CommandLineToArgvW), ["p", "ab\"", "c", "d"]);
        assert_eq!(parse(r#"p a"b"" c d"#, Dialect::CRuntime), ["p", "ab\" c d"]);
        // Quotes in the program name: toggled by the C runtime, a hard end for shell32.
        assert_eq!(parse(r#""a b"c d"#, Dialect::CRuntime), ["a bc", "d"]);
        assert_eq!(parse(r#""a b"c d"#, Dialect::CommandLineToArgvW), ["a b", "c", "d"]);
        // Three quotes in a row inside quotes.
        assert_eq!(parse(r#"p "a"""b""#, Dialect::CommandLineToArgvW), ["p", "a\"b"]);
    }

    #[test]
    fn examples_from_the_c_runtime_documentation() {
        for (line, want) in [
            (r#"p "a b c" d e"#, &["a b c", "d", "e"][..]),
            (r#"p "ab\"c" "\\" d"#, &["ab\"c", "\\", "d"]),
            (r#"p a\\\b d"e f"g h"#, &[r"a\\\b", "de fg", "h"]),
            (r#"p a\\\"b c d"#, &[r#"a\"b"#, "c", "d"]),
            (r#"p a\\\\"b c" d e"#, &[r"a\\b c", "d", "e"]),
        ] {
            for dialect in [Dialect::CRuntime, Dialect::CommandLineToArgvW] {
                assert_eq!(&parse(line, dialect)[1..], want, "{line} {dialect:?}");
            }
        }
    }

    #[test]
    fn stops_at_nul_and_handles_unterminated_quotes() {
        assert_eq!(parse("a b\0c", Dialect::CRuntime), ["a", "b"]);
        assert_eq!(parse("", Dialect::CRuntime), Vec::<String>::new());
        assert_eq!(parse("p \"a b", Dialect::CRuntime), ["p", "a b"]);
        assert_eq!(parse("\"p q", Dialect::CommandLineToArgvW), ["p q"]);
        assert_eq!(parse("p a\\", Dialect::CommandLineToArgvW), ["p", "a\\"]);
    }

    #[test]
    fn compose_refuses_what_no_line_can_carry() {
        assert_eq!(compose::<&str>(&[]), Err(ComposeError::NoProgram));
        assert_eq!(compose(&["a\"b"]), Err(ComposeError::QuoteInProgram("a\"b".into())));
        assert_eq!(compose(&["p", "x", "a\0"]), Err(ComposeError::Nul { index: 2 }));
        let long = "x".repeat(MAX_LINE_UNITS);
        assert!(matches!(compose(&["p", &long]), Err(ComposeError::TooLong { units }) if units == MAX_LINE_UNITS + 2));
        assert!(compose(&["p", &long[..MAX_LINE_UNITS - 2]]).is_ok());
    }
}
