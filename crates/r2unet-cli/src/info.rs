//! `r2unet info`: the architecture summary of a model config.

use anyhow::Context;
use clap::Args;
use r2unet::device::DeviceChoice;
use r2unet::model::Summary;

use crate::model_args::ModelArgs;

/// Flags of `r2unet info`.
#[derive(Args, Debug)]
pub struct InfoArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Device to build the model on: cpu, or vulkan / wgpu / cuda when compiled in.
    #[arg(long, default_value = "cpu")]
    device: DeviceChoice,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(args: InfoArgs) -> anyhow::Result<()> {
    let config = args.model.config()?;
    let device = args.device.device()?;
    let model = config.init(&device);
    let summary = Summary::of(&model, Some(args.model.preset.name()));
    if args.json {
        let json = serde_json::to_string(&summary).context("serialising the summary")?;
        println!("{json}");
        return Ok(());
    }
    let s = &summary;
    if config.architecture.block().steps(s.t) > 0 {
        println!(
            "model        {} (t = {}, batch norm {})",
            s.model, s.t, s.bn
        );
    } else {
        println!("model        {} (no recurrence: t does not apply)", s.model);
    }
    println!("preset       {}", args.model.preset.name());
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
    println!("device       {}", args.device);
    Ok(())
}
