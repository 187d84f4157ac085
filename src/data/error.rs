//! Typed errors for every way a data source can fail.
//!
//! Every variant that concerns a file names it, and every variant that
//! concerns a position inside a file names the byte offset, so a user can
//! open the file in a hex editor and see the problem. User input (files,
//! directories, spec strings) only ever produces one of these values, never a
//! panic.

use std::path::{Path, PathBuf};

/// Errors produced while opening or parsing a data source.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The operating system refused to open, list or read a path.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file or directory being accessed.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },

    /// A file does not start with the magic number of the format it should hold.
    #[error(
        "{} is not the expected format: magic number 0x{found:08x}, expected 0x{expected:08x}",
        path.display()
    )]
    BadMagic {
        /// The offending file.
        path: PathBuf,
        /// The magic number the format requires.
        expected: u32,
        /// The magic number found in the file.
        found: u32,
    },

    /// A fixed-size structure (header, record) is cut short by the end of the file.
    #[error(
        "{} is truncated: the structure at byte offset {offset} needs {expected} bytes \
         but only {available} remain",
        path.display()
    )]
    Truncated {
        /// The offending file.
        path: PathBuf,
        /// Offset (in the decompressed stream) where the cut structure starts.
        offset: u64,
        /// Size of the structure in bytes.
        expected: u64,
        /// Bytes actually present from `offset` to the end.
        available: u64,
    },

    /// A header declares more payload than the file holds.
    #[error(
        "the header of {} promises {promised} bytes of data but only {available} exist",
        path.display()
    )]
    HeaderTooLarge {
        /// The offending file.
        path: PathBuf,
        /// Payload size the header declares (u128: the product of four u32 cannot overflow it).
        promised: u128,
        /// Payload bytes actually present.
        available: u64,
    },

    /// A header declares a payload beyond the size this crate will load, which
    /// guards against allocation bombs (a few bytes of gzip that inflate to terabytes).
    #[error(
        "the header of {} promises {promised} bytes of data, more than the limit of {limit} bytes",
        path.display()
    )]
    TooLarge {
        /// The offending file.
        path: PathBuf,
        /// Payload size the header declares.
        promised: u128,
        /// The most this crate loads from one file.
        limit: u64,
    },

    /// A compressed stream or an image could not be decoded.
    #[error("cannot decode {}: {message}", path.display())]
    Decode {
        /// The offending file.
        path: PathBuf,
        /// The decoder's own description of the problem.
        message: String,
    },

    /// A label byte is outside the dataset's class range.
    #[error(
        "{}: label {label} at byte offset {offset} is out of range (the dataset has {num_classes} classes)",
        path.display()
    )]
    BadLabel {
        /// The offending file.
        path: PathBuf,
        /// Offset of the label byte in the decompressed stream.
        offset: u64,
        /// The label value found.
        label: u32,
        /// Number of classes the format allows.
        num_classes: usize,
    },

    /// An image file and its label file disagree on the number of items.
    #[error(
        "{} holds {image_count} images but {} holds {label_count} labels",
        images.display(),
        labels.display()
    )]
    CountMismatch {
        /// The image file.
        images: PathBuf,
        /// Number of images it declares.
        image_count: usize,
        /// The label file.
        labels: PathBuf,
        /// Number of labels it declares.
        label_count: usize,
    },

    /// A file is well-formed byte-wise but its content makes no sense
    /// (zero-sized images, trailing bytes, no records, a malformed layout).
    #[error("{}: {message}", path.display())]
    Invalid {
        /// The offending file or directory.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },

    /// An image folder holds no PNG or JPEG file.
    #[error("{} holds no PNG or JPEG images (looked for *.png, *.jpg, *.jpeg)", path.display())]
    EmptyFolder {
        /// The folder searched.
        path: PathBuf,
    },

    /// The files of a dataset are not where they were looked for.
    #[error("dataset files missing: {} does not exist; {hint}", path.display())]
    Missing {
        /// The first path found missing.
        path: PathBuf,
        /// How to obtain the files.
        hint: String,
    },

    /// A dataset spec string matches none of the accepted forms.
    #[error("unknown dataset spec {spec:?}; accepted forms: {accepted}")]
    UnknownSpec {
        /// The spec as given.
        spec: String,
        /// The accepted forms, comma separated.
        accepted: &'static str,
    },

    /// An option passed by code is out of range (zero batch size, zero image size).
    #[error("invalid data option: {0}")]
    Config(String),
}

impl DataError {
    /// Shorthand for [`DataError::Io`].
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// Shorthand for [`DataError::Invalid`].
    pub(crate) fn invalid(path: &Path, message: impl Into<String>) -> Self {
        DataError::Invalid {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }
}
