//! Tensor-name layouts of PyTorch R2U-Net checkpoints that we can import.
//!
//! Our own files use the names of the PyTorch reference
//! (`../shared/reference/r2unet_torch.py`: `enc.N`, `up.N.conv`, `dec.N`,
//! `att.N`, `head`). The most used public implementation,
//! LeeJunHyun/Image_Segmentation (`U_Net`, `R2U_Net`, `R2AttU_Net`), computes
//! the same networks (shared Conv+BN+ReLU recurrence, skip concatenated first,
//! nearest upsampling + Conv3x3+BN+ReLU, attention gates with inner width C/2)
//! under other names; this module renames them.

use std::fmt;
use std::str::FromStr;

use crate::error::Error;

/// How the tensors of a checkpoint are named.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TorchLayout {
    /// The PyTorch reference's names (and this project's files).
    #[default]
    Reference,
    /// LeeJunHyun/Image_Segmentation's `network.py` (`RRCNN1`, `Up5`, `Up_RRCNN5`,
    /// `Att5`, `Conv1`, `Up_conv5`, `Conv_1x1`). Its models are the `classic`
    /// preset with `--bn shared`.
    LeeJunHyun,
}

impl TorchLayout {
    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            TorchLayout::Reference => "reference",
            TorchLayout::LeeJunHyun => "leejunhyun",
        }
    }

    /// The reference name of a checkpoint tensor of a model of `depth` stages,
    /// or `None` when the name does not belong to the layout.
    pub fn to_reference(self, name: &str, depth: usize) -> Option<String> {
        match self {
            TorchLayout::Reference => Some(name.to_string()),
            TorchLayout::LeeJunHyun => lee_jun_hyun(name, depth),
        }
    }
}

impl fmt::Display for TorchLayout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for TorchLayout {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s.to_ascii_lowercase().as_str() {
            "reference" => Ok(TorchLayout::Reference),
            "leejunhyun" => Ok(TorchLayout::LeeJunHyun),
            _ => Err(Error::invalid(
                "layout",
                format!("`{s}`; expected `reference` or `leejunhyun`"),
            )),
        }
    }
}

/// `PREFIX{k}` → `k`, for stage names such as `RRCNN3` or `Up_conv5`.
fn stage(head: &str, prefix: &str) -> Option<usize> {
    head.strip_prefix(prefix)?.parse().ok()
}

fn lee_jun_hyun(name: &str, depth: usize) -> Option<String> {
    let (head, rest) = name.split_once('.')?;
    if head == "Conv_1x1" {
        return Some(format!("head.{rest}"));
    }
    // Decoder stages count down from `depth` to 2; ours count up from 0.
    let dec = |k: usize| depth.checked_sub(k).filter(|_| k >= 2);
    if let Some(k) = stage(head, "Up_RRCNN") {
        return Some(format!("dec.{}.{}", dec(k)?, rrcnn(rest)?));
    }
    if let Some(k) = stage(head, "Up_conv") {
        return Some(format!("dec.{}.{}", dec(k)?, conv_block(rest)?));
    }
    if let Some(k) = stage(head, "RRCNN") {
        return Some(format!("enc.{}.{}", k.checked_sub(1)?, rrcnn(rest)?));
    }
    if let Some(k) = stage(head, "Conv") {
        return Some(format!("enc.{}.{}", k.checked_sub(1)?, conv_block(rest)?));
    }
    if let Some(k) = stage(head, "Att") {
        return Some(format!("att.{}.{rest}", dec(k)?));
    }
    if let Some(k) = stage(head, "Up") {
        // up_conv: Sequential(Upsample, Conv, BN, ReLU) → indices 1 and 2.
        let inner = rest.strip_prefix("up.")?;
        let (index, param) = inner.split_once('.')?;
        let ours = match index {
            "1" => 0,
            "2" => 1,
            _ => return None,
        };
        return Some(format!("up.{}.conv.{ours}.{param}", dec(k)?));
    }
    None
}

/// Inside an `RRCNN_block`: `Conv_1x1` → `proj`, `RCNN.j.conv.m` → `body.j.conv.m`.
fn rrcnn(rest: &str) -> Option<String> {
    if let Some(param) = rest.strip_prefix("Conv_1x1.") {
        return Some(format!("proj.{param}"));
    }
    rest.strip_prefix("RCNN.")
        .map(|inner| format!("body.{inner}"))
}

/// Inside a `conv_block`: `Sequential(Conv, BN, ReLU, Conv, BN, ReLU)`.
fn conv_block(rest: &str) -> Option<String> {
    let inner = rest.strip_prefix("conv.")?;
    let (index, param) = inner.split_once('.')?;
    let ours = match index {
        "0" => "0.0",
        "1" => "0.1",
        "3" => "1.0",
        "4" => "1.1",
        _ => return None,
    };
    Some(format!("body.{ours}.{param}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lee_jun_hyun_names_map_to_reference_names() {
        let l = TorchLayout::LeeJunHyun;
        let cases = [
            ("RRCNN1.Conv_1x1.weight", "enc.0.proj.weight"),
            (
                "RRCNN5.RCNN.1.conv.1.running_var",
                "enc.4.body.1.conv.1.running_var",
            ),
            ("Up5.up.1.weight", "up.0.conv.0.weight"),
            ("Up2.up.2.bias", "up.3.conv.1.bias"),
            (
                "Up_RRCNN5.RCNN.0.conv.0.weight",
                "dec.0.body.0.conv.0.weight",
            ),
            ("Up_RRCNN2.Conv_1x1.bias", "dec.3.proj.bias"),
            ("Att3.psi.1.weight", "att.2.psi.1.weight"),
            ("Conv2.conv.3.weight", "enc.1.body.1.0.weight"),
            (
                "Up_conv4.conv.4.running_mean",
                "dec.1.body.1.1.running_mean",
            ),
            ("Conv_1x1.weight", "head.weight"),
        ];
        for (theirs, ours) in cases {
            assert_eq!(l.to_reference(theirs, 5).as_deref(), Some(ours), "{theirs}");
        }
        assert_eq!(l.to_reference("Up1.up.1.weight", 5), None);
        assert_eq!(l.to_reference("Conv2.conv.2.weight", 5), None);
        assert_eq!(l.to_reference("Maxpool", 5), None);
    }
}
