//! `r2unet eval`: metrics of a trained model on a dataset split, with a
//! report folder (JSON, Markdown, curves, per-image pictures).

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, ValueEnum};
use r2unet::data::{SampleIter, Split};
use r2unet::device::DeviceChoice;
use r2unet::eval::evaluate::{EvalOptions, EvalReport, tune_threshold};
use r2unet::eval::report::{ReportOut, evaluate_into};
use r2unet::segment::TrainedModel;
use r2unet::train::curve::{epoch_curve, read_curve, write_curve};
use r2unet::train::prepare::held_out_samples;
use r2unet::train::{RunDir, trained_on_every_image};

use crate::data_args::DataArgs;
use crate::infer_args::InferArgs;

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
    #[arg(long, conflicts_with = "weights", required_unless_present = "weights")]
    run: Option<PathBuf>,
    /// A weights file (safetensors with its preprocessing recorded, as `r2unet export` writes).
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Which checkpoint of the run.
    #[arg(long, value_enum, default_value = "best")]
    checkpoint: CheckpointArg,
    /// Evaluate every epoch model the run kept (`train --keep-epochs`) at
    /// threshold 0.5, for accuracy against patches seen: prints a line per
    /// epoch and, with --out, writes curve.csv, curve.json and curve.png;
    /// epochs already in --out's curve.json are kept, not evaluated again.
    /// Measures only; the run's chosen model stays its best validation one.
    #[arg(long, requires = "run", conflicts_with_all = ["checkpoint", "bootstrap", "tune_on", "threshold"])]
    every_epoch: bool,
    #[command(flatten)]
    data: DataArgs,
    /// Split to evaluate: test, val, train or all.
    #[arg(long, default_value = "test")]
    split: Split,
    /// Evaluate on the training images the run held out whole for
    /// validation (whole-image tasks: PH2, lung CT, folders), read from the
    /// run's own configuration: a threshold or inference options (--tta,
    /// --mode) chosen there never sees the test images. No threshold is tuned.
    #[arg(
        long,
        requires = "run",
        conflicts_with_all = ["split", "dataset", "data", "tune_on", "every_epoch"]
    )]
    held_out: bool,
    /// Fixed threshold of the binary metrics, in (0, 1).
    #[arg(long, default_value_t = 0.5)]
    threshold: f32,
    /// Where to choose the F1-optimal threshold, also reported: auto (the
    /// validation split if the dataset has one, else train), train, val, or none.
    /// Never the evaluated split.
    #[arg(long, default_value = "auto")]
    tune_on: String,
    /// Bootstrap resamples over images for 95% intervals (0: none).
    #[arg(long, default_value_t = 1000)]
    bootstrap: usize,
    /// Seed of the bootstrap.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Images segmented at once, each in its own thread (1: one at a time, least memory).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=64))]
    concurrent_images: u64,
    /// Report folder: report.json, report.md, roc.png, pr.png, images/.
    #[arg(long, short)]
    out: Option<PathBuf>,
    /// Skip the per-image probability, mask and overlay PNGs.
    #[arg(long)]
    no_pictures: bool,
    /// Print the whole report as JSON instead of a summary.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    infer: InferArgs,
    /// Device: cpu, or vulkan / wgpu / cuda when compiled in.
    #[arg(long, default_value = "cpu")]
    device: DeviceChoice,
}

/// The one-screen summary of a report.
pub fn print_summary(report: &EvalReport, header: &str) {
    let opt = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.4}"));
    println!("{header} ({} images), {}:", report.images, report.protocol);
    for at in std::iter::once(&report.fixed).chain(&report.tuned) {
        let p = &at.pooled;
        let f1_ci = at.ci.map_or(String::new(), |c| {
            format!(" [{:.4}, {:.4}]", c.f1.lo, c.f1.hi)
        });
        println!(
            "  threshold {:.4} ({}): F1 {:.4}{f1_ci}  Se {:.4}  Sp {:.4}  Acc {:.4}  Jaccard {:.4}",
            at.threshold, at.chosen_on, p.f1, p.sensitivity, p.specificity, p.accuracy, p.jaccard
        );
    }
    let auc_ci = report
        .fixed
        .ci
        .and_then(|c| c.auc)
        .map_or(String::new(), |i| format!(" [{:.4}, {:.4}]", i.lo, i.hi));
    println!(
        "  pooled AUC {}{auc_ci}  AP {}; {:.2} s per image",
        opt(report.fixed.pooled.auc),
        opt(report.fixed.pooled.average_precision),
        report.seconds_per_image
    );
}

/// The model from `--run` (its best or last checkpoint) or `--weights`, and the file it came from.
pub fn load_trained(
    run: Option<&Path>,
    weights: Option<&Path>,
    best: bool,
    device: &r2unet::device::Device,
) -> anyhow::Result<(TrainedModel, PathBuf)> {
    let path = match (run, weights) {
        (Some(run), _) => {
            let dir = RunDir(run.to_path_buf());
            if best { dir.best() } else { dir.last() }
        }
        (None, Some(w)) => w.to_path_buf(),
        (None, None) => anyhow::bail!("give --run RUN_DIR or --weights FILE"),
    };
    Ok((TrainedModel::load(&path, device)?, path))
}

pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.threshold > 0.0 && args.threshold < 1.0,
        "--threshold {}: expected a value in (0, 1)",
        args.threshold
    );
    let device = args.device.device()?;
    args.infer.precision.apply(args.device)?;
    if args.every_epoch {
        return every_epoch(&args, &device);
    }
    let best = matches!(args.checkpoint, CheckpointArg::Best);
    let (trained, weights) =
        load_trained(args.run.as_deref(), args.weights.as_deref(), best, &device)?;
    let TrainedModel {
        model, preprocess, ..
    } = trained;
    let inference = args.infer.inference(
        model.config.size_multiple(),
        args.concurrent_images as usize,
    )?;
    // The images: the run's held-out ones, or the split (with a threshold
    // tuned on another split).
    let (header, tuned, samples) = match args.run.as_deref().filter(|_| args.held_out) {
        Some(run) => {
            let config = RunDir(run.to_path_buf()).read_config()?;
            let images = held_out_samples(&config)?;
            let samples: SampleIter = Box::new(images.into_iter().map(Ok));
            (format!("{} held-out", config.dataset), None, samples)
        }
        None => {
            if args.split != Split::All && trained_on_every_image(&weights)? {
                eprintln!(
                    "warning: {} was trained on every image of its dataset (train --all-images), \
                     the {} split included: on that dataset these metrics are not held out",
                    weights.display(),
                    args.split
                );
            }
            let data = args.data.resolve(preprocess.hu_window())?;
            let name = data.name();
            let tune_split = match args.tune_on.as_str() {
                "none" => None,
                // `all` overlaps every split (and a flat folder's `train` is `all`): no tuning.
                "auto" if args.split == Split::All => None,
                "auto" => [Split::Val, Split::Train]
                    .into_iter()
                    .find(|&s| s != args.split && data.samples(s).is_ok()),
                other => {
                    let s: Split = other
                        .parse()
                        .map_err(|e| anyhow::anyhow!("--tune-on {other}: {e}; or auto / none"))?;
                    anyhow::ensure!(
                        s != args.split && s != Split::All && args.split != Split::All,
                        "--tune-on {s}: the threshold must be chosen on other images than the evaluated {} split",
                        args.split
                    );
                    Some(s)
                }
            };
            let tuned = match tune_split {
                Some(s) => {
                    let images = data.samples(s)?;
                    let on = format!("F1-optimal on {name} {s}");
                    eprintln!("choosing the F1-optimal threshold on {name} {s} ...");
                    Some(tune_threshold(
                        &model,
                        &preprocess,
                        &inference,
                        images,
                        &on,
                        &device,
                    )?)
                }
                None => None,
            };
            let header = format!("{name} {}", args.split);
            (header, tuned, data.samples(args.split)?)
        }
    };
    let eval_opts = EvalOptions {
        inference,
        threshold: args.threshold,
        tuned,
        resamples: args.bootstrap,
        seed: args.seed,
        concurrent_images: args.concurrent_images as usize,
    };
    let out = args.out.as_deref().map(|dir| ReportOut {
        dir,
        pictures: !args.no_pictures,
        title: format!("{header} — {}", weights.display()),
    });
    let report = evaluate_into(
        &model,
        &preprocess,
        samples,
        &eval_opts,
        out.as_ref(),
        &device,
    )
    .with_context(|| format!("evaluating {} on {header}", weights.display()))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_summary(&report, &header);
        if let Some(out) = &args.out {
            println!("  report: {}", out.join("report.md").display());
        }
    }
    Ok(())
}

/// `eval --every-epoch`: the run's kept epoch models on the split.
fn every_epoch(args: &EvalArgs, device: &r2unet::device::Device) -> anyhow::Result<()> {
    let run = args.run.as_deref().expect("clap requires --run");
    let config = RunDir(run.to_path_buf()).read_config()?;
    let inference = args.infer.inference(
        config.model.size_multiple(),
        args.concurrent_images as usize,
    )?;
    let data = args.data.resolve(Some(config.load.hu_window))?;
    let samples = data
        .samples(args.split)?
        .collect::<r2unet::Result<Vec<_>>>()?;
    // Epochs measured before (their models may be gone) are kept, not redone.
    let known = match &args.out {
        Some(out) => read_curve(out)?,
        None => Vec::new(),
    };
    let points = epoch_curve(run, &samples, &inference, device, known)
        .with_context(|| format!("evaluating the epoch models of {}", run.display()))?;
    let what = format!("{} {} ({} images)", data.name(), args.split, samples.len());
    println!("{what}, threshold 0.5, pooled:");
    println!("  epoch  patches seen  validation AUC      F1     AUC");
    let opt = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.4}"));
    for p in &points {
        println!(
            "  {:>5}  {:>12}  {:>14}  {:.4}  {}",
            p.epoch,
            p.patches_seen.map_or("n/a".into(), |n| n.to_string()),
            opt(p.val_auc),
            p.metrics.f1,
            opt(p.metrics.auc)
        );
    }
    if let Some(out) = &args.out {
        write_curve(out, &points, &what)?;
        println!("  curve: {}", out.join("curve.png").display());
    }
    Ok(())
}
