//! The xmc command line and the experiment runner: every pipeline stage as a subcommand, and the
//! orchestration that runs the stages in order with cached, fingerprinted artifacts. `cargo xtask`
//! calls into this crate; the stages' logic lives in the stage crates.

pub mod calibration;
pub mod cli;
pub mod evaluate;
pub mod experiment;
pub mod fingerprint;
pub mod fused;
pub mod labels;
pub mod output;
pub mod predict;
pub mod predictor;
pub mod serve;
pub mod serve_metrics;
pub mod shards;
