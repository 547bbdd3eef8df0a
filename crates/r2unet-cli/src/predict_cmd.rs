//! `r2unet predict`: segment image files that belong to no dataset layout.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use r2unet::Error;
use r2unet::Result;
use r2unet::data::LoadOptions;
use r2unet::data::folder::IMAGE_EXTENSIONS as EXTENSIONS;
use r2unet::data::io::ReadLimits;
use r2unet::device::DeviceChoice;
use r2unet::segment::{
    FileResult, FovMode, PredictOptions, TrainedModel, VolumeResult, is_volume, output_stem,
};
use r2unet::threads::map_in_threads;

use crate::data_args::parse_hu_window;
use crate::infer_args::InferArgs;

/// Flags of `r2unet predict`.
#[derive(Args, Debug)]
pub struct PredictArgs {
    /// Image files, NIfTI volumes (.nii, .nii.gz: segmented slice by slice into
    /// <stem>_mask.nii.gz and <stem>_prob.nii.gz with the input's geometry), or
    /// folders whose images (by extension) are all segmented.
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
    /// Axis along which NIfTI volumes (.nii, .nii.gz inputs) are sliced (0, 1, 2).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(0..=2))]
    nifti_axis: u64,
    /// CT window in Hounsfield units for NIfTI volumes in HU, low,high.
    /// Default: the window recorded with a CT model's weights (which 2D CT
    /// slices always get), else -1000,400, the training default.
    #[arg(long, allow_hyphen_values = true)]
    hu_window: Option<String>,
    /// Take only part K of N of the sorted inputs (every N-th from the K-th,
    /// 1-based), for job arrays: N jobs with K = 1..N segment every input once.
    #[arg(long, value_name = "K/N")]
    shard: Option<Shard>,
    #[command(flatten)]
    infer: InferArgs,
    /// Device: cpu, or vulkan / wgpu / cuda when compiled in.
    #[arg(long, default_value = "cpu")]
    device: DeviceChoice,
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

/// What one input gave.
enum Done {
    File(FileResult),
    Volume(VolumeResult),
}

/// `--shard K/N`: the K-th of N parts of the sorted inputs (1-based).
#[derive(Debug, Clone, Copy)]
pub struct Shard {
    k: usize,
    n: usize,
}

impl std::str::FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let bad = || format!("`{s}`: expected K/N with 1 <= K <= N, e.g. 3/8");
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let (k, n): (usize, usize) = (
            k.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if k == 0 || k > n {
            return Err(bad());
        }
        Ok(Shard { k, n })
    }
}

impl Shard {
    /// Every N-th item from the K-th on, in order.
    fn take<T>(self, items: Vec<T>) -> Vec<T> {
        items
            .into_iter()
            .enumerate()
            .filter(|(i, _)| i % self.n == self.k - 1)
            .map(|(_, item)| item)
            .collect()
    }
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
    args.infer.precision.apply(args.device)?;
    let model = match &args.weights {
        Some(w) => TrainedModel::load(w, &device)?,
        None => TrainedModel::shipped("drive", &device)?,
    };
    let fov = FovMode::from_arg(&args.fov, limits)?;
    let load = LoadOptions {
        nifti_axis: args.nifti_axis as usize,
        hu_window: match &args.hu_window {
            Some(text) => parse_hu_window(text)?,
            None => model
                .preprocess
                .hu_window()
                .unwrap_or(LoadOptions::default().hu_window),
        },
        limits,
        ..LoadOptions::default()
    };
    if let (Some(_), Some(trained)) = (&args.hu_window, model.preprocess.hu_window())
        && load.hu_window != trained
    {
        eprintln!(
            "warning: --hu-window applies to NIfTI volumes; 2D slices are windowed as the \
             model was trained, {},{}",
            trained.0, trained.1
        );
    }
    let opts = PredictOptions {
        threshold: args.threshold,
        fov,
        inference: args.infer.inference(
            model.model.config.size_multiple(),
            args.concurrent_images as usize,
        )?,
        limits,
    };
    std::fs::create_dir_all(&args.out).map_err(|e| Error::io(&args.out, e))?;
    let mut files = expand(&args.inputs);
    if let Some(shard) = args.shard {
        files.sort_by_key(|f| f.as_ref().ok().cloned());
        files = shard.take(files);
    }
    let total = files.len();
    let mut used = std::collections::BTreeSet::new();
    // Output names first, in input order, so a clash is reported the same way
    // however the images are scheduled.
    let jobs: Vec<Result<PathBuf>> = files
        .into_iter()
        .map(|file| {
            let path = file?;
            let stem = output_stem(&path);
            if !used.insert(stem.clone()) {
                return Err(Error::invalid(
                    path.display().to_string(),
                    format!("another input already wrote {stem}_*.png; rename one of them"),
                ));
            }
            Ok(path)
        })
        .collect();
    let mut failed = 0;
    for group in jobs.chunks(args.concurrent_images as usize) {
        let started = Instant::now();
        // One thread per image of the group.
        let results: Vec<Option<Result<Done>>> = map_in_threads(group.iter().collect(), |job| {
            let path = job.as_ref().ok()?;
            Some(if is_volume(path) {
                model
                    .segment_volume(path, &args.out, &opts, &load, &device)
                    .map(Done::Volume)
            } else {
                model
                    .segment_file(path, &args.out, &opts, &device)
                    .map(Done::File)
            })
        });
        for (job, result) in group.iter().zip(results) {
            match (job, result.as_ref()) {
                (Ok(path), Some(Ok(Done::Volume(done)))) => println!(
                    "{} -> {} and {} ({}x{}x{} voxels, {:.1}% foreground, {:.2} s)",
                    path.display(),
                    done.outputs[0].display(),
                    done.outputs[1].display(),
                    done.dims[0],
                    done.dims[1],
                    done.dims[2],
                    done.foreground_fraction * 100.0,
                    started.elapsed().as_secs_f64()
                ),
                (Ok(path), Some(Ok(Done::File(done)))) => {
                    for warning in &done.warnings {
                        eprintln!("warning: {warning}");
                    }
                    println!(
                        "{} -> {} ({:.1}% foreground, {:.2} s)",
                        path.display(),
                        done.outputs[2].display(),
                        done.foreground_fraction * 100.0,
                        started.elapsed().as_secs_f64()
                    );
                }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_take_every_nth_input() {
        let s: Shard = "2/3".parse().unwrap();
        assert_eq!(s.take((0..8).collect()), vec![1, 4, 7]);
        let all: Vec<usize> = (1..=3)
            .flat_map(|k| Shard { k, n: 3 }.take((0..8).collect()))
            .collect();
        assert_eq!(all.len(), 8);
        for bad in ["0/3", "4/3", "3", "a/b", "1/0"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }
}
