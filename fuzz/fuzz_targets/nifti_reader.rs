//! NIfTI volumes (`.nii` and `.nii.gz`), image and label from the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use r2unet::data::LoadOptions;
use r2unet::data::nifti::load_volume;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, file)) = data.split_first() else {
        return;
    };
    let ext = if pick % 2 == 0 { "nii" } else { "nii.gz" };
    let path = common::scratch(ext, file);
    let opts = LoadOptions {
        limits: common::limits(),
        nifti_axis: usize::from(pick / 2 % 3),
        ..LoadOptions::default()
    };
    let _ = load_volume("fuzz", &path, &path, &opts);
});
