//! OCI image layouts: `oci-layout`, `index.json` and `blobs/<alg>/<hex>`.
//!
//! Blobs are written under a temporary name in their directory and renamed into place once
//! their digest and size are checked; `index.json` is replaced atomically and only after
//! everything it names is in place, so an interrupted pull leaves the layout as it was.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, DescriptorBuilder, MediaType};

use crate::digest::{self, Digest, Hasher};
use crate::manifest::{self, canonical_json};
use crate::platform::Platform;
use crate::referrers::{self, Referrer};
use crate::store::{Attached, Fetched, Progress, Source, Target};
use crate::{Error, MAX_MANIFEST, Result, invalid};

/// The annotation naming an image in `index.json`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// An OCI image layout directory.
#[derive(Clone, Debug)]
pub struct Layout {
    root: PathBuf,
}

fn io_err(what: &str, path: &Path) -> impl FnOnce(io::Error) -> Error {
    let context = format!("{what} {}", path.display());
    move |e| Error::io(context, e)
}

/// Writes `bytes` to `path` atomically (a synced temporary file renamed over it).
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().expect("layout files are in a directory");
    let mut temp =
        tempfile::Builder::new().prefix(".winlayer-").tempfile_in(dir).map_err(io_err("creating a file in", dir))?;
    temp.write_all(bytes).map_err(io_err("writing", path))?;
    readable(temp.as_file(), path)?;
    temp.as_file().sync_all().map_err(io_err("syncing", path))?;
    temp.persist(path).map_err(|e| Error::io(format!("renaming into place {}", path.display()), e.error))?;
    Ok(())
}

/// Makes a new layout file readable by everyone (0644, as other tools write layouts), not
/// the temporary file's 0600.
fn readable(file: &File, path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(0o644)).map_err(io_err("setting the mode of", path))?;
    }
    #[cfg(not(unix))]
    let _ = (file, path);
    Ok(())
}

impl Layout {
    /// Opens an existing layout.
    pub fn open(root: &Path) -> Result<Layout> {
        let marker = root.join("oci-layout");
        let text = fs::read(&marker).map_err(io_err("reading (is it an OCI image layout?)", &marker))?;
        let value: serde_json::Value =
            serde_json::from_slice(&text).map_err(|e| invalid(format!("{}: not JSON: {e}", marker.display())))?;
        if value.get("imageLayoutVersion").and_then(|v| v.as_str()).is_none() {
            return Err(invalid(format!("{}: no imageLayoutVersion", marker.display())));
        }
        Ok(Layout { root: root.to_path_buf() })
    }

    /// Opens a layout, creating an empty one where there is none.
    pub fn create(root: &Path) -> Result<Layout> {
        if root.join("oci-layout").exists() {
            return Layout::open(root);
        }
        fs::create_dir_all(root.join("blobs/sha256")).map_err(io_err("creating", root))?;
        write_atomic(&root.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        Ok(Layout { root: root.to_path_buf() })
    }

    /// The layout directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The image named `tag` in this layout (or its only image).
    pub fn image(self, tag: Option<String>) -> LayoutImage {
        LayoutImage { layout: self, tag, digest: None }
    }

    /// The manifest or index `digest` of this layout, named or not.
    pub fn image_at(self, digest: Digest) -> LayoutImage {
        LayoutImage { layout: self, tag: None, digest: Some(digest) }
    }

    /// Adds `manifest` to `index.json` without a name (a referrer: found by its `subject`),
    /// unless it is listed there already; its blob is written first.
    pub fn add_unnamed(&self, manifest: &Fetched, entry: serde_json::Value) -> Result<bool> {
        let desc = fetched_descriptor(manifest);
        if fs::metadata(self.blob_path(&desc.digest().clone())).map(|m| m.len()).ok() != Some(desc.size()) {
            self.put_bytes(&desc, &manifest.bytes)?;
        }
        let mut index = self.index()?;
        let entries = index["manifests"].as_array_mut().expect("checked by index()");
        let digest = manifest.digest.to_string();
        if entries.iter().any(|e| e.get("digest").and_then(|d| d.as_str()) == Some(digest.as_str())) {
            return Ok(false);
        }
        entries.push(entry);
        write_atomic(&self.root.join("index.json"), &canonical_json(&index))?;
        Ok(true)
    }

    /// Where a blob lives.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs").join(digest.algorithm().as_ref()).join(digest.digest())
    }

    /// `index.json` (an empty index when there is none yet).
    pub fn index(&self) -> Result<serde_json::Value> {
        let path = self.root.join("index.json");
        match fs::metadata(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(serde_json::json!({"schemaVersion": 2, "mediaType": manifest::OCI_INDEX, "manifests": []}));
            }
            Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
            Ok(m) if m.len() > MAX_MANIFEST => {
                return Err(invalid(format!("{}: over {} bytes", path.display(), MAX_MANIFEST)));
            }
            Ok(_) => {}
        }
        let bytes = fs::read(&path).map_err(io_err("reading", &path))?;
        let value: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| invalid(format!("{}: not JSON: {e}", path.display())))?;
        if !value.get("manifests").is_some_and(|m| m.is_array()) {
            return Err(invalid(format!("{}: no manifests array", path.display())));
        }
        Ok(value)
    }

    /// Stores a blob: `fill` streams it into a temporary file beside its place, which is
    /// renamed into place when `fill` succeeds (it checks the digest).
    pub fn put_blob(&self, desc: &Descriptor, fill: &mut dyn FnMut(&mut dyn Write) -> Result<()>) -> Result<()> {
        let path = self.blob_path(desc.digest());
        let dir = path.parent().expect("blobs/<alg>");
        fs::create_dir_all(dir).map_err(io_err("creating", dir))?;
        let temp = tempfile::Builder::new()
            .prefix(".winlayer-")
            .tempfile_in(dir)
            .map_err(io_err("creating a file in", dir))?;
        let mut out = io::BufWriter::with_capacity(1 << 16, temp);
        fill(&mut out)?;
        let temp = out.into_inner().map_err(|e| Error::io(format!("writing {}", path.display()), e.into_error()))?;
        readable(temp.as_file(), &path)?;
        temp.as_file().sync_all().map_err(io_err("syncing", &path))?;
        temp.persist(&path).map_err(|e| Error::io(format!("renaming into place {}", path.display()), e.error))?;
        Ok(())
    }

    /// Stores bytes as a blob.
    pub fn put_bytes(&self, desc: &Descriptor, bytes: &[u8]) -> Result<()> {
        self.put_blob(desc, &mut |out| out.write_all(bytes).map_err(|e| Error::io("writing a blob", e)))
    }

    /// Names `manifest` `tag` in `index.json` (replacing what had that name), atomically.
    pub fn tag(&self, manifest: &Fetched, platform: &Platform, tag: &str) -> Result<()> {
        let mut index = self.index()?;
        let entry = manifest::descriptor_json(&fetched_descriptor(manifest), Some(platform), &[(REF_NAME, tag)]);
        let entries = index["manifests"].as_array_mut().expect("checked by index()");
        entries.retain(|e| {
            e.pointer(&format!("/annotations/{}", REF_NAME.replace('/', "~1"))).and_then(|v| v.as_str()) != Some(tag)
        });
        entries.push(entry);
        write_atomic(&self.root.join("index.json"), &canonical_json(&index))
    }
}

/// The descriptor of a fetched document.
pub fn fetched_descriptor(fetched: &Fetched) -> Descriptor {
    DescriptorBuilder::default()
        .media_type(MediaType::from(fetched.media_type.as_str()))
        .digest(fetched.digest.clone())
        .size(fetched.bytes.len() as u64)
        .build()
        .expect("all required fields set")
}

/// One image of a layout: a [`Source`] and a [`Target`].
#[derive(Clone)]
pub struct LayoutImage {
    layout: Layout,
    tag: Option<String>,
    /// A manifest chosen by digest instead of by name.
    digest: Option<Digest>,
}

impl LayoutImage {
    /// The layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// `oci:DIR[:TAG]`, or `oci:DIR@DIGEST`.
    pub fn label(&self) -> String {
        match (&self.tag, &self.digest) {
            (_, Some(d)) => format!("oci:{}@{d}", self.layout.root.display()),
            (Some(t), None) => format!("oci:{}:{t}", self.layout.root.display()),
            (None, None) => format!("oci:{}", self.layout.root.display()),
        }
    }

    /// Reads a blob of at most [`MAX_MANIFEST`] bytes, checked.
    fn read_small(&self, digest: &Digest, size: u64, what: &str) -> Result<Vec<u8>> {
        if size > MAX_MANIFEST {
            return Err(invalid(format!(
                "{what}: {size} bytes, over the {MAX_MANIFEST}-byte limit for manifests and configs"
            )));
        }
        let path = self.layout.blob_path(digest);
        let file = File::open(&path).map_err(io_err("reading", &path))?;
        let mut hasher = Hasher::new(Vec::new());
        io::copy(&mut file.take(size + 1), &mut hasher).map_err(io_err("reading", &path))?;
        digest::verify(&hasher, digest, size, what)?;
        Ok(hasher.into_inner())
    }
}

impl Source for LayoutImage {
    fn name(&self) -> String {
        self.label()
    }

    fn top(&mut self) -> Result<Fetched> {
        if let Some(digest) = &self.digest {
            let what = format!("{}: manifest", self.label());
            let path = self.layout.blob_path(digest);
            let size = match fs::metadata(&path) {
                Ok(m) => m.len(),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(invalid(format!(
                        "{what}: the layout has no manifest {digest} (no blob {})",
                        path.display()
                    )));
                }
                Err(e) => return Err(io_err("reading", &path)(e)),
            };
            let bytes = self.read_small(digest, size, &what)?;
            let value: serde_json::Value =
                serde_json::from_slice(&bytes).map_err(|e| invalid(format!("{what}: not JSON: {e}")))?;
            let media_type = value.get("mediaType").and_then(|m| m.as_str()).unwrap_or(manifest::OCI_MANIFEST);
            return Ok(Fetched { media_type: media_type.to_string(), bytes, digest: digest.clone() });
        }
        let index = self.layout.index()?;
        let entries = index["manifests"].as_array().expect("checked by index()");
        let name_of = |e: &serde_json::Value| {
            e.pointer("/annotations/org.opencontainers.image.ref.name").and_then(|v| v.as_str()).map(str::to_string)
        };
        // Referrers (unnamed entries with an artifactType) are not images to choose by default.
        let images: Vec<&serde_json::Value> =
            entries.iter().filter(|e| name_of(e).is_some() || e.get("artifactType").is_none()).collect();
        let chosen = match &self.tag {
            Some(tag) => entries.iter().find(|e| name_of(e).as_deref() == Some(tag)),
            None if images.len() == 1 => images.first().copied(),
            None => entries.iter().find(|e| name_of(e).as_deref() == Some("latest")),
        };
        let Some(entry) = chosen else {
            let names: Vec<String> = entries.iter().filter_map(name_of).collect();
            return Err(invalid(format!(
                "{}: no image {} in index.json (names: {})",
                self.label(),
                self.tag.as_deref().unwrap_or("(unnamed; several images)"),
                if names.is_empty() { "none".into() } else { names.join(", ") }
            )));
        };
        let desc: Descriptor = serde_json::from_value(entry.clone())
            .map_err(|e| invalid(format!("{}: index.json entry: {e}", self.label())))?;
        let what = format!("{}: manifest {}", self.label(), desc.digest());
        let bytes = self.read_small(desc.digest(), desc.size(), &what)?;
        Ok(Fetched { bytes, media_type: desc.media_type().to_string(), digest: desc.digest().clone() })
    }

    fn small(&mut self, desc: &Descriptor) -> Result<Vec<u8>> {
        let what = format!("{}: blob {}", self.label(), desc.digest());
        self.read_small(desc.digest(), desc.size(), &what)
    }

    fn blob(&mut self, desc: &Descriptor, out: &mut dyn Write, progress: &dyn Progress) -> Result<()> {
        let what = format!("{}: blob {}", self.label(), desc.digest());
        let path = self.layout.blob_path(desc.digest());
        let mut file = File::open(&path).map_err(io_err("reading", &path))?;
        progress.begin(desc.digest(), desc.size(), "copying");
        let mut hasher = Hasher::new(out);
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = file.read(&mut buf).map_err(io_err("reading", &path))?;
            if n == 0 || hasher.len() > desc.size() {
                break;
            }
            hasher.write_all(&buf[..n]).map_err(|e| Error::io(format!("{what}: writing"), e))?;
            progress.advance(desc.digest(), n as u64);
        }
        digest::verify(&hasher, desc.digest(), desc.size(), &what)
    }

    fn blob_file(&self, desc: &Descriptor) -> Option<PathBuf> {
        Some(self.layout.blob_path(desc.digest()))
    }

    fn fork(&self) -> Box<dyn Source + Send> {
        Box::new(self.clone())
    }

    fn sibling(&self, digest: &Digest) -> Box<dyn Source> {
        Box::new(self.layout.clone().image_at(digest.clone()))
    }

    fn referrers(&mut self, subject: &Digest) -> Result<Vec<Referrer>> {
        let index = self.layout.index()?;
        let what = format!("oci:{}: index.json", self.layout.root.display());
        let listed = referrers::parse_index(&canonical_json(&index), &what)?;
        let mut found = Vec::new();
        for entry in listed {
            if entry.media_type != manifest::OCI_MANIFEST {
                continue;
            }
            let what = format!("{}: manifest {}", self.label(), entry.digest);
            let bytes = self.read_small(&entry.digest, entry.size, &what)?;
            let value: serde_json::Value =
                serde_json::from_slice(&bytes).map_err(|e| invalid(format!("{what}: not JSON: {e}")))?;
            if value.pointer("/subject/digest").and_then(|d| d.as_str()) != Some(subject.as_ref()) {
                continue;
            }
            let artifact_type = value.get("artifactType").and_then(|t| t.as_str()).map(str::to_string);
            let annotations = value
                .get("annotations")
                .and_then(|a| a.as_object())
                .map(|a| a.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect())
                .unwrap_or_default();
            found.push(Referrer { artifact_type, annotations, ..entry });
        }
        Ok(found)
    }
}

impl Target for LayoutImage {
    fn name(&self) -> String {
        self.label()
    }

    fn has_blob(&mut self, desc: &Descriptor) -> Result<bool> {
        // Present with the right size; its content was checked when it was written.
        Ok(fs::metadata(self.layout.blob_path(desc.digest())).is_ok_and(|m| m.len() == desc.size()))
    }

    fn put_blob(
        &mut self,
        desc: &Descriptor,
        _file: Option<PathBuf>,
        fill: &mut dyn FnMut(&mut dyn Write) -> Result<()>,
        _progress: &dyn Progress,
    ) -> Result<()> {
        self.layout.put_blob(desc, fill)
    }

    fn scratch_dir(&self) -> Option<PathBuf> {
        let dir = self.layout.root.join("blobs/sha256");
        fs::create_dir_all(&dir).ok().map(|_| dir)
    }

    fn put_built(&mut self, desc: &Descriptor, file: tempfile::NamedTempFile, _progress: &dyn Progress) -> Result<()> {
        let path = self.layout.blob_path(desc.digest());
        readable(file.as_file(), &path)?;
        file.as_file().sync_all().map_err(io_err("syncing", &path))?;
        file.persist(&path).map_err(|e| Error::io(format!("renaming into place {}", path.display()), e.error))?;
        Ok(())
    }

    fn put_manifest(&mut self, manifest: &Fetched, platform: &Platform) -> Result<()> {
        let desc = fetched_descriptor(manifest);
        if !self.has_blob(&desc)? {
            self.layout.put_bytes(&desc, &manifest.bytes)?;
        }
        self.layout.tag(manifest, platform, self.tag.as_deref().unwrap_or("latest"))
    }

    fn attach(&mut self, manifest: &Fetched, referrer: &Referrer, _subject: &Digest) -> Result<Attached> {
        self.layout.add_unnamed(manifest, referrer.entry())?;
        Ok(Attached::LayoutIndex)
    }

    fn fork(&self) -> Box<dyn Target + Send> {
        Box::new(self.clone())
    }
}
