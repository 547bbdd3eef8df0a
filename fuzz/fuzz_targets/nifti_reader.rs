//! NIfTI volumes (`.nii` and `.nii.gz`), image and label from the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use r2unet::data::LoadOptions;
use r2unet::data::nifti::load_volume;

#[path = "common.rs"]
mod common;

static QUIET: std::sync::Once = std::sync::Once::new();

fuzz_target!(|data: &[u8]| {
    // The reader catches panics inside the `nifti` crate and returns an error;
    // libFuzzer's panic hook would abort on those caught panics, so a silent
    // hook replaces it. An uncaught panic still aborts at the FFI boundary.
    QUIET.call_once(|| std::panic::set_hook(Box::new(|_| {})));
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
