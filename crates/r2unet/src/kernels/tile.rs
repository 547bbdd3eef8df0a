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
fn has_avx512vl() -> bool {
    use std::sync::OnceLock;
    static DETECTED: OnceLock<bool> = OnceLock::new();
    *DETECTED.get_or_init(|| {
        has_avx2_fma()
            && std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512vl")
    })
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
    store(&c)
}

/// Rows of the tile [`tile_offsets`] (output channels): four, so that 16 to
/// 128 output channels need no padding rows.
pub const FR: usize = 4;
/// Columns of [`tile_offsets`] (consecutive positions): three AVX registers.
pub const FN: usize = 24;

/// [`tile`] with the `A` operand given as one slice per row instead of
/// packed: `sum over k < kc of rows[r][k] * b[k * NR + j]`. The weight
/// gradient reads the rows straight from a padded image, one per tap.
///
/// # Panics
///
/// If a row is shorter than `kc` or `b` than `kc * NR`.
pub fn tile_rows(kc: usize, rows: [&[f32]; MR], b: &[f32]) -> Tile {
    let rows = rows.map(|r| &r[..kc]);
    let b = &b[..kc * NR];
    #[cfg(target_arch = "x86_64")]
    if has_avx512vl() {
        // SAFETY: AVX-512 F/VL, AVX2 and FMA are present (checked above);
        // every row holds `kc` values and `b` holds `kc` packed rows (sliced
        // above).
        return unsafe { tile_rows_avx512vl(kc, rows, b) };
    }
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // SAFETY: as above, with AVX2 and FMA present.
        return unsafe { tile_rows_avx2(kc, rows, b) };
    }
    let mut acc = [[0.0f32; NR]; MR];
    for k in 0..kc {
        let bk = &b[k * NR..k * NR + NR];
        for (row, a) in acc.iter_mut().zip(&rows) {
            for (c, &bv) in row.iter_mut().zip(bk) {
                *c += a[k] * bv;
            }
        }
    }
    acc
}

/// See [`tile_offsets_avx512vl`]: the six row pointers and the tile's 15
/// registers spilled an accumulator with AVX2's 16.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,avx512f,avx512vl")]
unsafe fn tile_rows_avx512vl(kc: usize, rows: [&[f32]; MR], b: &[f32]) -> Tile {
    // SAFETY: the caller's contract, passed on.
    unsafe { tile_rows_body(kc, rows, b) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile_rows_avx2(kc: usize, rows: [&[f32]; MR], b: &[f32]) -> Tile {
    // SAFETY: the caller's contract, passed on.
    unsafe { tile_rows_body(kc, rows, b) }
}

/// The body of the `tile_rows_*` kernels, inlined into each.
///
/// # Safety
///
/// AVX2 and FMA must be present, every row must hold `kc` values and `b`
/// `kc * NR`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn tile_rows_body(kc: usize, rows: [&[f32]; MR], b: &[f32]) -> Tile {
    use std::arch::x86_64::*;
    let pa = rows.map(|r| r.as_ptr());
    let pb = b.as_ptr();
    // SAFETY: AVX is present (the caller's contract).
    let mut c = [[unsafe { _mm256_setzero_ps() }; 2]; MR];
    for k in 0..kc {
        // SAFETY: k < kc; the caller sliced every row to kc and b to kc * NR.
        unsafe {
            let b0 = _mm256_loadu_ps(pb.add(k * NR));
            let b1 = _mm256_loadu_ps(pb.add(k * NR + 8));
            for (cr, a) in c.iter_mut().zip(&pa) {
                let ar = _mm256_broadcast_ss(&*a.add(k));
                cr[0] = _mm256_fmadd_ps(ar, b0, cr[0]);
                cr[1] = _mm256_fmadd_ps(ar, b1, cr[1]);
            }
        }
    }
    // SAFETY: AVX is present (the caller's contract).
    unsafe { store(&c) }
}

/// An `FR x FN` tile whose `B` rows are windows of one slice at given
/// offsets: `sum over k < offsets.len() of a[k * FR + r] * b[offsets[k] + j]`.
/// With `b` a zero-padded image and the offsets those of the 3x3 taps of
/// every channel, this is the direct convolution of [`FN`] consecutive
/// positions without copying any panel.
///
/// # Panics
///
/// If `a` is shorter than `offsets.len() * FR` or an offset's window runs
/// past the end of `b`.
pub fn tile_offsets(a: &[f32], b: &[f32], offsets: &[usize]) -> [[f32; FN]; FR] {
    let kc = offsets.len();
    let a = &a[..kc * FR];
    let last = offsets.iter().max().map_or(0, |m| m + FN);
    assert!(last <= b.len(), "window past the end of b");
    #[cfg(target_arch = "x86_64")]
    if has_avx512vl() {
        // SAFETY: AVX-512 F/VL (and so AVX2 and FMA) are present (checked
        // above); `a` holds kc packed rows and every window of FN values
        // lies inside `b`.
        return unsafe { tile_offsets_avx512vl(a, b, offsets) };
    }
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // SAFETY: as above, with AVX2 and FMA present.
        return unsafe { tile_offsets_avx2(a, b, offsets) };
    }
    let mut acc = [[0.0f32; FN]; FR];
    for (k, &off) in offsets.iter().enumerate() {
        let bk = &b[off..off + FN];
        for (r, row) in acc.iter_mut().enumerate() {
            let ar = a[k * FR + r];
            for (c, &bv) in row.iter_mut().zip(bk) {
                *c += ar * bv;
            }
        }
    }
    acc
}

/// The AVX2 tile compiled with AVX-512's 32 vector registers: its 12
/// accumulators, 3 loads and broadcasts need 16 or 17 of them, and with
/// AVX2's 16 one accumulator went through the stack every step, a
/// store-to-load chain that halved the tile's speed.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,avx512f,avx512vl")]
unsafe fn tile_offsets_avx512vl(a: &[f32], b: &[f32], offsets: &[usize]) -> [[f32; FN]; FR] {
    // SAFETY: the caller's contract, passed on.
    unsafe { tile_offsets_body(a, b, offsets) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile_offsets_avx2(a: &[f32], b: &[f32], offsets: &[usize]) -> [[f32; FN]; FR] {
    // SAFETY: the caller's contract, passed on.
    unsafe { tile_offsets_body(a, b, offsets) }
}

/// The body of the `tile_offsets_*` kernels, inlined into each so that it is
/// compiled with their target features.
///
/// # Safety
///
/// AVX2 and FMA must be present; `a` must hold `offsets.len() * FR` values
/// and `b` every window `off..off + FN`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn tile_offsets_body(a: &[f32], b: &[f32], offsets: &[usize]) -> [[f32; FN]; FR] {
    use std::arch::x86_64::*;
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    // SAFETY: AVX is present (the caller's contract).
    let mut c = [[unsafe { _mm256_setzero_ps() }; 3]; FR];
    for (k, &off) in offsets.iter().enumerate() {
        // SAFETY: the caller checked every window off..off + FN against b,
        // and sliced a to offsets.len() * FR.
        unsafe {
            let bk = pb.add(off);
            let b = [
                _mm256_loadu_ps(bk),
                _mm256_loadu_ps(bk.add(8)),
                _mm256_loadu_ps(bk.add(16)),
            ];
            for (r, cr) in c.iter_mut().enumerate() {
                let ar = _mm256_broadcast_ss(&*pa.add(k * FR + r));
                for (acc, bv) in cr.iter_mut().zip(b) {
                    *acc = _mm256_fmadd_ps(ar, bv, *acc);
                }
            }
        }
    }
    let mut acc = [[0.0f32; FN]; FR];
    for (row, cr) in acc.iter_mut().zip(&c) {
        for (i, v) in cr.iter().enumerate() {
            // SAFETY: each row holds FN = 24 floats, three stores of 8.
            unsafe { _mm256_storeu_ps(row.as_mut_ptr().add(8 * i), *v) };
        }
    }
    acc
}

/// The accumulators of a 6x16 tile as arrays.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn store(c: &[[std::arch::x86_64::__m256; 2]; MR]) -> Tile {
    use std::arch::x86_64::*;
    let mut acc = [[0.0f32; NR]; MR];
    for (row, cr) in acc.iter_mut().zip(c) {
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
        // The same product with A as separate rows.
        let rows: Vec<Vec<f32>> = (0..MR)
            .map(|r| (0..kc).map(|k| a[k * MR + r]).collect())
            .collect();
        let rows: [&[f32]; MR] = std::array::from_fn(|r| rows[r].as_slice());
        assert_eq!(tile_rows(kc, rows, &b), got);
    }

    #[test]
    fn the_offset_tile_reads_windows_of_b() {
        let offsets = [0usize, 7, 3, 30, 12, 1, 25];
        let a: Vec<f32> = (0..offsets.len() * FR)
            .map(|i| ((i * 7) % 13) as f32 - 6.0)
            .collect();
        let b: Vec<f32> = (0..30 + FN)
            .map(|i| ((i * 5) % 11) as f32 * 0.5 - 2.0)
            .collect();
        let got = tile_offsets(&a, &b, &offsets);
        for r in 0..FR {
            for j in 0..FN {
                let want: f32 = offsets
                    .iter()
                    .enumerate()
                    .map(|(k, &off)| a[k * FR + r] * b[off + j])
                    .sum();
                assert_eq!(got[r][j], want, "({r}, {j})");
            }
        }
    }
}
