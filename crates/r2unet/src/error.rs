//! The library's one error type. Every variant a user can cause names the file
//! (or tensor, or flag) and what was expected.

use std::path::PathBuf;

/// Errors returned by the r2unet library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file that could not be read or written.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// A safetensors file could not be parsed.
    #[error("{path}: not a valid safetensors file: {reason}")]
    Safetensors {
        /// The offending file.
        path: PathBuf,
        /// What the parser said.
        reason: String,
    },
    /// A JSON file (model config) could not be parsed or does not describe a model.
    #[error("{path}: invalid model config JSON: {reason}")]
    Config {
        /// The offending file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// A weights file lacks a tensor the model needs.
    #[error("{path}: tensor `{tensor}` is missing (the model config expects it)")]
    MissingTensor {
        /// The weights file.
        path: PathBuf,
        /// PyTorch-style name of the missing tensor.
        tensor: String,
    },
    /// A weights file holds tensors the model does not have.
    #[error(
        "{path}: {count} tensor(s) do not belong to this model, e.g. `{example}` (wrong model kind, depth or batch-norm mode?)"
    )]
    UnexpectedTensors {
        /// The weights file.
        path: PathBuf,
        /// How many tensors were left over.
        count: usize,
        /// One of them.
        example: String,
    },
    /// A tensor's shape does not fit the model config.
    #[error("{path}: tensor `{tensor}` has shape {found:?}, the model config expects {expected:?}")]
    ShapeMismatch {
        /// The weights file.
        path: PathBuf,
        /// PyTorch-style tensor name.
        tensor: String,
        /// Shape the config implies.
        expected: Vec<usize>,
        /// Shape in the file.
        found: Vec<usize>,
    },
    /// A tensor's element type is not supported.
    #[error("{path}: tensor `{tensor}` has dtype {dtype}, expected F32 or F64")]
    DType {
        /// The weights file.
        path: PathBuf,
        /// PyTorch-style tensor name.
        tensor: String,
        /// The dtype found.
        dtype: String,
    },
    /// An image or mask file could not be decoded.
    #[error("{path}: cannot read image: {reason}")]
    Image {
        /// The offending file.
        path: PathBuf,
        /// What the decoder said.
        reason: String,
    },
    /// An image's header claims more pixels than allowed; nothing was decoded.
    #[error(
        "{path}: image is {width}x{height} = {pixels} pixels, over the limit of {limit} pixels (raise the pixel limit if the file is trusted)"
    )]
    TooLarge {
        /// The offending file.
        path: PathBuf,
        /// Width from the header.
        width: u64,
        /// Height from the header.
        height: u64,
        /// width * height.
        pixels: u64,
        /// The configured limit.
        limit: u64,
    },
    /// A label or mask does not have the size of its image.
    #[error("{path}: mask is {found_w}x{found_h}, its image {image} is {expected_w}x{expected_h}")]
    MaskSize {
        /// The mask file.
        path: PathBuf,
        /// The image it belongs to.
        image: PathBuf,
        /// Image width.
        expected_w: usize,
        /// Image height.
        expected_h: usize,
        /// Mask width.
        found_w: usize,
        /// Mask height.
        found_h: usize,
    },
    /// A label holds more than two distinct values.
    #[error(
        "{path}: label is not binary, it holds the values {values} (expected two values such as 0/1 or 0/255; or give a label threshold T to binarise at T of the full scale)"
    )]
    NonBinaryLabel {
        /// The label file.
        path: PathBuf,
        /// Some of the distinct values found.
        values: String,
    },
    /// A dataset folder does not have the expected layout.
    #[error("{path}: {reason}")]
    Layout {
        /// The folder or file concerned.
        path: PathBuf,
        /// What was expected.
        reason: String,
    },
    /// A value given by the user is out of range or malformed.
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// Which setting.
        what: String,
        /// What was expected.
        reason: String,
    },
    /// The requested compute device is not available in this build or on this machine.
    #[error("{0}")]
    Device(String),
}

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// An invalid user setting.
    pub fn invalid(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Invalid {
            what: what.into(),
            reason: reason.into(),
        }
    }
}
