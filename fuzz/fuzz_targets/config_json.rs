//! The JSON files read back from disk: a model config (then validated and,
//! when valid and small, built), a training config and a run state.
#![no_main]

use libfuzzer_sys::fuzz_target;
use r2unet::device::Device;
use r2unet::model::UNetConfig;
use r2unet::train::{RunState, TrainConfig};

fuzz_target!(|data: &[u8]| {
    if let Ok(config) = serde_json::from_slice::<UNetConfig>(data)
        && config.validate().is_ok()
        && config.widths.iter().sum::<usize>() <= 64
        && config.in_channels <= 4
        && config.out_channels <= 4
        && config.t <= 4
    {
        let _ = config.init(&Device::flex());
    }
    if let Ok(config) = serde_json::from_slice::<TrainConfig>(data) {
        let _ = config.validate();
    }
    let _ = serde_json::from_slice::<RunState>(data);
});
