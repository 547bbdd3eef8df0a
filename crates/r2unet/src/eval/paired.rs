//! Paired comparison of two models on the same test images: the pooled F1
//! and AUC differences with paired percentile-bootstrap intervals (the same
//! resampled images for both models in every resample), and a Wilcoxon
//! signed-rank test on the per-image F1 differences. Whether "model A beats
//! model B" is shown or not, on these images.

use serde::{Deserialize, Serialize};

use super::bootstrap::{Interval, bootstrap, histogram_auc};
use super::confusion::{Confusion, ZeroDivision};
use super::evaluate::EvalReport;
use crate::error::{Error, Result};

/// A against B on the same images (differences are A - B).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairedComparison {
    /// Number of images.
    pub images: usize,
    /// Pooled F1 of A minus pooled F1 of B, at the fixed threshold.
    pub f1_difference: f64,
    /// Its 95% paired bootstrap interval over images.
    pub f1_interval: Option<Interval>,
    /// Pooled exact AUC of A minus that of B, when both have one.
    pub auc_difference: Option<f64>,
    /// Its 95% paired bootstrap interval (AUCs of quantised scores).
    pub auc_interval: Option<Interval>,
    /// Two-sided p-value of the Wilcoxon signed-rank test on per-image F1.
    pub wilcoxon_p: Option<f64>,
    /// Bootstrap resamples.
    pub resamples: usize,
}

impl PairedComparison {
    /// Whether the F1 interval lies wholly above (1), below (-1) or across 0 (0).
    pub fn f1_verdict(&self) -> i8 {
        match self.f1_interval {
            Some(i) if i.lo > 0.0 => 1,
            Some(i) if i.hi < 0.0 => -1,
            _ => 0,
        }
    }
}

/// Compares the evaluations `a` and `b` of two models on the same images.
///
/// # Errors
///
/// [`Error::Invalid`] if the reports are not of the same images in the same
/// order.
pub fn compare(
    a: &EvalReport,
    b: &EvalReport,
    resamples: usize,
    seed: u64,
) -> Result<PairedComparison> {
    let (ia, ib) = (&a.fixed.per_image, &b.fixed.per_image);
    let same = ia.len() == ib.len() && ia.iter().zip(ib).all(|(x, y)| x.id == y.id);
    if !same || ia.is_empty() {
        return Err(Error::invalid(
            "paired comparison",
            "the two evaluations must cover the same images in the same order",
        ));
    }
    let conf = |r: &EvalReport| -> Vec<Confusion> {
        r.fixed
            .per_image
            .iter()
            .map(|m| m.metrics.confusion)
            .collect()
    };
    let (ca, cb) = (conf(a), conf(b));
    let z = ZeroDivision::One;
    let f1 = |c: &[Confusion], counts: &[u32]| -> f64 {
        let pooled: Confusion = c.iter().zip(counts).map(|(c, &k)| scaled(*c, k)).sum();
        pooled.f1(z)
    };
    let with_histograms =
        a.histograms.len() == ia.len() && b.histograms.len() == ib.len() && resamples > 0;
    let auc = |r: &EvalReport, counts: &[u32]| -> Option<f64> {
        let mut pos = vec![0u64; super::bootstrap::BINS];
        let mut neg = vec![0u64; super::bootstrap::BINS];
        for (h, &k) in r.histograms.iter().zip(counts) {
            h.add_to(&mut pos, &mut neg, k);
        }
        histogram_auc(&pos, &neg)
    };
    let intervals = bootstrap(ia.len(), resamples, 0.95, seed, 2, |counts| {
        let d_auc = if with_histograms {
            match (auc(a, counts), auc(b, counts)) {
                (Some(x), Some(y)) => x - y,
                _ => f64::NAN,
            }
        } else {
            f64::NAN
        };
        vec![f1(&ca, counts) - f1(&cb, counts), d_auc]
    });
    let ones = vec![1; ia.len()];
    let f1_difference = f1(&ca, &ones) - f1(&cb, &ones);
    let auc_difference = match (a.fixed.pooled.auc, b.fixed.pooled.auc) {
        (Some(x), Some(y)) => Some(x - y),
        _ => None,
    };
    let differences: Vec<f64> = ia
        .iter()
        .zip(ib)
        .map(|(x, y)| x.metrics.f1 - y.metrics.f1)
        .collect();
    Ok(PairedComparison {
        images: ia.len(),
        f1_difference,
        f1_interval: intervals.first().copied().flatten(),
        auc_difference,
        auc_interval: intervals.get(1).copied().flatten(),
        wilcoxon_p: wilcoxon_signed_rank(&differences),
        resamples,
    })
}

/// A confusion counted `k` times.
fn scaled(c: Confusion, k: u32) -> Confusion {
    let k = u64::from(k);
    Confusion {
        tp: c.tp * k,
        fp: c.fp * k,
        tn: c.tn * k,
        fn_: c.fn_ * k,
    }
}

/// Two-sided p-value of the Wilcoxon signed-rank test that the differences
/// are symmetric about 0 (Wilcoxon 1945). Zero differences are dropped
/// (Wilcoxon's rule), tied absolute values share their mean rank. Exact
/// (the distribution of the positive rank sum over all 2^n sign patterns,
/// by dynamic programming over doubled ranks) for up to 60 non-zero
/// differences; the normal approximation with the tie correction beyond.
/// `None` when no difference is non-zero or one is not finite.
pub fn wilcoxon_signed_rank(differences: &[f64]) -> Option<f64> {
    if differences.iter().any(|d| !d.is_finite()) {
        return None;
    }
    let mut d: Vec<f64> = differences.iter().copied().filter(|&v| v != 0.0).collect();
    let n = d.len();
    if n == 0 {
        return None;
    }
    d.sort_by(|x, y| x.abs().total_cmp(&y.abs()));
    // Doubled mean ranks (integers even with ties).
    let mut ranks2 = vec![0u64; n];
    let mut i = 0;
    let mut tie_term = 0.0;
    while i < n {
        let mut j = i;
        while j + 1 < n && d[j + 1].abs() == d[i].abs() {
            j += 1;
        }
        let t = (j - i + 1) as f64;
        tie_term += t * t * t - t;
        for r in &mut ranks2[i..=j] {
            *r = (i + 1 + j + 1) as u64;
        }
        i = j + 1;
    }
    let w2: u64 = d
        .iter()
        .zip(&ranks2)
        .filter(|(v, _)| **v > 0.0)
        .map(|(_, r)| r)
        .sum();
    let total2: u64 = ranks2.iter().sum();
    let p = if n <= 60 {
        // counts[s] = sign patterns whose doubled positive rank sum is s.
        let mut counts = vec![0f64; total2 as usize + 1];
        counts[0] = 1.0;
        for &r in &ranks2 {
            for s in (r as usize..counts.len()).rev() {
                counts[s] += counts[s - r as usize];
            }
        }
        let all: f64 = counts.iter().sum();
        let below: f64 = counts[..=w2 as usize].iter().sum();
        let above: f64 = counts[w2 as usize..].iter().sum();
        (2.0 * below.min(above) / all).min(1.0)
    } else {
        let n = n as f64;
        let w = w2 as f64 / 2.0;
        let mean = n * (n + 1.0) / 4.0;
        let var = n * (n + 1.0) * (2.0 * n + 1.0) / 24.0 - tie_term / 48.0;
        let z = (w - mean).abs() / var.sqrt();
        (2.0 * (1.0 - normal_cdf(z))).min(1.0)
    };
    Some(p)
}

/// The standard normal CDF (Abramowitz and Stegun 26.2.17, error < 7.5e-8).
fn normal_cdf(z: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.231_641_9 * z.abs());
    let poly = t
        * (0.319_381_530
            + t * (-0.356_563_782
                + t * (1.781_477_937 + t * (-1.821_255_978 + t * 1.330_274_429))));
    let tail = (-z * z / 2.0).exp() / (2.0 * std::f64::consts::PI).sqrt() * poly;
    if z >= 0.0 { 1.0 - tail } else { tail }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilcoxon_exact_values() {
        // Five positive differences: W+ = 15 is the most extreme of 2^5
        // patterns on either side, p = 2 / 32.
        let p = wilcoxon_signed_rank(&[1.0, 2.0, 3.0, 4.0, 5.0]).unwrap();
        assert!((p - 0.0625).abs() < 1e-12, "{p}");
        // Signs +,-,+,-: W+ = 1 + 3 = 4 of 10; of the 16 patterns, 7 have
        // W+ <= 4 (sums 0, 1, 2, 3, 3, 4, 4) -> p = 2 * 7/16.
        let p = wilcoxon_signed_rank(&[1.0, -2.0, 3.0, -4.0]).unwrap();
        assert!((p - 0.875).abs() < 1e-12, "{p}");
        // n = 6 with one negative smallest: W+ = 20 of 21; patterns with
        // W+ >= 20: {all}, {all but rank 1} -> 2/64, two-sided 4/64.
        let p = wilcoxon_signed_rank(&[-0.1, 0.2, 0.3, 0.4, 0.5, 0.6]).unwrap();
        assert!((p - 0.0625).abs() < 1e-12, "{p}");
        // Zeros are dropped; all zero gives no test.
        assert_eq!(
            wilcoxon_signed_rank(&[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]),
            wilcoxon_signed_rank(&[1.0, 2.0, 3.0, 4.0, 5.0])
        );
        assert_eq!(wilcoxon_signed_rank(&[0.0, 0.0]), None);
        assert_eq!(wilcoxon_signed_rank(&[1.0, f64::NAN]), None);
    }

    #[test]
    fn wilcoxon_ties_share_ranks_and_large_samples_use_the_normal() {
        // |d| = 1, 1, 2: ranks 1.5, 1.5, 3. Signs -,+,+ give W+ = 4.5; of the
        // 8 patterns 3 reach 4.5 or more ({1.5, 3} twice, all) -> p = 2 * 3/8.
        let p = wilcoxon_signed_rank(&[1.0, -1.0, 2.0]).unwrap();
        assert!((p - 0.75).abs() < 1e-12, "{p}");
        // All positive: W+ = 6, the one most extreme pattern -> p = 2/8.
        let p = wilcoxon_signed_rank(&[1.0, 1.0, 2.0]).unwrap();
        assert!((p - 0.25).abs() < 1e-12, "{p}");
        // 100 differences, 70 positive and symmetric in size: clearly shifted.
        let d: Vec<f64> = (0..100)
            .map(|i| {
                if i % 10 < 7 {
                    i as f64 + 1.0
                } else {
                    -(i as f64) - 1.0
                }
            })
            .collect();
        let p = wilcoxon_signed_rank(&d).unwrap();
        assert!(p < 0.01 && p > 0.0, "{p}");
        assert!((normal_cdf(1.959_964) - 0.975).abs() < 1e-6);
    }
}
