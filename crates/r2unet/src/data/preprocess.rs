//! Preprocessing steps of the paper protocols (in progress).
