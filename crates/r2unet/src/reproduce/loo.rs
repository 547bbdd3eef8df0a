//! Leave-one-out, the protocol the paper's STARE numbers come from: fold `k`
//! trains on every image but the `k`-th (in sorted order) and tests on it;
//! the metrics are pooled over all the left-out images, and also given as
//! the mean and standard deviation over folds.
//!
//! Each finished fold leaves `fold-KK.json` (its image, metrics and
//! training budget) and `fold-KK_prob.png` (its probability map, 16-bit) in
//! the output folder; a fold with both is not run again, so an interrupted
//! leave-one-out continues with the next unfinished fold, on this machine or
//! another one the output folder was copied to. Fold runs (models and
//! checkpoints) live in a separate folder and may be deleted once their fold
//! is finished. Once every fold is finished, one more model is trained the
//! same way on all the images, for use on new ones (its metrics are the
//! folds'; it has no image left to test on).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Budget, train_config};
use crate::atomic::write_atomic;
use crate::data::{DatasetKind, LoadOptions, Sample, Split};
use crate::device::Device;
use crate::error::{Error, Result};
use crate::eval::evaluate::probability_map;
use crate::eval::{Confusion, Metrics, RocAccumulator, ZeroDivision};
use crate::infer::Inference;
use crate::model::Architecture;
use crate::render::probability_png;
use crate::segment::TrainedModel;
use crate::train::{RunDir, RunState, TrainConfig, Trainer, export_run};

/// Epochs of a fold's run: with [`LOO_PATCHES_PER_IMAGE`] from each of 19
/// STARE images, 30,400 patches, about 6 minutes on 2 CPU cores (85
/// patches/s), so the 20 folds take about 2 hours.
pub const LOO_EPOCHS: usize = 5;
/// Patches drawn from each training image per epoch in a fold.
pub const LOO_PATCHES_PER_IMAGE: usize = 320;

/// How fold `fold` of `kind` is trained: the retina protocol of
/// [`train_config`] on all images but the `fold`-th, with the leave-one-out
/// budget, fine-tuned from `init` when given (the shipped DRIVE model).
pub fn fold_config(
    kind: DatasetKind,
    model: Architecture,
    data: &Path,
    fold: usize,
    init: Option<PathBuf>,
) -> TrainConfig {
    let mut config = train_config(kind, model, data);
    config.load.leave_out = Some(fold);
    config.epochs = LOO_EPOCHS;
    config.patches_per_image = LOO_PATCHES_PER_IMAGE;
    config.init = init;
    config
}

/// How the model for new images is trained: a fold's recipe on every image.
pub fn all_images_config(
    kind: DatasetKind,
    model: Architecture,
    data: &Path,
    init: Option<PathBuf>,
) -> TrainConfig {
    let mut config = fold_config(kind, model, data, 0, init);
    config.load.leave_out = None;
    config.all_images = true;
    config
}

/// One finished fold.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Fold {
    /// Fold index (from 0).
    pub fold: usize,
    /// The left-out (test) image.
    pub id: String,
    /// Its metrics at threshold 0.5 inside the FOV.
    pub metrics: Metrics,
    /// Patches the fold's model saw in training.
    pub patches_seen: usize,
    /// Training wall time in seconds.
    pub train_seconds: f64,
    /// Validation AUC of the chosen checkpoint.
    pub best_val_auc: Option<f64>,
    /// Weights it started from (`None`: random initialisation).
    pub init: Option<String>,
}

/// Mean and (sample) standard deviation.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct MeanStd {
    /// Mean over folds.
    pub mean: f64,
    /// Standard deviation over folds (n - 1).
    pub std: f64,
}

impl MeanStd {
    fn of(values: &[f64]) -> Option<Self> {
        let n = values.len();
        if n == 0 {
            return None;
        }
        let mean = values.iter().sum::<f64>() / n as f64;
        let var = if n > 1 {
            values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64
        } else {
            0.0
        };
        Some(Self {
            mean,
            std: var.sqrt(),
        })
    }
}

/// The folds finished so far and their metrics.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    /// Dataset.
    pub dataset: String,
    /// Model.
    pub model: String,
    /// Folds in the set (its image count).
    pub folds_total: usize,
    /// The finished folds, by index.
    pub folds: Vec<Fold>,
    /// Every FOV pixel of the finished folds' test images pooled, at 0.5
    /// (probabilities as stored, in steps of 1/65535).
    pub pooled: Option<Metrics>,
    /// F1 over folds.
    pub f1: Option<MeanStd>,
    /// AUC over folds.
    pub auc: Option<MeanStd>,
    /// Training time of the finished folds, seconds.
    pub train_seconds: f64,
    /// The model trained on every image, once written (its file name).
    #[serde(default)]
    pub all_images_model: Option<String>,
}

impl Summary {
    /// The leave-one-out summary as Markdown: pooled metrics, mean and
    /// standard deviation over folds, one line per fold.
    pub fn markdown(&self) -> String {
        let s = self;
        let mut text = format!(
            "## {} {} leave-one-out: {} of {} folds finished\n\n",
            s.dataset,
            s.model,
            s.folds.len(),
            s.folds_total
        );
        if let Some(p) = &s.pooled {
            let auc = p.auc.map_or("n/a".into(), |v| format!("{v:.4}"));
            let _ = writeln!(
                text,
                "Pooled over the finished folds' test images (threshold 0.5, inside the FOV): \
                 **F1 {:.4}**, Se {:.4}, Sp {:.4}, Acc {:.4}, **AUC {auc}**.\n",
                p.f1, p.sensitivity, p.specificity, p.accuracy
            );
        }
        if let (Some(f1), Some(auc)) = (s.f1, s.auc) {
            let _ = writeln!(
                text,
                "Over folds: F1 {:.4} ± {:.4}, AUC {:.4} ± {:.4} (mean ± standard deviation); \
                 training {:.0} s in all.\n",
                f1.mean, f1.std, auc.mean, auc.std, s.train_seconds
            );
        }
        match &s.all_images_model {
            Some(m) => {
                let _ = writeln!(
                    text,
                    "For new images: `{m}` (weights folder), trained with a fold's recipe on all \
                     {} images; its accuracy is what the folds measure.\n",
                    s.folds_total
                );
            }
            None if s.folds.len() == s.folds_total => {}
            None => text
                .push_str("The model on every image is trained once all folds are finished.\n\n"),
        }
        text.push_str(
            "| fold | test image | F1 | AUC | Se | Sp | patches seen | training s | validation AUC |\n",
        );
        text.push_str("|---|---|---|---|---|---|---|---|---|\n");
        for f in &s.folds {
            let m = &f.metrics;
            let opt = |v: Option<f64>| v.map_or("n/a".into(), |v| format!("{v:.4}"));
            let _ = writeln!(
                text,
                "| {} | {} | {:.4} | {} | {:.4} | {:.4} | {} | {:.0} | {} |",
                f.fold,
                f.id,
                m.f1,
                opt(m.auc),
                m.sensitivity,
                m.specificity,
                f.patches_seen,
                f.train_seconds,
                opt(f.best_val_auc)
            );
        }
        text
    }
}

/// The summary a leave-one-out left in `out` (`summary.json`), if any.
///
/// # Errors
///
/// A `summary.json` that cannot be read or parsed, naming it.
pub fn read_summary(out: &Path) -> Result<Option<Summary>> {
    let path = out.join("summary.json");
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| Error::Config {
            path,
            reason: e.to_string(),
        })
}

/// The leave-one-out runs finished (or begun) in `out` for `datasets` and
/// `models` at either budget (their `<dataset>-<label>-loo/summary.json`),
/// one line each, under a heading; empty without any.
///
/// # Errors
///
/// A summary that cannot be read or parsed, naming it.
pub fn notes(out: &Path, datasets: &[DatasetKind], models: &[Architecture]) -> Result<String> {
    let mut lines = String::new();
    for &kind in datasets {
        for &model in models {
            for budget in [Budget::Default, Budget::Long] {
                for tta in [false, true] {
                    let folder = folder_name(kind, model, budget, tta);
                    if let Some(summary) = read_summary(&out.join(&folder))? {
                        lines.push_str(&table_line(&summary, &folder));
                        lines.push('\n');
                    }
                }
            }
        }
    }
    Ok(if lines.is_empty() {
        lines
    } else {
        format!("\nLeave-one-out (the paper's STARE protocol; `--protocol loo`):\n\n{lines}")
    })
}

/// One line for the results table's notes: the pooled metrics of a
/// leave-one-out and how many folds they cover.
fn table_line(s: &Summary, folder: &str) -> String {
    let pooled = s.pooled.as_ref().map_or(String::new(), |p| {
        let auc = p.auc.map_or("n/a".into(), |v| format!("{v:.4}"));
        format!(": pooled F1 {:.4}, AUC {auc}", p.f1)
    });
    let spread = match (s.f1, s.auc) {
        (Some(f1), Some(auc)) => format!(
            "; over folds F1 {:.4} ± {:.4}, AUC {:.4} ± {:.4}",
            f1.mean, f1.std, auc.mean, auc.std
        ),
        _ => String::new(),
    };
    format!(
        "- {} {} leave-one-out, {} of {} folds{pooled}{spread} ([{folder}/summary.md]({folder}/summary.md))",
        s.dataset,
        s.model,
        s.folds.len(),
        s.folds_total
    )
}

/// `out/fold-KK.json` and `out/fold-KK_prob.png`.
fn fold_files(out: &Path, fold: usize) -> (PathBuf, PathBuf) {
    (
        out.join(format!("fold-{fold:02}.json")),
        out.join(format!("fold-{fold:02}_prob.png")),
    )
}

/// The test sample of fold `fold`.
fn fold_sample(kind: DatasetKind, data: &Path, fold: usize) -> Result<Sample> {
    let opts = LoadOptions {
        leave_out: Some(fold),
        ..LoadOptions::default()
    };
    let mut samples = kind.load(data, Split::Test, &opts)?;
    samples.pop().ok_or_else(|| {
        Error::invalid(
            format!("leave-one-out fold {fold}"),
            "no test image".to_string(),
        )
    })
}

/// The folder of a leave-one-out's folds (and of their runs):
/// `<dataset>-<label>-loo`, or `<dataset>-<label>-tta-loo` with flip TTA.
fn folder_name(kind: DatasetKind, model: Architecture, budget: Budget, tta: bool) -> String {
    let tta = if tta { "-tta" } else { "" };
    format!("{kind}-{}{tta}-loo", budget.label(model))
}

/// One leave-one-out: which model on which set, and where its files go.
#[derive(Debug, Clone)]
pub struct Plan<'a> {
    /// The dataset.
    pub kind: DatasetKind,
    /// The model.
    pub model: Architecture,
    /// Which DRIVE model the folds are fine-tuned from: `Default`,
    /// `drive-<model>.safetensors` where the weights folder has it (else
    /// from scratch); `Long`, `drive-<model>-long.safetensors`, required.
    pub budget: Budget,
    /// The dataset folder.
    pub data: &'a Path,
    /// Output root: the folds go to `<name>/`, their runs to `runs/<name>/`
    /// ([`Plan::name`]).
    pub out: &'a Path,
    /// Weights folder: the DRIVE model to start from, and where the model
    /// on every image is exported (`<dataset>-<label>-all.safetensors`).
    pub weights_dir: &'a Path,
    /// Stop after training this many more folds (`None`: all).
    pub max_folds: Option<usize>,
    /// Whether each left-out image is segmented with flip TTA (the image
    /// and its three flips averaged, [`Inference::flip_tta`]): folders
    /// named `<dataset>-<label>-tta-loo`. The folds train as without it, and
    /// the model on every image is the same file.
    pub tta: bool,
}

impl Plan<'_> {
    /// `<dataset>-<label>-loo`, e.g. `stare-r2unet-loo`,
    /// `stare-r2unet-long-loo`, `stare-r2unet-long-tta-loo`.
    pub fn name(&self) -> String {
        folder_name(self.kind, self.model, self.budget, self.tta)
    }

    /// Where the finished folds and the summary are written.
    pub fn folds_dir(&self) -> PathBuf {
        self.out.join(self.name())
    }

    /// Where the folds' runs (models, checkpoints) live.
    pub fn runs_dir(&self) -> PathBuf {
        self.out.join("runs").join(self.name())
    }

    /// The model trained on every image once all folds are finished.
    pub fn all_images_model(&self) -> PathBuf {
        self.weights_dir.join(format!(
            "{}-{}-all.safetensors",
            self.kind,
            self.budget.label(self.model)
        ))
    }

    /// The DRIVE model each fold starts from (see [`Plan::budget`]).
    ///
    /// # Errors
    ///
    /// The longer budget without its DRIVE model, naming the file.
    pub fn init(&self) -> Result<Option<PathBuf>> {
        let drive = self
            .budget
            .weights(self.weights_dir, DatasetKind::Drive, self.model);
        match self.budget {
            _ if self.kind == DatasetKind::Drive => Ok(None),
            Budget::Default => Ok(drive.is_file().then_some(drive)),
            Budget::Long if drive.is_file() => Ok(Some(drive)),
            Budget::Long => Err(Error::Layout {
                path: drive,
                reason: "no such file: the longer budget's folds are fine-tuned from it".into(),
            }),
        }
    }
}

/// Runs (or continues) the leave-one-out of `plan`: every unfinished fold
/// is trained in `runs/<name>/fold-KK` (resumed when its run folder holds a
/// checkpoint) by `train`, with the leave-one-out budget (then `adjust`,
/// for quick checks), its best checkpoint segments the left-out image, and
/// the fold's files are written to the folds folder; then the summary of
/// every finished fold (`summary.json`, `summary.md` there). Once all folds
/// are finished, the model on every image is trained in `runs/<name>/all`
/// (resumable like a fold) and its best checkpoint exported to
/// [`Plan::all_images_model`], unless that file exists.
///
/// # Errors
///
/// Layout, training, inference and I/O errors, each naming its file.
pub fn run(
    plan: &Plan,
    adjust: &dyn Fn(TrainConfig) -> TrainConfig,
    device: &Device,
    train: &mut dyn FnMut(Trainer, &Path) -> Result<RunState>,
) -> Result<Summary> {
    let (kind, model, data, max_folds) = (plan.kind, plan.model, plan.data, plan.max_folds);
    let (out, runs) = (plan.folds_dir(), plan.runs_dir());
    let (out, runs) = (out.as_path(), runs.as_path());
    let all_images_model = &plan.all_images_model();
    let init = plan.init()?;
    let total = kind
        .entries(data, Split::All, &LoadOptions::default())?
        .len();
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let mut trained = 0;
    let mut finished = 0;
    for fold in 0..total {
        let (json, png) = fold_files(out, fold);
        if json.is_file() && png.is_file() {
            finished += 1;
            continue;
        }
        if max_folds.is_some_and(|m| trained >= m) {
            break;
        }
        let run = RunDir(runs.join(format!("fold-{fold:02}")));
        let trainer = if run.state().is_file() {
            Trainer::resume(run.clone(), device)?
        } else {
            let config = adjust(fold_config(kind, model, data, fold, init.clone()));
            Trainer::new(config, run.clone(), device)?
        };
        let state = train(trainer, &run.0)?;
        trained += 1;
        let config = run.read_config()?;
        finished += 1;
        let net = TrainedModel::from_run(&run.0, true, device)?;
        let sample = fold_sample(kind, data, fold)?;
        let inference = Inference {
            flip_tta: plan.tta,
            ..Inference::default()
        };
        let probs = probability_map(&net.model, &net.preprocess, &inference, &sample, device)?;
        let metrics = Metrics::evaluate(&probs, &sample.label.data, Some(&sample.fov.data), 0.5)?;
        let record = Fold {
            fold,
            id: sample.id.clone(),
            metrics,
            patches_seen: state.steps * config.batch_size,
            train_seconds: state.elapsed_s.round(),
            best_val_auc: state.best_auc,
            init: config.init.as_ref().map(|p| p.display().to_string()),
        };
        let (w, h) = (sample.image.width, sample.image.height);
        write_atomic(&png, &probability_png(&probs, w, h)?)?;
        let text = serde_json::to_string_pretty(&record).expect("fold serialises");
        write_atomic(&json, text.as_bytes())?;
    }
    let stopped = max_folds.is_some_and(|m| trained >= m);
    if finished == total && !stopped && !all_images_model.is_file() {
        let run = RunDir(runs.join("all"));
        let trainer = if run.state().is_file() {
            Trainer::resume(run.clone(), device)?
        } else {
            Trainer::new(
                adjust(all_images_config(kind, model, data, init)),
                run.clone(),
                device,
            )?
        };
        train(trainer, &run.0)?;
        if let Some(parent) = all_images_model.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        export_run(&run.0, true, all_images_model, device)?;
    }
    let mut label = plan.budget.label(model);
    if plan.tta {
        label.push_str(" (flip TTA)");
    }
    let mut summary = summary(kind, &label, data, out, total)?;
    summary.all_images_model = all_images_model
        .is_file()
        .then(|| all_images_model.file_name())
        .flatten()
        .map(|n| n.to_string_lossy().into_owned());
    write_atomic(&out.join("summary.md"), summary.markdown().as_bytes())?;
    let json = serde_json::to_string_pretty(&summary).expect("summary serialises");
    write_atomic(&out.join("summary.json"), json.as_bytes())?;
    Ok(summary)
}

/// The summary of the folds finished in `out` (see [`run`]).
///
/// # Errors
///
/// Unreadable fold files or dataset images, naming the file.
pub fn summary(
    kind: DatasetKind,
    label: &str,
    data: &Path,
    out: &Path,
    total: usize,
) -> Result<Summary> {
    let mut folds = Vec::new();
    let mut scores = RocAccumulator::new();
    let mut confusion = Confusion::default();
    for fold in 0..total {
        let (json, png) = fold_files(out, fold);
        if !(json.is_file() && png.is_file()) {
            continue;
        }
        let text = std::fs::read_to_string(&json).map_err(|e| Error::io(&json, e))?;
        let record: Fold = serde_json::from_str(&text).map_err(|e| Error::Config {
            path: json.clone(),
            reason: e.to_string(),
        })?;
        let sample = fold_sample(kind, data, fold)?;
        let probs = read_probabilities(&png, &sample)?;
        let fov = Some(sample.fov.data.as_slice());
        scores.push(&probs, &sample.label.data, fov)?;
        confusion += Confusion::from_probs(&probs, &sample.label.data, fov, 0.5);
        folds.push(record);
    }
    let pooled = (!folds.is_empty()).then(|| {
        let sorted = scores.finish();
        Metrics::new(
            confusion,
            sorted.auc(),
            sorted.average_precision(),
            ZeroDivision::One,
        )
    });
    let f1: Vec<f64> = folds.iter().map(|f| f.metrics.f1).collect();
    let auc: Vec<f64> = folds.iter().filter_map(|f| f.metrics.auc).collect();
    Ok(Summary {
        dataset: kind.to_string(),
        model: label.to_string(),
        folds_total: total,
        pooled,
        f1: MeanStd::of(&f1),
        auc: MeanStd::of(&auc),
        train_seconds: folds.iter().map(|f| f.train_seconds).sum(),
        folds,
        all_images_model: None,
    })
}

/// A fold's stored 16-bit probability map, checked against its image's size.
fn read_probabilities(png: &Path, sample: &Sample) -> Result<Vec<f32>> {
    let image = image::open(png)
        .map_err(|e| Error::invalid(png.display().to_string(), e.to_string()))?
        .into_luma16();
    let (w, h) = (sample.image.width, sample.image.height);
    if (image.width() as usize, image.height() as usize) != (w, h) {
        return Err(Error::invalid(
            png.display().to_string(),
            format!(
                "{}x{} pixels; the fold's image `{}` is {w}x{h}",
                image.width(),
                image.height(),
                sample.id
            ),
        ));
    }
    Ok(image
        .into_raw()
        .into_iter()
        .map(|v| f32::from(v) / 65535.0)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_names_its_folders_and_the_drive_model_it_starts_from() {
        let tmp = tempfile::tempdir().unwrap();
        let w = tmp.path();
        let plan = Plan {
            kind: DatasetKind::Stare,
            model: Architecture::R2unet,
            budget: Budget::Long,
            data: Path::new("STARE"),
            out: Path::new("out"),
            weights_dir: w,
            max_folds: None,
            tta: false,
        };
        assert_eq!(plan.name(), "stare-r2unet-long-loo");
        let tta = Plan {
            tta: true,
            ..plan.clone()
        };
        assert_eq!(tta.name(), "stare-r2unet-long-tta-loo");
        assert_eq!(
            tta.runs_dir(),
            Path::new("out/runs/stare-r2unet-long-tta-loo")
        );
        // The same training, so the same model on every image.
        assert_eq!(tta.all_images_model(), plan.all_images_model());
        assert_eq!(plan.folds_dir(), Path::new("out/stare-r2unet-long-loo"));
        assert_eq!(plan.runs_dir(), Path::new("out/runs/stare-r2unet-long-loo"));
        assert_eq!(
            plan.all_images_model(),
            w.join("stare-r2unet-long-all.safetensors")
        );
        // The longer budget needs its DRIVE model; the default one does not.
        let err = plan.init().unwrap_err().to_string();
        assert!(
            err.contains("drive-r2unet-long.safetensors: no such file"),
            "{err}"
        );
        let default = Plan {
            budget: Budget::Default,
            ..plan.clone()
        };
        assert_eq!(default.name(), "stare-r2unet-loo");
        assert_eq!(default.init().unwrap(), None);
        std::fs::write(w.join("drive-r2unet.safetensors"), b"").unwrap();
        std::fs::write(w.join("drive-r2unet-long.safetensors"), b"").unwrap();
        assert_eq!(
            default.init().unwrap(),
            Some(w.join("drive-r2unet.safetensors"))
        );
        assert_eq!(
            plan.init().unwrap(),
            Some(w.join("drive-r2unet-long.safetensors"))
        );
        // DRIVE itself starts from scratch.
        let drive = Plan {
            kind: DatasetKind::Drive,
            ..plan
        };
        assert_eq!(drive.init().unwrap(), None);
    }

    #[test]
    fn mean_and_sample_standard_deviation() {
        let m = MeanStd::of(&[1.0, 2.0, 3.0, 4.0]).unwrap();
        assert!((m.mean - 2.5).abs() < 1e-12);
        assert!((m.std - (5.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert_eq!(MeanStd::of(&[0.7]).unwrap().std, 0.0);
        assert!(MeanStd::of(&[]).is_none());
    }

    #[test]
    fn a_summary_reads_back_and_makes_one_table_line() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(read_summary(tmp.path()).unwrap().is_none());
        let summary = Summary {
            dataset: "stare".into(),
            model: "r2unet".into(),
            folds_total: 20,
            folds: Vec::new(),
            pooled: None,
            f1: MeanStd::of(&[0.8, 0.9]),
            auc: MeanStd::of(&[0.98, 0.99]),
            train_seconds: 0.0,
            all_images_model: None,
        };
        let json = serde_json::to_string(&summary).unwrap();
        std::fs::write(tmp.path().join("summary.json"), json).unwrap();
        let read = read_summary(tmp.path()).unwrap().unwrap();
        assert_eq!(
            table_line(&read, "stare-r2unet-loo"),
            "- stare r2unet leave-one-out, 0 of 20 folds; over folds F1 0.8500 ± 0.0707, \
             AUC 0.9850 ± 0.0071 ([stare-r2unet-loo/summary.md](stare-r2unet-loo/summary.md))"
        );
        std::fs::write(tmp.path().join("summary.json"), "{").unwrap();
        let err = read_summary(tmp.path()).unwrap_err().to_string();
        assert!(err.contains("summary.json"), "{err}");
    }

    #[test]
    fn a_fold_leaves_out_one_budgeted_image() {
        let c = fold_config(
            DatasetKind::Stare,
            Architecture::R2unet,
            Path::new("STARE"),
            7,
            None,
        );
        assert_eq!(c.load.leave_out, Some(7));
        assert_eq!(
            (c.epochs, c.patches_per_image),
            (LOO_EPOCHS, LOO_PATCHES_PER_IMAGE)
        );
        c.validate().unwrap();
        let all = all_images_config(
            DatasetKind::Stare,
            Architecture::R2unet,
            Path::new("STARE"),
            None,
        );
        assert_eq!((all.load.leave_out, all.all_images), (None, true));
        assert_eq!(
            (all.epochs, all.patches_per_image),
            (LOO_EPOCHS, LOO_PATCHES_PER_IMAGE)
        );
        all.validate().unwrap();
    }
}
