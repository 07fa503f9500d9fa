//! The error type of every fallible exprans operation.

use std::path::PathBuf;

/// Everything that can go wrong in exprans. Messages are one line and name the problem; file
/// paths are added by [`Error::in_file`] where a file is involved.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An operating-system I/O error.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The data is damaged: a checksum mismatch, an impossible field, a stream that does not decode.
    #[error("corrupt data: {0}")]
    Corrupt(String),
    /// The input is not something exprans accepts (not safetensors, inconsistent header, ...).
    #[error("invalid input: {0}")]
    Invalid(String),
    /// A GPU failure: no adapter, limits too small, device lost, out of memory.
    #[error("GPU: {0}")]
    Gpu(String),
    /// An error about a specific file.
    #[error("{}: {source}", path.display())]
    File {
        /// The file concerned.
        path: PathBuf,
        /// What went wrong with it.
        source: Box<Error>,
    },
}

impl Error {
    /// A [`Error::Corrupt`] with this message.
    pub fn corrupt(msg: impl Into<String>) -> Error {
        Error::Corrupt(msg.into())
    }
    /// An [`Error::Invalid`] with this message.
    pub fn invalid(msg: impl Into<String>) -> Error {
        Error::Invalid(msg.into())
    }
    /// Attaches a file path to the error (once: an error that already names a file keeps it).
    pub fn in_file(self, path: impl Into<PathBuf>) -> Error {
        match self {
            Error::File { .. } => self,
            other => Error::File {
                path: path.into(),
                source: Box::new(other),
            },
        }
    }
    /// Prefixes the message with the tensor it concerns.
    pub fn in_tensor(self, name: &str) -> Error {
        match self {
            Error::Corrupt(m) => Error::Corrupt(format!("tensor '{name}': {m}")),
            Error::Invalid(m) => Error::Invalid(format!("tensor '{name}': {m}")),
            Error::Gpu(m) => Error::Gpu(format!("tensor '{name}': {m}")),
            other => other,
        }
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
