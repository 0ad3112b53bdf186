//! The xmc command line and server: every pipeline stage as a subcommand (`xmc experiment`,
//! `xmc train`, `xmc predict`, `xmc evaluate`, ...), `xmc serve` (HTTP), sharded prediction and
//! `xmc labels`. The methods live in `xmc-methods`, the experiment runner in `xmc-pipeline`;
//! `cargo xtask` calls into [`cli`].

pub mod cli;
pub mod labels;
pub mod predict;
pub mod ranges;
pub mod serve;
pub mod serve_metrics;
pub mod shards;
