//! Confusion counts of a thresholded binary segmentation and the metrics
//! derived from them: sensitivity, specificity, precision, accuracy, F1 (=
//! Dice) and Jaccard (= IoU).
//!
//! Counting is done pixel by pixel with logical AND of prediction, label and
//! field-of-view mask — never by adding masks, the bug behind "all metrics read
//! 0" in public R2U-Net code. Counts are plain `u64`s, so pooling several images
//! is `+` (or `.sum()`), and every ratio says what it does when it is 0/0
//! through a [`ZeroDivision`] policy.

use std::iter::Sum;
use std::ops::{Add, AddAssign};

use serde::{Deserialize, Serialize};

use super::roc::RocAccumulator;
use crate::error::Result;

/// What a metric is when its ratio is 0/0 (scikit-learn's `zero_division`).
///
/// Which ratios can be 0/0: sensitivity when the label has no positives,
/// specificity when it has no negatives, precision when nothing is predicted
/// positive, F1 and Jaccard only when label and prediction are both empty
/// (they are computed as `2tp / (2tp + fp + fn)` and `tp / (tp + fp + fn)`,
/// not from precision and recall), accuracy only when no pixel was counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ZeroDivision {
    /// 0/0 is 1: nothing to find and nothing wrongly found is a perfect
    /// score. The medical-imaging convention (an empty mask predicted empty
    /// has Dice 1), and the default.
    #[default]
    One,
    /// 0/0 is 0 (scikit-learn's default value, without its warning).
    Zero,
    /// 0/0 is NaN, for callers that skip undefined values when averaging.
    /// (`serde_json` writes NaN as `null`.)
    Nan,
}

impl ZeroDivision {
    /// `num / den`, or this policy's value when `den == 0`.
    pub fn ratio(self, num: u64, den: u64) -> f64 {
        if den != 0 {
            return num as f64 / den as f64;
        }
        match self {
            ZeroDivision::One => 1.0,
            ZeroDivision::Zero => 0.0,
            ZeroDivision::Nan => f64::NAN,
        }
    }
}

/// Pixel counts of a binary prediction against a label.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confusion {
    /// Predicted positive, labelled positive.
    pub tp: u64,
    /// Predicted positive, labelled negative.
    pub fp: u64,
    /// Predicted negative, labelled negative.
    pub tn: u64,
    /// Predicted negative, labelled positive (`fn` is a keyword).
    pub fn_: u64,
}

/// Panics unless `labels` and the optional `fov` have `n` elements.
fn assert_lengths(what: &str, n: usize, labels: &[u8], fov: Option<&[u8]>) {
    assert_eq!(
        labels.len(),
        n,
        "{what} ({n}) and labels ({}) differ in length",
        labels.len()
    );
    if let Some(fov) = fov {
        assert_eq!(
            fov.len(),
            n,
            "{what} ({n}) and FOV mask ({}) differ in length",
            fov.len()
        );
    }
}

impl Confusion {
    /// Counts the pixels inside `fov` (all pixels when `None`) of the
    /// prediction `prob >= threshold` against `labels`.
    ///
    /// A label or FOV value counts as positive / inside when it is nonzero, so
    /// 0/1 and 0/255 masks both work. A NaN probability never reaches the
    /// threshold and counts as a negative prediction.
    ///
    /// # Panics
    ///
    /// If `labels` or `fov` do not have the length of `probs` (a programming
    /// error: the message gives the lengths).
    pub fn from_probs(probs: &[f32], labels: &[u8], fov: Option<&[u8]>, threshold: f32) -> Self {
        assert_lengths("probabilities", probs.len(), labels, fov);
        let mut c = Confusion::default();
        for (i, (&p, &y)) in probs.iter().zip(labels).enumerate() {
            if fov.is_none_or(|m| m[i] != 0) {
                c.count(p >= threshold, y != 0);
            }
        }
        c
    }

    /// Counts the pixels inside `fov` (all pixels when `None`) of an already
    /// binary prediction against `labels`; nonzero means positive / inside.
    ///
    /// # Panics
    ///
    /// If `labels` or `fov` do not have the length of `predicted`.
    pub fn from_masks(predicted: &[u8], labels: &[u8], fov: Option<&[u8]>) -> Self {
        assert_lengths("predictions", predicted.len(), labels, fov);
        let mut c = Confusion::default();
        for (i, (&p, &y)) in predicted.iter().zip(labels).enumerate() {
            if fov.is_none_or(|m| m[i] != 0) {
                c.count(p != 0, y != 0);
            }
        }
        c
    }

    /// Adds one pixel.
    fn count(&mut self, predicted: bool, actual: bool) {
        match (predicted, actual) {
            (true, true) => self.tp += 1,
            (true, false) => self.fp += 1,
            (false, false) => self.tn += 1,
            (false, true) => self.fn_ += 1,
        }
    }

    /// Number of pixels counted.
    pub fn total(&self) -> u64 {
        self.tp + self.fp + self.tn + self.fn_
    }

    /// Sensitivity (recall, true-positive rate): `tp / (tp + fn)`.
    pub fn sensitivity(&self, zero_division: ZeroDivision) -> f64 {
        zero_division.ratio(self.tp, self.tp + self.fn_)
    }

    /// Specificity (true-negative rate): `tn / (tn + fp)`.
    pub fn specificity(&self, zero_division: ZeroDivision) -> f64 {
        zero_division.ratio(self.tn, self.tn + self.fp)
    }

    /// Precision (positive predictive value): `tp / (tp + fp)`.
    pub fn precision(&self, zero_division: ZeroDivision) -> f64 {
        zero_division.ratio(self.tp, self.tp + self.fp)
    }

    /// Accuracy: `(tp + tn) / total`.
    pub fn accuracy(&self, zero_division: ZeroDivision) -> f64 {
        zero_division.ratio(self.tp + self.tn, self.total())
    }

    /// F1 score, equal to the Dice coefficient of binary masks:
    /// `2tp / (2tp + fp + fn)`.
    pub fn f1(&self, zero_division: ZeroDivision) -> f64 {
        zero_division.ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn_)
    }

    /// Jaccard similarity (intersection over union): `tp / (tp + fp + fn)`.
    pub fn jaccard(&self, zero_division: ZeroDivision) -> f64 {
        zero_division.ratio(self.tp, self.tp + self.fp + self.fn_)
    }
}

impl Add for Confusion {
    type Output = Confusion;

    /// Pools the counts of two images (or image sets).
    fn add(self, rhs: Confusion) -> Confusion {
        Confusion {
            tp: self.tp + rhs.tp,
            fp: self.fp + rhs.fp,
            tn: self.tn + rhs.tn,
            fn_: self.fn_ + rhs.fn_,
        }
    }
}

impl AddAssign for Confusion {
    fn add_assign(&mut self, rhs: Confusion) {
        *self = *self + rhs;
    }
}

impl Sum for Confusion {
    fn sum<I: Iterator<Item = Confusion>>(iter: I) -> Confusion {
        iter.fold(Confusion::default(), Add::add)
    }
}

/// Every metric of one image, or of a pooled set of pixels.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// The counts the threshold metrics come from.
    pub confusion: Confusion,
    /// See [`Confusion::sensitivity`].
    pub sensitivity: f64,
    /// See [`Confusion::specificity`].
    pub specificity: f64,
    /// See [`Confusion::precision`].
    pub precision: f64,
    /// See [`Confusion::accuracy`].
    pub accuracy: f64,
    /// F1 = Dice, see [`Confusion::f1`].
    pub f1: f64,
    /// See [`Confusion::jaccard`].
    pub jaccard: f64,
    /// Exact ROC AUC from the probabilities; `None` when one class is absent
    /// or the probabilities were not given.
    pub auc: Option<f64>,
    /// Average precision from the probabilities; `None` when there are no
    /// positives or the probabilities were not given.
    pub average_precision: Option<f64>,
}

impl Metrics {
    /// Bundles the threshold metrics of `confusion` (with `zero_division`
    /// for every 0/0) with ranking metrics computed elsewhere.
    pub fn new(
        confusion: Confusion,
        auc: Option<f64>,
        average_precision: Option<f64>,
        zero_division: ZeroDivision,
    ) -> Self {
        let z = zero_division;
        Metrics {
            confusion,
            sensitivity: confusion.sensitivity(z),
            specificity: confusion.specificity(z),
            precision: confusion.precision(z),
            accuracy: confusion.accuracy(z),
            f1: confusion.f1(z),
            jaccard: confusion.jaccard(z),
            auc,
            average_precision,
        }
    }

    /// All metrics of one probability map inside `fov` (all pixels when
    /// `None`): the threshold metrics of `prob >= threshold` with
    /// [`ZeroDivision::One`], and the exact AUC and average precision.
    ///
    /// To pool several images, sum their [`Confusion`]s, push them all into
    /// one [`RocAccumulator`], and call [`Metrics::new`].
    ///
    /// # Errors
    ///
    /// If a probability inside the FOV is NaN.
    ///
    /// # Panics
    ///
    /// If `labels` or `fov` do not have the length of `probs`.
    pub fn evaluate(
        probs: &[f32],
        labels: &[u8],
        fov: Option<&[u8]>,
        threshold: f32,
    ) -> Result<Self> {
        let confusion = Confusion::from_probs(probs, labels, fov, threshold);
        let mut scores = RocAccumulator::new();
        scores.push(probs, labels, fov)?;
        let sorted = scores.finish();
        Ok(Metrics::new(
            confusion,
            sorted.auc(),
            sorted.average_precision(),
            ZeroDivision::One,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: ZeroDivision = ZeroDivision::One;

    #[test]
    fn hand_computed_metrics() {
        // Threshold 0.5 with `>=`: predictions [1,1,0,0,1,0,1,0] (0.5 itself is positive).
        // labels                                [1,1,1,0,0,0,0,0]
        // tp = 2 (0, 1), fn = 1 (2), fp = 2 (4, 6), tn = 3 (3, 5, 7).
        let probs = [0.9, 0.6, 0.4, 0.2, 0.7, 0.1, 0.5, 0.3];
        let labels = [1, 1, 1, 0, 0, 0, 0, 0];
        let c = Confusion::from_probs(&probs, &labels, None, 0.5);
        assert_eq!(
            c,
            Confusion {
                tp: 2,
                fp: 2,
                tn: 3,
                fn_: 1
            }
        );
        assert_eq!(c.total(), 8);
        // sensitivity = 2/3, specificity = 3/5, precision = 2/4, accuracy = 5/8,
        // f1 = 2*2 / (2*2 + 2 + 1) = 4/7, jaccard = 2 / (2 + 2 + 1) = 2/5.
        // Cross-check, with y and p as above and pr = [int(v >= 0.5) for v in p]:
        // (recall_score, precision_score, accuracy_score, f1_score, jaccard_score)(y, pr)
        //   -> 0.6666666666666666 0.5 0.625 0.5714285714285714 0.4
        assert_eq!(c.sensitivity(ONE), 2.0 / 3.0);
        assert_eq!(c.specificity(ONE), 3.0 / 5.0);
        assert_eq!(c.precision(ONE), 0.5);
        assert_eq!(c.accuracy(ONE), 0.625);
        assert_eq!(c.f1(ONE), 4.0 / 7.0);
        assert_eq!(c.jaccard(ONE), 0.4);
        // Strictly above 0.5 instead would turn pixel 6 into a true negative.
        let c = Confusion::from_probs(&probs, &labels, None, f32::from_bits(0.5f32.to_bits() + 1));
        assert_eq!(
            c,
            Confusion {
                tp: 2,
                fp: 1,
                tn: 4,
                fn_: 1
            }
        );
    }

    #[test]
    fn pixels_outside_the_fov_are_ignored() {
        let probs = [0.9, 0.8, 0.1, 0.2, 0.9, 0.1];
        let labels = [1, 0, 0, 1, 0, 1];
        let fov = [1, 1, 1, 1, 0, 0];
        // Inside: pixel 0 tp, 1 fp, 2 tn, 3 fn. Outside: 4 would be an fp, 5 an fn.
        let inside = Confusion {
            tp: 1,
            fp: 1,
            tn: 1,
            fn_: 1,
        };
        assert_eq!(
            Confusion::from_probs(&probs, &labels, Some(&fov), 0.5),
            inside
        );
        // Without the FOV both outside pixels count.
        let all = Confusion::from_probs(&probs, &labels, None, 0.5);
        assert_eq!(
            all,
            Confusion {
                tp: 1,
                fp: 2,
                tn: 1,
                fn_: 2
            }
        );
        // A 0/255 mask is the same mask. Adding boolean masks instead of AND-ing
        // them (`(pred + label) == 2` on bools is OR, never 2; or a 0/255 FOV
        // summed with a 0/1 prediction) gives tp = 0 here; AND gives 1.
        let fov255 = fov.map(|v| v * 255);
        assert_eq!(
            Confusion::from_probs(&probs, &labels, Some(&fov255), 0.5),
            inside
        );
        let predicted = probs.map(|p| u8::from(p >= 0.5));
        assert_eq!(
            Confusion::from_masks(&predicted, &labels, Some(&fov)),
            inside
        );
    }

    #[test]
    fn empty_label_predicted_empty() {
        let c = Confusion::from_masks(&[0, 0, 0], &[0, 0, 0], None);
        assert_eq!(
            c,
            Confusion {
                tp: 0,
                fp: 0,
                tn: 3,
                fn_: 0
            }
        );
        // y = [0,0,0]: f1_score, jaccard_score, precision_score, recall_score(y, y, zero_division=1)
        //   -> 1.0 1.0 1.0 1.0
        for metric in [
            Confusion::f1,
            Confusion::jaccard,
            Confusion::precision,
            Confusion::sensitivity,
        ] {
            assert_eq!(metric(&c, ZeroDivision::One), 1.0);
            // f1_score(y, y, zero_division=0), jaccard_score(...) -> 0.0 0.0
            assert_eq!(metric(&c, ZeroDivision::Zero), 0.0);
            assert!(metric(&c, ZeroDivision::Nan).is_nan());
        }
        // Defined ratios do not depend on the policy: 3/3.
        assert_eq!(c.specificity(ZeroDivision::Zero), 1.0);
        assert_eq!(c.accuracy(ZeroDivision::Zero), 1.0);
        // Nothing predicted but a positive missed: F1 is 0/(0+0+1) = 0 whatever the policy.
        let missed = Confusion::from_masks(&[0, 0], &[1, 0], None);
        assert_eq!(missed.f1(ONE), 0.0);
        assert_eq!(missed.sensitivity(ONE), 0.0);
    }

    #[test]
    fn pooling_adds_counts() {
        let a = Confusion {
            tp: 1,
            fp: 2,
            tn: 3,
            fn_: 4,
        };
        let b = Confusion {
            tp: 10,
            fp: 20,
            tn: 30,
            fn_: 40,
        };
        let sum = Confusion {
            tp: 11,
            fp: 22,
            tn: 33,
            fn_: 44,
        };
        assert_eq!(a + b, sum);
        assert_eq!([a, b].into_iter().sum::<Confusion>(), sum);
        let mut c = a;
        c += b;
        assert_eq!(c, sum);
    }

    #[test]
    fn evaluate_bundles_everything() {
        // Same data as `hand_computed_metrics`.
        let probs = [0.9, 0.6, 0.4, 0.2, 0.7, 0.1, 0.5, 0.3];
        let labels = [1, 1, 1, 0, 0, 0, 0, 0];
        let m = Metrics::evaluate(&probs, &labels, None, 0.5).unwrap();
        assert_eq!(
            m.confusion,
            Confusion {
                tp: 2,
                fp: 2,
                tn: 3,
                fn_: 1
            }
        );
        assert_eq!(m.f1, 4.0 / 7.0);
        // Positive scores {0.9, 0.6, 0.4} beat negatives {0.7, 0.5, 0.3, 0.2, 0.1} in
        // 5 + 4 + 3 = 12 of 15 pairs: AUC = 12/15.
        // roc_auc_score([1,1,1,0,0,0,0,0], [0.9,0.6,0.4,0.2,0.7,0.1,0.5,0.3]) -> 0.8
        assert_eq!(m.auc, Some(0.8));
        let json = serde_json::to_string(&m).unwrap();
        assert!(json.contains("\"fn_\":1"), "{json}");
        // All-background image: no AUC, but F1 = 1 by the default policy.
        let m = Metrics::evaluate(&[0.1, 0.2], &[0, 0], None, 0.5).unwrap();
        assert_eq!((m.auc, m.average_precision, m.f1), (None, None, 1.0));
    }

    #[test]
    #[should_panic(expected = "probabilities (3) and labels (2) differ in length")]
    fn length_mismatch_panics() {
        Confusion::from_probs(&[0.1, 0.2, 0.3], &[0, 1], None, 0.5);
    }
}
