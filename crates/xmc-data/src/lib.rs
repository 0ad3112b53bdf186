//! Product records for extreme multi-label categorisation: reading CSV, JSON lines and Parquet
//! files through a dataset descriptor, cleaning them by the descriptor's rules, building the label
//! hierarchy (every cleaned category path is a leaf; ancestors are its prefixes), a seeded split
//! stratified by leaf, and the prepared-data artifact every later stage reads. Knows nothing of
//! models.

mod artifact;
pub mod clean;
pub mod descriptor;
mod error;
mod id_index;
pub mod ingest;
pub mod labels;
mod prepare;
mod prepare_streaming;
pub mod record;
mod rng;
pub mod sample;
pub mod split;
mod stats;
pub mod stream;
pub mod synth;
pub mod template;

pub use artifact::{LABELS_FILE, RECORDS_FILE, STATS_FILE};
pub use descriptor::{DatasetDescriptor, FileFormat};
pub use error::{DataError, IoError, Result, RowLocation};
pub use labels::{Label, LabelSet};
pub use prepare::{DataConfig, LoadedRecords, PreparedData, RowIssue, clean_row, load_records, prepare};
pub use prepare_streaming::{PreparedSummary, StreamingOptions, prepare_streaming};
pub use record::{PreparedRecord, ProductRecord, Split};
pub use rng::SplitMix64;
pub use split::SplitConfig;
pub use stats::{CleaningStats, DataStats, SkippedRow};
pub use stream::{StreamOptions, StreamSummary, stream_records};
pub use template::InputTemplate;
pub use ingest::InputSource;
