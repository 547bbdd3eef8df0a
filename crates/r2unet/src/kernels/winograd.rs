//! The forward 3x3 convolution (stride 1, padding 1) by Winograd's minimal
//! filtering F(2x2, 3x3) (Lavin & Gray 2016, "Fast Algorithms for
//! Convolutional Neural Networks"): each 2x2 block of output pixels comes
//! from a 4x4 input tile through 16 products per channel pair instead of 36,
//! 2.25x fewer multiplications than the direct convolution.
//!
//! With `U = G g Gᵀ` (each 3x3 filter as 4x4), `V = Bᵀ d B` (each input tile
//! as 4x4) and `M[ξ] = U[ξ] V[ξ]` summed over input channels (16 matrix
//! products, one per position ξ of the 4x4), the output block is `Aᵀ M A`.
//! Tiles of the whole batch are taken in strips of [`NR`] so that the
//! products run on the 8x32 register tile ([`tile`]), and a
//! strip's transformed input (16 x C x 16 values) stays in cache.

// The transforms run lane by lane over a strip's tiles, indexing several
// arrays with the same lane `j`; iterator chains would hide that.
#![allow(clippy::needless_range_loop)]

use std::cell::RefCell;
use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::conv::Activation;
use super::tile::{MR, NR, tile, tile_to, wide};
use super::{Disjoint, Maps};

thread_local! {
    /// A worker's buffers for [`forward`]'s (and
    /// [`super::winograd4::forward`]'s) transformed input and products, kept
    /// between calls: allocating and zeroing them for every task that rayon
    /// split off was 2.5% of one 576x576 image's f32 inference (`memset` in
    /// `perf`).
    pub(super) static SCRATCH: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// [`conv::forward_plus`](super::conv::forward_plus) by F(2x2, 3x3): same
/// arguments, same result up to rounding (`plus` added as each output row
/// is written).
///
/// # Panics
///
/// If the lengths do not match the shapes.
pub fn forward(
    input: &[f32],
    maps: Maps,
    weight: &[f32],
    out_channels: usize,
    bias: Option<&[f32]>,
    act: Activation,
    plus: Option<&[f32]>,
) -> Vec<f32> {
    let (c, h, w) = (maps.channels, maps.height, maps.width);
    assert_eq!(input.len(), maps.len(), "input of {maps:?}");
    assert_eq!(weight.len(), out_channels * c * 9, "3x3 weight");
    check_plus(plus, maps.batch * out_channels * h * w);
    let (th, tw) = (h.div_ceil(2), w.div_ceil(2));
    let tiles = maps.batch * th * tw;
    if maps.batch * out_channels * h * w == 0 {
        return Vec::new();
    }
    let packed = transform_weights(weight, out_channels, c);
    let strips = tiles.div_ceil(NR);
    let image_len = out_channels * h * w;
    // Each strip writes its tiles' outputs in place: a gather from per-strip
    // blocks afterwards was a pass of its own, on one thread per image.
    let mut out = Vec::with_capacity(maps.batch * image_len);
    let dst = Disjoint::new(&mut out);
    // One strip per task (fixed groups of strips left a short last group,
    // so one worker had more: at 12x12, 36 strips in groups of 5, 20 strips
    // against 16), the transforms' buffers the worker's own.
    (0..strips).into_par_iter().for_each(|s| {
        SCRATCH.with_borrow_mut(|(v, m)| {
            // Written whole by `transform_input` and `multiply` before they
            // are read: what a previous strip left there does not matter.
            v.resize(16 * c * NR, 0.0);
            m.resize(out_channels * 16 * NR, 0.0);
            let (t0, nt) = (s * NR, NR.min(tiles - s * NR));
            let runs = Runs::of(maps, t0, nt, 2);
            // The strip's element-wise work (gathers, transforms, writes)
            // compiled for the tiles' vector instructions: built for the
            // baseline x86-64 it ran four lanes at a time.
            wide(
                #[inline(always)]
                || {
                    transform_input(input, maps, &runs, t0, nt, v);
                    multiply(&packed, 16, v, c, out_channels, m);
                    let store = Store {
                        dst: &dst,
                        plus,
                        plane: h * w,
                        image_len,
                        width: w,
                        height: h,
                    };
                    for o in 0..out_channels {
                        let add = bias.map_or(0.0, |b| b[o]);
                        let y = inverse(&m[o * 16 * NR..][..16 * NR]);
                        // SAFETY: each tile is in one strip only, so no other
                        // task writes its outputs.
                        unsafe { store.blocks(&runs, o, &y, |x| act.apply(x + add)) };
                    }
                },
            )
        })
    });
    // SAFETY: the strips cover every tile, and every tile's outputs inside
    // the image were written above.
    unsafe { out.set_len(maps.batch * image_len) };
    out
}

/// The weight gradient of [`forward`] (`[out_channels, C, 3, 3]`, without
/// the bias) by the transpose of F(2x2, 3x3): with `V = Bᵀ d B` per input
/// tile and `E = A e Aᵀ` per 2x2 block `e` of the output gradient, the
/// gradient of the transformed filters is `R[ξ] = Σ over tiles of E[ξ] V[ξ]ᵀ`
/// (`[out, in]`, 16 matrix products whose reduction runs over tiles) and
/// that of each 3x3 filter `Gᵀ R G`. Same result as
/// [`conv::weight_grad`](super::conv::weight_grad)'s weight part up to rounding.
///
/// Tiles are taken in chunks; within a chunk both transforms are laid out
/// with the tile as the reduction index of the register tile: `V` with
/// [`NR`] input channels per row, `E` with [`MR`] output channels.
///
/// # Panics
///
/// If the lengths do not match the shapes.
pub fn weight_grad(input: &[f32], maps: Maps, grad_out: &[f32], out_channels: usize) -> Vec<f32> {
    let (c, h, w) = (maps.channels, maps.height, maps.width);
    assert_eq!(input.len(), maps.len(), "input of {maps:?}");
    assert_eq!(
        grad_out.len(),
        maps.batch * out_channels * h * w,
        "gradient"
    );
    let tiles = maps.batch * h.div_ceil(2) * w.div_ceil(2);
    let (o_blocks, c_blocks) = (out_channels.div_ceil(MR), c.div_ceil(NR));
    // R[ξ][o][c] over whole blocks of rows and columns.
    let r_len = 16 * o_blocks * MR * c_blocks * NR;
    if tiles == 0 || r_len == 0 {
        return vec![0.0; out_channels * c * 9];
    }
    // Tiles per chunk: its transforms (16 values per tile and channel, 4 bytes
    // each) within CHUNK_BYTES, so that they stay in the second-level cache;
    // longer chunks mean longer reductions per register tile.
    let per_tile = 16 * 4 * (c_blocks * NR + o_blocks * MR);
    let chunk = (CHUNK_BYTES / per_tile)
        .clamp(16, 256)
        .min(tiles.div_ceil(4 * rayon::current_num_threads()));
    let r = (0..tiles.div_ceil(chunk))
        .into_par_iter()
        .fold(
            || {
                let v = vec![0.0f32; 16 * c_blocks * chunk * NR];
                let e = vec![0.0f32; 16 * o_blocks * chunk * MR];
                (vec![0.0f32; r_len], v, e)
            },
            |(mut r, mut v, mut e), k| {
                let (t0, nt) = (k * chunk, chunk.min(tiles - k * chunk));
                transform_input_by_channel(input, maps, t0, nt, chunk, &mut v);
                transform_grad(grad_out, maps, out_channels, t0, nt, chunk, &mut e);
                for xi in 0..16 {
                    for i in 0..o_blocks {
                        let a = &e[(xi * o_blocks + i) * chunk * MR..];
                        for jb in 0..c_blocks {
                            let t = tile(nt, a, &v[(xi * c_blocks + jb) * chunk * NR..]);
                            for (row, sums) in t.iter().enumerate() {
                                let o = i * MR + row;
                                let dst =
                                    &mut r[(xi * o_blocks * MR + o) * c_blocks * NR + jb * NR..];
                                dst[..NR].iter_mut().zip(sums).for_each(|(d, x)| *d += x);
                            }
                        }
                    }
                }
                (r, v, e)
            },
        )
        .map(|(r, _, _)| r)
        .reduce(
            || vec![0.0f32; r_len],
            |mut a, b| {
                a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
                a
            },
        );
    // Gᵀ R G per filter; G = [[1, 0, 0], [½, ½, ½], [½, -½, ½], [0, 0, 1]].
    let ld = c_blocks * NR;
    let mut grad = vec![0.0f32; out_channels * c * 9];
    for (o, filters) in grad.chunks_exact_mut(c * 9).enumerate() {
        for (ch, g) in filters.chunks_exact_mut(9).enumerate() {
            let rr = |xi: usize| r[(xi * o_blocks * MR + o) * ld + ch];
            let mut q = [[0.0f32; 4]; 3];
            for col in 0..4 {
                let (r0, r1, r2, r3) = (rr(col), rr(4 + col), rr(8 + col), rr(12 + col));
                q[0][col] = r0 + 0.5 * (r1 + r2);
                q[1][col] = 0.5 * (r1 - r2);
                q[2][col] = 0.5 * (r1 + r2) + r3;
            }
            for (row, x) in q.iter().enumerate() {
                g[row * 3] = x[0] + 0.5 * (x[1] + x[2]);
                g[row * 3 + 1] = 0.5 * (x[1] - x[2]);
                g[row * 3 + 2] = 0.5 * (x[1] + x[2]) + x[3];
            }
        }
    }
    grad
}

/// Bytes of transformed values per chunk of the weight gradient's tiles: the
/// second-level cache of the development machine's cores. Against a fixed 64
/// tiles (`examples/conv_passes.rs`): 32 channels 194-197 -> 206-214 GFLOP/s,
/// 64 channels 248 -> 266-272, 128 unchanged; twice as much overflows the
/// cache (168 at 32 channels).
const CHUNK_BYTES: usize = 1024 * 1024;

/// `V = Bᵀ d B` for tiles `t0..t0+nt` with channels as lanes:
/// `v[((ξ * c_blocks + jb) * chunk + j) * NR + lane]` for channel `jb * NR + lane`
/// of tile `t0 + j`, zero past the last channel.
fn transform_input_by_channel(
    input: &[f32],
    maps: Maps,
    t0: usize,
    nt: usize,
    chunk: usize,
    v: &mut [f32],
) {
    let c = maps.channels;
    let c_blocks = c.div_ceil(NR);
    for j in 0..nt {
        let at = corner(maps, t0 + j, 2);
        for jb in 0..c_blocks {
            let mut d = [[0.0f32; NR]; 16];
            for lane in 0..NR.min(c - jb * NR) {
                gather(input, maps, jb * NR + lane, at, &mut d, lane);
            }
            let stride = c_blocks * chunk * NR;
            input_transform(&d, &mut v[(jb * chunk + j) * NR..], stride);
        }
    }
}

/// `E = A e Aᵀ` (4x4) for the 2x2 output-gradient block `e` of tiles
/// `t0..t0+nt`, output channels as lanes:
/// `e[((ξ * o_blocks + i) * chunk + j) * MR + lane]` for channel `i * MR + lane`.
/// Pixels past the image's last row or column count as zero.
fn transform_grad(
    grad_out: &[f32],
    maps: Maps,
    out_channels: usize,
    t0: usize,
    nt: usize,
    chunk: usize,
    e: &mut [f32],
) {
    let (h, w) = (maps.height, maps.width);
    let (th, tw) = (h.div_ceil(2), w.div_ceil(2));
    let o_blocks = out_channels.div_ceil(MR);
    for j in 0..nt {
        let t = t0 + j;
        let (b, tt) = (t / (th * tw), t % (th * tw));
        let (y, x) = (2 * (tt / tw), 2 * (tt % tw));
        let (down, right) = (y + 1 < h, x + 1 < w);
        for i in 0..o_blocks {
            // The 2x2 block of MR output channels, lane by lane.
            let mut g = [[0.0f32; MR]; 4];
            for lane in 0..MR.min(out_channels - i * MR) {
                let plane = &grad_out[(b * out_channels + i * MR + lane) * h * w..][..h * w];
                let row = &plane[y * w + x..];
                g[0][lane] = row[0];
                if right {
                    g[1][lane] = row[1];
                }
                if down {
                    g[2][lane] = row[w];
                    if right {
                        g[3][lane] = row[w + 1];
                    }
                }
            }
            // A e with A = [[1, 0], [1, 1], [1, -1], [0, -1]], then (A e) Aᵀ.
            let mut rows = [[[0.0f32; MR]; 2]; 4];
            for lane in 0..MR {
                let (e00, e01, e10, e11) = (g[0][lane], g[1][lane], g[2][lane], g[3][lane]);
                rows[0][0][lane] = e00;
                rows[0][1][lane] = e01;
                rows[1][0][lane] = e00 + e10;
                rows[1][1][lane] = e01 + e11;
                rows[2][0][lane] = e00 - e10;
                rows[2][1][lane] = e01 - e11;
                rows[3][0][lane] = -e10;
                rows[3][1][lane] = -e11;
            }
            for (r, [a, bb]) in rows.iter().enumerate() {
                for s in 0..4 {
                    let dst = &mut e[(((r * 4 + s) * o_blocks + i) * chunk + j) * MR..][..MR];
                    for lane in 0..MR {
                        dst[lane] = match s {
                            0 => a[lane],
                            1 => a[lane] + bb[lane],
                            2 => a[lane] - bb[lane],
                            _ => -bb[lane],
                        };
                    }
                }
            }
        }
    }
}

/// `U = G g Gᵀ` for every filter: [`pack_filters`] of 16 positions.
fn transform_weights(weight: &[f32], out_channels: usize, c: usize) -> Vec<f32> {
    pack_filters::<16>(
        weight,
        out_channels,
        c,
        #[inline(always)]
        |g, u| {
            // G g: 4x3, then (G g) Gᵀ: 4x4, each value lane by lane.
            for l in 0..MR {
                let mut gg = [[0.0f32; 3]; 4];
                for col in 0..3 {
                    let (g0, g1, g2) = (g[col][l], g[3 + col][l], g[6 + col][l]);
                    gg[0][col] = g0;
                    gg[1][col] = 0.5 * (g0 + g1 + g2);
                    gg[2][col] = 0.5 * (g0 - g1 + g2);
                    gg[3][col] = g2;
                }
                for (row, v) in gg.iter().enumerate() {
                    u[row * 4][l] = v[0];
                    u[row * 4 + 1][l] = 0.5 * (v[0] + v[1] + v[2]);
                    u[row * 4 + 2][l] = 0.5 * (v[0] - v[1] + v[2]);
                    u[row * 4 + 3][l] = v[2];
                }
            }
        },
    )
}

/// The transformed filters of a `[out_channels, c, 3, 3]` weight (`P`
/// positions each) as `P` matrices `[out, in]` in row blocks for the
/// register tile: block `i` (output channels `i MR..i MR + MR`) of
/// position `ξ` at `(i * P + ξ) * c * MR`, channel `ch` of row `r` that
/// plus `ch * MR + r`; rows past the last output channel zero. `transform(g, u)`
/// takes the MR filters of a block and channel, tap `k` of filter `r` in
/// `g[k][r]`, and writes position `ξ` of filter `r` to `u[ξ][r]`.
///
/// The blocks on rayon's pool, each filter's values in lanes of the
/// block's MR filters (vector divisions for F(4x4, 3x3)'s `G`), compiled
/// wide ([`wide`]): one thread transforming filter by filter and scattering
/// single values over `P` buffers took 0.78 ms for a 128 x 128-channel
/// weight (F(2x2, 3x3); now 0.06) and 1.79 ms for F(4x4, 3x3)'s (now
/// 0.22), against about 1.5 ms for the whole convolution of a batch of 32
/// 6x6 maps, while the other thread waited (AMD Zen 4).
pub(super) fn pack_filters<const P: usize>(
    weight: &[f32],
    out_channels: usize,
    c: usize,
    transform: impl Fn(&[[f32; MR]; 9], &mut [[f32; MR]; P]) + Sync,
) -> Vec<f32> {
    let block = P * c * MR;
    let filters = weight.as_chunks::<9>().0;
    assert_eq!(filters.len(), out_channels * c, "3x3 weight");
    super::par_filled(out_channels.div_ceil(MR) * block, block, |i, packed| {
        let rows = MR.min(out_channels - i * MR);
        wide(
            #[inline(always)]
            || {
                for ch in 0..c {
                    let mut g = [[0.0f32; MR]; 9];
                    for r in 0..rows {
                        for (k, &x) in filters[(i * MR + r) * c + ch].iter().enumerate() {
                            g[k][r] = x;
                        }
                    }
                    let mut u = [[0.0f32; MR]; P];
                    transform(&g, &mut u);
                    for (xi, values) in u.iter().enumerate() {
                        // Rows past the last output channel: zero filters in, zero out.
                        packed[(xi * c + ch) * MR..][..MR].copy_from_slice(values);
                    }
                }
            },
        )
    })
}

/// Tiles of a strip that lie side by side in one tile row of one image:
/// lanes `lane..lane + len`, the first at tile row `ty`, column `tx`.
#[derive(Clone, Copy, Default)]
pub(super) struct Run {
    pub lane: usize,
    pub len: usize,
    pub image: usize,
    pub ty: usize,
    pub tx: usize,
}

/// The tiles `t0..t0 + nt` of the batch as [`Run`]s, on the stack: at most
/// one per lane (images of one tile per row), one or two for wide images.
/// Each tile covers `block` x `block` output pixels (2 here, 4 in
/// [`super::winograd4`]).
pub(super) struct Runs {
    runs: [Run; NR],
    count: usize,
}

impl Runs {
    pub(super) fn of(maps: Maps, t0: usize, nt: usize, block: usize) -> Self {
        let (th, tw) = (maps.height.div_ceil(block), maps.width.div_ceil(block));
        let mut runs = [Run::default(); NR];
        let (mut count, mut lane) = (0, 0);
        while lane < nt {
            let t = t0 + lane;
            let (image, tt) = (t / (th * tw), t % (th * tw));
            let (ty, tx) = (tt / tw, tt % tw);
            let len = (tw - tx).min(nt - lane);
            runs[count] = Run {
                lane,
                len,
                image,
                ty,
                tx,
            };
            (count, lane) = (count + 1, lane + len);
        }
        Self { runs, count }
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = &Run> {
        self.runs[..self.count].iter()
    }
}

/// `V = Bᵀ d B` for the tiles `t0..t0 + nt` of the batch (`runs`), every
/// channel: `v[(ξ * c + ch) * NR + j]`; what lanes past the strip's last
/// tile hold does not matter (no output reads them).
///
/// With AVX-512, sixteen tiles at a time: a run's 4x4 input tiles overlap by
/// two columns, so row `r` of sixteen of them is one stretch of 34 values of
/// an image row, read by masked loads (zero outside the image), whose even
/// and odd values are the tiles' columns 0 and 1, and from two values on,
/// columns 2 and 3; the transform runs on those registers. Gathering value
/// by value, as elsewhere, was 13-15% of R2U-Net's f32 inference (`perf`).
/// On maps narrower than 32 columns each position of sixteen tiles is one
/// masked gather instead ([`x86::Tiles`]).
#[inline(always)]
fn transform_input(input: &[f32], maps: Maps, runs: &Runs, t0: usize, nt: usize, v: &mut [f32]) {
    let (c, h, w) = (maps.channels, maps.height, maps.width);
    // Runs shorter than a register waste its lanes: on 12x12 maps (runs of
    // six tiles) no faster than the value-by-value gather, on 6x6 maps
    // slower (batch 32, 128 channels: 3.0 against 2.5 ms,
    // `examples/conv_passes.rs`).
    #[cfg(target_arch = "x86_64")]
    if super::tile::avx512() && w >= 32 {
        for ch in 0..c {
            for run in runs.iter() {
                let plane = &input[(run.image * c + ch) * h * w..][..h * w];
                // SAFETY: AVX-512 F is present; the run's lanes lie inside
                // one row of `v` per position.
                unsafe { x86::transform_run(plane, maps, run, &mut v[ch * NR..], c * NR) };
            }
        }
        return;
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = runs; // the AVX-512 path's
    let corners: [Corner; NR] = std::array::from_fn(|j| corner(maps, t0 + j.min(nt - 1), 2));
    #[cfg(target_arch = "x86_64")]
    if super::tile::avx512() && input.len() <= i32::MAX as usize {
        // SAFETY: AVX-512 F is present; the offsets fit and the corners are
        // the strip's tiles; `forward` sized `v`.
        unsafe { x86::transform_gathered(input, maps, &corners, v) };
        return;
    }
    transform_input_by_lanes(input, maps, &corners[..nt], v);
}

/// [`transform_input`] value by value into lanes, for the tiles at
/// `corners` (one per lane).
#[inline(always)]
fn transform_input_by_lanes(input: &[f32], maps: Maps, corners: &[Corner], v: &mut [f32]) {
    let c = maps.channels;
    let mut d = [[0.0f32; NR]; 16];
    for ch in 0..c {
        for (j, &corner) in corners.iter().enumerate() {
            gather(input, maps, ch, corner, &mut d, j);
        }
        input_transform(&d, &mut v[ch * NR..], c * NR);
    }
}

/// `out[2j] = a[j]`, `out[2j + 1] = b[j]`: with AVX-512, two permutes per
/// 16 lanes, where the compiler made single-value moves of the loop.
#[inline(always)]
fn interleave(a: &[f32; NR], b: &[f32; NR], out: &mut [f32; 2 * NR]) {
    #[cfg(target_arch = "x86_64")]
    if super::tile::avx512() {
        // SAFETY: AVX-512 F is present.
        unsafe { x86::interleave(a, b, out) };
        return;
    }
    for j in 0..NR {
        (out[2 * j], out[2 * j + 1]) = (a[j], b[j]);
    }
}

#[cfg(target_arch = "x86_64")]
pub(super) mod x86 {
    use std::arch::x86_64::*;

    use super::{Corner, Maps, NR, Run};

    /// [`super::transform_input`] for the tiles of one run, channel plane
    /// `plane`: position `ξ` of lane `run.lane + k` to `out[ξ * stride + run.lane + k]`.
    ///
    /// # Safety
    ///
    /// AVX-512 F must be present; `out` must hold `15 * stride + run.lane +
    /// run.len` values.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn transform_run(
        plane: &[f32],
        maps: Maps,
        run: &Run,
        out: &mut [f32],
        stride: usize,
    ) {
        let (h, w) = (maps.height as isize, maps.width as isize);
        let pick_even =
            _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        let pick_odd = _mm512_add_epi32(pick_even, _mm512_set1_epi32(1));
        let first = 2 * run.tx as isize - 1;
        assert!(
            15 * stride + run.lane + run.len <= out.len(),
            "transformed input"
        );
        for k0 in (0..run.len).step_by(16) {
            let store = ((1u32 << (run.len - k0).min(16)) - 1) as u16;
            // d[r][s]: column s of row r of the sixteen tiles.
            let mut d = [[_mm512_setzero_ps(); 4]; 4];
            for (r, dr) in d.iter_mut().enumerate() {
                let y = 2 * run.ty as isize - 1 + r as isize;
                if !(0..h).contains(&y) {
                    continue;
                }
                let row = &plane[y as usize * w as usize..][..w as usize];
                // SAFETY: AVX-512 F is present (this function's contract).
                let load = |at: isize| unsafe { load_row(row, first + 2 * k0 as isize + at) };
                let (a, b) = (load(0), load(16));
                let (a2, b2) = (load(2), load(18));
                *dr = [
                    _mm512_permutex2var_ps(a, pick_even, b),
                    _mm512_permutex2var_ps(a, pick_odd, b),
                    _mm512_permutex2var_ps(a2, pick_even, b2),
                    _mm512_permutex2var_ps(a2, pick_odd, b2),
                ];
            }
            // SAFETY: AVX-512 F is present; the lanes of `store` lie inside
            // `out` (checked above for the run's last position and lane).
            unsafe { transform_store(&d, out, run.lane + k0, stride, store) };
        }
    }

    /// [`super::transform_input`]'s value-by-value path for the strip's
    /// tiles at `corners` (one per lane, all [`NR`] lanes written) by
    /// gathers ([`gathered`]). The transform is [`super::input_transform`]'s,
    /// so the values are the same.
    ///
    /// # Safety
    ///
    /// AVX-512 F must be present; `input` must hold `maps` and at most
    /// `i32::MAX` values, every corner must be a tile of `maps`, `v` must
    /// hold `16 * c * NR` values.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn transform_gathered(
        input: &[f32],
        maps: Maps,
        corners: &[Corner; NR],
        v: &mut [f32],
    ) {
        // SAFETY: AVX-512 F is present and the arguments are as `gathered`
        // asks (this function's contract).
        unsafe {
            gathered::<4>(input, maps, corners, v, |d, out, at, stride| {
                transform_store(d, out, at, stride, u16::MAX)
            })
        }
    }

    /// The strip's tiles at `corners` (one per lane, all [`NR`] lanes) by
    /// [`Tiles`], sixteen at a time, each channel's through `transform(d,
    /// out, at, stride)`, which writes position `ξ` of lanes `at..at + 16`
    /// to `out[ξ * stride..]` (`out` from channel `ch`'s lanes of `v`,
    /// `stride` = c NR): F(2x2, 3x3)'s and F(4x4, 3x3)'s gathered input.
    ///
    /// # Safety
    ///
    /// AVX-512 F must be present; `input` must hold `maps` and at most
    /// `i32::MAX` values, every corner must be a tile of `maps`, `v` must
    /// hold `T * T * c * NR` values.
    #[target_feature(enable = "avx512f")]
    #[inline]
    pub unsafe fn gathered<const T: usize>(
        input: &[f32],
        maps: Maps,
        corners: &[Corner; NR],
        v: &mut [f32],
        transform: impl Fn(&[[__m512; T]; T], &mut [f32], usize, usize),
    ) {
        let c = maps.channels;
        assert!(v.len() >= T * T * c * NR, "transformed input");
        for (group, lanes) in corners.chunks_exact(16).enumerate() {
            let tiles = Tiles::<T>::at(input, maps, lanes);
            for ch in 0..c {
                // SAFETY: AVX-512 F is present (this function's contract).
                let d = unsafe { tiles.channel(input, ch) };
                transform(&d, &mut v[ch * NR..], 16 * group, c * NR);
            }
        }
    }

    /// `Bᵀ d B` of sixteen 4x4 tiles (`d[r][s]`: row r, column s, a lane
    /// per tile), as [`super::input_transform`] lane by lane: position `ξ`
    /// to lanes `at..at + 16` of `out[ξ * stride..]`, those of `store` only.
    ///
    /// # Safety
    ///
    /// AVX-512 F must be present.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn transform_store(
        d: &[[__m512; 4]; 4],
        out: &mut [f32],
        at: usize,
        stride: usize,
        store: u16,
    ) {
        let lanes = 16 - store.leading_zeros() as usize;
        assert!(15 * stride + at + lanes <= out.len(), "transformed input");
        // Bᵀ d over rows, then B over columns: as `input_transform`.
        let bd: [[__m512; 4]; 4] = std::array::from_fn(|r| {
            std::array::from_fn(|s| {
                let (d0, d1, d2, d3) = (d[0][s], d[1][s], d[2][s], d[3][s]);
                match r {
                    0 => _mm512_sub_ps(d0, d2),
                    1 => _mm512_add_ps(d1, d2),
                    2 => _mm512_sub_ps(d2, d1),
                    _ => _mm512_sub_ps(d1, d3),
                }
            })
        });
        for (r, e) in bd.iter().enumerate() {
            let v = [
                _mm512_sub_ps(e[0], e[2]),
                _mm512_add_ps(e[1], e[2]),
                _mm512_sub_ps(e[2], e[1]),
                _mm512_sub_ps(e[1], e[3]),
            ];
            for (s, &x) in v.iter().enumerate() {
                let i = (r * 4 + s) * stride + at;
                // SAFETY: the lanes of `store` lie inside `out` (checked
                // for the last position).
                unsafe { _mm512_mask_storeu_ps(out.as_mut_ptr().add(i), store, x) };
            }
        }
    }

    /// The `T` x `T` input tiles at sixteen corners (a lane each) of the
    /// batch `input`, read channel by channel by masked gathers, zero
    /// outside the image: on maps narrower than a register's run of tiles
    /// the values otherwise went into lanes one at a time, half of F(4x4,
    /// 3x3)'s time at the 24x24 and 12x12 levels of a batch of 48x48
    /// patches (`perf`, AMD Zen 4).
    pub struct Tiles<const T: usize> {
        /// Offsets of the corners in channel 0 of their image; a negative
        /// one only where the lane reads nothing there (masked off).
        first: [i32; 16],
        /// The lanes whose value at (r, s) lies inside the image.
        masks: [[u16; T]; T],
        /// Offsets of (r, s) from the corner: `r * w + s`.
        steps: [[i32; T]; T],
        /// Values per channel plane.
        plane: usize,
    }

    impl<const T: usize> Tiles<T> {
        /// The tiles at `corners` (16) of `maps`.
        ///
        /// # Panics
        ///
        /// If `input` is not `maps` or holds more than `i32::MAX` values
        /// (the gathers' offsets), or `corners` is not 16 corners.
        pub fn at(input: &[f32], maps: Maps, corners: &[Corner]) -> Self {
            let (c, h, w) = (maps.channels, maps.height, maps.width);
            assert!(input.len() == maps.len() && input.len() <= i32::MAX as usize);
            assert_eq!(corners.len(), 16, "corners of a register");
            let (mut rows, mut cols) = ([0u16; T], [0u16; T]);
            let mut first = [0i32; 16];
            for (k, at) in corners.iter().enumerate() {
                first[k] = ((at.image * c * h * w) as isize + at.y0 * w as isize + at.x0) as i32;
                for i in 0..T {
                    rows[i] |= u16::from((0..h as isize).contains(&(at.y0 + i as isize))) << k;
                    cols[i] |= u16::from((0..w as isize).contains(&(at.x0 + i as isize))) << k;
                }
            }
            Self {
                first,
                masks: std::array::from_fn(|r| std::array::from_fn(|s| rows[r] & cols[s])),
                steps: std::array::from_fn(|r| std::array::from_fn(|s| (r * w + s) as i32)),
                plane: h * w,
            }
        }

        /// Channel `ch` of the tiles: `d[r][s]`, row r and column s, a
        /// lane per tile.
        ///
        /// # Safety
        ///
        /// AVX-512 F must be present; `input` and the channel are those
        /// the tiles were made for (`ch < maps.channels`).
        #[target_feature(enable = "avx512f")]
        #[inline]
        pub unsafe fn channel(&self, input: &[f32], ch: usize) -> [[__m512; T]; T] {
            // SAFETY: 16 values in `first`.
            let first = unsafe { _mm512_loadu_si512(self.first.as_ptr().cast()) };
            let base = _mm512_add_epi32(first, _mm512_set1_epi32((ch * self.plane) as i32));
            std::array::from_fn(|r| {
                std::array::from_fn(|s| {
                    // SAFETY: the masked lanes' offsets point at value (y0 +
                    // r, x0 + s) of their tile's plane of channel `ch`, inside
                    // the image, so inside `input`.
                    unsafe {
                        _mm512_mask_i32gather_ps::<4>(
                            _mm512_setzero_ps(),
                            self.masks[r][s],
                            _mm512_add_epi32(base, _mm512_set1_epi32(self.steps[r][s])),
                            input.as_ptr().cast(),
                        )
                    }
                })
            })
        }
    }

    /// 16 values of `row` from column `x`, those outside the row zero
    /// (masked off: not read). Also F(4x4, 3x3)'s ([`super::super::winograd4`]).
    ///
    /// # Safety
    ///
    /// AVX-512 F must be present.
    #[inline(always)]
    pub unsafe fn load_row(row: &[f32], x: isize) -> __m512 {
        let w = row.len() as isize;
        let (lo, hi) = ((-x).clamp(0, 16), (w - x).clamp(0, 16));
        let mask = if hi > lo {
            (((1u32 << hi) - 1) & !((1u32 << lo) - 1)) as u16
        } else {
            0
        };
        // SAFETY: AVX-512 F is present (the caller's contract); only the
        // lanes of `mask` are read, all inside `row`.
        unsafe { _mm512_maskz_loadu_ps(mask, row.as_ptr().wrapping_offset(x)) }
    }

    /// [`super::interleave`].
    ///
    /// # Safety
    ///
    /// AVX-512 F must be present.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn interleave(a: &[f32; NR], b: &[f32; NR], out: &mut [f32; 2 * NR]) {
        // Lane i of the result: a[i / 2] for even i, b[i / 2] (index 16 + i / 2) for odd.
        let low = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
        let high = _mm512_add_epi32(low, _mm512_set1_epi32(8));
        for half in 0..NR / 16 {
            // SAFETY: values 16 half .. 16 half + 16 of `a` and `b`, 32 half
            // .. 32 half + 32 of `out`, all inside.
            unsafe {
                let x = _mm512_loadu_ps(a.as_ptr().add(16 * half));
                let y = _mm512_loadu_ps(b.as_ptr().add(16 * half));
                let lo = _mm512_permutex2var_ps(x, low, y);
                let hi = _mm512_permutex2var_ps(x, high, y);
                _mm512_storeu_ps(out.as_mut_ptr().add(32 * half), lo);
                _mm512_storeu_ps(out.as_mut_ptr().add(32 * half + 16), hi);
            }
        }
    }
}

/// Where [`forward`] writes its 2x2 output blocks: `[batch, out_channels,
/// height, width]` in `dst`, `image_len` values per image, `plane` per channel.
struct Store<'a> {
    dst: &'a Disjoint<f32>,
    plus: Option<&'a [f32]>,
    plane: usize,
    image_len: usize,
    width: usize,
    height: usize,
}

impl Store<'_> {
    /// Writes `value(y)` (plus `self.plus` where given) for output channel
    /// `o` of every tile of `runs`, the 2x2 outputs `y[dy * 2 + dx][j]` of
    /// lane `j` (as [`inverse`] returns them); outputs past the image's last
    /// row or column are dropped.
    ///
    /// # Safety
    ///
    /// No other thread writes these tiles' outputs of channel `o`.
    #[inline(always)]
    unsafe fn blocks(&self, runs: &Runs, o: usize, y: &[[f32; NR]; 4], value: impl Fn(f32) -> f32) {
        let (h, w) = (self.height, self.width);
        let mut row = [0.0f32; 2 * NR];
        for dy in 0..2 {
            // Row dy of every lane's block, interleaved: lane j at 2j, 2j + 1.
            let left: [f32; NR] = std::array::from_fn(|j| value(y[dy * 2][j]));
            let right: [f32; NR] = std::array::from_fn(|j| value(y[dy * 2 + 1][j]));
            interleave(&left, &right, &mut row);
            for run in runs.iter() {
                let (yy, x) = (2 * run.ty + dy, 2 * run.tx);
                if yy >= h {
                    continue;
                }
                let len = (2 * run.len).min(w - x);
                let at = run.image * self.image_len + o * self.plane + yy * w + x;
                // SAFETY: inside the output (`x + len <= w`, `yy < h`), and
                // written by this thread only (the caller's promise).
                let part = unsafe { self.dst.part(at, len) };
                put(part, &row[2 * run.lane..][..len], self.plus, at);
            }
        }
    }
}

/// Checks that `plus`, the values a forward pass adds to its outputs, has
/// the output's length.
pub(super) fn check_plus(plus: Option<&[f32]>, out_len: usize) {
    if let Some(plus) = plus {
        assert_eq!(plus.len(), out_len, "values added to the output");
    }
}

/// `part = src`, or `src + plus[at..]` value by value: the outputs of a run
/// of tiles in one output row, at `at` of the output (and so of `plus`,
/// laid out as the output).
#[inline(always)]
pub(super) fn put(part: &mut [MaybeUninit<f32>], src: &[f32], plus: Option<&[f32]>, at: usize) {
    match plus {
        Some(plus) => {
            let plus = &plus[at..][..src.len()];
            for ((d, &v), &p) in part.iter_mut().zip(src).zip(plus) {
                d.write(v + p);
            }
        }
        // SAFETY: `src` and `part` hold as many values (the caller's slices
        // of one length) and do not overlap (`src` is the caller's stack).
        None => unsafe {
            std::ptr::copy_nonoverlapping(src.as_ptr(), part.as_mut_ptr().cast(), src.len())
        },
    }
}

/// Where input tile `t` of the batch starts, for output blocks of `block`
/// x `block` pixels (2 here, 4 in [`super::winograd4`]) and input tiles two
/// pixels wider: its image, the top-left corner (one pixel up and left of
/// its output block), and whether the whole input tile lies inside the image.
#[derive(Clone, Copy)]
pub(super) struct Corner {
    pub image: usize,
    pub y0: isize,
    pub x0: isize,
    pub inside: bool,
}

#[inline(always)]
pub(super) fn corner(maps: Maps, t: usize, block: usize) -> Corner {
    let (h, w) = (maps.height, maps.width);
    let (th, tw) = (h.div_ceil(block), w.div_ceil(block));
    let (image, tt) = (t / (th * tw), t % (th * tw));
    let b = block as isize;
    let (y0, x0) = (b * (tt / tw) as isize - 1, b * (tt % tw) as isize - 1);
    let side = b + 2;
    let inside = y0 >= 0 && x0 >= 0 && y0 + side <= h as isize && x0 + side <= w as isize;
    Corner {
        image,
        y0,
        x0,
        inside,
    }
}

/// The 4x4 input tile at `at` of channel `ch` into lane `lane` of `d`
/// (`d[r * 4 + s][lane]` for row `r`, column `s`), zero outside the image.
#[inline(always)]
fn gather(input: &[f32], maps: Maps, ch: usize, at: Corner, d: &mut [[f32; NR]; 16], lane: usize) {
    let (c, h, w) = (maps.channels, maps.height, maps.width);
    let plane = &input[(at.image * c + ch) * h * w..][..h * w];
    if at.inside {
        for r in 0..4 {
            let first = (at.y0 as usize + r) * w + at.x0 as usize;
            let row = &plane[first..first + 4];
            for s in 0..4 {
                d[r * 4 + s][lane] = row[s];
            }
        }
    } else {
        for r in 0..4 {
            let y = at.y0 + r as isize;
            for s in 0..4 {
                let x = at.x0 + s as isize;
                let ok = (0..h as isize).contains(&y) && (0..w as isize).contains(&x);
                d[r * 4 + s][lane] = if ok {
                    plane[y as usize * w + x as usize]
                } else {
                    0.0
                };
            }
        }
    }
}

/// `Bᵀ d B` lane by lane: `d[r * 4 + s]` holds row `r`, column `s` of a 4x4
/// input tile for [`NR`] tiles or channels at once; position `ξ` of the result
/// goes to `out[ξ * stride..][..NR]`.
#[inline(always)]
fn input_transform(d: &[[f32; NR]; 16], out: &mut [f32], stride: usize) {
    // Bᵀ d over rows, then B over columns.
    let mut bd = [[0.0f32; NR]; 16];
    for s in 0..4 {
        for j in 0..NR {
            let (d0, d1, d2, d3) = (d[s][j], d[4 + s][j], d[8 + s][j], d[12 + s][j]);
            bd[s][j] = d0 - d2;
            bd[4 + s][j] = d1 + d2;
            bd[8 + s][j] = d2 - d1;
            bd[12 + s][j] = d1 - d3;
        }
    }
    for r in 0..4 {
        let row = &bd[r * 4..r * 4 + 4];
        let mut v = [[0.0f32; NR]; 4];
        for j in 0..NR {
            let (e0, e1, e2, e3) = (row[0][j], row[1][j], row[2][j], row[3][j]);
            v[0][j] = e0 - e2;
            v[1][j] = e1 + e2;
            v[2][j] = e2 - e1;
            v[3][j] = e1 - e3;
        }
        for (s, lanes) in v.iter().enumerate() {
            out[(r * 4 + s) * stride..][..NR].copy_from_slice(lanes);
        }
    }
}

/// `M[ξ] = U[ξ] V[ξ]` for the transform's `positions` (16 here, 36 in
/// [`super::winograd4`]), `packed` as [`pack_filters`] lays it out:
/// `m[(o * positions + ξ) * NR + j]`.
#[inline(always)]
pub(super) fn multiply(
    packed: &[f32],
    positions: usize,
    v: &[f32],
    c: usize,
    out_channels: usize,
    m: &mut [f32],
) {
    let blocks = out_channels.div_ceil(MR);
    for xi in 0..positions {
        let panel = &v[xi * c * NR..][..c * NR];
        for i in 0..blocks {
            let u = &packed[(i * positions + xi) * c * MR..][..c * MR];
            if (i + 1) * MR <= out_channels {
                // Rows o = i MR + r of M at position ξ, `positions * NR` apart.
                let at = (i * MR * positions + xi) * NR;
                tile_to(c, u, panel, &mut m[at..], positions * NR);
                continue;
            }
            let t = tile(c, u, panel);
            for (r, row) in t.iter().enumerate().take(MR.min(out_channels - i * MR)) {
                let o = i * MR + r;
                m[(o * positions + xi) * NR..][..NR].copy_from_slice(row);
            }
        }
    }
}

/// `Aᵀ M A` for every tile of a strip at once (lanes `j`): the 2x2 outputs,
/// row-major, as `[output][j]`.
#[inline(always)]
fn inverse(m: &[f32]) -> [[f32; NR]; 4] {
    let lane = |xi: usize| -> &[f32; NR] { m[xi * NR..][..NR].try_into().expect("NR lanes") };
    let mut y = [[0.0f32; NR]; 4];
    for s in 0..4 {
        // Aᵀ M, column s: rows ξ / 4 = 0..3.
        let (m0, m1, m2, m3) = (lane(s), lane(4 + s), lane(8 + s), lane(12 + s));
        let mut top = [0.0f32; NR];
        let mut bottom = [0.0f32; NR];
        for j in 0..NR {
            top[j] = m0[j] + m1[j] + m2[j];
            bottom[j] = m1[j] - m2[j] - m3[j];
        }
        // (Aᵀ M) A: column s adds into output column 0 (s < 3) and 1 (s > 0).
        let (w0, w1) = match s {
            0 => (1.0, 0.0),
            1 => (1.0, 1.0),
            2 => (1.0, -1.0),
            _ => (0.0, -1.0),
        };
        for j in 0..NR {
            y[0][j] += w0 * top[j];
            y[1][j] += w1 * top[j];
            y[2][j] += w0 * bottom[j];
            y[3][j] += w1 * bottom[j];
        }
    }
    y
}

/// Checks a strip's input transform by AVX-512 gathers (`gathered`)
/// against the value-by-value one (`lanes`) to the bit, lanes of the
/// strip's tiles only, on every strip of maps with several images per
/// strip, edge tiles on every side, a partial last strip and images smaller
/// than a tile; for F(2x2, 3x3) (`block` 2, 16 positions) and F(4x4, 3x3)
/// (4, 36).
#[cfg(all(test, target_arch = "x86_64"))]
pub(super) fn check_gathered(
    block: usize,
    positions: usize,
    lanes: fn(&[f32], Maps, &[Corner], &mut [f32]),
    gathered: unsafe fn(&[f32], Maps, &[Corner; NR], &mut [f32]),
) {
    if !super::tile::avx512() {
        eprintln!("skipped: no AVX-512 here (or R2UNET_ISA caps it)");
        return;
    }
    for (batch, c, h, w) in [
        (5, 3, 6, 6),
        (3, 2, 12, 12),
        (2, 3, 7, 23),
        (4, 2, 3, 2),
        (1, 1, 1, 1),
    ] {
        let maps = Maps {
            batch,
            channels: c,
            height: h,
            width: w,
        };
        let input: Vec<f32> = (0..maps.len())
            .map(|i| ((i * 37) % 101) as f32 * 0.37 - 11.0)
            .collect();
        let tiles = batch * h.div_ceil(block) * w.div_ceil(block);
        for t0 in (0..tiles).step_by(NR) {
            let nt = NR.min(tiles - t0);
            let corners: [Corner; NR] =
                std::array::from_fn(|j| corner(maps, t0 + j.min(nt - 1), block));
            let mut want = vec![0.0f32; positions * c * NR];
            lanes(&input, maps, &corners[..nt], &mut want);
            let mut got = vec![0.0f32; positions * c * NR];
            // SAFETY: AVX-512 is present (checked above), the input is
            // small, the corners are tiles of `maps`, `got` is whole.
            unsafe { gathered(&input, maps, &corners, &mut got) };
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                if i % NR < nt {
                    assert_eq!(
                        g.to_bits(),
                        w.to_bits(),
                        "{maps:?}, tiles from {t0}, value {i}"
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::conv::reference::{check_forward, check_weight_grad};

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn gathers_transform_as_lanes_do() {
        check_gathered(2, 16, transform_input_by_lanes, x86::transform_gathered);
    }

    /// Against the definition,
    /// on odd and even sides, partial strips, and channel counts off the tile.
    #[test]
    fn winograd_matches_the_definition() {
        check_forward(
            &[
                (3, 5, 7, 9, 7),
                (1, 33, 13, 35, 13),
                (2, 1, 4, 3, 16),
                (5, 40, 6, 6, 6),
                (2, 16, 48, 48, 17),
                (3, 20, 5, 12, 9),
            ],
            |x, m, wt, o, b| forward(x, m, wt, o, b, Activation::Identity, None),
        );
    }

    /// Against the definition, on odd and even sides, chunks
    /// with a partial last one, and channel counts off both tile sides.
    #[test]
    fn winograd_weight_gradient_matches_the_definition() {
        check_weight_grad(
            &[
                (3, 5, 7, 9, 7),
                (1, 33, 13, 35, 13),
                (2, 1, 4, 3, 16),
                (5, 40, 6, 6, 6),
                (4, 17, 11, 10, 20),
            ],
            weight_grad,
        );
    }
}
