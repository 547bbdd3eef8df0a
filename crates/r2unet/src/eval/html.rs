//! `report.html`: the evaluation report as one self-contained page (every
//! picture inline as a data URI, no network): metrics with intervals, ROC
//! and PR curves, the per-image table sortable by any column, and per image
//! the photograph, probability map, mask and error overlay at full size with
//! buttons to switch between them. A few lines of script do the sorting and
//! switching and mark the page ready (`<body data-ready="1">`), which
//! `scripts/check-report-html.sh` checks in headless Chromium.

use std::fmt::Write as _;
use std::path::Path;

use base64::Engine as _;

use super::bootstrap::Interval;
use super::evaluate::{AtThreshold, EvalReport};
use super::report::{PICTURES, file_stem};
use crate::error::{Error, Result};

/// The views of each image, in button order: file suffix and label.
const VIEWS: [(&str, &str); 4] = [
    ("image", "photograph"),
    ("prob", "probability"),
    ("mask", "mask"),
    ("overlay", "errors"),
];

/// `text` safe inside HTML text and attribute values.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A PNG file as a data URI; `None` when it does not exist.
fn data_uri(path: &Path) -> Result<Option<String>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(format!(
            "data:image/png;base64,{}",
            base64::engine::general_purpose::STANDARD.encode(bytes)
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path, e)),
    }
}

fn with_ci(value: f64, ci: Option<Interval>) -> String {
    match ci {
        Some(i) => format!("{value:.4} <small>[{:.4}, {:.4}]</small>", i.lo, i.hi),
        None => format!("{value:.4}"),
    }
}

fn pooled_rows(out: &mut String, at: &AtThreshold) {
    let p = &at.pooled;
    let ci = at.ci;
    let auc = p
        .auc
        .map_or("n/a".into(), |v| with_ci(v, ci.and_then(|c| c.auc)));
    let _ = writeln!(
        out,
        "<tr><td>{:.4} ({})</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{auc}</td></tr>",
        at.threshold,
        escape(&at.chosen_on),
        with_ci(p.f1, ci.map(|c| c.f1)),
        with_ci(p.sensitivity, ci.map(|c| c.sensitivity)),
        with_ci(p.specificity, ci.map(|c| c.specificity)),
        with_ci(p.accuracy, ci.map(|c| c.accuracy)),
        with_ci(p.precision, ci.map(|c| c.precision)),
        with_ci(p.jaccard, ci.map(|c| c.jaccard)),
    );
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;color:#222}\
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:right}\
th{background:#eee;cursor:pointer;user-select:none}td:first-child,th:first-child{text-align:left}\
th[data-order=asc]::after{content:' \\25B2'}th[data-order=desc]::after{content:' \\25BC'}\
.views button{margin-right:.3em}.views button.on{font-weight:bold}\
.view{display:none;max-width:none}.view.on{display:block}small{color:#666}";

const SCRIPT: &str = r#"
window.addEventListener('error', () => { document.body.dataset.error = '1'; });
function sortBy(th) {
  const table = th.closest('table'), body = table.tBodies[0];
  const col = th.cellIndex, asc = th.dataset.order !== 'asc';
  table.querySelectorAll('th').forEach(h => delete h.dataset.order);
  th.dataset.order = asc ? 'asc' : 'desc';
  const key = r => { const c = r.cells[col]; return c.dataset.value !== undefined ? parseFloat(c.dataset.value) : c.textContent; };
  const rows = Array.from(body.rows).sort((a, b) => {
    const x = key(a), y = key(b);
    const d = typeof x === 'number' ? x - y : String(x).localeCompare(String(y));
    return asc ? d : -d;
  });
  rows.forEach(r => body.appendChild(r));
}
function show(button) {
  const box = button.closest('section');
  box.querySelectorAll('.view, .views button').forEach(e => e.classList.remove('on'));
  box.querySelector('.view[data-view="' + button.dataset.view + '"]').classList.add('on');
  button.classList.add('on');
}
document.querySelectorAll('#per-image th').forEach(th => th.addEventListener('click', () => sortBy(th)));
document.querySelectorAll('.views button').forEach(b => b.addEventListener('click', () => show(b)));
document.querySelectorAll('section.picture').forEach(s => { const b = s.querySelector('.views button'); if (b) show(b); });
document.body.dataset.ready = '1';
"#;

/// The page for `report`, headed `title`, with the curves and (when this
/// evaluation wrote them, `pictures`) the pictures already written in `dir`
/// (`roc.png`, `pr.png`, `images/`) inlined.
///
/// # Errors
///
/// [`Error::Io`] naming a picture that exists but cannot be read.
pub fn page(report: &EvalReport, title: &str, dir: &Path, pictures: bool) -> Result<String> {
    let mut out = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>{0}</title><style>{STYLE}</style></head>\n<body>\n<h1>{0}</h1>\n",
        escape(title)
    );
    let _ = writeln!(
        out,
        "<p>{} images; {}; {:.2} s per image.</p>",
        report.images,
        escape(&report.protocol),
        report.seconds_per_image
    );
    if let Some(ci) = report.fixed.ci {
        let _ = writeln!(
            out,
            "<p>Intervals: {:.0}% percentile bootstrap over images ({} resamples); \
             the AUC interval uses scores quantised to 4096 levels.</p>",
            ci.level * 100.0,
            ci.resamples
        );
    }
    out.push_str(
        "<h2>Pooled over all pixels inside the field of view</h2>\n<table id=\"pooled\">\
         <thead><tr><th>threshold</th><th>F1 (Dice)</th><th>sensitivity</th><th>specificity</th>\
         <th>accuracy</th><th>precision</th><th>Jaccard</th><th>ROC AUC</th></tr></thead><tbody>\n",
    );
    pooled_rows(&mut out, &report.fixed);
    if let Some(tuned) = &report.tuned {
        pooled_rows(&mut out, tuned);
    }
    out.push_str("</tbody></table>\n<h2>Curves</h2>\n<p>");
    for (id, file) in [("roc", "roc.png"), ("pr", "pr.png")] {
        if let Some(uri) = data_uri(&dir.join(file))? {
            let _ = write!(out, "<img id=\"{id}\" alt=\"{id}\" src=\"{uri}\"> ");
        }
    }
    out.push_str(
        "</p>\n<h2>Per image</h2>\n<p>At the fixed threshold; click a column to sort.</p>\n\
         <table id=\"per-image\"><thead><tr><th>image</th><th>F1 (Dice)</th><th>sensitivity</th>\
         <th>specificity</th><th>accuracy</th><th>precision</th><th>Jaccard</th><th>AUC</th>\
         </tr></thead><tbody>\n",
    );
    for im in &report.fixed.per_image {
        let m = &im.metrics;
        let cell = |v: f64| format!("<td data-value=\"{v}\">{v:.4}</td>");
        let auc = m.auc.map_or("<td data-value=\"-1\">n/a</td>".into(), cell);
        let _ = writeln!(
            out,
            "<tr data-id=\"{0}\"><td><a href=\"#pic-{1}\">{0}</a></td>{2}{3}{4}{5}{6}{7}{auc}</tr>",
            escape(&im.id),
            file_stem(&im.id),
            cell(m.f1),
            cell(m.sensitivity),
            cell(m.specificity),
            cell(m.accuracy),
            cell(m.precision),
            cell(m.jaccard),
        );
    }
    out.push_str("</tbody></table>\n");
    let folder = dir.join(PICTURES);
    if pictures && folder.is_dir() {
        out.push_str(
            "<h2>Pictures</h2>\n<p>Errors: true positives green, false positives red, \
             false negatives blue; darkened outside the field of view.</p>\n",
        );
        for im in &report.fixed.per_image {
            let stem = file_stem(&im.id);
            let mut buttons = String::new();
            let mut views = String::new();
            for (suffix, label) in VIEWS {
                let Some(uri) = data_uri(&folder.join(format!("{stem}_{suffix}.png")))? else {
                    continue;
                };
                let _ = write!(
                    buttons,
                    "<button type=\"button\" data-view=\"{suffix}\">{label}</button>"
                );
                let _ = write!(
                    views,
                    "<img class=\"view\" data-view=\"{suffix}\" alt=\"{} {label}\" src=\"{uri}\">",
                    escape(&im.id)
                );
            }
            if !views.is_empty() {
                let _ = writeln!(
                    out,
                    "<section class=\"picture\" id=\"pic-{stem}\"><h3>{}</h3>\
                     <div class=\"views\">{buttons}</div>{views}</section>",
                    escape(&im.id)
                );
            }
        }
    }
    let _ = write!(out, "<script>{SCRIPT}</script>\n</body></html>\n");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_and_quotes() {
        assert_eq!(escape("a<b>&\"c\""), "a&lt;b&gt;&amp;&quot;c&quot;");
    }
}
