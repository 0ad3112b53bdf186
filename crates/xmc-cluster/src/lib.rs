//! The label tree stage: embeds every leaf label (a pretrained sentence encoder, PIFA, or both)
//! and clusters the embeddings by recursive k-means (linfa) into a tree whose paths become the
//! labels' prefix codes.

mod config;
mod embed;
mod error;
mod kmeans_tree;
pub mod model;
pub mod npy;
pub mod search;
mod pifa;

pub use config::{EmbedConfig, EmbeddingKind, LabelText, TreeConfig, TreeKind};
pub use embed::{EMBEDDINGS_FILE, EMBEDDINGS_META_FILE, LabelEmbeddings, embed_labels, label_texts};
pub use error::{ClusterError, Result};
pub use kmeans_tree::{TREE_FILE, build_tree, build_tree_ensemble, load_tree, save_tree};
pub use pifa::pifa_embeddings;
pub use model::{AddedLabel, SearchMeta, SearchModel};
pub use search::{ClusterIndex, SearchConfig, read_new_labels};
