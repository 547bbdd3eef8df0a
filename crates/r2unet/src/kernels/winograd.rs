//! The forward 3x3 convolution (stride 1, padding 1) by Winograd's minimal
//! filtering F(2x2, 3x3) (Lavin & Gray 2016, "Fast Algorithms for
//! Convolutional Neural Networks"): each 2x2 block of output pixels comes
//! from a 4x4 input tile through 16 products per channel pair instead of 36,
//! 2.25x fewer multiplications than the direct convolution of
//! [`conv`](super::conv).
//!
//! With `U = G g Gᵀ` (each 3x3 filter as 4x4), `V = Bᵀ d B` (each input tile
//! as 4x4) and `M[ξ] = U[ξ] V[ξ]` summed over input channels (16 matrix
//! products, one per position ξ of the 4x4), the output block is `Aᵀ M A`.
//! Tiles of the whole batch are taken in strips of [`NR`] so that the
//! products run on the same register tile as the direct convolution, and a
//! strip's transformed input (16 x C x 16 values) stays in cache.

// The transforms run lane by lane over a strip's tiles, indexing several
// arrays with the same lane `j`; iterator chains would hide that.
#![allow(clippy::needless_range_loop)]

use rayon::prelude::*;

use super::Maps;
use super::tile::{MR, NR, tile};

/// [`conv::direct_forward`](super::conv::direct_forward) by F(2x2, 3x3):
/// same arguments, same result up to rounding.
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
) -> Vec<f32> {
    let (c, h, w) = (maps.channels, maps.height, maps.width);
    assert_eq!(input.len(), maps.len(), "input of {maps:?}");
    assert_eq!(weight.len(), out_channels * c * 9, "3x3 weight");
    let (th, tw) = (h.div_ceil(2), w.div_ceil(2));
    let tiles = maps.batch * th * tw;
    let mut out = vec![0.0f32; maps.batch * out_channels * h * w];
    if out.is_empty() {
        return out;
    }
    let packed = transform_weights(weight, out_channels, c);
    // Per tile, its 2x2 outputs for every output channel: [tile][o][4].
    let strips = tiles.div_ceil(NR);
    let per_task = strips.div_ceil(4 * rayon::current_num_threads()).max(1);
    let blocks: Vec<Vec<f32>> = (0..strips)
        .step_by(per_task)
        .collect::<Vec<_>>()
        .into_par_iter()
        .map(|s0| {
            let s1 = (s0 + per_task).min(strips);
            let mut ys = Vec::with_capacity((s1 - s0) * NR * out_channels * 4);
            let mut v = vec![0.0f32; 16 * c * NR];
            let mut m = vec![0.0f32; out_channels * 16 * NR];
            for s in s0..s1 {
                let (t0, nt) = (s * NR, NR.min(tiles - s * NR));
                transform_input(input, maps, t0, nt, &mut v);
                multiply(&packed, &v, c, out_channels, &mut m);
                let first = ys.len();
                ys.resize(first + nt * out_channels * 4, 0.0);
                for o in 0..out_channels {
                    let b = bias.map_or(0.0, |b| b[o]);
                    let y = inverse(&m[o * 16 * NR..][..16 * NR]);
                    for j in 0..nt {
                        let at = first + (j * out_channels + o) * 4;
                        ys[at..at + 4].copy_from_slice(&[
                            y[0][j] + b,
                            y[1][j] + b,
                            y[2][j] + b,
                            y[3][j] + b,
                        ]);
                    }
                }
            }
            ys
        })
        .collect();
    // Tile `t` is in block `t / tiles_per_block`, read in place (no concatenation).
    let tiles_per_block = per_task * NR;
    let (image_tiles, image_len) = (th * tw, out_channels * h * w);
    out.par_chunks_mut(image_len)
        .enumerate()
        .for_each(|(b, image)| {
            let first = b * image_tiles;
            for t in 0..image_tiles {
                let (ty, tx) = (t / tw, t % tw);
                let (block, at) = ((first + t) / tiles_per_block, (first + t) % tiles_per_block);
                let src = &blocks[block][at * out_channels * 4..][..out_channels * 4];
                for o in 0..out_channels {
                    let block = &src[o * 4..][..4];
                    for (dy, dx) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                        let (y, x) = (2 * ty + dy, 2 * tx + dx);
                        if y < h && x < w {
                            image[(o * h + y) * w + x] = block[dy * 2 + dx];
                        }
                    }
                }
            }
        });
    out
}

/// `U = G g Gᵀ` for every filter, as 16 matrices `[out, in]` packed in row
/// blocks for the register tile: `packed[ξ][(i * c + ch) * MR + r]`.
fn transform_weights(weight: &[f32], out_channels: usize, c: usize) -> Vec<Vec<f32>> {
    let blocks = out_channels.div_ceil(MR);
    let mut packed = vec![vec![0.0f32; blocks * c * MR]; 16];
    for o in 0..out_channels {
        for ch in 0..c {
            let g = &weight[(o * c + ch) * 9..][..9];
            // G g: 4x3, then (G g) Gᵀ: 4x4.
            let mut gg = [[0.0f32; 3]; 4];
            for col in 0..3 {
                let (g0, g1, g2) = (g[col], g[3 + col], g[6 + col]);
                gg[0][col] = g0;
                gg[1][col] = 0.5 * (g0 + g1 + g2);
                gg[2][col] = 0.5 * (g0 - g1 + g2);
                gg[3][col] = g2;
            }
            let (i, r) = (o / MR, o % MR);
            for (row, v) in gg.iter().enumerate() {
                let u = [
                    v[0],
                    0.5 * (v[0] + v[1] + v[2]),
                    0.5 * (v[0] - v[1] + v[2]),
                    v[2],
                ];
                for (col, &x) in u.iter().enumerate() {
                    packed[row * 4 + col][(i * c + ch) * MR + r] = x;
                }
            }
        }
    }
    packed
}

/// `V = Bᵀ d B` for the tiles `t0..t0+nt` of the batch (tile `t` is image
/// `t / (th * tw)`, tile row and column within it), every channel:
/// `v[(ξ * c + ch) * NR + j]`, zero for `j >= nt`. The 16 input values of each
/// tile are gathered into lanes, then transformed for all tiles at once.
fn transform_input(input: &[f32], maps: Maps, t0: usize, nt: usize, v: &mut [f32]) {
    let (c, h, w) = (maps.channels, maps.height, maps.width);
    let (th, tw) = (h.div_ceil(2), w.div_ceil(2));
    // Where each tile starts: image, top-left corner, whether it is inside.
    let corners: Vec<(usize, isize, isize, bool)> = (0..nt)
        .map(|j| {
            let t = t0 + j;
            let (b, tt) = (t / (th * tw), t % (th * tw));
            let (y0, x0) = (2 * (tt / tw) as isize - 1, 2 * (tt % tw) as isize - 1);
            let inside = y0 >= 0 && x0 >= 0 && y0 + 4 <= h as isize && x0 + 4 <= w as isize;
            (b, y0, x0, inside)
        })
        .collect();
    let mut d = [[0.0f32; NR]; 16];
    for ch in 0..c {
        for (j, &(b, y0, x0, inside)) in corners.iter().enumerate() {
            let plane = &input[(b * c + ch) * h * w..][..h * w];
            for r in 0..4 {
                let y = y0 + r as isize;
                if inside {
                    let at = y as usize * w + x0 as usize;
                    for s in 0..4 {
                        d[r * 4 + s][j] = plane[at + s];
                    }
                } else {
                    for s in 0..4 {
                        let x = x0 + s as isize;
                        let ok = (0..h as isize).contains(&y) && (0..w as isize).contains(&x);
                        d[r * 4 + s][j] = if ok {
                            plane[y as usize * w + x as usize]
                        } else {
                            0.0
                        };
                    }
                }
            }
        }
        for lanes in d.iter_mut() {
            lanes[nt..].fill(0.0);
        }
        // Bᵀ d over rows, then B over columns, lane by lane.
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
            for j in 0..NR {
                let (e0, e1, e2, e3) = (row[0][j], row[1][j], row[2][j], row[3][j]);
                v[((r * 4) * c + ch) * NR + j] = e0 - e2;
                v[((r * 4 + 1) * c + ch) * NR + j] = e1 + e2;
                v[((r * 4 + 2) * c + ch) * NR + j] = e2 - e1;
                v[((r * 4 + 3) * c + ch) * NR + j] = e1 - e3;
            }
        }
    }
}

/// `M[ξ] = U[ξ] V[ξ]` for the 16 positions: `m[(o * 16 + ξ) * NR + j]`.
fn multiply(packed: &[Vec<f32>], v: &[f32], c: usize, out_channels: usize, m: &mut [f32]) {
    let blocks = out_channels.div_ceil(MR);
    for (xi, u) in packed.iter().enumerate() {
        let panel = &v[xi * c * NR..][..c * NR];
        for i in 0..blocks {
            let t = tile(c, &u[i * c * MR..], panel);
            for (r, row) in t.iter().enumerate().take(MR.min(out_channels - i * MR)) {
                let o = i * MR + r;
                m[(o * 16 + xi) * NR..][..NR].copy_from_slice(row);
            }
        }
    }
}

/// `Aᵀ M A` for every tile of a strip at once (lanes `j`): the 2x2 outputs,
/// row-major, as `[output][j]`.
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

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n as u32)
            .map(|i| ((i.wrapping_mul(2_654_435_761) ^ seed) % 2001) as f32 / 1000.0 - 1.0)
            .collect()
    }

    /// Against the direct convolution (itself tested against the definition),
    /// on odd and even sides, partial strips, and channel counts off the tile.
    #[test]
    fn winograd_matches_the_direct_convolution() {
        for (batch, channels, height, width, o) in [
            (3, 5, 7, 9, 7),
            (1, 33, 13, 35, 13),
            (2, 1, 4, 3, 16),
            (5, 40, 6, 6, 6),
            (2, 16, 48, 48, 17),
        ] {
            let m = Maps {
                batch,
                channels,
                height,
                width,
            };
            let (x, wt, b) = (
                values(m.len(), 1),
                values(o * channels * 9, 2),
                values(o, 3),
            );
            let want = super::super::conv::direct_forward(&x, m, &wt, o, Some(&b));
            let got = forward(&x, m, &wt, o, Some(&b));
            let d = got
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            assert!(d < 1e-4, "{m:?} -> {o}: {d}");
        }
    }
}
