//! The experiment config: one TOML file with a section per stage, loaded with the `config` crate
//! (the file, then `XMC_<SECTION>__<KEY>` environment overrides) and validated before any work.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use xmc_cluster::{EmbedConfig, SearchConfig, TreeConfig};
use xmc_codes::CodesConfig;
use xmc_data::DataConfig;
use xmc_eval::EvalConfig;
use xmc_model::ModelConfig;
use xmc_ranker::{ChooseConfig, FusionConfig, RankerConfig};
use xmc_train::{ContrastiveConfig, DistillConfig, TrainConfig};

/// Environment variables with this prefix and a `__` override config keys:
/// `XMC_TREE__BRANCHING=8` sets `tree.branching`.
pub const ENV_PREFIX: &str = "XMC_";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExperimentConfig {
    /// The run's folder name under `output_dir`.
    pub name: String,
    pub output_dir: PathBuf,
    /// `generative`: a T5 generates the label (`[model]`, `[train]`). `cluster-search`: the
    /// sentence encoder scores the record against the label tree level by level (`[search]`).
    /// `xr`: linear scorers at every node of the label tree on TF-IDF and/or dense features
    /// (`[ranker]`). `fused`: the ranker's and the T5's candidates rescored by a combination
    /// fitted on the validation split (`[ranker]`, `[model]`, `[train]`, `[fusion]`).
    pub method: MethodName,
    pub data: DataConfig,
    pub embed: EmbedConfig,
    pub tree: TreeConfig,
    pub codes: CodesConfig,
    pub model: ModelConfig,
    pub train: TrainConfig,
    pub eval: EvalConfig,
    pub search: SearchConfig,
    /// Cluster search's fine-tuning of the sentence encoder (in-batch contrastive loss); also
    /// the XR ranker's, when its dense features come from a fine-tuned encoder.
    pub contrastive: ContrastiveConfig,
    /// The XR ranker (`method = "xr"`): TF-IDF and/or dense features, linear scorers per node.
    pub ranker: RankerConfig,
    /// The fused method (`method = "fused"`): ranker and generator candidates rescored together.
    pub fusion: FusionConfig,
    /// Settings the xr method's train stage chooses on the validation split (a ranker trained
    /// per setting; see `xmc_ranker::choice`): empty, the config's own. Left out of the
    /// serialised config when empty.
    #[serde(skip_serializing_if = "ChooseConfig::is_empty")]
    pub choose: ChooseConfig,
    /// A distilled student of the xr method's fine-tuned classifier encoder, kept where its
    /// validation figures stay close to the teacher's (`xmc_train::distill`). Left out of the
    /// serialised config when off.
    #[serde(skip_serializing_if = "DistillConfig::is_off")]
    pub distill: DistillConfig,
}

/// The name of a method (`"xr"`), checked against [`crate::registry`] when the config is
/// validated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MethodName(String);

impl MethodName {
    pub fn new(name: &str) -> Self {
        MethodName(name.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for MethodName {
    fn default() -> Self {
        MethodName::new("generative")
    }
}

impl std::fmt::Display for MethodName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Default for ExperimentConfig {
    fn default() -> Self {
        ExperimentConfig {
            name: "default".into(),
            output_dir: PathBuf::from("experiments"),
            data: DataConfig::default(),
            embed: EmbedConfig::default(),
            tree: TreeConfig::default(),
            codes: CodesConfig::default(),
            model: ModelConfig::default(),
            train: TrainConfig::default(),
            eval: EvalConfig::default(),
            search: SearchConfig::default(),
            contrastive: ContrastiveConfig::default(),
            ranker: RankerConfig::default(),
            fusion: FusionConfig::default(),
            choose: ChooseConfig::default(),
            distill: DistillConfig::default(),
            method: MethodName::default(),
        }
    }
}

impl ExperimentConfig {
    /// The run's folder.
    pub fn run_dir(&self) -> PathBuf {
        self.output_dir.join(&self.name)
    }

    /// The whole config as TOML, defaults filled in, including the keys that the serialised
    /// config leaves out at their defaults (so that fingerprints of runs from before those keys
    /// existed stay valid): `data.streaming`, `train.label_smoothing`, `contrastive.loss`, `[choose]` and `[distill]`.
    pub fn to_toml(&self) -> String {
        let mut table = toml::Table::try_from(self).expect("the config serialises");
        let mut fill = |section: &str, key: &str, value: toml::Value| {
            if let Some(toml::Value::Table(t)) = table.get_mut(section) {
                t.entry(key).or_insert(value);
            }
        };
        fill("data", "streaming", toml::Value::Boolean(self.data.streaming));
        fill("train", "label_smoothing", toml::Value::Float(self.train.label_smoothing));
        let loss = toml::Value::try_from(self.contrastive.loss).expect("the loss serialises");
        fill("contrastive", "loss", loss);
        table.entry("choose").or_insert_with(|| toml::Value::try_from(&self.choose).expect("the choices serialise"));
        table.entry("distill").or_insert_with(|| toml::Value::try_from(&self.distill).expect("the student's settings serialise"));
        toml::to_string_pretty(&table).expect("the config serialises")
    }
}

/// `KEY=VALUE` overrides (`--set tree.branching=8`) as (key, TOML value); a value that is not
/// TOML is taken as a string.
pub fn parse_overrides(items: &[String]) -> Result<Vec<(String, toml::Value)>> {
    items
        .iter()
        .map(|item| {
            let (key, value) = item.split_once('=').with_context(|| format!("--set {item}: expected KEY=VALUE"))?;
            let value = toml::from_str::<toml::Table>(&format!("v = {value}"))
                .map(|mut t| t.remove("v").expect("parsed key"))
                .unwrap_or_else(|_| toml::Value::String(value.to_string()));
            Ok((key.trim().to_string(), value))
        })
        .collect()
}

/// `XMC_<SECTION>__<KEY>` variables, keyed without the prefix (`tree__branching`). Variables
/// without `__` (such as `XMC_DATA_DIR`) are settings of their own, not config overrides.
pub(crate) fn env_overrides(env: impl IntoIterator<Item = (String, String)>) -> config::Map<String, String> {
    env.into_iter()
        .filter_map(|(k, v)| {
            let key = k.strip_prefix(ENV_PREFIX)?;
            key.contains("__").then(|| (key.to_ascii_lowercase(), v))
        })
        .collect()
}

pub(crate) fn toml_to_config(value: &toml::Value) -> Result<config::Value> {
    Ok(match value {
        toml::Value::String(s) => s.clone().into(),
        toml::Value::Integer(i) => (*i).into(),
        toml::Value::Float(f) => (*f).into(),
        toml::Value::Boolean(b) => (*b).into(),
        toml::Value::Array(items) => items.iter().map(toml_to_config).collect::<Result<Vec<_>>>()?.into(),
        other => bail!("cannot override a config key with {other}"),
    })
}

/// serde names the bad key or value but not the section it is in: find the section by
/// deserialising each one alone.
pub(crate) fn explain(merged: &serde_json::Value, error: serde_json::Error) -> String {
    fn section<T: serde::de::DeserializeOwned>(merged: &serde_json::Value, name: &str) -> Option<String> {
        let value = merged.get(name)?.clone();
        serde_json::from_value::<T>(value).err().map(|e| format!("in section [{name}]: {e}"))
    }
    section::<DataConfig>(merged, "data")
        .or_else(|| section::<EmbedConfig>(merged, "embed"))
        .or_else(|| section::<TreeConfig>(merged, "tree"))
        .or_else(|| section::<CodesConfig>(merged, "codes"))
        .or_else(|| section::<ModelConfig>(merged, "model"))
        .or_else(|| section::<TrainConfig>(merged, "train"))
        .or_else(|| section::<EvalConfig>(merged, "eval"))
        .or_else(|| section::<SearchConfig>(merged, "search"))
        .or_else(|| section::<RankerConfig>(merged, "ranker"))
        .or_else(|| section::<FusionConfig>(merged, "fusion"))
        .or_else(|| section::<ChooseConfig>(merged, "choose"))
        .or_else(|| section::<DistillConfig>(merged, "distill"))
        .unwrap_or_else(|| error.to_string())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn write(dir: &Path, text: &str) -> PathBuf {
        let path = dir.join("exp.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn a_minimal_file_gets_every_default() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = ExperimentConfig::load(&write(dir.path(), "name = \"x\"\n[tree]\nbranching = 4\n"), &[]).unwrap();
        assert_eq!(cfg.name, "x");
        assert_eq!(cfg.tree.branching, 4);
        assert_eq!(cfg.data.tail_max, 25);
        assert_eq!(cfg.train.learning_rate, 1e-4);
    }

    #[test]
    fn an_unknown_key_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let err = ExperimentConfig::load(&write(dir.path(), "name = \"x\"\n[tree]\nbranchin = 4\n"), &[]).unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("[tree]") && text.contains("branchin") && text.contains("branching"), "{text}");
    }

    #[test]
    fn a_bad_value_names_the_key_and_what_is_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let err = ExperimentConfig::load(&write(dir.path(), "name = \"x\"\n[tree]\nbranching = 1\n"), &[]).unwrap_err();
        assert!(format!("{err:#}").contains("tree.branching"), "{err:#}");
        let err = ExperimentConfig::load(&write(dir.path(), "name = \"x\"\n[model]\nmode = \"flat\"\n"), &[]).unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("[model]") && text.contains("flat") && text.contains("hierarchical"), "{text}");
    }

    #[test]
    fn overrides_apply_after_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "name = \"x\"\n[tree]\nbranching = 4\n");
        let cfg = ExperimentConfig::load(&path, &[("tree.branching".into(), toml::Value::Integer(16))]).unwrap();
        assert_eq!(cfg.tree.branching, 16);
    }

    #[test]
    fn environment_variables_override_nested_keys_and_others_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "name = \"x\"\n[tree]\nbranching = 4\n");
        let env = [
            ("XMC_TREE__BRANCHING".to_string(), "8".to_string()),
            ("XMC_DATA__SPLIT__SEED".to_string(), "9".to_string()),
            ("XMC_DATA_DIR".to_string(), "/somewhere".to_string()),
            ("HOME".to_string(), "/root".to_string()),
        ];
        let cfg = ExperimentConfig::load_with_env(&path, &[], env).unwrap();
        assert_eq!(cfg.tree.branching, 8);
        assert_eq!(cfg.data.split.seed, 9);
        let bad = [("XMC_TREE__BRANCHIN".to_string(), "8".to_string())];
        assert!(format!("{:#}", ExperimentConfig::load_with_env(&path, &[], bad).unwrap_err()).contains("branchin"));
    }

    #[test]
    fn the_printed_default_loads_back_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let default = ExperimentConfig::default();
        let cfg = ExperimentConfig::load(&write(dir.path(), &default.to_toml()), &[]).unwrap();
        assert_eq!(cfg, default);
    }

    /// Keys left out of the serialised config at their defaults are still printed, so a user
    /// reading `--print-config` sees every key there is.
    #[test]
    fn the_printed_config_lists_keys_left_out_of_fingerprints() {
        let text = ExperimentConfig::default().to_toml();
        let table: toml::Table = text.parse().unwrap();
        assert_eq!(table["train"]["label_smoothing"].as_float(), Some(0.0), "{text}");
        assert_eq!(table["data"]["streaming"].as_bool(), Some(false), "{text}");
        assert_eq!(table["contrastive"]["loss"].as_str(), Some("pairs"), "{text}");
        assert_eq!(table["choose"]["branching"].as_array().map(Vec::len), Some(0), "{text}");
        let json = serde_json::to_value(&ExperimentConfig::default()).unwrap();
        assert!(json["train"].get("label_smoothing").is_none(), "fingerprints keep leaving it out");
        assert!(json["contrastive"].get("loss").is_none(), "fingerprints keep leaving it out");
        let on = ExperimentConfig { train: TrainConfig { label_smoothing: 0.1, ..Default::default() }, ..Default::default() };
        let table: toml::Table = on.to_toml().parse().unwrap();
        assert_eq!(table["train"]["label_smoothing"].as_float(), Some(0.1));
    }
}

#[cfg(test)]
mod fuzz {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        /// Any TOML-ish text ends in a config or an error naming the file; never a panic.
        #[test]
        fn configs_never_panic(lines in proptest::collection::vec(
            "(\\[(data|embed|tree|model|train|ranker|fusion|search|eval|bogus)\\]|(name|method|branching|beam|top_k|features|kind|learning_rate|max_epochs|dataset|preset) ?= ?(\"[a-z_./-]{0,10}\"|-?[0-9]{1,4}(\\.[0-9])?|true|\\[\\]))",
            0..12,
        )) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("exp.toml");
            std::fs::write(&path, lines.join("\n")).unwrap();
            if let Err(e) = ExperimentConfig::load_with_env(&path, &[], std::iter::empty()) {
                let message = format!("{e:#}");
                prop_assert!(message.contains("exp.toml"), "the error names the file: {}", message);
            }
        }
    }
}
