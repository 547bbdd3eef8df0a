//! The paper-style results table of `r2unet reproduce`: one row per dataset
//! and model (its pooled test metrics beside the paper's figures and the
//! project's goals), the paired comparisons of models on the same test
//! images, and a page of example overlays. [`build`] makes and writes all of
//! it; the caller says where each row's weights come from (the shipped file,
//! [`shipped`], or a model it trains) and prints what comes back.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{Budget, PaperRow, dataset_dir, eval_protocol, goal, loo, paper};
use crate::atomic::write_atomic;
use crate::data::lung::QUIRK_SLICE;
use crate::data::{DatasetKind, LoadOptions, Split, split_samples};
use crate::device::Device;
use crate::error::{Error, Result};
use crate::eval::bootstrap::Interval;
use crate::eval::evaluate::{EvalOptions, EvalReport, tune_threshold};
use crate::eval::paired::{PairedComparison, compare};
use crate::eval::report::{PICTURES, ReportOut, evaluate_into, file_stem};
use crate::eval::{Confusion, ZeroDivision};
use crate::infer::Inference;
use crate::model::Architecture;
use crate::render::thumbnail_png;
use crate::segment::TrainedModel;
use crate::train::read_provenance;

/// One row of the table (and of `results.json`): a model's pooled test
/// metrics on one dataset beside the paper's figures and the project's goals.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Dataset.
    pub dataset: String,
    /// Model, with `-long` for the longer budget ([`Budget::label`]).
    pub model: String,
    /// F1 at threshold 0.5, pooled.
    pub f1: f64,
    /// Sensitivity.
    pub se: f64,
    /// Specificity.
    pub sp: f64,
    /// Accuracy.
    pub acc: f64,
    /// ROC AUC, pooled.
    pub auc: Option<f64>,
    /// Jaccard.
    pub jaccard: f64,
    /// Dice (= F1).
    pub dice: f64,
    /// 95% bootstrap interval of F1 over images.
    pub f1_ci: Option<[f64; 2]>,
    /// 95% bootstrap interval of AUC.
    pub auc_ci: Option<[f64; 2]>,
    /// F1-optimal threshold chosen on validation (else training) images.
    pub tuned_threshold: Option<f32>,
    /// Test F1 at that threshold.
    pub tuned_f1: Option<f64>,
    /// Test images.
    pub images: usize,
    /// How the dataset is evaluated.
    pub protocol: String,
    /// The weights file.
    pub weights: String,
    /// The paper's figures, where it reports them.
    pub paper: Option<PaperRow>,
    /// The project's F1 goal.
    pub goal_f1: Option<f64>,
    /// The project's AUC goal.
    pub goal_auc: Option<f64>,
    /// How the model was trained (provenance), where recorded.
    pub train: Option<serde_json::Value>,
    /// The example overlay of this row on the examples page, relative to the output folder.
    pub example: Option<String>,
    /// A figure the protocol asks for besides the table's (lung: Dice without
    /// the slice whose mask marks air as lung).
    pub note: Option<String>,
    /// Per-image F1 at the fixed threshold, for choosing the example image.
    #[serde(skip)]
    pub per_image: Vec<(String, f64)>,
}

/// What [`build`] makes: a row for every dataset and model.
#[derive(Debug, Clone)]
pub struct Plan<'a> {
    /// Data root holding `DRIVE/`, `STARE/`, ... ([`dataset_dir`]).
    pub data: &'a Path,
    /// The paper's datasets, in table order.
    pub datasets: &'a [DatasetKind],
    /// The models, in table order.
    pub models: &'a [Architecture],
    /// Shipped weights; a `<dataset>-<model>-long.safetensors` there adds a
    /// row at the longer budget where `long_rows`.
    pub weights_dir: &'a Path,
    /// Whether longer-budget rows are made where their file is shipped.
    pub long_rows: bool,
    /// Output folder: a report folder per row, `results.json`, `results.md`,
    /// `comparisons.json`, `examples.md`.
    pub out: &'a Path,
    /// Bootstrap resamples of the intervals.
    pub resamples: usize,
}

/// The table [`build`] wrote.
#[derive(Debug)]
pub struct Table {
    /// The rows made.
    pub rows: Vec<Row>,
    /// `results.md`: the table, the paired comparisons and the leave-one-out
    /// runs found in the output folder.
    pub markdown: String,
    /// Each row that could not be made, with why.
    pub skipped: Vec<String>,
    /// The examples page.
    pub examples: PathBuf,
}

/// Where a row's weights come from, given its dataset, model, budget and
/// dataset folder: the weights file and how it was trained (provenance).
pub type WeightsOf<'a> = dyn FnMut(DatasetKind, Architecture, Budget, &Path) -> Result<(PathBuf, Option<serde_json::Value>)>
    + 'a;

/// The shipped weights of a row in `weights_dir` ([`Budget::weights`]) and
/// their recorded provenance.
///
/// # Errors
///
/// The file is missing (named) or its metadata cannot be read.
pub fn shipped(
    weights_dir: &Path,
    kind: DatasetKind,
    model: Architecture,
    budget: Budget,
) -> Result<(PathBuf, Option<serde_json::Value>)> {
    let w = budget.weights(weights_dir, kind, model);
    if !w.is_file() {
        return Err(Error::Layout {
            path: w,
            reason: "no such shipped weights file (train it with --train)".into(),
        });
    }
    let provenance = read_provenance(&w)?;
    Ok((w, provenance))
}

/// Makes every row of `plan` (weights from `weights_of`, then
/// [`evaluate_row`]; `on_row` hears of each as it is made), the paired
/// comparisons and the examples page, and writes them all to `plan.out`. A
/// row that fails (a dataset folder or weights file missing, say) is
/// skipped with its reason, not fatal.
///
/// # Errors
///
/// A dataset that is not one of the paper's, and I/O errors writing the
/// output, naming the file.
pub fn build(
    plan: &Plan,
    weights_of: &mut WeightsOf,
    device: &Device,
    on_row: &mut dyn FnMut(&Row),
) -> Result<Table> {
    std::fs::create_dir_all(plan.out).map_err(|e| Error::io(plan.out, e))?;
    let mut rows = Vec::new();
    let mut reports: Vec<(DatasetKind, String, EvalReport)> = Vec::new();
    let mut skipped = Vec::new();
    for &kind in plan.datasets {
        if matches!(kind, DatasetKind::Folder | DatasetKind::Nifti) {
            return Err(Error::invalid(
                "datasets",
                format!(
                    "{kind} is not one of the paper's datasets (drive, stare, chase, ph2, lung)"
                ),
            ));
        }
        let Some(dir) = dataset_dir(plan.data, kind) else {
            skipped.push(format!(
                "{kind}: no folder for it under {}",
                plan.data.display()
            ));
            continue;
        };
        for &model in plan.models {
            let long = plan.long_rows
                && Budget::Long
                    .weights(plan.weights_dir, kind, model)
                    .is_file();
            let budgets = [Budget::Default, Budget::Long]
                .into_iter()
                .filter(|&b| b == Budget::Default || long);
            for budget in budgets {
                let label = budget.label(model);
                let report_dir = plan.out.join(format!("{kind}-{label}"));
                let row = weights_of(kind, model, budget, &dir).and_then(|(weights, train)| {
                    evaluate_row(
                        kind,
                        model,
                        budget,
                        &dir,
                        &weights,
                        train,
                        &report_dir,
                        plan.resamples,
                        device,
                    )
                });
                match row {
                    Ok((row, report)) => {
                        on_row(&row);
                        rows.push(row);
                        reports.push((kind, label, report));
                    }
                    Err(e) => skipped.push(format!("{kind} {label}: {e}")),
                }
            }
        }
    }
    let examples = write_examples(plan.out, &mut rows)?;
    let comparisons = paired_comparisons(&reports, plan.resamples)?;
    let mut text = markdown(&rows);
    text.push_str(&comparisons_markdown(&comparisons));
    text.push_str(&loo::notes(plan.out, plan.datasets, plan.models)?);
    write_atomic(
        &plan.out.join("comparisons.json"),
        to_json(&comparisons)?.as_bytes(),
    )?;
    write_atomic(&plan.out.join("results.json"), to_json(&rows)?.as_bytes())?;
    write_atomic(&plan.out.join("results.md"), text.as_bytes())?;
    Ok(Table {
        rows,
        markdown: text,
        skipped,
        examples,
    })
}

/// Pretty JSON of a table part.
fn to_json<T: Serialize>(value: &T) -> Result<String> {
    serde_json::to_string_pretty(value).map_err(|e| Error::invalid("results JSON", e.to_string()))
}

/// Evaluates `weights` (the `budget` model of `model`, trained as `train`
/// describes, when known) on the
/// test split of `kind` in `dir` as the table does: threshold 0.5 and the
/// F1-optimal threshold chosen on the validation split (else training),
/// `resamples` bootstrap resamples, a report folder with pictures in
/// `report_dir`.
///
/// # Errors
///
/// Loading, inference and I/O errors naming the file or image.
#[allow(clippy::too_many_arguments)]
fn evaluate_row(
    kind: DatasetKind,
    model: Architecture,
    budget: Budget,
    dir: &Path,
    weights: &Path,
    train: Option<serde_json::Value>,
    report_dir: &Path,
    resamples: usize,
    device: &Device,
) -> Result<(Row, EvalReport)> {
    let TrainedModel {
        model: net,
        preprocess,
        ..
    } = TrainedModel::load(weights, device)?;
    let opts = LoadOptions::default();
    let source = Some((kind, dir));
    let inference = Inference::default();
    let tune_split = [Split::Val, Split::Train]
        .into_iter()
        .find(|&s| split_samples(source, s, &opts).is_ok());
    let tuned = match tune_split {
        Some(s) => Some(tune_threshold(
            &net,
            &preprocess,
            &inference,
            split_samples(source, s, &opts)?,
            &format!("F1-optimal on {kind} {s}"),
            device,
        )?),
        None => None,
    };
    let eval_opts = EvalOptions {
        inference,
        tuned,
        resamples,
        ..EvalOptions::default()
    };
    let report: EvalReport = evaluate_into(
        &net,
        &preprocess,
        split_samples(source, Split::Test, &opts)?,
        &eval_opts,
        Some(&ReportOut {
            dir: report_dir,
            pictures: true,
            title: format!(
                "{} on {kind} test — {}",
                budget.label(model),
                weights.display()
            ),
        }),
        device,
    )?;
    let p = &report.fixed.pooled;
    let ci = report.fixed.ci;
    let goal = goal(kind, budget);
    let row = Row {
        dataset: kind.to_string(),
        model: budget.label(model),
        f1: p.f1,
        se: p.sensitivity,
        sp: p.specificity,
        acc: p.accuracy,
        auc: p.auc,
        jaccard: p.jaccard,
        dice: p.f1,
        f1_ci: ci.map(|c| [c.f1.lo, c.f1.hi]),
        auc_ci: ci.and_then(|c| c.auc).map(|i| [i.lo, i.hi]),
        tuned_threshold: report.tuned.as_ref().map(|t| t.threshold),
        tuned_f1: report.tuned.as_ref().map(|t| t.pooled.f1),
        images: report.images,
        protocol: eval_protocol(kind).to_string(),
        weights: weights.display().to_string(),
        paper: paper(kind, model),
        goal_f1: goal.map(|g| g.0),
        goal_auc: goal.and_then(|g| g.1),
        train,
        note: (kind == DatasetKind::Lung)
            .then(|| without_quirk_slice(&report))
            .flatten(),
        example: None,
        per_image: report
            .fixed
            .per_image
            .iter()
            .map(|m| (m.id.clone(), m.metrics.f1))
            .collect(),
    };
    Ok((row, report))
}

/// Dice pooled over the lung test slices but [`QUIRK_SLICE`], named.
fn without_quirk_slice(report: &EvalReport) -> Option<String> {
    let others: Vec<_> = report
        .fixed
        .per_image
        .iter()
        .filter(|m| m.id != QUIRK_SLICE)
        .collect();
    if others.len() == report.fixed.per_image.len() {
        return None;
    }
    let pooled: Confusion = others.iter().map(|m| m.metrics.confusion).sum();
    Some(format!(
        "Dice {:.4} over the other {} slices without {QUIRK_SLICE} (its mask marks air \
         outside the body as lung)",
        pooled.f1(ZeroDivision::One),
        others.len()
    ))
}

/// The table and each row's protocol line, as Markdown.
pub fn markdown(rows: &[Row]) -> String {
    let f = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{v:.4}"));
    let mut out = String::from(
        "| dataset | model | F1 (Dice) [95% CI] | Se | Sp | Acc | AUC | Jaccard | paper F1 | paper AUC | goal F1 / AUC |\n\
         |---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let ci = r
            .f1_ci
            .map_or(String::new(), |c| format!(" [{:.4}, {:.4}]", c[0], c[1]));
        let _ = writeln!(
            out,
            "| {} | {} | **{:.4}**{ci} | {:.4} | {:.4} | {:.4} | {} | {:.4} | {} | {} | {} / {} |",
            r.dataset,
            r.model,
            r.f1,
            r.se,
            r.sp,
            r.acc,
            f(r.auc),
            r.jaccard,
            f(r.paper.and_then(|p| p.f1)),
            f(r.paper.and_then(|p| p.auc)),
            f(r.goal_f1),
            f(r.goal_auc),
        );
    }
    out.push_str("\nProtocols:\n\n");
    for r in rows {
        let _ = writeln!(
            out,
            "- {} {}: {}; weights `{}`{}{}",
            r.dataset,
            r.model,
            r.protocol,
            r.weights,
            r.train.as_ref().map_or(String::new(), training_note),
            r.note.as_ref().map_or(String::new(), |n| format!("; {n}"))
        );
    }
    out
}

/// One model pair's comparison on one dataset.
#[derive(Debug, Serialize)]
pub struct Comparison {
    /// Dataset.
    pub dataset: String,
    /// Model A.
    pub a: String,
    /// Model B.
    pub b: String,
    /// A - B.
    #[serde(flatten)]
    pub result: PairedComparison,
}

/// Every pair of models evaluated on the same dataset, compared on its test
/// images (A before B in the order evaluated).
///
/// # Errors
///
/// Reports of different images.
pub fn paired_comparisons(
    reports: &[(DatasetKind, String, EvalReport)],
    resamples: usize,
) -> Result<Vec<Comparison>> {
    let mut out = Vec::new();
    for (i, (kind, a, ra)) in reports.iter().enumerate() {
        for (kind_b, b, rb) in &reports[i + 1..] {
            if kind_b != kind {
                continue;
            }
            out.push(Comparison {
                dataset: kind.to_string(),
                a: a.to_string(),
                b: b.to_string(),
                result: compare(ra, rb, resamples, 0)?,
            });
        }
    }
    Ok(out)
}

/// The comparisons as a Markdown table (empty without any).
pub fn comparisons_markdown(comparisons: &[Comparison]) -> String {
    if comparisons.is_empty() {
        return String::new();
    }
    let interval =
        |i: Option<Interval>| i.map_or(String::new(), |i| format!(" [{:+.4}, {:+.4}]", i.lo, i.hi));
    let mut out = String::from(
        "\nPaired comparisons on the same test images (A - B; 95% paired bootstrap intervals \
         over images; Wilcoxon signed-rank test on per-image F1, two-sided):\n\n\
         | dataset | A | B | images | F1 difference | AUC difference | Wilcoxon p | F1 verdict |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    for c in comparisons {
        let r = &c.result;
        let verdict = match r.f1_verdict() {
            1 => format!("{} higher", c.a),
            -1 => format!("{} higher", c.b),
            _ => "not shown".to_string(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {:+.4}{} | {}{} | {} | {verdict} |",
            c.dataset,
            c.a,
            c.b,
            r.images,
            r.f1_difference,
            interval(r.f1_interval),
            r.auc_difference
                .map_or("–".to_string(), |d| format!("{d:+.4}")),
            interval(r.auc_interval),
            r.wilcoxon_p.map_or("–".to_string(), |p| if p < 0.001 {
                format!("{p:.1e}")
            } else {
                format!("{p:.3}")
            }),
        );
    }
    out
}

/// Longer side of the example overlays, in pixels (small enough to commit).
const EXAMPLE_SIDE: u32 = 360;

/// The median image (by F1 at the fixed threshold) of `per_image`.
fn median_image(per_image: &[(String, f64)]) -> Option<&str> {
    let mut sorted: Vec<&(String, f64)> = per_image.iter().collect();
    sorted.sort_by(|a, b| a.1.total_cmp(&b.1));
    sorted.get(sorted.len() / 2).map(|(id, _)| id.as_str())
}

/// `OUT/examples.md`: for each dataset one test image, the median one by F1
/// under the dataset's first model, segmented by every model of the table
/// (error overlays scaled down into `OUT/examples/`), so the models can be
/// compared on the same picture. Rows whose overlay is missing are left out.
///
/// # Errors
///
/// I/O errors naming the file.
pub fn write_examples(out: &Path, rows: &mut [Row]) -> Result<PathBuf> {
    let dir = out.join("examples");
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let mut page = String::from(
        "# Example segmentations\n\nOne test image per dataset (the median by F1 under the \
         first model listed), segmented by each model at threshold 0.5. Green: true \
         positives; red: false positives; blue: false negatives; darkened: outside the FOV. \
         Written by `r2unet reproduce`; full-size overlays of every test image are in the \
         report folder of each row.\n",
    );
    let mut chosen: Vec<(String, String)> = Vec::new();
    for row in rows.iter_mut() {
        let id = match chosen.iter().find(|(d, _)| *d == row.dataset) {
            Some((_, id)) => id.clone(),
            None => {
                let Some(id) = median_image(&row.per_image) else {
                    continue;
                };
                chosen.push((row.dataset.clone(), id.to_string()));
                let _ = write!(page, "\n## {} — test image {id}\n\n", row.dataset);
                id.to_string()
            }
        };
        let name = format!("{}-{}", row.dataset, row.model);
        let overlay = out
            .join(&name)
            .join(PICTURES)
            .join(format!("{}_overlay.png", file_stem(&id)));
        let Ok(png) = std::fs::read(&overlay) else {
            continue;
        };
        let file = format!("examples/{name}.png");
        write_atomic(&out.join(&file), &thumbnail_png(&png, EXAMPLE_SIDE)?)?;
        let f1 = row
            .per_image
            .iter()
            .find(|(i, _)| *i == id)
            .map_or(String::new(), |(_, f1)| {
                format!(", F1 {f1:.4} on this image")
            });
        let _ = write!(page, "**{}**{f1}\n\n![{name}]({file})\n\n", row.model);
        row.example = Some(file);
    }
    let path = out.join("examples.md");
    write_atomic(&path, page.as_bytes())?;
    Ok(path)
}

/// "; trained 10 epochs, 108,160 patches, 2,517 s, best validation AUC 0.9759"
/// from a run's or an exported model's provenance (fields missing are left out).
fn training_note(train: &serde_json::Value) -> String {
    let thousands = |v: u64| {
        let digits = v.to_string();
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        out
    };
    let mut parts = Vec::new();
    if let Some(e) = train["epochs"].as_u64() {
        parts.push(format!("{e} epochs"));
    }
    if let Some(p) = train["patches_seen"].as_u64() {
        parts.push(format!("{} patches seen", thousands(p)));
    }
    if let Some(t) = train["train_seconds"].as_f64() {
        parts.push(format!("{} s", thousands(t.round() as u64)));
    }
    if let Some(a) = train["best_val_auc"].as_f64() {
        parts.push(format!("best validation AUC {a:.4}"));
    }
    if let Some(init) = train["init"].as_str() {
        parts.push(format!("fine-tuned from `{init}`"));
    }
    if train["all_images"].as_bool() == Some(true) {
        parts.push("on every image, the test split included".into());
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("; trained {}", parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::{Plan, build, median_image, shipped, training_note};
    use crate::data::DatasetKind;
    use crate::device::DeviceChoice;
    use crate::model::Architecture;
    use crate::reproduce::Budget;

    #[test]
    fn missing_datasets_and_weights_are_skipped_with_why_other_layouts_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let (data, out) = (tmp.path().join("data"), tmp.path().join("out"));
        std::fs::create_dir_all(data.join("DRIVE")).unwrap();
        let device = DeviceChoice::Cpu.device().unwrap();
        let plan = Plan {
            data: &data,
            datasets: &[DatasetKind::Drive, DatasetKind::Lung],
            models: &[Architecture::Unet],
            weights_dir: tmp.path(),
            long_rows: true,
            out: &out,
            resamples: 10,
        };
        let mut asked = Vec::new();
        let table = build(
            &plan,
            &mut |kind, model, budget, _: &Path| {
                asked.push((kind, budget));
                shipped(tmp.path(), kind, model, budget)
            },
            &device,
            &mut |_| panic!("no row can be made"),
        )
        .unwrap();
        assert!(table.rows.is_empty());
        // No lung folder: not asked for weights; no -long file: no long row.
        assert_eq!(asked, [(DatasetKind::Drive, Budget::Default)]);
        assert_eq!(table.skipped.len(), 2, "{:?}", table.skipped);
        assert!(
            table.skipped[0].starts_with("drive unet: "),
            "{}",
            table.skipped[0]
        );
        assert!(table.skipped[0].contains("drive-unet.safetensors: no such shipped weights"));
        assert!(table.skipped[1].starts_with("lung: no folder for it under"));
        for file in [
            "results.md",
            "results.json",
            "comparisons.json",
            "examples.md",
        ] {
            assert!(out.join(file).is_file(), "{file}");
        }
        let folder = Plan {
            datasets: &[DatasetKind::Folder],
            ..plan
        };
        let err = build(
            &folder,
            &mut |_, _, _, _| unreachable!(),
            &device,
            &mut |_| {},
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("folder is not one of the paper's datasets"),
            "{err}"
        );
    }

    #[test]
    fn the_example_is_the_median_image() {
        let per_image = [("a".to_string(), 0.9), ("b".into(), 0.5), ("c".into(), 0.7)];
        assert_eq!(median_image(&per_image), Some("c"));
        assert_eq!(median_image(&[]), None);
    }

    #[test]
    fn training_notes_read_provenance() {
        let v = serde_json::json!({"epochs": 10, "patches_seen": 108160, "train_seconds": 2517.0,
            "best_val_auc": 0.975903, "init": null});
        assert_eq!(
            training_note(&v),
            "; trained 10 epochs, 108,160 patches seen, 2,517 s, best validation AUC 0.9759"
        );
        assert_eq!(training_note(&serde_json::json!({})), "");
    }
}
