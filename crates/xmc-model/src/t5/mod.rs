//! The T5 encoder-decoder that generates a label: its name as text, or its prefix code one token
//! per tree level.

mod config;
mod model;
mod position;

pub use config::{T5Config, preset};
pub use model::{DecoderCache, EncoderOutput, T5};
pub use position::relative_position_bucket;
