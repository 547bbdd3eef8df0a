//! What `r2unet eval` leaves in a report folder: `report.json`, `report.md`,
//! ROC and PR curve PNGs, and per image a probability map, a binary mask and
//! an error overlay.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::bootstrap::Interval;
use super::evaluate::{AtThreshold, EvalOptions, EvalReport, evaluate};
use crate::atomic::{Staged, write_atomic};
use crate::data::Sample;
use crate::device::Device;
use crate::error::{Error, Result};
use crate::model::{Preprocess, UNet};
use crate::plot::{Chart, Series, write_png};
use crate::render::{error_overlay, mask_png, photo, probability_png, rgb_png};

/// Folder of the per-image pictures inside a report folder.
pub const PICTURES: &str = "images";

/// A file-name-safe version of a sample id.
pub fn file_stem(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Where a report goes: its folder, whether per-image pictures are written,
/// and the title of report.md.
pub struct ReportOut<'a> {
    /// The report folder (created if missing).
    pub dir: &'a Path,
    /// Whether the per-image PNGs of [`write_pictures`] are written.
    pub pictures: bool,
    /// The title of report.md.
    pub title: String,
}

/// [`evaluate`], writing the per-image pictures as each image is done and
/// the report files at the end into `out`.
///
/// # Errors
///
/// As [`evaluate`]; I/O errors naming the file.
pub fn evaluate_into(
    model: &UNet,
    preprocess: &Preprocess,
    samples: impl IntoIterator<Item = Result<Sample>>,
    opts: &EvalOptions,
    out: Option<&ReportOut<'_>>,
    device: &Device,
) -> Result<EvalReport> {
    if let Some(out) = out {
        std::fs::create_dir_all(out.dir).map_err(|e| Error::io(out.dir, e))?;
    }
    let threshold = opts.threshold;
    let mut on_image = |sample: &Sample, probs: &[f32]| -> Result<()> {
        match out {
            Some(out) if out.pictures => write_pictures(out.dir, sample, probs, threshold),
            _ => Ok(()),
        }
    };
    let report = evaluate(model, preprocess, samples, opts, device, &mut on_image)?;
    if let Some(out) = out {
        write_report(out.dir, &report, &out.title, out.pictures)?;
    }
    Ok(report)
}

/// Writes `<id>_image.png` (the photograph or slice), `<id>_prob.png`
/// (16-bit), `<id>_mask.png` (`prob >= threshold` inside the FOV) and
/// `<id>_overlay.png` (TP green, FP red, FN blue) into `dir/images/`:
/// nothing is replaced unless all four were written ([`Staged`]).
///
/// # Errors
///
/// [`Error::Io`] naming the file that could not be written.
pub fn write_pictures(dir: &Path, sample: &Sample, probs: &[f32], threshold: f32) -> Result<()> {
    let pictures = dir.join(PICTURES);
    std::fs::create_dir_all(&pictures).map_err(|e| Error::io(&pictures, e))?;
    let (w, h) = (sample.image.width, sample.image.height);
    let mask: Vec<u8> = probs
        .iter()
        .zip(&sample.fov.data)
        .map(|(&p, &f)| u8::from(f != 0 && p >= threshold))
        .collect();
    let stem = file_stem(&sample.id);
    let path = |suffix: &str| pictures.join(format!("{stem}_{suffix}.png"));
    let overlay = error_overlay(&sample.image, &mask, &sample.label.data, &sample.fov.data);
    let mut set = Staged::default();
    set.write(&path("image"), &rgb_png(&photo(&sample.image))?)?;
    set.write(&path("prob"), &probability_png(probs, w, h)?)?;
    set.write(&path("mask"), &mask_png(&mask, w, h)?)?;
    set.write(&path("overlay"), &rgb_png(&overlay)?)?;
    set.commit()
}

/// Writes `report.json`, `report.md`, `roc.png`, `pr.png` and
/// `report.html` (one self-contained page, see [`super::html`]) into `dir`.
/// `title` heads the Markdown (e.g. `drive test, run runs/drive`); the
/// pictures of `images/` are linked only when this evaluation wrote them
/// (`pictures`), never those an earlier one left there.
///
/// # Errors
///
/// [`Error::Io`] naming the file that could not be written.
pub fn write_report(
    dir: &Path,
    report: &EvalReport,
    title: &str,
    pictures: bool,
) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let json = serde_json::to_string_pretty(report).expect("report serialises");
    let files = [
        dir.join("report.json"),
        dir.join("report.md"),
        dir.join("roc.png"),
        dir.join("pr.png"),
    ];
    write_atomic(&files[0], json.as_bytes())?;
    write_atomic(&files[1], markdown(report, title, pictures).as_bytes())?;
    let curve = |title: String, x: &str, y: &str, points: Vec<(f64, f64)>| Chart {
        title,
        x_label: x.into(),
        y_label: y.into(),
        series: vec![Series {
            name: "model".into(),
            points,
        }],
        y_range: Some((0.0, 1.0)),
    };
    let pooled = &report.fixed.pooled;
    let roc = curve(
        format!("ROC, pooled (AUC {})", opt(pooled.auc)),
        "false-positive rate",
        "sensitivity",
        report.roc.iter().map(|p| (p.fpr, p.tpr)).collect(),
    );
    write_png(&files[2], &[roc], 520, 480)?;
    let pr = curve(
        format!(
            "Precision-recall, pooled (AP {})",
            opt(pooled.average_precision)
        ),
        "recall",
        "precision",
        report.pr.iter().map(|p| (p.recall, p.precision)).collect(),
    );
    write_png(&files[3], &[pr], 520, 480)?;
    let page = dir.join("report.html");
    write_atomic(
        &page,
        super::html::page(report, title, dir, pictures)?.as_bytes(),
    )?;
    let mut files = files.to_vec();
    files.push(page);
    Ok(files)
}

fn opt(v: Option<f64>) -> String {
    v.map_or("n/a".into(), |v| format!("{v:.4}"))
}

fn with_ci(value: f64, ci: Option<Interval>) -> String {
    match ci {
        Some(i) => format!("{value:.4} [{:.4}, {:.4}]", i.lo, i.hi),
        None => format!("{value:.4}"),
    }
}

fn threshold_rows(out: &mut String, at: &AtThreshold) {
    let p = &at.pooled;
    let ci = at.ci;
    let row = |name: &str, v: f64, i: Option<Interval>| format!("| {name} | {} |\n", with_ci(v, i));
    let _ = writeln!(
        out,
        "\n### Threshold {:.4} ({})\n\n| metric | pooled [95% CI] |\n|---|---|",
        at.threshold, at.chosen_on
    );
    out.push_str(&row("F1 (Dice)", p.f1, ci.map(|c| c.f1)));
    out.push_str(&row(
        "Sensitivity",
        p.sensitivity,
        ci.map(|c| c.sensitivity),
    ));
    out.push_str(&row(
        "Specificity",
        p.specificity,
        ci.map(|c| c.specificity),
    ));
    out.push_str(&row("Accuracy", p.accuracy, ci.map(|c| c.accuracy)));
    out.push_str(&row("Precision", p.precision, ci.map(|c| c.precision)));
    out.push_str(&row("Jaccard", p.jaccard, ci.map(|c| c.jaccard)));
    if let Some(auc) = p.auc {
        out.push_str(&row("ROC AUC", auc, ci.and_then(|c| c.auc)));
    }
    if let Some(ap) = p.average_precision {
        out.push_str(&row("Average precision", ap, None));
    }
}

/// The Markdown report: protocol, pooled metrics with intervals, curves,
/// per-image table, and overlays when `pictures` were written.
pub fn markdown(report: &EvalReport, title: &str, pictures: bool) -> String {
    let mut out = format!("# {title}\n\n");
    let _ = writeln!(
        out,
        "{} images; {}; {:.2} s per image.",
        report.images, report.protocol, report.seconds_per_image
    );
    if let Some(ci) = report.fixed.ci {
        let _ = writeln!(
            out,
            "\nIntervals: {:.0}% percentile bootstrap over images ({} resamples); \
             the AUC interval uses scores quantised to 4096 levels.",
            ci.level * 100.0,
            ci.resamples
        );
    }
    out.push_str("\n## Pooled over all pixels inside the FOV\n");
    threshold_rows(&mut out, &report.fixed);
    if let Some(tuned) = &report.tuned {
        threshold_rows(&mut out, tuned);
    }
    out.push_str("\n## Curves\n\n![ROC](roc.png) ![PR](pr.png)\n");
    out.push_str(
        "\n## Per image (fixed threshold)\n\n| image | F1 | Se | Sp | Acc | AUC |\n|---|---|---|---|---|---|\n",
    );
    for m in &report.fixed.per_image {
        let p = &m.metrics;
        let _ = writeln!(
            out,
            "| {} | {:.4} | {:.4} | {:.4} | {:.4} | {} |",
            m.id,
            p.f1,
            p.sensitivity,
            p.specificity,
            p.accuracy,
            opt(p.auc)
        );
    }
    if pictures {
        let _ = writeln!(
            out,
            "\n## Overlays\n\nGreen: true positives; red: false positives; blue: false \
             negatives; darkened: outside the FOV. Probability maps (16-bit) and masks \
             are beside them in `{PICTURES}/`.\n"
        );
        for m in &report.fixed.per_image {
            let stem = file_stem(&m.id);
            let _ = writeln!(
                out,
                "**{}** (F1 {:.4})\n\n![{}]({PICTURES}/{stem}_overlay.png)\n",
                m.id, m.metrics.f1, m.id
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stems_are_file_name_safe() {
        assert_eq!(file_stem("21"), "21");
        assert_eq!(file_stem("a/b c:d"), "a_b_c_d");
    }
}
