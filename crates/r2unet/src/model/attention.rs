//! Additive attention gate on a skip connection (Attention U-Net, Oktay et al.
//! 2018, arXiv:1804.03999), as used by Attention R2U-Net: the decoder's
//! upsampled features `g` decide, per pixel, how much of the skip `x` passes.

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::tensor::activation::{relu, sigmoid};
use burn::tensor::{Device, Tensor};

use super::block::{conv1x1, pointwise, visit_conv, visit_norm};
use super::norm::BatchNorm2d;
use super::state::Visit;

/// `x * sigmoid(bn(psi(relu(bn(w_g g) + bn(w_x x)))))`, a 1-channel gate.
#[derive(Module, Debug)]
pub struct AttentionGate {
    /// 1x1 projection of the gating signal to the inner width.
    pub w_g: Conv2d,
    /// Its batch norm.
    pub bn_g: BatchNorm2d,
    /// 1x1 projection of the skip features to the inner width.
    pub w_x: Conv2d,
    /// Its batch norm.
    pub bn_x: BatchNorm2d,
    /// 1x1 projection of the inner features to one gate channel.
    pub psi: Conv2d,
    /// Its batch norm.
    pub bn_psi: BatchNorm2d,
}

impl AttentionGate {
    /// A gate for `channels`-wide skip and gating features, inner width `channels / 2`.
    pub fn new(channels: usize, device: &Device) -> Self {
        let inner = (channels / 2).max(1);
        Self {
            w_g: conv1x1(channels, inner, device),
            bn_g: BatchNorm2d::new(inner, device),
            w_x: conv1x1(channels, inner, device),
            bn_x: BatchNorm2d::new(inner, device),
            psi: conv1x1(inner, 1, device),
            bn_psi: BatchNorm2d::new(1, device),
        }
    }

    /// # Shapes
    ///
    /// - `g`: `[b, c, h, w]` (decoder features), `x`: `[b, c, h, w]` (skip) → `[b, c, h, w]`
    pub fn forward(&self, g: Tensor<4>, x: Tensor<4>) -> Tensor<4> {
        let [b, c, h, w] = x.dims();
        let g1 = self.bn_g.forward(pointwise(&self.w_g, g));
        let x1 = self.bn_x.forward(pointwise(&self.w_x, x.clone()));
        let psi = sigmoid(self.bn_psi.forward(pointwise(&self.psi, relu(g1 + x1))));
        x * psi.expand([b, c, h, w])
    }

    /// Names as the common PyTorch Attention U-Net: `P.W_g.{0,1}`, `P.W_x.{0,1}`, `P.psi.{0,1}`.
    pub(crate) fn visit(&mut self, prefix: &str, f: &mut Visit<'_>) {
        visit_conv(&mut self.w_g, &format!("{prefix}.W_g.0"), f);
        visit_norm(&mut self.bn_g, &format!("{prefix}.W_g.1"), f);
        visit_conv(&mut self.w_x, &format!("{prefix}.W_x.0"), f);
        visit_norm(&mut self.bn_x, &format!("{prefix}.W_x.1"), f);
        visit_conv(&mut self.psi, &format!("{prefix}.psi.0"), f);
        visit_norm(&mut self.bn_psi, &format!("{prefix}.psi.1"), f);
    }
}
