//! Importing checkpoints of LeeJunHyun/Image_Segmentation, the most used public
//! PyTorch R2U-Net. Fixtures: `scripts/export_leejunhyun_fixture.py` run on its
//! `network.py` (widths divided by 32: 2,4,8,16,32; RGB 32x32 input; torch 2.9.0).

use super::{max_abs_diff, read_f32};
use burn::tensor::{Device, Tensor, TensorData};
use r2unet::model::{Architecture, BnMode, Preset, TorchLayout, import_weights};

fn check(fixture: &str, arch: Architecture) {
    let dir = super::fixtures().join("leejunhyun").join(fixture);
    let config = Preset::Classic
        .config(arch)
        .with_widths(vec![2, 4, 8, 16, 32])
        .with_bn(BnMode::Shared)
        .with_patch_size(32);
    let device = Device::flex();
    let weights = dir.join("weights.safetensors");
    let model = import_weights(&config, &weights, TorchLayout::LeeJunHyun, &device).unwrap();
    let io = dir.join("io.safetensors");
    let (shape, input) = read_f32(&io, "input");
    let x = Tensor::<4>::from_data(TensorData::new(input, shape), &device);
    let got: Vec<f32> = model.forward(x).into_data().try_into_vec().unwrap();
    let (_, expected) = read_f32(&io, "eval_logits");
    let d = max_abs_diff(&got, &expected);
    assert!(d < 1e-4, "{fixture}: logits differ by {d}");

    // The same file read with the reference layout is refused, naming a tensor.
    let err = import_weights(&config, &weights, TorchLayout::Reference, &device).unwrap_err();
    assert!(err.to_string().contains("missing"), "{err}");
}

#[test]
fn leejunhyun_unet_imports_with_identical_logits() {
    check("U_Net", Architecture::Unet);
}

#[test]
fn leejunhyun_r2unet_imports_with_identical_logits() {
    check("R2U_Net", Architecture::R2unet);
}

#[test]
fn leejunhyun_attention_r2unet_imports_with_identical_logits() {
    check("R2AttU_Net", Architecture::Attr2unet);
}
