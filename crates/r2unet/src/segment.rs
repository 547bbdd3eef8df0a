//! A trained model as a user holds it: the network with the preprocessing it
//! was trained with, loaded from a weights file, a run folder or a shipped
//! name, and what it does to raw images (probability maps, masks, the three
//! PNGs `predict` writes). The CLI's `eval`, `predict`, `demo` and
//! `reproduce` and the Python package all go through this type.

use std::path::{Path, PathBuf};

use burn::tensor::{Tensor, TensorData};

use crate::atomic::Staged;
use crate::data::fov::compute_fov;
use crate::data::io::{LabelRule, is_tiff, read_ct, read_image_checked, read_mask};
use crate::data::nifti::{ImageVolume, unslice, volume_stem, write_volume};
use crate::data::preprocess::{luminance, window_hu};
use crate::data::{FovSource, Image, LoadOptions, Mask, ReadLimits, Sample};
use crate::device::Device;
use crate::error::{Error, Result};
use crate::eval::evaluate::probability_map;
use crate::eval::report::file_stem;
use crate::infer::{Inference, reflect_pad};
use crate::model::{Preprocess, UNet, load_model, load_model_bytes};
use crate::render::{mask_overlay, mask_png, probability_png, rgb_png};
use crate::train::RunDir;

/// Weights built into the library, by name: the R2U-Net trained on DRIVE,
/// for fundus photographs.
pub const SHIPPED: &[(&str, &[u8])] = &[(
    "drive",
    include_bytes!("../../../weights/drive-r2unet.safetensors"),
)];

/// The preprocessing recorded with a weights file: in its metadata, else in
/// the `state.json` of the run folder it sits in; `None` if neither.
fn preprocess_of_weights(weights: &Path) -> Result<Option<Preprocess>> {
    if let Some(p) = Preprocess::of_file(weights)? {
        return Ok(Some(p));
    }
    let run = RunDir(weights.parent().unwrap_or(Path::new(".")).to_path_buf());
    if run.state().is_file() {
        return Ok(Some(run.read_state()?.preprocess));
    }
    Ok(None)
}

/// A network with the preprocessing it was trained with.
pub struct TrainedModel {
    /// The network.
    pub model: UNet,
    /// How raw images become its inputs.
    pub preprocess: Preprocess,
    /// Where it came from (a path, or `shipped weights drive`), for messages.
    pub source: String,
}

/// Where the field of view of a raw image comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum FovMode {
    /// Computed for fundus models (retina preprocessing), the whole image otherwise.
    Auto,
    /// The whole image.
    Whole,
    /// This mask, which must have the image's size.
    Mask(Mask),
}

impl FovMode {
    /// The field of view a user names in text (`predict --fov`, the Python
    /// `segment_file`): `auto`, `none`, or the path of a 0/1 mask file.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] for a file that cannot be read, [`Error::Invalid`] for
    /// one that is not a 0/1 mask; each names the file.
    pub fn from_arg(text: &str, limits: ReadLimits) -> Result<Self> {
        match text {
            "auto" => Ok(FovMode::Auto),
            "none" => Ok(FovMode::Whole),
            file => read_mask(Path::new(file), limits, LabelRule::Binary)
                .map(FovMode::Mask)
                .map_err(|e| match e {
                    // A missing or unreadable file stays an I/O error.
                    Error::Io { .. } => e,
                    other => Error::invalid(
                        "field of view",
                        format!("{other}; expected auto, none or a mask file"),
                    ),
                }),
        }
    }
}

/// What [`TrainedModel::segment`] gives for one raw image.
#[derive(Debug, Clone)]
pub struct Segmentation {
    /// The image as the model saw it before preprocessing (channels fitted).
    pub image: Image,
    /// The field of view used.
    pub fov: Mask,
    /// Foreground probabilities at the image's size, 0 outside the FOV.
    pub probabilities: Vec<f32>,
    /// `probability >= threshold`, 0/1.
    pub mask: Vec<u8>,
}

impl Segmentation {
    /// Width in pixels.
    pub fn width(&self) -> usize {
        self.image.width
    }

    /// Height in pixels.
    pub fn height(&self) -> usize {
        self.image.height
    }

    /// The fraction of FOV pixels segmented as foreground.
    pub fn foreground_fraction(&self) -> f64 {
        let inside = self.fov.count().max(1);
        self.mask.iter().filter(|&&m| m != 0).count() as f64 / inside as f64
    }

    /// Writes `<stem>_prob.png` (16-bit), `<stem>_mask.png` and
    /// `<stem>_overlay.png` into `dir` (nothing is replaced unless all three
    /// were written, see [`Staged`]); returns their paths in that order.
    ///
    /// # Errors
    ///
    /// Encoding or I/O errors naming the file.
    pub fn write_pngs(&self, dir: &Path, stem: &str) -> Result<[PathBuf; 3]> {
        let (w, h) = (self.width(), self.height());
        let at = |suffix: &str| dir.join(format!("{stem}_{suffix}.png"));
        let paths = [at("prob"), at("mask"), at("overlay")];
        let overlay = mask_overlay(&self.image, &self.mask, Some(&self.fov.data));
        let mut set = Staged::default();
        set.write(&paths[0], &probability_png(&self.probabilities, w, h)?)?;
        set.write(&paths[1], &mask_png(&self.mask, w, h)?)?;
        set.write(&paths[2], &rgb_png(&overlay)?)?;
        set.commit()?;
        Ok(paths)
    }
}

impl TrainedModel {
    /// The model in a weights file (safetensors with its preprocessing
    /// recorded, as `r2unet export` writes, or a checkpoint in a run folder).
    ///
    /// # Errors
    ///
    /// Unreadable or invalid weights; no preprocessing recorded.
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let model = load_model(path, device)?;
        let preprocess = preprocess_of_weights(path)?.ok_or_else(|| Error::Config {
            path: path.to_path_buf(),
            reason: "no preprocessing recorded in the file or a run folder beside it; \
                     export the run with `r2unet export --run RUN_DIR -o FILE`"
                .into(),
        })?;
        Ok(Self {
            model,
            preprocess,
            source: path.display().to_string(),
        })
    }

    /// The best (highest validation AUC) or last checkpoint of a training run folder.
    ///
    /// # Errors
    ///
    /// As [`TrainedModel::load`].
    pub fn from_run(dir: &Path, best: bool, device: &Device) -> Result<Self> {
        let run = RunDir(dir.to_path_buf());
        Self::load(&if best { run.best() } else { run.last() }, device)
    }

    /// A model shipped inside the library (see [`SHIPPED`]).
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] for an unknown name.
    pub fn shipped(name: &str, device: &Device) -> Result<Self> {
        let bytes = SHIPPED
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, b)| *b)
            .ok_or_else(|| {
                let names: Vec<&str> = SHIPPED.iter().map(|(n, _)| *n).collect();
                Error::invalid(
                    format!("shipped model `{name}`"),
                    format!("the shipped models are {}", names.join(", ")),
                )
            })?;
        let source = format!("shipped weights {name}");
        let label = Path::new(&source);
        let model = load_model_bytes(bytes, label, device)?;
        let preprocess = Preprocess::of_bytes(bytes, label)?.ok_or_else(|| Error::Config {
            path: label.to_path_buf(),
            reason: "no preprocessing recorded".into(),
        })?;
        Ok(Self {
            model,
            preprocess,
            source,
        })
    }

    /// A shipped name (`drive`) or else a weights file path.
    ///
    /// # Errors
    ///
    /// As [`TrainedModel::load`]; [`Error::Io`] for a name that is neither
    /// shipped nor a file, listing the shipped names.
    pub fn open(name_or_path: &str, device: &Device) -> Result<Self> {
        if SHIPPED.iter().any(|(n, _)| *n == name_or_path) {
            return Self::shipped(name_or_path, device);
        }
        let path = Path::new(name_or_path);
        if !path.exists() {
            let names: Vec<&str> = SHIPPED.iter().map(|(n, _)| *n).collect();
            let reason = format!(
                "no such file, and not a shipped model (those are: {})",
                names.join(", ")
            );
            let missing = std::io::Error::new(std::io::ErrorKind::NotFound, reason);
            return Err(Error::io(path, missing));
        }
        Self::load(path, device)
    }

    /// Reads an image file as the model's training images were read: a CT
    /// model's slice (a HU window recorded with its weights) as raw values
    /// from a TIFF, windowed as its loader windowed them; any other model's
    /// image scaled to `[0, 1]` by its bit depth. Also returns warnings
    /// about the file that did not stop it from being read.
    ///
    /// # Errors
    ///
    /// Read errors naming `path`; [`Error::Invalid`] for a CT model given
    /// anything but a TIFF (the formats that hold Hounsfield units).
    pub fn read_input(&self, path: &Path, limits: ReadLimits) -> Result<(Image, Vec<String>)> {
        let Some((lo, hi)) = self.preprocess.hu_window() else {
            return read_image_checked(path, limits);
        };
        if !is_tiff(path) {
            return Err(Error::invalid(
                path.display().to_string(),
                format!(
                    "the model was trained on CT slices in Hounsfield units (window {lo}..{hi}); \
                     expected a TIFF of the slice's values (int16 or float) or a NIfTI volume"
                ),
            ));
        }
        let raw = read_ct(path, limits)?;
        let mut warnings = Vec::new();
        // Air is -1000 HU and lung tissue below -500: a slice with neither is
        // probably stored with an offset (often +1024) or already scaled.
        if !raw.data.iter().any(|&v| v < -500.0) {
            warnings.push(format!(
                "{}: no value below -500, so it may not be in Hounsfield units (air is -1000); \
                 a slice stored with an offset (such as +1024) must have it subtracted first",
                path.display()
            ));
        }
        Ok((window_hu(&raw, lo, hi)?, warnings))
    }

    /// Whether the model was trained with the fundus (retina) preprocessing.
    pub fn is_retina(&self) -> bool {
        matches!(self.preprocess, Preprocess::Retina { .. })
    }

    /// `image` converted to the model's channel count (grey repeated to RGB,
    /// RGB to BT.601 grey); the retina preprocessing makes its own grey.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] for a channel count the model cannot take.
    pub fn fit_channels(&self, image: Image) -> Result<Image> {
        let channels = self.model.config.in_channels;
        if self.is_retina() || image.channels == channels {
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

    /// The field of view of `image` under `mode`.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] when a given mask's size differs from the image's,
    /// or when a fundus model finds no field of view to compute.
    pub fn fov(&self, image: &Image, mode: &FovMode) -> Result<Mask> {
        let (w, h) = (image.width, image.height);
        match mode {
            FovMode::Auto if self.is_retina() => {
                let fov = compute_fov(image);
                if fov.data.iter().all(|&v| v == 0) {
                    return Err(Error::invalid(
                        "field of view",
                        "none found: no part of the image is bright enough to be a fundus \
                         (a very dark image, or values scaled into a small range); give a \
                         field-of-view mask, or none for the whole image",
                    ));
                }
                Ok(fov)
            }
            FovMode::Auto | FovMode::Whole => Ok(Mask::filled(w, h, 1)),
            FovMode::Mask(mask) if (mask.width, mask.height) == (w, h) => Ok(mask.clone()),
            FovMode::Mask(mask) => Err(Error::invalid(
                "field-of-view mask",
                format!(
                    "{}x{} pixels; the image is {w}x{h}",
                    mask.width, mask.height
                ),
            )),
        }
    }

    /// Probability map and mask of a raw image (values in `[0, 1]`, as the
    /// loaders give them), named `id` in errors.
    ///
    /// # Errors
    ///
    /// Channel or FOV mismatches, images too small for the preprocessing,
    /// [`Error::Invalid`] for a threshold outside (0, 1).
    pub fn segment(
        &self,
        id: &str,
        image: Image,
        fov: &FovMode,
        threshold: f32,
        inference: &Inference,
        device: &Device,
    ) -> Result<Segmentation> {
        if !(threshold > 0.0 && threshold < 1.0) {
            return Err(Error::invalid(
                "threshold",
                format!("{threshold}: expected a value in (0, 1)"),
            ));
        }
        let image = self.fit_channels(image)?;
        let (w, h) = (image.width, image.height);
        let mut sample = Sample {
            id: id.to_string(),
            label: Mask::filled(w, h, 0),
            fov: Mask::filled(w, h, 1),
            fov_source: FovSource::Computed,
            image,
        };
        // An image too small for the preprocessing is named as such before
        // its field of view is looked for.
        self.preprocess.check_size(&sample)?;
        sample.fov = self.fov(&sample.image, fov)?;
        let mut probabilities =
            probability_map(&self.model, &self.preprocess, inference, &sample, device)?;
        for (p, &f) in probabilities.iter_mut().zip(&sample.fov.data) {
            if f == 0 {
                *p = 0.0;
            }
        }
        let mask = probabilities
            .iter()
            .map(|&p| u8::from(p >= threshold))
            .collect();
        Ok(Segmentation {
            image: sample.image,
            fov: sample.fov,
            probabilities,
            mask,
        })
    }
}

impl TrainedModel {
    /// The network input of a raw image as the single pass feeds it: channels
    /// fitted, preprocessed, reflect-padded on the right and bottom to a
    /// multiple of `2^(depth-1)`; NCHW values and their shape (`N = 1`).
    ///
    /// # Errors
    ///
    /// As [`TrainedModel::segment`].
    pub fn network_input(&self, image: Image) -> Result<(Vec<f32>, [usize; 4])> {
        let image = self.fit_channels(image)?;
        let (w, h) = (image.width, image.height);
        let sample = Sample {
            id: "image".into(),
            label: Mask::filled(w, h, 0),
            fov: Mask::filled(w, h, 1),
            fov_source: FovSource::Computed,
            image,
        };
        let input = self.preprocess.apply(&sample)?.image;
        let m = self.model.config.size_multiple();
        let (pw, ph) = (input.width.div_ceil(m) * m, input.height.div_ceil(m) * m);
        Ok((reflect_pad(&input, pw, ph), [1, input.channels, ph, pw]))
    }

    /// The network's logits (eval mode) for NCHW `values` of `shape`.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] if the values do not fill the shape, the channels
    /// differ from the model's, or a side is not a multiple of `2^(depth-1)`.
    pub fn logits(&self, values: Vec<f32>, shape: [usize; 4], device: &Device) -> Result<Vec<f32>> {
        let config = &self.model.config;
        let [n, c, h, w] = shape;
        let m = config.size_multiple();
        if values.len() != n * c * h * w || n * h * w == 0 {
            return Err(Error::invalid(
                "network input",
                format!(
                    "{} values for shape {shape:?}; expected a non-empty NCHW batch",
                    values.len()
                ),
            ));
        }
        if c != config.in_channels || !h.is_multiple_of(m) || !w.is_multiple_of(m) {
            return Err(Error::invalid(
                "network input",
                format!(
                    "shape {shape:?}; expected {} channel(s) and height and width multiples of {m}",
                    config.in_channels
                ),
            ));
        }
        let x = Tensor::<4>::from_data(TensorData::new(values, shape), device);
        self.model
            .forward(x)
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .map_err(|e| Error::invalid("model output", format!("{e:?}")))
    }
}

/// Everything [`TrainedModel::segment_file`] needs besides the model.
#[derive(Debug, Clone)]
pub struct PredictOptions {
    /// Probability threshold of the mask, in (0, 1).
    pub threshold: f32,
    /// Where the field of view comes from.
    pub fov: FovMode,
    /// How probability maps are produced.
    pub inference: Inference,
    /// Refuse images whose header claims more pixels than this.
    pub limits: ReadLimits,
}

impl Default for PredictOptions {
    fn default() -> Self {
        Self {
            threshold: 0.5,
            fov: FovMode::Auto,
            inference: Inference::default(),
            limits: ReadLimits::default(),
        }
    }
}

/// What segmenting one file wrote.
#[derive(Debug, Clone)]
pub struct FileResult {
    /// The input file.
    pub input: PathBuf,
    /// `<stem>_prob.png`, `<stem>_mask.png`, `<stem>_overlay.png`.
    pub outputs: [PathBuf; 3],
    /// Width and height in pixels.
    pub size: (usize, usize),
    /// The fraction of FOV pixels segmented as foreground.
    pub foreground_fraction: f64,
    /// What was wrong with the file without stopping it from being
    /// segmented (a truncated JPEG), each naming the file.
    pub warnings: Vec<String>,
}

/// The output stem of an input file: its name without `.gz` and the image
/// extension, made safe as a file name.
pub fn output_stem(path: &Path) -> String {
    let name = path
        .file_name()
        .map_or("image".into(), |s| s.to_string_lossy().into_owned());
    let base = name.strip_suffix(".gz").unwrap_or(&name);
    let stem = base.rsplit_once('.').map_or(base, |(stem, _)| stem);
    file_stem(if stem.is_empty() { base } else { stem })
}

impl TrainedModel {
    /// Reads the image file `path`, segments it and writes the three PNGs of
    /// [`Segmentation::write_pngs`] into `out_dir` under [`output_stem`].
    ///
    /// # Errors
    ///
    /// Read, segmentation and write errors, each naming `path` or the output file.
    pub fn segment_file(
        &self,
        path: &Path,
        out_dir: &Path,
        opts: &PredictOptions,
        device: &Device,
    ) -> Result<FileResult> {
        let (image, warnings) = self.read_input(path, opts.limits)?;
        let stem = output_stem(path);
        let seg = self
            .segment(
                &stem,
                image,
                &opts.fov,
                opts.threshold,
                &opts.inference,
                device,
            )
            .map_err(|e| Error::invalid(path.display().to_string(), e.to_string()))?;
        let outputs = seg.write_pngs(out_dir, &stem)?;
        Ok(FileResult {
            input: path.to_path_buf(),
            outputs,
            size: (seg.width(), seg.height()),
            foreground_fraction: seg.foreground_fraction(),
            warnings,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_stems_drop_gz_and_the_extension() {
        assert_eq!(output_stem(Path::new("a/01_test.tif")), "01_test");
        assert_eq!(output_stem(Path::new("im0001.ppm.gz")), "im0001");
        assert_eq!(output_stem(Path::new(".png")), ".png");
    }
}

/// What segmenting one NIfTI volume wrote.
#[derive(Debug, Clone)]
pub struct VolumeResult {
    /// The input volume.
    pub input: PathBuf,
    /// `<stem>_mask.nii.gz` (uint8 0/1) and `<stem>_prob.nii.gz` (float32).
    pub outputs: [PathBuf; 2],
    /// `[x, y, z]` voxels.
    pub dims: [usize; 3],
    /// The fraction of voxels segmented as foreground.
    pub foreground_fraction: f64,
}

/// Whether `path` names a NIfTI volume (`.nii`, `.nii.gz`).
pub fn is_volume(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .and_then(volume_stem)
        .is_some()
}

impl TrainedModel {
    /// Segments a NIfTI volume slice by slice along `load.nifti_axis`, its
    /// voxels normalised as training normalises them (`load.hu_window` for
    /// CT), and writes `<stem>_mask.nii.gz` (uint8) and `<stem>_prob.nii.gz`
    /// (float32) into `out_dir` with the input's dimensions, voxel sizes,
    /// qform/sform and orientation.
    ///
    /// # Errors
    ///
    /// Read, segmentation and write errors, each naming the file.
    pub fn segment_volume(
        &self,
        path: &Path,
        out_dir: &Path,
        opts: &PredictOptions,
        load: &LoadOptions,
        device: &Device,
    ) -> Result<VolumeResult> {
        load.validate()?;
        let volume = ImageVolume::read(path, load)?;
        let axis = load.nifti_axis;
        let dims = volume.dims;
        let total = dims.iter().product();
        let mut probs = vec![0f32; total];
        let mut mask = vec![0u8; total];
        for index in 0..volume.slices(axis) {
            let seg = self
                .segment(
                    &format!("slice {index}"),
                    volume.slice(axis, index),
                    &opts.fov,
                    opts.threshold,
                    &opts.inference,
                    device,
                )
                .map_err(|e| Error::invalid(path.display().to_string(), e.to_string()))?;
            unslice(dims, &mut probs, axis, index, &seg.probabilities);
            unslice(dims, &mut mask, axis, index, &seg.mask);
        }
        let foreground_fraction =
            mask.iter().filter(|&&m| m != 0).count() as f64 / total.max(1) as f64;
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("volume");
        let stem = file_stem(volume_stem(name).unwrap_or(name));
        let outputs = [
            out_dir.join(format!("{stem}_mask.nii.gz")),
            out_dir.join(format!("{stem}_prob.nii.gz")),
        ];
        let header = &volume.header;
        drop(volume.values);
        let mut set = Staged::default();
        write_volume(&mut set, &outputs[0], header, dims, mask)?;
        write_volume(&mut set, &outputs[1], header, dims, probs)?;
        set.commit()?;
        Ok(VolumeResult {
            input: path.to_path_buf(),
            outputs,
            dims,
            foreground_fraction,
        })
    }
}
