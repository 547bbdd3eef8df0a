//! The library's integration tests, one binary with a module per concept.

mod data_files;
mod data_real;
mod import;
mod model_shapes;
mod parity;
mod preprocess;
mod train;
mod weights;

use std::path::PathBuf;

/// Folder of the committed test fixtures.
pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}
