//! Errors are values: every failure a user can cause names its cause.

use std::fmt;

/// A tensor shape, printed as `[2, 3, 4]`.
#[derive(Clone, PartialEq, Eq)]
pub struct ShapeList(pub Vec<Vec<usize>>);

impl fmt::Debug for ShapeList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|s| format!("{s:?}")).collect();
        write!(f, "{}", parts.join(" and "))
    }
}

/// Everything that can go wrong in darkmatter.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No adapter matched the request (or none exists at all).
    #[error("no GPU adapter found: {0}")]
    NoAdapter(String),

    /// The adapter refused to create a device.
    #[error("could not create a device on adapter '{adapter}': {reason}")]
    RequestDevice { adapter: String, reason: String },

    /// Operand shapes do not fit the operation.
    #[error("shape mismatch in {op}: {shapes:?} ({reason})")]
    Shape {
        op: &'static str,
        shapes: ShapeList,
        reason: String,
    },

    /// A request exceeds one of the device's limits.
    #[error("{what} needs {requested} but the device limit {limit} is {allowed}")]
    Limit {
        what: String,
        limit: &'static str,
        requested: u64,
        allowed: u64,
    },

    /// A failure already reported elsewhere (by rank 0 of a distributed
    /// run): exit with an error, print nothing.
    #[error("")]
    Quiet,

    /// Another rank of a distributed run failed.
    #[error("rank {rank} of {size}: {message}")]
    Rank {
        rank: usize,
        size: usize,
        message: String,
    },

    /// A tensor's data was already handed back to the buffer pool.
    #[error("{0} was released: its buffer went back to the pool (read values before backward)")]
    Released(String),

    /// An argument outside what the operation accepts.
    #[error("invalid argument to {op}: {reason}")]
    Invalid { op: &'static str, reason: String },

    /// A checkpoint file could not be written, read or parsed.
    #[error("checkpoint {path}: {reason}")]
    Checkpoint { path: String, reason: String },

    /// A tensor a module needs is missing from a checkpoint, or has another
    /// shape or type there.
    #[error(
        "checkpoint {path}: tensor '{tensor}' should be {dtype} {expected:?} but is {}",
        .found.as_deref().unwrap_or("missing")
    )]
    CheckpointTensor {
        path: String,
        tensor: String,
        dtype: &'static str,
        expected: Vec<usize>,
        /// The stored dtype and shape, or `None` if the tensor is missing.
        found: Option<String>,
    },

    /// A tensor holds a NaN or an infinity where only finite values may be:
    /// a checkpoint being written or read.
    #[error("{path}: tensor '{tensor}' holds a non-finite value ({value} at element {index})")]
    NonFinite {
        path: String,
        tensor: String,
        index: usize,
        value: f32,
    },

    /// A dataset could not be read.
    #[error(transparent)]
    Data(#[from] crate::data::DataError),

    /// A file could not be written or read.
    #[error("{path}: {reason}")]
    Io { path: String, reason: String },

    /// Mapping a buffer for readback failed, or the device reported an error.
    #[error("device error: {0}")]
    Device(String),
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn shape(op: &'static str, shapes: &[&[usize]], reason: impl Into<String>) -> Self {
        Error::Shape {
            op,
            shapes: ShapeList(shapes.iter().map(|s| s.to_vec()).collect()),
            reason: reason.into(),
        }
    }

    pub(crate) fn invalid(op: &'static str, reason: impl Into<String>) -> Self {
        Error::Invalid {
            op,
            reason: reason.into(),
        }
    }
}
