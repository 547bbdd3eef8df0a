//! `r2unet info`: the architecture summary of a model config.

use anyhow::Context;
use clap::Args;
use r2unet::device::DeviceChoice;
use r2unet::model::{Architecture, BnMode, Preset, Summary, UNetConfig};

/// Flags of `r2unet info`.
#[derive(Args, Debug)]
pub struct InfoArgs {
    /// Model: unet, resunet, runet, r2unet or attr2unet.
    #[arg(long, default_value = "r2unet")]
    model: Architecture,
    /// Width preset: retina (16,32,64,128; grey; 48x48) or classic (64..1024; RGB; 256x256).
    #[arg(long, default_value = "retina")]
    preset: Preset,
    /// Recurrent steps t of each recurrent layer (recurrent models).
    #[arg(long)]
    t: Option<usize>,
    /// Batch norm in the recurrent layers: shared (PyTorch reference) or per-step.
    #[arg(long)]
    bn: Option<BnMode>,
    /// Comma-separated widths overriding the preset's, e.g. 32,64,128,256.
    #[arg(long, value_delimiter = ',')]
    widths: Option<Vec<usize>>,
    /// Input channels overriding the preset's.
    #[arg(long)]
    in_channels: Option<usize>,
    /// Patch side for the FLOP count, overriding the preset's.
    #[arg(long)]
    size: Option<usize>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

impl InfoArgs {
    fn config(&self) -> anyhow::Result<UNetConfig> {
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
        if let Some(s) = self.size {
            c.patch_size = s;
        }
        c.validate()?;
        Ok(c)
    }
}

pub fn run(args: InfoArgs) -> anyhow::Result<()> {
    let config = args.config()?;
    let device = DeviceChoice::Cpu.device()?;
    let model = config.init(&device);
    let summary = Summary::of(&model, Some(args.preset.name()));
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&summary).context("serialising the summary")?
        );
        return Ok(());
    }
    let s = &summary;
    println!(
        "model        {} (t = {}, batch norm {})",
        s.model, s.t, s.bn
    );
    println!("preset       {}", args.preset.name());
    println!("widths       {:?} (depth {})", s.widths, s.widths.len());
    println!(
        "channels     {} in, {} out (logits)",
        s.in_channels, s.out_channels
    );
    println!(
        "parameters   {} trained, {} batch-norm running statistics",
        s.params, s.buffers
    );
    println!(
        "forward      {:.4} GFLOP per {}x{} patch (convolutions, 2 per multiply-add)",
        s.gflop_per_patch, s.patch_size, s.patch_size
    );
    Ok(())
}
