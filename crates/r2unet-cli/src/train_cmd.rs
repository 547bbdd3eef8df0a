//! `r2unet train`: train a model of the family on a dataset, into a run folder.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use anyhow::Context;
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use r2unet::device::DeviceChoice;
use r2unet::train::{Event, LossKind, Outcome, RunDir, RunState, Schedule, TrainConfig, Trainer};

use crate::data_args::DataArgs;
use crate::infer_args::PrecisionArg;
use crate::model_args::ModelArgs;

/// `--loss`.
#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum LossArg {
    /// Binary cross-entropy on logits (the paper's).
    Bce,
    /// Soft Dice.
    Dice,
    /// BCE + Dice.
    BceDice,
}

/// `--schedule`.
#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum ScheduleArg {
    /// Constant learning rate.
    Constant,
    /// Cosine decay to 1% of --lr.
    Cosine,
    /// One cycle (PyTorch's OneCycleLR defaults): from --lr/25 up to --lr over
    /// the first 30% of the steps, then down to --lr/250,000.
    OneCycle,
}

/// Flags of `r2unet train`.
#[derive(Args, Debug)]
pub struct TrainArgs {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    model: ModelArgs,
    /// Run folder: config.json, checkpoints, metrics.csv.
    #[arg(long, short)]
    out: Option<PathBuf>,
    /// Continue the run in this folder from its last checkpoint (other flags are ignored
    /// except --device and --threads).
    #[arg(long, conflicts_with = "out")]
    resume: Option<PathBuf>,
    /// Passes over the training patches [default: 10].
    #[arg(long)]
    epochs: Option<usize>,
    /// Random patches per training image (retina protocol); whole-image tasks use each
    /// image once [default: 600].
    #[arg(long)]
    patches_per_image: Option<usize>,
    /// The paper's full training budget: 190,000 patches from DRIVE's 20 images (9,500
    /// each), batch 32, 50 epochs; refuses --epochs, --patches-per-image and --batch-size.
    #[arg(long, value_parser = ["paper"])]
    protocol: Option<String>,
    /// Patches per optimizer step [default: 32].
    #[arg(long)]
    batch_size: Option<usize>,
    /// Adam learning rate.
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// Learning-rate schedule.
    #[arg(long, value_enum, default_value = "cosine")]
    schedule: ScheduleArg,
    /// Loss on logits.
    #[arg(long, value_enum, default_value = "bce")]
    loss: LossArg,
    /// Weight of vessel (positive) pixels in BCE.
    #[arg(long)]
    pos_weight: Option<f64>,
    /// Fraction of training patches held out for validation.
    #[arg(long, default_value_t = 0.1)]
    val_fraction: f32,
    /// Seed of sampling, initialisation and augmentation.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Turn off flips, rotations and intensity jitter.
    #[arg(long)]
    no_augment: bool,
    /// Patch side (retina) or resized image side (whole-image tasks) [default: 48 / 256;
    /// same as --size].
    #[arg(long)]
    patch_size: Option<usize>,
    /// Images of the synthetic set (--dataset synthetic).
    #[arg(long, default_value_t = 20)]
    synthetic_images: usize,
    /// Also checkpoint every this many minutes within an epoch (0: per epoch only).
    #[arg(long, default_value_t = 10.0)]
    checkpoint_minutes: f64,
    /// Start from these weights instead of a random initialisation (fine-tuning, e.g.
    /// the shipped DRIVE model on other fundus images); the model comes from the
    /// file, so the model flags are ignored.
    #[arg(long, value_name = "WEIGHTS")]
    init: Option<PathBuf>,
    /// Train on every image of the dataset, its test split included, leaving
    /// none to test on: for a model to deploy once the standard split has
    /// measured the recipe. Not with --leave-out.
    #[arg(long, conflicts_with = "leave_out")]
    all_images: bool,
    /// Keep every epoch's model (epoch-NNN.safetensors, about 2.5 MB each) in
    /// the run folder, to evaluate accuracy against patches seen afterwards
    /// with `eval --run RUN --every-epoch`.
    #[arg(long)]
    keep_epochs: bool,
    /// Arithmetic of the 3x3 convolutions (CPU): bf16 rounds the operands of their
    /// forward passes and input gradients (and on AMX tiles of their weight gradients) to
    /// bfloat16 with f32 sums (AVX512_BF16; fast only on AMX, see BENCHMARKS.md); batch
    /// norm, the loss, Adam and the weights stay f32. Recorded in the run (resume keeps it).
    #[arg(long, value_enum, default_value = "f32")]
    precision: PrecisionArg,
    /// Device: cpu, or vulkan / wgpu / cuda when compiled in.
    #[arg(long, default_value = "cpu")]
    device: DeviceChoice,
    /// Data-parallel training: split every batch across these devices, comma-separated
    /// NAME or NAME:INDEX (cuda:0,cuda:1 or vulkan:0,vulkan:1; cpu,cpu runs two replicas
    /// on the one CPU). Overrides --device. Batch norm then sees per-device statistics.
    #[arg(long, value_name = "LIST")]
    devices: Option<String>,
}

impl TrainArgs {
    fn config(&self) -> anyhow::Result<TrainConfig> {
        // Checked with the whole config (`Trainer::new`), at the run's patch
        // size; with --init the file's model replaces it.
        let mut config = TrainConfig::new(self.data.source()?, self.model.unchecked());
        if let Some(size) = self.patch_size.or(self.model.size) {
            config = config.with_patch_size(size);
        }
        if let Some(weights) = &self.init {
            config = config.with_init(weights.clone())?;
        }
        if self.protocol.is_some() {
            let explicit = [
                ("--epochs", self.epochs),
                ("--patches-per-image", self.patches_per_image),
                ("--batch-size", self.batch_size),
            ];
            if let Some((flag, _)) = explicit.iter().find(|(_, v)| v.is_some()) {
                anyhow::bail!(
                    "--protocol paper fixes the budget (50 epochs of 9,500 patches per image, \
                     batch 32); {flag} would change it: drop one of the two"
                );
            }
            config = config.with_paper_budget();
        }
        config.epochs = self.epochs.unwrap_or(config.epochs);
        config.patches_per_image = self.patches_per_image.unwrap_or(config.patches_per_image);
        config.batch_size = self.batch_size.unwrap_or(config.batch_size);
        Ok(TrainConfig {
            synthetic_images: self.synthetic_images,
            load: self.data.options()?,
            lr: self.lr,
            schedule: match self.schedule {
                ScheduleArg::Constant => Schedule::Constant,
                ScheduleArg::Cosine => Schedule::Cosine,
                ScheduleArg::OneCycle => Schedule::OneCycle,
            },
            loss: match self.loss {
                LossArg::Bce => LossKind::Bce,
                LossArg::Dice => LossKind::Dice,
                LossArg::BceDice => LossKind::BceDice,
            },
            pos_weight: self.pos_weight,
            val_fraction: self.val_fraction,
            augment: !self.no_augment,
            seed: self.seed,
            checkpoint_minutes: self.checkpoint_minutes,
            all_images: self.all_images,
            keep_epochs: self.keep_epochs,
            precision: self.precision.precision(),
            ..config
        })
    }
}

pub fn run(args: TrainArgs) -> anyhow::Result<()> {
    let devices = match &args.devices {
        Some(list) => r2unet::device::parse_devices(list)?,
        None => vec![args.device.device()?],
    };
    let trainer = match (&args.resume, &args.out) {
        (Some(dir), _) => Trainer::resume(RunDir(dir.clone()), &devices[0])?,
        (None, Some(dir)) => {
            anyhow::ensure!(
                !RunDir(dir.clone()).state().exists(),
                "{} already holds a run: continue it with `r2unet train --resume {0}`, \
                 or give another --out",
                dir.display()
            );
            Trainer::new(args.config()?, RunDir(dir.clone()), &devices[0])?
        }
        (None, None) => anyhow::bail!("give --out RUN_DIR for a new run, or --resume RUN_DIR"),
    };
    let trainer = trainer.on_devices(&devices)?;
    let run_dir = args.resume.clone().or(args.out.clone()).unwrap_or_default();
    let state = train(trainer, &run_dir)?;
    let best = state
        .best_auc
        .map_or("n/a".to_string(), |v| format!("{v:.4}"));
    println!(
        "finished {} epochs in {:.0} s; best validation AUC {best}; run folder {}",
        state.epoch,
        state.elapsed_s,
        run_dir.display()
    );
    Ok(())
}

/// The flag Ctrl-C raises. The handler can be installed once per process, and
/// `reproduce --train` trains several models in one, so it is shared.
fn stop_flag() -> anyhow::Result<Arc<AtomicBool>> {
    static STOP: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    if let Some(stop) = STOP.get() {
        return Ok(stop.clone());
    }
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::Relaxed))
        .context("installing the Ctrl-C handler")?;
    Ok(STOP.get_or_init(|| stop).clone())
}

/// Runs `trainer` to the end with a progress bar (or log lines), Ctrl-C
/// turned into a checkpoint and an error naming the resume command.
pub fn train(trainer: Trainer, run_dir: &Path) -> anyhow::Result<RunState> {
    let stop = stop_flag()?;
    stop.store(false, Ordering::Relaxed);

    let batch = trainer.config().batch_size as f64;
    let mut last_log = Instant::now();
    // A live bar on a terminal; plain log lines every 10 s otherwise (files, CI).
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template(
                "epoch {prefix} [{bar:30}] {pos}/{len} steps {msg} ETA {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar
    });
    let mut on_event = |event: Event| match event {
        Event::Ready {
            train,
            val,
            channels,
        } => {
            eprintln!(
                "training on {train} patches, validating on {val} ({channels} input channel(s))"
            );
        }
        Event::Step {
            epoch,
            step,
            steps,
            loss,
            patches_per_s,
        } => {
            if let Some(bar) = &bar {
                bar.set_length(steps as u64);
                bar.set_position(step as u64);
                bar.set_prefix(epoch.to_string());
                bar.set_message(format!("loss {loss:.4}, {patches_per_s:.1} patches/s"));
            } else if last_log.elapsed().as_secs_f64() >= 10.0 || step == steps {
                last_log = Instant::now();
                let eta = (steps - step) as f64 * batch / patches_per_s.max(1e-9);
                eprintln!(
                    "epoch {epoch} step {step}/{steps} loss {loss:.4} {patches_per_s:.1} patches/s, epoch ETA {eta:.0} s"
                );
            }
        }
        Event::Epoch(r) => {
            let opt = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.4}"));
            let line = format!(
                "epoch {} done: train loss {:.4}, val loss {}, val AUC {}, val F1 {}, {:.1} patches/s, {:.0} s",
                r.epoch,
                r.train_loss,
                opt(r.val_loss),
                opt(r.val_auc),
                opt(r.val_f1),
                r.patches_per_s,
                r.elapsed_s
            );
            match &bar {
                Some(bar) => {
                    bar.suspend(|| eprintln!("{line}"));
                    bar.reset();
                }
                None => eprintln!("{line}"),
            }
        }
        Event::Interrupted => eprintln!("interrupted: checkpoint written; continue with --resume"),
    };
    let outcome = trainer.run(&stop, &mut on_event);
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    match outcome? {
        Outcome::Finished(state) => Ok(state),
        Outcome::Interrupted(_) => anyhow::bail!(
            "interrupted; resume with: r2unet train --resume {}",
            run_dir.display()
        ),
    }
}
