//! Training: losses, the run configuration, data preparation, the loop with
//! validation, checkpoints and resume.

pub mod checkpoint;
pub mod config;
pub mod curve;
pub mod export;
pub mod loss;
pub mod parallel;
pub mod prepare;
pub mod trainer;

pub use checkpoint::{EpochRecord, RunDir, RunState};
pub use config::{LossKind, Schedule, TrainConfig};
pub use export::{PROVENANCE_KEY, export_run, provenance, read_provenance, trained_on_every_image};
pub use trainer::{Event, Outcome, Trainer};
