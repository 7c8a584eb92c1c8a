//! Host-side file formats: official torch checkpoints (`pth`), their conversion to safetensors
//! (`convert`), safetensors weights (`weights`), NumPy arrays (`npy`) and images (`image`).
//!
//! Every writer here is atomic: it writes a temporary file in the destination's folder and
//! renames it over the destination only once everything is written, so a failed or interrupted
//! write never leaves a truncated file under the final name.

pub mod convert;
pub mod image;
pub mod npy;
pub mod pth;
pub mod weights;

use crate::error::{Error, Result};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// Write `path` atomically: `body` writes into a buffered temporary file beside `path`, which is
/// flushed, synced and renamed over `path`. On any error the temporary file is removed.
pub fn write_atomic<F>(path: &Path, body: F) -> Result<()>
where
    F: FnOnce(&mut BufWriter<File>) -> Result<()>,
{
    let tmp = temp_path(path)?;
    let result = (|| {
        let file = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let mut w = BufWriter::with_capacity(1 << 20, file);
        body(&mut w)?;
        w.flush().map_err(|e| Error::io(path, e))?;
        let file = w
            .into_inner()
            .map_err(|e| Error::io(path, e.into_error()))?;
        file.sync_all().map_err(|e| Error::io(path, e))?;
        drop(file);
        std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// `<dir>/.<name>.<pid>.tmp` beside `path`.
fn temp_path(path: &Path) -> Result<PathBuf> {
    let name = path
        .file_name()
        .ok_or_else(|| Error::Invalid(format!("{}: not a file path", path.display())))?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    Ok(dir.join(tmp_name))
}

/// Map an I/O error while writing `path`.
pub(crate) fn werr(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::io(path, e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_or_leaves_nothing() {
        let dir = std::env::temp_dir().join(format!("unitok-atomic-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("out.bin");
        write_atomic(&p, |w| w.write_all(b"one").map_err(werr(&p))).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"one");
        let e = write_atomic(&p, |w| {
            w.write_all(b"partial").map_err(werr(&p))?;
            Err(Error::Invalid("stop".into()))
        });
        assert!(e.is_err());
        assert_eq!(
            std::fs::read(&p).unwrap(),
            b"one",
            "a failed write must not touch the destination"
        );
        let left: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left.len(), 1, "temporary file left behind: {left:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
