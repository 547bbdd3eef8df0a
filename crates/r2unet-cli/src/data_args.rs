//! Flags that say where a dataset is and how to read it, shared by the
//! commands that read data.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use r2unet::data::{
    Annotator, DatasetKind, FovChoice, LabelRule, LoadOptions, ReadLimits, SampleIter, Split,
    split_samples,
};

/// Which observer's labels (`--annotator`).
#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum AnnotatorArg {
    /// DRIVE 1st_manual, STARE labels-ah, CHASE _1stHO (the standard).
    First,
    /// DRIVE 2nd_manual (test only), STARE labels-vk, CHASE _2ndHO.
    Second,
}

/// Where the retina field of view comes from (`--fov`).
#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum FovArg {
    /// The dataset's masks (DRIVE mask/, STARE fov-mask-soares/); computed for CHASE_DB1.
    Given,
    /// STARE's V-GAN masks (fov-mask-vgan/).
    Vgan,
    /// Computed from the image (red-channel threshold, largest component, erosion).
    Computed,
}

/// `--dataset`, `--data` and the reading options.
#[derive(Args, Debug, Clone)]
pub struct DataArgs {
    /// Dataset layout: drive, stare, chase, ph2, lung, folder (images/ + masks/), nifti;
    /// `train` and `eval` also take `synthetic` (generated retina images, no --data).
    /// Required except with `train --resume`.
    #[arg(long)]
    pub dataset: Option<String>,
    /// The dataset folder.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Ground-truth observer.
    #[arg(long, value_enum, default_value = "first")]
    pub annotator: AnnotatorArg,
    /// Field of view of retina images.
    #[arg(long, value_enum, default_value = "given")]
    pub fov: FovArg,
    /// Accept non-binary labels: foreground above this fraction of full scale (0..1).
    #[arg(long)]
    pub label_threshold: Option<f32>,
    /// CT window in Hounsfield units, low,high (lung CT and NIfTI volumes in HU)
    /// [default: for `eval`, the window the model was trained with; else -1000,400].
    #[arg(long, allow_hyphen_values = true)]
    pub hu_window: Option<String>,
    /// Axis along which NIfTI volumes are sliced (0, 1, 2).
    #[arg(long, default_value_t = 2)]
    pub nifti_axis: usize,
    /// Leave-one-out fold K (from 0): the K-th image of the whole set in sorted order
    /// is the test split, all the others the training split.
    #[arg(long, value_name = "K")]
    pub leave_out: Option<usize>,
    /// Refuse images whose header claims more pixels than this (checked before decoding).
    #[arg(long, default_value_t = ReadLimits::default().max_pixels)]
    pub max_pixels: u64,
}

/// `--dataset`/`--data` resolved, with the validated reading options.
pub struct DataSource {
    /// The layout and folder, or `None` for the built-in synthetic set.
    pub dir: Option<(DatasetKind, PathBuf)>,
    /// How to read it.
    pub options: LoadOptions,
}

impl DataSource {
    /// The dataset's name for messages and titles (`synthetic` for the built-in set).
    pub fn name(&self) -> String {
        self.dir
            .as_ref()
            .map_or("synthetic".to_string(), |(k, _)| k.to_string())
    }

    /// The images of one split.
    pub fn samples(&self, split: Split) -> r2unet::Result<SampleIter> {
        let dir = self.dir.as_ref().map(|(k, d)| (*k, d.as_path()));
        split_samples(dir, split, &self.options)
    }
}

impl DataArgs {
    /// The source and its options, both checked; CT slices windowed by
    /// `--hu-window`, else by `trained` (the window the evaluated model was
    /// trained with, so `eval` feeds it what training fed it), else the default.
    pub fn resolve(&self, trained: Option<(f32, f32)>) -> anyhow::Result<DataSource> {
        let mut options = self.options()?;
        if let (None, Some(window)) = (&self.hu_window, trained) {
            options.hu_window = window;
        }
        Ok(DataSource {
            options,
            dir: self.source()?,
        })
    }

    /// The layout and folder, or `None` for the built-in synthetic set.
    pub fn source(&self) -> anyhow::Result<Option<(DatasetKind, PathBuf)>> {
        let dataset = self.dataset.as_deref().ok_or_else(|| {
            anyhow::anyhow!(
                "--dataset is required (drive, stare, chase, ph2, lung, folder, nifti or synthetic)"
            )
        })?;
        if dataset == "synthetic" {
            if self.data.is_some() {
                anyhow::bail!("--dataset synthetic is generated: drop --data");
            }
            return Ok(None);
        }
        let kind: DatasetKind = dataset.parse()?;
        let data = self
            .data
            .clone()
            .ok_or_else(|| anyhow::anyhow!("--data DIR is needed for --dataset {kind}"))?;
        Ok(Some((kind, data)))
    }

    /// The validated loader options.
    pub fn options(&self) -> anyhow::Result<LoadOptions> {
        let label_rule = match self.label_threshold {
            None => LabelRule::Binary,
            Some(t) if (0.0..1.0).contains(&t) => LabelRule::Threshold(t),
            Some(t) => anyhow::bail!("--label-threshold {t}: expected a value in [0, 1)"),
        };
        let (lo, hi) = match &self.hu_window {
            Some(text) => parse_hu_window(text)?,
            None => LoadOptions::default().hu_window,
        };
        if self.nifti_axis > 2 {
            anyhow::bail!("--nifti-axis {}: expected 0, 1 or 2", self.nifti_axis);
        }
        if self.max_pixels == 0 {
            anyhow::bail!("--max-pixels must be positive");
        }
        Ok(LoadOptions {
            limits: ReadLimits {
                max_pixels: self.max_pixels,
            },
            label_rule,
            annotator: match self.annotator {
                AnnotatorArg::First => Annotator::First,
                AnnotatorArg::Second => Annotator::Second,
            },
            fov: match self.fov {
                FovArg::Given => FovChoice::Given,
                FovArg::Vgan => FovChoice::Vgan,
                FovArg::Computed => FovChoice::Computed,
            },
            hu_window: (lo, hi),
            nifti_axis: self.nifti_axis,
            leave_out: self.leave_out,
        })
    }
}

/// `--hu-window low,high`, finite and increasing.
pub fn parse_hu_window(text: &str) -> anyhow::Result<(f32, f32)> {
    let window: Vec<f32> = text
        .split(',')
        .map(|v| v.trim().parse::<f32>())
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("--hu-window {text}: {e}; expected low,high"))?;
    let [lo, hi] = window[..] else {
        anyhow::bail!("--hu-window {text}: expected two numbers, low,high");
    };
    if !(lo.is_finite() && hi.is_finite() && lo < hi) {
        anyhow::bail!("--hu-window {lo},{hi}: expected low,high with low < high");
    }
    Ok((lo, hi))
}
