//! `r2unet bench`: milliseconds per training or inference step, in the
//! PyTorch reference's JSON fields so `scripts/bench-vs-pytorch.sh` can
//! compare the two.

use clap::{Args, ValueEnum};
use r2unet::bench::{BenchConfig, BenchMode, bench};
use r2unet::device::DeviceChoice;

use crate::infer_args::PrecisionArg;
use crate::model_args::ModelArgs;

/// `--mode`.
#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum BenchModeArg {
    /// Forward, BCE loss, backward and an Adam step.
    Train,
    /// Eval-mode forward pass.
    Infer,
}

/// Flags of `r2unet bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// What one step is.
    #[arg(long, value_enum, default_value = "train")]
    mode: BenchModeArg,
    /// Patches per step.
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Timed steps (the median is reported).
    #[arg(long, default_value_t = 5)]
    steps: usize,
    /// Untimed steps first.
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// Seed of the weights and inputs.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Device: cpu, or vulkan / wgpu / cuda when compiled in.
    #[arg(long, default_value = "cpu")]
    device: DeviceChoice,
    /// Data-parallel training step across these devices, as `train --devices`
    /// (cpu,cpu: two replicas on the one CPU). Overrides --device.
    #[arg(long, value_name = "LIST")]
    devices: Option<String>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Arithmetic of the 3x3 convolutions: bf16 on CPUs with AVX512_BF16 (in
    /// training as `train --precision`).
    #[arg(long, value_enum, default_value = "f32")]
    precision: PrecisionArg,
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let config = args.model.config()?;
    args.precision.apply(args.device)?;
    let devices = match &args.devices {
        Some(list) => r2unet::device::parse_devices(list)?,
        None => vec![args.device.device()?],
    };
    let device_name = args.devices.clone().unwrap_or(args.device.to_string());
    let bench_config = BenchConfig {
        mode: match args.mode {
            BenchModeArg::Train => BenchMode::Train,
            BenchModeArg::Infer => BenchMode::Infer,
        },
        batch: args.batch,
        size: config.patch_size,
        steps: args.steps,
        warmup: args.warmup,
        seed: args.seed,
    };
    let r = bench(&config, &bench_config, &devices)?;
    if args.json {
        let mut v = serde_json::to_value(&r)?;
        v["model"] = serde_json::json!(config.architecture.to_string());
        v["widths"] = serde_json::json!(config.widths);
        v["t"] = serde_json::json!(config.t);
        v["bn"] = serde_json::json!(config.bn.to_string());
        v["threads"] = serde_json::json!(rayon::current_num_threads());
        v["device"] = serde_json::json!(device_name);
        v["precision"] = serde_json::json!(format!("{:?}", args.precision).to_lowercase());
        println!("{v}");
        return Ok(());
    }
    println!(
        "{} {} step, batch {} of {}x{} on {} ({} threads, {} kernels, {:?}): median {:.1} ms, \
         min {:.1} ms, {:.1} patches/s, {:.1} GFLOP/s (convolutions)",
        config.architecture,
        args.mode
            .to_possible_value()
            .map_or("?".into(), |v| v.get_name().to_string()),
        r.batch,
        r.size,
        r.size,
        device_name,
        rayon::current_num_threads(),
        r.isa,
        args.precision,
        r.median_ms,
        r.min_ms,
        r.patches_per_s,
        r.gflop_per_s
    );
    Ok(())
}
