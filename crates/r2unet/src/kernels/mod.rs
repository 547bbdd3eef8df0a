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

pub mod burn_ops;
pub mod conv;
pub mod implicit;
pub mod norm_relu;
pub mod resample;
mod tile;
pub mod winograd;

use std::sync::OnceLock;

use burn::tensor::{DType, Device, Tensor};

pub use burn_ops::{batch_norm_relu_train, conv1x1, conv3x3, max_pool2, upsample2};

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

/// Whether `x` lives on the CPU backend in `f32` and the kernels are not
/// switched off with `R2UNET_BURN_KERNELS=1`.
pub(crate) fn own_kernels_apply(x: &Tensor<4>) -> bool {
    static OFF: OnceLock<bool> = OnceLock::new();
    let off =
        *OFF.get_or_init(|| std::env::var_os("R2UNET_BURN_KERNELS").is_some_and(|v| v == "1"));
    !off && x.dtype() == DType::F32 && x.device().inner() == Device::flex()
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
    use std::mem::MaybeUninit;
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

/// `f(i)` summed over `0..n`, component by component: eight interleaved `f32`
/// partial sums over blocks of 256 values, each block's total added in
/// `f64`. One running sum is a chain of dependent additions the compiler must
/// keep in order (a few cycles each); independent lanes vectorise, and the
/// blocks bound the `f32` rounding. Used for the per-channel reductions over
/// pixels; `f` should index slices of length `n` so that its bounds checks
/// fold away.
#[inline(always)]
pub(crate) fn sum_lanes<const K: usize>(n: usize, f: impl Fn(usize) -> [f32; K]) -> [f64; K] {
    const LANES: usize = 8;
    const BLOCK: usize = 256;
    let mut total = [0.0f64; K];
    for start in (0..n).step_by(BLOCK) {
        let end = (start + BLOCK).min(n);
        let whole = start + (end - start) / LANES * LANES;
        let mut acc = [[0.0f32; LANES]; K];
        for i0 in (start..whole).step_by(LANES) {
            for lane in 0..LANES {
                let v = f(i0 + lane);
                for (a, x) in acc.iter_mut().zip(v) {
                    a[lane] += x;
                }
            }
        }
        for i in whole..end {
            for (a, x) in acc.iter_mut().zip(f(i)) {
                a[0] += x;
            }
        }
        for (t, a) in total.iter_mut().zip(&acc) {
            *t += a.iter().map(|&x| x as f64).sum::<f64>();
        }
    }
    total
}
