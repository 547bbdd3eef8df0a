//! `r2unet`: the command-line program of the r2unet library. Thin: flags are
//! parsed and validated into library configs, then one library call does the work.

mod data_args;
mod data_cmd;
mod eval_cmd;
mod import;
mod info;
mod model_args;
mod train_cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// R2U-Net and its U-Net family for medical image segmentation.
#[derive(Parser, Debug)]
#[command(name = "r2unet", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print a model's architecture summary: parameters, widths, FLOPs per patch.
    Info(info::InfoArgs),
    /// Convert a PyTorch R2U-Net state_dict (safetensors) into r2unet weights.
    Import(import::ImportArgs),
    /// Train a model of the family into a run folder (checkpoints, metrics, resume).
    Train(Box<train_cmd::TrainArgs>),
    /// Evaluate a trained run on a dataset split (metrics inside the FOV, per image and pooled).
    Eval(Box<eval_cmd::EvalArgs>),
    /// Inspect datasets.
    #[command(subcommand)]
    Data(data_cmd::DataCommand),
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Info(args) => info::run(args),
        Command::Import(args) => import::run(args),
        Command::Data(command) => data_cmd::run(command),
        Command::Train(args) => train_cmd::run(*args),
        Command::Eval(args) => eval_cmd::run(*args),
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
