//! The forward 3x3 convolution (stride 1, padding 1) by Winograd's F(4x4,
//! 3x3) (Lavin & Gray 2016): each 4x4 block of output pixels comes from a
//! 6x6 input tile through 36 products per channel pair instead of 144, 4x
//! fewer multiplications than the direct convolution and 1.78x fewer than
//! F(2x2, 3x3) ([`super::winograd`]), whose structure this follows: the
//! tiles of the whole batch in strips of [`NR`], the 36 matrix products
//! `M[ξ] = U[ξ] V[ξ]` on the register tile ([`tile`](super::tile::tile)), then `Aᵀ M A`.
//!
//! The transforms (interpolation points 0, ±1, ±2 and ∞):
//!
//! ```text
//! Bᵀ = [4  0 -5  0 1 0]   G = [ 1/4     0    0 ]   Aᵀ = [1 1  1 1  1 0]
//!      [0 -4 -4  1 1 0]       [-1/6 -1/6 -1/6 ]        [0 1 -1 2 -2 0]
//!      [0  4 -4 -1 1 0]       [-1/6  1/6 -1/6 ]        [0 1  1 4  4 0]
//!      [0 -2 -1  2 1 0]       [1/24 1/12  1/6 ]        [0 1 -1 8 -8 1]
//!      [0  2 -1 -2 1 0]       [1/24 -1/12 1/6 ]
//!      [0  4  0 -5 0 1]       [  0     0    1 ]
//! ```
//!
//! Larger coefficients than F(2x2, 3x3)'s round a little more (BENCHMARKS.md
//! gives the measured differences); only the forward pass is taken this way.

// The transforms run lane by lane over a strip's tiles, indexing several
// arrays with the same lane `j`; iterator chains would hide that.
#![allow(clippy::needless_range_loop)]

use rayon::prelude::*;

use super::conv::Activation;
use super::tile::{MR, NR, wide};
use super::winograd::{Corner, Runs, SCRATCH, check_plus, corner, multiply, pack_filters, put};
use super::{Disjoint, Maps};

/// Positions of a transformed tile (6x6).
const P: usize = 36;

/// Lanes of one value per tile of a strip.
type Lanes = [f32; NR];

/// [`conv::forward_plus`](super::conv::forward_plus) by F(4x4, 3x3): same
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
    let tiles = maps.batch * h.div_ceil(4) * w.div_ceil(4);
    if maps.batch * out_channels * h * w == 0 {
        return Vec::new();
    }
    let packed = transform_weights(weight, out_channels, c);
    let strips = tiles.div_ceil(NR);
    let image_len = out_channels * h * w;
    let mut out = Vec::with_capacity(maps.batch * image_len);
    let dst = Disjoint::new(&mut out);
    (0..strips).into_par_iter().for_each(|s| {
        SCRATCH.with_borrow_mut(|(v, m)| {
            // Shared with F(2x2, 3x3); written whole by `transform_input` and
            // `multiply` before they are read.
            v.resize(P * c * NR, 0.0);
            m.resize(out_channels * P * NR, 0.0);
            let (t0, nt) = (s * NR, NR.min(tiles - s * NR));
            let runs = Runs::of(maps, t0, nt, 4);
            wide(
                #[inline(always)]
                || {
                    transform_input(input, maps, &runs, t0, nt, v);
                    multiply(&packed, P, v, c, out_channels, m);
                    // Every value of both is written before it is read; zeroed
                    // once a strip, not once an output channel: `memset` went
                    // from 3.2% to 1.5% of an inference batch's samples in
                    // `perf` (timings: inside the noise).
                    let mut y = [[0.0f32; NR]; 16];
                    let mut am = [[0.0f32; NR]; 24];
                    for o in 0..out_channels {
                        let add = bias.map_or(0.0, |b| b[o]);
                        inverse(&m[o * P * NR..][..P * NR], add, act, &mut am, &mut y);
                        // SAFETY: each tile is in one strip only, so no
                        // other task writes its outputs.
                        unsafe { store(&dst, plus, maps, out_channels, o, &runs, &y) };
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

/// `U = G g Gᵀ` for every filter: [`pack_filters`] of 36 positions.
fn transform_weights(weight: &[f32], out_channels: usize, c: usize) -> Vec<f32> {
    // G applied to three values (a column or a row of a filter).
    #[inline(always)]
    fn g([g0, g1, g2]: [f32; 3]) -> [f32; 6] {
        [
            g0 / 4.0,
            -(g0 + g1 + g2) / 6.0,
            -(g0 - g1 + g2) / 6.0,
            g0 / 24.0 + g1 / 12.0 + g2 / 6.0,
            g0 / 24.0 - g1 / 12.0 + g2 / 6.0,
            g2,
        ]
    }
    pack_filters::<P>(
        weight,
        out_channels,
        c,
        #[inline(always)]
        |f, u| {
            for l in 0..MR {
                // G f: 6x3 (columns of f), then (G f) Gᵀ: 6x6, lane by lane.
                let cols: [[f32; 6]; 3] =
                    std::array::from_fn(|col| g([f[col][l], f[3 + col][l], f[6 + col][l]]));
                for row in 0..6 {
                    for (col, x) in g([cols[0][row], cols[1][row], cols[2][row]])
                        .into_iter()
                        .enumerate()
                    {
                        u[row * 6 + col][l] = x;
                    }
                }
            }
        },
    )
}

/// `V = Bᵀ d B` for the tiles `t0..t0 + nt` of the batch (`runs`), every
/// channel: `v[(ξ * c + ch) * NR + j]`; what lanes past the strip's last
/// tile hold does not matter (no output reads them).
///
/// With AVX-512 on maps from [`RUNS_FROM`] columns, sixteen tiles of a run
/// at a time ([`x86::transform_run`]), as F(2x2, 3x3) does; on narrower
/// maps by a masked gather per position of sixteen tiles
/// ([`x86::transform_gathered`]; the runs there fill too few of a
/// register's lanes); elsewhere value by value into lanes, which was a
/// third of one 576x576 image's inference on AVX-512 (`perf`, AMD Zen 4).
#[inline(always)]
fn transform_input(input: &[f32], maps: Maps, runs: &Runs, t0: usize, nt: usize, v: &mut [f32]) {
    let (c, h, w) = (maps.channels, maps.height, maps.width);
    #[cfg(target_arch = "x86_64")]
    if super::tile::avx512() && w >= RUNS_FROM {
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
    let corners: [Corner; NR] = std::array::from_fn(|j| corner(maps, t0 + j.min(nt - 1), 4));
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
    let (c, h, w) = (maps.channels, maps.height, maps.width);
    let mut d = [[0.0f32; NR]; P];
    let mut bd = [[0.0f32; NR]; P];
    for ch in 0..c {
        for (lane, at) in corners.iter().enumerate() {
            let plane = &input[(at.image * c + ch) * h * w..][..h * w];
            if at.inside {
                for r in 0..6 {
                    let first = (at.y0 as usize + r) * w + at.x0 as usize;
                    for (s, &x) in plane[first..first + 6].iter().enumerate() {
                        d[r * 6 + s][lane] = x;
                    }
                }
                continue;
            }
            // At the image's edges: every value read at its row and column
            // clamped into the image, then zeroed where it lies outside. A
            // fixed 6x6 loop as inside; the rows and columns inside the
            // image as ranges instead (loops of unknown length) left a 48x48
            // map's pass slower than the implicit product, a third of its
            // tiles being edge tiles.
            let clamp = |v: isize, len: usize| {
                (
                    v.clamp(0, len as isize - 1) as usize,
                    (0..len as isize).contains(&v),
                )
            };
            let rows: [(usize, bool); 6] = std::array::from_fn(|r| clamp(at.y0 + r as isize, h));
            let cols: [(usize, bool); 6] = std::array::from_fn(|s| clamp(at.x0 + s as isize, w));
            for (r, &(y, row_inside)) in rows.iter().enumerate() {
                for (s, &(x, col_inside)) in cols.iter().enumerate() {
                    let value = plane[y * w + x];
                    d[r * 6 + s][lane] = if row_inside && col_inside { value } else { 0.0 };
                }
            }
        }
        // Bᵀ d over rows (for each column), then B over columns (each row).
        for s in 0..6 {
            b_t(
                std::array::from_fn(|k| &d[k * 6 + s]),
                disjoint(&mut bd, std::array::from_fn(|k| k * 6 + s)),
            );
        }
        let v = v.as_chunks_mut::<NR>().0;
        for r in 0..6 {
            b_t(
                std::array::from_fn(|k| &bd[r * 6 + k]),
                disjoint(v, std::array::from_fn(|s| (r * 6 + s) * c + ch)),
            );
        }
    }
}

/// From how many columns [`transform_input`] takes the tiles by runs on
/// AVX-512: rows of at least RUNS_FROM / 4 tiles, most of a register's 16 lanes.
pub(crate) const RUNS_FROM: usize = 48;

/// `y = Bᵀ x` for six values of [`NR`] lanes each.
#[inline(always)]
fn b_t(x: [&Lanes; 6], y: [&mut Lanes; 6]) {
    for j in 0..NR {
        let [d0, d1, d2, d3, d4, d5] = x.map(|x| x[j]);
        // Shared terms: d4 - 4 d2 and d3 - 4 d1; d4 - d2 and 2 (d3 - d1).
        let (a, b) = (d4 - 4.0 * d2, d3 - 4.0 * d1);
        let (p, q) = (d4 - d2, 2.0 * (d3 - d1));
        y[0][j] = 4.0 * d0 - 5.0 * d2 + d4;
        y[1][j] = a + b;
        y[2][j] = a - b;
        y[3][j] = p + q;
        y[4][j] = p - q;
        y[5][j] = 4.0 * d1 - 5.0 * d3 + d5;
    }
}

/// `y = Aᵀ x` for six values of [`NR`] lanes each.
#[inline(always)]
fn a_t(x: [&Lanes; 6], y: [&mut Lanes; 4]) {
    for j in 0..NR {
        let [m0, m1, m2, m3, m4, m5] = x.map(|x| x[j]);
        let (s1, d1) = (m1 + m2, m1 - m2);
        let (s2, d2) = (m3 + m4, m3 - m4);
        y[0][j] = m0 + s1 + s2;
        y[1][j] = d1 + 2.0 * d2;
        y[2][j] = s1 + 4.0 * s2;
        y[3][j] = d1 + 8.0 * d2 + m5;
    }
}

/// `act(Aᵀ M A + add)` for every tile of a strip at once (lanes `j`): the
/// 4x4 outputs, row-major, to `y[output][j]`; `am` is scratch for `Aᵀ M`.
#[inline(always)]
fn inverse(m: &[f32], add: f32, act: Activation, am: &mut [Lanes; 24], y: &mut [Lanes; 16]) {
    let m = m.as_chunks::<NR>().0;
    // Aᵀ M over rows (for each of the 6 columns): 4x6.
    for s in 0..6 {
        a_t(
            std::array::from_fn(|k| &m[k * 6 + s]),
            disjoint(am, std::array::from_fn(|k| k * 6 + s)),
        );
    }
    for r in 0..4 {
        a_t(
            std::array::from_fn(|k| &am[r * 6 + k]),
            disjoint(y, std::array::from_fn(|k| r * 4 + k)),
        );
    }
    // The bias and activation over whole lanes, the activation chosen once.
    let lanes = y.as_flattened_mut();
    match act {
        Activation::Identity => lanes.iter_mut().for_each(|v| *v += add),
        Activation::Relu => lanes
            .iter_mut()
            .for_each(|v| *v = Activation::Relu.apply(*v + add)),
    }
}

/// The lanes at `at` (distinct indices) of `lanes`, each writable.
#[inline(always)]
fn disjoint<const K: usize>(lanes: &mut [Lanes], at: [usize; K]) -> [&mut Lanes; K] {
    lanes
        .get_disjoint_mut(at)
        .expect("distinct positions inside the buffer")
}

/// Writes output channel `o` of every tile of `runs`, the 4x4 outputs
/// `y[dy * 4 + dx][j]` of lane `j` ([`inverse`]) plus `plus` where given;
/// outputs past the image's last row or column are dropped.
///
/// # Safety
///
/// No other thread writes these tiles' outputs of channel `o`.
#[inline(always)]
unsafe fn store(
    dst: &Disjoint<f32>,
    plus: Option<&[f32]>,
    maps: Maps,
    out_channels: usize,
    o: usize,
    runs: &Runs,
    y: &[Lanes; 16],
) {
    let (h, w) = (maps.height, maps.width);
    let mut row = [0.0f32; 4 * NR];
    for dy in 0..4 {
        // Row dy of every lane's block side by side: lane j at 4j..4j + 4.
        for j in 0..NR {
            for dx in 0..4 {
                row[4 * j + dx] = y[dy * 4 + dx][j];
            }
        }
        for run in runs.iter() {
            let (yy, x) = (4 * run.ty + dy, 4 * run.tx);
            if yy >= h {
                continue;
            }
            let len = (4 * run.len).min(w - x);
            let at = ((run.image * out_channels + o) * h + yy) * w + x;
            // SAFETY: inside the output (`x + len <= w`, `yy < h`), and
            // written by this thread only (the caller's promise).
            let part = unsafe { dst.part(at, len) };
            put(part, &row[4 * run.lane..][..len], plus, at);
            // The next strip's outputs in this row (4 NR columns on), asked
            // for to be written: on one 576x576 image (16 channels: 21 MB a
            // map) this prefetch and the input's in `x86::transform_run` took
            // the inference from 309 to 279 ms (medians of six alternating
            // runs, AMD Zen 4); batches of 48x48 patches, whose maps stay in
            // the cache, did not move (78.2 against 78.9 ms).
            #[cfg(target_arch = "x86_64")]
            for line in 0..8 {
                use std::arch::x86_64::{_MM_HINT_ET0, _mm_prefetch};
                let p = part.as_ptr().wrapping_add(4 * NR + 16 * line);
                // SAFETY: a prefetch hint only; it reads nothing.
                unsafe { _mm_prefetch::<_MM_HINT_ET0>(p.cast()) };
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{Maps, NR, P};
    use crate::kernels::winograd::x86::{gathered, load_row};
    use crate::kernels::winograd::{Corner, Run};

    /// [`super::transform_input`] for the tiles of one run, channel plane
    /// `plane`: position `ξ` of lane `run.lane + k` to `out[ξ * stride +
    /// run.lane + k]`. A run's 6x6 input tiles start four columns apart, so
    /// row `r` of sixteen of them is one stretch of 70 values of an image
    /// row, read by masked loads (zero outside the image); column `s` of
    /// the tiles is every fourth value from `s`, picked by permutes. The
    /// transform is [`super::b_t`]'s, operation for operation, so the
    /// values are the same as the lane-by-lane path's.
    ///
    /// # Safety
    ///
    /// AVX-512 F must be present; `out` must hold `35 * stride + run.lane +
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
        // Lanes 0..8: values 4j + t of two registers (32 values), j < 8.
        let picks: [__m512i; 4] = std::array::from_fn(|t| {
            let t = t as i32;
            _mm512_setr_epi32(
                t,
                4 + t,
                8 + t,
                12 + t,
                16 + t,
                20 + t,
                24 + t,
                28 + t,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
            )
        });
        let first = 4 * run.tx as isize - 1;
        assert!(
            35 * stride + run.lane + run.len <= out.len(),
            "transformed input"
        );
        for k0 in (0..run.len).step_by(16) {
            let store = ((1u32 << (run.len - k0).min(16)) - 1) as u16;
            // d[r][s]: column s of row r of the sixteen tiles.
            let mut d = [[_mm512_setzero_ps(); 6]; 6];
            for (r, dr) in d.iter_mut().enumerate() {
                let y = 4 * run.ty as isize - 1 + r as isize;
                if !(0..h).contains(&y) {
                    continue;
                }
                let row = &plane[y as usize * w as usize..][..w as usize];
                // SAFETY: AVX-512 F is present (this function's contract).
                let load = |at: isize| unsafe { load_row(row, first + 4 * k0 as isize + at) };
                // This row of the next strip's tiles, 4 NR columns on, asked
                // for now: on maps larger than the cache the rows of a strip
                // otherwise arrive one miss at a time (measured at `super::store`).
                let ahead = first + 4 * k0 as isize + 4 * super::NR as isize;
                for line in 0..5 {
                    let p = row.as_ptr().wrapping_offset(ahead + 16 * line);
                    _mm_prefetch::<_MM_HINT_T0>(p.cast());
                }
                // Columns 0-3 from the values at 0..64, 4 and 5 from those at
                // 4..68 (as columns 0 and 1 of the next tile).
                let at0: [__m512; 4] = std::array::from_fn(|q| load(16 * q as isize));
                let at4: [__m512; 4] = std::array::from_fn(|q| load(16 * q as isize + 4));
                for (s, x) in dr.iter_mut().enumerate() {
                    let (v, t) = if s < 4 { (&at0, s) } else { (&at4, s - 4) };
                    let lo = _mm512_permutex2var_ps(v[0], picks[t], v[1]);
                    let hi = _mm512_permutex2var_ps(v[2], picks[t], v[3]);
                    // Lanes 0..8 of `lo`, then lanes 0..8 of `hi`.
                    *x = _mm512_shuffle_f32x4::<0b01_00_01_00>(lo, hi);
                }
            }
            // SAFETY: AVX-512 F is present; the lanes of `store` lie inside
            // `out` (checked above for the run's last position and lane).
            unsafe { transform_store(&d, out, run.lane + k0, stride, store) };
        }
    }

    /// [`super::transform_input_by_lanes`] for the strip's tiles at
    /// `corners` (one per lane, all [`NR`] lanes written) by gathers
    /// ([`gathered`]). The transform is [`super::b_t`]'s, so the values are
    /// the same.
    ///
    /// # Safety
    ///
    /// AVX-512 F must be present; `input` must hold `maps` and at most
    /// `i32::MAX` values, every corner must be a tile of `maps`, `v` must
    /// hold `36 * c * NR` values.
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
            gathered::<6>(input, maps, corners, v, |d, out, at, stride| {
                transform_store(d, out, at, stride, u16::MAX)
            })
        }
    }

    /// `Bᵀ d B` of sixteen tiles (`d[r][s]`: row r, column s, a lane per
    /// tile), as [`super::b_t`] lane by lane: position `ξ` to lanes `at..at
    /// + 16` of `out[ξ * stride..]`, those of `store` only.
    ///
    /// # Safety
    ///
    /// AVX-512 F must be present; `out` must hold the stored lanes.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn transform_store(
        d: &[[__m512; 6]; 6],
        out: &mut [f32],
        at: usize,
        stride: usize,
        store: u16,
    ) {
        let splat = |v: f32| _mm512_set1_ps(v);
        // y = Bᵀ x on registers, as `super::b_t` lane by lane.
        let b_t = |x: [__m512; 6]| -> [__m512; 6] {
            let [d0, d1, d2, d3, d4, d5] = x;
            let a = _mm512_sub_ps(d4, _mm512_mul_ps(splat(4.0), d2));
            let b = _mm512_sub_ps(d3, _mm512_mul_ps(splat(4.0), d1));
            let p = _mm512_sub_ps(d4, d2);
            let q = _mm512_mul_ps(splat(2.0), _mm512_sub_ps(d3, d1));
            [
                _mm512_add_ps(
                    _mm512_sub_ps(_mm512_mul_ps(splat(4.0), d0), _mm512_mul_ps(splat(5.0), d2)),
                    d4,
                ),
                _mm512_add_ps(a, b),
                _mm512_sub_ps(a, b),
                _mm512_add_ps(p, q),
                _mm512_sub_ps(p, q),
                _mm512_add_ps(
                    _mm512_sub_ps(_mm512_mul_ps(splat(4.0), d1), _mm512_mul_ps(splat(5.0), d3)),
                    d5,
                ),
            ]
        };
        let lanes = 16 - store.leading_zeros() as usize;
        assert!(
            (P - 1) * stride + at + lanes <= out.len(),
            "transformed input"
        );
        // Bᵀ d over rows (for each column), then B over columns (each row).
        let cols: [[__m512; 6]; 6] = std::array::from_fn(|s| b_t(std::array::from_fn(|k| d[k][s])));
        for r in 0..6 {
            let v = b_t(std::array::from_fn(|k| cols[k][r]));
            for (s, &x) in v.iter().enumerate() {
                let i = (r * 6 + s) * stride + at;
                // SAFETY: the lanes of `store` lie inside `out` (checked
                // for the last position).
                unsafe { _mm512_mask_storeu_ps(out.as_mut_ptr().add(i), store, x) };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::conv::reference::check_forward_relative;

    /// Against the definition, on sides that are not multiples of four,
    /// partial strips, images smaller than a tile, and channel counts off
    /// the tile.
    #[test]
    fn winograd4_matches_the_definition() {
        check_forward_relative(
            &[
                (3, 5, 7, 9, 7),
                (1, 33, 13, 35, 13),
                (2, 1, 4, 3, 16),
                (5, 40, 6, 6, 6),
                (2, 16, 48, 48, 17),
                (1, 3, 2, 1, 5),
                (2, 128, 12, 12, 64),
                (3, 4, 5, 48, 9),
                (2, 3, 7, 67, 4),
                (1, 2, 9, 130, 3),
            ],
            1e-5,
            |x, m, wt, o, b| forward(x, m, wt, o, b, Activation::Identity, None),
        );
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn gathers_transform_as_lanes_do() {
        crate::kernels::winograd::check_gathered(
            4,
            P,
            transform_input_by_lanes,
            x86::transform_gathered,
        );
    }

    /// The AVX-512 transform of whole runs gives the lane-by-lane path's
    /// values to the bit, on every strip of maps whose rows end inside a
    /// register, span strips, or are cut by the image's edges.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn runs_transform_as_lanes_do() {
        if !crate::kernels::tile::avx512() {
            eprintln!("skipped: no AVX-512 here (or R2UNET_ISA caps it)");
            return;
        }
        for (batch, c, h, w) in [(2, 3, 7, 67), (1, 2, 9, 130), (3, 2, 5, 48), (1, 1, 4, 4)] {
            let maps = Maps {
                batch,
                channels: c,
                height: h,
                width: w,
            };
            let input: Vec<f32> = (0..maps.len())
                .map(|i| ((i * 37) % 101) as f32 * 0.37 - 11.0)
                .collect();
            let tiles = batch * h.div_ceil(4) * w.div_ceil(4);
            for t0 in (0..tiles).step_by(NR) {
                let nt = NR.min(tiles - t0);
                let corners: Vec<Corner> = (0..nt).map(|j| corner(maps, t0 + j, 4)).collect();
                let mut want = vec![0.0f32; P * c * NR];
                transform_input_by_lanes(&input, maps, &corners, &mut want);
                let mut got = vec![0.0f32; P * c * NR];
                for ch in 0..c {
                    for run in Runs::of(maps, t0, nt, 4).iter() {
                        let plane = &input[(run.image * c + ch) * h * w..][..h * w];
                        // SAFETY: AVX-512 is present (checked above); `got` holds P * c * NR.
                        unsafe {
                            x86::transform_run(plane, maps, run, &mut got[ch * NR..], c * NR)
                        };
                    }
                }
                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
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
