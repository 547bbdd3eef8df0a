//! Flags that describe a model, shared by the commands that build one.

use clap::Args;
use r2unet::model::{Architecture, BnMode, Preset, UNetConfig};

/// `--model`, `--preset` and the overrides of a preset.
#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// Model: unet, resunet, runet, r2unet or attr2unet.
    #[arg(long, default_value = "r2unet")]
    pub model: Architecture,
    /// Width preset: retina (16,32,64,128; grey; 48x48) or classic (64..1024; RGB; 256x256).
    #[arg(long, default_value = "retina")]
    pub preset: Preset,
    /// Recurrent steps t of each recurrent layer (recurrent models) [default: 2].
    #[arg(long)]
    pub t: Option<usize>,
    /// Batch norm in the recurrent layers: shared (the PyTorch reference) or per-step
    /// [default: per-step].
    #[arg(long)]
    pub bn: Option<BnMode>,
    /// Comma-separated widths overriding the preset's, e.g. 32,64,128,256.
    #[arg(long, value_delimiter = ',')]
    pub widths: Option<Vec<usize>>,
    /// Input channels overriding the preset's (1 grey, 3 RGB); `train` takes them from the
    /// data (1 after the retina preprocessing).
    #[arg(long)]
    pub in_channels: Option<usize>,
    /// Output channels overriding the preset's (1 for binary segmentation).
    #[arg(long)]
    pub out_channels: Option<usize>,
    /// Patch (or image) side overriding the preset's.
    #[arg(long)]
    pub size: Option<usize>,
}

impl ModelArgs {
    /// The validated model config these flags describe.
    pub fn config(&self) -> anyhow::Result<UNetConfig> {
        let c = self.unchecked();
        c.validate()?;
        Ok(c)
    }

    /// The model the flags describe, not yet checked: `train` checks it at
    /// the run's patch size (which `--size` need not give).
    pub fn unchecked(&self) -> UNetConfig {
        let mut c = self.preset.config(self.model);
        if let Some(t) = self.t {
            c.t = t;
        }
        if let Some(bn) = self.bn {
            c.bn = bn;
        }
        if let Some(w) = &self.widths {
            c.widths = w.clone();
        }
        if let Some(ch) = self.in_channels {
            c.in_channels = ch;
        }
        if let Some(ch) = self.out_channels {
            c.out_channels = ch;
        }
        if let Some(s) = self.size {
            c.patch_size = s;
        }
        c
    }
}
