//! The three passes of a 3x3 convolution with stride 1 and padding 1 on
//! contiguous NCHW `f32` buffers: forward, input gradient and weight/bias
//! gradient. Every 3x3 convolution of the U-Net family is of this kind.
//!
//! Two implementations stand behind them, chosen by the input channels
//! ([`winograd_from`], per instruction set): Winograd's F(2x2, 3x3)
//! ([`winograd`]) and, forward, F(4x4, 3x3) ([`winograd4`]) for the wider
//! levels, and below them the implicit matrix
//! product on zero-padded bands of rows ([`implicit`]), which reads the
//! register tile's operands where they lie instead of building `im2col`
//! panels (Burn's generic path builds the `im2col` matrix, then `gemm` packs
//! it again, and converts layouts around both: BENCHMARKS.md, "Where the
//! time goes"). The input gradient is the forward pass of the flipped,
//! transposed weight. Under `--precision bf16` on processors with AMX, the
//! forward pass and the weight gradient go to AMX tiles instead
//! ([`super::amx`]). Work runs on rayon's pool (the one `--threads` sizes).

use rayon::prelude::*;

use super::{Maps, add_to, implicit, sum_lanes, winograd, winograd4};

/// From how many input channels Winograd's F(2x2, 3x3) ([`winograd`])
/// takes each pass; below, the implicit product ([`implicit`]). Above
/// both, F(4x4, 3x3) ([`winograd4`]) takes the forward pass from
/// `forward_4x4` channels on maps where its 4x4 blocks waste little
/// ([`four_by_four_pays`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WinogradFrom {
    /// The forward pass, and with it the input gradient (whose input
    /// channels are the layer's output channels).
    pub forward: usize,
    /// The forward pass by F(4x4, 3x3) (`usize::MAX`: never)...
    pub forward_4x4: usize,
    /// ... and on maps at least `wide` columns wide.
    pub forward_4x4_wide: usize,
    /// Columns from which `forward_4x4_wide` applies: on AVX-512 where
    /// F(4x4, 3x3)'s input goes by runs of tiles (`winograd4::RUNS_FROM`),
    /// elsewhere where the implicit product's bands outgrow the cache.
    pub wide: usize,
    /// The weight gradient (F(2x2, 3x3)'s transpose).
    pub weight_grad: usize,
}

/// [`WinogradFrom`] for the instruction set the tiles run on
/// ([`tile::isa`](super::tile::isa)), where each pass of
/// `examples/conv_passes.rs` (batch 32, C -> C channels) was faster:
/// - AVX-512: on AMD Zen 5 (full-width 512-bit units) the implicit
///   product's tiles outran F(2x2, 3x3)'s transforms up to 32 channels
///   forward and 64 in the weight gradient. F(4x4, 3x3), written since,
///   measured on AMD Zen 4 (512-bit instructions on 256-bit units): forward
///   from 32 (32 channels, 24x24: 1.44 ms against the implicit product's
///   1.80; 64 channels, 12x12: 1.27 against F(2x2, 3x3)'s 1.43; 16
///   channels, 48x48: 1.92 against 1.85, so not there) and from 16 on maps
///   from 192 wide (one 576x576 map: 9.9 against 10.3); since F(4x4,
///   3x3)'s products are written in place and its strips prefetched
///   (session 27), from 16 on maps from 48 wide, where its input goes by
///   runs of tiles (16 channels, 48x48: 1.58-1.77 ms against 2.06-2.36,
///   session 28). The weight
///   gradient from 64 instead of 128 made no measurable difference to a
///   training step there (median 329 against 333 ms), so Zen 5's 128 stays.
/// - AVX2 (AMD Zen 3): as AVX-512 forward (32 channels: implicit 2.2-3.8
///   ms, Winograd 2.4-3.7, within this machine's noise), the weight
///   gradient from 64 (32 channels: implicit 3.3-3.6 ms, Winograd 4.0-4.1;
///   64: Winograd 3.0-4.1 against 3.5-4.3); F(4x4, 3x3) forward from 32
///   (32 channels, 24x24: 1.66-2.05 ms against the implicit product's
///   2.59-2.62; 64 channels, 12x12: 1.47 against F(2x2, 3x3)'s
///   1.78-1.81), and from 16 on maps from 192 wide (16 channels, the
///   pixels of one 576x576 map as batches of smaller ones: at 48x48 11.5-12.7
///   ms against 10.7-11.3, 144x144 11.0-11.8 against 11.0-11.7, 192x192
///   10.9-12.6 against 12.1-13.7, 576x576 10.1-11.0 against 13.9-14.5).
/// - Portable (the same Zen 3 under `R2UNET_ISA=portable`): both from 16
///   (16 channels forward 5.4 against 5.9 ms, weight gradient 8.8 against
///   9.2; 32 channels 3.9 against 6.0 and 4.5 against 10.4); F(4x4, 3x3)
///   forward from 16 (16 channels 3.6-3.7 ms against F(2x2, 3x3)'s
///   5.3-5.6; 32 channels 2.6-2.8 against 4.0-4.1; 64 channels 2.5-2.8
///   against 3.3-3.6).
pub fn winograd_from() -> WinogradFrom {
    match super::tile::isa() {
        "avx512" => WinogradFrom {
            forward: 64,
            forward_4x4: 32,
            forward_4x4_wide: 16,
            wide: winograd4::RUNS_FROM,
            weight_grad: 128,
        },
        "avx2" => WinogradFrom {
            forward: 64,
            forward_4x4: 32,
            forward_4x4_wide: 16,
            wide: 192,
            weight_grad: 64,
        },
        _ => WinogradFrom {
            forward: 16,
            forward_4x4: 16,
            forward_4x4_wide: 16,
            wide: 192,
            weight_grad: 16,
        },
    }
}

/// Whether F(4x4, 3x3) does at most three quarters of F(2x2, 3x3)'s
/// products on `height` x `width` maps, counting the blocks that reach past
/// the edge: 0.56 on 12x12 and larger multiples of four, 1.0 on 6x6 (where
/// it was slower: 128 channels, batch 32, `examples/conv_passes.rs`).
pub fn four_by_four_pays(height: usize, width: usize) -> bool {
    let blocks = |side: usize| (height.div_ceil(side) * width.div_ceil(side)) as f64;
    blocks(4) * 36.0 <= 0.75 * blocks(2) * 16.0
}

/// Whether `--precision bf16` takes a convolution with this many input
/// channels to AMX tiles ([`super::amx`]).
#[cfg(target_arch = "x86_64")]
fn on_amx(in_channels: usize) -> bool {
    super::precision() == super::Precision::Bf16
        && super::amx::takes(in_channels)
        && super::amx::available()
}

/// What a forward pass applies to each output value as it writes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// The convolution's value.
    Identity,
    /// `max(v, 0)`, a NaN kept, as Burn's and PyTorch's ReLU: in inference,
    /// where batch norm is folded into the convolution, this saves the ReLU's
    /// own pass over the output (R2U-Net inference batch, three alternating
    /// rounds: 56.7-58.1 -> 55.5-56.3 ms).
    Relu,
}

impl Activation {
    #[inline(always)]
    pub(crate) fn apply(self, v: f32) -> f32 {
        match self {
            Activation::Identity => v,
            Activation::Relu if v.is_nan() || v > 0.0 => v,
            Activation::Relu => 0.0,
        }
    }
}

/// `out[b, o] = act(bias[o] + sum over c, dy, dx of weight[o, c, 1+dy, 1+dx] * input[b, c, y+dy, x+dx])`,
/// zero outside the image: `conv2d` with a `[out_channels, C, 3, 3]` weight,
/// stride 1 and padding 1, then `act`. Returns `[batch, out_channels, H, W]`.
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
    act: Activation,
) -> Vec<f32> {
    forward_plus(input, maps, weight, out_channels, bias, act, None)
}

/// [`forward`], then `plus` (laid out as the output) added value by value:
/// `act(conv + bias) + plus`, the same values as [`add_to`] on the output.
/// The Winograd paths add as they write each output row, which saves a
/// pass over both maps; the others add in a pass of their own.
///
/// # Panics
///
/// As [`forward`]; if `plus` does not have the output's length.
pub fn forward_plus(
    input: &[f32],
    maps: Maps,
    weight: &[f32],
    out_channels: usize,
    bias: Option<&[f32]>,
    act: Activation,
    plus: Option<&[f32]>,
) -> Vec<f32> {
    // The paths that do not add as they write: their output, then the sum.
    let mut out = 'unfused: {
        #[cfg(target_arch = "x86_64")]
        if on_amx(maps.channels) {
            break 'unfused super::amx::forward(input, maps, weight, out_channels, bias, act);
        }
        let from = winograd_from();
        let four_from = if maps.width >= from.wide {
            from.forward_4x4_wide
        } else {
            from.forward_4x4
        };
        // Under `--precision bf16` without AMX, the levels below F(2x2, 3x3)'s
        // threshold take the implicit product's bf16 dot products, F(4x4, 3x3)
        // or not (it runs in f32 only).
        let bf16 = super::precision() == super::Precision::Bf16;
        if bf16 && maps.channels < from.forward {
            implicit::forward_bf16(input, maps, weight, out_channels, bias, 3, act)
        } else if maps.channels >= four_from && four_by_four_pays(maps.height, maps.width) {
            return winograd4::forward(input, maps, weight, out_channels, bias, act, plus);
        } else if maps.channels >= from.forward {
            return winograd::forward(input, maps, weight, out_channels, bias, act, plus);
        } else {
            implicit::forward(input, maps, weight, out_channels, bias, 3, act)
        }
    };
    if let Some(plus) = plus {
        add_to(&mut out, plus);
    }
    out
}

/// A recurrent convolutional layer in inference, each step's batch norm
/// folded into `layers[k] = (weight, bias)` (`[C, C, 3, 3]`, `[C]`):
/// `x1 = relu(conv_0(x))`, then `x1 = relu(conv_k(x + x1))`. On AMX tiles
/// each step but the last writes the next one's bf16 input directly
/// ([`amx::recurrent_relu`](super::amx::recurrent_relu)); elsewhere each
/// step but the last writes the sum `x + x1` with its output
/// ([`forward_plus`]). The same values either way.
///
/// # Panics
///
/// Without a step; if the lengths do not match the shapes.
pub fn recurrent_relu(x: &[f32], maps: Maps, layers: &[(&[f32], &[f32])]) -> Vec<f32> {
    assert!(!layers.is_empty(), "a recurrent layer of at least one step");
    #[cfg(target_arch = "x86_64")]
    if on_amx(maps.channels) {
        return super::amx::recurrent_relu(x, maps, layers);
    }
    // Each step but the last writes the next one's input `x + x1`.
    let c = maps.channels;
    let last = layers.len() - 1;
    let mut x1 = Vec::new();
    for (k, (weight, bias)) in layers.iter().enumerate() {
        let input = if k == 0 { x } else { &x1[..] };
        let plus = (k < last).then_some(x);
        x1 = forward_plus(input, maps, weight, c, Some(bias), Activation::Relu, plus);
    }
    x1
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
    let flipped = adjoint_filters(weight, out_channels, in_channels, 9);
    forward(
        grad_out,
        out_maps,
        &flipped,
        in_channels,
        None,
        Activation::Identity,
    )
}

/// The weight of the adjoint convolution: `[out, in, taps]` transposed to
/// `[in, out, taps]`, each filter flipped in space (its taps reversed).
fn adjoint_filters(
    weight: &[f32],
    out_channels: usize,
    in_channels: usize,
    taps: usize,
) -> Vec<f32> {
    let mut adjoint = vec![0.0f32; weight.len()];
    for o in 0..out_channels {
        for c in 0..in_channels {
            for t in 0..taps {
                adjoint[(c * out_channels + o) * taps + taps - 1 - t] =
                    weight[(o * in_channels + c) * taps + t];
            }
        }
    }
    adjoint
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
    #[cfg(target_arch = "x86_64")]
    if on_amx(maps.channels) {
        let weight = super::amx::weight_grad(input, maps, grad_out, out_channels);
        return (weight, bias_grad(grad_out, maps.batch, out_channels));
    }
    let weight = if maps.channels >= winograd_from().weight_grad {
        winograd::weight_grad(input, maps, grad_out, out_channels)
    } else {
        implicit::weight_grad(input, maps, grad_out, out_channels, 3)
    };
    (weight, bias_grad(grad_out, maps.batch, out_channels))
}

/// The bias gradient: `grad_out` (`[batch, out_channels, ...]`) summed per
/// output channel.
fn bias_grad(grad_out: &[f32], batch: usize, out_channels: usize) -> Vec<f32> {
    let pixels = grad_out.len() / (batch * out_channels).max(1);
    (0..out_channels)
        .into_par_iter()
        .map(|o| {
            (0..batch)
                .map(|b| {
                    let plane = &grad_out[(b * out_channels + o) * pixels..][..pixels];
                    sum_lanes([plane], |[v]| [v])[0]
                })
                .sum::<f64>() as f32
        })
        .collect()
}

/// The 1x1 convolution (a `[out_channels, C, 1, 1]` weight, no padding):
/// `out[b, o] = bias[o] + sum over c of weight[o, c] * input[b, c]`, on the
/// implicit product ([`implicit`]).
///
/// # Panics
///
/// If `input`, `weight` or `bias` do not have the lengths the shapes imply.
pub fn pointwise_forward(
    input: &[f32],
    maps: Maps,
    weight: &[f32],
    out_channels: usize,
    bias: Option<&[f32]>,
) -> Vec<f32> {
    implicit::forward(
        input,
        maps,
        weight,
        out_channels,
        bias,
        1,
        Activation::Identity,
    )
}

/// The gradient with respect to the input of [`pointwise_forward`]: the same
/// product with the weight transposed. Returns `[batch, in_channels, H, W]`.
///
/// # Panics
///
/// If the lengths do not match the shapes.
pub fn pointwise_input_grad(
    grad_out: &[f32],
    out_maps: Maps,
    weight: &[f32],
    in_channels: usize,
) -> Vec<f32> {
    let out_channels = out_maps.channels;
    assert_eq!(weight.len(), out_channels * in_channels, "1x1 weight");
    let transposed = adjoint_filters(weight, out_channels, in_channels, 1);
    implicit::forward(
        grad_out,
        out_maps,
        &transposed,
        in_channels,
        None,
        1,
        Activation::Identity,
    )
}

/// The gradients with respect to the weight (`[out_channels, C, 1, 1]`) and
/// the bias of [`pointwise_forward`].
///
/// # Panics
///
/// If the lengths do not match the shapes.
pub fn pointwise_weight_grad(
    input: &[f32],
    maps: Maps,
    grad_out: &[f32],
    out_channels: usize,
) -> (Vec<f32>, Vec<f32>) {
    let weight = implicit::weight_grad(input, maps, grad_out, out_channels, 1);
    (weight, bias_grad(grad_out, maps.batch, out_channels))
}

/// The definitions the kernels are tested against, one output at a time in
/// `f64`.
#[cfg(test)]
pub(crate) mod reference {
    use super::Maps;

    /// A deterministic spread of `n` values in [-1, 1).
    pub fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n as u32)
            .map(|i| ((i.wrapping_mul(2_654_435_761) ^ seed) % 2001) as f32 / 1000.0 - 1.0)
            .collect()
    }

    /// `<a, b>` in f64.
    pub fn dot(a: &[f32], b: &[f32]) -> f64 {
        a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum()
    }

    /// The largest element-wise difference.
    pub fn max_diff(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    /// `Maps` from its four sizes.
    pub fn maps(batch: usize, channels: usize, height: usize, width: usize) -> Maps {
        Maps {
            batch,
            channels,
            height,
            width,
        }
    }

    /// [`forward`](super::forward) by its definition.
    pub fn forward(input: &[f32], m: Maps, weight: &[f32], o_ch: usize, bias: &[f32]) -> Vec<f32> {
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

    /// The weight part of [`weight_grad`](super::weight_grad) by its
    /// definition: `dW[o, c, t] = sum over b, y, x of dy[b, o, y, x] * input[b, c, y + dy, x + dx]`.
    pub fn weight_grad(input: &[f32], m: Maps, grad_out: &[f32], o_ch: usize) -> Vec<f32> {
        let (h, w) = (m.height as isize, m.width as isize);
        let mut dw = vec![0.0f32; o_ch * m.channels * 9];
        for o in 0..o_ch {
            for c in 0..m.channels {
                for t in 0..9isize {
                    let mut s = 0.0f64;
                    for b in 0..m.batch {
                        for y in 0..h {
                            for x in 0..w {
                                let (yy, xx) = (y + t / 3 - 1, x + t % 3 - 1);
                                if (0..h).contains(&yy) && (0..w).contains(&xx) {
                                    let g = grad_out
                                        [(((b * o_ch + o) as isize * h + y) * w + x) as usize];
                                    let v = input[(((b * m.channels + c) as isize * h + yy) * w
                                        + xx)
                                        as usize];
                                    s += g as f64 * v as f64;
                                }
                            }
                        }
                    }
                    dw[(o * m.channels + c) * 9 + t as usize] = s as f32;
                }
            }
        }
        dw
    }

    /// A 3x3 forward pass (`forward(input, maps, weight, out_channels,
    /// bias)`) against [`forward`] on each `(batch, C, H, W, out_channels)`,
    /// within 1e-4.
    pub fn check_forward(
        shapes: &[(usize, usize, usize, usize, usize)],
        pass: impl Fn(&[f32], Maps, &[f32], usize, Option<&[f32]>) -> Vec<f32>,
    ) {
        check_forward_within(shapes, |_| 1e-4, pass);
    }

    /// As [`check_forward`], within `tolerance` of the largest output value
    /// (at least 1; for transforms that round more than the direct sum).
    pub fn check_forward_relative(
        shapes: &[(usize, usize, usize, usize, usize)],
        tolerance: f32,
        pass: impl Fn(&[f32], Maps, &[f32], usize, Option<&[f32]>) -> Vec<f32>,
    ) {
        let bound = |want: &[f32]| tolerance * want.iter().fold(1.0f32, |a, v| a.max(v.abs()));
        check_forward_within(shapes, bound, pass);
    }

    fn check_forward_within(
        shapes: &[(usize, usize, usize, usize, usize)],
        bound: impl Fn(&[f32]) -> f32,
        pass: impl Fn(&[f32], Maps, &[f32], usize, Option<&[f32]>) -> Vec<f32>,
    ) {
        for &(batch, channels, height, width, o) in shapes {
            let m = maps(batch, channels, height, width);
            let (x, wt, b) = (
                values(m.len(), 1),
                values(o * channels * 9, 2),
                values(o, 3),
            );
            let want = forward(&x, m, &wt, o, &b);
            let (d, bound) = (
                max_diff(&pass(&x, m, &wt, o, Some(&b)), &want),
                bound(&want),
            );
            assert!(d < bound, "{m:?} -> {o}: {d} (bound {bound})");
        }
    }

    /// A 3x3 weight gradient (`weight_grad(input, maps, grad_out,
    /// out_channels)`) against [`weight_grad`], relative to the largest value.
    pub fn check_weight_grad(
        shapes: &[(usize, usize, usize, usize, usize)],
        pass: impl Fn(&[f32], Maps, &[f32], usize) -> Vec<f32>,
    ) {
        for &(batch, channels, height, width, o) in shapes {
            let m = maps(batch, channels, height, width);
            let (x, g) = (values(m.len(), 4), values(batch * o * height * width, 5));
            let want = weight_grad(&x, m, &g, o);
            let d = max_diff(&pass(&x, m, &g, o), &want);
            let scale = want.iter().fold(1.0f32, |a, v| a.max(v.abs()));
            assert!(d < 1e-5 * scale, "{m:?} -> {o}: {d} (scale {scale})");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reference::{dot, forward as naive, max_diff, values};

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
            let got = forward(&x, m, &wt, o_ch, Some(&b), Activation::Identity);
            let d = max_diff(&got, &naive(&x, m, &wt, o_ch, &b));
            assert!(d < 1e-4, "{m:?} -> {o_ch}: {d}");
        }
    }

    /// The ReLU as the convolution writes its output, through every
    /// implementation (the implicit product, F(2x2, 3x3), and on 12x16
    /// maps F(4x4, 3x3) where the instruction set takes it): zero below
    /// zero, a NaN kept (one input value is NaN, and with it the outputs
    /// whose windows hold it).
    #[test]
    fn the_fused_relu_is_the_relu_of_the_output() {
        let from = winograd_from();
        let four = from.forward_4x4.min(from.forward);
        for (channels, height, width) in [(5, 6, 10), (from.forward, 6, 10), (four, 12, 16)] {
            let m = Maps {
                batch: 2,
                channels,
                height,
                width,
            };
            let (mut x, wt, b) = (
                values(m.len(), 1),
                values(7 * channels * 9, 2),
                values(7, 3),
            );
            x[3 * width + 4] = f32::NAN;
            let plain = forward(&x, m, &wt, 7, Some(&b), Activation::Identity);
            let fused = forward(&x, m, &wt, 7, Some(&b), Activation::Relu);
            let want: Vec<f32> = plain.iter().map(|&v| Activation::Relu.apply(v)).collect();
            assert!(plain.iter().any(|v| v.is_nan()) && plain.iter().any(|&v| v < 0.0));
            let same = |a: f32, b: f32| a == b || (a.is_nan() && b.is_nan());
            assert!(
                fused.iter().zip(&want).all(|(&a, &b)| same(a, b)),
                "{channels} channels"
            );
            assert!(fused.iter().all(|&v| v.is_nan() || v >= 0.0));
        }
    }

    /// The sum written with the output (F(2x2, 3x3) and F(4x4, 3x3) as
    /// they store, the others after) is [`add_to`]'s to the bit, through
    /// every implementation (as above; 12x16 with a partial last strip, 7x9
    /// with blocks past the edges), and a recurrent layer's steps are the
    /// same whether its sums `x + x1` are fused or not.
    #[test]
    fn sums_written_with_the_output_are_add_to_s() {
        let from = winograd_from();
        let four = from.forward_4x4.min(from.forward);
        for (channels, height, width) in [
            (5, 6, 10),
            (from.forward, 6, 10),
            (from.forward, 7, 9),
            (four, 12, 16),
            (four, 13, 17),
        ] {
            let m = Maps {
                batch: 3,
                channels,
                height,
                width,
            };
            let x = values(m.len(), 1);
            let layers: Vec<(Vec<f32>, Vec<f32>)> = (0..3)
                .map(|k| {
                    (
                        values(channels * channels * 9, 2 + k),
                        values(channels, 7 + k),
                    )
                })
                .collect();
            let (wt, b) = (&layers[0].0, &layers[0].1);
            let mut want = forward(&x, m, wt, channels, Some(b), Activation::Relu);
            add_to(&mut want, &x);
            let got = forward_plus(&x, m, wt, channels, Some(b), Activation::Relu, Some(&x));
            assert_eq!(got, want, "{m:?}");
            // The layer step by step, each sum in a pass of its own.
            let mut want = forward(&x, m, wt, channels, Some(b), Activation::Relu);
            for (wt, b) in &layers[1..] {
                add_to(&mut want, &x);
                want = forward(&want, m, wt, channels, Some(b), Activation::Relu);
            }
            let refs: Vec<(&[f32], &[f32])> =
                layers.iter().map(|(w, b)| (&w[..], &b[..])).collect();
            assert_eq!(recurrent_relu(&x, m, &refs), want, "{m:?}");
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

    /// The 1x1 input gradient is the adjoint of the 1x1 forward pass:
    /// `<dy, f(x)> = <f^T(dy), x>`, and the bias gradient sums `dy`.
    #[test]
    fn pointwise_gradients_are_the_adjoints() {
        for (m, o_ch) in CASES {
            let out_maps = Maps {
                channels: o_ch,
                ..m
            };
            let (x, wt) = (values(m.len(), 11), values(o_ch * m.channels, 12));
            let dy = values(out_maps.len(), 13);
            let lhs = dot(&pointwise_forward(&x, m, &wt, o_ch, None), &dy);
            let rhs = dot(&pointwise_input_grad(&dy, out_maps, &wt, m.channels), &x);
            assert!(
                (lhs - rhs).abs() < 1e-3 * lhs.abs().max(1.0),
                "{m:?}: {lhs} vs {rhs}"
            );
            let (_, db) = pointwise_weight_grad(&x, m, &dy, o_ch);
            for (o, &g) in db.iter().enumerate() {
                let want: f32 = (0..m.batch)
                    .flat_map(|b| &dy[(b * o_ch + o) * m.pixels()..][..m.pixels()])
                    .sum();
                assert!((g - want).abs() < 1e-3, "{m:?} db[{o}]");
            }
        }
    }
}
