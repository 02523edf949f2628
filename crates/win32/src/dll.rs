//! Loading DLLs and looking up their functions, and the [`api!`] macro that declares a DLL's
//! functions with their C signatures.

use std::path::PathBuf;

use crate::{Error, Result};

/// Where the Windows functions come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// Windows' own DLLs, loaded from System32 only (never from the working directory or
    /// PATH, which would let a planted DLL run inside a privileged service).
    System,
    /// One library that exports every function under its Windows name: the test double.
    File(PathBuf),
}

/// A loaded library; the function pointers taken from it live as long as it does.
pub(crate) struct Dll {
    lib: libloading::Library,
}

impl Dll {
    pub(crate) fn load(source: &Source, name: &'static str) -> Result<Dll> {
        let missing = |reason: String| Error::Missing { dll: name, symbol: None, reason };
        let lib = match source {
            Source::File(path) => {
                // SAFETY: loading runs the library's initialisers; the test double's are
                // Rust's own runtime set-up and nothing else.
                unsafe { libloading::Library::new(path) }
                    .map_err(|e| missing(format!("loading {}: {e}", path.display())))?
            }
            Source::System => load_system(name).map_err(missing)?,
        };
        Ok(Dll { lib })
    }

    /// The function `name`, or `None` when the library does not export it.
    ///
    /// # Safety
    /// `F` must be the function's exact signature, as a `unsafe extern "system" fn` pointer type.
    pub(crate) unsafe fn symbol<F: Copy>(&self, name: &str) -> Option<F> {
        // SAFETY: the caller vouches for `F`; the pointer is copied out and stays valid while
        // `self.lib` is loaded, and every API table keeps its `Dll` next to its pointers.
        unsafe { self.lib.get::<F>(name).ok().map(|s| *s) }
    }
}

#[cfg(windows)]
fn load_system(name: &'static str) -> std::result::Result<libloading::Library, String> {
    use libloading::os::windows::{LOAD_LIBRARY_SEARCH_SYSTEM32, Library};
    // SAFETY: a DLL of Windows itself, from System32; its initialisers are Windows'.
    unsafe { Library::load_with_flags(name, LOAD_LIBRARY_SEARCH_SYSTEM32) }.map(Into::into).map_err(|e| e.to_string())
}

#[cfg(not(windows))]
fn load_system(_name: &'static str) -> std::result::Result<libloading::Library, String> {
    Err("not running on Windows".into())
}

/// Declares a DLL's functions: a table struct holding the library and one optional function
/// pointer per function (a missing one is reported by name when called), an `unsafe` method
/// per function that calls it, and, for functions Microsoft's metadata declares, a
/// compile-time check that the signature written here is the one `windows-sys` declares.
///
/// ```ignore
/// api! {
///     /// virtdisk.dll
///     pub(crate) struct VirtDiskDll("virtdisk.dll") {
///         fn DetachVirtualDisk(handle: HANDLE, flags: i32, provider: u32) -> u32
///             = windows_sys::Win32::Storage::Vhd::DetachVirtualDisk;
///     }
/// }
/// ```
macro_rules! api {
    (@declared ; $($signature:tt)*) => {};
    (@declared $declared:path ; $($signature:tt)*) => {
        let _: unsafe extern "system" $($signature)* = $declared;
    };
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident($dll:literal) {
            $(
                $(#[$fmeta:meta])*
                fn $func:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $(= $declared:path)?;
            )*
        }
    ) => {
        $(#[$meta])*
        #[allow(non_snake_case)]
        $vis struct $name {
            $( $func: Option<unsafe extern "system" fn($($ty),*) $(-> $ret)?>, )*
            /// The file the functions came from (errors name it).
            file: &'static str,
            _dll: crate::dll::Dll,
        }

        #[allow(non_snake_case, clippy::too_many_arguments, dead_code)]
        impl $name {
            /// The DLL's file name.
            pub const DLL: &'static str = $dll;

            /// The functions bound from it.
            pub const FUNCTIONS: &'static [&'static str] = &[$(stringify!($func)),*];

            /// Loads the DLL from `source` and looks up every function.
            $vis fn load(source: &crate::Source) -> crate::Result<Self> {
                Self::load_from(source, $dll)
            }

            /// Looks the same functions up in `file`, another DLL exporting this API.
            $vis fn load_from(source: &crate::Source, file: &'static str) -> crate::Result<Self> {
                let dll = crate::dll::Dll::load(source, file)?;
                Ok(Self {
                    // SAFETY: each pointer type is the function's C signature, declared above.
                    $( $func: unsafe { dll.symbol(stringify!($func)) }, )*
                    file,
                    _dll: dll,
                })
            }

            /// The file the functions came from.
            $vis fn file(&self) -> &'static str {
                self.file
            }

            /// Whether the DLL exports `name`.
            $vis fn has(&self, name: &str) -> bool {
                match name {
                    $( stringify!($func) => self.$func.is_some(), )*
                    _ => false,
                }
            }

            /// Fails, naming the first of `names` the DLL lacks.
            $vis fn require(&self, names: &[&'static str]) -> crate::Result {
                match names.iter().find(|n| !self.has(n)) {
                    Some(n) => Err(crate::Error::missing_symbol(self.file, n)),
                    None => Ok(()),
                }
            }

            $(
                $(#[$fmeta])*
                /// # Safety
                /// Every pointer argument must be valid as the C function requires.
                pub(crate) unsafe fn $func(&self, $($arg: $ty),*) -> crate::Result<$($ret)?> {
                    let f = self.$func.ok_or_else(|| crate::Error::missing_symbol(self.file, stringify!($func)))?;
                    // SAFETY: the caller upholds the function's pointer contracts.
                    Ok(unsafe { f($($arg),*) })
                }
            )*

            /// Never called: type-checks each signature against Microsoft's declaration in
            /// `windows-sys` (generic, so nothing is generated and nothing is imported).
            #[allow(clippy::extra_unused_type_parameters)]
            fn _declared_signatures<T>() {
                $( api!(@declared $($declared)? ; fn($($ty),*) $(-> $ret)?); )*
            }
        }
    };
}
