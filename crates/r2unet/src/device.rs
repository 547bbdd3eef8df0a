//! Compute devices chosen at run time: the pure-Rust CPU backend (`flex`) is
//! always built; GPUs need a cargo feature (`vulkan` or `wgpu`).

use std::fmt;
use std::str::FromStr;

pub use burn::tensor::Device;

use crate::error::{Error, Result};

/// A device the user can name with `--device`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceChoice {
    /// Burn's pure-Rust `flex` CPU backend (default, always available).
    Cpu,
    /// A GPU through wgpu pinned to Vulkan (cargo feature `vulkan`).
    Vulkan,
    /// A GPU through wgpu on the best API it finds (cargo feature `wgpu`).
    Wgpu,
    /// NVIDIA CUDA (cargo feature `cuda`; Burn downloads an LLVM bundle to build it).
    Cuda,
}

impl DeviceChoice {
    /// Every choice, for help texts.
    pub const ALL: [DeviceChoice; 4] = [
        DeviceChoice::Cpu,
        DeviceChoice::Vulkan,
        DeviceChoice::Wgpu,
        DeviceChoice::Cuda,
    ];

    /// The `--device` name.
    pub fn name(self) -> &'static str {
        match self {
            DeviceChoice::Cpu => "cpu",
            DeviceChoice::Vulkan => "vulkan",
            DeviceChoice::Wgpu => "wgpu",
            DeviceChoice::Cuda => "cuda",
        }
    }

    /// Whether this build includes the backend.
    pub fn compiled(self) -> bool {
        match self {
            DeviceChoice::Cpu => true,
            DeviceChoice::Vulkan => cfg!(feature = "vulkan"),
            DeviceChoice::Wgpu => cfg!(feature = "wgpu"),
            DeviceChoice::Cuda => cfg!(feature = "cuda"),
        }
    }

    /// The Burn device for inference (no autodiff). Use `.autodiff()` on it to train.
    ///
    /// # Errors
    ///
    /// [`Error::Device`] naming the cargo feature to build with when the backend
    /// is not compiled in.
    pub fn device(self) -> Result<Device> {
        if !self.compiled() {
            return Err(Error::Device(format!(
                "device `{}` is not compiled into this build; rebuild with \
                 `cargo build --release -p r2unet-cli --features {}`",
                self.name(),
                self.name()
            )));
        }
        Ok(self.make())
    }

    fn make(self) -> Device {
        match self {
            #[cfg(feature = "vulkan")]
            DeviceChoice::Vulkan => Device::vulkan(burn::tensor::DeviceKind::DefaultDevice),
            #[cfg(feature = "wgpu")]
            DeviceChoice::Wgpu => Device::wgpu(burn::tensor::DeviceKind::DefaultDevice),
            #[cfg(feature = "cuda")]
            DeviceChoice::Cuda => Device::cuda(0),
            _ => Device::flex(),
        }
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DeviceChoice {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        DeviceChoice::ALL
            .into_iter()
            .find(|d| d.name() == s)
            .ok_or_else(|| {
                Error::invalid(
                    "device",
                    format!("`{s}`; expected one of cpu, vulkan, wgpu, cuda"),
                )
            })
    }
}
