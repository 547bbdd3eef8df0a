//! Flags of whole-image inference, shared by `eval`, `predict` and `demo`.

use clap::{Args, ValueEnum};
use r2unet::infer::{Blend, InferMode, Inference, SlidingWindow};

/// `--mode`.
#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum ModeArg {
    /// The whole image at once, reflect-padded to a multiple of 2^(depth-1) (fast).
    Single,
    /// Overlapping windows blended together (the paper's patch stitching).
    Sliding,
}

/// `--blend`.
#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum BlendArg {
    /// Every window pixel weighs the same.
    Mean,
    /// Window centres weigh more (sigma = window/8).
    Gaussian,
}

/// How probability maps are produced.
#[derive(Args, Debug, Clone)]
pub struct InferArgs {
    /// Inference mode.
    #[arg(long, value_enum, default_value = "single")]
    pub mode: ModeArg,
    /// Sliding window side in pixels (a multiple of 2^(depth-1)).
    #[arg(long, default_value_t = 48)]
    pub window: usize,
    /// Step between sliding windows, 1..=window.
    #[arg(long, default_value_t = 8)]
    pub stride: usize,
    /// Blending of overlapping windows.
    #[arg(long, value_enum, default_value = "gaussian")]
    pub blend: BlendArg,
    /// Windows per forward pass.
    #[arg(long, default_value_t = 32)]
    pub window_batch: usize,
    /// Flip test-time augmentation: average over the image and its 3 flips (4x slower).
    #[arg(long)]
    pub tta: bool,
}

impl InferArgs {
    /// The validated settings for a model whose sizes must be multiples of `size_multiple`.
    pub fn inference(&self, size_multiple: usize) -> anyhow::Result<Inference> {
        let mode = match self.mode {
            ModeArg::Single => InferMode::SinglePass,
            ModeArg::Sliding => {
                let sliding = SlidingWindow {
                    window: self.window,
                    stride: self.stride,
                    blend: match self.blend {
                        BlendArg::Mean => Blend::Mean,
                        BlendArg::Gaussian => Blend::Gaussian,
                    },
                    batch: self.window_batch,
                };
                sliding
                    .validate(size_multiple)
                    .map_err(|e| anyhow::anyhow!("{e} (--window, --stride, --window-batch)"))?;
                InferMode::Sliding(sliding)
            }
        };
        Ok(Inference {
            mode,
            flip_tta: self.tta,
        })
    }
}
