//! The bf16 inference guard on the shipped DRIVE model, and bf16 training.
//! Their own test binary: the kernels' precision is process-wide, and the
//! tests of `all` run beside each other in one process (here they take
//! turns through `TURN`).

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;

use burn::tensor::Device;

use r2unet::data::{DatasetKind, LoadOptions, Split, split_samples};
use r2unet::device::DeviceChoice;
use r2unet::eval::evaluate::EvalOptions;
use r2unet::eval::report::evaluate_into;
use r2unet::kernels::{Precision, has_bf16, precision, set_precision};
use r2unet::model::Architecture;
use r2unet::segment::TrainedModel;
use r2unet::train::{RunDir, TrainConfig, Trainer};

/// Held by each test while it sets the process's precision.
static TURN: Mutex<()> = Mutex::new(());

/// DRIVE's 20 test images segmented with the 3x3 convolutions in bf16 keep
/// the pooled AUC within 0.001 and F1 (threshold 0.5) within 0.002 of f32,
/// and are not f32's to the bit.
#[test]
fn bf16_keeps_drive_auc_and_f1() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
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
    // And bf16 did run: session 26's F(4x4, 3x3) thresholds on AVX-512
    // first sent every level of DRIVE's images to f32, the same AUC to the bit.
    assert_ne!(
        auc.to_bits(),
        auc_bf16.to_bits(),
        "bf16 gave f32's AUC exactly"
    );
}

/// A small synthetic run with 16 and 32 channels (the widths the AMX tiles
/// take).
fn small_bf16_run(precision: Precision) -> TrainConfig {
    let mut c =
        r2unet::reproduce::train_config(DatasetKind::Drive, Architecture::R2unet, Path::new(""));
    c.data = None;
    c.synthetic_images = 4;
    c.model = c.model.with_widths(vec![16, 32]).with_patch_size(16);
    c.patch_size = 16;
    c.epochs = 2;
    c.patches_per_image = 16;
    c.batch_size = 8;
    c.val_fraction = 0.25;
    c.precision = precision;
    c
}

fn train(config: TrainConfig, dir: &Path) -> Vec<u8> {
    let trainer = Trainer::new(config, RunDir(dir.to_path_buf()), &Device::flex()).unwrap();
    trainer.run(&AtomicBool::new(false), &mut |_| {}).unwrap();
    std::fs::read(dir.join("last.safetensors")).unwrap()
}

/// `--precision bf16` training: recorded in the run, the same weights from
/// the same seed, not the f32 run's, and the process's precision restored.
#[test]
fn bf16_training_is_recorded_reproducible_and_restores_the_precision() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    if !has_bf16() {
        eprintln!("skipped: this CPU has no AVX512_BF16 (or R2UNET_ISA caps the kernels)");
        let refused = Trainer::new(
            small_bf16_run(Precision::Bf16),
            RunDir(tmp.path().join("r")),
            &Device::flex(),
        );
        assert!(refused.is_err_and(|e| e.to_string().contains("AVX512_BF16")));
        return;
    }
    let a = train(small_bf16_run(Precision::Bf16), &tmp.path().join("a"));
    assert_eq!(precision(), Precision::F32, "restored after the run");
    let config = std::fs::read_to_string(tmp.path().join("a/config.json")).unwrap();
    assert!(config.contains("\"precision\": \"bf16\""), "{config}");
    let b = train(small_bf16_run(Precision::Bf16), &tmp.path().join("b"));
    assert!(a == b, "same seed, same bf16 weights");
    let f32_run = train(small_bf16_run(Precision::F32), &tmp.path().join("f"));
    assert!(a != f32_run, "bf16 training is not the f32 run");
    let config = std::fs::read_to_string(tmp.path().join("f/config.json")).unwrap();
    assert!(
        !config.contains("precision"),
        "f32 runs keep their config as before"
    );
}
