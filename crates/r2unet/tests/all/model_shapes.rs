//! Shapes, parameter counts and FLOPs of the family against the PyTorch reference.

use burn::tensor::{Device, Distribution, Tensor};
use r2unet::model::{Architecture, BnMode, Preset, Summary, conv_flops};

fn cpu() -> Device {
    Device::flex()
}

/// Expected counts printed by `sum(p.numel() for p in Net(...).parameters())`
/// in `../shared/reference/r2unet_torch.py` (torch 2.9.0), widths 16..128 / 64..1024.
#[test]
fn retina_parameter_counts_match_pytorch() {
    let cases = [
        (Architecture::Unet, BnMode::Shared, 537_137),
        (Architecture::Resunet, BnMode::Shared, 609_553),
        (Architecture::Runet, BnMode::Shared, 609_553),
        (Architecture::R2unet, BnMode::Shared, 609_553),
        (Architecture::Resunet, BnMode::PerStep, 609_553),
        (Architecture::Runet, BnMode::PerStep, 612_369),
        (Architecture::R2unet, BnMode::PerStep, 612_369),
    ];
    for (arch, bn, expected) in cases {
        let model = Preset::Retina.config(arch).with_bn(bn).init(&cpu());
        assert_eq!(model.num_trainable_params(), expected, "{arch} {bn}");
    }
}

#[test]
fn classic_parameter_counts_match_pytorch() {
    let shared = Preset::Classic
        .config(Architecture::R2unet)
        .with_bn(BnMode::Shared)
        .init(&cpu());
    assert_eq!(shared.num_trainable_params(), 39_091_393);
    let per_step = Preset::Classic.config(Architecture::R2unet).init(&cpu());
    assert_eq!(per_step.num_trainable_params(), 39_114_945);
}

/// FLOPs from the reference's `conv_flops` forward hooks (48x48 retina, 256x256 classic).
#[test]
fn conv_flops_match_pytorch_hooks() {
    let retina = |a| Preset::Retina.config(a);
    assert_eq!(conv_flops(&retina(Architecture::Unet), 48, 48), 218_382_336);
    assert_eq!(
        conv_flops(&retina(Architecture::Resunet), 48, 48),
        221_331_456
    );
    assert_eq!(
        conv_flops(&retina(Architecture::R2unet), 48, 48),
        518_602_752
    );
    let classic = Preset::Classic.config(Architecture::R2unet);
    assert_eq!(conv_flops(&classic, 256, 256), 304_976_232_448);
}

#[test]
fn every_architecture_maps_an_image_to_logits_of_its_size() {
    for arch in Architecture::ALL {
        let config = Preset::Retina
            .config(arch)
            .with_widths(vec![4, 8, 16])
            .with_in_channels(3)
            .with_out_channels(2);
        let model = config.init(&cpu());
        let x = Tensor::<4>::random([2, 3, 24, 16], Distribution::Default, &cpu());
        assert_eq!(model.forward(x).dims(), [2, 2, 24, 16], "{arch}");
    }
}

#[test]
fn attention_model_has_gates_and_trains_on_autodiff() {
    let device = cpu().autodiff();
    let model = Preset::Retina
        .config(Architecture::Attr2unet)
        .with_widths(vec![4, 8])
        .init(&device);
    assert_eq!(model.att.len(), 1);
    let x = Tensor::<4>::random([2, 1, 8, 8], Distribution::Default, &device);
    let loss = model.forward(x).mean();
    let grads = loss.backward();
    let g = model.att[0].psi.weight.val().grad(&grads);
    assert!(g.is_some(), "attention gate receives a gradient");
}

#[test]
fn summary_reports_the_retina_r2unet() {
    let model = Preset::Retina.config(Architecture::R2unet).init(&cpu());
    let s = Summary::of(&model, Some("retina"));
    assert_eq!(s.params, 612_369);
    // 0.5186 GFLOP: the reference's count for retina r2unet at 48x48.
    assert!(
        (s.gflop_per_patch - 0.5186).abs() < 1e-4,
        "{}",
        s.gflop_per_patch
    );
    // 2 running statistics per batch-norm channel.
    assert!(s.buffers > 0);
}

#[test]
#[should_panic(expected = "not a multiple of 8")]
fn an_input_not_divisible_by_the_depth_is_a_programming_error() {
    let model = Preset::Retina.config(Architecture::Unet).init(&cpu());
    model.forward(Tensor::zeros([1, 1, 20, 20], &cpu()));
}

#[test]
fn invalid_configs_are_user_errors() {
    let bad = Preset::Retina
        .config(Architecture::Unet)
        .with_widths(vec![]);
    assert!(bad.validate().unwrap_err().to_string().contains("widths"));
    let bad = Preset::Retina
        .config(Architecture::Unet)
        .with_patch_size(50);
    assert!(
        bad.validate()
            .unwrap_err()
            .to_string()
            .contains("multiple of 8")
    );
    assert!("r3unet".parse::<Architecture>().is_err());
    assert!("sometimes".parse::<BnMode>().is_err());
}
