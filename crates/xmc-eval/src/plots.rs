//! PNG plots with plotters: accuracy by label-frequency bucket, per-level accuracy, and training
//! curves. The font (DejaVu Sans Mono, `assets/`) is embedded, so no system fonts are needed.

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;

use crate::{EvalError, Result};

static FONT: &[u8] = include_bytes!("../assets/DejaVuSansMono.ttf");
static REGISTER: Once = Once::new();

fn register_font() {
    REGISTER.call_once(|| {
        plotters::style::register_font("sans-serif", FontStyle::Normal, FONT).map_err(|_| ()).expect("the embedded font parses");
    });
}

/// One epoch of a training curve.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochPoint {
    pub epoch: usize,
    pub train_loss: f64,
    pub valid_accuracy: f64,
}

fn plot_err(name: &str, e: impl std::fmt::Display) -> EvalError {
    EvalError::Plot { name: name.into(), message: e.to_string() }
}

/// Bars of one value per named category (values in [0, 1]); several series are drawn side by side.
pub fn bar_chart(path: &Path, title: &str, x_desc: &str, categories: &[String], series: &[(String, Vec<Option<f64>>)]) -> Result<()> {
    register_font();
    let name = path.display().to_string();
    let root = BitMapBackend::new(path, (800, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_err(&name, e))?;
    let n = categories.len().max(1);
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..n as f64, 0f64..1.0)
        .map_err(|e| plot_err(&name, e))?;
    let cats = categories.to_vec();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_desc(x_desc)
        .y_desc("accuracy")
        .x_labels(n * 2 + 1)
        .x_label_formatter(&move |x| {
            let i = x.floor() as usize;
            if (x - i as f64 - 0.5).abs() < 1e-6 { cats.get(i).cloned().unwrap_or_default() } else { String::new() }
        })
        .draw()
        .map_err(|e| plot_err(&name, e))?;
    let width = 0.8 / series.len().max(1) as f64;
    for (s, (label, values)) in series.iter().enumerate() {
        let color = Palette99::pick(s).to_rgba();
        let bars = values.iter().enumerate().filter_map(|(i, v)| {
            let v = (*v)?;
            let x0 = i as f64 + 0.1 + s as f64 * width;
            Some(Rectangle::new([(x0, 0.0), (x0 + width, v)], color.filled()))
        });
        chart
            .draw_series(bars)
            .map_err(|e| plot_err(&name, e))?
            .label(label.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
    }
    if series.len() > 1 {
        chart.configure_series_labels().border_style(BLACK).background_style(WHITE).draw().map_err(|e| plot_err(&name, e))?;
    }
    root.present().map_err(|e| plot_err(&name, e))
}

/// Training loss (left axis) and validation accuracy (right axis) per epoch.
pub fn training_curves(path: &Path, title: &str, points: &[EpochPoint]) -> Result<()> {
    register_font();
    let name = path.display().to_string();
    let root = BitMapBackend::new(path, (800, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_err(&name, e))?;
    let last = points.iter().map(|p| p.epoch).max().unwrap_or(1).max(1) as f64;
    let max_loss = points.iter().map(|p| p.train_loss).fold(0.0, f64::max).max(1e-6) * 1.05;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(55)
        .right_y_label_area_size(55)
        .build_cartesian_2d(0f64..last, 0f64..max_loss)
        .map_err(|e| plot_err(&name, e))?
        .set_secondary_coord(0f64..last, 0f64..1.0);
    chart.configure_mesh().x_desc("epoch").y_desc("training loss").draw().map_err(|e| plot_err(&name, e))?;
    chart.configure_secondary_axes().y_desc("validation accuracy").draw().map_err(|e| plot_err(&name, e))?;
    let loss: Vec<(f64, f64)> = points.iter().map(|p| (p.epoch as f64, p.train_loss)).collect();
    let acc: Vec<(f64, f64)> = points.iter().map(|p| (p.epoch as f64, p.valid_accuracy)).collect();
    chart
        .draw_series(LineSeries::new(loss, BLUE.stroke_width(2)))
        .map_err(|e| plot_err(&name, e))?
        .label("training loss")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLUE));
    chart
        .draw_secondary_series(LineSeries::new(acc, RED.stroke_width(2)))
        .map_err(|e| plot_err(&name, e))?
        .label("validation accuracy")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], RED));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::MiddleRight)
        .border_style(BLACK)
        .background_style(WHITE)
        .draw()
        .map_err(|e| plot_err(&name, e))?;
    root.present().map_err(|e| plot_err(&name, e))
}

/// The reliability diagram: accuracy per confidence bin (bars) against the diagonal of perfect
/// calibration, with the records per bin in the bin's label.
pub fn reliability_diagram(path: &Path, title: &str, r: &crate::calibration::Reliability) -> Result<()> {
    register_font();
    let name = path.display().to_string();
    let root = BitMapBackend::new(path, (640, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_err(&name, e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..1.0, 0f64..1.0)
        .map_err(|e| plot_err(&name, e))?;
    chart.configure_mesh().x_desc("top-1 confidence").y_desc("accuracy").draw().map_err(|e| plot_err(&name, e))?;
    let bars = r.bins.iter().filter_map(|b| {
        let a = b.accuracy?;
        Some(Rectangle::new([(b.lo + 0.005, 0.0), (b.hi - 0.005, a)], BLUE.mix(0.6).filled()))
    });
    chart
        .draw_series(bars)
        .map_err(|e| plot_err(&name, e))?
        .label(format!("accuracy per bin (ECE {:.3})", r.ece))
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], BLUE.mix(0.6).filled()));
    // The bin's mean confidence at its centre: the gap to the bar's top is the miscalibration.
    let gaps = r.bins.iter().filter_map(|b| Some(Circle::new(((b.lo + b.hi) / 2.0, b.mean_confidence?), 4, RED.filled())));
    chart
        .draw_series(gaps)
        .map_err(|e| plot_err(&name, e))?
        .label("mean confidence of the bin")
        .legend(|(x, y)| Circle::new((x + 5, y), 3, RED.filled()));
    chart
        .draw_series(LineSeries::new([(0.0, 0.0), (1.0, 1.0)], BLACK.stroke_width(1)))
        .map_err(|e| plot_err(&name, e))?
        .label("perfect calibration")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLACK));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .border_style(BLACK)
        .background_style(WHITE)
        .draw()
        .map_err(|e| plot_err(&name, e))?;
    root.present().map_err(|e| plot_err(&name, e))
}
