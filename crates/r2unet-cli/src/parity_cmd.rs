//! `r2unet parity`: replays the PyTorch parity fixtures on a device and prints
//! the largest differences, to trust a GPU (or a new build) before training on it.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use r2unet::device::DeviceChoice;
use r2unet::parity::{TOLERANCE, check_fixture, fixtures_in};

/// Flags of `r2unet parity`.
#[derive(Args, Debug)]
pub struct ParityArgs {
    /// Folder of fixtures written by the PyTorch reference's `export` (one
    /// sub-folder per model; the repository ships them in crates/r2unet/tests/fixtures/parity).
    #[arg(long, default_value = "crates/r2unet/tests/fixtures/parity")]
    fixtures: PathBuf,
    /// Device to replay them on: cpu, or vulkan / wgpu / cuda when compiled in.
    #[arg(long, default_value = "cpu")]
    device: DeviceChoice,
    /// Largest difference from PyTorch that passes.
    #[arg(long, default_value_t = TOLERANCE)]
    tolerance: f32,
    /// Print one JSON object per fixture instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run(args: ParityArgs) -> anyhow::Result<()> {
    let device = args.device.device()?;
    let mut failed = Vec::new();
    if !args.json {
        println!("fixture            eval       train      loss       adam step  tensors  pass");
    }
    for dir in fixtures_in(&args.fixtures)? {
        let report =
            check_fixture(&dir, &device).with_context(|| format!("replaying {}", dir.display()))?;
        let pass = report.passes(args.tolerance);
        if args.json {
            let mut v = serde_json::to_value(&report)?;
            v["device"] = serde_json::json!(args.device.to_string());
            v["pass"] = serde_json::json!(pass);
            println!("{v}");
        } else {
            println!(
                "{:<18} {:<10.2e} {:<10.2e} {:<10.2e} {:<10.2e} {:<8} {}",
                report.fixture,
                report.eval_logits,
                report.train_logits,
                report.loss,
                report.after_step,
                report.tensors_compared,
                if pass { "yes" } else { "NO" }
            );
        }
        if !pass {
            failed.push(report.fixture);
        }
    }
    anyhow::ensure!(
        failed.is_empty(),
        "on {}, {} differ from PyTorch by more than {}: {}",
        args.device,
        failed.len(),
        args.tolerance,
        failed.join(", ")
    );
    Ok(())
}
