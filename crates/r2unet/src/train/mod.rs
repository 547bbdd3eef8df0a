//! Training: losses (and, later, the training loop and checkpoints).

pub mod loss;
