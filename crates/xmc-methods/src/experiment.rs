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
        check_numbers("", &merged).with_context(|| format!("invalid experiment config {}", path.display()))?;
        let cfg: ExperimentConfig =
            serde_json::from_value(merged.clone()).map_err(|e| anyhow::anyhow!("{}: {}", path.display(), explain(&merged, e)))?;
        cfg.validate().with_context(|| format!("invalid experiment config {}", path.display()))?;
        Ok(cfg)
    }

    /// Every section's checks (each key's own range), then the method's.
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
            self.choose.validate(),
            self.distill.validate(),
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
        if !self.choose.is_empty() && method.name() != xmc_ranker::METHOD {
            bail!("`[choose]` tries settings of the xr method's train stage: it needs `method = \"xr\"`, not {:?}", method.name());
        }
        if !self.distill.is_off() && (method.name() != xmc_ranker::METHOD || self.contrastive.loss != xmc_train::FineTuneLoss::Labels || self.contrastive.epochs == 0) {
            bail!("`[distill]` trains a student of the xr method's classifier encoder: it needs `method = \"xr\"` with `contrastive.loss = \"labels\"` and `contrastive.epochs` above 0");
        }
        if !self.distill.is_off() && self.contrastive.members != 1 {
            bail!("`[distill]` trains a student of one classifier encoder: it needs `contrastive.members = 1`");
        }
        let settings = method.predict_settings(self);
        crate::limits::check_search(settings.beam, settings.top_k).with_context(|| format!("the `{}` method's beam or top_k", method.name()))?;
        method.validate(self)
    }
}

/// The largest whole number a config key may hold (seeds excepted); keys that size work have
/// tighter ranges in their section's checks.
pub const MAX_CONFIG_INTEGER: u64 = 1_000_000_000;

/// Every number of a config: whole numbers (but seeds) at most [`MAX_CONFIG_INTEGER`] in size,
/// and none infinite or NaN; named by its dotted key.
fn check_numbers(key: &str, value: &serde_json::Value) -> Result<()> {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                check_numbers(&if key.is_empty() { k.clone() } else { format!("{key}.{k}") }, v)?;
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                check_numbers(key, item)?;
            }
        }
        serde_json::Value::Number(n) if !key.ends_with("seed") => {
            if n.as_i64().map(i64::unsigned_abs).or(n.as_u64()).is_some_and(|v| v > MAX_CONFIG_INTEGER) {
                bail!("`{key}` = {n} is larger than any setting takes (at most {MAX_CONFIG_INTEGER})");
            }
            if n.as_f64().is_some_and(|f| !f.is_finite()) {
                bail!("`{key}` = {n} is not a finite number");
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A config number that would size work past any sane amount is refused by its key before
    /// any work, whichever section it is in.
    #[test]
    fn config_numbers_outside_their_ranges_are_refused_by_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("exp.toml");
        for (text, says) in [
            ("[train]\nbatch_size = 1000000000000\n", "train.batch_size"),
            ("[train]\nbatch_size = 100000\n", "train.batch_size"),
            ("[tree]\nbranching = 5000000000\n", "tree.branching"),
            ("method = \"xr\"\n[ranker]\nbeam = 5000\n", "beam"),
            ("[model]\ntop_k = 0\n", "top_k"),
        ] {
            std::fs::write(&path, format!("name = \"t\"\n{text}")).unwrap();
            let err = format!("{:#}", ExperimentConfig::load_with_env(&path, &[], std::iter::empty()).unwrap_err());
            assert!(err.contains(says) && err.contains("exp.toml"), "{text}: {err}");
        }
        std::fs::write(&path, "name = \"t\"\n[train]\nseed = 9223372036854775807\n").unwrap();
        assert!(ExperimentConfig::load_with_env(&path, &[], std::iter::empty()).is_ok(), "a seed may be any whole number TOML holds");
    }

    /// `[choose]` belongs to the xr method's train stage, over k-means trees, without an ensemble.
    #[test]
    fn choices_are_refused_where_nothing_can_make_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("exp.toml");
        for (text, says) in [
            ("method = \"generative\"\n[choose]\nbranching = [6, 16]\n", "method = \"xr\""),
            ("method = \"xr\"\n[tree]\nkind = \"taxonomy\"\n[choose]\nbranching = [6, 16]\n", "kmeans"),
            ("method = \"xr\"\n[ranker]\nensemble = [16]\n[choose]\nbranching = [6, 16]\n", "ensemble"),
            ("method = \"xr\"\n[choose]\nbranching = [6, 1]\n", "choose.branching"),
            ("method = \"xr\"\n[choose]\npath_combine = [\"sum\"]\n", "[choose]"),
        ] {
            std::fs::write(&path, format!("name = \"t\"\n{text}")).unwrap();
            let err = format!("{:#}", ExperimentConfig::load_with_env(&path, &[], std::iter::empty()).unwrap_err());
            assert!(err.contains(says), "{text}: {err}");
        }
        std::fs::write(&path, "name = \"t\"\nmethod = \"xr\"\n[choose]\nbranching = [6, 16]\npath_combine = [\"product\"]\n").unwrap();
        let cfg = ExperimentConfig::load_with_env(&path, &[], std::iter::empty()).unwrap();
        assert_eq!(cfg.choose.branching, vec![6, 16]);
    }

    /// `[distill]` needs the xr method's one classifier encoder to learn from.
    #[test]
    fn a_student_is_refused_where_there_is_no_teacher() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("exp.toml");
        let teacher = "[contrastive]\nloss = \"labels\"\nepochs = 1\n";
        for (text, says) in [
            (format!("method = \"generative\"\n{teacher}[distill]\nlayers = 2\n"), "method = \"xr\""),
            ("method = \"xr\"\n[distill]\nlayers = 2\n".to_string(), "contrastive.loss"),
            (format!("method = \"xr\"\n{teacher}members = 2\n[distill]\nlayers = 2\n"), "members"),
            (format!("method = \"xr\"\n{teacher}[distill]\nlayers = 2\ntolerance = 3.0\n"), "distill.tolerance"),
            (format!("method = \"xr\"\n{teacher}[distill]\nlayers = 2\nkeep = \"sometimes\"\n"), "[distill]"),
        ] {
            std::fs::write(&path, format!("name = \"t\"\n{text}")).unwrap();
            let err = format!("{:#}", ExperimentConfig::load_with_env(&path, &[], std::iter::empty()).unwrap_err());
            assert!(err.contains(says), "{text}: {err}");
        }
        std::fs::write(&path, format!("name = \"t\"\nmethod = \"xr\"\n{teacher}[distill]\nlayers = 2\n")).unwrap();
        let cfg = ExperimentConfig::load_with_env(&path, &[], std::iter::empty()).unwrap();
        assert_eq!(cfg.distill.layers, 2);
        assert!(cfg.to_toml().contains("[distill]"));
        // Off, it stays out of the serialised config (the fingerprints of older runs).
        assert!(serde_json::to_value(ExperimentConfig::default()).unwrap().get("distill").is_none());
    }
}
