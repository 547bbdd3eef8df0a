//! The 3x3 convolution's forward pass and weight gradient as implicit matrix
//! products on a zero-padded copy of the image: no panel is packed.
//!
//! In an image padded by one pixel on every side and flattened row by row
//! (`pw = W + 2` values per row), output pixel `(y, x)` sits at position
//! `q = y * pw + x`, and its tap `(dy, dx)` of channel `c` at
//! `c * plane + q + dy * pw + dx`: one constant offset per tap. So the values
//! a tap contributes to consecutive positions are consecutive in memory, and
//! the register tile reads them where they lie ([`tile_offsets`] for the
//! forward pass, [`tile_dot`] for the weight gradient). The price is the
//! two padding columns of each row, computed and dropped (4% at 48x48), and
//! for small images taken several at a time, the margin rows between them.
//!
//! Used for 3x3 convolutions below the input channels from which Winograd
//! takes over ([`winograd_from`](super::conv::winograd_from)), and for
//! every 1x1 convolution (no padding, one tap per channel).

use rayon::prelude::*;

use std::ops::Range;

use super::conv::Activation;
use super::tile::{
    DR, DS, FN, FR, Windows, bf16_pair, has_bf16, tile_dot, tile_offsets, tile_offsets_bf16,
};
use super::{Disjoint, Maps};

/// A unit of work: rows `rows.0..rows.1` of the images `images`.
#[derive(Clone, Debug)]
struct Job {
    images: Range<usize>,
    rows: (usize, usize),
}

/// The job's rows of its images, zero-padded by `margin` pixels (1 for a
/// 3x3 kernel, none for 1x1). Each plane holds, image after image, a block
/// of the image rows `y0 - m .. y1 + m` (zero outside the image) of
/// `W + 2m` values; after the last plane, room for the windows of the last
/// positions. Output pixel `(y, x)` of the job's image `i` sits at position
/// [`Band::position`]`(i, y - y0, x)`, and each of its taps at a constant
/// offset from there ([`Band::taps`]); the positions in between (padding
/// columns, the margin rows between images) are computed and dropped.
///
/// Each job pads its own band: a few hundred kilobytes that stay in the
/// core's cache while the tiles read them, where a padded copy of the whole
/// batch went to memory and back (16-channel passes took 40% longer inside
/// a training step than alone).
struct Band {
    data: Vec<f32>,
    /// Values per padded row.
    pw: usize,
    /// Padded rows per image: the job's rows and the margins.
    block: usize,
    /// Values per padded plane.
    plane: usize,
}

impl Band {
    fn new(input: &[f32], maps: Maps, job: &Job, margin: usize) -> Self {
        let (c, h, w) = (maps.channels, maps.height, maps.width);
        let (y0, y1) = job.rows;
        let (pw, block) = (w + 2 * margin, y1 - y0 + 2 * margin);
        let plane = job.images.len() * block * pw;
        // Written in order, each value once (zeroing all first then copying
        // was a second pass).
        let mut data = Vec::with_capacity(c * plane + FN + 2 * pw + 8);
        for ch in 0..c {
            for b in job.images.clone() {
                let plane_in = &input[(b * c + ch) * h * w..][..h * w];
                for r in 0..block {
                    // Image row y0 + r - margin, when inside the image.
                    match (y0 + r).checked_sub(margin).filter(|&y| y < h) {
                        Some(y) => {
                            data.extend(std::iter::repeat_n(0.0, margin));
                            data.extend_from_slice(&plane_in[y * w..][..w]);
                            data.extend(std::iter::repeat_n(0.0, margin));
                        }
                        None => data.extend(std::iter::repeat_n(0.0, pw)),
                    }
                }
            }
        }
        data.resize(data.capacity(), 0.0);
        Self {
            data,
            pw,
            block,
            plane,
        }
    }

    /// The position of the output pixel in row `row` of the job (`y - y0`)
    /// and column `x` of the job's image `i`.
    fn position(&self, i: usize, row: usize, x: usize) -> usize {
        (i * self.block + row) * self.pw + x
    }

    /// The band as bf16 pairs of channels `2p`, `2p + 1` (`p * plane + q`),
    /// zero past the last channel and the last position; with the offset of
    /// every tap `(p, dy, dx)` from its output position, in
    /// [`Forward::pack_bf16`]'s order.
    fn bf16_pairs(&self, channels: usize, kernel: usize) -> (Vec<u32>, Vec<usize>) {
        let pairs = channels.div_ceil(2);
        let tail = self.data.len() - channels * self.plane;
        let mut out = Vec::with_capacity(pairs * self.plane + tail);
        for p in 0..pairs {
            let lo = &self.data[2 * p * self.plane..][..self.plane];
            if 2 * p + 1 < channels {
                let hi = &self.data[(2 * p + 1) * self.plane..][..self.plane];
                out.extend(lo.iter().zip(hi).map(|(&l, &h)| bf16_pair(l, h)));
            } else {
                out.extend(lo.iter().map(|&l| bf16_pair(l, 0.0)));
            }
        }
        out.resize(pairs * self.plane + tail, 0);
        (out, self.taps(pairs, kernel))
    }

    /// The offset of every tap `(c, dy, dx)` of a `kernel x kernel` filter
    /// (`kernel = 2 * margin + 1`) from its output position, in the weight's
    /// order (`c * kernel² + dy * kernel + dx`): ascending.
    fn taps(&self, channels: usize, kernel: usize) -> Vec<usize> {
        let k2 = kernel * kernel;
        (0..channels)
            .flat_map(|c| (0..k2).map(move |t| c * self.plane + t / kernel * self.pw + t % kernel))
            .collect()
    }
}

/// Rows `y0..y1` of each image: the unit of work, when an image alone would
/// leave threads idle.
fn row_ranges(batch: usize, height: usize) -> Vec<(usize, usize, usize)> {
    let per_image = (2 * rayon::current_num_threads())
        .div_ceil(batch.max(1))
        .clamp(1, height.max(1));
    let rows = height.div_ceil(per_image).max(1);
    (0..batch)
        .flat_map(|b| {
            (0..height)
                .step_by(rows)
                .map(move |y0| (b, y0, (y0 + rows).min(height)))
        })
        .collect()
}

/// [`conv::forward`](super::conv::forward) for a `kernel x kernel` filter
/// (3, padding 1; or 1, no padding), stride 1: same arguments, same result
/// up to rounding.
///
/// # Panics
///
/// If `kernel` is even, or `input`, `weight` or `bias` do not have the
/// lengths the shapes imply.
pub fn forward(
    input: &[f32],
    maps: Maps,
    weight: &[f32],
    out_channels: usize,
    bias: Option<&[f32]>,
    kernel: usize,
    act: Activation,
) -> Vec<f32> {
    forward_in(input, maps, weight, out_channels, bias, kernel, act, false)
}

/// [`forward`] with inputs and weights rounded to bfloat16, two input
/// channels per multiply-add pair, products summed in f32
/// ([`tile_offsets_bf16`]): about 3 significant digits per product.
///
/// # Panics
///
/// As [`forward`]; without AVX512_BF16 ([`has_bf16`]).
pub fn forward_bf16(
    input: &[f32],
    maps: Maps,
    weight: &[f32],
    out_channels: usize,
    bias: Option<&[f32]>,
    kernel: usize,
    act: Activation,
) -> Vec<f32> {
    assert!(has_bf16(), "the bf16 convolution needs AVX512_BF16");
    forward_in(input, maps, weight, out_channels, bias, kernel, act, true)
}

#[allow(clippy::too_many_arguments)]
fn forward_in(
    input: &[f32],
    maps: Maps,
    weight: &[f32],
    out_channels: usize,
    bias: Option<&[f32]>,
    kernel: usize,
    act: Activation,
    bf16: bool,
) -> Vec<f32> {
    let (c, h, w) = (maps.channels, maps.height, maps.width);
    assert!(kernel % 2 == 1, "odd kernel sizes only");
    let k = kernel * kernel * c;
    assert_eq!(input.len(), maps.len(), "input of {maps:?}");
    assert_eq!(weight.len(), out_channels * k, "{kernel}x{kernel} weight");
    if let Some(bias) = bias {
        assert_eq!(bias.len(), out_channels, "bias");
    }
    let image_len = out_channels * h * w;
    if maps.batch * image_len == 0 {
        return Vec::new();
    }
    let mut job = Forward::new(input, maps, weight, out_channels, bias, kernel, act);
    if bf16 {
        job.pack_bf16(weight);
    }
    // Each job writes its rows of every output channel in place: no
    // zeroed buffer first, and images split into bands of rows (fewer
    // images than threads) are not stitched from parts afterwards (zeroing,
    // stitching and copying were 12% of one 576x576 image's f32 inference).
    let len = maps.batch * image_len;
    let mut out = Vec::with_capacity(len);
    let dst = Disjoint::new(&mut out);
    jobs(maps, kernel / 2, FORWARD_POSITIONS)
        .par_iter()
        // SAFETY: the jobs cover every (image, row) once, so their writes
        // are disjoint, and together they write all `len` values.
        .for_each(|j| unsafe { job.run(j, &dst) });
    // SAFETY: every value was written above.
    unsafe { out.set_len(len) };
    out
}

/// Padded positions per forward job: one image each. Groups of small images
/// would waste fewer of a tile's [`FN`] lanes past an image's end, but
/// their band leaves the first-level cache: with about 1024 positions per
/// job the forward pass was 10% (24x24) to 40% (6x6) slower
/// (`examples/conv_passes.rs`).
const FORWARD_POSITIONS: usize = 1;

/// The forward pass's work: the padded input is read through the taps'
/// offsets, the weight packed in blocks of [`FR`] output channels.
struct Forward<'a> {
    input: &'a [f32],
    kernel: usize,
    /// `packed[(i * k + kk) * FR + r]`: weight of output channel
    /// `i * FR + r` at tap `kk`, zero past the last channel.
    packed: Vec<f32>,
    bias: Option<&'a [f32]>,
    maps: Maps,
    out_channels: usize,
    act: Activation,
    /// `packed_bf16[(i * k2 + p * kernel² + t) * FR + r]`: the weights of
    /// output channel `i * FR + r` at tap `t` of input channels `2p` and
    /// `2p + 1` as one bf16 pair (`k2 = ceil(C / 2) * kernel²`), when the
    /// pass runs in bf16.
    packed_bf16: Option<Vec<u32>>,
}

impl<'a> Forward<'a> {
    fn new(
        input: &'a [f32],
        maps: Maps,
        weight: &[f32],
        out_channels: usize,
        bias: Option<&'a [f32]>,
        kernel: usize,
        act: Activation,
    ) -> Self {
        let k = kernel * kernel * maps.channels;
        let mut packed = vec![0.0f32; out_channels.div_ceil(FR) * k * FR];
        for (o, filters) in weight.chunks_exact(k).enumerate() {
            for (kk, &v) in filters.iter().enumerate() {
                packed[((o / FR) * k + kk) * FR + o % FR] = v;
            }
        }
        Self {
            input,
            kernel,
            packed,
            bias,
            maps,
            out_channels,
            act,
            packed_bf16: None,
        }
    }

    /// Packs the weight as bf16 pairs of input channels: the pass then runs in bf16.
    fn pack_bf16(&mut self, weight: &[f32]) {
        let (c, k2) = (self.maps.channels, self.kernel * self.kernel);
        let pairs = c.div_ceil(2);
        let mut packed = vec![0u32; self.out_channels.div_ceil(FR) * pairs * k2 * FR];
        for (o, filters) in weight.chunks_exact(c * k2).enumerate() {
            for p in 0..pairs {
                for t in 0..k2 {
                    let at = |ch: usize| if ch < c { filters[ch * k2 + t] } else { 0.0 };
                    packed[((o / FR) * pairs * k2 + p * k2 + t) * FR + o % FR] =
                        bf16_pair(at(2 * p), at(2 * p + 1));
                }
            }
        }
        self.packed_bf16 = Some(packed);
    }

    /// The job's output: its rows of every output channel of its images,
    /// written into `dst`, the whole `[batch, out_channels, H, W]` output.
    ///
    /// # Safety
    ///
    /// `dst` must hold the whole output, and no other job may write the
    /// same rows of the same images.
    unsafe fn run(&self, job: &Job, dst: &Disjoint<f32>) {
        let band = Band::new(self.input, self.maps, job, self.kernel / 2);
        match &self.packed_bf16 {
            None => {
                let taps = Windows::new(band.taps(self.maps.channels, self.kernel));
                let k = taps.len();
                // SAFETY: as this function's.
                unsafe {
                    self.run_on(&band, job, dst, |i, p0| {
                        tile_offsets(&self.packed[i * k * FR..], &band.data[p0..], &taps)
                    })
                };
            }
            Some(packed) => {
                let (pairs, taps) = band.bf16_pairs(self.maps.channels, self.kernel);
                let taps = Windows::new(taps);
                let k = taps.len();
                // SAFETY: as this function's.
                unsafe {
                    self.run_on(&band, job, dst, |i, p0| {
                        tile_offsets_bf16(&packed[i * k * FR..], &pairs[p0..], &taps)
                    })
                };
            }
        }
    }

    /// [`Forward::run`] on the job's band, already padded, its tiles from
    /// `tile(block of FR output channels, first position)`.
    ///
    /// # Safety
    ///
    /// As [`Forward::run`].
    unsafe fn run_on(
        &self,
        band: &Band,
        job: &Job,
        dst: &Disjoint<f32>,
        tile: impl Fn(usize, usize) -> [[f32; FN]; FR],
    ) {
        let (w, pw) = (self.maps.width, band.pw);
        let (y0, rows) = (job.rows.0, job.rows.1 - job.rows.0);
        let plane = self.maps.pixels();
        let end = band.position(job.images.len() - 1, rows - 1, w - 1) + 1;
        let mut segments = Vec::with_capacity(FN);
        for p0 in (0..end).step_by(FN) {
            // Runs of lanes on output pixels: (first lane, length, index in
            // dst for output channel 0).
            segments.clear();
            let mut lane = 0;
            while lane < FN && p0 + lane < end {
                let (r, x) = ((p0 + lane) / pw, (p0 + lane) % pw);
                let (i, row) = (r / band.block, r % band.block);
                let run = (FN - lane).min(pw - x).min(end - p0 - lane);
                if x < w && row < rows {
                    let image = job.images.start + i;
                    let at = image * self.out_channels * plane + (y0 + row) * w + x;
                    segments.push((lane, run.min(w - x), at));
                }
                lane += run;
            }
            for i in 0..self.out_channels.div_ceil(FR) {
                let t = tile(i, p0);
                for (r, row) in t
                    .iter()
                    .enumerate()
                    .take(FR.min(self.out_channels - i * FR))
                {
                    let o = i * FR + r;
                    let bias = self.bias.map_or(0.0, |b| b[o]);
                    for &(lane, len, at) in &segments {
                        // SAFETY: a run of output pixels of one of the
                        // job's rows, inside the output; only this job
                        // writes them (the caller's promise).
                        let d = unsafe { dst.part(at + o * plane, len) };
                        let values = row[lane..lane + len].iter();
                        match self.act {
                            Activation::Identity => d.iter_mut().zip(values).for_each(|(d, &v)| {
                                d.write(v + bias);
                            }),
                            Activation::Relu => d.iter_mut().zip(values).for_each(|(d, &v)| {
                                d.write(Activation::Relu.apply(v + bias));
                            }),
                        }
                    }
                }
            }
        }
    }
}

/// [`conv::weight_grad`](super::conv::weight_grad)'s weight part: the
/// gradient of the `[out_channels, C, kernel, kernel]` weight, up to
/// rounding. Each tap's weight gradient is a dot product over positions of
/// the padded input, shifted by the tap's offset, with the output gradient
/// laid out at the same positions (zero at the padding): [`tile_dot`] takes
/// [`DR`] taps by [`DS`] output channels at a time.
///
/// `kernel` as in [`forward`].
///
/// # Panics
///
/// If `kernel` is even or the lengths do not match the shapes.
pub fn weight_grad(
    input: &[f32],
    maps: Maps,
    grad_out: &[f32],
    out_channels: usize,
    kernel: usize,
) -> Vec<f32> {
    let (c, h, w) = (maps.channels, maps.height, maps.width);
    assert!(kernel % 2 == 1, "odd kernel sizes only");
    let k = kernel * kernel * c;
    assert_eq!(input.len(), maps.len(), "input of {maps:?}");
    assert_eq!(
        grad_out.len(),
        maps.batch * out_channels * h * w,
        "gradient"
    );
    let len = out_channels * k;
    if maps.is_empty() || len == 0 {
        return vec![0.0; len];
    }
    let margin = kernel / 2;
    jobs(maps, margin, GRAD_POSITIONS)
        .into_par_iter()
        .fold(
            || vec![0.0f32; len],
            |mut grad, job| {
                let band = Band::new(input, maps, &job, margin);
                let taps = band.taps(c, kernel);
                let (y0, y1) = job.rows;
                // Up to the last output pixel's position.
                let n = band.position(job.images.len() - 1, y1 - y0 - 1, w - 1) + 1;
                // The output gradient at the band's positions: gp[o * n + q].
                let mut gp = vec![0.0f32; out_channels * n];
                for (i, b) in job.images.clone().enumerate() {
                    for (o, rows) in gp.chunks_exact_mut(n).enumerate() {
                        let plane = &grad_out[(b * out_channels + o) * h * w..][..h * w];
                        for y in y0..y1 {
                            rows[band.position(i, y - y0, 0)..][..w]
                                .copy_from_slice(&plane[y * w..][..w]);
                        }
                    }
                }
                // Output channels outside: their gradient rows stay in the
                // first-level cache across the taps (64 channels: 1.28 ->
                // 1.23-1.25 ms per pass, examples/conv_passes.rs).
                for o0 in (0..out_channels).step_by(DS) {
                    // Past the last tap or channel, repeat it; its sums are dropped.
                    let b: [&[f32]; DS] =
                        std::array::from_fn(|s| &gp[(o0 + s).min(out_channels - 1) * n..][..n]);
                    for t0 in (0..k).step_by(DR) {
                        let a: [&[f32]; DR] =
                            std::array::from_fn(|r| &band.data[taps[(t0 + r).min(k - 1)]..][..n]);
                        let sums = tile_dot(n, a, b);
                        for (r, row) in sums.iter().enumerate().take(k - t0) {
                            for (s, &v) in row.iter().enumerate().take(out_channels - o0) {
                                grad[(o0 + s) * k + t0 + r] += v;
                            }
                        }
                    }
                }
                grad
            },
        )
        .reduce(
            || vec![0.0f32; len],
            |mut a, b| {
                a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
                a
            },
        )
}

/// Padded positions per weight-gradient job: small images are taken several
/// at a time, so that each dot product runs long enough to pay for adding up
/// its lanes, and the band and gradient rows still fit the core's cache.
const GRAD_POSITIONS: usize = 1536;

/// The units of work: bands of rows of each image when the images are
/// fewer than two per thread ([`row_ranges`]), else groups of whole images
/// with about `positions` padded positions (at least one image, and at
/// least two groups per thread).
fn jobs(maps: Maps, margin: usize, positions: usize) -> Vec<Job> {
    let ranges = row_ranges(maps.batch, maps.height);
    if ranges.len() > maps.batch {
        return ranges
            .into_iter()
            .map(|(b, y0, y1)| Job {
                images: b..b + 1,
                rows: (y0, y1),
            })
            .collect();
    }
    let per_image = (maps.height + 2 * margin) * (maps.width + 2 * margin);
    let most = (maps.batch / (2 * rayon::current_num_threads())).max(1);
    let group = positions.div_ceil(per_image).clamp(1, most);
    (0..maps.batch)
        .step_by(group)
        .map(|b0| Job {
            images: b0..(b0 + group).min(maps.batch),
            rows: (0, maps.height),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::conv::reference::{
        check_forward, check_weight_grad, maps, max_diff, values,
    };

    /// Shapes with widths below and above a tile's lanes, one row, one
    /// column, channel counts off the tiles' rows and columns, batches
    /// smaller than the thread count (split by rows), and batches of small
    /// images (taken several at a time by the weight gradient).
    const SHAPES: [(usize, usize, usize, usize, usize); 9] = [
        (9, 3, 5, 6, 5),
        (16, 2, 3, 4, 9),
        (3, 5, 7, 9, 7),
        (1, 16, 13, 35, 13),
        (2, 1, 4, 3, 16),
        (5, 3, 6, 6, 6),
        (2, 16, 48, 48, 17),
        (1, 2, 1, 30, 5),
        (1, 4, 9, 1, 3),
    ];

    #[test]
    fn forward_matches_the_definition() {
        check_forward(&SHAPES, |x, m, wt, o, b| {
            forward(x, m, wt, o, b, 3, Activation::Identity)
        });
    }

    /// The bf16 pass is the definition on inputs and weights rounded to
    /// bf16, summed in f32: equal up to the order of the additions.
    #[test]
    fn bf16_forward_is_the_definition_on_rounded_values() {
        if !has_bf16() {
            eprintln!("skipped: this CPU has no AVX512_BF16 (or R2UNET_ISA caps it)");
            return;
        }
        let round = |v: &[f32]| -> Vec<f32> {
            v.iter()
                .map(|&x| f32::from_bits(u32::from(super::super::tile::to_bf16(x)) << 16))
                .collect()
        };
        for &(batch, channels, height, width, o) in &SHAPES {
            let m = maps(batch, channels, height, width);
            let (x, wt, b) = (
                values(m.len(), 1),
                values(o * channels * 9, 2),
                values(o, 3),
            );
            let want = crate::kernels::conv::reference::forward(&round(&x), m, &round(&wt), o, &b);
            let got = forward_bf16(&x, m, &wt, o, Some(&b), 3, Activation::Identity);
            let d = max_diff(&got, &want);
            assert!(d < 1e-4, "{m:?} -> {o}: {d}");
            // And within bf16's precision of the f32 pass.
            let f32_pass = forward(&x, m, &wt, o, Some(&b), 3, Activation::Identity);
            let scale = f32_pass.iter().fold(1.0f32, |a, v| a.max(v.abs()));
            assert!(max_diff(&got, &f32_pass) < 0.05 * scale, "{m:?}");
        }
    }

    #[test]
    fn weight_gradient_matches_the_definition() {
        check_weight_grad(&SHAPES, |x, m, g, o| weight_grad(x, m, g, o, 3));
    }

    /// The 1x1 convolution: `out[b, o, p] = bias[o] + sum over c of w[o, c] * x[b, c, p]`,
    /// and its weight gradient `dW[o, c] = sum over b, p of g[b, o, p] * x[b, c, p]`.
    #[test]
    fn pointwise_passes_match_the_definition() {
        for (batch, channels, height, width, o) in SHAPES {
            let m = maps(batch, channels, height, width);
            let p = height * width;
            let (x, wt, b) = (values(m.len(), 7), values(o * channels, 8), values(o, 9));
            let g = values(batch * o * p, 10);
            let at = |b: usize, ch: usize, i: usize| x[(b * channels + ch) * p + i] as f64;
            let mut want = vec![0.0f32; batch * o * p];
            let mut want_dw = vec![0.0f32; o * channels];
            for (bo, out) in want.chunks_exact_mut(p).enumerate() {
                let (bb, oo) = (bo / o, bo % o);
                for (i, v) in out.iter_mut().enumerate() {
                    let s: f64 = (0..channels)
                        .map(|ch| wt[oo * channels + ch] as f64 * at(bb, ch, i))
                        .sum();
                    *v = (s + b[oo] as f64) as f32;
                }
            }
            for (j, dw) in want_dw.iter_mut().enumerate() {
                let (oo, ch) = (j / channels, j % channels);
                let s: f64 = (0..batch)
                    .flat_map(|bb| (0..p).map(move |i| (bb, i)))
                    .map(|(bb, i)| g[(bb * o + oo) * p + i] as f64 * at(bb, ch, i))
                    .sum();
                *dw = s as f32;
            }
            let d = max_diff(
                &forward(&x, m, &wt, o, Some(&b), 1, Activation::Identity),
                &want,
            );
            assert!(d < 1e-5, "{m:?} -> {o}: forward {d}");
            let got = weight_grad(&x, m, &g, o, 1);
            let scale = want_dw.iter().fold(1.0f32, |a, v| a.max(v.abs()));
            let d = max_diff(&got, &want_dw);
            assert!(d < 1e-5 * scale, "{m:?} -> {o}: weight gradient {d}");
        }
    }
}
