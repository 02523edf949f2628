//! What Windows' own importer does differently with a layer tar winlayer accepts.
//!
//! hcsshim imports layer tars through go-winio's `backuptar`, which turns each header's times
//! into FILETIMEs as `windows.NsecToFiletime(t.UnixNano())`. Go's `UnixNano` is an int64 of
//! nanoseconds since 1970: outside 1677-09-21T00:12:43.145224192Z to
//! 2262-04-11T23:47:16.854775807Z it overflows, silently, so Windows stores a wrong time (a
//! creation time of 1601-01-01, FILETIME 0, arrives as 2185-07-21). winlayer itself keeps
//! every FILETIME; [`time_warning`] says where Windows would not, and [`ClampTimes`] moves
//! such times to the nearest one that importer carries.

use winlayer_core::{Data, Entry, FileTime, LayerSink, Metadata, Problem, Result};

/// FILETIME ticks (100 ns since 1601) of the Unix epoch.
const UNIX_EPOCH_TICKS: i64 = 116_444_736_000_000_000;

/// The earliest FILETIME whose nanoseconds since 1970 fit an int64:
/// 1677-09-21T00:12:43.1452242Z (−2⁶³ ns rounded up to a whole 100 ns tick).
pub const GO_EARLIEST_TICKS: i64 = UNIX_EPOCH_TICKS + i64::MIN / 100;
/// The latest such FILETIME: 2262-04-11T23:47:16.8547758Z.
pub const GO_LATEST_TICKS: i64 = UNIX_EPOCH_TICKS + i64::MAX / 100;

/// Whether go-winio's importer carries `time` over unchanged.
pub fn go_carries(time: FileTime) -> bool {
    (GO_EARLIEST_TICKS..=GO_LATEST_TICKS).contains(&time.ticks())
}

/// The FILETIME Windows gets for `time` through go-winio: `UnixNano` wrapped to 64 bits, then
/// `NsecToFiletime` (divide by 100, add the epoch). `None` when that is not a FILETIME either.
pub fn go_imports_as(time: FileTime) -> Option<FileTime> {
    let nanos = (time.ticks() as i128 - UNIX_EPOCH_TICKS as i128) * 100;
    let wrapped = nanos as i64; // Go's int64 arithmetic wraps: the low 64 bits
    FileTime::from_ticks((wrapped / 100).wrapping_add(UNIX_EPOCH_TICKS))
}

fn times(meta: &Metadata) -> [(&'static str, FileTime); 4] {
    [
        ("creation", meta.creation),
        ("last-write", meta.last_write),
        ("last-access", meta.last_access),
        ("change", meta.change),
    ]
}

/// A warning for an entry with times go-winio's importer cannot carry, naming each.
pub fn time_warning(entry: &Entry) -> Option<Problem> {
    if !entry.kind.has_metadata() {
        return None;
    }
    let wrong: Vec<String> = times(&entry.meta)
        .into_iter()
        .filter(|(_, t)| !go_carries(*t))
        .map(|(which, t)| {
            let becomes = go_imports_as(t).map_or_else(|| "no valid time".to_string(), |w| w.to_rfc3339());
            format!("{which} time {} would arrive as {becomes}", t.to_rfc3339())
        })
        .collect();
    if wrong.is_empty() {
        return None;
    }
    Some(Problem::warning(
        entry.path.to_string(),
        format!(
            "{}: Windows' importer (go-winio's backuptar, through Go's UnixNano) carries only times from \
             1677-09-21 to 2262-04-11; `tar normalize --clamp-times` moves them into that range",
            wrong.join(", ")
        ),
    ))
}

/// Passes entries on, noting [`time_warning`]s.
pub struct TimeWarnings<'a> {
    inner: &'a mut dyn LayerSink,
    /// The warnings so far.
    pub warnings: Vec<Problem>,
}

impl<'a> TimeWarnings<'a> {
    /// Notes on the way to `inner`.
    pub fn new(inner: &'a mut dyn LayerSink) -> Self {
        TimeWarnings { inner, warnings: Vec::new() }
    }
}

impl LayerSink for TimeWarnings<'_> {
    fn entry(&mut self, entry: &Entry, data: &mut Data<'_>) -> Result<()> {
        self.warnings.extend(time_warning(entry));
        self.inner.entry(entry, data)
    }
}

/// Moves every time of `meta` go-winio cannot carry to the nearest one it can; whether any moved.
pub fn clamp_times(meta: &mut Metadata) -> bool {
    let mut moved = false;
    for t in [&mut meta.creation, &mut meta.last_write, &mut meta.last_access, &mut meta.change] {
        if !go_carries(*t) {
            let ticks = t.ticks().clamp(GO_EARLIEST_TICKS, GO_LATEST_TICKS);
            *t = FileTime::from_ticks(ticks).expect("the range starts after 1601");
            moved = true;
        }
    }
    moved
}

/// Passes entries on with their times clamped into what go-winio's importer carries, counting
/// the entries changed.
pub struct ClampTimes<'a> {
    inner: &'a mut dyn LayerSink,
    /// Entries whose times were moved.
    pub clamped: u64,
}

impl<'a> ClampTimes<'a> {
    /// Clamps on the way to `inner`.
    pub fn new(inner: &'a mut dyn LayerSink) -> Self {
        ClampTimes { inner, clamped: 0 }
    }
}

impl LayerSink for ClampTimes<'_> {
    fn entry(&mut self, entry: &Entry, data: &mut Data<'_>) -> Result<()> {
        if entry.kind.has_metadata() && times(&entry.meta).iter().any(|(_, t)| !go_carries(*t)) {
            let mut moved = entry.clone();
            clamp_times(&mut moved.meta);
            self.clamped += 1;
            return self.inner.entry(&moved, data);
        }
        self.inner.entry(entry, data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> FileTime {
        FileTime::parse_rfc3339(text).unwrap()
    }

    #[test]
    fn the_range_is_what_an_int64_of_nanoseconds_holds() {
        // Go: time.Unix(0, math.MinInt64) and time.Unix(0, math.MaxInt64), to whole 100 ns.
        assert_eq!(FileTime::from_ticks(GO_EARLIEST_TICKS).unwrap().to_rfc3339(), "1677-09-21T00:12:43.1452242Z");
        assert_eq!(FileTime::from_ticks(GO_LATEST_TICKS).unwrap().to_rfc3339(), "2262-04-11T23:47:16.8547758Z");
        let earliest = FileTime::from_ticks(GO_EARLIEST_TICKS).unwrap();
        let latest = FileTime::from_ticks(GO_LATEST_TICKS).unwrap();
        assert!(go_carries(earliest) && go_carries(latest));
        assert!(!go_carries(FileTime::from_ticks(GO_EARLIEST_TICKS - 1).unwrap()));
        assert!(!go_carries(FileTime::from_ticks(GO_LATEST_TICKS + 1).unwrap()));
        assert!(go_carries(at("1678-01-01T00:00:00Z")) && go_carries(at("2262-04-11T00:00:00Z")));
        // Go documents the range as "the year 1678 to 2262"; its exact start is in 1677.
        assert!(go_carries(at("1677-12-31T23:59:59Z")) && !go_carries(at("1677-09-21T00:12:43Z")));
        assert!(!go_carries(at("2262-04-11T23:47:17Z")) && !go_carries(at("2262-04-12T00:00:00Z")));
        // Inside the range Windows gets the same FILETIME.
        assert_eq!(go_imports_as(earliest), Some(earliest));
        assert_eq!(go_imports_as(latest), Some(latest));
    }

    #[test]
    fn filetime_zero_arrives_in_2185() {
        // 1601-01-01: −11644473600 s, whose nanoseconds wrap to 6802270473709551616.
        let imported = go_imports_as(FileTime::from_ticks(0).unwrap()).unwrap();
        assert_eq!(imported.ticks(), 6_802_270_473_709_551_616 / 100 + UNIX_EPOCH_TICKS);
        assert!(imported.to_rfc3339().starts_with("2185-07-21T"), "{}", imported.to_rfc3339());
    }

    #[test]
    fn clamping_moves_only_what_is_out_of_range() {
        let inside = at("2020-05-01T10:00:00Z");
        let mut meta = Metadata::with_times(0x20, inside);
        meta.creation = FileTime::from_ticks(0).unwrap();
        meta.change = at("3000-01-01T00:00:00Z");
        assert!(clamp_times(&mut meta));
        assert_eq!(meta.creation.ticks(), GO_EARLIEST_TICKS);
        assert_eq!(meta.change.ticks(), GO_LATEST_TICKS);
        assert_eq!((meta.last_write, meta.last_access), (inside, inside));
        assert!(!clamp_times(&mut meta), "a second pass changes nothing");
    }
}
