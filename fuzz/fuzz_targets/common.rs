//! Shared by the targets: the readers take paths, so each input is written to
//! a per-process file in /dev/shm (memory) under the extension being tested.

use std::path::PathBuf;

/// Writes `data` to a scratch file named `input.<ext>` and returns its path.
pub fn scratch(ext: &str, data: &[u8]) -> PathBuf {
    let dir = std::path::Path::new("/dev/shm").join(format!("r2unet-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch folder");
    let path = dir.join(format!("input.{ext}"));
    std::fs::write(&path, data).expect("scratch file");
    path
}

/// Small limits so a header claiming a huge image is refused, not allocated.
pub fn limits() -> r2unet::data::ReadLimits {
    r2unet::data::ReadLimits {
        max_pixels: 1 << 20,
    }
}
