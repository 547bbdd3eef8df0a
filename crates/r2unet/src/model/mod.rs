//! The R2U-Net model family (Alom, Hasan, Yakopcic, Taha, Asari, "Recurrent
//! Residual Convolutional Neural Network based on U-Net (R2U-Net) for Medical
//! Image Segmentation", 2018, arXiv:1802.06955): one U-Net skeleton
//! ([`UNet`]) whose block kind makes it U-Net, ResU-Net, RU-Net or R2U-Net,
//! plus Attention R2U-Net.

mod attention;
mod block;
mod config;
mod layout;
mod norm;
mod preprocess;
mod state;
mod summary;
mod unet;

pub use attention::AttentionGate;
pub use block::{Block, Rcl};
pub use config::{Architecture, BlockKind, BnMode, Preset, UNetConfig};
pub use layout::TorchLayout;
pub use norm::BatchNorm2d;
pub use preprocess::{PREPROCESS_KEY, Preprocess};
pub(crate) use state::tensor_values;
pub use state::{
    NamedTensor, config_path, import_weights, import_weights_bytes, load_model, load_model_bytes,
    load_weights, metadata_of_bytes, read_config, read_metadata,
};
pub use summary::{Summary, conv_flops};
pub use unet::UNet;
