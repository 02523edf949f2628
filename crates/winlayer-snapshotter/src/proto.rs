//! containerd's gRPC API, generated from the vendored protos in `proto/` (Apache-2.0, from
//! containerd's `api/`) by `tests/generated_code.rs`. The modules nest as the protobuf
//! packages do, which the generated cross-references expect.
#![allow(missing_docs, clippy::all, clippy::pedantic)]

pub mod containerd {
    pub mod types {
        include!("proto/containerd.types.rs");
    }
    pub mod services {
        pub mod content {
            pub mod v1 {
                include!("proto/containerd.services.content.v1.rs");
            }
        }
        pub mod diff {
            pub mod v1 {
                include!("proto/containerd.services.diff.v1.rs");
            }
        }
        pub mod snapshots {
            pub mod v1 {
                include!("proto/containerd.services.snapshots.v1.rs");
            }
        }
    }
}

pub use containerd::services::content::v1 as content;
pub use containerd::services::diff::v1 as diff;
pub use containerd::services::snapshots::v1 as snapshots;
pub use containerd::types;
