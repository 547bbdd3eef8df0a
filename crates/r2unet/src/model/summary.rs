//! Architecture summary: parameters and convolution FLOPs of a config.

use serde::Serialize;

use super::config::UNetConfig;
use super::unet::UNet;

/// What `r2unet info` prints.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Architecture name (`unet`, `r2unet`, ...).
    pub model: String,
    /// Preset name, when the config came from one.
    pub preset: Option<String>,
    /// Recurrent steps.
    pub t: usize,
    /// Batch-norm mode of the recurrent layers.
    pub bn: String,
    /// Encoder widths.
    pub widths: Vec<usize>,
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Trained parameters (as PyTorch counts them).
    pub params: usize,
    /// Batch-norm running statistics (not trained, but stored).
    pub buffers: usize,
    /// Patch side the FLOPs refer to.
    pub patch_size: usize,
    /// Forward convolution GFLOP (2 per multiply-add) for one patch.
    pub gflop_per_patch: f64,
}

impl Summary {
    /// Summarises `model` (built from its config), naming `preset` if given.
    pub fn of(model: &UNet, preset: Option<&str>) -> Self {
        let c = &model.config;
        let params = model.num_trainable_params();
        let s = c.patch_size;
        Summary {
            model: c.architecture.name().to_string(),
            preset: preset.map(str::to_string),
            t: c.t,
            bn: c.bn.name().to_string(),
            widths: c.widths.clone(),
            in_channels: c.in_channels,
            out_channels: c.out_channels,
            params,
            buffers: burn::module::Module::num_params(model) - params,
            patch_size: s,
            gflop_per_patch: conv_flops(c, s, s) as f64 / 1e9,
        }
    }
}

/// Forward convolution FLOPs (2 per multiply-add, the PyTorch reference's
/// count) of one `h x w` input, from the config alone.
pub fn conv_flops(c: &UNetConfig, h: usize, w: usize) -> u64 {
    let conv = |k: usize, cin: usize, cout: usize, level: usize| -> u64 {
        let pixels = (h >> level) * (w >> level);
        2 * (k * k * cin * cout * pixels) as u64
    };
    let kind = c.architecture.block();
    let steps = kind.steps(c.t);
    let block = |cin: usize, cout: usize, level: usize| -> u64 {
        if kind.has_projection() {
            conv(1, cin, cout, level) + 2 * (steps as u64 + 1) * conv(3, cout, cout, level)
        } else {
            conv(3, cin, cout, level) + conv(3, cout, cout, level)
        }
    };
    let mut total = 0;
    let mut cin = c.in_channels;
    for (level, &width) in c.widths.iter().enumerate() {
        total += block(cin, width, level);
        cin = width;
    }
    for (level, pair) in c.widths.windows(2).enumerate() {
        let (lo, hi) = (pair[0], pair[1]);
        total += conv(3, hi, lo, level) + block(2 * lo, lo, level);
        if c.architecture.attention() {
            let inner = (lo / 2).max(1);
            total += 2 * conv(1, lo, inner, level) + conv(1, inner, 1, level);
        }
    }
    total + conv(1, c.widths[0], c.out_channels, 0)
}
