//! Windows FILETIME values (100 ns ticks since 1601-01-01 UTC) and their PAX text form.

use std::fmt;

/// Ticks between 1601-01-01 and 1970-01-01.
const UNIX_EPOCH_TICKS: i64 = 116_444_736_000_000_000;
const TICKS_PER_SEC: i64 = 10_000_000;

/// A Windows timestamp: 100 ns ticks since 1601-01-01 00:00:00 UTC.
///
/// Kept within `0..=i64::MAX`, the range Windows APIs accept.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FileTime(i64);

/// A PAX time value that is not `[-]seconds[.fraction]` or that Windows cannot store.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    /// The text is not a decimal time.
    #[error("'{0}' is not a PAX time ([-]seconds[.fraction])")]
    Syntax(String),
    /// The text is not an RFC 3339 time in UTC.
    #[error("'{0}' is not an RFC 3339 UTC time (YYYY-MM-DDTHH:MM:SS[.fraction]Z)")]
    Rfc3339(String),
    /// The time lies outside 1601-01-01 ..= year 30828, what a FILETIME holds.
    #[error("'{0}' is outside the range a Windows FILETIME can hold (1601 to 30828)")]
    Range(String),
}

impl FileTime {
    /// 1970-01-01 00:00:00 UTC.
    pub const UNIX_EPOCH: FileTime = FileTime(UNIX_EPOCH_TICKS);

    /// A FILETIME from its raw tick count; `None` when negative.
    pub fn from_ticks(ticks: i64) -> Option<Self> {
        (ticks >= 0).then_some(FileTime(ticks))
    }

    /// The raw tick count.
    pub fn ticks(self) -> i64 {
        self.0
    }

    /// From whole seconds and nanoseconds relative to the Unix epoch; sub-100 ns precision is
    /// truncated toward zero, as Windows does.
    pub fn from_unix(secs: i64, nanos: u32) -> Option<Self> {
        let ticks = (secs as i128) * TICKS_PER_SEC as i128 + (nanos / 100) as i128 + UNIX_EPOCH_TICKS as i128;
        i64::try_from(ticks).ok().and_then(Self::from_ticks)
    }

    /// Ticks relative to the Unix epoch (negative before 1970).
    fn unix_ticks(self) -> i64 {
        self.0 - UNIX_EPOCH_TICKS
    }

    /// Whole seconds since the Unix epoch, rounded toward negative infinity (the ustar `mtime`).
    pub fn unix_seconds(self) -> i64 {
        self.unix_ticks().div_euclid(TICKS_PER_SEC)
    }

    /// Whether the time has a non-zero fraction of a second.
    pub fn has_fraction(self) -> bool {
        self.unix_ticks().rem_euclid(TICKS_PER_SEC) != 0
    }

    /// Parses a PAX time: `[-]seconds[.fraction]`, where `-S.F` means −(S + 0.F).
    /// Digits below 100 ns are truncated toward zero.
    pub fn parse_pax(text: &str) -> Result<Self, TimeError> {
        let syntax = || TimeError::Syntax(text.to_string());
        let (negative, rest) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (whole, fraction) = match rest.split_once('.') {
            Some((w, f)) => (w, f),
            None => (rest, ""),
        };
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || !digits(whole) || !digits(fraction) || (rest.contains('.') && fraction.is_empty()) {
            return Err(syntax());
        }
        let range = || TimeError::Range(text.to_string());
        // Anything longer than 12 digits of seconds is far past year 30828.
        if whole.len() > 12 {
            return Err(range());
        }
        let secs: i64 = whole.parse().map_err(|_| syntax())?;
        let mut frac_ticks: i64 = 0;
        for (i, b) in fraction.bytes().take(7).enumerate() {
            frac_ticks += (b - b'0') as i64 * 10i64.pow(6 - i as u32);
        }
        let magnitude = secs * TICKS_PER_SEC + frac_ticks;
        let unix_ticks = if negative { -magnitude } else { magnitude };
        unix_ticks.checked_add(UNIX_EPOCH_TICKS).and_then(Self::from_ticks).ok_or_else(range)
    }

    /// The PAX text form: whole seconds, plus up to seven fractional digits without trailing zeros.
    pub fn to_pax(self) -> String {
        let t = self.unix_ticks();
        let (sign, magnitude) = if t < 0 { ("-", t.unsigned_abs()) } else { ("", t as u64) };
        let secs = magnitude / TICKS_PER_SEC as u64;
        let frac = magnitude % TICKS_PER_SEC as u64;
        if frac == 0 {
            format!("{sign}{secs}")
        } else {
            let digits = format!("{frac:07}");
            format!("{sign}{secs}.{}", digits.trim_end_matches('0'))
        }
    }

    /// RFC 3339 text in UTC with 100 ns precision, for listings.
    pub fn to_rfc3339(self) -> String {
        self.to_string()
    }

    /// Parses RFC 3339 text in UTC, as [`FileTime::to_rfc3339`] writes it
    /// (`YYYY-MM-DDTHH:MM:SS[.fraction]Z`); digits below 100 ns are truncated.
    pub fn parse_rfc3339(text: &str) -> Result<Self, TimeError> {
        let syntax = || TimeError::Rfc3339(text.to_string());
        let b = text.as_bytes();
        let shape = b.len() >= 20 && b[4] == b'-' && b[7] == b'-' && b[10] == b'T' && b[13] == b':' && b[16] == b':';
        if !shape || !text.ends_with('Z') {
            return Err(syntax());
        }
        let number = |from: usize, to: usize| -> Result<i64, TimeError> {
            let digits = &text[from..to];
            if digits.bytes().all(|c| c.is_ascii_digit()) {
                digits.parse().map_err(|_| syntax())
            } else {
                Err(syntax())
            }
        };
        let (y, mo, d) = (number(0, 4)?, number(5, 7)?, number(8, 10)?);
        let (h, mi, sec) = (number(11, 13)?, number(14, 16)?, number(17, 19)?);
        let fraction = &text[19..text.len() - 1];
        let nanos = match fraction.strip_prefix('.') {
            None if fraction.is_empty() => 0,
            Some(f) if !f.is_empty() && f.bytes().all(|c| c.is_ascii_digit()) => {
                f.bytes().take(9).enumerate().map(|(i, c)| (c - b'0') as u32 * 10u32.pow(8 - i as u32)).sum()
            }
            _ => return Err(syntax()),
        };
        let days_in_month = match mo {
            2 if y % 4 == 0 && (y % 100 != 0 || y % 400 == 0) => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
        if !(1..=12).contains(&mo) || !(1..=days_in_month).contains(&d) || h > 23 || mi > 59 || sec > 59 {
            return Err(syntax());
        }
        let secs = days_from_civil(y, mo as u32, d as u32) * 86_400 + h * 3600 + mi * 60 + sec;
        Self::from_unix(secs, nanos).ok_or_else(|| TimeError::Range(text.to_string()))
    }
}

impl fmt::Display for FileTime {
    /// RFC 3339 in UTC with 100 ns precision (`2020-09-13T12:26:40.2500000Z`). Listings print
    /// four per entry, so the digits are placed by hand rather than through `write!`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.unix_ticks();
        let secs = t.div_euclid(TICKS_PER_SEC);
        let frac = t.rem_euclid(TICKS_PER_SEC) as u64;
        let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
        let sod = secs.rem_euclid(86_400) as u64;
        let mut buf = *b"0000-00-00T00:00:00.0000000Z";
        let mut put = |at: usize, width: usize, mut v: u64| {
            for i in (at..at + width).rev() {
                buf[i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
        };
        put(0, 4, y.clamp(0, 9999) as u64);
        put(5, 2, m as u64);
        put(8, 2, d as u64);
        put(11, 2, sod / 3600);
        put(14, 2, sod / 60 % 60);
        put(17, 2, sod % 60);
        put(20, 7, frac);
        let text = if frac == 0 { [&buf[..19], b"Z"].concat() } else { buf.to_vec() };
        f.write_str(std::str::from_utf8(&text).expect("ASCII digits"))
    }
}

/// Day count since 1970-01-01 of a Gregorian date (Howard Hinnant's days-from-civil algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 } as i64;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Gregorian date of a day count since 1970-01-01 (Howard Hinnant's civil-from-days algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_round_trips() {
        for text in ["0", "1", "1600000000", "1600000000.5", "1600000000.1234567", "-1.25", "-11644473600"] {
            let t = FileTime::parse_pax(text).unwrap();
            assert_eq!(t.to_pax(), text, "{text}");
        }
    }

    #[test]
    fn pax_truncates_below_100ns_and_strips_zeros() {
        assert_eq!(FileTime::parse_pax("5.123456789").unwrap().to_pax(), "5.1234567");
        assert_eq!(FileTime::parse_pax("5.500000000").unwrap().to_pax(), "5.5");
        assert_eq!(FileTime::parse_pax("-0.5").unwrap().ticks(), UNIX_EPOCH_TICKS - 5_000_000);
    }

    #[test]
    fn pax_rejects_garbage_and_out_of_range() {
        for bad in ["", "-", ".5", "5.", "1e9", "12a", " 1", "1.2.3", "+1"] {
            assert!(matches!(FileTime::parse_pax(bad), Err(TimeError::Syntax(_))), "{bad:?}");
        }
        assert!(matches!(FileTime::parse_pax("-11644473601"), Err(TimeError::Range(_))));
        assert!(matches!(FileTime::parse_pax("99999999999999999999"), Err(TimeError::Range(_))));
    }

    #[test]
    fn seconds_floor_and_fraction() {
        let t = FileTime::parse_pax("-1.25").unwrap();
        assert_eq!(t.unix_seconds(), -2);
        assert!(t.has_fraction());
        assert!(!FileTime::parse_pax("7").unwrap().has_fraction());
    }

    #[test]
    fn rfc3339() {
        assert_eq!(FileTime::UNIX_EPOCH.to_rfc3339(), "1970-01-01T00:00:00Z");
        assert_eq!(FileTime::from_ticks(0).unwrap().to_rfc3339(), "1601-01-01T00:00:00Z");
        assert_eq!(FileTime::parse_pax("1600000000.25").unwrap().to_rfc3339(), "2020-09-13T12:26:40.2500000Z");
    }

    #[test]
    fn rfc3339_round_trips_and_rejects_garbage() {
        for ticks in [0, 1, 116_444_736_000_000_000, 133_000_000_001_234_567, 2_650_467_743_990_000_000] {
            let t = FileTime::from_ticks(ticks).unwrap();
            assert_eq!(FileTime::parse_rfc3339(&t.to_rfc3339()), Ok(t), "{t}");
        }
        assert_eq!(FileTime::parse_rfc3339("2020-09-13T12:26:40.25Z"), FileTime::parse_pax("1600000000.25"));
        assert_eq!(FileTime::parse_rfc3339("2024-02-29T00:00:00.123456789Z").unwrap().ticks() % 10_000_000, 1_234_567);
        for bad in [
            "",
            "2020-09-13",
            "2020-09-13T12:26:40",
            "2020-13-01T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2020-09-13T24:00:00Z",
            "2020-09-13T12:26:40.Z",
            "2020-09-13T12:26:40+01:00",
            "20x0-09-13T12:26:40Z",
        ] {
            assert!(matches!(FileTime::parse_rfc3339(bad), Err(TimeError::Rfc3339(_))), "{bad:?}");
        }
        assert!(matches!(FileTime::parse_rfc3339("1600-12-31T23:59:59Z"), Err(TimeError::Range(_))));
    }
}
