//! The error type of every fallible exprans operation.

use std::path::PathBuf;

/// What kind of failure an [`Error`] is, whatever tensor or file it concerns: what a caller
/// matches on.
///
/// ```
/// use exprans::{Archive, ErrorKind};
/// let err = Archive::from_bytes(b"not a safetensors file").unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::Invalid);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// An operating-system I/O error.
    Io,
    /// The data is damaged: a checksum mismatch, an impossible field, a stream that does not
    /// decode.
    Corrupt,
    /// The input is not something exprans accepts (not safetensors, inconsistent header, bad
    /// arguments).
    Invalid,
    /// A well-formed input this build cannot handle (another format version).
    Unsupported,
    /// A GPU failure: no adapter, limits too small, validation, out of memory, device lost.
    Gpu,
}

/// Everything that can go wrong in exprans.
///
/// Messages are one line (text that comes from a file, such as a tensor name, is escaped) and
/// say what is wrong in the library's terms; the command-line tool adds the option to use.
/// [`Error::kind`] tells the kind of failure, [`Error::tensor`] and [`Error::path`] what it
/// concerns.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system I/O error.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// See [`ErrorKind::Corrupt`].
    #[error("corrupt data: {0}")]
    Corrupt(String),
    /// See [`ErrorKind::Invalid`].
    #[error("invalid input: {0}")]
    Invalid(String),
    /// See [`ErrorKind::Unsupported`].
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// See [`ErrorKind::Gpu`].
    #[error("GPU: {0}")]
    Gpu(String),
    /// An error about one tensor of a file.
    #[error("{}", tensor_message(name, source))]
    Tensor {
        /// The tensor's name, as the file spells it.
        name: String,
        /// What went wrong with it.
        source: Box<Error>,
    },
    /// An error about a specific file.
    #[error("{}: {source}", quote_path(path))]
    File {
        /// The file concerned.
        path: PathBuf,
        /// What went wrong with it.
        source: Box<Error>,
    },
}

/// `kind: tensor 'name': message`, the kind's prefix first as for every other error.
fn tensor_message(name: &str, source: &Error) -> String {
    let (prefix, message) = match source {
        Error::Corrupt(m) => ("corrupt data: ", m.as_str()),
        Error::Invalid(m) => ("invalid input: ", m.as_str()),
        Error::Unsupported(m) => ("unsupported: ", m.as_str()),
        Error::Gpu(m) => ("GPU: ", m.as_str()),
        other => return format!("tensor {}: {other}", quote(name)),
    };
    format!("{prefix}tensor {}: {message}", quote(name))
}

/// A file-provided string as it may appear in a message: in single quotes, with control
/// characters, quotes and backslashes escaped, so that no file can print a line break, a
/// terminal escape sequence or a forged message.
///
/// ```
/// assert_eq!(exprans::quote("a\nb'"), r"'a\nb\''");
/// ```
pub fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('\'');
    for c in text.chars() {
        match c {
            '\'' => out.push_str("\\'"),
            '"' => out.push('"'),
            c => out.extend(c.escape_debug()),
        }
    }
    out.push('\'');
    out
}

fn quote_path(path: &std::path::Path) -> String {
    let text = path.to_string_lossy();
    if text.chars().any(|c| c.is_control()) {
        text.escape_debug().to_string()
    } else {
        text.into_owned()
    }
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

    /// The kind of failure, through any tensor or file it is attached to.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Io(_) => ErrorKind::Io,
            Error::Corrupt(_) => ErrorKind::Corrupt,
            Error::Invalid(_) => ErrorKind::Invalid,
            Error::Unsupported(_) => ErrorKind::Unsupported,
            Error::Gpu(_) => ErrorKind::Gpu,
            Error::Tensor { source, .. } | Error::File { source, .. } => source.kind(),
        }
    }

    /// The tensor the error concerns, if any.
    pub fn tensor(&self) -> Option<&str> {
        match self {
            Error::Tensor { name, .. } => Some(name),
            Error::File { source, .. } => source.tensor(),
            _ => None,
        }
    }

    /// The file the error concerns, if any.
    pub fn path(&self) -> Option<&std::path::Path> {
        match self {
            Error::File { path, .. } => Some(path),
            _ => None,
        }
    }

    /// The error without the tensor and file it is attached to.
    pub fn root(&self) -> &Error {
        match self {
            Error::Tensor { source, .. } | Error::File { source, .. } => source.root(),
            other => other,
        }
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

    /// Attaches the tensor it concerns (once: an error that already names one keeps it).
    pub fn in_tensor(self, name: &str) -> Error {
        match self {
            Error::Tensor { .. } | Error::File { .. } => self,
            other => Error::Tensor {
                name: name.to_string(),
                source: Box::new(other),
            },
        }
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensor_names_from_files_cannot_break_the_line() {
        let e = Error::corrupt("stored bytes fail their checksum")
            .in_tensor("w\nexprans: ok\u{1b}[2J'");
        let text = e.to_string();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(!text.contains('\u{1b}'), "{text}");
        assert!(
            text.starts_with("corrupt data: tensor 'w\\nexprans: ok"),
            "{text}"
        );
        assert_eq!(e.kind(), ErrorKind::Corrupt);
        assert_eq!(e.tensor(), Some("w\nexprans: ok\u{1b}[2J'"));
    }

    #[test]
    fn kind_and_names_survive_wrapping() {
        let e = Error::Gpu("out of memory".into())
            .in_tensor("a")
            .in_file("m.safetensors");
        assert_eq!(e.kind(), ErrorKind::Gpu);
        assert_eq!(e.tensor(), Some("a"));
        assert_eq!(
            e.to_string(),
            "m.safetensors: GPU: tensor 'a': out of memory"
        );
        assert!(matches!(e.root(), Error::Gpu(_)));
    }
}
