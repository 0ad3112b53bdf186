//! Reading and checking an experiment config: the file, `XMC_<SECTION>__<KEY>` environment
//! overrides and `--set` overrides merged by the `config` crate, then every section's and the
//! method's own checks before any work.

use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::config::{ExperimentConfig, env_overrides, explain, toml_to_config};
use crate::method::Method;

impl ExperimentConfig {
    /// The config's method.
    pub fn method(&self) -> &'static dyn Method {
        crate::registry::by_name(self.method.as_str()).expect("a validated config names a registered method")
    }

    /// Whether the config's method reads the label tree (the embed, tree and codes stages): a
    /// T5 generating plain label paths does not, so those stages (and the sentence encoder) are
    /// not run for it.
    pub fn uses_label_tree(&self) -> bool {
        self.method().uses_label_tree(self)
    }

    /// Loads `path`, applies `XMC_*__*` environment overrides and `overrides` (key, TOML value),
    /// and validates the result.
    pub fn load(path: &Path, overrides: &[(String, toml::Value)]) -> Result<Self> {
        Self::load_with_env(path, overrides, std::env::vars())
    }

    /// [`ExperimentConfig::load`] with the environment given explicitly.
    pub fn load_with_env(
        path: &Path,
        overrides: &[(String, toml::Value)],
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self> {
        if !path.is_file() {
            bail!("experiment config {} does not exist", path.display());
        }
        let mut builder = config::Config::builder()
            .add_source(config::File::from(path).format(config::FileFormat::Toml))
            .add_source(
                config::Environment::default()
                    .separator("__")
                    .try_parsing(true)
                    .source(Some(env_overrides(env))),
            );
        for (key, value) in overrides {
            builder = builder.set_override(key.as_str(), toml_to_config(value)?)?;
        }
        let merged: serde_json::Value = builder
            .build()
            .with_context(|| format!("reading {}", path.display()))?
            .try_deserialize()
            .with_context(|| format!("reading {}", path.display()))?;
        let cfg: ExperimentConfig =
            serde_json::from_value(merged.clone()).map_err(|e| anyhow::anyhow!("{}: {}", path.display(), explain(&merged, e)))?;
        cfg.validate().with_context(|| format!("invalid experiment config {}", path.display()))?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<()> {
        if self.name.is_empty() || !self.name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
            bail!("`name` = {:?} must be non-empty and use only letters, digits, `-`, `_` and `.`", self.name);
        }
        let checks = [
            self.data.validate(),
            self.embed.validate(),
            self.tree.validate(),
            self.model.validate(),
            self.train.validate(),
            self.eval.validate(),
            self.search.validate(),
            self.contrastive.validate(),
            self.ranker.validate(),
            self.fusion.validate(),
        ];
        for check in checks {
            check.map_err(|e| anyhow::anyhow!(e))?;
        }
        let Some(method) = crate::registry::by_name(self.method.as_str()) else {
            let known: Vec<String> = crate::registry::names().iter().map(|n| format!("`{n}`")).collect();
            bail!("`method` = {:?} is not a method; the methods are {}", self.method.as_str(), known.join(", "));
        };
        if self.search.new_labels.is_some() && !method.takes_new_labels() {
            let able: Vec<String> = crate::registry::METHODS.iter().filter(|m| m.takes_new_labels()).map(|m| format!("`method = \"{}\"`", m.name())).collect();
            bail!("`search.new_labels` adds labels to a trained model without retraining: it needs {}", able.join(" or "));
        }
        let settings = method.predict_settings(self);
        crate::limits::check_search(settings.beam, settings.top_k).with_context(|| format!("the `{}` method's beam or top_k", method.name()))?;
        method.validate(self)
    }
}
