//! Batch normalisation with PyTorch's semantics.
//!
//! Burn's `BatchNorm` updates the running variance with the biased batch
//! variance; PyTorch uses the unbiased one (times n/(n-1)). Parity with the
//! PyTorch R2U-Net, and importing its checkpoints, needs the latter, so this
//! small module keeps Burn's kernels and changes only the running update.
//! Training behaviour (batch statistics, running update) is selected by the
//! device: on an autodiff device the layer trains, elsewhere it infers.

use burn::module::{Module, Param, RunningState};
use burn::tensor::activation::relu;
use burn::tensor::module::{batch_norm, batch_norm_train};
use burn::tensor::{Device, Tensor};

use crate::kernels::batch_norm_relu_train;

/// 2D batch norm over `[batch, channels, height, width]`, PyTorch-compatible.
#[derive(Module, Debug)]
pub struct BatchNorm2d {
    /// Scale (PyTorch `weight`).
    pub weight: Param<Tensor<1>>,
    /// Shift (PyTorch `bias`).
    pub bias: Param<Tensor<1>>,
    /// Running mean used at inference.
    pub running_mean: RunningState<Tensor<1>>,
    /// Running (unbiased) variance used at inference.
    pub running_var: RunningState<Tensor<1>>,
    /// Weight of the new batch statistics in the running update (PyTorch default 0.1).
    pub momentum: f64,
    /// Added to the variance (PyTorch default 1e-5).
    pub epsilon: f64,
}

impl BatchNorm2d {
    /// A fresh layer: weight 1, bias 0, running mean 0, running variance 1.
    pub fn new(channels: usize, device: &Device) -> Self {
        Self {
            weight: Param::from_tensor(Tensor::ones([channels], device)),
            bias: Param::from_tensor(Tensor::zeros([channels], device)),
            running_mean: RunningState::new(Tensor::zeros([channels], device)),
            running_var: RunningState::new(Tensor::ones([channels], device)),
            momentum: 0.1,
            epsilon: 1e-5,
        }
    }

    /// Normalises `x`; batch statistics on an autodiff device, running ones otherwise.
    ///
    /// # Shapes
    ///
    /// - `x`: `[b, c, h, w]` → `[b, c, h, w]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        if x.device().is_autodiff() {
            self.forward_train(x)
        } else {
            let device = x.device();
            batch_norm(
                x,
                self.weight.val(),
                self.bias.val(),
                self.running_mean.value().to_device(&device),
                self.running_var.value().to_device(&device),
                self.epsilon,
            )
        }
    }

    /// A convolution's `weight` and `bias` with this layer's inference mode folded in:
    /// `bn(conv(x)) = conv'(x)` with `w' = w s`, `b' = (b - mean) s + beta` and
    /// `s = gamma / sqrt(running_var + eps)` per output channel.
    pub fn fold(&self, weight: Tensor<4>, bias: Option<Tensor<1>>) -> (Tensor<4>, Tensor<1>) {
        let device = weight.device();
        let [out, ..] = weight.dims();
        let var = self.running_var.value().to_device(&device);
        let scale = self.weight.val() / var.add_scalar(self.epsilon).sqrt();
        let mean = self.running_mean.value().to_device(&device);
        let bias = bias.unwrap_or_else(|| Tensor::zeros([out], &device));
        let folded_bias = (bias - mean) * scale.clone() + self.bias.val();
        (weight * scale.reshape([out, 1, 1, 1]), folded_bias)
    }

    /// `relu(self.forward(x))`; in training, one fused operation on the CPU
    /// (`kernels::batch_norm_relu_train`).
    ///
    /// # Shapes
    ///
    /// - `x`: `[b, c, h, w]` → `[b, c, h, w]`
    pub fn forward_relu(&self, x: Tensor<4>) -> Tensor<4> {
        if !x.device().is_autodiff() {
            return relu(self.forward(x));
        }
        let n = batch_pixels(&x);
        let (output, mean, variance) =
            batch_norm_relu_train(x, self.weight.val(), self.bias.val(), self.epsilon);
        self.update_running(mean, variance, n);
        output
    }

    fn forward_train(&self, x: Tensor<4>) -> Tensor<4> {
        let n = batch_pixels(&x);
        let result = batch_norm_train(x, self.weight.val(), self.bias.val(), self.epsilon);
        self.update_running(result.mean, result.variance, n);
        result.output
    }

    /// The running statistics move towards the batch's by `momentum`;
    /// PyTorch: running_var uses the unbiased variance, var * n / (n - 1).
    fn update_running(&self, mean: Tensor<1>, variance: Tensor<1>, n: f64) {
        let device = mean.device();
        let unbiased = if n > 1.0 { n / (n - 1.0) } else { 1.0 };
        let m = self.momentum;
        let mean = self
            .running_mean
            .value_sync()
            .to_device(&device)
            .mul_scalar(1.0 - m)
            .add(mean.detach().mul_scalar(m));
        let var = self
            .running_var
            .value_sync()
            .to_device(&device)
            .mul_scalar(1.0 - m)
            .add(variance.detach().mul_scalar(m * unbiased));
        self.running_mean.update(mean.detach());
        self.running_var.update(var.detach());
    }
}

/// Values per channel in a batch: `b * h * w`.
fn batch_pixels(x: &Tensor<4>) -> f64 {
    let [b, _, h, w] = x.dims();
    (b * h * w) as f64
}
