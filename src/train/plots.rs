//! Training plots as PNG files: loss curves over steps, accuracy curves over
//! epochs, and a 2-D scatter of features coloured by class.
//!
//! Text needs a font, and neither this project's machines nor CI promise
//! fontconfig, so plotters draws text with ab_glyph from a TTF file loaded
//! at run time: `DARKMATTER_FONT` if set, else the first of [`FONT_PATHS`]
//! that exists (Debian: `fonts-dejavu-core`). Without one the plots are
//! drawn without titles, tick labels and legends rather than not at all.

use std::path::Path;
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::error::{Error, Result};

/// Where a sans-serif TTF is looked for, in order.
pub const FONT_PATHS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/Library/Fonts/Arial.ttf",
    "C:\\Windows\\Fonts\\arial.ttf",
];

/// Pixel size of the curve plots.
pub const CURVE_SIZE: (u32, u32) = (800, 500);
/// Pixel size of the scatter plot.
pub const SCATTER_SIZE: (u32, u32) = (700, 700);

const FAMILY: &str = "sans-serif";

/// Registers the first font found with plotters, once per process; true if
/// text can be drawn. plotters keeps fonts for the life of the process, so
/// the bytes are leaked once.
fn font_available() -> bool {
    static FONT: OnceLock<bool> = OnceLock::new();
    *FONT.get_or_init(|| {
        let env = std::env::var("DARKMATTER_FONT").ok();
        let found = env
            .iter()
            .map(String::as_str)
            .chain(FONT_PATHS.iter().copied())
            .find_map(|p| std::fs::read(p).ok());
        found.is_some_and(|bytes| {
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            plotters::style::register_font(FAMILY, FontStyle::Normal, bytes).is_ok()
        })
    })
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

/// Draws with `draw` on a white canvas of `size` and writes it to `path` as
/// a PNG.
fn render(
    path: &Path,
    size: (u32, u32),
    draw: impl FnOnce(&Area<'_>) -> Result<(), String>,
) -> Result<()> {
    let fail = |reason: String| Error::Io {
        path: path.display().to_string(),
        reason,
    };
    let mut pixels = vec![0u8; size.0 as usize * size.1 as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, size).into_drawing_area();
        root.fill(&WHITE)
            .map_err(|e| fail(format!("drawing: {e}")))?;
        draw(&root).map_err(|e| fail(format!("drawing: {e}")))?;
        root.present().map_err(|e| fail(format!("drawing: {e}")))?;
    }
    let image = image::RgbImage::from_raw(size.0, size.1, pixels)
        .ok_or_else(|| fail("the pixel buffer does not match the size".into()))?;
    image
        .save_with_format(path, image::ImageFormat::Png)
        .map_err(|e| fail(format!("writing PNG: {e}")))
}

/// The range of finite values, padded by 5% (and widened when flat) so that
/// points do not sit on the frame.
fn padded_range(values: impl Iterator<Item = f64>) -> std::ops::Range<f64> {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if lo > hi {
        return 0.0..1.0;
    }
    let pad = if hi > lo {
        (hi - lo) * 0.05
    } else {
        lo.abs().max(1.0) * 0.05
    };
    lo - pad..hi + pad
}

/// The axis and chart names of a curve plot.
struct Titles<'a> {
    title: &'a str,
    x: &'a str,
    y: &'a str,
}

/// One line per named series; titles, tick labels and the legend only if
/// `text`.
fn curves(
    path: &Path,
    titles: Titles<'_>,
    series: &[(&str, Vec<(f64, f64)>)],
    text: bool,
) -> Result<()> {
    render(path, CURVE_SIZE, |root| {
        let points = || series.iter().flat_map(|(_, s)| s.iter());
        let xs = padded_range(points().map(|p| p.0));
        let ys = padded_range(points().map(|p| p.1));
        let mut builder = ChartBuilder::on(root);
        builder.margin(15);
        if text {
            builder
                .caption(titles.title, (FAMILY, 22))
                .x_label_area_size(40)
                .y_label_area_size(60);
        }
        let mut chart = builder
            .build_cartesian_2d(xs, ys)
            .map_err(|e| e.to_string())?;
        let mut mesh = chart.configure_mesh();
        if text {
            mesh.x_desc(titles.x).y_desc(titles.y);
        }
        mesh.draw().map_err(|e| e.to_string())?;
        for (i, (name, s)) in series.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            let finite = s
                .iter()
                .copied()
                .filter(|p| p.0.is_finite() && p.1.is_finite());
            chart
                .draw_series(LineSeries::new(finite.clone(), color.stroke_width(2)))
                .map_err(|e| e.to_string())?
                .label(*name)
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2))
                });
            // Markers where points are few enough to tell apart.
            if s.len() <= 100 {
                chart
                    .draw_series(finite.map(|p| Circle::new(p, 3, color.filled())))
                    .map_err(|e| e.to_string())?;
            }
        }
        if text && !series.is_empty() {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .label_font((FAMILY, 14))
                .draw()
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    })
}

/// Loss curves: one line per named loss term (total, invariance, variance,
/// covariance, ...) against the training step.
pub fn loss_curves(path: impl AsRef<Path>, series: &[(&str, Vec<(u64, f32)>)]) -> Result<()> {
    let series: Vec<(&str, Vec<(f64, f64)>)> = series
        .iter()
        .map(|(n, s)| (*n, s.iter().map(|&(x, y)| (x as f64, y as f64)).collect()))
        .collect();
    let titles = Titles {
        title: "training loss",
        x: "step",
        y: "loss",
    };
    curves(path.as_ref(), titles, &series, font_available())
}

/// Accuracy curves (kNN, linear probe, ...) in percent against the epoch.
pub fn accuracy_curves(path: impl AsRef<Path>, series: &[(&str, Vec<(u32, f32)>)]) -> Result<()> {
    let series: Vec<(&str, Vec<(f64, f64)>)> = series
        .iter()
        .map(|(n, s)| (*n, s.iter().map(|&(x, y)| (x as f64, y as f64)).collect()))
        .collect();
    let titles = Titles {
        title: "evaluation",
        x: "epoch",
        y: "top-1 accuracy (%)",
    };
    curves(path.as_ref(), titles, &series, font_available())
}

/// Surprise (prediction error) against the frame, one line per clip.
pub fn surprise_curves(path: impl AsRef<Path>, series: &[(&str, Vec<(f64, f64)>)]) -> Result<()> {
    let titles = Titles {
        title: "surprise over time",
        x: "frame",
        y: "prediction error",
    };
    curves(path.as_ref(), titles, series, font_available())
}

/// A scatter of 2-D points (e.g. [`pca_2d`](crate::eval::pca_2d) of test
/// features) coloured by class, with a legend naming each class that
/// occurs: `class_names[label]` where given, else the label's number.
pub fn scatter(
    path: impl AsRef<Path>,
    points: &[[f32; 2]],
    labels: &[u32],
    class_names: Option<&[String]>,
) -> Result<()> {
    scatter_with(path.as_ref(), points, labels, class_names, font_available())
}

/// [`scatter`], with text only if `text`.
fn scatter_with(
    path: &Path,
    points: &[[f32; 2]],
    labels: &[u32],
    class_names: Option<&[String]>,
    text: bool,
) -> Result<()> {
    if points.len() != labels.len() {
        return Err(Error::invalid(
            "scatter",
            format!("{} points but {} labels", points.len(), labels.len()),
        ));
    }
    let mut classes: Vec<u32> = labels.to_vec();
    classes.sort_unstable();
    classes.dedup();
    render(path, SCATTER_SIZE, |root| {
        let xs = padded_range(points.iter().map(|p| p[0] as f64));
        let ys = padded_range(points.iter().map(|p| p[1] as f64));
        let mut builder = ChartBuilder::on(root);
        builder.margin(15);
        if text {
            builder
                .caption("features, first two principal components", (FAMILY, 22))
                .x_label_area_size(40)
                .y_label_area_size(60);
        }
        let mut chart = builder
            .build_cartesian_2d(xs, ys)
            .map_err(|e| e.to_string())?;
        let mut mesh = chart.configure_mesh();
        if text {
            mesh.x_desc("PC 1").y_desc("PC 2");
        }
        mesh.draw().map_err(|e| e.to_string())?;
        for &class in &classes {
            let color = Palette99::pick(class as usize).to_rgba();
            let members = points
                .iter()
                .zip(labels)
                .filter(|&(p, &l)| l == class && p.iter().all(|v| v.is_finite()))
                .map(|(p, _)| Circle::new((p[0] as f64, p[1] as f64), 2, color.filled()));
            let name = class_names
                .and_then(|names| names.get(class as usize).cloned())
                .unwrap_or_else(|| format!("class {class}"));
            chart
                .draw_series(members)
                .map_err(|e| e.to_string())?
                .label(name)
                .legend(move |(x, y)| Circle::new((x + 10, y), 4, color.filled()));
        }
        if text && !classes.is_empty() {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .label_font((FAMILY, 14))
                .draw()
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without a font the plots are still drawn (integration tests cover
    /// the plots with text, where a font is installed).
    #[test]
    fn plots_without_text() {
        let dir = std::env::temp_dir().join(format!("darkmatter-plots-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let titles = Titles {
            title: "t",
            x: "x",
            y: "y",
        };
        let line = vec![(0.0, 1.0), (1.0, 0.5), (2.0, 0.2)];
        let curve = dir.join("curve.png");
        curves(&curve, titles, &[("a", line)], false).unwrap();
        let points = [[0.0, 0.0], [1.0, 1.0], [0.5, -1.0]];
        let cloud = dir.join("scatter.png");
        scatter_with(&cloud, &points, &[0, 1, 1], None, false).unwrap();
        for (path, size) in [(curve, CURVE_SIZE), (cloud, SCATTER_SIZE)] {
            let img = image::open(&path).unwrap().to_rgb8();
            assert_eq!(img.dimensions(), size);
            let first = img.get_pixel(0, 0);
            assert!(img.pixels().any(|p| p != first), "{path:?} is one colour");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
