//! `r2unet demo`: the whole pipeline on generated retinas, no download —
//! train R2U-Net for a few minutes, tune a threshold on the training images,
//! evaluate on unseen ones and write the report with pictures.

use std::path::{Path, PathBuf};

use clap::Args;
use r2unet::data::synthetic::SyntheticRetina;
use r2unet::data::{DatasetKind, Split};
use r2unet::device::DeviceChoice;
use r2unet::eval::evaluate::{EvalOptions, tune_threshold};
use r2unet::eval::report::{ReportOut, evaluate_into};
use r2unet::infer::Inference;
use r2unet::model::Architecture;
use r2unet::reproduce::train_config;
use r2unet::segment::TrainedModel;
use r2unet::train::{RunDir, Trainer};

use crate::eval_cmd::print_summary;
use crate::train_cmd::train;

/// Flags of `r2unet demo`.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Output folder: run/ (the trained model) and report/ (report.md, curves, overlays).
    #[arg(long, short, default_value = "r2unet-demo")]
    out: PathBuf,
    /// Training epochs.
    #[arg(long, default_value_t = 3)]
    epochs: usize,
    /// Generated training images (128x128 retinas).
    #[arg(long, default_value_t = 12)]
    images: usize,
    /// 48x48 training patches per image and epoch.
    #[arg(long, default_value_t = 200)]
    patches_per_image: usize,
    /// Device: cpu, or vulkan / wgpu / cuda when compiled in.
    #[arg(long, default_value = "cpu")]
    device: DeviceChoice,
}

pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    let device = args.device.device()?;
    let run_dir = args.out.join("run");
    let report_dir = args.out.join("report");
    // The default retina protocol, on generated images, scaled to minutes.
    let mut config = train_config(DatasetKind::Drive, Architecture::R2unet, Path::new(""));
    config.data = None;
    config.synthetic_images = args.images;
    config.epochs = args.epochs;
    config.patches_per_image = args.patches_per_image;
    println!(
        "r2unet demo: training R2U-Net (retina preset, {} parameters) on {} generated retinas, \
         {} epochs x {} patches; run folder {}",
        config.model.init(&device).num_trainable_params(),
        args.images,
        args.epochs,
        args.images * args.patches_per_image,
        run_dir.display()
    );
    let trainer = Trainer::new(config, RunDir(run_dir.clone()), &device)?;
    let state = train(trainer, &run_dir)?;
    println!(
        "trained in {:.0} s; best validation AUC {}",
        state.elapsed_s,
        state.best_auc.map_or("n/a".into(), |v| format!("{v:.4}"))
    );

    let weights = RunDir(run_dir.clone()).best();
    let TrainedModel {
        model, preprocess, ..
    } = TrainedModel::load(&weights, &device)?;
    let inference = Inference::default();
    let retinas = SyntheticRetina::default();
    // The threshold is chosen on exactly the images the model trained on.
    let train_images = retinas
        .split(Split::Train, args.images)?
        .into_iter()
        .map(Ok);
    let tuned = tune_threshold(
        &model,
        &preprocess,
        &inference,
        train_images,
        "F1-optimal on the training retinas",
        &device,
    )?;
    let eval_opts = EvalOptions {
        inference,
        tuned: Some(tuned),
        ..EvalOptions::default()
    };
    let report = evaluate_into(
        &model,
        &preprocess,
        retinas.split(Split::Test, args.images)?.into_iter().map(Ok),
        &eval_opts,
        Some(&ReportOut {
            dir: &report_dir,
            pictures: true,
            title: format!(
                "r2unet demo: unseen synthetic retinas — {}",
                weights.display()
            ),
        }),
        &device,
    )?;
    print_summary(&report, "synthetic test retinas");
    println!("\nwhere to look:");
    println!(
        "  {}  metrics with 95% intervals, curves, overlays",
        report_dir.join("report.md").display()
    );
    println!(
        "  {}/  per image: _prob.png (16-bit), _mask.png, _overlay.png (green TP, red FP, blue FN)",
        report_dir.join("images").display()
    );
    println!(
        "  {}  training curves; {} the model",
        run_dir.join("curves.png").display(),
        weights.display()
    );
    println!(
        "segment your own image: r2unet predict IMAGE --weights {} -o predictions/",
        weights.display()
    );
    Ok(())
}
