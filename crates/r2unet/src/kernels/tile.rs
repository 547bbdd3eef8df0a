//! The inner product tile every convolution pass is built on: an `MR x NR`
//! block of a matrix product, `acc[r][j] = sum_k a[k][r] * b[k][j]`, from
//! operands already packed so that the loop over `k` reads both sequentially.
//!
//! Written here because no kept library exposes one: the `gemm` crate that
//! Burn's CPU backend calls packs its operands itself, which is the overhead
//! this module exists to avoid (BENCHMARKS.md, "Where the time goes"). The
//! x86-64 version uses AVX2 + FMA when the processor has them (checked once at
//! run time, so the default build stays portable); elsewhere a plain loop
//! that the compiler vectorises.

/// Rows of a tile (output channels in the forward pass).
pub const MR: usize = 6;
/// Columns of a tile (pixels in the forward pass): two AVX registers.
pub const NR: usize = 16;

/// One tile of results.
pub type Tile = [[f32; NR]; MR];

/// `sum over k < kc of a[k * MR + r] * b[k * NR + j]` for every `r < MR`, `j < NR`.
///
/// # Panics
///
/// If `a` is shorter than `kc * MR` or `b` than `kc * NR`.
pub fn tile(kc: usize, a: &[f32], b: &[f32]) -> Tile {
    let (a, b) = (&a[..kc * MR], &b[..kc * NR]);
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // SAFETY: the processor supports AVX2 and FMA (checked above), and
        // the slices hold `kc` packed rows each (sliced above).
        return unsafe { tile_avx2(kc, a, b) };
    }
    tile_portable(kc, a, b)
}

fn tile_portable(kc: usize, a: &[f32], b: &[f32]) -> Tile {
    let mut acc = [[0.0f32; NR]; MR];
    for k in 0..kc {
        let bk = &b[k * NR..k * NR + NR];
        for (r, row) in acc.iter_mut().enumerate() {
            let ar = a[k * MR + r];
            for (c, &bv) in row.iter_mut().zip(bk) {
                *c += ar * bv;
            }
        }
    }
    acc
}

#[cfg(target_arch = "x86_64")]
fn has_avx2_fma() -> bool {
    use std::sync::OnceLock;
    static DETECTED: OnceLock<bool> = OnceLock::new();
    *DETECTED.get_or_init(|| {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    })
}

/// Twelve accumulator registers (6 rows x 2 halves of 8), two loads of `b`
/// and six broadcasts of `a` per `k`: the classic 6x16 AVX2 shape.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile_avx2(kc: usize, a: &[f32], b: &[f32]) -> Tile {
    use std::arch::x86_64::*;
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut c = [[_mm256_setzero_ps(); 2]; MR];
    for k in 0..kc {
        // SAFETY: k < kc, and the caller sliced a to kc * MR and b to kc * NR.
        unsafe {
            let b0 = _mm256_loadu_ps(pb.add(k * NR));
            let b1 = _mm256_loadu_ps(pb.add(k * NR + 8));
            for (r, cr) in c.iter_mut().enumerate() {
                let ar = _mm256_broadcast_ss(&*pa.add(k * MR + r));
                cr[0] = _mm256_fmadd_ps(ar, b0, cr[0]);
                cr[1] = _mm256_fmadd_ps(ar, b1, cr[1]);
            }
        }
    }
    let mut acc = [[0.0f32; NR]; MR];
    for (row, cr) in acc.iter_mut().zip(&c) {
        // SAFETY: each row holds NR = 16 floats, two unaligned stores of 8.
        unsafe {
            _mm256_storeu_ps(row.as_mut_ptr(), cr[0]);
            _mm256_storeu_ps(row.as_mut_ptr().add(8), cr[1]);
        }
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tile_is_the_matrix_product_of_the_packed_operands() {
        let kc = 37;
        let a: Vec<f32> = (0..kc * MR).map(|i| ((i * 7) % 13) as f32 - 6.0).collect();
        let b: Vec<f32> = (0..kc * NR)
            .map(|i| ((i * 5) % 11) as f32 * 0.5 - 2.0)
            .collect();
        let got = tile(kc, &a, &b);
        // Small integers and halves: every sum is exact in f32.
        for r in 0..MR {
            for j in 0..NR {
                let want: f32 = (0..kc).map(|k| a[k * MR + r] * b[k * NR + j]).sum();
                assert_eq!(got[r][j], want, "({r}, {j})");
            }
        }
        assert_eq!(tile_portable(kc, &a, &b), got);
    }
}
