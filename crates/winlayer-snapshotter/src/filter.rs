//! containerd's filter syntax (`filters` package), as List/Walk accept it.
//!
//! ```text
//! selectors := selector ("," selector)*        all must match
//! selector  := fieldpath [operator value]      no operator: the field is present
//! fieldpath := field ("." field)*
//! field     := quoted | [A-Za-z0-9_]+
//! operator  := "==" | "!=" | "~="              ~= is a regular expression
//! value     := quoted | [^\s,]+
//! quoted    := "…" with Go escapes; /…/ and |…| too after ~=
//! ```
//!
//! Several filter strings are OR-ed; none (or only empty ones) match everything. The scanner
//! follows containerd's token by token, so the same strings are accepted and refused, with an
//! error that shows where the input went wrong.

use crate::error::{Error, Result};
use crate::snapshot::{Info, Kind};

/// A parsed set of filter strings: matches when any of them matches.
#[derive(Debug, Clone)]
pub struct Filters(Vec<Vec<Selector>>);

#[derive(Debug, Clone)]
struct Selector {
    /// Bytes: a quoted field may hold any byte, as in Go.
    fieldpath: Vec<Vec<u8>>,
    test: Test,
}

#[derive(Debug, Clone)]
enum Test {
    Present,
    Equal(Vec<u8>),
    NotEqual(Vec<u8>),
    /// `None` when the expression does not compile: containerd then matches nothing.
    Matches(Option<regex::bytes::Regex>),
}

/// Regular expressions larger than this fail to compile (and so match nothing) instead of
/// taking memory and time from the daemon.
const REGEX_SIZE_LIMIT: usize = 32 << 20;

impl Filters {
    /// Parses containerd filter strings. A bad one is an `InvalidArgument` error.
    pub fn parse<S: AsRef<str>>(filters: &[S]) -> Result<Filters> {
        let mut parsed = Vec::new();
        for filter in filters {
            let filter = filter.as_ref();
            if filter.is_empty() {
                // containerd's `Always`: one empty filter matches everything.
                parsed.push(Vec::new());
                continue;
            }
            let selectors = Parser { scanner: Scanner::new(filter) }
                .selectors()
                .map_err(|e| Error::invalid_argument(format!("filters: {e}")))?;
            parsed.push(selectors);
        }
        Ok(Filters(parsed))
    }

    /// Whether `info` passes.
    pub fn matches(&self, info: &Info) -> bool {
        self.0.is_empty() || self.0.iter().any(|all| all.iter().all(|s| s.matches(info)))
    }
}

impl Selector {
    fn matches(&self, info: &Info) -> bool {
        let field = field(info, &self.fieldpath);
        let value = field.unwrap_or("").as_bytes();
        match &self.test {
            Test::Present => field.is_some(),
            Test::Equal(want) => field.is_some() && value == want.as_slice(),
            // containerd compares even an absent field, read as "".
            Test::NotEqual(want) => value != want.as_slice(),
            Test::Matches(re) => re.as_ref().is_some_and(|re| re.is_match(value)),
        }
    }
}

/// Compiles a `~=` expression with Go's meaning: the pattern is first rewritten where Go's
/// `regexp` reads it differently from Rust's (see [`go_to_rust_regex`]), then refused (so
/// matching nothing, as containerd does) where Go refuses what Rust accepts: stacked
/// repetition operators (`a**`), repeat counts above 1000, and nested counted repeats whose
/// counts multiply to more than 1000.
fn compile_like_go(pattern: &str) -> Option<regex::bytes::Regex> {
    /// `budgets`: for every enclosing `{…}` repeat, how many copies of what it repeats Go
    /// still allows (its `repeatIsValid`: nested repeat counts multiply to at most 1000).
    fn go_accepts(ast: &regex_syntax::ast::Ast, budgets: &[u32]) -> bool {
        use regex_syntax::ast::{Ast, RepetitionKind, RepetitionRange};
        match ast {
            Ast::Repetition(r) => {
                let (min, max) = match &r.op.kind {
                    RepetitionKind::Range(RepetitionRange::Exactly(n)) => (*n, Some(*n)),
                    RepetitionKind::Range(RepetitionRange::AtLeast(n)) => (*n, None),
                    RepetitionKind::Range(RepetitionRange::Bounded(m, n)) => (*m, Some(*n)),
                    // `*`, `+`, `?` are not counted repeats in Go.
                    _ => return !matches!(*r.ast, Ast::Repetition(_)) && go_accepts(&r.ast, budgets),
                };
                if min > 1000 || max.is_some_and(|m| m > 1000) || matches!(*r.ast, Ast::Repetition(_)) {
                    return false;
                }
                let copies = max.unwrap_or(min);
                let mut inner = Vec::with_capacity(budgets.len() + 1);
                for &budget in budgets {
                    match copies {
                        0 => {} // `{0}`: nothing below counts for this chain
                        c if c > budget => return false,
                        c => inner.push(budget / c),
                    }
                }
                if (min >= 2 || max.is_some_and(|m| m >= 2)) && copies > 0 {
                    inner.push(1000 / copies);
                }
                go_accepts(&r.ast, &inner)
            }
            Ast::Group(g) => go_accepts(&g.ast, budgets),
            Ast::Alternation(a) => a.asts.iter().all(|a| go_accepts(a, budgets)),
            Ast::Concat(c) => c.asts.iter().all(|a| go_accepts(a, budgets)),
            _ => true,
        }
    }
    let pattern = go_to_rust_regex(pattern);
    let ast = regex_syntax::ast::parse::Parser::new().parse(&pattern).ok()?;
    if !go_accepts(&ast, &[]) {
        return None;
    }
    regex::bytes::RegexBuilder::new(&pattern).size_limit(REGEX_SIZE_LIMIT).build().ok()
}

/// Rewrites a Go (RE2) pattern where Rust's `regex` reads the same text differently:
/// * inside a character class, `[` is literal in Go (except `[:name:]`) but opens a nested
///   class in Rust, and `&&`, `--`, `~~` are literal in Go but set operations in Rust;
/// * `{` that does not start a repeat Go accepts (`{n}`, `{n,}`, `{n,m}` with no leading
///   zeros) is a literal in Go, while Rust may read it as a repeat (`{02}`) or refuse it;
/// * `\Q…\E` quotes literally in Go and is unknown to Rust.
fn go_to_rust_regex(pattern: &str) -> String {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut i = 0;
    let literal = |out: &mut String, c: char| {
        if regex_syntax::is_meta_character(c) {
            out.push('\\');
        }
        out.push(c);
    };
    while i < chars.len() {
        match chars[i] {
            '\\' if chars.get(i + 1) == Some(&'Q') => {
                i += 2;
                while i < chars.len() && !(chars[i] == '\\' && chars.get(i + 1) == Some(&'E')) {
                    literal(&mut out, chars[i]);
                    i += 1;
                }
                i += 2;
            }
            '\\' => {
                out.extend(chars[i..(i + 2).min(chars.len())].iter());
                i += 2;
            }
            '[' => {
                out.push('[');
                i += 1;
                if chars.get(i) == Some(&'^') {
                    out.push('^');
                    i += 1;
                }
                // A `]` right after the opening is a member, in both dialects.
                if chars.get(i) == Some(&']') {
                    out.push_str("\\]");
                    i += 1;
                }
                while i < chars.len() && chars[i] != ']' {
                    let c = chars[i];
                    if c == '\\' {
                        out.extend(chars[i..(i + 2).min(chars.len())].iter());
                        i += 2;
                        continue;
                    }
                    if c == '[' && chars.get(i + 1) == Some(&':') {
                        // A POSIX class `[:alpha:]`: copied whole when it closes.
                        if let Some(end) =
                            (i + 2..chars.len().saturating_sub(1)).find(|&j| chars[j] == ':' && chars[j + 1] == ']')
                        {
                            out.extend(chars[i..=end + 1].iter());
                            i = end + 2;
                            continue;
                        }
                    }
                    if matches!(c, '[' | '&' | '-' | '~') && (c == '[' || chars.get(i + 1) == Some(&c)) {
                        out.push('\\');
                    }
                    out.push(c);
                    i += 1;
                }
                if i < chars.len() {
                    out.push(']');
                    i += 1;
                }
            }
            '{' => {
                let rest: String = chars[i..].iter().take(24).collect();
                match go_repeat_len(&rest) {
                    Some(len) => {
                        out.extend(chars[i..i + len].iter());
                        i += len;
                    }
                    None => {
                        out.push_str("\\{");
                        i += 1;
                    }
                }
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// The length of a repeat `{n}`, `{n,}` or `{n,m}` as Go's parser accepts it at the start of
/// `s` (decimal numbers without leading zeros), or `None` when Go reads `{` as a literal.
fn go_repeat_len(s: &str) -> Option<usize> {
    let number = |t: &str| -> Option<usize> {
        let digits = t.bytes().take_while(u8::is_ascii_digit).count();
        (digits > 0 && (digits == 1 || !t.starts_with('0'))).then_some(digits)
    };
    let mut at = 1;
    at += number(s.get(at..)?)?;
    if s[at..].starts_with(',') {
        at += 1;
        if !s[at..].starts_with('}') {
            at += number(&s[at..])?;
        }
    }
    s[at..].starts_with('}').then_some(at + 1)
}

/// containerd's snapshot adaptor: kind, name, parent (always present) and labels.
fn field<'a>(info: &'a Info, path: &[Vec<u8>]) -> Option<&'a str> {
    match path.first()?.as_slice() {
        b"kind" => match info.kind {
            Kind::Active => Some("active"),
            Kind::View => Some("view"),
            Kind::Committed => Some("committed"),
        },
        b"name" => Some(&info.name),
        b"parent" => Some(&info.parent),
        b"labels" if !info.labels.is_empty() => {
            let key = path[1..].join(&b'.');
            // A key that is not UTF-8 names no label.
            info.labels.get(std::str::from_utf8(&key).ok()?).map(String::as_str)
        }
        _ => None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Eof,
    Quoted,
    Value,
    Field,
    Separator,
    Operator,
    Illegal,
    Other(char),
}

/// containerd's filter scanner. Positions are byte offsets.
struct Scanner<'a> {
    input: &'a str,
    /// Start of the current character.
    pos: usize,
    /// End of the current character.
    ppos: usize,
    /// The next word is a value (we are right after an operator).
    value: bool,
    err: Option<&'static str>,
}

/// `None` stands for the end of the input, `Some('\0')` for an illegal character.
impl<'a> Scanner<'a> {
    fn new(input: &'a str) -> Self {
        Scanner { input, pos: 0, ppos: 0, value: false, err: None }
    }

    fn next(&mut self) -> Option<char> {
        let c = self.input[self.ppos..].chars().next()?;
        self.pos = self.ppos;
        self.ppos += c.len_utf8();
        // Go decodes U+FFFD as its "rune error"; both it and NUL are illegal.
        match c {
            '\0' => self.error("unexpected null"),
            '\u{fffd}' => self.error("rune error"),
            _ => {}
        }
        Some(c)
    }

    fn peek(&mut self) -> Option<char> {
        let (pos, ppos) = (self.pos, self.ppos);
        let c = self.next();
        (self.pos, self.ppos) = (pos, ppos);
        c
    }

    fn error(&mut self, msg: &'static str) {
        self.err.get_or_insert(msg);
    }

    /// The next token, its start and its text.
    fn scan(&mut self) -> (usize, Token, &'a str) {
        loop {
            let Some(c) = self.next() else {
                return (self.input.len(), Token::Eof, "");
            };
            let pos = self.pos;
            let token = match c {
                c if is_illegal(c) => return (pos, Token::Illegal, ""),
                '/' | '|' | '"' => {
                    if self.scan_quoted(c) {
                        Token::Quoted
                    } else {
                        Token::Illegal
                    }
                }
                ',' | '.' => {
                    self.value = false;
                    Token::Separator
                }
                '=' | '!' | '~' => {
                    while matches!(self.peek(), Some('=' | '!' | '~')) {
                        self.next();
                    }
                    self.value = true;
                    Token::Operator
                }
                c if c.is_whitespace() => continue,
                _ if self.value => {
                    while self.peek().is_some_and(is_value_char) {
                        self.next();
                    }
                    self.value = false;
                    Token::Value
                }
                c if is_field_char(c) => {
                    while self.peek().is_some_and(is_field_char) {
                        self.next();
                    }
                    Token::Field
                }
                c => return (self.pos, Token::Other(c), ""),
            };
            return (pos, token, &self.input[pos..self.ppos]);
        }
    }

    /// Consumes a quoted literal up to its closing `quote`, checking escapes.
    fn scan_quoted(&mut self, quote: char) -> bool {
        let mut legal = true;
        let mut c = self.next();
        while c != Some(quote) {
            match c {
                None | Some('\n') => {
                    self.error("quoted literal not terminated");
                    return false;
                }
                Some(c) if is_illegal(c) => {
                    self.error("quoted literal not terminated");
                    return false;
                }
                Some('\\') => {
                    let (next, ok) = self.scan_escape(quote);
                    legal &= ok;
                    c = next;
                }
                Some(_) => c = self.next(),
            }
        }
        legal
    }

    fn scan_escape(&mut self, quote: char) -> (Option<char>, bool) {
        match self.next() {
            Some('a' | 'b' | 'f' | 'n' | 'r' | 't' | 'v' | '\\') => (self.next(), true),
            Some(c) if c == quote => (self.next(), true),
            Some(c @ '0'..='7') => self.scan_digits(Some(c), 8, 3),
            Some('x') => {
                let c = self.next();
                self.scan_digits(c, 16, 2)
            }
            Some('u') => {
                let c = self.next();
                self.scan_digits(c, 16, 4)
            }
            Some('U') => {
                let c = self.next();
                self.scan_digits(c, 16, 8)
            }
            c => {
                self.error("illegal escape sequence");
                (c, false)
            }
        }
    }

    fn scan_digits(&mut self, mut c: Option<char>, base: u32, mut n: usize) -> (Option<char>, bool) {
        while n > 0 && c.and_then(|c| c.to_digit(16)).is_some_and(|d| d < base) {
            c = self.next();
            n -= 1;
        }
        if n > 0 {
            self.error("illegal numeric escape sequence");
            return (c, false);
        }
        (c, true)
    }
}

/// Characters Go's scanner turns into its illegal token.
fn is_illegal(c: char) -> bool {
    c == '\0' || c == '\u{fffd}'
}

fn is_field_char(c: char) -> bool {
    c == '_' || c.is_ascii_alphanumeric()
}

/// Go's `isValueRune`: graphic characters (`unicode.IsGraphic`: letters, marks, numbers,
/// punctuation, symbols, spaces) other than the comma and white space. Unicode versions may
/// differ for characters assigned after Go 1.19's Unicode 13.
fn is_value_char(c: char) -> bool {
    static GRAPHIC: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"^[\p{L}\p{M}\p{N}\p{P}\p{S}\p{Zs}]$").expect("a valid expression")
    });
    if c.is_ascii() {
        return c.is_ascii_graphic() && c != ',';
    }
    let mut buf = [0; 4];
    !c.is_whitespace() && !is_illegal(c) && GRAPHIC.is_match(c.encode_utf8(&mut buf))
}

struct Parser<'a> {
    scanner: Scanner<'a>,
}

impl Parser<'_> {
    fn error(&self, pos: usize, msg: impl std::fmt::Display) -> String {
        let input = self.scanner.input;
        match input[pos.min(input.len())..].chars().next() {
            Some(c) => {
                let end = pos + c.len_utf8();
                format!("parse error: [{} >|{}|< {}]: {msg}", &input[..pos], &input[pos..end], &input[end..])
            }
            None => format!("parse error: [{input}]: {msg}"),
        }
    }

    fn scanner_error(&self, pos: usize) -> String {
        self.error(pos, self.scanner.err.unwrap_or("illegal input"))
    }

    fn selectors(&mut self) -> Result<Vec<Selector>, String> {
        let mut all = vec![self.selector()?];
        loop {
            match self.scanner.peek() {
                Some(',') => {
                    self.scanner.scan();
                    all.push(self.selector()?);
                }
                None => return Ok(all),
                Some(c) => {
                    let pos = self.scanner.ppos;
                    return Err(self.error(pos, format!("unexpected input: {c}")));
                }
            }
        }
    }

    fn selector(&mut self) -> Result<Selector, String> {
        let fieldpath = self.fieldpath()?;
        if matches!(self.scanner.peek(), None | Some(',')) {
            return Ok(Selector { fieldpath, test: Test::Present });
        }
        let (pos, token, op) = self.scanner.scan();
        let op = match token {
            Token::Operator if matches!(op, "==" | "!=" | "~=") => op,
            Token::Operator => return Err(self.error(pos, format!("unsupported operator {op:?}"))),
            Token::Illegal => return Err(self.scanner_error(pos)),
            _ => return Err(self.error(pos, r#"expected an operator ("=="|"!="|"~=")"#)),
        };
        let value = self.value(op == "~=")?;
        let test = match op {
            "==" => Test::Equal(value),
            "!=" => Test::NotEqual(value),
            _ => Test::Matches(std::str::from_utf8(&value).ok().and_then(compile_like_go)),
        };
        Ok(Selector { fieldpath, test })
    }

    fn fieldpath(&mut self) -> Result<Vec<Vec<u8>>, String> {
        let mut path = vec![self.field()?];
        while self.scanner.peek() == Some('.') {
            self.scanner.scan();
            path.push(self.field()?);
        }
        Ok(path)
    }

    fn field(&mut self) -> Result<Vec<u8>, String> {
        let (pos, token, text) = self.scanner.scan();
        match token {
            Token::Field => Ok(text.as_bytes().to_vec()),
            Token::Quoted => self.unquote(pos, text, false),
            Token::Illegal => Err(self.scanner_error(pos)),
            _ => Err(self.error(pos, "expected field or quoted")),
        }
    }

    fn value(&mut self, alternative_quotes: bool) -> Result<Vec<u8>, String> {
        let (pos, token, text) = self.scanner.scan();
        match token {
            Token::Value | Token::Field => Ok(text.as_bytes().to_vec()),
            Token::Quoted => self.unquote(pos, text, alternative_quotes),
            Token::Illegal => Err(self.scanner_error(pos)),
            Token::Eof => Err(self.error(pos, "unexpected EOF")),
            _ => Err(self.error(pos, "expected value or quoted")),
        }
    }

    fn unquote(&self, pos: usize, text: &str, alternative_quotes: bool) -> Result<Vec<u8>, String> {
        if !alternative_quotes && !text.starts_with('"') {
            return Err(self.error(pos, "invalid quote encountered"));
        }
        unquote(text).ok_or_else(|| self.error(pos, "unquoting failed: quote syntax error"))
    }
}

/// Go's `strconv.Unquote` for `"…"`, `/…/` and `|…|` literals. Bytes, because an octal or
/// `\x` escape may produce any byte.
fn unquote(text: &str) -> Option<Vec<u8>> {
    let quote = text.chars().next()?;
    let inner = text.strip_prefix(quote)?.strip_suffix(quote)?;
    if inner.contains('\n') {
        return None;
    }
    let mut out = Vec::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == quote {
            return None;
        }
        if c != '\\' {
            let mut buf = [0; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        let escape = chars.next()?;
        let mut hex =
            |n: usize| -> Option<u32> { (0..n).try_fold(0u32, |v, _| Some(v << 4 | chars.next()?.to_digit(16)?)) };
        match escape {
            'a' => out.push(0x07),
            'b' => out.push(0x08),
            'f' => out.push(0x0c),
            'n' => out.push(b'\n'),
            'r' => out.push(b'\r'),
            't' => out.push(b'\t'),
            'v' => out.push(0x0b),
            '\\' => out.push(b'\\'),
            'x' => out.push(hex(2)? as u8),
            'u' | 'U' => {
                let v = hex(if escape == 'u' { 4 } else { 8 })?;
                if v > 0x10ffff {
                    return None;
                }
                // Go encodes a surrogate as U+FFFD.
                let c = char::from_u32(v).unwrap_or('\u{fffd}');
                let mut buf = [0; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
            '0'..='7' => {
                let mut v = escape as u32 - '0' as u32;
                for _ in 0..2 {
                    v = v << 3 | chars.next()?.to_digit(8)?;
                }
                out.push(u8::try_from(v).ok()?);
            }
            '"' | '/' | '|' if escape == quote => out.push(escape as u8),
            _ => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::Time;
    use std::collections::BTreeMap;

    fn info(name: &str, parent: &str, kind: Kind, labels: &[(&str, &str)]) -> Info {
        Info {
            name: name.into(),
            parent: parent.into(),
            kind,
            created: Time::default(),
            updated: Time::default(),
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(),
        }
    }

    fn names(filters: &[&str], infos: &[Info]) -> Vec<String> {
        let f = Filters::parse(filters).unwrap();
        infos.iter().filter(|i| f.matches(i)).map(|i| i.name.clone()).collect()
    }

    /// The cases of containerd's Walk conformance test, over its eight snapshots.
    #[test]
    fn conformance_walk_cases() {
        let root = ("containerd.io/gc.root", "check-walk");
        let all = [
            info("a", "", Kind::Committed, &[root]),
            info("b", "", Kind::Committed, &[root, ("l", "1")]),
            info("c", "", Kind::Committed, &[root, ("l", "2")]),
            info("p", "", Kind::Committed, &[root]),
            info("a1", "p", Kind::Active, &[root]),
            info("b1", "p", Kind::Active, &[root, ("l", "1")]),
            info("c1", "p", Kind::Active, &[root, ("l", "2")]),
            info("v1", "p", Kind::View, &[root, ("l", "2")]),
        ];
        assert_eq!(names(&[r#"labels."containerd.io/gc.root"==check-walk"#], &all).len(), 8);
        assert_eq!(names(&["kind==active,labels.l"], &all), ["b1", "c1"]);
        assert_eq!(names(&["name==a", "name==b1"], &all), ["a", "b1"]);
        assert_eq!(names(&["labels.l"], &all), ["b", "c", "b1", "c1", "v1"]);
        assert_eq!(names(&["parent==p"], &all), ["a1", "b1", "c1", "v1"]);
        assert_eq!(names(&[r#"parent!="""#, "labels.l==2"], &all), ["c", "a1", "b1", "c1", "v1"]);
        assert_eq!(names(&["kind==view"], &all), ["v1"]);
        assert_eq!(names(&["labels.l~=^[12]$,kind==committed"], &all), ["b", "c"]);
        assert_eq!(names(&[], &all).len(), 8);
        assert_eq!(names(&[""], &all).len(), 8);
    }

    /// containerd's remote-snapshot lookup filter.
    #[test]
    fn snapshot_ref_filter() {
        let all = [
            info("x", "default/1/base", Kind::Committed, &[("containerd.io/snapshot.ref", "sha256:ab")]),
            info("y", "default/2/other", Kind::Committed, &[("containerd.io/snapshot.ref", "sha256:ab")]),
        ];
        let f = r#"labels."containerd.io/snapshot.ref"==sha256:ab,parent=="default/1/base""#;
        assert_eq!(names(&[f], &all), ["x"]);
    }

    #[test]
    fn not_equal_matches_absent_fields_and_present_needs_labels() {
        let all = [info("a", "", Kind::Active, &[]), info("b", "", Kind::Active, &[("l", "x")])];
        assert_eq!(names(&["labels.l!=x"], &all), ["a"]);
        assert_eq!(names(&["labels.l"], &all), ["b"]);
        assert_eq!(names(&["parent"], &all), ["a", "b"]);
        assert_eq!(names(&["nosuchfield"], &all), Vec::<String>::new());
    }

    #[test]
    fn quotes_and_escapes() {
        let all = [info("a b", "", Kind::Active, &[("l", "x,y")]), info("c/d", "", Kind::Active, &[])];
        assert_eq!(names(&[r#"name=="a b""#], &all), ["a b"]);
        assert_eq!(names(&[r#"labels.l=="x\x2cy""#], &all), ["a b"]);
        assert_eq!(names(&[r#"labels.l=="x\054y""#], &all), ["a b"]);
        assert_eq!(names(&[r#"labels.l=="x\u002cy""#], &all), ["a b"]);
        assert_eq!(names(&[r"name~=/c\/d/"], &all), ["c/d"]);
        assert_eq!(names(&["name~=|^c/|"], &all), ["c/d"]);
        assert_eq!(names(&[" name == c/d"], &all), ["c/d"]);
        // An expression that does not compile matches nothing, as in containerd; Go's regexp
        // refuses stacked repetitions and counts above 1000, which Rust's would accept.
        assert_eq!(names(&["name~=("], &all), Vec::<String>::new());
        assert_eq!(names(&["name~=c**"], &all), Vec::<String>::new());
        assert_eq!(names(&["name~=c{1001}"], &all), Vec::<String>::new());
        assert_eq!(names(&["name~=(c{10}){101}"], &all), Vec::<String>::new());
        assert_eq!(names(&["name~=((c{10}){0}){1000}"], &all), ["a b", "c/d"]);
        assert_eq!(names(&["name~=^(c{10}){100}|/"], &all), ["c/d"]);
        assert_eq!(names(&["name~=^(c*)*/"], &all), ["c/d"]);
        assert_eq!(names(&["name~=c*?"], &all), ["a b", "c/d"]);
        // Where Go reads the same pattern differently, Go wins.
        assert_eq!(names(&["name~=^c{01}"], &all), Vec::<String>::new(), "{{01}} is literal in Go");
        assert_eq!(names(&["name~=^[[a]"], &all), ["a b"], "[ is literal in a Go class");
        assert_eq!(names(&["name~=[a&&c]"], &all), ["a b", "c/d"], "&& is literal in a Go class");
        assert_eq!(names(&[r"name~=\Qc/d\E"], &all), ["c/d"]);
        assert_eq!(names(&["name~=^[[:alpha:]][[:space:]]"], &all), ["a b"]);
    }

    #[test]
    fn malformed_filters_are_invalid_arguments_that_say_where() {
        for bad in [
            "name==",
            "name=",
            "name===x",
            "name==x,",
            ",name",
            ".name",
            "name..x",
            "name x",
            "name==x y",
            "name==x ",
            "name==/x/",
            "name==|x|",
            "name==\"x",
            "name==\"x\ny\"",
            r#"name=="\q""#,
            r#"name=="\x4""#,
            r#"name=="\400""#,
            "name==\0",
            "\0",
            "name==\u{fffd}",
            "name\u{fffd}==x",
            "name==\"\u{fffd}\"",
            "name==x\u{51fe7}",
            "name==x\u{200b}",
            "(name)",
            "name==.x",
            r#""a\u12"==x"#,
        ] {
            let err = Filters::parse(&[bad]).expect_err(bad);
            assert_eq!(err.kind(), crate::ErrorKind::InvalidArgument, "{bad}");
            assert!(err.message().starts_with("filters: parse error: ["), "{bad}: {err}");
        }
        let err = Filters::parse(&["name==x y"]).unwrap_err();
        assert_eq!(err.message(), "filters: parse error: [name==x >| |< y]: unexpected input:  ");
    }

    #[test]
    fn huge_regex_fails_closed() {
        assert_eq!(names(&["name~=(a{1000}){1000}"], &[info("a", "", Kind::Active, &[])]), Vec::<String>::new());
    }
}
