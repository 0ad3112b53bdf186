//! The XR ranker (`method = "xr"`): XR-Linear's design (Yu et al., PECOS) on xmc's own label
//! tree. Records become TF-IDF rows (scikit-learn's definitions, [`tfidf`]), optionally with a
//! sentence embedding beside them ([`features`]); every internal node of the k-means tree gets
//! one linear scorer per child, trained by dual coordinate descent ([`solver`]) on the records
//! whose label is under the node plus the hard negatives the upper levels' beam brings there
//! ([`ranker`]); prediction is a beam over levels whose path score multiplies the node scores.
//! No tensor library: the dense embeddings come from the caller.

pub mod cascade;
pub mod choice;
pub mod classifier;
pub mod config;
mod error;
pub mod features;
pub mod fusion;
mod model;
pub mod ranker;
pub mod solver;
pub mod sparse;
pub mod tfidf;

pub use cascade::{Gate, Outcome, Skip};
pub use choice::{CHOICES_FILE, ChooseConfig, Choices, Setting, Trial};
pub use classifier::{CLASSIFIER_FILE, EncoderClassifier, WeightFit};
pub use config::{FeatureKind, Loss, Negatives, PathCombine, PathScore, RankerConfig};
pub use error::{RankerError, Result};
pub use features::FeatureLayout;
pub use fusion::{CandidateGroup, FusionConfig, FusionFeature, FusionModel};
pub use model::{CLASSIFIER_ENCODER_DIR, classifier_member_dir, CLASSIFIER_POOL, ENCODER_DIR, FORMAT, META_FILE, METHOD, TrainingData, XrMeta, XrModel};
pub use ranker::{TrainingSummary, TreeRanker};

pub use sparse::{RowView, SparseRows, SparseVec};
pub use tfidf::{TfidfConfig, TfidfVectorizer};
