//! r2unet's own CPU kernels for the operations that dominate a training step
//! of the U-Net family: the 3x3 convolution (stride 1, padding 1; forward,
//! input and weight gradients, [`conv`]), the 1x1 convolution,
//! training-mode batch norm followed by ReLU ([`norm_relu`]), and the 2x2
//! max pooling and 2x upsampling between levels ([`resample`]).
//!
//! They join Burn as backend extensions for its `flex` CPU backend, each with
//! a hand-written backward pass for autodiff ([`burn_ops`]), so training
//! differentiates through them like through Burn's own operations. Tensors on
//! other backends (GPUs) take Burn's operations. `R2UNET_BURN_KERNELS=1`
//! sends the CPU to Burn's too, for comparisons (BENCHMARKS.md).

#[cfg(target_arch = "x86_64")]
pub mod amx;
pub mod burn_ops;
pub mod conv;
pub mod implicit;
pub mod norm_relu;
pub mod resample;
mod tile;
pub mod winograd;
pub mod winograd4;

use std::mem::MaybeUninit;
use std::sync::OnceLock;

use crate::error::{Error, Result};
use burn::tensor::{DType, Device, Tensor};
use wide::f32x8;

pub use burn_ops::{
    add, batch_norm_relu_train, cat_channels, conv1x1, conv3x3, conv3x3_relu, max_pool2,
    recurrent_relu, upsample2,
};
pub use tile::{has_bf16, isa};

/// The arithmetic of the forward 3x3 convolutions of r2unet's CPU kernels
/// (in training also of their input gradients, which are forward passes of
/// the adjoint filters, and on AMX tiles of their weight gradients:
/// [`amx::weight_grad`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Single precision throughout (the default).
    #[default]
    F32,
    /// Inputs and weights of the 3x3 forward convolutions rounded to
    /// bfloat16, sums in f32. On processors with AMX-BF16 every 3x3
    /// convolution whose input channels come in 16s runs on AMX tiles
    /// ([`amx::forward`]); elsewhere (and for the first convolution) the
    /// implicit path multiplies two channels at a time with AVX512_BF16
    /// ([`implicit::forward_bf16`], below
    /// [`conv::winograd_from`]'s forward channels) and the Winograd
    /// levels stay in f32 (in bf16 on the implicit path they made the
    /// retina R2U-Net's inference step slower still: BENCHMARKS.md).
    Bf16,
}

impl Precision {
    /// Whether this is the default, f32.
    pub fn is_f32(&self) -> bool {
        *self == Precision::F32
    }
}

static BF16: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Sets the arithmetic of every forward 3x3 convolution in this process
/// (the CLI sets it for `predict`, `eval` and `bench`; a
/// training run for its duration, from its configuration: [`PrecisionScope`]).
///
/// # Errors
///
/// As [`check_precision`].
pub fn set_precision(precision: Precision) -> Result<()> {
    check_precision(precision)?;
    BF16.store(
        precision == Precision::Bf16,
        std::sync::atomic::Ordering::Relaxed,
    );
    Ok(())
}

/// Whether `precision` can run here.
///
/// # Errors
///
/// [`Error::Invalid`] for bf16 on a CPU without AVX512_BF16 (or with
/// `R2UNET_ISA` capping it) or with `R2UNET_BURN_KERNELS=1`.
pub fn check_precision(precision: Precision) -> Result<()> {
    if precision == Precision::Bf16 {
        let why = if burn_kernels_forced() {
            Some("R2UNET_BURN_KERNELS=1 sends the CPU to Burn's f32 operations")
        } else if !has_bf16() {
            Some(
                "this CPU has no AVX512_BF16 (or R2UNET_ISA caps the kernels below AVX-512); use f32",
            )
        } else {
            None
        };
        if let Some(why) = why {
            return Err(Error::invalid("precision bf16", why));
        }
    }
    Ok(())
}

/// A [`Precision`] set until this is dropped, then the one before restored.
/// Process-wide like [`set_precision`]: other threads' convolutions
/// meanwhile run in it too.
#[derive(Debug)]
pub struct PrecisionScope(Precision);

impl PrecisionScope {
    /// Sets `precision` for the scope.
    ///
    /// # Errors
    ///
    /// As [`check_precision`].
    pub fn set(precision: Precision) -> Result<Self> {
        let before = self::precision();
        set_precision(precision)?;
        Ok(Self(before))
    }
}

impl Drop for PrecisionScope {
    fn drop(&mut self) {
        // The precision before was set once already, so it can be again.
        let _ = set_precision(self.0);
    }
}

/// The arithmetic [`set_precision`] chose.
pub fn precision() -> Precision {
    if BF16.load(std::sync::atomic::Ordering::Relaxed) {
        Precision::Bf16
    } else {
        Precision::F32
    }
}

/// The instruction set the 3x3 forward convolutions run on at the
/// [`precision`] set now: [`isa`], or `avx512+amx` for bf16 on AMX tiles.
pub fn isa_now() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    if precision() == Precision::Bf16 && amx::available() {
        return "avx512+amx";
    }
    isa()
}

/// Shape of a contiguous NCHW batch of feature maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Maps {
    /// Images in the batch.
    pub batch: usize,
    /// Channels of each image.
    pub channels: usize,
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
}

impl Maps {
    pub(crate) fn pixels(&self) -> usize {
        self.height * self.width
    }

    pub(crate) fn image_len(&self) -> usize {
        self.channels * self.pixels()
    }

    /// Elements of the whole batch.
    pub fn len(&self) -> usize {
        self.batch * self.image_len()
    }

    /// Whether the batch holds no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Whether `R2UNET_BURN_KERNELS=1` switches the kernels off (read once).
fn burn_kernels_forced() -> bool {
    static OFF: OnceLock<bool> = OnceLock::new();
    *OFF.get_or_init(|| std::env::var_os("R2UNET_BURN_KERNELS").is_some_and(|v| v == "1"))
}

/// Whether `x` lives on the CPU backend in `f32` and the kernels are not
/// switched off with `R2UNET_BURN_KERNELS=1`.
pub(crate) fn own_kernels_apply(x: &Tensor<4>) -> bool {
    !burn_kernels_forced() && x.dtype() == DType::F32 && x.device().inner() == Device::flex()
}

/// An output buffer that parallel jobs write at disjoint positions, where a
/// job's share is not one contiguous chunk (its rows of every output
/// channel): each job takes the parts it writes with [`Disjoint::part`].
/// Built on the spare capacity of a vector, which the caller sets to its
/// length once every value is written, so nothing is zeroed first.
pub(crate) struct Disjoint<T>(*mut MaybeUninit<T>);

// SAFETY: the jobs write disjoint elements (the promise of every
// `Disjoint::part` call), so sharing the pointer between threads races on
// nothing.
unsafe impl<T: Send> Sync for Disjoint<T> {}

impl<T> Disjoint<T> {
    /// The spare capacity of the empty vector `v`.
    pub(crate) fn new(v: &mut Vec<T>) -> Self {
        assert!(v.is_empty(), "a Disjoint buffer is written from the start");
        Self(v.spare_capacity_mut().as_mut_ptr())
    }

    /// Elements `at..at + len` of the buffer.
    ///
    /// # Safety
    ///
    /// `at + len` must be within the vector's capacity, and no other part
    /// holding these elements may be alive (no other job writes them).
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn part(&self, at: usize, len: usize) -> &mut [MaybeUninit<T>] {
        // SAFETY: in bounds and unaliased (the caller's promise).
        unsafe { std::slice::from_raw_parts_mut(self.0.add(at), len) }
    }
}

/// Image by image, the values of image `i` of `a` then those of image `i`
/// of `b` (`batch` images each): `[a, b]` along the channels of NCHW maps.
/// One operand's image per task on rayon's pool (two tasks for one image),
/// each value written once (no zeroing first).
///
/// # Panics
///
/// If `a` or `b` does not split into `batch` equal images.
pub(crate) fn join_channels(a: &[f32], b: &[f32], batch: usize) -> Vec<f32> {
    use rayon::prelude::*;
    assert!(
        batch > 0 && a.len().is_multiple_of(batch) && b.len().is_multiple_of(batch),
        "{batch} images of each operand"
    );
    let (la, lb) = (a.len() / batch, b.len() / batch);
    let mut out = Vec::with_capacity(a.len() + b.len());
    let dst = Disjoint::new(&mut out);
    let parts: Vec<(usize, &[f32])> = (0..batch)
        .flat_map(|i| {
            let at = i * (la + lb);
            [(at, &a[i * la..][..la]), (at + la, &b[i * lb..][..lb])]
        })
        .collect();
    parts.into_par_iter().for_each(|(at, src)| {
        // SAFETY: this part's range of the output, written by this task only.
        let part = unsafe { dst.part(at, src.len()) };
        for (d, &v) in part.iter_mut().zip(src) {
            d.write(v);
        }
    });
    // SAFETY: the images cover every value, each written above.
    unsafe { out.set_len(a.len() + b.len()) };
    out
}

/// A vector of `len` values filled in chunks of `chunk` by `f(index, chunk)`
/// on rayon's pool, each chunk zeroed by the thread that then fills it.
/// `vec![0.0; len]` would zero all of it first on one thread, a pass over
/// memory that the workers then read back (one `memset` per output buffer
/// was 6% of a training step).
pub(crate) fn par_filled(
    len: usize,
    chunk: usize,
    f: impl Fn(usize, &mut [f32]) + Sync + Send,
) -> Vec<f32> {
    use rayon::prelude::*;
    let mut v = Vec::with_capacity(len);
    v.spare_capacity_mut()[..len]
        .par_chunks_mut(chunk.max(1))
        .enumerate()
        .for_each(|(i, part)| {
            part.fill(MaybeUninit::new(0.0));
            // SAFETY: every value of `part` was initialised just above, and
            // `MaybeUninit<f32>` has the layout of `f32`.
            let part = unsafe { &mut *(part as *mut [MaybeUninit<f32>] as *mut [f32]) };
            f(i, part);
        });
    // SAFETY: the chunks cover `0..len` and each was initialised above.
    unsafe { v.set_len(len) };
    v
}

/// `f` of the values at each index of the equally long `inputs`, summed over
/// the indices, component by component. `f` takes and gives eight values at
/// a time (`wide::f32x8`: vector instructions on any target), whose
/// running sums are independent `f32` lanes; each block of 256 indices adds
/// its lanes' totals in `f64`, which bounds the `f32` rounding. Used for the
/// per-channel reductions over pixels. (Scalar code summed into arrays of
/// lanes compiled to scalar instructions: 20-25 GB/s, where the batch-norm
/// output pass streams at over 100.)
///
/// # Panics
///
/// If the inputs differ in length.
#[inline(always)]
pub(crate) fn sum_lanes<const S: usize, const K: usize>(
    inputs: [&[f32]; S],
    f: impl Fn([f32x8; S]) -> [f32x8; K],
) -> [f64; K] {
    const BLOCK: usize = 256;
    let n = inputs.first().map_or(0, |s| s.len());
    assert!(inputs.iter().all(|s| s.len() == n), "equal lengths");
    let mut total = [0.0f64; K];
    for start in (0..n).step_by(BLOCK) {
        let block = inputs.map(|s| &s[start..(start + BLOCK).min(n)]);
        let len = block[0].len();
        let whole = len - len % 8;
        let mut acc = [f32x8::ZERO; K];
        for i in (0..whole).step_by(8) {
            let v = f(block.map(|s| f32x8::new(s[i..i + 8].try_into().unwrap())));
            for (a, v) in acc.iter_mut().zip(v) {
                *a += v;
            }
        }
        if whole < len {
            // The last values, the lanes past them zeroed after `f`.
            let lanes = block.map(|s| padded(&s[whole..]));
            let keep = f32x8::new(std::array::from_fn(|i| {
                f32::from_bits(if i < len - whole { !0 } else { 0 })
            }));
            for (a, v) in acc.iter_mut().zip(f(lanes)) {
                *a += v & keep;
            }
        }
        for (t, a) in total.iter_mut().zip(&acc) {
            *t += a.to_array().iter().map(|&x| x as f64).sum::<f64>();
        }
    }
    total
}

/// Values per task of [`add_values`]: 64 KiB of each operand.
const ADD_CHUNK: usize = 1 << 14;

/// `a + b` value by value, on rayon's pool. Burn's `flex` adds tensors of
/// fewer than 4 Mi values on one thread (its threshold for going parallel),
/// so the recurrent layers' `x + x1` of a batch of patches (1.2 Mi values at
/// the first level) left the other core idle: BENCHMARKS.md.
///
/// # Panics
///
/// If `a` and `b` differ in length.
pub(crate) fn add_values(a: &[f32], b: &[f32]) -> Vec<f32> {
    assert_eq!(a.len(), b.len(), "added values of equal lengths");
    par_filled(a.len(), ADD_CHUNK, |i, out| {
        let at = i * ADD_CHUNK;
        let (a, b) = (&a[at..][..out.len()], &b[at..][..out.len()]);
        map_lanes(out, [a, b], |[x, y]| x + y);
    })
}

/// `sum[i] += b[i]`, on rayon's pool: [`add_values`] into a buffer that
/// is not needed any more, without a new one.
///
/// # Panics
///
/// If `sum` and `b` differ in length.
pub(crate) fn add_to(sum: &mut [f32], b: &[f32]) {
    use rayon::prelude::*;
    assert_eq!(sum.len(), b.len(), "added values of equal lengths");
    sum.par_chunks_mut(ADD_CHUNK)
        .zip(b.par_chunks(ADD_CHUNK))
        .for_each(|(sum, b)| {
            // In the widest vectors, not the baseline's 128-bit ones: 3.2% ->
            // 2.6% of an inference batch's samples in `perf` (memory-bound).
            tile::wide(
                #[inline(always)]
                || {
                    for (s, &v) in sum.iter_mut().zip(b) {
                        *s += v;
                    }
                },
            )
        });
}

/// `out[i] = f(inputs[0][i], ..)` for every index, eight at a time
/// (`wide::f32x8`), the last few through a zero-padded vector: the
/// element-wise twin of [`sum_lanes`], for loops whose selects the compiler
/// would otherwise turn into branches.
///
/// # Panics
///
/// If the inputs and `out` differ in length.
#[inline(always)]
pub(crate) fn map_lanes<const S: usize>(
    out: &mut [f32],
    inputs: [&[f32]; S],
    f: impl Fn([f32x8; S]) -> f32x8,
) {
    let n = out.len();
    assert!(inputs.iter().all(|s| s.len() == n), "equal lengths");
    let whole = n - n % 8;
    for (i, o) in out[..whole].chunks_exact_mut(8).enumerate() {
        let v = f(inputs.map(|s| f32x8::new(s[8 * i..8 * i + 8].try_into().unwrap())));
        o.copy_from_slice(&v.to_array());
    }
    if whole < n {
        let lanes = inputs.map(|s| padded(&s[whole..]));
        out[whole..].copy_from_slice(&f(lanes).to_array()[..n - whole]);
    }
}

/// Fewer than eight values as a vector, zero in the lanes past them.
#[inline(always)]
fn padded(values: &[f32]) -> f32x8 {
    let mut lanes = [0.0f32; 8];
    lanes[..values.len()].copy_from_slice(values);
    f32x8::new(lanes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes_see_every_value_once_whatever_the_length() {
        for n in [0, 1, 7, 8, 9, 255, 256, 263, 1000] {
            let x: Vec<f32> = (0..n).map(|i| (i % 13) as f32 - 4.5).collect();
            let y: Vec<f32> = (0..n).map(|i| (i % 7) as f32 * 0.25).collect();
            let [sx, sxy] = sum_lanes([&x, &y], |[x, y]| [x, x * y]);
            let want_x: f64 = x.iter().map(|&v| v as f64).sum();
            let want_xy: f64 = x.iter().zip(&y).map(|(&a, &b)| (a * b) as f64).sum();
            assert_eq!((sx, sxy), (want_x, want_xy), "n = {n}");
            let mut out = vec![f32::NAN; n];
            map_lanes(&mut out, [&x, &y], |[x, y]| x * y + x);
            let want: Vec<f32> = x.iter().zip(&y).map(|(&a, &b)| a * b + a).collect();
            assert_eq!(out, want, "n = {n}");
        }
    }

    #[test]
    fn added_values_are_the_sums_in_any_chunking() {
        for n in [0, 1, 9, ADD_CHUNK - 3, ADD_CHUNK, 3 * ADD_CHUNK + 5] {
            let x: Vec<f32> = (0..n).map(|i| (i % 13) as f32 - 4.5).collect();
            let y: Vec<f32> = (0..n).map(|i| (i % 7) as f32 * 0.1).collect();
            let want: Vec<f32> = x.iter().zip(&y).map(|(&a, &b)| a + b).collect();
            assert_eq!(add_values(&x, &y), want, "n = {n}");
            let mut sum = x.clone();
            add_to(&mut sum, &y);
            assert_eq!(sum, want, "n = {n}, in place");
        }
    }
}
