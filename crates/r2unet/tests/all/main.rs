//! The library's integration tests, one binary with a module per concept.

mod data_files;
mod data_real;
mod image_files;
mod import;
mod model_shapes;
mod parity;
mod preprocess;
mod train;
mod weights;

use std::path::PathBuf;

/// Shape and f32 values of tensor `name` in a safetensors fixture.
pub fn read_f32(path: &std::path::Path, name: &str) -> (Vec<usize>, Vec<f32>) {
    r2unet::parity::read_f32(path, name).unwrap()
}

/// The device the parity tests run on: `R2UNET_TEST_DEVICE` (cpu, vulkan,
/// wgpu, cuda; the feature must be compiled in), else the CPU.
pub fn test_device() -> burn::tensor::Device {
    match std::env::var("R2UNET_TEST_DEVICE") {
        Ok(name) => {
            let choice: r2unet::device::DeviceChoice = name.parse().expect("a device name");
            choice
                .device()
                .expect("the device is compiled in and present")
        }
        Err(_) => burn::tensor::Device::flex(),
    }
}

/// Folder of the committed test fixtures.
pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The largest element-wise difference of two equally long slices.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    r2unet::parity::max_abs_diff(a, b)
}
