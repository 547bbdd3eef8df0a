//! `r2unet reproduce`: the paper's results table from shipped weights (or
//! retrained with `--train`), beside the paper's numbers.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Args;
use r2unet::atomic::write_atomic;
use r2unet::data::lung::QUIRK_SLICE;
use r2unet::data::{DatasetKind, LoadOptions, Split, split_samples};
use r2unet::device::DeviceChoice;
use r2unet::eval::bootstrap::Interval;
use r2unet::eval::evaluate::{EvalOptions, EvalReport, tune_threshold};
use r2unet::eval::paired::{PairedComparison, compare};
use r2unet::eval::report::{PICTURES, ReportOut, evaluate_into, file_stem};
use r2unet::eval::{Confusion, ZeroDivision};
use r2unet::infer::Inference;
use r2unet::model::{Architecture, read_metadata};
use r2unet::render::thumbnail_png;
use r2unet::reproduce::{PaperRow, dataset_dir, eval_protocol, goal, loo, paper, train_config};
use r2unet::segment::TrainedModel;
use r2unet::train::{PROVENANCE_KEY, RunDir, Trainer};
use serde::Serialize;

use crate::train_cmd::train;

/// Flags of `r2unet reproduce`.
#[derive(Args, Debug)]
pub struct ReproduceArgs {
    /// Data root holding DRIVE/, STARE/, CHASE_DB1/, PH2/, LUNG/ (as ../shared/data).
    #[arg(long)]
    data: PathBuf,
    /// Datasets, comma-separated: drive, stare, chase, ph2, lung.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "drive,stare,chase,ph2,lung"
    )]
    datasets: Vec<DatasetKind>,
    /// Models, comma-separated: unet, resunet, runet, r2unet, attr2unet.
    #[arg(long, value_delimiter = ',', default_value = "r2unet")]
    models: Vec<Architecture>,
    /// Train each model (resuming runs already in OUT/runs/) instead of using shipped weights.
    #[arg(long)]
    train: bool,
    /// Override the training epochs of every run (quick checks).
    #[arg(long)]
    epochs: Option<usize>,
    /// Override the patches per image of retina runs (quick checks).
    #[arg(long)]
    patches_per_image: Option<usize>,
    /// Folder of shipped weights, named <dataset>-<model>.safetensors.
    #[arg(long, default_value = "weights")]
    weights_dir: PathBuf,
    /// Output folder: results.json, results.md, one report folder per row, runs/.
    #[arg(long, short, default_value = "reproduce")]
    out: PathBuf,
    /// Bootstrap resamples for the 95% intervals.
    #[arg(long, default_value_t = 1000)]
    bootstrap: usize,
    /// Device: cpu, or vulkan / wgpu / cuda when compiled in.
    #[arg(long, default_value = "cpu")]
    device: DeviceChoice,
    /// `standard`: each dataset's standard split and shipped (or --train) model.
    /// `loo`: leave-one-out (the paper's STARE protocol): one model per image, trained
    /// on all the others (fine-tuned from --weights-dir's drive-<model>.safetensors when
    /// present) and tested on it; resumable fold by fold.
    #[arg(long, value_enum, default_value = "standard")]
    protocol: ProtocolArg,
    /// With --protocol loo: stop after training this many more folds (the summary
    /// covers every finished fold).
    #[arg(long, value_name = "N")]
    max_folds: Option<usize>,
}

/// `--protocol`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum ProtocolArg {
    /// The standard split of each dataset.
    Standard,
    /// Leave-one-out.
    Loo,
}

/// One row of results.json.
#[derive(Debug, Serialize)]
struct Row {
    dataset: String,
    model: String,
    f1: f64,
    se: f64,
    sp: f64,
    acc: f64,
    auc: Option<f64>,
    jaccard: f64,
    dice: f64,
    f1_ci: Option<[f64; 2]>,
    auc_ci: Option<[f64; 2]>,
    tuned_threshold: Option<f32>,
    tuned_f1: Option<f64>,
    images: usize,
    protocol: String,
    weights: String,
    paper: Option<PaperRow>,
    goal_f1: Option<f64>,
    goal_auc: Option<f64>,
    train: Option<serde_json::Value>,
    /// The example overlay of this row on the examples page, relative to the output folder.
    example: Option<String>,
    /// A figure the protocol asks for besides the table's (lung: Dice without
    /// the slice whose mask marks air as lung).
    note: Option<String>,
    /// Per-image F1 at the fixed threshold, for choosing the example image.
    #[serde(skip)]
    per_image: Vec<(String, f64)>,
}

fn run_one(
    args: &ReproduceArgs,
    kind: DatasetKind,
    model: Architecture,
    dir: &Path,
    device: &r2unet::device::Device,
) -> anyhow::Result<(Row, EvalReport)> {
    let name = format!("{kind}-{model}");
    let (weights, train_info) = if args.train {
        let run = RunDir(args.out.join("runs").join(&name));
        let trainer = if run.state().exists() {
            Trainer::resume(run.clone(), device)?
        } else {
            let mut config = train_config(kind, model, dir);
            if let Some(e) = args.epochs {
                config.epochs = e;
            }
            if let Some(p) = args.patches_per_image
                && kind.is_retina()
            {
                config.patches_per_image = p;
            }
            Trainer::new(config, run.clone(), device)?
        };
        eprintln!("training {name} in {}", run.0.display());
        let state = train(trainer, &run.0)?;
        let config = run.read_config()?;
        let info = serde_json::json!({
            "epochs": state.epoch,
            "steps": state.steps,
            "patches_seen": state.steps * config.batch_size,
            "train_seconds": state.elapsed_s.round(),
            "best_val_auc": state.best_auc,
        });
        (run.best(), Some(info))
    } else {
        let w = args.weights_dir.join(format!("{name}.safetensors"));
        anyhow::ensure!(
            w.is_file(),
            "no shipped weights {} (train them with --train)",
            w.display()
        );
        // How the shipped model was trained, as `r2unet export` recorded it.
        let provenance =
            read_metadata(&w, PROVENANCE_KEY)?.and_then(|json| serde_json::from_str(&json).ok());
        // Weights exported before `export` kept only the run folder's name
        // recorded the full path of the machine that trained them.
        let provenance = provenance.map(|mut p: serde_json::Value| {
            if let Some(run) = p.get_mut("run")
                && let Some(name) = run
                    .as_str()
                    .and_then(|r| Path::new(r).file_name())
                    .map(|n| n.to_string_lossy().into_owned())
            {
                *run = serde_json::Value::String(name);
            }
            p
        });
        (w, provenance)
    };
    let TrainedModel {
        model: net,
        preprocess,
        ..
    } = TrainedModel::load(&weights, device)?;
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
        resamples: args.bootstrap,
        ..EvalOptions::default()
    };
    let report: EvalReport = evaluate_into(
        &net,
        &preprocess,
        split_samples(source, Split::Test, &opts)?,
        &eval_opts,
        Some(&ReportOut {
            dir: &args.out.join(&name),
            pictures: true,
            title: format!("{model} on {kind} test — {}", weights.display()),
        }),
        device,
    )?;
    let p = &report.fixed.pooled;
    let ci = report.fixed.ci;
    let goal = goal(kind);
    let row = Row {
        dataset: kind.to_string(),
        model: model.to_string(),
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
        train: train_info,
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

fn markdown(rows: &[Row]) -> String {
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
#[derive(Serialize)]
struct Comparison {
    dataset: String,
    a: String,
    b: String,
    #[serde(flatten)]
    result: PairedComparison,
}

/// Every pair of models evaluated on the same dataset, compared on its test
/// images (A listed before B in --models).
fn paired_comparisons(
    reports: &[(DatasetKind, Architecture, EvalReport)],
    resamples: usize,
) -> anyhow::Result<Vec<Comparison>> {
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

fn comparisons_markdown(comparisons: &[Comparison]) -> String {
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
fn write_examples(out: &Path, rows: &mut [Row]) -> anyhow::Result<PathBuf> {
    let dir = out.join("examples");
    std::fs::create_dir_all(&dir)?;
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

/// `--protocol loo`: every dataset and model by leave-one-out.
fn run_loo(args: &ReproduceArgs) -> anyhow::Result<()> {
    let device = args.device.device()?;
    for &kind in &args.datasets {
        let dir = dataset_dir(&args.data, kind).ok_or_else(|| {
            anyhow::anyhow!("{kind}: no folder for it under {}", args.data.display())
        })?;
        for &model in &args.models {
            let name = format!("{kind}-{model}-loo");
            let out = args.out.join(&name);
            let init = Some(args.weights_dir.join(format!("drive-{model}.safetensors")))
                .filter(|w| w.is_file() && kind != DatasetKind::Drive);
            let budget = |mut c: r2unet::train::TrainConfig| {
                if let Some(e) = args.epochs {
                    c.epochs = e;
                }
                if let Some(p) = args.patches_per_image {
                    c.patches_per_image = p;
                }
                c
            };
            eprintln!(
                "{name}: folds in {}, their runs in {}{}",
                out.display(),
                args.out.join("runs").join(&name).display(),
                init.as_ref().map_or(String::new(), |w| format!(
                    ", fine-tuned from {}",
                    w.display()
                ))
            );
            let summary = loo::run(
                kind,
                model,
                &dir,
                &out,
                &args.out.join("runs").join(&name),
                &args
                    .weights_dir
                    .join(format!("{kind}-{model}-all.safetensors")),
                init,
                &budget,
                args.max_folds,
                &device,
                &mut |trainer, run| {
                    train(trainer, run).map_err(|e| {
                        r2unet::Error::invalid(
                            "training",
                            format!(
                                "{e:#} (or run the same reproduce command again: \
                                 it continues this fold)"
                            ),
                        )
                    })
                },
            )
            .with_context(|| format!("leave-one-out of {model} on {kind}"))?;
            let text = loo_markdown(&summary);
            write_atomic(&out.join("summary.md"), text.as_bytes())?;
            write_atomic(
                &out.join("summary.json"),
                serde_json::to_string_pretty(&summary)?.as_bytes(),
            )?;
            println!("{text}");
        }
    }
    Ok(())
}

/// The leave-one-out summary as Markdown: pooled metrics, mean and
/// standard deviation over folds, one line per fold.
fn loo_markdown(s: &loo::Summary) -> String {
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
        None => {
            text.push_str("The model on every image is trained once all folds are finished.\n\n")
        }
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

pub fn run(args: ReproduceArgs) -> anyhow::Result<()> {
    if args.protocol == ProtocolArg::Loo {
        return run_loo(&args);
    }
    let device = args.device.device()?;
    std::fs::create_dir_all(&args.out)?;
    let mut rows = Vec::new();
    let mut reports: Vec<(DatasetKind, Architecture, EvalReport)> = Vec::new();
    let mut skipped = Vec::new();
    for &kind in &args.datasets {
        anyhow::ensure!(
            !matches!(kind, DatasetKind::Folder | DatasetKind::Nifti),
            "--datasets: {kind} is not one of the paper's datasets (drive, stare, chase, ph2, lung)"
        );
        let Some(dir) = dataset_dir(&args.data, kind) else {
            skipped.push(format!(
                "{kind}: no folder for it under {}",
                args.data.display()
            ));
            continue;
        };
        for &model in &args.models {
            match run_one(&args, kind, model, &dir, &device) {
                Ok((row, report)) => {
                    eprintln!(
                        "{kind} {model}: F1 {:.4}, AUC {}",
                        row.f1,
                        row.auc.map_or("n/a".into(), |v| format!("{v:.4}"))
                    );
                    rows.push(row);
                    reports.push((kind, model, report));
                }
                Err(e) => skipped.push(format!("{kind} {model}: {e:#}")),
            }
        }
    }
    let examples = write_examples(&args.out, &mut rows)?;
    let comparisons = paired_comparisons(&reports, args.bootstrap)?;
    let mut table = markdown(&rows);
    table.push_str(&comparisons_markdown(&comparisons));
    write_atomic(
        &args.out.join("comparisons.json"),
        serde_json::to_string_pretty(&comparisons)?.as_bytes(),
    )?;
    write_atomic(
        &args.out.join("results.json"),
        serde_json::to_string_pretty(&rows)?.as_bytes(),
    )?;
    write_atomic(&args.out.join("results.md"), table.as_bytes())?;
    println!("{table}");
    for s in &skipped {
        println!("skipped {s}");
    }
    println!(
        "written: {}, {} and {}",
        args.out.join("results.json").display(),
        args.out.join("results.md").display(),
        examples.display()
    );
    anyhow::ensure!(!rows.is_empty(), "no row could be produced");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{median_image, training_note};

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
