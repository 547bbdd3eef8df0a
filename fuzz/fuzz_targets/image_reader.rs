//! Every image format path of `read_image` and `read_mask`: the first byte
//! picks the extension, the rest is the file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use r2unet::data::LabelRule;
use r2unet::data::io::{read_image, read_mask};

#[path = "common.rs"]
mod common;

const EXTENSIONS: [&str; 10] = [
    "png", "jpg", "tif", "gif", "bmp", "ppm", "pgm", "pbm", "ppm.gz", "png.gz",
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, file)) = data.split_first() else {
        return;
    };
    let path = common::scratch(EXTENSIONS[pick as usize % EXTENSIONS.len()], file);
    let _ = read_image(&path, common::limits());
    let _ = read_mask(&path, common::limits(), LabelRule::Binary);
    let _ = read_mask(&path, common::limits(), LabelRule::Threshold(0.5));
});
