//! `r2unet import`: turn a PyTorch R2U-Net `state_dict` (safetensors) into an
//! r2unet weights file with its config beside it.

use std::path::PathBuf;

use clap::Args;
use r2unet::device::DeviceChoice;
use r2unet::model::{Summary, TorchLayout, import_weights};

use crate::model_args::ModelArgs;

/// Flags of `r2unet import`.
#[derive(Args, Debug)]
pub struct ImportArgs {
    /// The PyTorch state_dict as safetensors (convert a .pth first; see the README).
    input: PathBuf,
    /// Tensor names: `reference` (../shared/reference/r2unet_torch.py) or
    /// `leejunhyun` (LeeJunHyun/Image_Segmentation: U_Net, R2U_Net, R2AttU_Net).
    #[arg(long, default_value = "reference")]
    layout: TorchLayout,
    #[command(flatten)]
    model: ModelArgs,
    /// Where to write the r2unet weights (`.safetensors`; the config goes beside it as `.json`).
    #[arg(short, long)]
    out: PathBuf,
}

pub fn run(args: ImportArgs) -> anyhow::Result<()> {
    let config = args.model.config()?;
    let device = DeviceChoice::Cpu.device()?;
    let model = import_weights(&config, &args.input, args.layout, &device)?;
    model.save(&args.out)?;
    let s = Summary::of(&model, Some(args.model.preset.name()));
    println!(
        "imported {} ({} layout): {} {:?}, t = {}, batch norm {}, {} parameters -> {}",
        args.input.display(),
        args.layout,
        s.model,
        s.widths,
        s.t,
        s.bn,
        s.params,
        args.out.display()
    );
    Ok(())
}
