//! The U-Net's resampling between levels on contiguous NCHW `f32` buffers:
//! 2x2 max pooling with stride 2 (the encoder) and nearest-neighbour 2x
//! upsampling (the decoder), each with its gradient.
//!
//! Burn's CPU backend pooled and upsampled (a reshape, an expand and a
//! reshape, copied element by element through a generic strided iterator)
//! at 6.7 and 10.2 ms per R2U-Net inference batch, more than the 128-channel
//! level's convolutions; these loops run in well under a millisecond.

use wide::f32x8;

use super::{Maps, par_filled};

/// Values per parallel job: whole planes, at least this many values.
const JOB: usize = 1 << 14;

/// Planes per job, for planes of `plane` values.
fn planes_per_job(plane: usize) -> usize {
    JOB.div_ceil(plane.max(1)).max(1)
}

/// `out[b, c, y, x] = max over i, j < 2 of input[b, c, 2y + i, 2x + j]`,
/// `[batch, C, H / 2, W / 2]` (a last odd row or column is dropped, as
/// PyTorch's `MaxPool2d(2)` does). A NaN in a window is its maximum.
///
/// # Panics
///
/// If `input` does not hold `maps.len()` values.
pub fn max_pool2(input: &[f32], maps: Maps) -> Vec<f32> {
    assert_eq!(input.len(), maps.len(), "input of {maps:?}");
    let (h, w) = (maps.height, maps.width);
    let (oh, ow) = (h / 2, w / 2);
    if oh * ow == 0 {
        return Vec::new();
    }
    let planes = planes_per_job(oh * ow);
    par_filled(
        maps.batch * maps.channels * oh * ow,
        planes * oh * ow,
        |job, out| {
            for (i, dst) in out.chunks_exact_mut(oh * ow).enumerate() {
                let src = &input[(job * planes + i) * h * w..][..h * w];
                for (y, row) in dst.chunks_exact_mut(ow).enumerate() {
                    let (top, bottom) = (&src[2 * y * w..][..w], &src[(2 * y + 1) * w..][..w]);
                    let pairs = top.chunks_exact(2).zip(bottom.chunks_exact(2));
                    for (d, (t, b)) in row.iter_mut().zip(pairs) {
                        *d = window(t, b);
                    }
                }
            }
        },
    )
}

/// The maximum of a 2x2 window from its top and bottom pairs, scanned as
/// PyTorch does (top left, top right, bottom left, bottom right; a later
/// value wins when greater, or NaN).
#[inline(always)]
fn window(t: &[f32], b: &[f32]) -> f32 {
    let mut best = t[0];
    for v in [t[1], b[0], b[1]] {
        best = if v > best || v.is_nan() { v } else { best };
    }
    best
}

/// The output gradient `g` of eight windows, given their values (top left,
/// top right, bottom left, bottom right), sent to the value [`max_pool2`]
/// took: scanned as [`window`] does, a later value wins when greater, or
/// NaN; zero to the others. Masks, not branches on which value won, which
/// real activations mispredict on most windows.
#[inline(always)]
fn route([t0, t1, b0, b1]: [f32x8; 4], g: f32x8) -> [f32x8; 4] {
    let w1 = t1.simd_gt(t0) | t1.is_nan();
    let best = w1.bitselect(t1, t0);
    let w2 = b0.simd_gt(best) | b0.is_nan();
    let best = w2.bitselect(b0, best);
    let w3 = b1.simd_gt(best) | b1.is_nan();
    // The last value that won takes the gradient; the first if none did.
    let last2 = w2 & !w3;
    let last1 = w1 & !(w2 | w3);
    let first = !(w1 | w2 | w3);
    [first & g, last1 & g, last2 & g, w3 & g]
}

/// The gradient of [`max_pool2`] with respect to its input, from the input
/// and the output's gradient (`[batch, C, H / 2, W / 2]`): each output's
/// gradient goes to the position [`max_pool2`] took, zero elsewhere.
///
/// # Panics
///
/// If the lengths do not match the shapes.
pub fn max_pool2_grad(input: &[f32], maps: Maps, grad_out: &[f32]) -> Vec<f32> {
    assert_eq!(input.len(), maps.len(), "input of {maps:?}");
    let (h, w) = (maps.height, maps.width);
    let (oh, ow) = (h / 2, w / 2);
    assert_eq!(
        grad_out.len(),
        maps.batch * maps.channels * oh * ow,
        "gradient"
    );
    if oh * ow == 0 {
        return vec![0.0; maps.len()];
    }
    let planes = planes_per_job(h * w);
    par_filled(maps.len(), planes * h * w, |job, out| {
        // A row's windows, by position in the window, and their gradients,
        // in whole vectors of eight.
        let lanes = ow.next_multiple_of(8);
        let mut windows = [(); 4].map(|_| vec![0.0f32; lanes]);
        let mut grads = vec![0.0f32; lanes];
        for (i, dst) in out.chunks_exact_mut(h * w).enumerate() {
            let plane = job * planes + i;
            let src = &input[plane * h * w..][..h * w];
            let grad = &grad_out[plane * oh * ow..][..oh * ow];
            for (y, g_row) in grad.chunks_exact(ow).enumerate() {
                let rows = [2 * y, 2 * y + 1].map(|r| &src[r * w..][..2 * ow]);
                for (k, values) in windows.iter_mut().enumerate() {
                    let row = rows[k / 2];
                    for (v, pair) in values.iter_mut().zip(row.chunks_exact(2)) {
                        *v = pair[k % 2];
                    }
                }
                grads[..ow].copy_from_slice(g_row);
                let (d_top, d_bottom) = dst[2 * y * w..][..2 * w].split_at_mut(w);
                for x0 in (0..ow).step_by(8) {
                    let at = |v: &[f32]| f32x8::new(v[x0..x0 + 8].try_into().unwrap());
                    let routed = route(windows.each_ref().map(|v| at(v)), at(&grads));
                    let [t0, t1, b0, b1] = routed.map(|v| v.to_array());
                    for l in 0..(ow - x0).min(8) {
                        let x = 2 * (x0 + l);
                        (d_top[x], d_top[x + 1]) = (t0[l], t1[l]);
                        (d_bottom[x], d_bottom[x + 1]) = (b0[l], b1[l]);
                    }
                }
            }
        }
    })
}

/// `out[b, c, y, x] = input[b, c, y / 2, x / 2]`: `[batch, C, 2H, 2W]`.
///
/// # Panics
///
/// If `input` does not hold `maps.len()` values.
pub fn upsample2(input: &[f32], maps: Maps) -> Vec<f32> {
    assert_eq!(input.len(), maps.len(), "input of {maps:?}");
    let (h, w) = (maps.height, maps.width);
    let planes = planes_per_job(4 * h * w);
    par_filled(4 * maps.len(), planes * 4 * h * w, |job, out| {
        for (i, dst) in out.chunks_exact_mut(4 * h * w).enumerate() {
            let src = &input[(job * planes + i) * h * w..][..h * w];
            for (row, pair) in src.chunks_exact(w).zip(dst.chunks_exact_mut(4 * w)) {
                let (first, second) = pair.split_at_mut(2 * w);
                for (d, &v) in first.chunks_exact_mut(2).zip(row) {
                    d.fill(v);
                }
                second.copy_from_slice(first);
            }
        }
    })
}

/// The gradient of [`upsample2`] with respect to its input (`maps`), from
/// the output's gradient (`[batch, C, 2H, 2W]`): each input value's four
/// copies, summed.
///
/// # Panics
///
/// If `grad_out` does not hold `4 * maps.len()` values.
pub fn upsample2_grad(grad_out: &[f32], maps: Maps) -> Vec<f32> {
    assert_eq!(
        grad_out.len(),
        4 * maps.len(),
        "gradient of {maps:?} upsampled"
    );
    let (h, w) = (maps.height, maps.width);
    let planes = planes_per_job(h * w);
    par_filled(maps.len(), planes * h * w, |job, out| {
        for (i, dst) in out.chunks_exact_mut(h * w).enumerate() {
            let src = &grad_out[(job * planes + i) * 4 * h * w..][..4 * h * w];
            for (row, pair) in dst.chunks_exact_mut(w).zip(src.chunks_exact(4 * w)) {
                let (first, second) = pair.split_at(2 * w);
                for (x, d) in row.iter_mut().enumerate() {
                    *d = (first[2 * x] + first[2 * x + 1]) + (second[2 * x] + second[2 * x + 1]);
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::conv::reference::{maps, values};

    #[test]
    fn pooling_takes_the_first_maximum_of_each_window_or_its_nan() {
        // Two planes of 3x5 (odd: the last row and column are dropped).
        let m = maps(1, 2, 3, 5);
        let x = [
            [
                1.0, 2.0, 0.0, 0.0, 9.0, 4.0, 3.0, 0.0, 0.0, 9.0, 9.0, 9.0, 9.0, 9.0, 9.0,
            ],
            [
                f32::NAN,
                1.0,
                -1.0,
                -2.0,
                0.0,
                5.0,
                1.0,
                -3.0,
                -1.0,
                0.0,
                0.0,
                0.0,
                0.0,
                0.0,
                0.0,
            ],
        ]
        .concat();
        let y = max_pool2(&x, m);
        assert_eq!(y.len(), 4);
        assert_eq!(&y[..2], &[4.0, 0.0]);
        assert!(y[2].is_nan());
        assert_eq!(y[3], -1.0);
        // Ties (the zeros of the first plane's second window) go to the first.
        let g = max_pool2_grad(&x, m, &[10.0, 20.0, 30.0, 40.0]);
        let mut want = vec![0.0f32; 30];
        want[5] = 10.0;
        want[2] = 20.0;
        want[15] = 30.0;
        want[17] = 40.0;
        assert_eq!(g, want);
    }

    #[test]
    fn pooling_matches_the_definition_and_its_gradient_sums_to_the_output_gradient() {
        for (b, c, h, w) in [(2, 3, 8, 6), (1, 40, 12, 12), (3, 1, 1, 4), (1, 2, 7, 9)] {
            let m = maps(b, c, h, w);
            let x = values(m.len(), 11);
            let y = max_pool2(&x, m);
            let (oh, ow) = (h / 2, w / 2);
            assert_eq!(y.len(), b * c * oh * ow);
            for (p, out) in y.chunks((oh * ow).max(1)).enumerate() {
                let plane = &x[p * h * w..][..h * w];
                for (i, &v) in out.iter().enumerate() {
                    let (yy, xx) = (i / ow, i % ow);
                    let want = [(0, 0), (0, 1), (1, 0), (1, 1)]
                        .map(|(dy, dx)| plane[(2 * yy + dy) * w + 2 * xx + dx])
                        .into_iter()
                        .fold(f32::NEG_INFINITY, f32::max);
                    assert_eq!(v, want, "{m:?} plane {p} at {i}");
                }
            }
            let g = values(y.len(), 12);
            let dx = max_pool2_grad(&x, m, &g);
            assert_eq!(dx.len(), m.len());
            let (sum_dx, sum_g): (f64, f64) = (
                dx.iter().map(|&v| v as f64).sum(),
                g.iter().map(|&v| v as f64).sum(),
            );
            assert!((sum_dx - sum_g).abs() < 1e-4, "{m:?}");
            assert_eq!(
                dx.iter().filter(|&&v| v != 0.0).count(),
                g.iter().filter(|&&v| v != 0.0).count()
            );
        }
    }

    #[test]
    fn upsampling_copies_each_value_to_a_2x2_block_and_its_gradient_sums_them() {
        for (b, c, h, w) in [(2, 3, 4, 5), (1, 40, 6, 6), (1, 1, 1, 1)] {
            let m = maps(b, c, h, w);
            let x = values(m.len(), 13);
            let y = upsample2(&x, m);
            assert_eq!(y.len(), 4 * m.len());
            for (i, &v) in y.iter().enumerate() {
                let (p, yy, xx) = (i / (4 * h * w), i / (2 * w) % (2 * h), i % (2 * w));
                assert_eq!(v, x[p * h * w + yy / 2 * w + xx / 2], "{m:?} at {i}");
            }
            let g = values(y.len(), 14);
            let dx = upsample2_grad(&g, m);
            for (i, &v) in dx.iter().enumerate() {
                let (p, yy, xx) = (i / (h * w), i / w % h, i % w);
                let at =
                    |dy: usize, dx: usize| g[p * 4 * h * w + (2 * yy + dy) * 2 * w + 2 * xx + dx];
                let want = (at(0, 0) + at(0, 1)) + (at(1, 0) + at(1, 1));
                assert_eq!(v, want, "{m:?} at {i}");
            }
        }
    }
}
