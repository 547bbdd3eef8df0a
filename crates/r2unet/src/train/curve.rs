//! Accuracy against training time: every epoch model a run kept
//! (`TrainConfig::keep_epochs`) evaluated on the same images, pooled at
//! threshold 0.5 — for plotting F1 and AUC against patches seen. The models
//! are only measured here, never chosen: a run's chosen checkpoint is still
//! the one with the best validation AUC.

use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::checkpoint::{RunDir, load_checkpoint};
use crate::atomic::write_atomic;
use crate::data::Sample;
use crate::device::Device;
use crate::error::{Error, Result};
use crate::eval::evaluate::probability_map;
use crate::eval::{Confusion, Metrics, RocAccumulator, ZeroDivision};
use crate::infer::Inference;
use crate::plot::{Chart, Series, write_png};

/// One kept epoch model's pooled metrics.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CurvePoint {
    /// Epoch (from 1).
    pub epoch: usize,
    /// Training patches seen by the end of the epoch (`None` for runs that
    /// did not record their steps).
    pub patches_seen: Option<usize>,
    /// The run's validation AUC at that epoch, as it recorded it.
    pub val_auc: Option<f64>,
    /// Every pixel of `samples` (inside the FOV) pooled, at threshold 0.5.
    pub metrics: Metrics,
}

/// Evaluates every kept epoch model of the run in `run` on `samples`, but
/// for the epochs in `known` (points measured before on the same images,
/// whose models may since have been deleted): those are kept as they are.
/// So a long run's curve grows session by session while only its newest
/// epoch models are kept.
///
/// # Errors
///
/// [`Error::Invalid`] when the run kept no epoch models and none are known;
/// read, inference and metric errors naming the file or image.
pub fn epoch_curve(
    run: &Path,
    samples: &[Sample],
    inference: &Inference,
    device: &Device,
    known: Vec<CurvePoint>,
) -> Result<Vec<CurvePoint>> {
    let dir = RunDir(run.to_path_buf());
    let (config, state) = (dir.read_config()?, dir.read_state()?);
    let models: Vec<_> = dir
        .epoch_models()?
        .into_iter()
        .filter(|(epoch, _)| known.iter().all(|p| p.epoch != *epoch))
        .collect();
    if models.is_empty() && known.is_empty() {
        return Err(Error::invalid(
            run.display().to_string(),
            "no epoch-NNN.safetensors: train with --keep-epochs to keep a model per epoch",
        ));
    }
    let mut points = known;
    for (epoch, path) in models {
        let (model, preprocess) = load_checkpoint(&path, device)?;
        let mut scores = RocAccumulator::new();
        let mut confusion = Confusion::default();
        for sample in samples {
            let probs = probability_map(&model, &preprocess, inference, sample, device)?;
            let fov = Some(sample.fov.data.as_slice());
            scores.push(&probs, &sample.label.data, fov)?;
            confusion += Confusion::from_probs(&probs, &sample.label.data, fov, 0.5);
        }
        let sorted = scores.finish();
        let record = state.history.iter().find(|r| r.epoch == epoch);
        points.push(CurvePoint {
            epoch,
            patches_seen: record
                .filter(|r| r.steps > 0)
                .map(|r| r.steps * config.batch_size),
            val_auc: record.and_then(|r| r.val_auc),
            metrics: Metrics::new(
                confusion,
                sorted.auc(),
                sorted.average_precision(),
                ZeroDivision::One,
            ),
        });
    }
    points.sort_by_key(|p| p.epoch);
    Ok(points)
}

/// The points an earlier `write_curve` left in `out` (its `curve.json`),
/// or none when it wrote none there.
///
/// # Errors
///
/// [`Error::Io`] or [`Error::Config`] naming `curve.json` when it exists
/// but cannot be read as a curve.
pub fn read_curve(out: &Path) -> Result<Vec<CurvePoint>> {
    let path = out.join("curve.json");
    if !path.is_file() {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::Config {
        path: path.clone(),
        reason: format!("not a curve written by eval --every-epoch: {e}"),
    })
}

/// Writes `curve.csv`, `curve.json` and `curve.png` (the charts of
/// [`curve_charts`]) into `out`, creating it; each file atomically.
///
/// # Errors
///
/// [`Error::Io`] naming the file that could not be written.
pub fn write_curve(out: &Path, points: &[CurvePoint], what: &str) -> Result<()> {
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    write_atomic(&out.join("curve.csv"), curve_csv(points).as_bytes())?;
    let json = serde_json::to_string_pretty(points).map_err(|e| Error::Config {
        path: out.join("curve.json"),
        reason: e.to_string(),
    })?;
    write_atomic(&out.join("curve.json"), json.as_bytes())?;
    write_png(
        &out.join("curve.png"),
        &curve_charts(points, what),
        1200,
        420,
    )
}

/// The points as CSV: epoch, patches seen, validation AUC, F1, AUC, Se, Sp.
pub fn curve_csv(points: &[CurvePoint]) -> String {
    let opt = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.6}"));
    let mut text = String::from("epoch,patches_seen,val_auc,f1,auc,sensitivity,specificity\n");
    for p in points {
        let _ = writeln!(
            text,
            "{},{},{},{:.6},{},{:.6},{:.6}",
            p.epoch,
            p.patches_seen.map_or(String::new(), |n| n.to_string()),
            opt(p.val_auc),
            p.metrics.f1,
            opt(p.metrics.auc),
            p.metrics.sensitivity,
            p.metrics.specificity
        );
    }
    text
}

/// Two panels, F1 and AUC against patches seen (epochs where the run did
/// not record its steps), of the images called `what`.
pub fn curve_charts(points: &[CurvePoint], what: &str) -> Vec<Chart> {
    let x_of = |p: &CurvePoint| p.patches_seen.map_or(p.epoch as f64, |n| n as f64);
    let x_label = if points.iter().all(|p| p.patches_seen.is_some()) {
        "patches seen"
    } else {
        "epoch"
    };
    let series = |name: &str, f: &dyn Fn(&CurvePoint) -> Option<f64>| Series {
        name: name.to_string(),
        points: points
            .iter()
            .filter_map(|p| f(p).map(|y| (x_of(p), y)))
            .collect(),
    };
    vec![
        Chart {
            title: format!("F1 at 0.5, {what}"),
            x_label: x_label.into(),
            y_label: "F1".into(),
            series: vec![series("F1", &|p| Some(p.metrics.f1))],
            y_range: None,
        },
        Chart {
            title: format!("AUC, {what}"),
            x_label: x_label.into(),
            y_label: "AUC".into(),
            series: vec![
                series("AUC", &|p| p.metrics.auc),
                series("validation AUC (run's)", &|p| p.val_auc),
            ],
            y_range: None,
        },
    ]
}
