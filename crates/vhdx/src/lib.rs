//! VHDX virtual disks, after [MS-VHDX] (Microsoft's published specification).
//!
//! [`Vhdx`] opens a disk (checking every structure it reads), creates dynamic and
//! differencing disks, reads through a differencing disk's parent chain (sector bitmaps for
//! partially present blocks), writes sectors (allocating blocks), and grows the virtual size.
//! [`Vhdx::check`] goes through every structure and BAT entry. [`raw`] converts between raw
//! images and dynamic disks, streaming. [`scratch`] makes the scratch disk templates a
//! Windows container snapshotter copies for each container. [`vhd`] writes the footer that
//! makes a raw image (a block CIM) a fixed VHD.
//!
//! Not implemented: replaying a log (such disks are refused with a message saying so),
//! shrinking, fixed disks' creation, and parent locators of types other than VHDX.

#![forbid(unsafe_code)]

pub mod check;
pub mod disk;
pub mod format;
#[doc(hidden)]
pub mod fuzzing;
pub mod ids;
mod log;
pub mod raw;
pub mod scratch;
pub mod storage;
pub mod vhd;

pub use check::Report;
pub use disk::{CreateOptions, Info, OpenOptions, ParentInfo, ParentLink, Vhdx};
pub use ids::Ids;
pub use storage::Storage;
pub use uuid::Uuid;
