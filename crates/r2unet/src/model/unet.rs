//! The one U-Net skeleton of the family (Ronneberger et al. 2015; R2U-Net:
//! Alom et al. 2018, arXiv:1802.06955). An encoder of blocks separated by 2x2
//! max pooling, a decoder that upsamples by 2 (nearest + Conv3x3+BN+ReLU),
//! concatenates the skip features (optionally attention-gated) and applies a
//! block, and a 1x1 head that returns logits.

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::tensor::{Device, Tensor};

use super::attention::AttentionGate;
use super::block::{Block, Rcl, conv1x1, pointwise, visit_conv};
use super::config::UNetConfig;
use super::state::Visit;
use crate::kernels::{cat_channels, max_pool2, upsample2};

/// A U-Net-family model; the block kind and attention come from its config.
#[derive(Module, Debug)]
pub struct UNet {
    /// Encoder stages, one per width.
    pub enc: Vec<Block>,
    /// Upsampling convolutions, deepest first.
    pub up: Vec<Rcl>,
    /// Decoder stages, deepest first.
    pub dec: Vec<Block>,
    /// Attention gates on the skips, deepest first (empty without attention).
    pub att: Vec<AttentionGate>,
    /// Final 1x1 convolution to the output channels (logits).
    pub head: Conv2d,
    /// What this model is.
    #[module(skip)]
    pub config: UNetConfig,
}

impl UNetConfig {
    /// Builds the model with PyTorch-like random initialisation.
    ///
    /// # Panics
    ///
    /// If the config is invalid; call [`UNetConfig::validate`] first on user input.
    pub fn init(&self, device: &Device) -> UNet {
        if let Err(e) = self.validate() {
            panic!("invalid model config: {e}");
        }
        let kind = self.architecture.block();
        let (t, bn) = (self.t, self.bn);
        let mut enc = Vec::new();
        let mut cin = self.in_channels;
        for &w in &self.widths {
            enc.push(Block::new(kind, cin, w, t, bn, device));
            cin = w;
        }
        let (mut up, mut dec, mut att) = (Vec::new(), Vec::new(), Vec::new());
        for pair in self.widths.windows(2).rev() {
            let (lo, hi) = (pair[0], pair[1]);
            up.push(Rcl::new(hi, lo, 0, 1, device));
            dec.push(Block::new(kind, 2 * lo, lo, t, bn, device));
            if self.architecture.attention() {
                att.push(AttentionGate::new(lo, device));
            }
        }
        let mut model = UNet {
            enc,
            up,
            dec,
            att,
            head: conv1x1(self.widths[0], self.out_channels, device),
            config: self.clone(),
        };
        model.assign_stable_ids();
        model
    }
}

impl UNet {
    /// Logits for a batch of images.
    ///
    /// # Shapes
    ///
    /// - `x`: `[b, in_channels, h, w]` with `h`, `w` multiples of `2^(depth-1)`
    /// - returns `[b, out_channels, h, w]`
    ///
    /// # Panics
    ///
    /// If the channels or the sides do not fit the config.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [_, c, h, w] = x.dims();
        let m = self.config.size_multiple();
        assert_eq!(
            c, self.config.in_channels,
            "input has {c} channels, model expects {}",
            self.config.in_channels
        );
        assert!(
            h.is_multiple_of(m) && w.is_multiple_of(m),
            "input {h}x{w} is not a multiple of {m}"
        );
        let mut skips = Vec::with_capacity(self.enc.len());
        let mut x = x;
        for (i, block) in self.enc.iter().enumerate() {
            x = block.forward(if i == 0 { x } else { max_pool2(x) });
            skips.push(x.clone());
        }
        skips.pop();
        for (i, (up, block)) in self.up.iter().zip(&self.dec).enumerate() {
            let d = up.forward(upsample2(x));
            let skip = skips.pop().expect("one skip per decoder stage");
            let skip = match self.att.get(i) {
                Some(gate) => gate.forward(d.clone(), skip),
                None => skip,
            };
            x = block.forward(cat_channels(skip, d));
        }
        pointwise(&self.head, x)
    }

    /// Walks every tensor with its PyTorch state-dict name (`enc.N...`, `up.N.conv...`,
    /// `dec.N...`, `att.N...`, `head...`).
    pub(crate) fn visit(&mut self, f: &mut Visit<'_>) {
        let bn = self.config.bn;
        for (i, block) in self.enc.iter_mut().enumerate() {
            block.visit(&format!("enc.{i}"), bn, f);
        }
        for (i, up) in self.up.iter_mut().enumerate() {
            up.visit(&format!("up.{i}.conv"), false, f);
        }
        for (i, block) in self.dec.iter_mut().enumerate() {
            block.visit(&format!("dec.{i}"), bn, f);
        }
        for (i, gate) in self.att.iter_mut().enumerate() {
            gate.visit(&format!("att.{i}"), f);
        }
        visit_conv(&mut self.head, "head", f);
    }
}
