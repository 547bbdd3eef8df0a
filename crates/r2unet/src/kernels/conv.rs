//! The three passes of a 3x3 convolution with stride 1 and padding 1 on
//! contiguous NCHW `f32` buffers: forward, input gradient and weight/bias
//! gradient. Every 3x3 convolution of the U-Net family is of this kind.
//!
//! Each pass is a matrix product whose operand is the image's `im2col`
//! matrix (`9C x HW`: row `k = 9c + 3(dy+1) + (dx+1)` holds channel `c`
//! shifted by `(dy, dx)`), but that matrix is never built: its panels are
//! copied from the image straight into the packed layout that
//! [`tile`](super::tile::tile) reads, row segment by row segment. Burn's
//! generic path builds it, then `gemm` packs it again, and converts layouts
//! around both (BENCHMARKS.md, "Where the time goes").
//!
//! Work is split over images and, when there are fewer images than threads
//! to keep busy, over pixel ranges of each image, on rayon's pool (the one
//! `--threads` sizes).

use rayon::prelude::*;

use super::tile::{MR, NR, tile};
use super::{Maps, implicit, sum_lanes, winograd};

/// Reduction block of the forward pass: a `KC x NR` panel (16 KiB) stays in L1.
const KC: usize = 256;
/// Pixel block of the weight gradient.
const PC: usize = 256;
/// From this many input channels the forward pass (and with it the input
/// gradient) takes Winograd's F(2x2, 3x3): 1.4-2.5x faster at 32 to 128
/// channels, slower at 16, where its transforms outweigh the products they
/// save (`examples/conv_passes.rs`, BENCHMARKS.md).
const WINOGRAD_FROM_CHANNELS: usize = 32;
/// From this many input channels the weight gradient takes the transpose of
/// F(2x2, 3x3) ([`winograd::weight_grad`]); measured with the same example.
const WINOGRAD_WEIGHT_GRAD_FROM_CHANNELS: usize = 32;

/// `out[b, o] = bias[o] + sum over c, dy, dx of weight[o, c, 1+dy, 1+dx] * input[b, c, y+dy, x+dx]`,
/// zero outside the image: `conv2d` with a `[out_channels, C, 3, 3]` weight,
/// stride 1 and padding 1. Returns `[batch, out_channels, H, W]`.
///
/// # Panics
///
/// If `input`, `weight` or `bias` do not have the lengths the shapes imply.
pub fn forward(
    input: &[f32],
    maps: Maps,
    weight: &[f32],
    out_channels: usize,
    bias: Option<&[f32]>,
) -> Vec<f32> {
    if maps.channels >= WINOGRAD_FROM_CHANNELS {
        winograd::forward(input, maps, weight, out_channels, bias)
    } else {
        implicit::forward(input, maps, weight, out_channels, bias)
    }
}

/// [`forward`] as a direct convolution: im2col panels and the register tile.
///
/// # Panics
///
/// If `input`, `weight` or `bias` do not have the lengths the shapes imply.
pub fn direct_forward(
    input: &[f32],
    maps: Maps,
    weight: &[f32],
    out_channels: usize,
    bias: Option<&[f32]>,
) -> Vec<f32> {
    let k = 9 * maps.channels;
    assert_eq!(input.len(), maps.len(), "input of {maps:?}");
    assert_eq!(weight.len(), out_channels * k, "3x3 weight");
    if let Some(bias) = bias {
        assert_eq!(bias.len(), out_channels, "bias");
    }
    let packed = pack_rows(weight, out_channels, k);
    let (pixels, image_len) = (maps.pixels(), maps.image_len());
    let mut out = vec![0.0f32; maps.batch * out_channels * pixels];
    if out.is_empty() {
        return out;
    }
    let job = Job {
        maps,
        out_channels,
        packed: &packed,
        bias,
    };
    let chunks = chunks_per_image(maps.batch, pixels);
    if chunks == 1 {
        out.par_chunks_mut(out_channels * pixels)
            .zip(input.par_chunks(image_len))
            .for_each(|(dst, image)| job.run(image, 0, pixels, dst));
    } else {
        let ranges = pixel_ranges(maps.batch, pixels, chunks);
        let parts: Vec<Vec<f32>> = ranges
            .par_iter()
            .map(|&(b, p0, p1)| {
                let mut part = vec![0.0f32; out_channels * (p1 - p0)];
                job.run(&input[b * image_len..][..image_len], p0, p1, &mut part);
                part
            })
            .collect();
        for (&(b, p0, p1), part) in ranges.iter().zip(&parts) {
            let len = p1 - p0;
            for o in 0..out_channels {
                out[(b * out_channels + o) * pixels + p0..][..len]
                    .copy_from_slice(&part[o * len..][..len]);
            }
        }
    }
    out
}

/// The gradient with respect to the input of [`forward`], from the gradient
/// `grad_out` (`[batch, out_channels, H, W]`): the same convolution with the
/// weight transposed over channels and flipped in space. Returns
/// `[batch, in_channels, H, W]`.
///
/// # Panics
///
/// If the lengths do not match the shapes.
pub fn input_grad(
    grad_out: &[f32],
    out_maps: Maps,
    weight: &[f32],
    in_channels: usize,
) -> Vec<f32> {
    let out_channels = out_maps.channels;
    assert_eq!(weight.len(), out_channels * in_channels * 9, "3x3 weight");
    let mut flipped = vec![0.0f32; weight.len()];
    for o in 0..out_channels {
        for c in 0..in_channels {
            for t in 0..9 {
                flipped[(c * out_channels + o) * 9 + 8 - t] = weight[(o * in_channels + c) * 9 + t];
            }
        }
    }
    forward(grad_out, out_maps, &flipped, in_channels, None)
}

/// The gradients with respect to the weight (`[out_channels, C, 3, 3]`) and
/// the bias (`[out_channels]`) of [`forward`], from its `input` and the
/// gradient `grad_out` of its output.
///
/// # Panics
///
/// If the lengths do not match the shapes.
pub fn weight_grad(
    input: &[f32],
    maps: Maps,
    grad_out: &[f32],
    out_channels: usize,
) -> (Vec<f32>, Vec<f32>) {
    let weight = if maps.channels >= WINOGRAD_WEIGHT_GRAD_FROM_CHANNELS {
        winograd::weight_grad(input, maps, grad_out, out_channels)
    } else {
        implicit::weight_grad(input, maps, grad_out, out_channels)
    };
    let pixels = maps.pixels();
    let bias = (0..out_channels)
        .into_par_iter()
        .map(|o| {
            (0..maps.batch)
                .map(|b| {
                    let plane = &grad_out[(b * out_channels + o) * pixels..][..pixels];
                    sum_lanes(pixels, |i| [plane[i]])[0]
                })
                .sum::<f64>() as f32
        })
        .collect();
    (weight, bias)
}

/// The weight gradient of [`weight_grad`] as a direct convolution: im2col
/// panels and the register tile, the reduction running over pixels.
///
/// # Panics
///
/// If the lengths do not match the shapes.
pub fn direct_weight_grad(
    input: &[f32],
    maps: Maps,
    grad_out: &[f32],
    out_channels: usize,
) -> Vec<f32> {
    let (pixels, image_len, k) = (maps.pixels(), maps.image_len(), 9 * maps.channels);
    assert_eq!(input.len(), maps.len(), "input of {maps:?}");
    assert_eq!(
        grad_out.len(),
        maps.batch * out_channels * pixels,
        "gradient"
    );
    let ranges = pixel_ranges(maps.batch, pixels, chunks_per_image(maps.batch, pixels));
    ranges
        .par_iter()
        .fold(
            || vec![0.0f32; out_channels * k],
            |mut acc, &(b, p0, p1)| {
                let image = &input[b * image_len..][..image_len];
                let grad = &grad_out[b * out_channels * pixels..][..out_channels * pixels];
                weight_grad_range(image, maps, grad, out_channels, p0, p1, &mut acc);
                acc
            },
        )
        .reduce(
            || vec![0.0f32; out_channels * k],
            |mut a, b| {
                a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
                a
            },
        )
}

/// The forward pass over one image's pixels `p0..p1`, writing
/// `dst[o * (p1 - p0) + p - p0]`.
struct Job<'a> {
    maps: Maps,
    out_channels: usize,
    packed: &'a [f32],
    bias: Option<&'a [f32]>,
}

impl Job<'_> {
    fn run(&self, image: &[f32], p0: usize, p1: usize, dst: &mut [f32]) {
        let (k, len) = (9 * self.maps.channels, p1 - p0);
        let blocks = self.out_channels.div_ceil(MR);
        let mut panel = vec![0.0f32; KC * NR];
        for n0 in (p0..p1).step_by(NR) {
            let nr = NR.min(p1 - n0);
            for k0 in (0..k).step_by(KC) {
                let kc = KC.min(k - k0);
                pack_columns(image, self.maps, k0, kc, n0, nr, NR, &mut panel);
                for i in 0..blocks {
                    let t = tile(kc, &self.packed[(i * k + k0) * MR..], &panel);
                    for (r, row) in t
                        .iter()
                        .enumerate()
                        .take(MR.min(self.out_channels - i * MR))
                    {
                        let o = i * MR + r;
                        let out = &mut dst[o * len + n0 - p0..][..nr];
                        if k0 == 0 {
                            let b = self.bias.map_or(0.0, |b| b[o]);
                            out.iter_mut().zip(row).for_each(|(d, v)| *d = v + b);
                        } else {
                            out.iter_mut().zip(row).for_each(|(d, v)| *d += v);
                        }
                    }
                }
            }
        }
    }
}

/// Adds one image's pixels `p0..p1` to the weight gradient `acc`
/// (`[out_channels, 9C]`): `acc[o, k] += sum over p of grad[o, p] * im2col[k, p]`.
fn weight_grad_range(
    image: &[f32],
    maps: Maps,
    grad: &[f32],
    out_channels: usize,
    p0: usize,
    p1: usize,
    acc: &mut [f32],
) {
    let (k, pixels) = (9 * maps.channels, maps.pixels());
    let blocks = out_channels.div_ceil(MR);
    let mut a = vec![0.0f32; blocks * PC * MR];
    let mut rows = vec![0.0f32; NR * PC];
    let mut panel = vec![0.0f32; PC * NR];
    for q0 in (p0..p1).step_by(PC) {
        let pc = PC.min(p1 - q0);
        // The gradient rows of this pixel block, MR output channels at a time.
        for i in 0..blocks {
            let block = &mut a[i * PC * MR..][..pc * MR];
            for r in 0..MR {
                let o = i * MR + r;
                if o < out_channels {
                    let src = &grad[o * pixels + q0..][..pc];
                    for (q, &v) in src.iter().enumerate() {
                        block[q * MR + r] = v;
                    }
                } else {
                    (0..pc).for_each(|q| block[q * MR + r] = 0.0);
                }
            }
        }
        for k0 in (0..k).step_by(NR) {
            let nk = NR.min(k - k0);
            if maps.width < 12 {
                // Rows shorter than a few tiles: a gather per pixel.
                pack_pixels(image, maps, k0, nk, q0, pc, &mut panel);
            } else {
                // Long rows: copy the im2col rows, then transpose.
                pack_columns(image, maps, k0, nk, q0, pc, PC, &mut rows);
                if nk < NR {
                    panel[..pc * NR].fill(0.0);
                }
                for (q, dst) in panel.chunks_exact_mut(NR).take(pc).enumerate() {
                    for (j, d) in dst.iter_mut().take(nk).enumerate() {
                        *d = rows[j * PC + q];
                    }
                }
            }
            for i in 0..blocks {
                let t = tile(pc, &a[i * PC * MR..], &panel);
                for (r, row) in t.iter().enumerate().take(MR.min(out_channels - i * MR)) {
                    let o = i * MR + r;
                    acc[o * k + k0..][..nk]
                        .iter_mut()
                        .zip(row)
                        .for_each(|(d, v)| *d += v);
                }
            }
        }
    }
}

/// Rows `k0..k0+nk` of the image's im2col matrix over pixels `q0..q0+pc`,
/// transposed: `panel[q * NR + j] = im2col[k0 + j][q0 + q]`, zero for `j >= nk`.
/// For a pixel whose 3x3 neighbourhood lies inside the image, im2col row `k`
/// is the image at the pixel's index plus a constant offset, so the panel is
/// a gather with `nk` fixed offsets; border pixels check each tap.
fn pack_pixels(
    image: &[f32],
    maps: Maps,
    k0: usize,
    nk: usize,
    q0: usize,
    pc: usize,
    panel: &mut [f32],
) {
    let (h, w) = (maps.height, maps.width);
    let (mut offset, mut taps) = ([0isize; NR], [(0isize, 0isize); NR]);
    let (mut c, mut t) = (k0 / 9, k0 % 9);
    for j in 0..nk {
        let (dy, dx) = ((t / 3) as isize - 1, (t % 3) as isize - 1);
        offset[j] = (c * h * w) as isize + dy * w as isize + dx;
        taps[j] = (dy, dx);
        t += 1;
        if t == 9 {
            (c, t) = (c + 1, 0);
        }
    }
    let (offset, taps) = (&offset[..nk], &taps[..nk]);
    let (mut y, mut x) = (q0 / w, q0 % w);
    for (q, dst) in panel.chunks_exact_mut(NR).take(pc).enumerate() {
        let p = (q0 + q) as isize;
        if y >= 1 && y + 1 < h && x >= 1 && x + 1 < w {
            for (d, &o) in dst.iter_mut().zip(offset) {
                *d = image[(p + o) as usize];
            }
        } else {
            for ((d, &o), &(dy, dx)) in dst.iter_mut().zip(offset).zip(taps) {
                let (yy, xx) = (y as isize + dy, x as isize + dx);
                let inside = (0..h as isize).contains(&yy) && (0..w as isize).contains(&xx);
                *d = if inside { image[(p + o) as usize] } else { 0.0 };
            }
        }
        dst[nk..].fill(0.0);
        x += 1;
        if x == w {
            (y, x) = (y + 1, 0);
        }
    }
}

/// A `[rows, k]` row-major matrix packed in blocks of `MR` rows:
/// `packed[(i * k + kk) * MR + r] = m[(i * MR + r) * k + kk]`, zero past the last row.
fn pack_rows(m: &[f32], rows: usize, k: usize) -> Vec<f32> {
    let blocks = rows.div_ceil(MR);
    let mut packed = vec![0.0f32; blocks * k * MR];
    for row in 0..rows {
        let (i, r) = (row / MR, row % MR);
        for (kk, &v) in m[row * k..][..k].iter().enumerate() {
            packed[(i * k + kk) * MR + r] = v;
        }
    }
    packed
}

/// Rows `k0..k0+kc` and pixel columns `n0..n0+nc` of the image's im2col
/// matrix into `panel[kk * ld + j]`, zero for `j` in `nc..ld`. Each row is
/// copied as one shifted slice per image row the columns cross; a full tile
/// width inside the image is a fixed-size copy the compiler inlines (a call
/// to `memmove` per 16 floats cost as much as the arithmetic at 16 channels).
#[allow(clippy::too_many_arguments)]
fn pack_columns(
    image: &[f32],
    maps: Maps,
    k0: usize,
    kc: usize,
    n0: usize,
    nc: usize,
    ld: usize,
    panel: &mut [f32],
) {
    let (h, w) = (maps.height, maps.width);
    // The image-row segments the columns cross: (panel column, y, x, length).
    let mut segments = Vec::with_capacity(nc / w + 2);
    let mut j = 0;
    while j < nc {
        let (y, x) = ((n0 + j) / w, (n0 + j) % w);
        let run = (w - x).min(nc - j);
        segments.push((j, y, x, run));
        j += run;
    }
    let (mut c, mut t) = (k0 / 9, k0 % 9);
    for kk in 0..kc {
        let (dy, dx) = ((t / 3) as isize - 1, (t % 3) as isize - 1);
        let plane = &image[c * h * w..][..h * w];
        let dst = &mut panel[kk * ld..][..ld];
        dst[nc..].fill(0.0);
        for &(j, y, x, run) in &segments {
            let (yy, xs) = (y as isize + dy, x as isize + dx);
            let out = &mut dst[j..j + run];
            if !(0..h as isize).contains(&yy) {
                out.fill(0.0);
                continue;
            }
            let row = &plane[yy as usize * w..][..w];
            match (run == NR, xs) {
                // A full tile width: inside the image, or one column over
                // its left or right edge.
                (true, -1) if NR - 1 <= w => {
                    out[0] = 0.0;
                    copy_fixed::<{ NR - 1 }>(&row[..NR - 1], &mut out[1..]);
                }
                (true, xs) if xs >= 0 && xs as usize + NR <= w => {
                    copy_fixed::<NR>(&row[xs as usize..], out);
                }
                (true, xs) if xs >= 0 && xs as usize + NR == w + 1 => {
                    copy_fixed::<{ NR - 1 }>(&row[xs as usize..], out);
                    out[NR - 1] = 0.0;
                }
                _ => copy_shifted(row, xs, out),
            }
        }
        t += 1;
        if t == 9 {
            (c, t) = (c + 1, 0);
        }
    }
}

/// The first `N` values of `src` into the first `N` of `dst`, a copy of a
/// length known at compile time (inlined, no call).
fn copy_fixed<const N: usize>(src: &[f32], dst: &mut [f32]) {
    let src: &[f32; N] = src[..N].try_into().expect("N long");
    let dst: &mut [f32; N] = (&mut dst[..N]).try_into().expect("N long");
    *dst = *src;
}

/// `out[t] = row[start + t]` where that index is inside `row`, else zero.
fn copy_shifted(row: &[f32], start: isize, out: &mut [f32]) {
    let (len, w) = (out.len() as isize, row.len() as isize);
    let lo = (-start).clamp(0, len);
    let hi = (w - start).clamp(lo, len);
    out[..lo as usize].fill(0.0);
    if hi > lo {
        out[lo as usize..hi as usize]
            .copy_from_slice(&row[(start + lo) as usize..(start + hi) as usize]);
    }
    out[hi as usize..].fill(0.0);
}

/// How many pixel ranges each image is cut into: one when the batch alone
/// keeps every thread busy, more for a single large image.
fn chunks_per_image(batch: usize, pixels: usize) -> usize {
    let tasks = 2 * rayon::current_num_threads();
    if batch >= tasks {
        return 1;
    }
    let wanted = tasks.div_ceil(batch.max(1));
    // Keep ranges at least a few strips long.
    wanted.min(pixels.div_ceil(4 * NR)).max(1)
}

/// `(image, p0, p1)` for every image cut into `chunks` ranges of whole strips.
fn pixel_ranges(batch: usize, pixels: usize, chunks: usize) -> Vec<(usize, usize, usize)> {
    let step = pixels.div_ceil(chunks).div_ceil(NR) * NR;
    (0..batch)
        .flat_map(|b| {
            (0..pixels)
                .step_by(step.max(NR))
                .map(move |p0| (b, p0, (p0 + step.max(NR)).min(pixels)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition, one output at a time (f64 sums).
    fn naive(input: &[f32], m: Maps, weight: &[f32], o_ch: usize, bias: &[f32]) -> Vec<f32> {
        let (h, w) = (m.height as isize, m.width as isize);
        let mut out = vec![0.0f32; m.batch * o_ch * m.pixels()];
        for b in 0..m.batch {
            for o in 0..o_ch {
                for y in 0..h {
                    for x in 0..w {
                        let mut s = bias[o] as f64;
                        for c in 0..m.channels {
                            for t in 0..9 {
                                let (yy, xx) = (y + t / 3 - 1, x + t % 3 - 1);
                                if (0..h).contains(&yy) && (0..w).contains(&xx) {
                                    let i = ((b * m.channels + c) as isize * h + yy) * w + xx;
                                    s += weight[(o * m.channels + c) * 9 + t as usize] as f64
                                        * input[i as usize] as f64;
                                }
                            }
                        }
                        out[((b * o_ch + o) as isize * h + y) as usize * w as usize + x as usize] =
                            s as f32;
                    }
                }
            }
        }
        out
    }

    fn values(n: usize, seed: u32) -> Vec<f32> {
        // A deterministic spread of values in [-1, 1).
        (0..n as u32)
            .map(|i| ((i.wrapping_mul(2_654_435_761) ^ seed) % 2001) as f32 / 1000.0 - 1.0)
            .collect()
    }

    /// `<a, b>` in f64.
    fn dot(a: &[f32], b: &[f32]) -> f64 {
        a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum()
    }

    fn max_diff(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    /// Odd sizes: partial strips, strips across rows, a channel count that is
    /// not a multiple of the tile, K above one reduction block, one and many
    /// images (the single image is cut into pixel ranges), rows of whole
    /// tiles whose first and last reach over the image's edges, and channel
    /// counts on both sides of the Winograd threshold in both directions (the
    /// input gradient's forward runs over the output channels).
    const CASES: [(Maps, usize); 6] = [
        (
            Maps {
                batch: 3,
                channels: 5,
                height: 7,
                width: 9,
            },
            7,
        ),
        (
            Maps {
                batch: 1,
                channels: 31,
                height: 13,
                width: 35,
            },
            13,
        ),
        (
            Maps {
                batch: 2,
                channels: 1,
                height: 4,
                width: 3,
            },
            16,
        ),
        (
            Maps {
                batch: 5,
                channels: 40,
                height: 6,
                width: 6,
            },
            6,
        ),
        (
            Maps {
                batch: 2,
                channels: 3,
                height: 5,
                width: 48,
            },
            5,
        ),
        (
            Maps {
                batch: 2,
                channels: 3,
                height: 5,
                width: 7,
            },
            33,
        ),
    ];

    #[test]
    fn forward_matches_the_definition() {
        for (m, o_ch) in CASES {
            let (x, wt, b) = (
                values(m.len(), 1),
                values(o_ch * m.channels * 9, 2),
                values(o_ch, 3),
            );
            let got = forward(&x, m, &wt, o_ch, Some(&b));
            let d = max_diff(&got, &naive(&x, m, &wt, o_ch, &b));
            assert!(d < 1e-4, "{m:?} -> {o_ch}: {d}");
        }
    }

    /// Both gradients against finite-free identities: for the linear map `f`,
    /// `<dy, f(x)> = <f^T(dy), x>` (input gradient) and, per weight,
    /// `d<dy, f(x)>/dw = weight_grad` (checked against the definition).
    #[test]
    fn gradients_match_the_definition() {
        for (m, o_ch) in CASES {
            let out_maps = Maps {
                channels: o_ch,
                ..m
            };
            let (x, wt) = (values(m.len(), 4), values(o_ch * m.channels * 9, 5));
            let dy = values(out_maps.len(), 6);
            let zero = vec![0.0f32; o_ch];
            // <dy, conv(x)> = <input_grad(dy), x>
            let lhs = dot(&naive(&x, m, &wt, o_ch, &zero), &dy);
            let dx = input_grad(&dy, out_maps, &wt, m.channels);
            let rhs = dot(&dx, &x);
            assert!(
                (lhs - rhs).abs() < 1e-3 * lhs.abs().max(1.0),
                "{m:?}: {lhs} vs {rhs}"
            );
            // dx element by element: the input gradient is the adjoint, so
            // dx[i] = <dy, conv(e_i)>; check a spread of positions.
            for i in (0..m.len()).step_by(m.len() / 7 + 1) {
                let mut e = vec![0.0f32; m.len()];
                e[i] = 1.0;
                let want = dot(&naive(&e, m, &wt, o_ch, &zero), &dy);
                assert!((dx[i] as f64 - want).abs() < 1e-4, "{m:?} dx[{i}]");
            }
            // The weight gradient: dW[j] = <dy, conv_{e_j}(x)>, bias: sum of dy.
            let (dw, db) = weight_grad(&x, m, &dy, o_ch);
            for j in (0..wt.len()).step_by(wt.len() / 11 + 1) {
                let mut e = vec![0.0f32; wt.len()];
                e[j] = 1.0;
                let want = dot(&naive(&x, m, &e, o_ch, &zero), &dy);
                assert!(
                    (dw[j] as f64 - want).abs() < 1e-3,
                    "{m:?} dw[{j}]: {} vs {want}",
                    dw[j]
                );
            }
            for (o, &g) in db.iter().enumerate() {
                let want: f32 = (0..m.batch)
                    .flat_map(|b| &dy[(b * o_ch + o) * m.pixels()..][..m.pixels()])
                    .sum();
                assert!((g - want).abs() < 1e-3, "{m:?} db[{o}]");
            }
        }
    }

    #[test]
    fn pixel_ranges_cover_every_pixel_once() {
        for (batch, pixels, chunks) in [(1, 100, 4), (3, 17, 2), (2, 2304, 1), (1, 5, 8)] {
            let ranges = pixel_ranges(batch, pixels, chunks);
            for b in 0..batch {
                let mut next = 0;
                for &(_, p0, p1) in ranges.iter().filter(|r| r.0 == b) {
                    assert_eq!(p0, next);
                    assert!(p1 > p0 && (p1 - p0) % NR == 0 || p1 == pixels);
                    next = p1;
                }
                assert_eq!(next, pixels);
            }
        }
    }

    #[test]
    fn shifted_copies_zero_what_falls_outside() {
        let row = [1.0, 2.0, 3.0, 4.0];
        let mut out = [9.0; 6];
        copy_shifted(&row, -1, &mut out);
        assert_eq!(out, [0.0, 1.0, 2.0, 3.0, 4.0, 0.0]);
        let mut out = [9.0; 2];
        copy_shifted(&row, 3, &mut out);
        assert_eq!(out, [4.0, 0.0]);
        copy_shifted(&row, 7, &mut out);
        assert_eq!(out, [0.0, 0.0]);
    }
}
