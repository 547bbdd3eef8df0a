//! `r2unet export`: one self-contained weights file from a run folder.

use std::path::PathBuf;

use clap::Args;
use r2unet::train::RunDir;

use crate::eval_cmd::{CheckpointArg, load_trained};
use r2unet::segment::TrainedModel;

/// Metadata key of where exported weights came from.
pub const PROVENANCE_KEY: &str = "r2unet_provenance";

/// Flags of `r2unet export`.
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Run folder written by `r2unet train`.
    #[arg(long)]
    run: PathBuf,
    /// Which checkpoint of the run.
    #[arg(long, value_enum, default_value = "best")]
    checkpoint: CheckpointArg,
    /// The weights file to write (safetensors; a .json config is written beside it).
    #[arg(long, short)]
    out: PathBuf,
}

pub fn run(args: ExportArgs) -> anyhow::Result<()> {
    let device = r2unet::device::DeviceChoice::Cpu.device()?;
    let best = matches!(args.checkpoint, CheckpointArg::Best);
    let (
        TrainedModel {
            model, preprocess, ..
        },
        weights,
    ) = load_trained(Some(&args.run), None, best, &device)?;
    let dir = RunDir(args.run.clone());
    let (config, state) = (dir.read_config()?, dir.read_state()?);
    let provenance = serde_json::json!({
        "run": args.run,
        "checkpoint": weights.file_name().map(|n| n.to_string_lossy().into_owned()),
        "dataset": config.data.as_ref().map_or("synthetic".to_string(), |_| config.dataset.to_string()),
        "epochs": state.epoch,
        "steps": state.steps,
        "patches_seen": state.steps * config.batch_size,
        "patches_per_image": config.patches_per_image,
        "best_val_auc": state.best_auc,
        "train_seconds": state.elapsed_s.round(),
        "seed": config.seed,
        "init": config.init,
    });
    model.save_with(
        &args.out,
        &[
            preprocess.metadata(),
            (PROVENANCE_KEY, provenance.to_string()),
        ],
    )?;
    println!(
        "wrote {} (with its preprocessing and provenance)",
        args.out.display()
    );
    Ok(())
}
