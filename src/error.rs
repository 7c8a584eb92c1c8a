//! Typed errors for the whole crate.
//!
//! Every failure a user can cause (a bad shape between ops, a tensor over an adapter limit,
//! a missing adapter, a malformed file) is one of these variants, and its message names the
//! op or file, the shapes and the limit involved. Nothing on an input path panics.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No usable adapter; the string says what was looked for and how to fix it.
    #[error("no GPU adapter: {0}")]
    NoAdapter(String),
    /// The adapter refused the device request.
    #[error("device request failed on {adapter}: {msg}")]
    Device { adapter: String, msg: String },
    /// Operand shapes do not fit the op.
    #[error("{op}: {msg} (operands: {shapes})")]
    Shape {
        op: String,
        msg: String,
        shapes: String,
    },
    /// A tensor or dispatch exceeds what the adapter allows.
    #[error("{op}: {what} needs {need}, over the adapter limit {limit_name} = {limit}")]
    Limit {
        op: String,
        what: String,
        need: u64,
        limit_name: &'static str,
        limit: u64,
    },
    /// The graph was used wrongly (unknown tensor, wrong data size, reading an unmarked tensor).
    #[error("graph: {0}")]
    Graph(String),
    /// The GPU driver or wgpu validation reported an error.
    #[error("GPU error: {0}")]
    Gpu(String),
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A file was read but its content is not what was expected.
    #[error("{}: {msg}", path.display())]
    Format { path: PathBuf, msg: String },
    /// A command-line argument or configuration value is invalid.
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn shape(op: impl Into<String>, msg: impl Into<String>, shapes: &[&[usize]]) -> Self {
        let shapes = shapes
            .iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        Error::Shape {
            op: op.into(),
            msg: msg.into(),
            shapes,
        }
    }
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
    pub fn format(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Error::Format {
            path: path.into(),
            msg: msg.into(),
        }
    }
}
