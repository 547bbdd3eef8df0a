//! Ranking metrics from probabilities: exact ROC AUC, average precision, the
//! ROC and precision-recall curves, and the threshold that maximises F1.
//!
//! Everything is computed exactly, by sorting the scores once (O(n log n),
//! 4 bytes per pixel), and agrees with scikit-learn: tied scores form one step
//! of the curve (`roc_auc_score`, equivalently the Mann–Whitney U with average
//! ranks; `average_precision_score` as the step-wise sum
//! `Σ (R_n − R_{n−1}) P_n` over distinct thresholds). A pixel is predicted
//! positive at threshold `t` when its score is `>= t`, as in
//! [`Confusion::from_probs`](super::Confusion::from_probs).
//!
//! [`RocAccumulator`] pools several images (push each, sort once) without
//! concatenating their probability maps; the free functions are shorthands for
//! one image.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Maps a score to a `u32` whose unsigned order is the score's numeric order
/// (`-0.0` is folded onto `0.0`, so the two tie as they do numerically).
fn key(score: f32) -> u32 {
    let bits = (score + 0.0).to_bits();
    if bits & 0x8000_0000 != 0 {
        !bits
    } else {
        bits | 0x8000_0000
    }
}

/// Inverse of [`key`].
fn score_of(key: u32) -> f32 {
    f32::from_bits(if key & 0x8000_0000 != 0 {
        key & 0x7fff_ffff
    } else {
        !key
    })
}

/// Collects (score, label) pairs of one or more images for the ranking
/// metrics; [`RocAccumulator::finish`] sorts them once.
#[derive(Debug, Clone, Default)]
pub struct RocAccumulator {
    /// Keys of the scores of positive pixels.
    pos: Vec<u32>,
    /// Keys of the scores of negative pixels.
    neg: Vec<u32>,
}

impl RocAccumulator {
    /// An empty accumulator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the pixels of one image that lie inside `fov` (all pixels when
    /// `None`). Nonzero label / FOV values mean positive / inside.
    ///
    /// # Errors
    ///
    /// If a score inside the FOV is NaN; the accumulator is then left as it
    /// was before the call.
    ///
    /// # Panics
    ///
    /// If `labels` or `fov` do not have the length of `scores`.
    pub fn push(&mut self, scores: &[f32], labels: &[u8], fov: Option<&[u8]>) -> Result<()> {
        let n = scores.len();
        assert_eq!(
            labels.len(),
            n,
            "scores ({n}) and labels ({}) differ in length",
            labels.len()
        );
        if let Some(fov) = fov {
            assert_eq!(
                fov.len(),
                n,
                "scores ({n}) and FOV mask ({}) differ in length",
                fov.len()
            );
        }
        let (pos_len, neg_len) = (self.pos.len(), self.neg.len());
        for (i, (&s, &y)) in scores.iter().zip(labels).enumerate() {
            if fov.is_some_and(|m| m[i] == 0) {
                continue;
            }
            if s.is_nan() {
                self.pos.truncate(pos_len);
                self.neg.truncate(neg_len);
                return Err(Error::invalid(
                    "scores",
                    format!("score {i} (inside the FOV) is NaN"),
                ));
            }
            if y != 0 { &mut self.pos } else { &mut self.neg }.push(key(s));
        }
        Ok(())
    }

    /// Number of positive pixels pushed so far.
    pub fn positives(&self) -> u64 {
        self.pos.len() as u64
    }

    /// Number of negative pixels pushed so far.
    pub fn negatives(&self) -> u64 {
        self.neg.len() as u64
    }

    /// Sorts the collected scores for the metrics.
    pub fn finish(mut self) -> SortedScores {
        self.pos.sort_unstable();
        self.neg.sort_unstable();
        SortedScores {
            pos: self.pos,
            neg: self.neg,
        }
    }
}

/// One point of the ROC curve: the rates of the prediction `score >= threshold`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RocPoint {
    /// False-positive rate, `fp / negatives`.
    pub fpr: f64,
    /// True-positive rate (sensitivity), `tp / positives`.
    pub tpr: f64,
    /// The score threshold (`+inf` for the starting point (0, 0)).
    pub threshold: f32,
}

/// One point of the precision-recall curve at `score >= threshold`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PrPoint {
    /// Recall (sensitivity), `tp / positives`.
    pub recall: f64,
    /// Precision, `tp / (tp + fp)`.
    pub precision: f64,
    /// The score threshold (`+inf` for the starting point (0, 1)).
    pub threshold: f32,
}

/// Counts when every pixel scoring `>= threshold` is predicted positive.
#[derive(Debug, Clone, Copy)]
struct Step {
    threshold: f32,
    tp: u64,
    fp: u64,
}

/// Scores of the positive and negative pixels, sorted; every ranking metric
/// is one pass over the distinct thresholds, from the highest down.
#[derive(Debug, Clone)]
pub struct SortedScores {
    /// Ascending keys of the positives' scores.
    pos: Vec<u32>,
    /// Ascending keys of the negatives' scores.
    neg: Vec<u32>,
}

impl SortedScores {
    /// Sorts the scores of the pixels of one image inside `fov`.
    ///
    /// # Errors
    ///
    /// If a score inside the FOV is NaN.
    ///
    /// # Panics
    ///
    /// If `labels` or `fov` do not have the length of `scores`.
    pub fn new(scores: &[f32], labels: &[u8], fov: Option<&[u8]>) -> Result<Self> {
        let mut acc = RocAccumulator::new();
        acc.push(scores, labels, fov)?;
        Ok(acc.finish())
    }

    /// Number of positive pixels.
    pub fn positives(&self) -> u64 {
        self.pos.len() as u64
    }

    /// Number of negative pixels.
    pub fn negatives(&self) -> u64 {
        self.neg.len() as u64
    }

    /// The cumulative counts at each distinct threshold, highest first.
    fn steps(&self) -> impl Iterator<Item = Step> + '_ {
        let (mut i, mut j) = (self.pos.len(), self.neg.len());
        std::iter::from_fn(move || {
            let top = match (i.checked_sub(1), j.checked_sub(1)) {
                (None, None) => return None,
                (Some(a), None) => self.pos[a],
                (None, Some(b)) => self.neg[b],
                (Some(a), Some(b)) => self.pos[a].max(self.neg[b]),
            };
            while i > 0 && self.pos[i - 1] == top {
                i -= 1;
            }
            while j > 0 && self.neg[j - 1] == top {
                j -= 1;
            }
            let (tp, fp) = (self.pos.len() - i, self.neg.len() - j);
            Some(Step {
                threshold: score_of(top),
                tp: tp as u64,
                fp: fp as u64,
            })
        })
    }

    /// Exact area under the ROC curve; `None` when there are no positives or
    /// no negatives (the curve is undefined).
    pub fn auc(&self) -> Option<f64> {
        let (p, n) = (self.positives(), self.negatives());
        if p == 0 || n == 0 {
            return None;
        }
        // Twice the trapezoid area in count units, an exact integer: a tied
        // group contributes its diagonal, i.e. counts half per tied pair.
        let (mut area2, mut prev_tp, mut prev_fp) = (0u128, 0u64, 0u64);
        for s in self.steps() {
            area2 += u128::from(s.fp - prev_fp) * u128::from(s.tp + prev_tp);
            (prev_tp, prev_fp) = (s.tp, s.fp);
        }
        Some(area2 as f64 / (2.0 * p as f64 * n as f64))
    }

    /// Average precision, `Σ (R_n − R_{n−1}) P_n` over the distinct thresholds
    /// (scikit-learn's `average_precision_score`, no interpolation); `None`
    /// when there are no positives.
    pub fn average_precision(&self) -> Option<f64> {
        let p = self.positives();
        if p == 0 {
            return None;
        }
        let mut prev_tp = 0;
        let mut sum = 0.0;
        for s in self.steps() {
            sum += (s.tp - prev_tp) as f64 * (s.tp as f64 / (s.tp + s.fp) as f64);
            prev_tp = s.tp;
        }
        Some(sum / p as f64)
    }

    /// The ROC curve: the point (0, 0) at threshold `+inf`, then one point per
    /// distinct score, highest first (scikit-learn's
    /// `roc_curve(..., drop_intermediate=False)`). `None` when a class is absent.
    pub fn roc_curve(&self) -> Option<Vec<RocPoint>> {
        let (p, n) = (self.positives() as f64, self.negatives() as f64);
        if p == 0.0 || n == 0.0 {
            return None;
        }
        let start = RocPoint {
            fpr: 0.0,
            tpr: 0.0,
            threshold: f32::INFINITY,
        };
        let points = self.steps().map(|s| RocPoint {
            fpr: s.fp as f64 / n,
            tpr: s.tp as f64 / p,
            threshold: s.threshold,
        });
        Some(std::iter::once(start).chain(points).collect())
    }

    /// The precision-recall curve: the point (recall 0, precision 1) at
    /// threshold `+inf`, then one point per distinct score, highest first
    /// (scikit-learn's `precision_recall_curve` in reverse order). `None` when
    /// there are no positives.
    pub fn pr_curve(&self) -> Option<Vec<PrPoint>> {
        let p = self.positives() as f64;
        if p == 0.0 {
            return None;
        }
        let start = PrPoint {
            recall: 0.0,
            precision: 1.0,
            threshold: f32::INFINITY,
        };
        let points = self.steps().map(|s| PrPoint {
            recall: s.tp as f64 / p,
            precision: s.tp as f64 / (s.tp + s.fp) as f64,
            threshold: s.threshold,
        });
        Some(std::iter::once(start).chain(points).collect())
    }

    /// The score threshold whose prediction `score >= threshold` has the
    /// highest F1 (Dice), and that F1; the highest such threshold on ties.
    /// `None` when there are no positives.
    pub fn f1_optimal_threshold(&self) -> Option<(f32, f64)> {
        let p = self.positives();
        if p == 0 {
            return None;
        }
        // 2tp + fp + fn = tp + fp + p.
        let f1 = |s: &Step| 2.0 * s.tp as f64 / (s.tp + s.fp + p) as f64;
        let mut best: Option<(f32, f64)> = None;
        for s in self.steps() {
            let f = f1(&s);
            if best.is_none_or(|(_, b)| f > b) {
                best = Some((s.threshold, f));
            }
        }
        best
    }
}

/// Exact ROC AUC of `scores` against `labels` inside `fov` (all pixels when
/// `None`); `Ok(None)` when a class is absent. See [`SortedScores::new`] for
/// errors and panics.
///
/// # Errors
///
/// If a score inside the FOV is NaN.
pub fn roc_auc(scores: &[f32], labels: &[u8], fov: Option<&[u8]>) -> Result<Option<f64>> {
    Ok(SortedScores::new(scores, labels, fov)?.auc())
}

/// Average precision of `scores` against `labels` inside `fov`; `Ok(None)`
/// when there are no positives. See [`SortedScores::average_precision`].
///
/// # Errors
///
/// If a score inside the FOV is NaN.
pub fn average_precision(scores: &[f32], labels: &[u8], fov: Option<&[u8]>) -> Result<Option<f64>> {
    Ok(SortedScores::new(scores, labels, fov)?.average_precision())
}

/// ROC curve points inside `fov`; `Ok(None)` when a class is absent. See
/// [`SortedScores::roc_curve`].
///
/// # Errors
///
/// If a score inside the FOV is NaN.
pub fn roc_curve(
    scores: &[f32],
    labels: &[u8],
    fov: Option<&[u8]>,
) -> Result<Option<Vec<RocPoint>>> {
    Ok(SortedScores::new(scores, labels, fov)?.roc_curve())
}

/// Precision-recall curve points inside `fov`; `Ok(None)` when there are no
/// positives. See [`SortedScores::pr_curve`].
///
/// # Errors
///
/// If a score inside the FOV is NaN.
pub fn pr_curve(scores: &[f32], labels: &[u8], fov: Option<&[u8]>) -> Result<Option<Vec<PrPoint>>> {
    Ok(SortedScores::new(scores, labels, fov)?.pr_curve())
}

/// The F1-maximising threshold inside `fov` and its F1, to choose a threshold
/// on validation images; `Ok(None)` when there are no positives. See
/// [`SortedScores::f1_optimal_threshold`].
///
/// # Errors
///
/// If a score inside the FOV is NaN.
pub fn f1_optimal_threshold(
    scores: &[f32],
    labels: &[u8],
    fov: Option<&[u8]>,
) -> Result<Option<(f32, f64)>> {
    Ok(SortedScores::new(scores, labels, fov)?.f1_optimal_threshold())
}

/// A curve point with plot coordinates, for [`thin_curve`].
pub trait CurvePoint: Copy {
    /// The (x, y) plotted.
    fn xy(&self) -> (f64, f64);
}

impl CurvePoint for RocPoint {
    fn xy(&self) -> (f64, f64) {
        (self.fpr, self.tpr)
    }
}

impl CurvePoint for PrPoint {
    fn xy(&self) -> (f64, f64) {
        (self.recall, self.precision)
    }
}

/// At most `max_points` (at least 2) of `points` for plotting, evenly spaced
/// along the curve's length rather than by index (a million-pixel ROC curve
/// has most of its thresholds packed near one corner). Keeps the first and
/// last point; returns all points when they already fit.
pub fn thin_curve<P: CurvePoint>(points: &[P], max_points: usize) -> Vec<P> {
    let max_points = max_points.max(2);
    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        return Vec::new();
    };
    if points.len() <= max_points {
        return points.to_vec();
    }
    let dist = |a: &P, b: &P| {
        let ((ax, ay), (bx, by)) = (a.xy(), b.xy());
        (ax - bx).abs() + (ay - by).abs()
    };
    let length: f64 = points.windows(2).map(|w| dist(&w[0], &w[1])).sum();
    let mut kept = vec![*first];
    if max_points > 2 && length > 0.0 {
        // Each kept interior point covers at least `step` of the length, so
        // at most max_points - 2 of them fit (`kept.len()` guards rounding).
        let step = length / (max_points - 2) as f64;
        let mut run = 0.0;
        for w in points[..points.len() - 1].windows(2) {
            run += dist(&w[0], &w[1]);
            if run >= step && kept.len() < max_points - 1 {
                kept.push(w[1]);
                run = 0.0;
            }
        }
    }
    kept.push(*last);
    kept
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::eval::Confusion;

    /// Two small examples with ties, used against scikit-learn 1.9.1.
    const Y1: [u8; 5] = [0, 0, 1, 1, 1];
    const S1: [f32; 5] = [0.1, 0.4, 0.35, 0.8, 0.4];
    const Y2: [u8; 8] = [1, 0, 1, 0, 0, 1, 1, 0];
    const S2: [f32; 8] = [0.5, 0.5, 0.9, 0.2, 0.5, 0.2, 0.7, 0.1];

    fn auc(scores: &[f32], labels: &[u8]) -> f64 {
        roc_auc(scores, labels, None).unwrap().unwrap()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn auc_extremes() {
        // Perfect separation, reversed, and all scores tied.
        assert_eq!(auc(&[0.1, 0.2, 0.8, 0.9], &[0, 0, 1, 1]), 1.0);
        assert_eq!(auc(&[0.1, 0.2, 0.8, 0.9], &[1, 1, 0, 0]), 0.0);
        // roc_auc_score([0,1,0,1], [0.3,0.3,0.3,0.3]) -> 0.5
        assert_eq!(auc(&[0.3; 4], &[0, 1, 0, 1]), 0.5);
    }

    #[test]
    fn auc_with_ties_matches_sklearn() {
        // roc_auc_score([0,0,1,1,1], [0.1,0.4,0.35,0.8,0.4]) -> 0.75
        assert!(close(auc(&S1, &Y1), 0.75));
        // roc_auc_score([1,0,1,0,0,1,1,0], [0.5,0.5,0.9,0.2,0.5,0.2,0.7,0.1]) -> 0.78125
        assert!(close(auc(&S2, &Y2), 0.78125));
        // -0.0 and 0.0 tie: roc_auc_score([0,0,1,1], [-0.0,0.0,0.0,1.0]) -> 0.75
        assert_eq!(auc(&[-0.0, 0.0, 0.0, 1.0], &[0, 0, 1, 1]), 0.75);
    }

    #[test]
    fn average_precision_with_ties_matches_sklearn() {
        let ap = |s: &[f32], y: &[u8]| average_precision(s, y, None).unwrap().unwrap();
        // average_precision_score([0,0,1,1,1], [0.1,0.4,0.35,0.8,0.4]) -> 0.8055555555555556
        assert!(close(ap(&S1, &Y1), 0.8055555555555556));
        // average_precision_score([1,0,1,0,0,1,1,0], [0.5,0.5,0.9,0.2,0.5,0.2,0.7,0.1]) -> 0.7928571428571428
        assert!(close(ap(&S2, &Y2), 0.7928571428571428));
        // average_precision_score([1,1,0], [0.2,0.2,0.2]) -> 0.6666666666666666
        assert!(close(ap(&[0.2; 3], &[1, 1, 0]), 2.0 / 3.0));
        // No negatives: average_precision_score([1,1], [0.2,0.3]) -> 1.0 (AUC undefined).
        assert_eq!(ap(&[0.2, 0.3], &[1, 1]), 1.0);
        assert_eq!(roc_auc(&[0.2, 0.3], &[1, 1], None).unwrap(), None);
    }

    #[test]
    fn roc_curve_matches_sklearn() {
        // roc_curve([1,0,1,0,0,1,1,0], [0.5,0.5,0.9,0.2,0.5,0.2,0.7,0.1], drop_intermediate=False)
        // -> (array([0.  , 0.  , 0.  , 0.5 , 0.75, 1.  ]),
        //     array([0.  , 0.25, 0.5 , 0.75, 1.  , 1.  ]),
        //     array([inf, 0.9, 0.7, 0.5, 0.2, 0.1]))
        let curve = roc_curve(&S2, &Y2, None).unwrap().unwrap();
        let expected = [
            (0.0, 0.0, f32::INFINITY),
            (0.0, 0.25, 0.9),
            (0.0, 0.5, 0.7),
            (0.5, 0.75, 0.5),
            (0.75, 1.0, 0.2),
            (1.0, 1.0, 0.1),
        ];
        let got: Vec<_> = curve.iter().map(|p| (p.fpr, p.tpr, p.threshold)).collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn pr_curve_matches_sklearn() {
        // precision_recall_curve([1,0,1,0,0,1,1,0], [0.5,0.5,0.9,0.2,0.5,0.2,0.7,0.1])
        // -> (array([0.5, 0.57142857, 0.6, 1., 1., 1.]), array([1., 1., 0.75, 0.5, 0.25, 0.]),
        //     array([0.1, 0.2, 0.5, 0.7, 0.9]))   (lowest threshold first)
        let curve = pr_curve(&S2, &Y2, None).unwrap().unwrap();
        let expected = [
            (0.0, 1.0, f32::INFINITY),
            (0.25, 1.0, 0.9),
            (0.5, 1.0, 0.7),
            (0.75, 0.6, 0.5),
            (1.0, 4.0 / 7.0, 0.2),
            (1.0, 0.5, 0.1),
        ];
        let got: Vec<_> = curve
            .iter()
            .map(|p| (p.recall, p.precision, p.threshold))
            .collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn f1_optimal_threshold_matches_sklearn() {
        // p, r, t = precision_recall_curve(y2, s2); f = 2*p*r/(p+r); t[argmax(f[:-1])], f.max()
        // -> 0.2 0.7272727272727273
        let (t, f1) = f1_optimal_threshold(&S2, &Y2, None).unwrap().unwrap();
        assert_eq!(t, 0.2);
        assert!(close(f1, 0.7272727272727273));
        // The threshold reproduces that F1 through `Confusion`: tp 4, fp 3, fn 0 -> 8/11.
        let c = Confusion::from_probs(&S2, &Y2, None, t);
        assert_eq!(c.f1(crate::eval::ZeroDivision::One), f1);
    }

    #[test]
    fn fov_and_undefined_cases() {
        // The outside pixel (a negative scoring above every positive) is ignored.
        let (s, y, fov) = ([0.1, 0.9, 0.8, 0.95], [0, 1, 1, 0], [1, 1, 1, 0]);
        assert_eq!(roc_auc(&s, &y, Some(&fov)).unwrap(), Some(1.0));
        assert_eq!(roc_auc(&s, &y, None).unwrap(), Some(0.5));
        // A NaN outside the FOV is fine, inside it is an error.
        assert!(
            roc_auc(&[0.1, f32::NAN], &[0, 1], Some(&[1, 0]))
                .unwrap()
                .is_none()
        );
        let err = roc_auc(&[0.1, f32::NAN], &[0, 1], None).unwrap_err();
        assert!(err.to_string().contains("score 1"), "{err}");
        // No positives: every ranking metric is undefined.
        let sorted = SortedScores::new(&[0.1, 0.2], &[0, 0], None).unwrap();
        assert_eq!(sorted.auc(), None);
        assert_eq!(sorted.average_precision(), None);
        assert!(sorted.roc_curve().is_none() && sorted.pr_curve().is_none());
        assert_eq!(sorted.f1_optimal_threshold(), None);
    }

    #[test]
    fn accumulator_pools_like_concatenation() {
        let mut acc = RocAccumulator::new();
        acc.push(&S1, &Y1, None).unwrap();
        acc.push(&S2, &Y2, None).unwrap();
        // A failing push leaves the accumulator untouched.
        assert!(acc.push(&[0.3, f32::NAN], &[1, 0], None).is_err());
        assert_eq!((acc.positives(), acc.negatives()), (7, 6));
        let pooled = acc.finish();
        let (s, y) = ([&S1[..], &S2].concat(), [&Y1[..], &Y2].concat());
        assert_eq!(pooled.auc(), Some(auc(&s, &y)));
        assert_eq!(
            pooled.average_precision(),
            average_precision(&s, &y, None).unwrap()
        );
    }

    #[test]
    fn matches_brute_force_on_random_ties() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for _ in 0..20 {
            // Scores on a 12-level grid so that most are tied.
            let s: Vec<f32> = (0..300)
                .map(|_| rng.random_range(0..12u8) as f32 / 11.0)
                .collect();
            let y: Vec<u8> = (0..300).map(|_| u8::from(rng.random_bool(0.3))).collect();
            let (pos, neg): (Vec<_>, Vec<_>) = (0..300).partition(|&i| y[i] == 1);
            // Mann-Whitney: each (positive, negative) pair scores 1 if ordered, 1/2 if tied.
            let mut wins = 0.0;
            for &i in &pos {
                for &j in &neg {
                    wins += if s[i] > s[j] {
                        1.0
                    } else if s[i] == s[j] {
                        0.5
                    } else {
                        0.0
                    };
                }
            }
            let brute_auc = wins / (pos.len() * neg.len()) as f64;
            // AP: mean over positives of the precision at that positive's score.
            let precision_at = |t: f32| {
                let kept: Vec<_> = (0..300).filter(|&k| s[k] >= t).collect();
                kept.iter().filter(|&&k| y[k] == 1).count() as f64 / kept.len() as f64
            };
            let brute_ap = pos.iter().map(|&i| precision_at(s[i])).sum::<f64>() / pos.len() as f64;
            // Best F1 over every score as threshold, through `Confusion`.
            let brute_f1 = s
                .iter()
                .map(|&t| Confusion::from_probs(&s, &y, None, t).f1(crate::eval::ZeroDivision::One))
                .fold(0.0, f64::max);
            let sorted = SortedScores::new(&s, &y, None).unwrap();
            assert!(close(sorted.auc().unwrap(), brute_auc));
            assert!(close(sorted.average_precision().unwrap(), brute_ap));
            assert!(close(sorted.f1_optimal_threshold().unwrap().1, brute_f1));
            // One ROC point per distinct score, plus the start.
            let mut distinct = s.clone();
            distinct.sort_by(f32::total_cmp);
            distinct.dedup();
            assert_eq!(sorted.roc_curve().unwrap().len(), 1 + distinct.len());
        }
    }

    #[test]
    fn thinning_keeps_ends_and_budget() {
        let s: Vec<f32> = (0..10_000).map(|i| i as f32).collect();
        let y: Vec<u8> = (0..10_000).map(|i| u8::from(i % 3 == 0)).collect();
        let curve = roc_curve(&s, &y, None).unwrap().unwrap();
        for max in [0, 2, 3, 50, 500] {
            let thin = thin_curve(&curve, max);
            assert!(thin.len() <= max.max(2), "{max}: {}", thin.len());
            assert!(thin.len() >= max.max(2) / 2, "{max}: {}", thin.len());
            assert_eq!(
                (thin[0], *thin.last().unwrap()),
                (curve[0], *curve.last().unwrap())
            );
        }
        assert_eq!(thin_curve(&curve[..4], 10), &curve[..4]);
        assert!(thin_curve::<RocPoint>(&[], 10).is_empty());
    }

    #[test]
    #[ignore = "timing, run with --release -- --ignored --nocapture"]
    fn timing_drive_sized_pool() {
        // DRIVE's test set pooled: 20 images of 565x584 = 6.6M pixels, ~12% vessels.
        let n = 20 * 565 * 584;
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let y: Vec<u8> = (0..n).map(|_| u8::from(rng.random_bool(0.12))).collect();
        let s: Vec<f32> = y
            .iter()
            .map(|&l| (rng.random::<f32>() + 0.5 * l as f32) / 1.5)
            .collect();
        let start = Instant::now();
        let sorted = SortedScores::new(&s, &y, None).unwrap();
        let sort_time = start.elapsed();
        let auc = sorted.auc().unwrap();
        let ap = sorted.average_precision().unwrap();
        let best = sorted.f1_optimal_threshold().unwrap();
        println!(
            "{n} pixels: collect+sort {sort_time:?}, total with AUC {auc:.4}, AP {ap:.4}, best F1 {best:?}: {:?}",
            start.elapsed()
        );
    }
}
