//! Synthetic retina generator (in progress).
