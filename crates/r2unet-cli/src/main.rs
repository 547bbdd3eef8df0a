//! `r2unet`: the command-line program of the r2unet library. Thin: flags are
//! parsed and validated into library configs, then one library call does the work.

mod bench_cmd;
mod data_args;
mod data_cmd;
mod demo_cmd;
mod eval_cmd;
mod export;
mod import;
mod infer_args;
mod info;
mod model_args;
mod parity_cmd;
mod predict_cmd;
mod reproduce_cmd;
mod train_cmd;

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

/// R2U-Net and its U-Net family for medical image segmentation.
#[derive(Parser, Debug)]
#[command(name = "r2unet", version, about, long_about = None)]
struct Cli {
    /// CPU threads of every command (default: all cores).
    #[arg(long, global = true)]
    threads: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

/// Sets the CPU thread count of the process (`None`: all cores).
fn set_threads(threads: Option<usize>) -> anyhow::Result<()> {
    if let Some(n) = threads {
        anyhow::ensure!(n > 0, "--threads must be positive");
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
            .context("setting the thread count")?;
    }
    Ok(())
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Train, evaluate and report on generated retinas in a few minutes (no download).
    Demo(demo_cmd::DemoArgs),
    /// Print a model's architecture summary: parameters, widths, FLOPs per patch.
    Info(info::InfoArgs),
    /// Replay the PyTorch parity fixtures on a device and print the largest differences.
    Parity(parity_cmd::ParityArgs),
    /// Convert a PyTorch R2U-Net state_dict (safetensors) into r2unet weights.
    Import(import::ImportArgs),
    /// Train a model of the family into a run folder (checkpoints, metrics, resume).
    Train(Box<train_cmd::TrainArgs>),
    /// Evaluate a trained run on a dataset split (metrics inside the FOV, per image and pooled).
    Eval(Box<eval_cmd::EvalArgs>),
    /// Segment image files or folders: probability map, mask and overlay PNGs per image.
    Predict(Box<predict_cmd::PredictArgs>),
    /// Write a run's checkpoint as one self-contained weights file (with its preprocessing).
    Export(export::ExportArgs),
    /// The paper's results table from shipped weights (or --train), beside the paper's numbers.
    Reproduce(Box<reproduce_cmd::ReproduceArgs>),
    /// Time training or inference steps (median ms, patches/s, GFLOP/s), as JSON for scripts.
    Bench(bench_cmd::BenchArgs),
    /// Inspect datasets.
    #[command(subcommand)]
    Data(data_cmd::DataCommand),
}

fn run(cli: Cli) -> anyhow::Result<()> {
    set_threads(cli.threads)?;
    match cli.command {
        Command::Info(args) => info::run(args),
        Command::Parity(args) => parity_cmd::run(args),
        Command::Import(args) => import::run(args),
        Command::Data(command) => data_cmd::run(command),
        Command::Train(args) => train_cmd::run(*args),
        Command::Eval(args) => eval_cmd::run(*args),
        Command::Predict(args) => predict_cmd::run(*args),
        Command::Export(args) => export::run(args),
        Command::Demo(args) => demo_cmd::run(args),
        Command::Bench(args) => bench_cmd::run(args),
        Command::Reproduce(args) => reproduce_cmd::run(*args),
    }
}

/// Keeps freed tensor buffers in glibc's heap for reuse. By default glibc
/// serves large blocks with `mmap` and returns them on free, so each step
/// page-faults its activations in again; a training step measured 12% faster
/// without that, at the same peak memory (BENCHMARKS.md, levers).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_buffers() {
    // SAFETY: mallopt only changes allocator parameters; it is called once,
    // before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_freed_buffers() {}

fn main() -> ExitCode {
    keep_freed_buffers();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
