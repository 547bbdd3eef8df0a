//! Evaluation metrics of binary segmentations, as pure functions: confusion
//! counts and the threshold metrics derived from them (sensitivity,
//! specificity, precision, accuracy, F1 = Dice, Jaccard) in [`confusion`], and
//! the exact ranking metrics from probabilities (ROC AUC, average precision,
//! curves, F1-optimal threshold) in [`roc`].
//!
//! Every function takes an optional field-of-view mask and counts only the
//! pixels inside it (the retina protocol); pass `None` for whole-image
//! metrics. Per-image metrics come from one image's slices; pooled metrics
//! from summed [`Confusion`]s and one [`RocAccumulator`] fed every image —
//! say which one a report holds.
//!
//! ```
//! use r2unet::eval::{Confusion, Metrics, RocAccumulator, ZeroDivision};
//!
//! let probs = [0.9, 0.2, 0.6, 0.1];
//! let labels = [1, 0, 0, 0];
//! let fov = [1, 1, 1, 0];
//! let one = Metrics::evaluate(&probs, &labels, Some(&fov), 0.5).unwrap();
//! assert_eq!(one.auc, Some(1.0));
//!
//! // Pooled over images: add the counts, accumulate the scores.
//! let mut scores = RocAccumulator::new();
//! let mut counts = Confusion::default();
//! for _image in 0..2 {
//!     counts += Confusion::from_probs(&probs, &labels, Some(&fov), 0.5);
//!     scores.push(&probs, &labels, Some(&fov)).unwrap();
//! }
//! let sorted = scores.finish();
//! let pooled = Metrics::new(counts, sorted.auc(), sorted.average_precision(), ZeroDivision::One);
//! assert_eq!(pooled.f1, 2.0 / 3.0); // 2tp / (2tp + fp + fn) = 4 / 6
//! ```

pub mod bootstrap;
pub mod confusion;
pub mod evaluate;
pub mod html;
pub mod paired;
pub mod report;
pub mod roc;

pub use confusion::{Confusion, Metrics, ZeroDivision};
pub use roc::{
    CurvePoint, PrPoint, RocAccumulator, RocPoint, SortedScores, average_precision,
    f1_optimal_threshold, pr_curve, roc_auc, roc_curve, thin_curve,
};
