//! `r2unet reproduce`: the paper's results table from shipped weights (or
//! retrained with `--train`), beside the paper's numbers.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Args;
use r2unet::data::DatasetKind;
use r2unet::device::DeviceChoice;
use r2unet::model::Architecture;
use r2unet::reproduce::table::{Plan, build, shipped};
use r2unet::reproduce::{Budget, dataset_dir, loo, train_config};
use r2unet::train::{RunDir, TrainConfig, Trainer, provenance};

use crate::train_cmd::train;

/// Flags of `r2unet reproduce`.
#[derive(Args, Debug)]
pub struct ReproduceArgs {
    /// Data root holding DRIVE/, STARE/, CHASE_DB1/, PH2/, LUNG/ (as ../shared/data).
    #[arg(long)]
    data: PathBuf,
    /// Datasets, comma-separated: drive, stare, chase, ph2, lung.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "drive,stare,chase,ph2,lung"
    )]
    datasets: Vec<DatasetKind>,
    /// Models, comma-separated: unet, resunet, runet, r2unet, attr2unet.
    #[arg(long, value_delimiter = ',', default_value = "r2unet")]
    models: Vec<Architecture>,
    /// Train each model (resuming runs already in OUT/runs/) instead of using shipped weights.
    #[arg(long)]
    train: bool,
    /// Override the training epochs of every run (quick checks).
    #[arg(long)]
    epochs: Option<usize>,
    /// Override the patches per image of retina runs (quick checks).
    #[arg(long)]
    patches_per_image: Option<usize>,
    /// Folder of shipped weights, named <dataset>-<model>.safetensors; a
    /// <dataset>-<model>-long.safetensors there (a longer training budget) is
    /// a row of its own.
    #[arg(long, default_value = "weights")]
    weights_dir: PathBuf,
    /// Output folder: results.json, results.md, one report folder per row, runs/.
    #[arg(long, short, default_value = "reproduce")]
    out: PathBuf,
    /// Bootstrap resamples for the 95% intervals.
    #[arg(long, default_value_t = 1000)]
    bootstrap: usize,
    /// Device: cpu, or vulkan / wgpu / cuda when compiled in.
    #[arg(long, default_value = "cpu")]
    device: DeviceChoice,
    /// `standard`: each dataset's standard split and shipped (or --train) model.
    /// `loo`: leave-one-out (the paper's STARE protocol): one model per image, trained
    /// on all the others (fine-tuned from --weights-dir's drive-<model>.safetensors when
    /// present) and tested on it; resumable fold by fold.
    #[arg(long, value_enum, default_value = "standard")]
    protocol: ProtocolArg,
    /// With --protocol loo: stop after training this many more folds (the summary
    /// covers every finished fold).
    #[arg(long, value_name = "N")]
    max_folds: Option<usize>,
    /// With --protocol loo: `long` fine-tunes every fold from
    /// drive-<model>-long.safetensors (required) instead of the default-budget
    /// DRIVE model, in folders named <dataset>-<model>-long-loo.
    #[arg(long, value_enum, default_value = "default")]
    budget: BudgetArg,
    /// With --protocol loo: segment each left-out image with flip TTA (the image
    /// and its three flips averaged), in folders named <dataset>-<model>[-long]-tta-loo;
    /// the folds train as without it. (A standard row with TTA: `r2unet eval --tta`.)
    #[arg(long)]
    tta: bool,
}

/// `--budget`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum BudgetArg {
    /// Start from the default-budget DRIVE model.
    Default,
    /// Start from the longer-budget DRIVE model.
    Long,
}

impl From<BudgetArg> for Budget {
    fn from(b: BudgetArg) -> Self {
        match b {
            BudgetArg::Default => Budget::Default,
            BudgetArg::Long => Budget::Long,
        }
    }
}

/// `--protocol`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum ProtocolArg {
    /// The standard split of each dataset.
    Standard,
    /// Leave-one-out.
    Loo,
}

impl ReproduceArgs {
    /// A run's budget with --epochs and (retina only) --patches-per-image applied.
    fn adjust(&self, mut config: TrainConfig) -> TrainConfig {
        if let Some(e) = self.epochs {
            config.epochs = e;
        }
        if let Some(p) = self.patches_per_image
            && config.dataset.is_retina()
        {
            config.patches_per_image = p;
        }
        config
    }
}

/// `--train`: the default-budget model of one row, trained (or its run in
/// OUT/runs/ resumed), and its provenance.
fn train_row(
    args: &ReproduceArgs,
    kind: DatasetKind,
    model: Architecture,
    dir: &Path,
    device: &r2unet::device::Device,
) -> anyhow::Result<(PathBuf, Option<serde_json::Value>)> {
    let name = format!("{kind}-{model}");
    let run = RunDir(args.out.join("runs").join(&name));
    let trainer = if run.state().exists() {
        Trainer::resume(run.clone(), device)?
    } else {
        Trainer::new(
            args.adjust(train_config(kind, model, dir)),
            run.clone(),
            device,
        )?
    };
    eprintln!("training {name} in {}", run.0.display());
    train(trainer, &run.0)?;
    Ok((run.best(), Some(provenance(&run.0, &run.best())?)))
}

/// `--protocol loo`: every dataset and model by leave-one-out.
fn run_loo(args: &ReproduceArgs) -> anyhow::Result<()> {
    let device = args.device.device()?;
    for &kind in &args.datasets {
        let dir = dataset_dir(&args.data, kind).ok_or_else(|| {
            anyhow::anyhow!("{kind}: no folder for it under {}", args.data.display())
        })?;
        for &model in &args.models {
            let plan = loo::Plan {
                kind,
                model,
                budget: args.budget.into(),
                data: &dir,
                out: &args.out,
                weights_dir: &args.weights_dir,
                max_folds: args.max_folds,
                tta: args.tta,
            };
            eprintln!(
                "{}: folds in {}, their runs in {}{}",
                plan.name(),
                plan.folds_dir().display(),
                plan.runs_dir().display(),
                plan.init()?.map_or(String::new(), |w| format!(
                    ", fine-tuned from {}",
                    w.display()
                ))
            );
            let summary = loo::run(&plan, &|c| args.adjust(c), &device, &mut |trainer, run| {
                train(trainer, run).map_err(|e| {
                    r2unet::Error::invalid(
                        "training",
                        format!(
                            "{e:#} (or run the same reproduce command again: \
                             it continues this fold)"
                        ),
                    )
                })
            })
            .with_context(|| format!("leave-one-out of {model} on {kind}"))?;
            println!("{}", summary.markdown());
        }
    }
    Ok(())
}

pub fn run(args: ReproduceArgs) -> anyhow::Result<()> {
    if args.protocol == ProtocolArg::Loo {
        return run_loo(&args);
    }
    anyhow::ensure!(
        !args.tta,
        "--tta is for --protocol loo; a standard row with flip TTA: `r2unet eval --weights \
         W --dataset D --data DIR --tta`"
    );
    anyhow::ensure!(
        args.budget == BudgetArg::Default,
        "--budget long is for --protocol loo: the standard table has a row for every \
         shipped <dataset>-<model>-long.safetensors already"
    );
    let device = args.device.device()?;
    let plan = Plan {
        data: &args.data,
        datasets: &args.datasets,
        models: &args.models,
        weights_dir: &args.weights_dir,
        // A longer-budget model is never trained by --train: its budget is hours.
        long_rows: !args.train,
        out: &args.out,
        resamples: args.bootstrap,
    };
    let table = build(
        &plan,
        &mut |kind, model, budget, dir| {
            if args.train && budget == Budget::Default {
                train_row(&args, kind, model, dir, &device)
                    .map_err(|e| r2unet::Error::invalid("training", format!("{e:#}")))
            } else {
                shipped(&args.weights_dir, kind, model, budget)
            }
        },
        &device,
        &mut |row| {
            eprintln!(
                "{} {}: F1 {:.4}, AUC {}",
                row.dataset,
                row.model,
                row.f1,
                row.auc.map_or("n/a".into(), |v| format!("{v:.4}"))
            )
        },
    )?;
    println!("{}", table.markdown);
    for s in &table.skipped {
        println!("skipped {s}");
    }
    println!(
        "written: {}, {} and {}",
        args.out.join("results.json").display(),
        args.out.join("results.md").display(),
        table.examples.display()
    );
    anyhow::ensure!(!table.rows.is_empty(), "no row could be produced");
    Ok(())
}
