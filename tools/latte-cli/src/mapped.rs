//! Read-only memory maps of input files.

use std::fs::File;
use std::ops::Deref;
use std::path::Path;

use anyhow::{bail, Context, Result};
use memmap2::Mmap;

/// A whole file mapped read-only. The mapping is page aligned, so typed
/// views of aligned offsets inside it are aligned too.
pub struct Mapped {
    map: Option<Mmap>,
}

impl Mapped {
    /// Maps `path`, with errors that name the file.
    pub fn open(path: &Path) -> Result<Self> {
        let shown = path.display();
        let meta = std::fs::metadata(path).with_context(|| format!("cannot read {shown}"))?;
        if meta.is_dir() {
            bail!("{shown} is a directory, expected a file");
        }
        if !meta.is_file() {
            bail!(
                "{shown} is not a regular file (a device, pipe or socket); give the path of a file"
            );
        }
        let file = File::open(path).with_context(|| format!("cannot open {shown}"))?;
        if meta.len() == 0 {
            return Ok(Mapped { map: None });
        }
        Ok(Mapped {
            map: Some(map(&file).with_context(|| format!("cannot map {shown} into memory"))?),
        })
    }
}

#[allow(unsafe_code)]
fn map(file: &File) -> std::io::Result<Mmap> {
    // SAFETY: mapping is unsafe because another process could modify or
    // truncate the file while it is mapped, changing bytes behind a shared
    // reference (or faulting on access). The tool maps model and checkpoint
    // files it only reads, for the length of one command; changing them
    // concurrently is outside its contract. Everything read from the map is
    // validated before use.
    unsafe { Mmap::map(file) }
}

impl Deref for Mapped {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }
}
