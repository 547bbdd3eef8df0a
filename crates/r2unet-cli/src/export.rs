//! `r2unet export`: one self-contained weights file from a run folder, or an
//! ONNX model from a run or a weights file.

use std::path::PathBuf;

use clap::Args;
use r2unet::atomic::write_atomic;
use r2unet::onnx::{self, OnnxOutput};
use r2unet::segment::TrainedModel;
use r2unet::train::RunDir;

use crate::eval_cmd::{CheckpointArg, load_trained};

/// Metadata key of where exported weights came from.
pub const PROVENANCE_KEY: &str = "r2unet_provenance";

/// Flags of `r2unet export`.
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Run folder written by `r2unet train`.
    #[arg(long, conflicts_with = "weights", required_unless_present = "weights")]
    run: Option<PathBuf>,
    /// A weights file (with --onnx: convert it to ONNX).
    #[arg(long, requires = "onnx")]
    weights: Option<PathBuf>,
    /// Which checkpoint of the run.
    #[arg(long, value_enum, default_value = "best")]
    checkpoint: CheckpointArg,
    /// Write an ONNX model (opset 17; dynamic batch, height and width; batch
    /// norm folded) instead of safetensors.
    #[arg(long)]
    onnx: bool,
    /// With --onnx: output sigmoid probabilities instead of logits.
    #[arg(long, requires = "onnx")]
    probabilities: bool,
    /// The file to write (safetensors with a .json config beside it, or .onnx).
    #[arg(long, short)]
    out: PathBuf,
}

pub fn run(args: ExportArgs) -> anyhow::Result<()> {
    let device = r2unet::device::DeviceChoice::Cpu.device()?;
    let best = matches!(args.checkpoint, CheckpointArg::Best);
    let (trained, weights) =
        load_trained(args.run.as_deref(), args.weights.as_deref(), best, &device)?;
    if args.onnx {
        let output = if args.probabilities {
            OnnxOutput::Probabilities
        } else {
            OnnxOutput::Logits
        };
        let bytes = onnx::export(&trained.model, Some(&trained.preprocess), output)?;
        write_atomic(&args.out, &bytes)?;
        let config = &trained.model.config;
        println!(
            "wrote {} (ONNX opset {}, {} of {}; input float32 [batch, {}, height, width], \
             height and width multiples of {})",
            args.out.display(),
            onnx::OPSET,
            if args.probabilities {
                "probabilities"
            } else {
                "logits"
            },
            config.architecture,
            config.in_channels,
            config.size_multiple()
        );
        return Ok(());
    }
    let run = args.run.expect("clap requires --run without --onnx");
    let TrainedModel {
        model, preprocess, ..
    } = trained;
    let dir = RunDir(run.clone());
    let (config, state) = (dir.read_config()?, dir.read_state()?);
    let provenance = serde_json::json!({
        // The run folder's name: a full path would only name this machine.
        "run": run.file_name().map(|n| n.to_string_lossy().into_owned()),
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
