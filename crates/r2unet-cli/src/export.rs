//! `r2unet export`: one self-contained weights file from a run folder, or an
//! ONNX model from a run or a weights file.

use std::path::PathBuf;

use clap::Args;
use r2unet::atomic::write_atomic;
use r2unet::onnx::{self, OnnxOutput};
use r2unet::train::export_run;

use crate::eval_cmd::{CheckpointArg, load_trained};

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
    if args.onnx {
        let (trained, _) =
            load_trained(args.run.as_deref(), args.weights.as_deref(), best, &device)?;
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
    export_run(&run, best, &args.out, &device)?;
    println!(
        "wrote {} (with its preprocessing and provenance)",
        args.out.display()
    );
    Ok(())
}
