//! `r2unet predict`: segment image files that belong to no dataset layout.

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;
use r2unet::atomic::write_atomic;
use r2unet::data::folder::IMAGE_EXTENSIONS as EXTENSIONS;
use r2unet::data::fov::compute_fov;
use r2unet::data::io::{LabelRule, ReadLimits, read_image, read_mask};
use r2unet::data::preprocess::{luminance, resize_image};
use r2unet::data::{FovSource, Image, Mask, Sample};
use r2unet::device::DeviceChoice;
use r2unet::eval::report::file_stem;
use r2unet::infer::Inference;
use r2unet::model::{UNet, load_model_bytes};
use r2unet::render::{mask_overlay, mask_png, probability_png, rgb_png};
use r2unet::threads::map_in_threads;
use r2unet::train::Preprocess;
use r2unet::{Error, Result};

use crate::eval_cmd::load_trained;
use crate::infer_args::InferArgs;

/// The shipped R2U-Net trained on DRIVE, used when `--weights` is not given.
const SHIPPED: &[u8] = include_bytes!("../../../weights/drive-r2unet.safetensors");
/// How the shipped weights are named in messages.
const SHIPPED_NAME: &str = "shipped weights drive-r2unet.safetensors";

/// Flags of `r2unet predict`.
#[derive(Args, Debug)]
pub struct PredictArgs {
    /// Image files, or folders whose images (by extension) are all segmented.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Weights file (safetensors with its preprocessing recorded, or in a run
    /// folder). Default: the shipped R2U-Net trained on DRIVE, for fundus photographs.
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Output folder for <stem>_prob.png (16-bit), <stem>_mask.png and <stem>_overlay.png.
    #[arg(long, short)]
    out: PathBuf,
    /// Probability threshold of the mask, in (0, 1).
    #[arg(long, default_value_t = 0.5)]
    threshold: f32,
    /// Field of view: auto (computed for fundus models, whole image otherwise),
    /// none (whole image), or a mask FILE applied to every input.
    #[arg(long, default_value = "auto")]
    fov: String,
    /// Refuse images whose header claims more pixels than this (checked before decoding).
    #[arg(long, default_value_t = ReadLimits::default().max_pixels)]
    max_pixels: u64,
    /// Images segmented at once, each in its own thread (1: one at a time, least memory).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=64))]
    concurrent_images: u64,
    #[command(flatten)]
    infer: InferArgs,
    /// Device: cpu, or vulkan / wgpu / cuda when compiled in.
    #[arg(long, default_value = "cpu")]
    device: DeviceChoice,
}

/// Where each output of one input goes.
struct Outputs {
    prob: PathBuf,
    mask: PathBuf,
    overlay: PathBuf,
}

/// The input files: files as given, folders expanded to their images, sorted.
fn expand(inputs: &[PathBuf]) -> Vec<Result<PathBuf>> {
    let mut files = Vec::new();
    for input in inputs {
        if input.is_dir() {
            let listed = std::fs::read_dir(input).map_err(|e| Error::io(input, e));
            let mut found: Vec<PathBuf> = match listed {
                Ok(read) => read
                    .filter_map(|item| item.ok().map(|i| i.path()))
                    .filter(|p| {
                        p.is_file()
                            && p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                                EXTENSIONS.contains(&e.to_ascii_lowercase().as_str())
                            })
                    })
                    .collect(),
                Err(e) => {
                    files.push(Err(e));
                    continue;
                }
            };
            if found.is_empty() {
                files.push(Err(Error::invalid(
                    input.display().to_string(),
                    format!("no images ({}) in this folder", EXTENSIONS.join(", ")),
                )));
            }
            found.sort();
            files.extend(found.into_iter().map(Ok));
        } else {
            files.push(Ok(input.clone()));
        }
    }
    files
}

/// The image converted to the model's channel count (grey repeated to RGB,
/// RGB to BT.601 grey); the retina preprocessing makes its own grey.
fn fit_channels(image: Image, preprocess: &Preprocess, channels: usize) -> Result<Image> {
    if matches!(preprocess, Preprocess::Retina { .. }) || image.channels == channels {
        return Ok(image);
    }
    match (image.channels, channels) {
        (3, 1) => Ok(luminance(&image)),
        (1, 3) => {
            let data = image.data.iter().flat_map(|&v| [v, v, v]).collect();
            Ok(Image::new(image.width, image.height, 3, data))
        }
        (have, want) => Err(Error::invalid(
            "image",
            format!("{have} channels; the model takes {want}"),
        )),
    }
}

/// Everything `predict` needs to segment one file.
struct Segmenter<'a> {
    model: UNet,
    preprocess: Preprocess,
    inference: Inference,
    threshold: f32,
    fov: FovArg,
    limits: ReadLimits,
    device: &'a r2unet::device::Device,
}

enum FovArg {
    Auto,
    None,
    File(Mask, PathBuf),
}

impl Segmenter<'_> {
    /// Segments `path` and writes its three PNGs; returns the foreground fraction in the FOV.
    fn segment(&self, path: &Path, out: &Outputs) -> Result<f64> {
        let image = read_image(path, self.limits)?;
        let (w, h) = (image.width, image.height);
        let fov = match &self.fov {
            FovArg::Auto if matches!(self.preprocess, Preprocess::Retina { .. }) => {
                compute_fov(&image)
            }
            FovArg::Auto | FovArg::None => Mask::filled(w, h, 1),
            FovArg::File(mask, file) => {
                if (mask.width, mask.height) != (w, h) {
                    return Err(Error::MaskSize {
                        path: file.clone(),
                        image: path.to_path_buf(),
                        expected_w: w,
                        expected_h: h,
                        found_w: mask.width,
                        found_h: mask.height,
                    });
                }
                mask.clone()
            }
        };
        let image = fit_channels(image, &self.preprocess, self.model.config.in_channels)?;
        let sample = Sample {
            id: file_stem_of(path),
            label: Mask::filled(w, h, 0),
            fov,
            fov_source: FovSource::Computed,
            image,
        };
        let input = self.preprocess.apply(&sample)?;
        let mut probs = self
            .inference
            .predict(&self.model, &input.image, self.device)?;
        if (probs.width, probs.height) != (w, h) {
            probs = resize_image(&probs, w, h);
        }
        let mut probs = probs.data;
        for (p, &f) in probs.iter_mut().zip(&sample.fov.data) {
            if f == 0 {
                *p = 0.0;
            }
        }
        let mask: Vec<u8> = probs
            .iter()
            .map(|&p| u8::from(p >= self.threshold))
            .collect();
        write_atomic(&out.prob, &probability_png(&probs, w, h)?)?;
        write_atomic(&out.mask, &mask_png(&mask, w, h)?)?;
        let overlay = mask_overlay(&sample.image, &mask, Some(&sample.fov.data));
        write_atomic(&out.overlay, &rgb_png(&overlay)?)?;
        let inside = sample.fov.count().max(1);
        Ok(mask.iter().filter(|&&m| m != 0).count() as f64 / inside as f64)
    }
}

/// The output stem of an input: its name without `.gz` and the image extension.
fn file_stem_of(path: &Path) -> String {
    let name = path
        .file_name()
        .map_or("image".into(), |s| s.to_string_lossy().into_owned());
    let base = name.strip_suffix(".gz").unwrap_or(&name);
    let stem = base.rsplit_once('.').map_or(base, |(stem, _)| stem);
    file_stem(if stem.is_empty() { base } else { stem })
}

pub fn run(args: PredictArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.threshold > 0.0 && args.threshold < 1.0,
        "--threshold {}: expected a value in (0, 1)",
        args.threshold
    );
    anyhow::ensure!(args.max_pixels > 0, "--max-pixels must be positive");
    let limits = ReadLimits {
        max_pixels: args.max_pixels,
    };
    let device = args.device.device()?;
    let (model, preprocess) = match &args.weights {
        Some(w) => {
            let (model, preprocess, _) = load_trained(None, Some(w), true, &device)?;
            (model, preprocess)
        }
        None => {
            let name = Path::new(SHIPPED_NAME);
            let model = load_model_bytes(SHIPPED, name, &device)?;
            let preprocess = Preprocess::of_bytes(SHIPPED, name)?
                .ok_or_else(|| anyhow::anyhow!("{SHIPPED_NAME}: no preprocessing recorded"))?;
            (model, preprocess)
        }
    };
    let fov = match args.fov.as_str() {
        "auto" => FovArg::Auto,
        "none" => FovArg::None,
        file => {
            let path = PathBuf::from(file);
            let mask = read_mask(&path, limits, LabelRule::Binary).map_err(|e| {
                anyhow::anyhow!("--fov {file}: {e} (expected auto, none or a mask file)")
            })?;
            FovArg::File(mask, path)
        }
    };
    let segmenter = Segmenter {
        inference: args.infer.inference(model.config.size_multiple())?,
        model,
        preprocess,
        threshold: args.threshold,
        fov,
        limits,
        device: &device,
    };
    std::fs::create_dir_all(&args.out).map_err(|e| Error::io(&args.out, e))?;
    let files = expand(&args.inputs);
    let total = files.len();
    let mut used = std::collections::BTreeSet::new();
    // Output names first, in input order, so a clash is reported the same way
    // however the images are scheduled.
    let jobs: Vec<Result<(PathBuf, Outputs)>> = files
        .into_iter()
        .map(|file| {
            let path = file?;
            let stem = file_stem_of(&path);
            if !used.insert(stem.clone()) {
                return Err(Error::invalid(
                    path.display().to_string(),
                    format!("another input already wrote {stem}_*.png; rename one of them"),
                ));
            }
            let at = |suffix: &str| args.out.join(format!("{stem}_{suffix}.png"));
            let outputs = Outputs {
                prob: at("prob"),
                mask: at("mask"),
                overlay: at("overlay"),
            };
            Ok((path, outputs))
        })
        .collect();
    let mut failed = 0;
    for group in jobs.chunks(args.concurrent_images as usize) {
        let started = Instant::now();
        // One thread per image of the group.
        let results: Vec<Option<Result<f64>>> = map_in_threads(group.iter().collect(), |job| {
            let (path, outputs) = job.as_ref().ok()?;
            Some(segmenter.segment(path, outputs))
        });
        for (job, result) in group.iter().zip(results) {
            match (job, result.as_ref()) {
                (Ok((path, outputs)), Some(Ok(fraction))) => println!(
                    "{} -> {} ({:.1}% foreground, {:.2} s)",
                    path.display(),
                    outputs.overlay.display(),
                    fraction * 100.0,
                    started.elapsed().as_secs_f64()
                ),
                (Err(e), _) | (_, Some(Err(e))) => {
                    failed += 1;
                    eprintln!("error: {e}; skipped");
                }
                (Ok(_), None) => unreachable!("every readable input is segmented"),
            }
        }
    }
    println!(
        "segmented {} of {total} input(s) into {}",
        total - failed,
        args.out.display()
    );
    anyhow::ensure!(failed == 0, "{failed} of {total} input(s) failed");
    Ok(())
}
