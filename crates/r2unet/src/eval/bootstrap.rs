//! Percentile-bootstrap confidence intervals over images: the images of a
//! test set are resampled with replacement and the pooled metric recomputed
//! for each resample. Pooling a resample needs each image's counts only:
//! its [`Confusion`] at the threshold, and for the AUC a histogram of its
//! scores ([`ScoreHistogram`]), so a thousand resamples take a fraction of
//! a second. The point estimates stay the exact ones; only the interval of
//! the AUC comes from scores quantised to [`BINS`] levels (ties within a bin
//! count one half, as exact ties do).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::confusion::{Confusion, ZeroDivision};

/// Score levels of [`ScoreHistogram`].
pub const BINS: usize = 4096;

/// One image's positive and negative pixel counts per score level.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreHistogram {
    pos: Vec<u32>,
    neg: Vec<u32>,
}

impl ScoreHistogram {
    /// Counts the pixels inside `fov` (all when `None`); scores are clamped
    /// to `[0, 1]`, NaN counted as 0 (the exact metrics refuse NaN first).
    ///
    /// # Panics
    ///
    /// If `labels` or `fov` do not have the length of `scores`.
    pub fn new(scores: &[f32], labels: &[u8], fov: Option<&[u8]>) -> Self {
        assert_eq!(
            scores.len(),
            labels.len(),
            "scores and labels differ in length"
        );
        let mut pos = vec![0; BINS];
        let mut neg = vec![0; BINS];
        for (i, (&s, &l)) in scores.iter().zip(labels).enumerate() {
            if fov.is_some_and(|f| f[i] == 0) {
                continue;
            }
            let bin = (s.clamp(0.0, 1.0) * (BINS - 1) as f32).round() as usize;
            if l != 0 {
                pos[bin] += 1;
            } else {
                neg[bin] += 1;
            }
        }
        Self { pos, neg }
    }

    /// Adds this image's counts `times` times into summed histograms.
    pub(crate) fn add_to(&self, pos: &mut [u64], neg: &mut [u64], times: u32) {
        let k = u64::from(times);
        for (sum, &v) in pos.iter_mut().zip(&self.pos) {
            *sum += u64::from(v) * k;
        }
        for (sum, &v) in neg.iter_mut().zip(&self.neg) {
            *sum += u64::from(v) * k;
        }
    }
}

/// ROC AUC of summed histograms, `None` when a class is absent.
pub(crate) fn histogram_auc(pos: &[u64], neg: &[u64]) -> Option<f64> {
    let (p, n): (u64, u64) = (pos.iter().sum(), neg.iter().sum());
    if p == 0 || n == 0 {
        return None;
    }
    let mut below = 0u64;
    let mut twice_wins = 0u128;
    for (&pb, &nb) in pos.iter().zip(neg) {
        twice_wins += pb as u128 * (2 * below + nb) as u128;
        below += nb;
    }
    Some(twice_wins as f64 / (2.0 * p as f64 * n as f64))
}

/// A two-sided interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// Lower bound.
    pub lo: f64,
    /// Upper bound.
    pub hi: f64,
}

/// Bootstrap intervals of the pooled metrics.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MetricIntervals {
    /// Confidence level, e.g. 0.95.
    pub level: f64,
    /// Number of resamples.
    pub resamples: usize,
    /// Sensitivity.
    pub sensitivity: Interval,
    /// Specificity.
    pub specificity: Interval,
    /// Precision.
    pub precision: Interval,
    /// Accuracy.
    pub accuracy: Interval,
    /// F1 (Dice).
    pub f1: Interval,
    /// Jaccard.
    pub jaccard: Interval,
    /// ROC AUC (from quantised scores); `None` when no resample had both classes.
    pub auc: Option<Interval>,
}

/// Percentile intervals at `level` of `statistic` over `resamples` bootstrap
/// resamples of `n` items (seeded): `statistic` gets each item's multiplicity
/// and returns one value per metric; non-finite values are left out.
/// Returns `None` for a metric with no finite value.
pub fn bootstrap(
    n: usize,
    resamples: usize,
    level: f64,
    seed: u64,
    metrics: usize,
    mut statistic: impl FnMut(&[u32]) -> Vec<f64>,
) -> Vec<Option<Interval>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut values = vec![Vec::with_capacity(resamples); metrics];
    let mut counts = vec![0u32; n];
    for _ in 0..resamples {
        counts.iter_mut().for_each(|c| *c = 0);
        for _ in 0..n {
            counts[rng.random_range(0..n)] += 1;
        }
        for (k, v) in statistic(&counts).into_iter().enumerate().take(metrics) {
            if v.is_finite() {
                values[k].push(v);
            }
        }
    }
    values
        .into_iter()
        .map(|mut v| {
            if v.is_empty() {
                return None;
            }
            v.sort_by(f64::total_cmp);
            let at = |q: f64| v[((q * (v.len() - 1) as f64).round() as usize).min(v.len() - 1)];
            let tail = (1.0 - level) / 2.0;
            Some(Interval {
                lo: at(tail),
                hi: at(1.0 - tail),
            })
        })
        .collect()
}

/// 95%-style intervals of the pooled threshold metrics (from each image's
/// confusion) and of the pooled AUC (from each image's score histogram).
///
/// # Panics
///
/// If `confusions` and `histograms` differ in length.
pub fn metric_intervals(
    confusions: &[Confusion],
    histograms: &[ScoreHistogram],
    resamples: usize,
    level: f64,
    seed: u64,
) -> Option<MetricIntervals> {
    assert_eq!(
        confusions.len(),
        histograms.len(),
        "one histogram per image"
    );
    if confusions.is_empty() || resamples == 0 {
        return None;
    }
    let z = ZeroDivision::One;
    let mut pos = vec![0u64; BINS];
    let mut neg = vec![0u64; BINS];
    let stat = |counts: &[u32]| {
        let mut c = Confusion::default();
        pos.fill(0);
        neg.fill(0);
        for (i, &k) in counts.iter().enumerate() {
            if k == 0 {
                continue;
            }
            let k64 = u64::from(k);
            let ci = confusions[i];
            c += Confusion {
                tp: ci.tp * k64,
                fp: ci.fp * k64,
                tn: ci.tn * k64,
                fn_: ci.fn_ * k64,
            };
            let h = &histograms[i];
            for b in 0..BINS {
                pos[b] += u64::from(h.pos[b]) * k64;
                neg[b] += u64::from(h.neg[b]) * k64;
            }
        }
        vec![
            c.sensitivity(z),
            c.specificity(z),
            c.precision(z),
            c.accuracy(z),
            c.f1(z),
            c.jaccard(z),
            histogram_auc(&pos, &neg).unwrap_or(f64::NAN),
        ]
    };
    let iv = bootstrap(confusions.len(), resamples, level, seed, 7, stat);
    let get = |k: usize| iv[k].expect("threshold metrics are always finite");
    Some(MetricIntervals {
        level,
        resamples,
        sensitivity: get(0),
        specificity: get(1),
        precision: get(2),
        accuracy: get(3),
        f1: get(4),
        jaccard: get(5),
        auc: iv[6],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::roc_auc;

    fn image(seed: u64, len: usize) -> (Vec<f32>, Vec<u8>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let labels: Vec<u8> = (0..len).map(|_| u8::from(rng.random_bool(0.2))).collect();
        let scores = labels
            .iter()
            .map(|&l| (rng.random::<f32>() * 0.7 + 0.3 * f32::from(l)).min(1.0))
            .collect();
        (scores, labels)
    }

    #[test]
    fn histogram_auc_is_close_to_the_exact_auc() {
        let (s, l) = image(1, 20_000);
        let h = ScoreHistogram::new(&s, &l, None);
        let wide = |v: &[u32]| v.iter().map(|&x| u64::from(x)).collect::<Vec<_>>();
        let approx = histogram_auc(&wide(&h.pos), &wide(&h.neg)).unwrap();
        let exact = roc_auc(&s, &l, None).unwrap().unwrap();
        assert!((approx - exact).abs() < 2e-4, "{approx} vs {exact}");
        // Hand example: pos at 1.0, 0.5; neg at 0.5, 0.0 → pairs (1,.5) win,
        // (1,0) win, (.5,.5) tie, (.5,0) win: 3.5 / 4.
        let h = ScoreHistogram::new(&[1.0, 0.5, 0.5, 0.0], &[1, 1, 0, 0], None);
        assert_eq!(histogram_auc(&wide(&h.pos), &wide(&h.neg)), Some(0.875));
    }

    #[test]
    fn identical_images_give_a_degenerate_interval_at_the_value() {
        let c = Confusion {
            tp: 3,
            fp: 1,
            tn: 10,
            fn_: 2,
        };
        let h = ScoreHistogram::new(&[0.9, 0.1], &[1, 0], None);
        let iv = metric_intervals(&[c; 5], &vec![h; 5], 200, 0.95, 7).unwrap();
        let f1 = c.f1(ZeroDivision::One);
        assert_eq!((iv.f1.lo, iv.f1.hi), (f1, f1));
        assert_eq!(iv.auc, Some(Interval { lo: 1.0, hi: 1.0 }));
    }

    #[test]
    fn intervals_contain_the_pooled_value_and_are_seeded() {
        let mut confusions = vec![];
        let mut hists = vec![];
        let mut pooled = Confusion::default();
        for seed in 0..12 {
            let (s, l) = image(seed, 2000);
            let threshold = 0.45 + 0.02 * seed as f32;
            let c = Confusion::from_probs(&s, &l, None, threshold);
            pooled += c;
            confusions.push(c);
            hists.push(ScoreHistogram::new(&s, &l, None));
        }
        let iv = metric_intervals(&confusions, &hists, 500, 0.95, 3).unwrap();
        let f1 = pooled.f1(ZeroDivision::One);
        assert!(iv.f1.lo < f1 && f1 < iv.f1.hi, "{iv:?} vs {f1}");
        assert!(iv.f1.hi - iv.f1.lo > 1e-3);
        assert_eq!(
            iv,
            metric_intervals(&confusions, &hists, 500, 0.95, 3).unwrap()
        );
        assert_ne!(
            iv,
            metric_intervals(&confusions, &hists, 500, 0.95, 4).unwrap()
        );
    }

    #[test]
    fn percentiles_of_a_known_statistic() {
        // The statistic is the multiplicity of item 0: Binomial(10, 0.1),
        // whose 2.5% and 97.5% quantiles are 0 and 3.
        let iv = bootstrap(10, 4000, 0.95, 1, 1, |c| vec![f64::from(c[0])]);
        assert_eq!(iv[0], Some(Interval { lo: 0.0, hi: 3.0 }));
    }
}
