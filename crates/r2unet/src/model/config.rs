//! Model configuration: the architecture (block kind), widths, `t`, batch-norm mode,
//! and the named presets of the paper and of the common PyTorch code.

use std::fmt;
use std::str::FromStr;

use burn::config::Config;
use serde::{Deserialize, Serialize};

use crate::error::Error;

/// Which member of the family: one U-Net skeleton, four block kinds, plus attention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Architecture {
    /// U-Net: two Conv3x3+BN+ReLU per block.
    Unet,
    /// ResU-Net: 1x1 projection, two Conv3x3+BN+ReLU, residual shortcut.
    Resunet,
    /// RU-Net: 1x1 projection, two recurrent convolutional layers (RCL).
    Runet,
    /// R2U-Net: 1x1 projection, two RCLs, residual shortcut (the RRCNN block).
    R2unet,
    /// Attention R2U-Net: R2U-Net with additive attention gates on the skips.
    Attr2unet,
}

impl Architecture {
    /// All architectures, in the order the paper presents them.
    pub const ALL: [Architecture; 5] = [
        Architecture::Unet,
        Architecture::Resunet,
        Architecture::Runet,
        Architecture::R2unet,
        Architecture::Attr2unet,
    ];

    /// The block kind this architecture uses in every encoder and decoder stage.
    pub fn block(self) -> BlockKind {
        match self {
            Architecture::Unet => BlockKind::Plain,
            Architecture::Resunet => BlockKind::Residual,
            Architecture::Runet => BlockKind::Recurrent,
            Architecture::R2unet | Architecture::Attr2unet => BlockKind::RecurrentResidual,
        }
    }

    /// Whether the skip connections pass through attention gates.
    pub fn attention(self) -> bool {
        self == Architecture::Attr2unet
    }

    /// The command-line / file name of the architecture.
    pub fn name(self) -> &'static str {
        match self {
            Architecture::Unet => "unet",
            Architecture::Resunet => "resunet",
            Architecture::Runet => "runet",
            Architecture::R2unet => "r2unet",
            Architecture::Attr2unet => "attr2unet",
        }
    }
}

impl fmt::Display for Architecture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Architecture {
    type Err = Error;
    fn from_str(s: &str) -> std::result::Result<Self, Error> {
        Architecture::ALL
            .into_iter()
            .find(|a| a.name() == s.to_ascii_lowercase())
            .ok_or_else(|| {
                Error::invalid(
                    "model",
                    format!("`{s}`; expected one of unet, resunet, runet, r2unet, attr2unet"),
                )
            })
    }
}

/// The block of a U-Net stage (see `../shared/PAPER.md`, "four block kinds").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockKind {
    /// Two Conv3x3+BN+ReLU.
    Plain,
    /// 1x1 projection `p`, then `p + f2(f1(p))`.
    Residual,
    /// 1x1 projection `p`, then `rcl2(rcl1(p))`.
    Recurrent,
    /// 1x1 projection `p`, then `p + rcl2(rcl1(p))`.
    RecurrentResidual,
}

impl BlockKind {
    /// Whether the block starts with a 1x1 projection to its width.
    pub fn has_projection(self) -> bool {
        self != BlockKind::Plain
    }

    /// Whether the block adds its projected input to its output.
    pub fn has_residual(self) -> bool {
        matches!(self, BlockKind::Residual | BlockKind::RecurrentResidual)
    }

    /// Recurrent steps of each layer of the block for a model with `t` steps.
    pub fn steps(self, t: usize) -> usize {
        match self {
            BlockKind::Recurrent | BlockKind::RecurrentResidual => t,
            BlockKind::Plain | BlockKind::Residual => 0,
        }
    }
}

/// How batch normalisation is arranged inside a recurrent layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BnMode {
    /// One Conv+BN+ReLU reused over the t+1 steps: exactly the public PyTorch
    /// R2U-Net (use it to import those checkpoints).
    Shared,
    /// The convolution is shared, each of the t+1 steps has its own BatchNorm.
    /// Measured far better at test time (`../shared/PAPER.md`).
    PerStep,
}

impl BnMode {
    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            BnMode::Shared => "shared",
            BnMode::PerStep => "per-step",
        }
    }
}

impl fmt::Display for BnMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for BnMode {
    type Err = Error;
    fn from_str(s: &str) -> std::result::Result<Self, Error> {
        match s {
            "shared" => Ok(BnMode::Shared),
            "per-step" | "per_step" | "perstep" => Ok(BnMode::PerStep),
            _ => Err(Error::invalid(
                "batch-norm mode",
                format!("`{s}`; expected `shared` or `per-step`"),
            )),
        }
    }
}

/// Configuration of one U-Net-family model.
#[derive(Config, Debug, PartialEq)]
pub struct UNetConfig {
    /// Which member of the family.
    pub architecture: Architecture,
    /// Input image channels (1 for the grey retina protocol, 3 for RGB).
    pub in_channels: usize,
    /// Output channels (1 logit map for binary segmentation).
    #[config(default = 1)]
    pub out_channels: usize,
    /// Feature widths of the encoder stages; the depth is `widths.len()`.
    pub widths: Vec<usize>,
    /// Recurrent steps `t` of each recurrent convolutional layer (paper: 2; 3 for lung).
    #[config(default = 2)]
    pub t: usize,
    /// Batch-norm arrangement of the recurrent layers (ignored by U-Net and ResU-Net's
    /// parameter count, but it changes ResU-Net's tensor names as in the reference).
    #[config(default = "BnMode::PerStep")]
    pub bn: BnMode,
    /// Patch (or image) side the model is meant for; used for FLOP counts and defaults.
    #[config(default = 48)]
    pub patch_size: usize,
}

/// The named width presets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    /// The paper's retina models: widths 16,32,64,128, grey input, 48x48 patches.
    Retina,
    /// The common PyTorch R2U-Net: widths 64..1024, RGB input, 256x256 images.
    Classic,
}

impl Preset {
    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Preset::Retina => "retina",
            Preset::Classic => "classic",
        }
    }

    /// The config of `architecture` at this preset (t = 2, per-step BN).
    pub fn config(self, architecture: Architecture) -> UNetConfig {
        match self {
            Preset::Retina => UNetConfig::new(architecture, 1, vec![16, 32, 64, 128]),
            Preset::Classic => {
                UNetConfig::new(architecture, 3, vec![64, 128, 256, 512, 1024]).with_patch_size(256)
            }
        }
    }
}

impl FromStr for Preset {
    type Err = Error;
    fn from_str(s: &str) -> std::result::Result<Self, Error> {
        match s {
            "retina" => Ok(Preset::Retina),
            "classic" => Ok(Preset::Classic),
            _ => Err(Error::invalid(
                "preset",
                format!("`{s}`; expected `retina` or `classic`"),
            )),
        }
    }
}

impl UNetConfig {
    /// Checks what a user can get wrong: at least one width, none zero, channels > 0,
    /// and inputs divisible by `2^(depth-1)`.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] naming the offending setting.
    pub fn validate(&self) -> crate::Result<()> {
        if self.widths.is_empty() || self.widths.contains(&0) {
            return Err(Error::invalid(
                "widths",
                format!("{:?}; expected one or more positive widths", self.widths),
            ));
        }
        if self.in_channels == 0 || self.out_channels == 0 {
            return Err(Error::invalid(
                "channels",
                "input and output channels must be positive",
            ));
        }
        if self.t > 16 {
            return Err(Error::invalid(
                "t",
                format!("{}; expected 0..=16 recurrent steps", self.t),
            ));
        }
        let factor = self.size_multiple();
        if self.patch_size == 0 || !self.patch_size.is_multiple_of(factor) {
            return Err(Error::invalid(
                "patch size",
                format!(
                    "{}; expected a positive multiple of {factor} (2^(depth-1))",
                    self.patch_size
                ),
            ));
        }
        Ok(())
    }

    /// The same config with other encoder widths (the depth follows).
    pub fn with_widths(mut self, widths: Vec<usize>) -> Self {
        self.widths = widths;
        self
    }

    /// The same config with another number of input channels.
    pub fn with_in_channels(mut self, channels: usize) -> Self {
        self.in_channels = channels;
        self
    }

    /// Input sides must be multiples of this (`2^(depth-1)`), because of the poolings.
    pub fn size_multiple(&self) -> usize {
        1 << (self.widths.len().saturating_sub(1))
    }
}
