//! The layer media types containerd's own differs accept (its `images.DiffCompression`), and
//! the compression a Diff writes for the media type asked.

use tonic::Status;
use wcow_tar::Compression;

/// The media type of an uncompressed OCI layer (what Apply returns for the diffID).
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

/// A layer media type and the compression it declares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerMedia {
    /// The media type.
    pub media_type: String,
    /// The compression it names; `None` also for Docker's plain types, whose blobs are
    /// decompressed by what their bytes show, as containerd does.
    pub compression: Compression,
}

impl LayerMedia {
    /// The layer media type of an Apply. Types wrapped for a stream processor
    /// (`+encrypted`, …) and anything else are NotImplemented, so containerd tries its next
    /// differ.
    pub fn of(media_type: &str) -> Result<LayerMedia, Status> {
        let (base, suffix) = match media_type.split_once('+') {
            Some((base, suffix)) => (base, Some(suffix)),
            None => (media_type, None),
        };
        let compression = match (base, suffix) {
            (
                "application/vnd.docker.image.rootfs.diff.tar" | "application/vnd.docker.image.rootfs.foreign.diff.tar",
                None,
            ) => Some(Compression::None),
            (
                "application/vnd.docker.image.rootfs.diff.tar.gzip"
                | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
                None,
            ) => Some(Compression::Gzip),
            ("application/vnd.docker.image.rootfs.diff.tar.zstd", None) => Some(Compression::Zstd),
            (OCI_LAYER | "application/vnd.oci.image.layer.nondistributable.v1.tar", suffix) => match suffix {
                None => Some(Compression::None),
                Some("gzip") => Some(Compression::Gzip),
                Some("zstd") => Some(Compression::Zstd),
                Some(_) => None,
            },
            _ => None,
        };
        match compression {
            Some(compression) => Ok(LayerMedia { media_type: media_type.to_owned(), compression }),
            None => Err(Status::unimplemented(format!("media type {media_type:?} is not a layer winlayer applies"))),
        }
    }

    /// The layer a Diff writes: the media type asked (gzip'd OCI layer when none is), whose
    /// compression decides how it is written.
    pub fn for_output(media_type: &str) -> Result<LayerMedia, Status> {
        if media_type.is_empty() {
            return LayerMedia::of("application/vnd.oci.image.layer.v1.tar+gzip");
        }
        LayerMedia::of(media_type).map_err(|_| {
            Status::invalid_argument(format!("media type {media_type:?} is not a layer type winlayer writes"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_what_containerd_accepts() {
        for (t, c) in [
            ("application/vnd.oci.image.layer.v1.tar", Compression::None),
            ("application/vnd.oci.image.layer.v1.tar+gzip", Compression::Gzip),
            ("application/vnd.oci.image.layer.v1.tar+zstd", Compression::Zstd),
            ("application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", Compression::Gzip),
            ("application/vnd.oci.image.layer.nondistributable.v1.tar+zstd", Compression::Zstd),
            ("application/vnd.docker.image.rootfs.diff.tar", Compression::None),
            ("application/vnd.docker.image.rootfs.diff.tar.gzip", Compression::Gzip),
            ("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", Compression::Gzip),
            ("application/vnd.docker.image.rootfs.diff.tar.zstd", Compression::Zstd),
        ] {
            assert_eq!(LayerMedia::of(t).unwrap().compression, c, "{t}");
        }
        for t in [
            "",
            "application/vnd.oci.image.layer.v1.tar+gzip+encrypted",
            "application/vnd.docker.image.rootfs.diff.tar.gzip+encrypted",
            "application/vnd.oci.image.config.v1+json",
            "application/x-tar",
        ] {
            assert_eq!(LayerMedia::of(t).unwrap_err().code(), tonic::Code::Unimplemented, "{t}");
        }
        assert_eq!(LayerMedia::for_output("").unwrap().compression, Compression::Gzip);
        assert_eq!(LayerMedia::for_output("text/plain").unwrap_err().code(), tonic::Code::InvalidArgument);
    }
}
