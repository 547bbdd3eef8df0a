//! `r2unet data check`: read a whole dataset and summarise each split.

use anyhow::Context;
use clap::{Args, Subcommand};
use r2unet::data::check::check;

use crate::data_args::DataArgs;

/// `r2unet data ...`
#[derive(Subcommand, Debug)]
pub enum DataCommand {
    /// Read every image, label and FOV mask of every split and summarise them;
    /// exits non-zero naming the first file that is missing or wrong.
    Check(CheckArgs),
}

/// Flags of `r2unet data check`.
#[derive(Args, Debug)]
pub struct CheckArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(command: DataCommand) -> anyhow::Result<()> {
    match command {
        DataCommand::Check(args) => run_check(args),
    }
}

fn run_check(args: CheckArgs) -> anyhow::Result<()> {
    let opts = args.data.options()?;
    let Some((kind, dir)) = args.data.source()? else {
        anyhow::bail!("the synthetic set is generated, there is nothing to check");
    };
    let report = check(kind, &dir, &opts)
        .with_context(|| format!("checking {kind} dataset {}", dir.display()))?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    println!("{} dataset at {}", report.dataset, report.data);
    for (name, s) in &report.splits {
        println!(
            "  {name:<5} {:>4} images ({} files), {}-{} x {}-{} px, channels {:?}, values {:.3}..{:.3}, \
             labels {:?}, foreground {:.2}% of FOV, FOV {:.1}% of pixels ({}, diameter {}-{} px)",
            s.count,
            s.files,
            s.width[0],
            s.width[1],
            s.height[0],
            s.height[1],
            s.channels,
            s.value_range[0],
            s.value_range[1],
            s.label_values,
            100.0 * s.foreground_fraction,
            100.0 * s.fov_fraction,
            s.fov_source,
            s.fov_diameter[0],
            s.fov_diameter[1]
        );
    }
    Ok(())
}
