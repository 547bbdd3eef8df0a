//! Training-mode batch norm followed by ReLU, fused, on contiguous NCHW `f32`
//! buffers: the statistics in one pass, the output in another, the backward in
//! two (reading the input and the output's gradient, not the output). Burn composes the same from element-wise operations with two
//! transposing copies each way (`ModuleOps::batch_norm_train`), which cost as
//! much as the 3x3 convolution at the 16-channel level (BENCHMARKS.md).
//!
//! Work is split over images; per-image partial sums are reduced in `f64`.

use rayon::prelude::*;

use wide::f32x8;

use super::{Maps, map_lanes, par_filled, sum_lanes};

/// Per-channel mean and biased variance of `x` over the batch and the pixels,
/// as `[mean_0..mean_C, var_0..var_C]`.
///
/// # Panics
///
/// If `x` does not hold `maps.len()` values.
pub fn channel_stats(x: &[f32], maps: Maps) -> Vec<f32> {
    assert_eq!(x.len(), maps.len(), "input of {maps:?}");
    let (c, hw) = (maps.channels, maps.height * maps.width);
    let sums = per_image_sums(maps, |b, ch| {
        let plane = &x[(b * c + ch) * hw..][..hw];
        // Sums of x - k and its square, shifted by the plane's first value
        // so that the f32 lanes hold values on the scale of the spread, not
        // of the mean (var = E[x²] - mean² cancels what the mean carries);
        // then Σx and Σx² in f64.
        let k = plane.first().map_or(0.0, |&v| v as f64);
        let kf = f32x8::splat(k as f32);
        let [d, q] = sum_lanes([plane], |[x]| {
            let d = x - kf;
            [d, d * d]
        });
        let n = hw as f64;
        (d + n * k, q + 2.0 * k * d + n * k * k)
    });
    let n = (maps.batch * hw) as f64;
    let mut stats = vec![0.0f32; 2 * c];
    for (ch, (s, q)) in sums.into_iter().enumerate() {
        let mean = s / n;
        stats[ch] = mean as f32;
        stats[c + ch] = (q / n - mean * mean).max(0.0) as f32;
    }
    stats
}

/// `relu(gamma * (x - mean) / sqrt(var + eps) + beta)` per channel, with
/// `stats` from [`channel_stats`].
///
/// # Panics
///
/// If the lengths do not match the shapes.
pub fn forward(
    x: &[f32],
    maps: Maps,
    gamma: &[f32],
    beta: &[f32],
    stats: &[f32],
    eps: f64,
) -> Vec<f32> {
    let (c, hw) = (maps.channels, maps.height * maps.width);
    assert_eq!(x.len(), maps.len(), "input of {maps:?}");
    let (scale, shift) = affine(gamma, beta, stats, eps);
    par_filled(x.len(), c * hw, |b, out| {
        let image = &x[b * c * hw..][..c * hw];
        for ch in 0..c {
            let (a, b) = (scale[ch], shift[ch]);
            let src = &image[ch * hw..][..hw];
            for (o, &v) in out[ch * hw..][..hw].iter_mut().zip(src) {
                *o = (a * v + b).max(0.0);
            }
        }
    })
}

/// Gradients of [`forward`] with respect to `x`, `gamma` and `beta`, given its
/// input `x` and the output's gradient `dy`; `mean` and `var` depend on `x`,
/// as in training-mode batch norm. Where the ReLU passed is recomputed from
/// `x` exactly as [`forward`] decided it, which saves reading the output.
///
/// # Panics
///
/// If the lengths do not match the shapes.
pub fn backward(
    x: &[f32],
    dy: &[f32],
    maps: Maps,
    gamma: &[f32],
    beta: &[f32],
    stats: &[f32],
    eps: f64,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (c, hw) = (maps.channels, maps.height * maps.width);
    assert!(x.len() == maps.len() && dy.len() == x.len());
    let inv_std: Vec<f64> = (0..c)
        .map(|ch| 1.0 / (stats[c + ch] as f64 + eps).sqrt())
        .collect();
    let (scale, shift) = affine(gamma, beta, stats, eps);
    let mean = &stats[..c];
    // dz = dy where the ReLU passed; sums of dz and dz * xhat per channel.
    let sums = per_image_sums(maps, |b, ch| {
        let start = (b * c + ch) * hw;
        let (xs, gs) = (&x[start..][..hw], &dy[start..][..hw]);
        let (s, [m, a, b]) = (
            inv_std[ch],
            [mean[ch], scale[ch], shift[ch]].map(f32x8::splat),
        );
        let [sum_dz, sum_dz_xc] = sum_lanes([xs, gs], |[x, g]| {
            let dz = relu_grad(a * x + b, g);
            [dz, dz * (x - m)]
        });
        let sum_dz_xhat = sum_dz_xc * s;
        (sum_dz, sum_dz_xhat)
    });
    let n = (maps.batch * hw) as f64;
    let dbeta: Vec<f32> = sums.iter().map(|s| s.0 as f32).collect();
    let dgamma: Vec<f32> = sums.iter().map(|s| s.1 as f32).collect();
    // dx = gamma * inv_std * (dz - sum(dz) / n - xhat * sum(dz * xhat) / n)
    let coef: Vec<[f32; 4]> = (0..c)
        .map(|ch| {
            [
                (gamma[ch] as f64 * inv_std[ch]) as f32,
                (sums[ch].0 / n) as f32,
                (sums[ch].1 / n) as f32,
                inv_std[ch] as f32,
            ]
        })
        .collect();
    let dx = par_filled(x.len(), c * hw, |b, out| {
        let image = b * c * hw..(b + 1) * c * hw;
        let (xi, gi) = (&x[image.clone()], &dy[image]);
        for ch in 0..c {
            let [k, mean_dz, mean_dz_xhat, s] = coef[ch].map(f32x8::splat);
            let [m, a, b] = [mean[ch], scale[ch], shift[ch]].map(f32x8::splat);
            let range = ch * hw..(ch + 1) * hw;
            map_lanes(
                &mut out[range.clone()],
                [&xi[range.clone()], &gi[range]],
                |[x, g]| {
                    let dz = relu_grad(a * x + b, g);
                    k * (dz - mean_dz - (x - m) * s * mean_dz_xhat)
                },
            );
        }
    });
    (dx, dgamma, dbeta)
}

/// `g` where the ReLU passed (its input `z > 0`, as [`forward`] computes
/// `z`), else zero, eight lanes at a time through a mask (scalar selects
/// compiled to branches in the pooling gradient, `resample.rs`).
#[inline(always)]
fn relu_grad(z: f32x8, g: f32x8) -> f32x8 {
    z.simd_gt(f32x8::ZERO) & g
}

/// Per channel `a = gamma / sqrt(var + eps)` and `b = beta - a * mean`.
fn affine(gamma: &[f32], beta: &[f32], stats: &[f32], eps: f64) -> (Vec<f32>, Vec<f32>) {
    let c = gamma.len();
    assert!(
        beta.len() == c && stats.len() == 2 * c,
        "per-channel lengths"
    );
    (0..c)
        .map(|ch| {
            let a = gamma[ch] as f64 / (stats[c + ch] as f64 + eps).sqrt();
            (a as f32, (beta[ch] as f64 - a * stats[ch] as f64) as f32)
        })
        .unzip()
}

/// `f(image, channel)` for every image (in parallel) and channel, summed over
/// the images per channel.
fn per_image_sums(maps: Maps, f: impl Fn(usize, usize) -> (f64, f64) + Sync) -> Vec<(f64, f64)> {
    let channels = maps.channels;
    (0..maps.batch)
        .into_par_iter()
        .map(|b| (0..channels).map(|ch| f(b, ch)).collect::<Vec<_>>())
        .reduce(
            || vec![(0.0, 0.0); channels],
            |a, b| {
                a.iter()
                    .zip(&b)
                    .map(|(p, q)| (p.0 + q.0, p.1 + q.1))
                    .collect()
            },
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::conv::reference::values;

    const MAPS: Maps = Maps {
        batch: 3,
        channels: 4,
        height: 5,
        width: 7,
    };

    /// `sum(w * relu(bn(x)))` from the definition in f64, the scalar whose
    /// gradient `backward` gives (f64 so that central differences with a tiny
    /// step neither drown in rounding nor straddle a ReLU kink).
    fn objective(x: &[f64], gamma: &[f64], beta: &[f64], w: &[f32]) -> f64 {
        let (c, hw) = (MAPS.channels, MAPS.height * MAPS.width);
        let mut total = 0.0;
        for ch in 0..c {
            let idx: Vec<usize> = (0..MAPS.batch)
                .flat_map(|b| (b * c + ch) * hw..(b * c + ch + 1) * hw)
                .collect();
            let n = idx.len() as f64;
            let mean = idx.iter().map(|&i| x[i]).sum::<f64>() / n;
            let var = idx.iter().map(|&i| (x[i] - mean).powi(2)).sum::<f64>() / n;
            for &i in &idx {
                let z = gamma[ch] * (x[i] - mean) / (var + 1e-5).sqrt() + beta[ch];
                total += z.max(0.0) * w[i] as f64;
            }
        }
        total
    }

    #[test]
    fn statistics_and_output_follow_the_definition() {
        let x = values(MAPS.len(), 1);
        let s = channel_stats(&x, MAPS);
        let hw = 35;
        for ch in 0..4 {
            let v: Vec<f64> = (0..3)
                .flat_map(|b| &x[(b * 4 + ch) * hw..][..hw])
                .map(|&v| v as f64)
                .collect();
            let mean = v.iter().sum::<f64>() / v.len() as f64;
            let var = v.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / v.len() as f64;
            assert!((s[ch] as f64 - mean).abs() < 1e-6 && (s[4 + ch] as f64 - var).abs() < 1e-6);
        }
        let (gamma, beta) = ([0.5, 1.0, 2.0, -1.0], [0.1, -0.2, 0.0, 0.3]);
        let y = forward(&x, MAPS, &gamma, &beta, &s, 1e-5);
        for (i, (&xv, &yv)) in x.iter().zip(&y).enumerate() {
            let ch = (i / hw) % 4;
            let want = gamma[ch] as f64 * (xv - s[ch]) as f64 / (s[4 + ch] as f64 + 1e-5).sqrt()
                + beta[ch] as f64;
            assert!((yv as f64 - want.max(0.0)).abs() < 1e-5, "{i}");
        }
    }

    /// A mean far above the spread (a plane of 48x48 values around 300 that
    /// vary by 0.01): E[x²] - mean² must not lose the variance to rounding.
    #[test]
    fn statistics_keep_a_small_variance_under_a_large_mean() {
        let maps = Maps {
            batch: 3,
            channels: 2,
            height: 48,
            width: 48,
        };
        let x: Vec<f32> = values(maps.len(), 5)
            .iter()
            .map(|v| 300.0 + 0.01 * v)
            .collect();
        let s = channel_stats(&x, maps);
        let hw = 48 * 48;
        for ch in 0..2 {
            let v: Vec<f64> = (0..3)
                .flat_map(|b| &x[(b * 2 + ch) * hw..][..hw])
                .map(|&v| v as f64)
                .collect();
            let mean = v.iter().sum::<f64>() / v.len() as f64;
            let var = v.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / v.len() as f64;
            let rel = (s[2 + ch] as f64 - var).abs() / var;
            assert!(rel < 1e-3, "channel {ch}: variance {} vs {var}", s[2 + ch]);
        }
    }

    /// Central differences of the objective against every gradient.
    #[test]
    fn gradients_match_finite_differences() {
        let x = values(MAPS.len(), 2);
        let w = values(MAPS.len(), 3);
        let (gamma, beta) = ([0.7f32, 1.3, -0.4, 1.0], [0.2f32, -0.1, 0.05, 0.0]);
        let s = channel_stats(&x, MAPS);
        let (dx, dgamma, dbeta) = backward(&x, &w, MAPS, &gamma, &beta, &s, 1e-5);
        let wide = |v: &[f32]| v.iter().map(|&a| a as f64).collect::<Vec<f64>>();
        let (x, gamma, beta) = (wide(&x), wide(&gamma), wide(&beta));
        let h = 1e-6;
        let numeric = |f: &dyn Fn(f64) -> f64| (f(h) - f(-h)) / (2.0 * h);
        for i in (0..MAPS.len()).step_by(9) {
            let d = numeric(&|e| {
                let mut x2 = x.clone();
                x2[i] += e;
                objective(&x2, &gamma, &beta, &w)
            });
            assert!((dx[i] as f64 - d).abs() < 1e-4, "dx[{i}] {} vs {d}", dx[i]);
        }
        for ch in 0..4 {
            let dg = numeric(&|e| {
                let mut g2 = gamma.clone();
                g2[ch] += e;
                objective(&x, &g2, &beta, &w)
            });
            let db = numeric(&|e| {
                let mut b2 = beta.clone();
                b2[ch] += e;
                objective(&x, &gamma, &b2, &w)
            });
            assert!(
                (dgamma[ch] as f64 - dg).abs() < 1e-4,
                "dgamma[{ch}] {} vs {dg}",
                dgamma[ch]
            );
            assert!(
                (dbeta[ch] as f64 - db).abs() < 1e-4,
                "dbeta[{ch}] {} vs {db}",
                dbeta[ch]
            );
        }
    }
}
