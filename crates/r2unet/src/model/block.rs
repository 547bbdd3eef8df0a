//! The building blocks: the recurrent convolutional layer (RCL) and the one
//! block type whose kind makes it U-Net, ResU-Net, RU-Net or R2U-Net.

use burn::module::{Module, Param};
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::tensor::{Device, Tensor};

use super::config::{BlockKind, BnMode};
use super::norm::BatchNorm2d;
use super::state::{Slot, Visit};
use crate::kernels;

/// A 3x3 convolution (padding 1, with bias) initialised like PyTorch's `Conv2d`.
pub(crate) fn conv3x3(cin: usize, cout: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([cin, cout], [3, 3])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .init(device)
}

/// A 1x1 convolution with bias.
pub(crate) fn conv1x1(cin: usize, cout: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([cin, cout], [1, 1]).init(device)
}

/// `conv.forward(x)` for a 1x1 convolution made by [`conv1x1`], through
/// r2unet's CPU kernel where it applies (Burn's otherwise).
pub(crate) fn pointwise(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    let weight = conv.weight.val();
    let bias = match &conv.bias {
        Some(bias) => bias.val(),
        None => Tensor::zeros([weight.dims()[0]], &x.device()),
    };
    kernels::conv1x1(x, weight, bias)
}

/// Recurrent convolutional layer: one shared 3x3 convolution `f` unrolled over
/// `steps` recurrences, `x1 = f(x)`, then `steps` times `x1 = f(x + x1)`.
///
/// With `steps = 0` it is a plain Conv3x3+BN+ReLU. `norms` holds one BatchNorm
/// (shared mode: reused at every step) or `steps + 1` of them (per-step mode).
#[derive(Module, Debug)]
pub struct Rcl {
    /// The shared convolution.
    pub conv: Conv2d,
    /// The batch norm(s): one shared, or one per step.
    pub norms: Vec<BatchNorm2d>,
    /// Number of recurrent steps `t` (the convolution runs `t + 1` times).
    pub steps: usize,
}

impl Rcl {
    /// An RCL of `cin -> cout` channels with `steps` recurrences and `norms` BatchNorms.
    ///
    /// # Panics
    ///
    /// If `norms` is neither 1 nor `steps + 1`, or `steps > 0` with `cin != cout`.
    pub fn new(cin: usize, cout: usize, steps: usize, norms: usize, device: &Device) -> Self {
        assert!(
            norms == 1 || norms == steps + 1,
            "an RCL with {steps} steps needs 1 or {} norms, got {norms}",
            steps + 1
        );
        assert!(
            steps == 0 || cin == cout,
            "a recurrent layer keeps its width, got {cin} -> {cout}"
        );
        Self {
            conv: conv3x3(cin, cout, device),
            norms: (0..norms).map(|_| BatchNorm2d::new(cout, device)).collect(),
            steps,
        }
    }

    fn norm(&self, k: usize) -> &BatchNorm2d {
        &self.norms[k.min(self.norms.len() - 1)]
    }

    /// Training step `k` (autodiff: batch statistics).
    fn step(&self, x: Tensor<4>, k: usize) -> Tensor<4> {
        let weight = self.conv.weight.val();
        let bias = match &self.conv.bias {
            Some(bias) => bias.val(),
            None => Tensor::zeros([weight.dims()[0]], &x.device()),
        };
        self.norm(k).forward_relu(kernels::conv3x3(x, weight, bias))
    }

    /// # Shapes
    ///
    /// - `x`: `[b, cin, h, w]` → `[b, cout, h, w]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        if !x.device().is_autodiff() {
            return self.forward_folded(x);
        }
        let mut x1 = self.step(x.clone(), 0);
        for k in 1..=self.steps {
            x1 = self.step(kernels::add(x.clone(), x1), k);
        }
        x1
    }

    /// Inference: each step's norm folded into the convolution saves a pass
    /// over the activations (BENCHMARKS.md: inference step 11% faster), and
    /// the recurrent steps run as one operation, which on AMX tiles never
    /// writes the sums `x + x1` in f32 (BENCHMARKS.md, session 16).
    fn forward_folded(&self, x: Tensor<4>) -> Tensor<4> {
        let weight = self.conv.weight.val();
        let bias = self.conv.bias.as_ref().map(Param::val);
        let fold = |k: usize| self.norm(k).fold(weight.clone(), bias.clone());
        if self.steps == 0 {
            let (weight, bias) = fold(0);
            return kernels::conv3x3_relu(x, weight, bias);
        }
        let (weights, biases): (Vec<_>, Vec<_>) = (0..=self.steps).map(fold).unzip();
        kernels::recurrent_relu(x, Tensor::cat(weights, 0), Tensor::cat(biases, 0))
    }

    /// Names as the PyTorch reference: `P.0`/`P.1` for a `Sequential(conv, bn, relu)`,
    /// or `P.conv` and `P.step_bn.K` for per-step batch norm.
    pub(crate) fn visit(&mut self, prefix: &str, per_step: bool, f: &mut Visit<'_>) {
        if per_step {
            visit_conv(&mut self.conv, &format!("{prefix}.conv"), f);
            for (k, norm) in self.norms.iter_mut().enumerate() {
                visit_norm(norm, &format!("{prefix}.step_bn.{k}"), f);
            }
        } else {
            visit_conv(&mut self.conv, &format!("{prefix}.0"), f);
            visit_norm(&mut self.norms[0], &format!("{prefix}.1"), f);
        }
    }
}

pub(crate) fn visit_conv(conv: &mut Conv2d, prefix: &str, f: &mut Visit<'_>) {
    f(format!("{prefix}.weight"), Slot::Param4(&mut conv.weight));
    if let Some(bias) = conv.bias.as_mut() {
        f(format!("{prefix}.bias"), Slot::Param1(bias));
    }
}

pub(crate) fn visit_norm(norm: &mut BatchNorm2d, prefix: &str, f: &mut Visit<'_>) {
    f(format!("{prefix}.weight"), Slot::Param1(&mut norm.weight));
    f(format!("{prefix}.bias"), Slot::Param1(&mut norm.bias));
    f(
        format!("{prefix}.running_mean"),
        Slot::Buffer1(&mut norm.running_mean),
    );
    f(
        format!("{prefix}.running_var"),
        Slot::Buffer1(&mut norm.running_var),
    );
}

/// One U-Net stage. The kind decides the layout (see [`BlockKind`]):
/// plain `l2(l1(x))`, or with a 1x1 projection `p`: `l2(l1(p))`, `p + l2(l1(p))`.
#[derive(Module, Debug)]
pub struct Block {
    /// 1x1 projection to the block width (absent for the plain U-Net block).
    pub proj: Option<Conv2d>,
    /// The two layers (plain Conv+BN+ReLU when not recurrent).
    pub layers: Vec<Rcl>,
    /// Whether the projected input is added to the output.
    pub residual: bool,
}

impl Block {
    /// A block of `kind` mapping `cin` to `cout` channels.
    pub fn new(
        kind: BlockKind,
        cin: usize,
        cout: usize,
        t: usize,
        bn: BnMode,
        device: &Device,
    ) -> Self {
        let steps = kind.steps(t);
        let norms = match bn {
            BnMode::Shared => 1,
            BnMode::PerStep => steps + 1,
        };
        if kind.has_projection() {
            Self {
                proj: Some(conv1x1(cin, cout, device)),
                layers: vec![
                    Rcl::new(cout, cout, steps, norms, device),
                    Rcl::new(cout, cout, steps, norms, device),
                ],
                residual: kind.has_residual(),
            }
        } else {
            Self {
                proj: None,
                layers: vec![
                    Rcl::new(cin, cout, 0, 1, device),
                    Rcl::new(cout, cout, 0, 1, device),
                ],
                residual: false,
            }
        }
    }

    /// # Shapes
    ///
    /// - `x`: `[b, cin, h, w]` → `[b, cout, h, w]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let p = match &self.proj {
            Some(proj) => pointwise(proj, x),
            None => x,
        };
        let y = self
            .layers
            .iter()
            .fold(p.clone(), |acc, layer| layer.forward(acc));
        if self.residual { kernels::add(p, y) } else { y }
    }

    /// PyTorch names: plain `P.body.{i}.{0,1}`; projected `P.proj` and the RCLs at
    /// `P.body.{i}.conv.{0,1}` (shared) or `P.body.{i}.conv` + `P.body.{i}.step_bn.K`.
    pub(crate) fn visit(&mut self, prefix: &str, bn: BnMode, f: &mut Visit<'_>) {
        match self.proj.as_mut() {
            None => {
                for (i, layer) in self.layers.iter_mut().enumerate() {
                    layer.visit(&format!("{prefix}.body.{i}"), false, f);
                }
            }
            Some(proj) => {
                visit_conv(proj, &format!("{prefix}.proj"), f);
                for (i, layer) in self.layers.iter_mut().enumerate() {
                    let body = format!("{prefix}.body.{i}");
                    match bn {
                        BnMode::PerStep => layer.visit(&body, true, f),
                        BnMode::Shared => layer.visit(&format!("{body}.conv"), false, f),
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::RunningState;
    use burn::tensor::Distribution;
    use burn::tensor::activation::relu;

    #[test]
    fn folded_inference_equals_conv_then_norm() {
        let device = Device::flex();
        let mut rcl = Rcl::new(4, 4, 2, 3, &device);
        for norm in &mut rcl.norms {
            let random = |lo, hi| Tensor::<1>::random([4], Distribution::Uniform(lo, hi), &device);
            norm.weight = Param::from_tensor(random(0.5, 2.0));
            norm.bias = Param::from_tensor(random(-1.0, 1.0));
            norm.running_mean = RunningState::new(random(-0.5, 0.5));
            norm.running_var = RunningState::new(random(0.1, 3.0));
        }
        let x = Tensor::<4>::random([2, 4, 8, 6], Distribution::Normal(0.0, 1.0), &device);
        // The unfolded computation, step by step as the recurrence defines it.
        let plain = |x: Tensor<4>, k: usize| relu(rcl.norms[k].forward(rcl.conv.forward(x)));
        let mut expected = plain(x.clone(), 0);
        for k in 1..=2 {
            expected = plain(x.clone() + expected, k);
        }
        let got = rcl.forward(x);
        let diff = (got - expected.clone()).abs().max().into_scalar::<f32>();
        let scale = expected.abs().max().into_scalar::<f32>();
        assert!(scale > 0.1, "a non-trivial output");
        assert!(diff < 1e-5 * scale.max(1.0), "folded differs by {diff}");
    }
}
