//! The register tiles every convolution pass is built on: blocks of a matrix
//! product `acc[r][j] = sum over k of a(k, r) * b(k)[j]`, kept in vector
//! registers for the whole reduction. Three shapes, by where the operands lie:
//! [`tile`] (both packed) and [`tile_offsets`] (`b` as windows of one
//! slice); and [`tile_dot`], dot products of rows, whose reduction runs
//! along the registers' lanes.
//!
//! Written here because no kept library exposes one: the `gemm` crate that
//! Burn's CPU backend calls packs its operands itself, which is the overhead
//! this module exists to avoid (BENCHMARKS.md, "Where the time goes").
//!
//! On x86-64 the tiles use 512-bit AVX-512 registers when the processor has
//! them (checked once at run time, so the default build stays portable): on
//! the development machine (AMD Zen 5) a 512-bit multiply-add does twice the
//! work of a 256-bit one at the same rate (`examples/fma_peak.rs`). Without
//! AVX-512 the same tiles run in smaller blocks on 256-bit AVX2 registers;
//! elsewhere as plain loops that the compiler vectorises.

use std::mem::MaybeUninit;

/// The instruction set the tiles run on: the widest the processor has, or
/// lower where `R2UNET_ISA=avx2` or `R2UNET_ISA=portable` caps it (to measure
/// on one machine the paths an older or non-x86 processor takes). Read once.
/// (`R2UNET_ISA=avx512` keeps AVX-512 but takes bf16 off AMX tiles:
/// [`super::amx`].)
pub fn isa() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if x86::has_avx512() {
            return "avx512";
        }
        if x86::has_avx2_fma() {
            return "avx2";
        }
    }
    "portable"
}

/// The `R2UNET_ISA` cap: 3 none, 2 AVX-512 without AMX, 1 AVX2, 0 portable.
#[cfg(target_arch = "x86_64")]
fn isa_cap() -> u8 {
    use std::sync::OnceLock;
    static CAP: OnceLock<u8> = OnceLock::new();
    *CAP.get_or_init(|| match std::env::var("R2UNET_ISA").as_deref() {
        Ok("portable") => 0,
        Ok("avx2") => 1,
        Ok("avx512") => 2,
        _ => 3,
    })
}

/// Whether AVX-512 is present and `R2UNET_ISA` leaves AMX to the kernels
/// ([`super::amx`] checks the tiles themselves).
#[cfg(target_arch = "x86_64")]
pub(crate) fn amx_allowed() -> bool {
    isa_cap() >= 3 && x86::has_avx512()
}

/// Whether the tiles run on AVX-512 ([`isa`]).
#[inline(always)]
pub(crate) fn avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        x86::has_avx512()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `f()`, compiled for the widest vector instructions the tiles run on
/// ([`isa`]): element-wise work around the tiles (transforms, gathers) that
/// the compiler vectorises, which in a default build it may only do for the
/// baseline x86-64's 128-bit registers. `f` and what it calls inline (mark
/// them `#[inline(always)]`) get the wider instructions. Floating-point
/// results are the same on every path: Rust contracts no multiply and add
/// into one fused operation unless asked to.
#[inline(always)]
pub fn wide<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        if x86::has_avx512() {
            // SAFETY: AVX-512 F and VL are present.
            return unsafe { x86::wide_avx512(f) };
        }
        if x86::has_avx2_fma() {
            // SAFETY: AVX2 and FMA are present.
            return unsafe { x86::wide_avx2(f) };
        }
    }
    f()
}

/// Rows of [`tile`] (output channels in the Winograd products).
pub const MR: usize = 8;
/// Columns of [`tile`] (tiles or input channels): two 512-bit registers.
pub const NR: usize = 32;

/// One [`tile`] of results.
pub type Tile = [[f32; NR]; MR];

/// Rows of [`tile_offsets`] (output channels).
pub const FR: usize = 8;
/// Columns of [`tile_offsets`] (consecutive positions): three 512-bit registers.
pub const FN: usize = 48;

/// `sum over k < kc of a[k * MR + r] * b[k * NR + j]` for every `r < MR`, `j < NR`.
///
/// # Panics
///
/// If `a` is shorter than `kc * MR` or `b` than `kc * NR`.
pub fn tile(kc: usize, a: &[f32], b: &[f32]) -> Tile {
    let mut out = MaybeUninit::<Tile>::uninit();
    // SAFETY: `out` holds MR rows of NR, one after another.
    unsafe { tile_at(kc, a, b, out.as_mut_ptr().cast(), NR) };
    // SAFETY: `run` wrote every value of every row.
    unsafe { out.assume_init() }
}

/// [`tile`], its row `r` written to `out[r * stride..][..NR]` instead of
/// returned: straight into the rows of a larger matrix, where returning the
/// tile zeroed it, then copied it (at 16 channels, a fifth of the time of
/// F(4x4, 3x3)'s products on one 576x576 image, `perf` on AMD Zen 4).
///
/// # Panics
///
/// As [`tile`]; if `stride < NR` or `out` is shorter than
/// `(MR - 1) * stride + NR`.
pub fn tile_to(kc: usize, a: &[f32], b: &[f32], out: &mut [f32], stride: usize) {
    assert!(stride >= NR, "rows of a tile overlap");
    assert!(
        out.len() >= (MR - 1) * stride + NR,
        "tile rows past the end"
    );
    // SAFETY: checked above: MR rows of NR at `stride`, inside `out`.
    unsafe { tile_at(kc, a, b, out.as_mut_ptr(), stride) }
}

/// [`tile`] into rows at `out + r * stride`.
///
/// # Safety
///
/// `out + r * stride` must point to `NR` writable values for every `r < MR`.
#[inline(always)]
unsafe fn tile_at(kc: usize, a: &[f32], b: &[f32], out: *mut f32, stride: usize) {
    let (a, b) = (&a[..kc * MR], &b[..kc * NR]);
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    // Pointers only (wrapping: computing one is safe); `run` reads them for
    // k < kc and r < MR, inside the slices.
    let at = |k: usize, r: usize| pa.wrapping_add(k * MR + r);
    let bt = |k: usize| pb.wrapping_add(k * NR);
    // SAFETY: every pointer the closures give for k < kc lies inside the
    // slices (sliced above); the rows are the caller's contract.
    unsafe { run::<MR, NR>(kc, at, bt, out, stride) };
}

/// The window offsets [`tile_offsets`] reads, with the end of the furthest
/// window: found once for all the tiles that read them. (Found at every
/// tile, the scan over 144 to 1,152 offsets was a third of the forward
/// pass's time outside the tiles.)
pub struct Windows {
    offsets: Vec<usize>,
    end: usize,
}

impl Windows {
    pub fn new(offsets: Vec<usize>) -> Self {
        let end = offsets.iter().max().map_or(0, |m| m + FN);
        Self { offsets, end }
    }

    pub fn len(&self) -> usize {
        self.offsets.len()
    }
}

/// An `FR x FN` tile whose `b` rows are windows of one slice at given
/// offsets: `sum over k < windows.len() of a[k * FR + r] * b[offsets[k] + j]`.
/// With `b` a zero-padded image and the offsets those of the 3x3 taps of
/// every channel, this is the direct convolution of [`FN`] consecutive
/// positions without copying any panel.
///
/// # Panics
///
/// If `a` is shorter than `windows.len() * FR` or a window runs past the
/// end of `b`.
pub fn tile_offsets(a: &[f32], b: &[f32], windows: &Windows) -> [[f32; FN]; FR] {
    let kc = windows.len();
    let pa = a[..kc * FR].as_ptr();
    assert!(windows.end <= b.len(), "window past the end of b");
    let pb = b.as_ptr();
    let mut out = MaybeUninit::<[[f32; FN]; FR]>::uninit();
    // Pointers only; `run` reads them for k < kc: a was sliced to kc * FR
    // and every window offsets[k]..offsets[k] + FN was checked against b.
    let at = |k: usize, r: usize| pa.wrapping_add(k * FR + r);
    let bt = |k: usize| pb.wrapping_add(windows.offsets[k]);
    // SAFETY: as above; `out` holds FR rows of FN, one after another.
    unsafe { run::<FR, FN>(kc, at, bt, out.as_mut_ptr().cast(), FN) };
    // SAFETY: `run` wrote every value of every row.
    unsafe { out.assume_init() }
}

/// Whether [`tile_offsets_bf16`] can run: AVX512_BF16 with AVX-512 F and
/// VL, not capped by `R2UNET_ISA`.
pub fn has_bf16() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        x86::has_avx512() && x86::has_bf16()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `x` rounded to bfloat16 (to nearest, ties to even; the top 16 bits of
/// the f32 it stands for).
pub fn to_bf16(x: f32) -> u16 {
    let bits = x.to_bits();
    if x.is_nan() {
        return ((bits >> 16) | 0x40) as u16;
    }
    ((bits + 0x7fff + ((bits >> 16) & 1)) >> 16) as u16
}

/// Two values as one bf16 pair (`lo` in the low half), the operand unit of
/// [`tile_offsets_bf16`].
pub fn bf16_pair(lo: f32, hi: f32) -> u32 {
    u32::from(to_bf16(lo)) | (u32::from(to_bf16(hi)) << 16)
}

/// [`tile_offsets`] on bf16 pairs ([`bf16_pair`]): every `a[k * FR + r]`
/// and `b[offsets[k] + j]` holds two values, and each result adds both
/// products of each pair, in f32 (AVX512_BF16's `vdpbf16ps`). With the
/// pairs two input channels of one tap, this is the 3x3 convolution with
/// half the multiply-add instructions and half the bytes read.
///
/// # Panics
///
/// Without [`has_bf16`]; if `a` is shorter than `windows.len() * FR` or a
/// window runs past the end of `b`.
pub fn tile_offsets_bf16(a: &[u32], b: &[u32], windows: &Windows) -> [[f32; FN]; FR] {
    assert!(has_bf16(), "bf16 tiles need AVX512_BF16");
    let kc = windows.len();
    let a = &a[..kc * FR];
    assert!(windows.end <= b.len(), "window past the end of b");
    let mut out = [[0.0f32; FN]; FR];
    #[cfg(target_arch = "x86_64")]
    // SAFETY: AVX512_BF16, F and VL are present (asserted); a holds kc * FR
    // pairs and every window offsets[k]..offsets[k] + FN lies inside b.
    unsafe {
        x86::offsets_bf16(a.as_ptr(), b.as_ptr(), &windows.offsets, &mut out)
    };
    out
}

/// Rows of [`tile_dot`] (taps in the implicit weight gradient).
pub const DR: usize = 6;
/// Columns of [`tile_dot`] (output channels).
pub const DS: usize = 4;

/// The `DR x DS` dot products of `DR` rows with `DS` rows, all of length
/// `n`: `sum over q < n of a[r][q] * b[s][q]`. The reduction runs along the
/// rows, 16 positions per register (each accumulator sums its own lanes,
/// added up at the end): no operand is broadcast or packed, both are read
/// where they lie.
///
/// # Panics
///
/// If a row is shorter than `n`.
pub fn tile_dot(n: usize, a: [&[f32]; DR], b: [&[f32]; DS]) -> [[f32; DS]; DR] {
    let (a, b) = (a.map(|r| &r[..n]), b.map(|r| &r[..n]));
    #[cfg(target_arch = "x86_64")]
    {
        if x86::has_avx512() {
            // SAFETY: AVX-512 F and VL are present (checked above); every row holds
            // n values (sliced above).
            return unsafe { x86::dot_avx512(n, a, b) };
        }
        if x86::has_avx2_fma() {
            // SAFETY: AVX2 and FMA are present (checked above).
            return unsafe { x86::dot_avx2(n, a, b) };
        }
    }
    dot_portable(n, a, b)
}

/// [`tile_dot`] as plain loops: eight interleaved partial sums per product
/// (one running sum would be a chain of dependent additions), the last
/// `n % 8` positions into the first lanes, then the lanes added in order.
/// Two rows by two columns at a time: each loaded chunk serves two
/// products, and the sums are not reloaded from the stack for every
/// addition, as they were one product at a time (then 70% of a training
/// step on this path, `perf`).
fn dot_portable(n: usize, a: [&[f32]; DR], b: [&[f32]; DS]) -> [[f32; DS]; DR] {
    const { assert!(DR.is_multiple_of(2) && DS.is_multiple_of(2), "2 x 2 blocks") };
    let whole = n / 8 * 8;
    let mut out = [[0.0f32; DS]; DR];
    for r0 in (0..DR).step_by(2) {
        for s0 in (0..DS).step_by(2) {
            // lanes[i][j][l]: row r0 + i with row s0 + j, positions q % 8 == l.
            let mut lanes = [[[0.0f32; 8]; 2]; 2];
            for q in (0..whole).step_by(8) {
                let chunk =
                    |row: &[f32]| -> [f32; 8] { row[q..q + 8].try_into().expect("eight values") };
                let (x, y) = (
                    [0, 1].map(|i| chunk(a[r0 + i])),
                    [0, 1].map(|j| chunk(b[s0 + j])),
                );
                for (li, xi) in lanes.iter_mut().zip(&x) {
                    for (lij, yj) in li.iter_mut().zip(&y) {
                        for ((sum, &u), &v) in lij.iter_mut().zip(xi).zip(yj) {
                            *sum += u * v;
                        }
                    }
                }
            }
            for (i, li) in lanes.iter_mut().enumerate() {
                for (j, lij) in li.iter_mut().enumerate() {
                    for (l, q) in (whole..n).enumerate() {
                        lij[l] += a[r0 + i][q] * b[s0 + j][q];
                    }
                    out[r0 + i][s0 + j] = lij.iter().sum();
                }
            }
        }
    }
    out
}

/// `out[r * stride + j] = sum over k < kc of *a(k, r) * *b(k).add(j)` for
/// `r < R`, `j < N`, on the widest registers the processor has.
///
/// # Safety
///
/// For every `k < kc` and `r < R`, `a(k, r)` must point to a readable value,
/// `b(k)` to `N` readable values and `out + r * stride` to `N` writable ones.
#[inline(always)]
unsafe fn run<const R: usize, const N: usize>(
    kc: usize,
    a: impl Fn(usize, usize) -> *const f32 + Copy,
    b: impl Fn(usize) -> *const f32 + Copy,
    out: *mut f32,
    stride: usize,
) {
    #[cfg(target_arch = "x86_64")]
    {
        if x86::has_avx512() {
            // SAFETY: AVX-512 F and VL are present (checked above); the pointers are
            // the caller's contract.
            return unsafe { x86::run_avx512::<R, N>(kc, a, b, out, stride) };
        }
        if x86::has_avx2_fma() {
            // SAFETY: AVX2 and FMA are present (checked above).
            return unsafe { x86::run_avx2::<R, N>(kc, a, b, out, stride) };
        }
    }
    // SAFETY: the caller's contract.
    unsafe { run_portable::<R, N>(kc, a, b, out, stride) }
}

/// [`run`] as plain loops, in blocks of two rows by sixteen columns whose
/// sums stay in a local array the compiler keeps in registers (eight of
/// 128 bits): summing into `out` directly stored and reloaded every sum for
/// every `k` (a fifth of a training step on this path, `perf`). Each sum
/// adds its products in the order of `k`, as before.
///
/// # Safety
///
/// As [`run`].
unsafe fn run_portable<const R: usize, const N: usize>(
    kc: usize,
    a: impl Fn(usize, usize) -> *const f32,
    b: impl Fn(usize) -> *const f32,
    out: *mut f32,
    stride: usize,
) {
    const {
        assert!(
            R.is_multiple_of(2) && N.is_multiple_of(16),
            "tiles of 2 x 16 blocks"
        )
    };
    for r0 in (0..R).step_by(2) {
        for j0 in (0..N).step_by(16) {
            let mut c = [[0.0f32; 16]; 2];
            for k in 0..kc {
                // SAFETY: the caller's contract; j0 + 16 <= N.
                let bk = unsafe { &*b(k).add(j0).cast::<[f32; 16]>() };
                for (i, ci) in c.iter_mut().enumerate() {
                    // SAFETY: the caller's contract; r0 + i < R.
                    let ar = unsafe { *a(k, r0 + i) };
                    for (x, &bv) in ci.iter_mut().zip(bk) {
                        *x += ar * bv;
                    }
                }
            }
            for (i, ci) in c.iter().enumerate() {
                // SAFETY: the caller's contract; r0 + i < R, j0 + 16 <= N.
                let row = unsafe { out.add((r0 + i) * stride + j0) };
                // SAFETY: as above: 16 writable values.
                unsafe { std::ptr::copy_nonoverlapping(ci.as_ptr(), row, 16) };
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;
    use std::sync::OnceLock;

    /// AVX-512 F and VL: VL lets 128- and 256-bit instructions reach the
    /// upper 16 registers. Without it, the reduction at the end of
    /// [`dot_avx512`] confined its 24 accumulators to the lower 16 registers,
    /// and the compiler kept the rest on the stack in some builds (the
    /// weight gradient ran 40% slower). Every AVX-512 processor since 2017
    /// has both.
    pub fn has_avx512() -> bool {
        static DETECTED: OnceLock<bool> = OnceLock::new();
        *DETECTED.get_or_init(|| {
            super::isa_cap() >= 2
                && std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512vl")
        })
    }

    pub fn has_bf16() -> bool {
        static DETECTED: OnceLock<bool> = OnceLock::new();
        *DETECTED.get_or_init(|| std::arch::is_x86_feature_detected!("avx512bf16"))
    }

    /// [`super::tile_offsets_bf16`]: 24 accumulators, `FR` rows of three
    /// 16-lane registers.
    ///
    /// # Safety
    ///
    /// AVX512_BF16, F and VL must be present; `pa` must point to
    /// `offsets.len() * FR` pairs and `pb` to at least `offset + FN` of them
    /// for every offset.
    #[target_feature(enable = "avx512f,avx512vl,avx512bf16")]
    pub unsafe fn offsets_bf16(
        pa: *const u32,
        pb: *const u32,
        offsets: &[usize],
        out: &mut [[f32; super::FN]; super::FR],
    ) {
        use super::FR;
        let mut c = [[_mm512_setzero_ps(); 3]; FR];
        for (k, &offset) in offsets.iter().enumerate() {
            // SAFETY: the caller's contract; __m512i and __m512bh are both
            // 512 bits of packed data.
            unsafe {
                let bk = pb.add(offset);
                let bv: [__m512bh; 3] = std::array::from_fn(|v| {
                    std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(
                        bk.add(16 * v).cast(),
                    ))
                });
                for (r, cr) in c.iter_mut().enumerate() {
                    let a = std::mem::transmute::<__m512i, __m512bh>(_mm512_set1_epi32(
                        *pa.add(k * FR + r) as i32,
                    ));
                    for (x, &b) in cr.iter_mut().zip(&bv) {
                        *x = _mm512_dpbf16_ps(*x, a, b);
                    }
                }
            }
        }
        for (row, cr) in out.iter_mut().zip(&c) {
            for (v, x) in cr.iter().enumerate() {
                // SAFETY: each row holds FN = 48 floats.
                unsafe { _mm512_storeu_ps(row.as_mut_ptr().add(16 * v), *x) };
            }
        }
    }

    /// [`super::wide`] on AVX-512.
    ///
    /// # Safety
    ///
    /// AVX-512 F and VL must be present.
    #[target_feature(enable = "avx512f,avx512vl")]
    pub unsafe fn wide_avx512<R>(f: impl FnOnce() -> R) -> R {
        f()
    }

    /// [`super::wide`] on AVX2.
    ///
    /// # Safety
    ///
    /// AVX2 and FMA must be present.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn wide_avx2<R>(f: impl FnOnce() -> R) -> R {
        f()
    }

    pub fn has_avx2_fma() -> bool {
        static DETECTED: OnceLock<bool> = OnceLock::new();
        *DETECTED.get_or_init(|| {
            super::isa_cap() >= 1
                && std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
        })
    }

    /// The whole `R x N` tile in `R * N / 16` registers of 16 lanes (at most
    /// 24 of the 32, leaving room for the loads of `b` and a broadcast).
    ///
    /// # Safety
    ///
    /// AVX-512 F and VL must be present; the pointers as in [`super::run`].
    #[target_feature(enable = "avx512f,avx512vl")]
    pub unsafe fn run_avx512<const R: usize, const N: usize>(
        kc: usize,
        a: impl Fn(usize, usize) -> *const f32,
        b: impl Fn(usize) -> *const f32,
        out: *mut f32,
        stride: usize,
    ) {
        // The shapes in use: N is 16, 32 or 48.
        match N / 16 {
            1 => unsafe { block_avx512::<R, 1, N>(kc, a, b, out, stride) },
            2 => unsafe { block_avx512::<R, 2, N>(kc, a, b, out, stride) },
            3 => unsafe { block_avx512::<R, 3, N>(kc, a, b, out, stride) },
            _ => unreachable!("tile widths are 16, 32 or 48"),
        }
    }

    #[inline(always)]
    unsafe fn block_avx512<const R: usize, const V: usize, const N: usize>(
        kc: usize,
        a: impl Fn(usize, usize) -> *const f32,
        b: impl Fn(usize) -> *const f32,
        out: *mut f32,
        stride: usize,
    ) {
        debug_assert_eq!(V * 16, N);
        // SAFETY: AVX-512 F and VL are present (the caller's contract).
        let mut c = [[unsafe { _mm512_setzero_ps() }; V]; R];
        for k in 0..kc {
            // SAFETY: the pointers are readable for k < kc (the caller's contract).
            unsafe {
                let bk = b(k);
                let bv: [__m512; V] = std::array::from_fn(|v| _mm512_loadu_ps(bk.add(16 * v)));
                for (r, cr) in c.iter_mut().enumerate() {
                    let ar = _mm512_set1_ps(*a(k, r));
                    for (acc, &bb) in cr.iter_mut().zip(&bv) {
                        *acc = _mm512_fmadd_ps(ar, bb, *acc);
                    }
                }
            }
        }
        for (r, cr) in c.iter().enumerate() {
            for (v, x) in cr.iter().enumerate() {
                // SAFETY: each row holds N = 16 V floats (the caller's contract).
                unsafe { _mm512_storeu_ps(out.add(r * stride + 16 * v), *x) };
            }
        }
    }

    /// [`super::tile_dot`] on 24 accumulators of 16 lanes; the last
    /// positions through masked loads.
    ///
    /// # Safety
    ///
    /// AVX-512 F and VL must be present and every row must hold `n` values.
    #[target_feature(enable = "avx512f,avx512vl")]
    pub unsafe fn dot_avx512(
        n: usize,
        a: [&[f32]; super::DR],
        b: [&[f32]; super::DS],
    ) -> [[f32; super::DS]; super::DR] {
        use super::{DR, DS};
        let (pa, pb) = (a.map(<[f32]>::as_ptr), b.map(<[f32]>::as_ptr));
        let mut c = [[_mm512_setzero_ps(); DS]; DR];
        let step = |q: usize, mask: __mmask16, c: &mut [[__m512; DS]; DR]| {
            // SAFETY: the mask's lanes q..q + 16 that it keeps are below n.
            unsafe {
                let av: [__m512; DR] =
                    std::array::from_fn(|r| _mm512_maskz_loadu_ps(mask, pa[r].add(q)));
                for (s, &ps) in pb.iter().enumerate() {
                    let bv = _mm512_maskz_loadu_ps(mask, ps.add(q));
                    for (cr, &ar) in c.iter_mut().zip(&av) {
                        cr[s] = _mm512_fmadd_ps(ar, bv, cr[s]);
                    }
                }
            }
        };
        let whole = n / 16 * 16;
        for q in (0..whole).step_by(16) {
            step(q, 0xffff, &mut c);
        }
        if whole < n {
            step(whole, (1u16 << (n - whole)) - 1, &mut c);
        }
        c.map(|row| row.map(|v| _mm512_reduce_add_ps(v)))
    }

    /// [`super::tile_dot`] on 8-lane registers, three rows of `a` at a time:
    /// twelve accumulators, three row chunks and one column chunk fill
    /// AVX2's 16 registers (with two rows, eight accumulators only just
    /// covered the multiply-add latency). The last positions are read
    /// through masked loads (as on AVX-512), and each row's four sums are
    /// added up across lanes in one register: one by one, the tail and the
    /// lane sums took a quarter of the weight gradient's time at 16
    /// channels (`perf annotate`).
    ///
    /// # Safety
    ///
    /// AVX2 and FMA must be present and every row must hold `n` values.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot_avx2(
        n: usize,
        a: [&[f32]; super::DR],
        b: [&[f32]; super::DS],
    ) -> [[f32; super::DS]; super::DR] {
        use super::{DR, DS};
        const RB: usize = 3;
        const {
            assert!(
                DR.is_multiple_of(RB) && DS == 4,
                "3-row blocks, 4 sums a register"
            )
        };
        let whole = n / 8 * 8;
        // The lanes below n - whole: the positions of the last, partial chunk.
        let tail = _mm256_cmpgt_epi32(
            _mm256_set1_epi32((n - whole) as i32),
            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
        );
        let pb = b.map(<[f32]>::as_ptr);
        let mut out = [[0.0f32; DS]; DR];
        for r0 in (0..DR).step_by(RB) {
            let pa: [*const f32; RB] = std::array::from_fn(|i| a[r0 + i].as_ptr());
            let mut c = [[_mm256_setzero_ps(); DS]; RB];
            // One chunk of every row, each read by `$load(row pointer)`.
            macro_rules! chunk {
                ($load:expr) => {
                    let av = pa.map($load);
                    for (s, &p) in pb.iter().enumerate() {
                        let bv = $load(p);
                        for (cr, &ar) in c.iter_mut().zip(&av) {
                            cr[s] = _mm256_fmadd_ps(ar, bv, cr[s]);
                        }
                    }
                };
            }
            for q in (0..whole).step_by(8) {
                // SAFETY: q + 8 <= whole <= n, the rows' length.
                chunk!(|p: *const f32| unsafe { _mm256_loadu_ps(p.add(q)) });
            }
            if whole < n {
                // SAFETY: the mask keeps the lanes whole..n, inside the rows.
                chunk!(|p: *const f32| unsafe { _mm256_maskload_ps(p.add(whole), tail) });
            }
            for (i, [c0, c1, c2, c3]) in c.into_iter().enumerate() {
                let h = _mm256_hadd_ps(_mm256_hadd_ps(c0, c1), _mm256_hadd_ps(c2, c3));
                let sums = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps::<1>(h));
                // SAFETY: a row of `out` holds DS = 4 floats.
                unsafe { _mm_storeu_ps(out[r0 + i].as_mut_ptr(), sums) };
            }
        }
        out
    }

    /// The tile in blocks of four rows by at most 24 columns (twelve 256-bit
    /// accumulators: more would not fit AVX2's 16 registers).
    ///
    /// # Safety
    ///
    /// AVX2 and FMA must be present; the pointers as in [`super::run`].
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn run_avx2<const R: usize, const N: usize>(
        kc: usize,
        a: impl Fn(usize, usize) -> *const f32 + Copy,
        b: impl Fn(usize) -> *const f32 + Copy,
        out: *mut f32,
        stride: usize,
    ) {
        let cols = if N.is_multiple_of(24) { 24 } else { 16 };
        for r0 in (0..R).step_by(4) {
            for j0 in (0..N).step_by(cols) {
                let ra = move |k: usize, r: usize| a(k, r0 + r);
                // SAFETY: j0 + cols <= N, so b(k) + j0 has the block's columns.
                let rb = move |k: usize| unsafe { b(k).add(j0) };
                // SAFETY: as above; the block's rows r0..r0 + 4 are below R
                // (R is a multiple of 4).
                let block = unsafe {
                    if cols == 24 {
                        block_avx2::<3>(kc, ra, rb)
                    } else {
                        block_avx2::<2>(kc, ra, rb)
                    }
                };
                for (r, cr) in block.iter().enumerate() {
                    for (v, x) in cr.iter().enumerate().take(cols / 8) {
                        // SAFETY: row r0 + r < R holds columns j0..j0 + cols
                        // (the caller's contract).
                        unsafe { _mm256_storeu_ps(out.add((r0 + r) * stride + j0 + 8 * v), *x) };
                    }
                }
            }
        }
    }

    #[inline(always)]
    unsafe fn block_avx2<const V: usize>(
        kc: usize,
        a: impl Fn(usize, usize) -> *const f32,
        b: impl Fn(usize) -> *const f32,
    ) -> [[__m256; 3]; 4] {
        // SAFETY: AVX is present (the caller's contract).
        let mut c = [[unsafe { _mm256_setzero_ps() }; 3]; 4];
        for k in 0..kc {
            // SAFETY: the pointers are readable for k < kc (the caller's contract).
            unsafe {
                let bk = b(k);
                let bv: [__m256; V] = std::array::from_fn(|v| _mm256_loadu_ps(bk.add(8 * v)));
                for (r, cr) in c.iter_mut().enumerate() {
                    let ar = _mm256_broadcast_ss(&*a(k, r));
                    for (acc, &bb) in cr.iter_mut().zip(&bv) {
                        *acc = _mm256_fmadd_ps(ar, bb, *acc);
                    }
                }
            }
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ints(n: usize, mul: usize, m: usize) -> Vec<f32> {
        (0..n).map(|i| ((i * mul) % m) as f32 * 0.5 - 2.0).collect()
    }

    /// Every tile against its definition, through the dispatched path, the
    /// portable loops and (where the processor has them) each x86 kernel.
    /// Small integers and halves: every sum is exact in f32, so all paths
    /// must agree to the bit.
    fn check<const R: usize, const N: usize>(
        kc: usize,
        a: impl Fn(usize, usize) -> *const f32 + Copy,
        b: impl Fn(usize) -> *const f32 + Copy,
        got: [[f32; N]; R],
    ) {
        for (r, row) in got.iter().enumerate() {
            for (j, &value) in row.iter().enumerate() {
                // SAFETY: the test's operands hold every k < kc.
                let want: f32 = (0..kc).map(|k| unsafe { *a(k, r) * *b(k).add(j) }).sum();
                assert_eq!(value, want, "({r}, {j}) of {R}x{N}");
            }
        }
        // Rows at a stride of N + 3, the values between them left alone.
        let stride = N + 3;
        let fresh = || vec![1.0f32; R * stride];
        let rows = |out: &[f32]| -> [[f32; N]; R] {
            for r in 0..R {
                assert!(
                    out[r * stride + N..][..3].iter().all(|&x| x == 1.0),
                    "past row {r}"
                );
            }
            std::array::from_fn(|r| std::array::from_fn(|j| out[r * stride + j]))
        };
        let mut out = fresh();
        // SAFETY: as above; `out` holds R rows of N at `stride`.
        unsafe { run_portable::<R, N>(kc, a, b, out.as_mut_ptr(), stride) };
        assert_eq!(rows(&out), got, "portable {R}x{N}");
        #[cfg(target_arch = "x86_64")]
        {
            if x86::has_avx2_fma() {
                let mut out = fresh();
                // SAFETY: AVX2 and FMA are present; operands as above.
                unsafe { x86::run_avx2::<R, N>(kc, a, b, out.as_mut_ptr(), stride) };
                assert_eq!(rows(&out), got, "AVX2 {R}x{N}");
            }
            if x86::has_avx512() {
                let mut out = fresh();
                // SAFETY: AVX-512 F and VL are present; operands as above.
                unsafe { x86::run_avx512::<R, N>(kc, a, b, out.as_mut_ptr(), stride) };
                assert_eq!(rows(&out), got, "AVX-512 {R}x{N}");
            }
        }
    }

    #[test]
    fn the_packed_tile_is_the_matrix_product() {
        let kc = 37;
        let (a, b) = (ints(kc * MR, 7, 13), ints(kc * NR, 5, 11));
        let got = tile(kc, &a, &b);
        // Into the rows of a larger matrix, the values between them kept.
        let stride = NR + 5;
        let mut rows = vec![-1.0f32; MR * stride];
        tile_to(kc, &a, &b, &mut rows[..(MR - 1) * stride + NR], stride);
        for (r, row) in got.iter().enumerate() {
            assert_eq!(&rows[r * stride..][..NR], row, "tile_to row {r}");
            if r + 1 < MR {
                assert!(rows[r * stride + NR..][..5].iter().all(|&x| x == -1.0));
            }
        }
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        // k < kc and r < MR index inside a and b.
        check(
            kc,
            |k, r| pa.wrapping_add(k * MR + r),
            |k| pb.wrapping_add(k * NR),
            got,
        );
    }

    #[test]
    fn the_dot_tile_is_the_products_of_rows() {
        for n in [0usize, 5, 16, 37, 64] {
            let rows: Vec<Vec<f32>> = (0..DR + DS).map(|r| ints(n, 3 + r, 13)).collect();
            let a: [&[f32]; DR] = std::array::from_fn(|r| rows[r].as_slice());
            let b: [&[f32]; DS] = std::array::from_fn(|s| rows[DR + s].as_slice());
            let got = tile_dot(n, a, b);
            for (r, row) in got.iter().enumerate() {
                for (s, &v) in row.iter().enumerate() {
                    let want: f32 = (0..n).map(|q| a[r][q] * b[s][q]).sum();
                    assert_eq!(v, want, "n {n} ({r}, {s})");
                }
            }
            assert_eq!(dot_portable(n, a, b), got, "n {n}");
            #[cfg(target_arch = "x86_64")]
            if x86::has_avx2_fma() {
                // SAFETY: AVX2 and FMA are present; every row holds n values.
                assert_eq!(unsafe { x86::dot_avx2(n, a, b) }, got, "AVX2 n {n}");
            }
        }
    }

    #[test]
    fn the_offset_tile_reads_windows_of_b() {
        let offsets = [0usize, 7, 3, 30, 12, 1, 25];
        let a = ints(offsets.len() * FR, 7, 13);
        let b = ints(30 + FN, 5, 11);
        let got = tile_offsets(&a, &b, &Windows::new(offsets.to_vec()));
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        // Every window lies inside b.
        check(
            offsets.len(),
            |k, r| pa.wrapping_add(k * FR + r),
            |k| pb.wrapping_add(offsets[k]),
            got,
        );
    }
}
