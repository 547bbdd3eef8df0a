//! The bf16 inference guard on the shipped DRIVE model. Its own test binary:
//! the kernels' precision is process-wide, and the tests of `all` run
//! beside each other in one process.

use std::path::PathBuf;

use r2unet::data::{DatasetKind, LoadOptions, Split, split_samples};
use r2unet::device::DeviceChoice;
use r2unet::eval::evaluate::EvalOptions;
use r2unet::eval::report::evaluate_into;
use r2unet::kernels::{Precision, has_bf16, set_precision};
use r2unet::segment::TrainedModel;

/// DRIVE's 20 test images segmented with the 3x3 convolutions in bf16 keep
/// the pooled AUC within 0.001 and F1 (threshold 0.5) within 0.002 of f32.
#[test]
fn bf16_keeps_drive_auc_and_f1() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/DRIVE");
    if !dir.is_dir() {
        eprintln!(
            "skipped: {} not found (real-data tests need ../shared/data)",
            dir.display()
        );
        return;
    }
    if !has_bf16() {
        eprintln!("skipped: this CPU has no AVX512_BF16 (or R2UNET_ISA caps the kernels)");
        assert!(
            set_precision(Precision::Bf16).is_err(),
            "bf16 is refused here"
        );
        return;
    }
    let device = DeviceChoice::Cpu.device().unwrap();
    let model = TrainedModel::shipped("drive", &device).unwrap();
    let pooled = |precision| {
        set_precision(precision).unwrap();
        let samples = split_samples(
            Some((DatasetKind::Drive, &dir)),
            Split::Test,
            &LoadOptions::default(),
        )
        .unwrap();
        let opts = EvalOptions {
            resamples: 0,
            ..EvalOptions::default()
        };
        let report = evaluate_into(
            &model.model,
            &model.preprocess,
            samples,
            &opts,
            None,
            &device,
        )
        .unwrap();
        (report.fixed.pooled.f1, report.fixed.pooled.auc.unwrap())
    };
    let (f1, auc) = pooled(Precision::F32);
    let (f1_bf16, auc_bf16) = pooled(Precision::Bf16);
    set_precision(Precision::F32).unwrap();
    eprintln!("DRIVE test: f32 F1 {f1:.5} AUC {auc:.5}; bf16 F1 {f1_bf16:.5} AUC {auc_bf16:.5}");
    assert!((auc - auc_bf16).abs() <= 0.001, "AUC {auc} vs {auc_bf16}");
    assert!((f1 - f1_bf16).abs() <= 0.002, "F1 {f1} vs {f1_bf16}");
}
