//! Metrics for label predictions and the experiment report. No tensor library: this crate reads
//! label ids and rankings.
//!
//! - [`classification`]: precision/recall/F1, macro/micro/weighted (scikit-learn's definitions).
//! - [`ranking`]: P@k, nDCG@k, propensity-scored PSP@k.
//! - [`hierarchy`]: per-level scores, hierarchical P/R/F1, code-prefix credit.
//! - [`bootstrap`]: 95% confidence intervals.
//! - [`lead`]: one method's lead over another on the same records, with paired intervals.
//! - [`calibration`]: reliability bins and expected calibration error of top-1 confidences.
//! - [`metrics`]: [`evaluate`] puts them together into [`Metrics`] (`metrics.json`).
//! - [`report`], [`plots`]: `report.md` and PNG plots. [`baseline`]: the CI regression check.

pub mod baseline;
pub mod bootstrap;
pub mod calibration;
pub mod classification;
mod config;
mod error;
pub mod hierarchy;
pub mod lead;
pub mod metrics;
pub mod plots;
pub mod ranking;
pub mod report;

pub use baseline::Baseline;
pub use config::EvalConfig;
pub use error::{EvalError, Result};
pub use metrics::{Metrics, Scored, evaluate};
pub use plots::EpochPoint;
pub use report::{ReportContext, write_report};
