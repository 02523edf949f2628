//! The OCI Windows layer tar dialect.
//!
//! [`LayerReader`] turns a layer tar (plain, gzip or zstd) into winlayer's entry stream,
//! checking the tar framing strictly and interpreting Windows' PAX records; [`TarWriter`]
//! writes an entry stream as a tar, and fed a [`winlayer_core::Sorted`] stream produces the
//! canonical form: the same input always gives the same bytes.

pub mod header;
pub mod importer;
pub mod input;
pub mod reader;
pub mod writer;
pub mod zstd;

pub use input::{Compression, Input, Output};
pub use reader::{LayerReader, Mode};
pub use writer::TarWriter;

use winlayer_core::{Collector, Error, LayerSource, Result, Sorted};

/// Reads a layer tar (strictly) and sorts it into canonical order; data is left in place
/// for plain files and spooled to a temporary file otherwise.
pub fn canonicalize(input: Input) -> Result<Sorted> {
    let mut collector = Collector::new();
    LayerReader::new(input, Mode::Strict).send_to(&mut collector)?;
    collector.finish()
}

/// Writes a sorted layer as a tar into `out`, refusing (before writing anything) a layer that
/// breaks a rule.
pub fn write_sorted<W: std::io::Write>(sorted: Sorted, out: W) -> Result<W> {
    let problems: Vec<_> =
        sorted.check().into_iter().filter(|p| p.severity == winlayer_core::Severity::Error).collect();
    if !problems.is_empty() {
        return Err(Error::Problems(problems));
    }
    let mut writer = TarWriter::new(out);
    sorted.send_to(&mut writer)?;
    writer.finish()
}

#[doc(hidden)]
pub mod fuzzing {
    //! The oracle shared by the fuzz target and the corpus regression test.
    use super::*;
    use winlayer_core::Checker;

    /// Reads `bytes` every way winlayer reads layers. Panics only on a real bug: a panic
    /// inside the reader, or canonical output that does not read back to itself.
    pub fn check(bytes: &[u8]) {
        let input = || Input::from_bytes(bytes.to_vec());
        if let Ok(i) = input() {
            let mut checker = Checker::new();
            let _ = LayerReader::new(i, Mode::Collect).read_into(&mut checker);
            let _ = checker.finish();
        }
        let Ok(Ok(sorted)) = input().map(canonicalize) else { return };
        let Ok(out) = write_sorted(sorted, Vec::new()) else { return };
        let reread = canonicalize(Input::from_bytes(out.clone()).expect("canonical output is a plain tar"));
        let again = write_sorted(reread.expect("canonical output must read back"), Vec::new())
            .expect("canonical output must write back");
        assert!(again == out, "normalizing canonical output changed it");
    }
}
