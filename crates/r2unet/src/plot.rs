//! Line charts as PNG files (training curves; ROC and PR curves), drawn with
//! `plotters` into an RGB buffer and encoded with `image`. Text uses DejaVu
//! Sans Mono, embedded from `assets/` (Bitstream Vera licence, beside it), so
//! charts render the same on machines without fonts.

use std::io::Cursor;
use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

use crate::atomic::write_atomic;
use crate::error::{Error, Result};

const FONT: &[u8] = include_bytes!("../assets/DejaVuSansMono.ttf");
const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(0, 0, 0),
];

/// One named line.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// `(x, y)` points in drawing order; non-finite points are skipped.
    pub points: Vec<(f64, f64)>,
}

/// One panel: a title, axis names and lines.
#[derive(Debug, Clone)]
pub struct Chart {
    /// Caption.
    pub title: String,
    /// X axis name.
    pub x_label: String,
    /// Y axis name.
    pub y_label: String,
    /// The lines.
    pub series: Vec<Series>,
    /// Fixed y range (e.g. 0..1 for AUC), else fitted to the data.
    pub y_range: Option<(f64, f64)>,
}

fn chart_error(e: impl std::fmt::Display) -> Error {
    Error::invalid("chart", e.to_string())
}

/// `(min, max)` of finite values, widened when degenerate.
fn span(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
    if !lo.is_finite() {
        (0.0, 1.0)
    } else if hi - lo < 1e-12 {
        (lo - 0.5, hi + 0.5)
    } else {
        let pad = 0.05 * (hi - lo);
        (lo - pad, hi + pad)
    }
}

/// Renders `charts` side by side into a PNG of `width x height` pixels.
///
/// # Errors
///
/// [`Error::Invalid`] if drawing or encoding fails (a zero size, say).
pub fn render_png(charts: &[Chart], width: u32, height: u32) -> Result<Vec<u8>> {
    static FONT_ONCE: Once = Once::new();
    FONT_ONCE.call_once(|| {
        // The embedded font is valid; a failure would only lose the text.
        let _ = register_font("sans-serif", FontStyle::Normal, FONT);
    });
    let mut buffer = vec![255u8; (width * height * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buffer, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(chart_error)?;
        let panels = root.split_evenly((1, charts.len().max(1)));
        for (area, chart) in panels.iter().zip(charts) {
            draw(area, chart)?;
        }
        root.present().map_err(chart_error)?;
    }
    let image = image::RgbImage::from_raw(width, height, buffer)
        .ok_or_else(|| chart_error("buffer size"))?;
    let mut png = Vec::new();
    image
        .write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(chart_error)?;
    Ok(png)
}

fn draw(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    chart: &Chart,
) -> Result<()> {
    let all = || chart.series.iter().flat_map(|s| s.points.iter());
    let (x0, x1) = span(all().map(|p| p.0));
    let (y0, y1) = chart.y_range.unwrap_or_else(|| span(all().map(|p| p.1)));
    let mut ctx = ChartBuilder::on(area)
        .caption(&chart.title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(chart_error)?;
    ctx.configure_mesh()
        .x_desc(chart.x_label.as_str())
        .y_desc(chart.y_label.as_str())
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(chart_error)?;
    for (i, s) in chart.series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let points: Vec<(f64, f64)> = s
            .points
            .iter()
            .copied()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .collect();
        ctx.draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
            .map_err(chart_error)?
            .label(s.name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
        if points.len() < 30 {
            ctx.draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))
                .map_err(chart_error)?;
        }
    }
    ctx.configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 13))
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(chart_error)
}

/// Writes the charts as a PNG file, atomically.
///
/// # Errors
///
/// Drawing errors, or [`Error::Io`] naming `path`.
pub fn write_png(path: &Path, charts: &[Chart], width: u32, height: u32) -> Result<()> {
    write_atomic(path, &render_png(charts, width, height)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_renders_to_a_decodable_png() {
        let chart = Chart {
            title: "loss".into(),
            x_label: "epoch".into(),
            y_label: "BCE".into(),
            series: vec![Series {
                name: "train".into(),
                points: vec![(1.0, 0.5), (2.0, 0.3), (3.0, f64::NAN), (4.0, 0.2)],
            }],
            y_range: None,
        };
        let png = render_png(&[chart.clone(), chart], 640, 240).unwrap();
        let decoded = image::load_from_memory(&png).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (640, 240));
        // Something was drawn: not every pixel is white.
        assert!(decoded.to_rgb8().pixels().any(|p| p.0 != [255, 255, 255]));
    }

    #[test]
    fn spans_are_padded_and_never_empty() {
        assert_eq!(span([f64::NAN].into_iter()), (0.0, 1.0));
        assert_eq!(span([2.0, 2.0].into_iter()), (1.5, 2.5));
        let (lo, hi) = span([0.0, 1.0].into_iter());
        assert!(lo < 0.0 && hi > 1.0);
    }
}
