//! Every method of xmc behind one interface. A method ([`Method`]) knows its train stage (what
//! it reads, its settings, the model folder it writes), its beam and top-k defaults, its report
//! text and how to load its folder into a [`Model`]; a loaded model ranks rendered inputs. One
//! file per method ([`generative`], [`xr`], [`fused`], [`cluster_search`]) and one line each in
//! [`registry`]: the runner, the command line, the server, Python and the benches ask the trait
//! and never match on a method's name. [`Predictor`] loads any model folder with its confidence
//! calibration; [`ModelInput`] turns a raw record into the model's input and [`PredictionRow`]
//! turns label ids into output rows, the same for every front door.
//!
//! This crate and `xmc-pipeline` are the glue between the stage crates; they keep `anyhow` for
//! errors that carry the context of whichever stage failed.

pub mod calibration;
pub mod cluster_search;
pub mod config;
mod experiment;
pub mod figures;
pub mod fused;
pub mod generative;
pub mod input;
pub mod limits;
pub mod output;
mod method;
pub mod predictor;
mod recipes;
pub mod registry;
pub mod rows;
pub mod scoring;
pub mod xr;

pub use calibration::Calibration;
pub use config::{ENV_PREFIX, ExperimentConfig, MethodName, parse_overrides};
pub use figures::TrainFigures;
pub use input::{ModelInput, ProductFields};
pub use method::{InputFile, Method, Model, Pools, PredictSettings, TrainContext, TrainPlan, Upstream};
pub use predictor::Predictor;
pub use recipes::{copy_dir, progress_bar};
pub use rows::PredictionRow;
pub use scoring::DATASET_FILE;
