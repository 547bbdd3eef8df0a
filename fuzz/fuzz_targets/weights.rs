//! Weights files: safetensors bytes with or without r2unet metadata, and the
//! preprocessing recorded in them.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use r2unet::device::Device;
use r2unet::model::{Architecture, Preset, TorchLayout, import_weights_bytes, load_model_bytes};
use r2unet::train::Preprocess;

fuzz_target!(|data: &[u8]| {
    let device = Device::flex();
    let name = Path::new("fuzz.safetensors");
    let _ = load_model_bytes(data, name, &device);
    let _ = Preprocess::of_bytes(data, name);
    // A small fixed config, so a file that claims to fit is really filled.
    let config = Preset::Retina
        .config(Architecture::R2unet)
        .with_widths(vec![2, 4]);
    let _ = import_weights_bytes(&config, data, name, TorchLayout::LeeJunHyun, &device);
});
