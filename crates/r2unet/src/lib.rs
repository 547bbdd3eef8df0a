//! # r2unet
//!
//! R2U-Net — the Recurrent Residual Convolutional Neural Network based on
//! U-Net (Alom et al. 2018, arXiv:1802.06955) — and its family (U-Net,
//! ResU-Net, RU-Net, R2U-Net, Attention R2U-Net) for medical image
//! segmentation, on [Burn](https://burn.dev).
//!
//! ```no_run
//! use r2unet::model::{Architecture, Preset};
//! use r2unet::device::DeviceChoice;
//!
//! let device = DeviceChoice::Cpu.device().unwrap();
//! let model = Preset::Retina.config(Architecture::R2unet).init(&device);
//! assert_eq!(model.num_trainable_params(), 612_369);
//! ```
//!
//! Weights are safetensors files with the PyTorch reference's tensor names, so
//! [`model::load_weights`] also reads a `state_dict` saved from the PyTorch R2U-Net.

// Safe Rust everywhere but the CPU kernels, whose SIMD intrinsics and
// uninitialised output buffers need `unsafe` (each block says why it holds).
#![deny(unsafe_code)]

pub mod atomic;
pub mod bench;
pub mod data;
pub mod device;
pub mod error;
pub mod eval;
pub mod infer;
#[allow(unsafe_code)]
pub mod kernels;
pub mod model;
pub mod onnx;
pub mod parity;
pub mod plot;
pub mod render;
pub mod reproduce;
pub mod segment;
pub mod threads;
pub mod train;

pub use error::{Error, Result};
