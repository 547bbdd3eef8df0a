//! Flags of whole-image inference, shared by `eval`, `predict` and `demo`.

use clap::{Args, ValueEnum};
use r2unet::infer::{Blend, InferMode, Inference, Rescale, SlidingWindow};

/// `--mode`.
#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum ModeArg {
    /// The whole image at once, reflect-padded to a multiple of 2^(depth-1) (fast).
    Single,
    /// Overlapping windows blended together (the paper's patch stitching).
    Sliding,
}

/// `--blend`.
#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum BlendArg {
    /// Every window pixel weighs the same.
    Mean,
    /// Window centres weigh more (sigma = window/8).
    Gaussian,
}

/// `--rescale`.
#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum RescaleArg {
    /// Fundus images whose FOV diameter differs by more than 5% from the training
    /// images' are resized to it, segmented, and the map resized back.
    Auto,
    /// Every image at its own size.
    None,
}

/// `--precision`.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrecisionArg {
    /// Single precision.
    F32,
    /// The 3x3 convolutions in bfloat16 with f32 sums (CPUs with AVX512_BF16; on
    /// AMX tiles where the CPU has AMX-BF16).
    Bf16,
}

impl PrecisionArg {
    /// The library's precision.
    pub fn precision(self) -> r2unet::kernels::Precision {
        match self {
            PrecisionArg::F32 => r2unet::kernels::Precision::F32,
            PrecisionArg::Bf16 => r2unet::kernels::Precision::Bf16,
        }
    }

    /// Sets the kernels' arithmetic; bf16 only on the CPU.
    pub fn apply(self, device: r2unet::device::DeviceChoice) -> anyhow::Result<()> {
        anyhow::ensure!(
            self == PrecisionArg::F32 || device == r2unet::device::DeviceChoice::Cpu,
            "--precision bf16 runs on r2unet's CPU kernels; use --device cpu"
        );
        // The library's error names the setting ("invalid precision bf16: ...").
        Ok(r2unet::kernels::set_precision(self.precision())?)
    }
}

/// How probability maps are produced.
#[derive(Args, Debug, Clone)]
pub struct InferArgs {
    /// Inference mode.
    #[arg(long, value_enum, default_value = "single")]
    pub mode: ModeArg,
    /// Sliding window side in pixels (a multiple of 2^(depth-1)).
    #[arg(long, default_value_t = 48)]
    pub window: usize,
    /// Step between sliding windows, 1..=window.
    #[arg(long, default_value_t = 8)]
    pub stride: usize,
    /// Blending of overlapping windows.
    #[arg(long, value_enum, default_value = "gaussian")]
    pub blend: BlendArg,
    /// Windows per forward pass.
    #[arg(long, default_value_t = 32)]
    pub window_batch: usize,
    /// Flip test-time augmentation: average over the image and its 3 flips (4x slower).
    #[arg(long)]
    pub tta: bool,
    /// Memory budget of the images segmented at once (e.g. 2GiB, 512MiB):
    /// a single pass estimated above its share goes by overlapping tiles,
    /// which give the same probabilities.
    #[arg(long, default_value = "2GiB", value_parser = parse_bytes)]
    pub max_memory: u64,
    /// Fundus models: bring each image to the FOV diameter of the training images
    /// (recorded in the weights) before segmenting, and the result back to its size.
    #[arg(long, value_enum, default_value = "auto")]
    pub rescale: RescaleArg,
    /// Arithmetic of the 3x3 convolutions: bf16 needs AVX512_BF16 and is refused elsewhere
    /// (DRIVE: F1 and AUC within 0.0001 of f32; on AMX tiles about twice as fast as f32,
    /// without AMX slower: see BENCHMARKS.md).
    #[arg(long, value_enum, default_value = "f32")]
    pub precision: PrecisionArg,
}

/// `2GiB`, `512MiB`, `64KiB` or plain bytes (`G`, `M`, `K`, `GB` ... read as powers of 1024).
fn parse_bytes(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let digits = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(digits);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}`: expected a size such as 2GiB, 512MiB or 1073741824"))?;
    let scale = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1u64,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        other => {
            return Err(format!(
                "`{text}`: unknown unit `{other}` (use KiB, MiB, GiB)"
            ));
        }
    };
    let bytes = value * scale as f64;
    if !(bytes >= 1.0 && bytes.is_finite()) {
        return Err(format!("`{text}`: expected a positive size"));
    }
    Ok(bytes as u64)
}

impl InferArgs {
    /// The validated settings for a model whose sizes must be multiples of
    /// `size_multiple`, `concurrent` images sharing the memory budget.
    pub fn inference(&self, size_multiple: usize, concurrent: usize) -> anyhow::Result<Inference> {
        let mode = match self.mode {
            ModeArg::Single => InferMode::SinglePass,
            ModeArg::Sliding => {
                let sliding = SlidingWindow {
                    window: self.window,
                    stride: self.stride,
                    blend: match self.blend {
                        BlendArg::Mean => Blend::Mean,
                        BlendArg::Gaussian => Blend::Gaussian,
                    },
                    batch: self.window_batch,
                };
                sliding
                    .validate(size_multiple)
                    .map_err(|e| anyhow::anyhow!("{e} (--window, --stride, --window-batch)"))?;
                InferMode::Sliding(sliding)
            }
        };
        Ok(Inference {
            mode,
            flip_tta: self.tta,
            max_memory: self.max_memory / concurrent.max(1) as u64,
            rescale: match self.rescale {
                RescaleArg::Auto => Rescale::Auto,
                RescaleArg::None => Rescale::None,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::parse_bytes;

    #[test]
    fn sizes_parse_in_powers_of_1024() {
        assert_eq!(parse_bytes("2GiB"), Ok(2 << 30));
        assert_eq!(parse_bytes("512 MiB"), Ok(512 << 20));
        assert_eq!(parse_bytes("1.5g"), Ok(3 << 29));
        assert_eq!(parse_bytes("1000"), Ok(1000));
        for bad in ["", "GiB", "2XB", "0", "-1G"] {
            assert!(parse_bytes(bad).is_err(), "{bad}");
        }
    }
}
