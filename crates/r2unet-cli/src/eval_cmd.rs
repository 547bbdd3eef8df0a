//! `r2unet eval`: metrics of a trained run on a dataset split.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, ValueEnum};
use r2unet::atomic::write_atomic;
use r2unet::data::Split;
use r2unet::device::DeviceChoice;
use r2unet::eval::evaluate::evaluate;
use r2unet::model::load_model;
use r2unet::train::RunDir;

use crate::data_args::DataArgs;

/// `--checkpoint`.
#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum CheckpointArg {
    /// The checkpoint with the best validation AUC (model selection without test images).
    Best,
    /// The last checkpoint.
    Last,
}

/// Flags of `r2unet eval`.
#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Run folder written by `r2unet train` (weights and preprocessing come from it).
    #[arg(long)]
    run: PathBuf,
    /// Which checkpoint of the run.
    #[arg(long, value_enum, default_value = "best")]
    checkpoint: CheckpointArg,
    #[command(flatten)]
    data: DataArgs,
    /// Split to evaluate: test, val, train or all.
    #[arg(long, default_value = "test")]
    split: Split,
    /// Threshold of the binary metrics.
    #[arg(long, default_value_t = 0.5)]
    threshold: f32,
    /// Folder for report.json.
    #[arg(long, short)]
    out: Option<PathBuf>,
    /// Print the whole report as JSON instead of a summary.
    #[arg(long)]
    json: bool,
    /// Device: cpu, or vulkan / wgpu / cuda when compiled in.
    #[arg(long, default_value = "cpu")]
    device: DeviceChoice,
}

pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.threshold > 0.0 && args.threshold < 1.0,
        "--threshold {}: expected a value in (0, 1)",
        args.threshold
    );
    let device = args.device.device()?;
    let dir = RunDir(args.run.clone());
    let state = dir.read_state()?;
    let weights = match args.checkpoint {
        CheckpointArg::Best => dir.best(),
        CheckpointArg::Last => dir.last(),
    };
    let model = load_model(&weights, &device)?;
    let opts = args.data.options()?;
    let Some((kind, data)) = args.data.source()? else {
        anyhow::bail!("evaluate on a dataset folder: give --dataset and --data");
    };
    let entries = kind.entries(&data, args.split, &opts)?;
    let samples = entries.iter().flat_map(|e| match e.load(&opts) {
        Ok(samples) => samples.into_iter().map(Ok).collect::<Vec<_>>(),
        Err(err) => vec![Err(err)],
    });
    let report = evaluate(&model, &state.preprocess, samples, args.threshold, &device)
        .with_context(|| format!("evaluating {} on {kind} {}", weights.display(), args.split))?;
    let json = serde_json::to_string_pretty(&report)?;
    if let Some(out) = &args.out {
        std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
        write_atomic(&out.join("report.json"), json.as_bytes())?;
    }
    if args.json {
        println!("{json}");
        return Ok(());
    }
    let p = &report.pooled;
    let opt = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.4}"));
    println!(
        "{kind} {} ({} images), {}, threshold {}:",
        args.split,
        report.per_image.len(),
        report.protocol,
        report.threshold
    );
    println!(
        "  pooled  AUC {}  F1 {:.4}  Se {:.4}  Sp {:.4}  Acc {:.4}  Jaccard {:.4}  AP {}",
        opt(p.auc),
        p.f1,
        p.sensitivity,
        p.specificity,
        p.accuracy,
        p.jaccard,
        opt(p.average_precision)
    );
    println!("  {:.2} s per image", report.seconds_per_image);
    Ok(())
}
