//! `read_ct`: TIFF slices of any sample format (int16 HU, float, 8-bit).
#![no_main]

use libfuzzer_sys::fuzz_target;
use r2unet::data::io::read_ct;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let path = common::scratch("tif", data);
    let _ = read_ct(&path, common::limits());
});
