//! `data check`: read every file of every split of a dataset and summarise it,
//! so layout or file problems surface before any training starts.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use super::dataset::{DatasetKind, LoadOptions, Split};
use super::fov::fov_diameter;
use super::sample::Sample;
use crate::error::Result;

/// Summary of one split.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SplitReport {
    /// Number of 2D samples (volumes count one per slice).
    pub count: usize,
    /// Number of image files (or volumes).
    pub files: usize,
    /// Smallest and largest width.
    pub width: [usize; 2],
    /// Smallest and largest height.
    pub height: [usize; 2],
    /// Channel counts seen (1 grey, 3 RGB).
    pub channels: Vec<usize>,
    /// Smallest and largest image value after loading (and CT windowing).
    pub value_range: [f32; 2],
    /// Label values after binarisation (always `[0, 1]` when a split loads).
    pub label_values: Vec<u8>,
    /// Fraction of field-of-view pixels labelled foreground, pooled over the split.
    pub foreground_fraction: f64,
    /// Fraction of pixels inside the field of view, pooled.
    pub fov_fraction: f64,
    /// Where the field of view came from (`given`, `computed`, `whole-image`).
    pub fov_source: String,
    /// Smallest and largest FOV diameter in pixels (its horizontal extent,
    /// [`fov_diameter`]): the scale fundus models are rescaled by.
    pub fov_diameter: [usize; 2],
}

/// Summary of a dataset: one report per split.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DatasetReport {
    /// The layout name.
    pub dataset: String,
    /// The folder read.
    pub data: String,
    /// Split name → summary.
    pub splits: BTreeMap<String, SplitReport>,
}

/// The splits a layout offers for `dir`.
pub fn splits_of(kind: DatasetKind, dir: &Path) -> Vec<Split> {
    match kind {
        DatasetKind::Ph2 => vec![Split::Train, Split::Val, Split::Test],
        DatasetKind::Folder | DatasetKind::Nifti => {
            let present: Vec<Split> = [Split::Train, Split::Val, Split::Test]
                .into_iter()
                .filter(|s| dir.join(s.name()).is_dir())
                .collect();
            if present.is_empty() {
                vec![Split::All]
            } else {
                present
            }
        }
        _ => vec![Split::Train, Split::Test],
    }
}

/// Reads every split of `kind` under `dir` and summarises it.
///
/// # Errors
///
/// The first layout or file problem, naming the file.
pub fn check(kind: DatasetKind, dir: &Path, opts: &LoadOptions) -> Result<DatasetReport> {
    let mut splits = BTreeMap::new();
    for split in splits_of(kind, dir) {
        let entries = kind.entries(dir, split, opts)?;
        let mut summary = Summary::default();
        for entry in &entries {
            for sample in entry.load(opts)? {
                summary.add(&sample);
            }
        }
        splits.insert(split.name().to_string(), summary.report(entries.len()));
    }
    Ok(DatasetReport {
        dataset: kind.name().to_string(),
        data: dir.display().to_string(),
        splits,
    })
}

#[derive(Default)]
struct Summary {
    count: usize,
    width: Option<[usize; 2]>,
    height: Option<[usize; 2]>,
    channels: Vec<usize>,
    value_range: Option<[f32; 2]>,
    label_values: Vec<u8>,
    foreground: u64,
    fov: u64,
    pixels: u64,
    fov_sources: Vec<String>,
    fov_diameter: Option<[usize; 2]>,
}

fn widen(range: Option<[usize; 2]>, v: usize) -> Option<[usize; 2]> {
    Some(range.map_or([v, v], |[a, b]| [a.min(v), b.max(v)]))
}

impl Summary {
    fn add(&mut self, s: &Sample) {
        self.count += 1;
        self.width = widen(self.width, s.image.width);
        self.height = widen(self.height, s.image.height);
        self.fov_diameter = widen(self.fov_diameter, fov_diameter(&s.fov));
        if !self.channels.contains(&s.image.channels) {
            self.channels.push(s.image.channels);
        }
        let (lo, hi) = s
            .image
            .data
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
                (a.min(v), b.max(v))
            });
        self.value_range = Some(
            self.value_range
                .map_or([lo, hi], |[a, b]| [a.min(lo), b.max(hi)]),
        );
        for v in [0u8, 1] {
            if s.label.data.contains(&v) && !self.label_values.contains(&v) {
                self.label_values.push(v);
            }
        }
        self.label_values.sort_unstable();
        let inside = s.fov.data.iter().map(|&f| f as u64).sum::<u64>();
        let fg = s
            .label
            .data
            .iter()
            .zip(&s.fov.data)
            .map(|(&l, &f)| (l & f) as u64)
            .sum::<u64>();
        self.fov += inside;
        self.foreground += fg;
        self.pixels += s.fov.data.len() as u64;
        let source = s.fov_source.name().to_string();
        if !self.fov_sources.contains(&source) {
            self.fov_sources.push(source);
        }
    }

    fn report(self, files: usize) -> SplitReport {
        SplitReport {
            count: self.count,
            files,
            width: self.width.unwrap_or_default(),
            height: self.height.unwrap_or_default(),
            channels: self.channels,
            value_range: self.value_range.unwrap_or_default(),
            label_values: self.label_values,
            foreground_fraction: self.foreground as f64 / self.fov.max(1) as f64,
            fov_fraction: self.fov as f64 / self.pixels.max(1) as f64,
            fov_source: self.fov_sources.join("+"),
            fov_diameter: self.fov_diameter.unwrap_or_default(),
        }
    }
}
