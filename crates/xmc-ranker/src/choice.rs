//! Settings the train stage chooses on the catalogue's validation split (`[choose]`): the label
//! tree's branching and the path score are tried together, a ranker is trained for each pair,
//! and the pair whose model (with the encoder's classifier where the fit keeps it) is the most
//! accurate on validation wins. What was tried, what won and the figures that decided go to
//! [`CHOICES_FILE`] in the model folder and into the run's report.

use std::path::Path;

use serde::{Deserialize, Serialize};
use xmc_data::LabelSet;

use crate::classifier::EncoderClassifier;
use crate::config::PathCombine;
use crate::error::{RankerError, Result};

/// The file in the model folder that records the train stage's choices.
pub const CHOICES_FILE: &str = "choices.json";

/// At most this many settings per key: each one trains a ranker.
const MAX_OPTIONS: usize = 8;

/// `[choose]`: the values the train stage tries for each key (empty: the config's own value).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChooseConfig {
    /// Branching factors of the label tree (k-means over the tree stage's label vectors with
    /// its seed and settings); empty: `tree.branching` alone.
    pub branching: Vec<usize>,
    /// How node scores combine along a path; empty: `ranker.path_combine` alone.
    pub path_combine: Vec<PathCombine>,
    /// At most this many training records train each setting's ranker (0 = all): above it, the
    /// settings are tried on a sample drawn under the highest per-label cap that fits, and the
    /// chosen one is trained again on all the records, so that the choice costs about one
    /// ranker's training whatever the catalogue's size. Left out of the serialised config at 0.
    #[serde(skip_serializing_if = "is_zero")]
    pub max_records: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl ChooseConfig {
    /// Whether nothing is chosen (the config's settings are used as they are).
    pub fn is_empty(&self) -> bool {
        self.branching.is_empty() && self.path_combine.is_empty()
    }

    pub fn validate(&self) -> std::result::Result<(), String> {
        if let Some(k) = self.branching.iter().find(|&&k| k < 2) {
            return Err(format!("`choose.branching` holds {k}: each branching factor must be at least 2"));
        }
        for (key, n) in [("branching", self.branching.len()), ("path_combine", self.path_combine.len())] {
            if n > MAX_OPTIONS {
                return Err(format!("`choose.{key}` holds {n} values: at most {MAX_OPTIONS} (each trains a ranker)"));
            }
        }
        fn repeats<T: PartialEq>(values: &[T]) -> bool {
            (1..values.len()).any(|i| values[..i].contains(&values[i]))
        }
        if repeats(&self.branching) || repeats(&self.path_combine) {
            return Err("`choose.branching` and `choose.path_combine` must not repeat a value".into());
        }
        Ok(())
    }

    /// The settings to try: every pair of the keys' values (a key without values takes the
    /// config's `branching` or `path_combine`), in the order the config lists them.
    pub fn settings(&self, branching: usize, path_combine: PathCombine) -> Vec<Setting> {
        let ks = if self.branching.is_empty() { vec![branching] } else { self.branching.clone() };
        let combines = if self.path_combine.is_empty() { vec![path_combine] } else { self.path_combine.clone() };
        ks.iter().flat_map(|&branching| combines.iter().map(move |&path_combine| Setting { branching, path_combine })).collect()
    }
}

/// One setting the train stage tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Setting {
    pub branching: usize,
    pub path_combine: PathCombine,
}

impl std::fmt::Display for Setting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let combine = match self.path_combine {
            PathCombine::Product => "product",
            PathCombine::GeometricMean => "geometric mean",
        };
        write!(f, "k = {}, {combine}", self.branching)
    }
}

/// A setting's figures on the validation split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trial {
    #[serde(flatten)]
    pub setting: Setting,
    /// The ranker alone: top-1 accuracy and the tail's.
    pub ranker_accuracy: f64,
    pub ranker_tail_accuracy: Option<f64>,
    /// The model as it would be saved: the classifier cross-fitted (its weights chosen on one
    /// half of the records and scored on the other, both ways) where the fit keeps it, else the
    /// ranker alone.
    pub accuracy: f64,
    pub tail_accuracy: Option<f64>,
    /// Whether the fit kept the encoder's classifier (weight above 0).
    pub classifier: bool,
    /// Seconds to train and score this setting.
    pub seconds: f64,
    /// Per validation record, whether the model (as `accuracy` counts it) puts its truth first
    /// (not saved: [`cross_chosen`] reads it).
    #[serde(skip)]
    pub hits: Vec<bool>,
}

impl Trial {
    /// The trial of `setting`, whose ranker's top labels on the validation records are
    /// `ranker_top` (against `truths`), with `classifier` as fitted on them (if any).
    pub fn new(setting: Setting, ranker_top: &[Option<u32>], truths: &[u32], labels: &LabelSet, classifier: Option<&EncoderClassifier>, seconds: f64) -> Self {
        let (ranker_accuracy, ranker_tail_accuracy) = top1_figures(ranker_top, truths, labels);
        let kept = classifier.filter(|c| c.weight > 0.0);
        let (accuracy, tail_accuracy, hits) = match kept {
            Some(c) => (c.fit.cross_fitted_accuracy, c.fit.cross_fitted_tail_accuracy, c.fit.cross_fitted_hits.clone()),
            None => (ranker_accuracy, ranker_tail_accuracy, ranker_top.iter().zip(truths).map(|(t, &truth)| *t == Some(truth)).collect()),
        };
        Trial { setting, ranker_accuracy, ranker_tail_accuracy, accuracy, tail_accuracy, classifier: kept.is_some(), seconds, hits }
    }

    /// Whether this trial beats `other`: by accuracy, then by the tail's (a tie keeps `other`,
    /// the one listed first).
    pub fn beats(&self, other: &Trial) -> bool {
        let key = |t: &Trial| (t.accuracy, t.tail_accuracy.unwrap_or(0.0));
        key(self) > key(other)
    }
}

/// Top-1 accuracy and the tail's (`None` without tail records) of `top` against `truths`.
pub fn top1_figures(top: &[Option<u32>], truths: &[u32], labels: &LabelSet) -> (f64, Option<f64>) {
    let (mut right, mut tail, mut tail_right) = (0usize, 0usize, 0usize);
    for (t, &truth) in top.iter().zip(truths) {
        let hit = *t == Some(truth);
        right += hit as usize;
        if labels.get(truth).is_some_and(|l| l.tail) {
            tail += 1;
            tail_right += hit as usize;
        }
    }
    let n = truths.len().max(1) as f64;
    (right as f64 / n, (tail > 0).then(|| tail_right as f64 / tail as f64))
}

/// The choice itself cross-fitted: on each half of the validation records (even and odd
/// positions, the classifier's halves) the setting is chosen as the train stage chooses it,
/// and scored on the other half; the figures of both halves together, the whole procedure's
/// honest validation accuracy and tail accuracy. `None` without trials or their hits.
pub fn cross_chosen(trials: &[Trial], truths: &[u32], labels: &LabelSet) -> Option<(f64, Option<f64>)> {
    let n = truths.len();
    if trials.is_empty() || n == 0 || trials.iter().any(|t| t.hits.len() != n) {
        return None;
    }
    let tail: Vec<bool> = truths.iter().map(|&t| labels.get(t).is_some_and(|l| l.tail)).collect();
    let halves: [Vec<usize>; 2] = [0, 1].map(|h| (0..n).filter(|i| i % 2 == h).collect());
    let mut top: Vec<Option<u32>> = vec![None; n];
    for h in 0..2 {
        let score = |t: &Trial| {
            let right = halves[h].iter().filter(|&&i| t.hits[i]).count();
            (right, halves[h].iter().filter(|&&i| t.hits[i] && tail[i]).count())
        };
        let chosen = (0..trials.len()).reduce(|b, i| if score(&trials[i]) > score(&trials[b]) { i } else { b })?;
        for &i in &halves[1 - h] {
            // A hit is the truth; a miss any other label.
            top[i] = if trials[chosen].hits[i] { Some(truths[i]) } else { None };
        }
    }
    Some(top1_figures(&top, truths, labels))
}

/// The fine-tuning's best epoch on the validation split's nearest-label accuracy.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EpochChoice {
    pub best_epoch: usize,
    pub epochs: usize,
    pub valid_accuracy: f64,
}

/// What the train stage chose on the validation split ([`CHOICES_FILE`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Choices {
    pub chosen: Setting,
    /// Every setting tried, in the order tried.
    pub trials: Vec<Trial>,
    /// The fine-tuned classifier's encoder: its best epoch, kept.
    pub fine_tuning: Option<EpochChoice>,
    /// The classifier's own top labels beside the ranker's candidates where it is consulted:
    /// how many were offered and whether the fit kept them (`None` without a classifier).
    pub classifier_candidates: Option<(usize, bool)>,
    /// The choice cross-fitted ([`cross_chosen`]): accuracy and tail accuracy.
    #[serde(default)]
    pub cross_chosen: Option<(f64, Option<f64>)>,
    /// Which records chose, and so which figures are optimistic.
    pub note: String,
    /// How many training records trained each setting's ranker when `choose.max_records` drew a
    /// sample (the chosen setting was then trained again on all of them); `None`: all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial_records: Option<usize>,
}

/// The note every [`Choices`] carries.
pub const HONESTY_NOTE: &str = "chosen on the validation split: the figures per setting decided the choice and are optimistic \
(the classifier's are cross-fitted, its weights chosen on one half of the records and scored on the other, but the choice among \
the settings is made on all of them); the choice cross-fitted (made on one half, scored on the other) is the procedure's honest \
validation figure, and the test split, which nothing here saw, the honest figure of the model";

impl Choices {
    /// Index of the winning trial: the most accurate, then the best on the tail; ties to the
    /// first tried. `None` for no trials.
    pub fn best(trials: &[Trial]) -> Option<usize> {
        (0..trials.len()).reduce(|best, i| if trials[i].beats(&trials[best]) { i } else { best })
    }

    pub fn save(&self, dir: &Path) -> Result<()> {
        let path = dir.join(CHOICES_FILE);
        let text = serde_json::to_string_pretty(self).map_err(|e| RankerError::model(&path, e.to_string()))?;
        std::fs::write(&path, text).map_err(|e| RankerError::io(&path, e))
    }

    /// The choices recorded in `dir`, `None` when the folder has none (nothing was chosen).
    pub fn load(dir: &Path) -> Result<Option<Self>> {
        let path = dir.join(CHOICES_FILE);
        if !path.is_file() {
            return Ok(None);
        }
        let text = std::fs::read(&path).map_err(|e| RankerError::io(&path, e))?;
        serde_json::from_slice(&text).map(Some).map_err(|e| RankerError::model(&path, e.to_string()))
    }

    /// The choices as a markdown table and notes (for the run's report).
    pub fn markdown(&self) -> String {
        let pct = |x: Option<f64>| x.map_or("-".into(), |a| format!("{:.2}", 100.0 * a));
        let mut text = String::from("| setting | ranker accuracy | ranker tail accuracy | model accuracy | model tail accuracy | classifier kept | seconds | chosen |\n|---|---|---|---|---|---|---|---|\n");
        for t in &self.trials {
            text.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {:.0} | {} |\n",
                t.setting,
                pct(Some(t.ranker_accuracy)),
                pct(t.ranker_tail_accuracy),
                pct(Some(t.accuracy)),
                pct(t.tail_accuracy),
                if t.classifier { "yes" } else { "no" },
                t.seconds,
                if t.setting == self.chosen { "**yes**" } else { "" }
            ));
        }
        if let Some((accuracy, tail)) = self.cross_chosen {
            text.push_str(&format!(
                "\nThe choice cross-fitted (made on one half of the validation records, scored on the other, both ways): accuracy {}, tail accuracy {}.\n",
                pct(Some(accuracy)),
                pct(tail)
            ));
        }
        if let Some(n) = self.trial_records {
            text.push_str(&format!(
                "\nEach setting's ranker was trained on {n} training records (`choose.max_records`, drawn under a per-label cap); the chosen setting was then trained again on all of them.\n"
            ));
        }
        if let Some(e) = self.fine_tuning {
            text.push_str(&format!(
                "\nFine-tuning: epoch {} of {} kept (validation nearest-label accuracy {:.2}).\n",
                e.best_epoch,
                e.epochs,
                100.0 * e.valid_accuracy
            ));
        }
        if let Some((n, kept)) = self.classifier_candidates {
            text.push_str(&format!("\nThe classifier's own top {n} labels beside the ranker's candidates: {}.\n", if kept { "kept" } else { "not kept" }));
        }
        text.push_str(&format!("\nNote: {}.\n", self.note));
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trial(branching: usize, accuracy: f64, tail: Option<f64>) -> Trial {
        Trial {
            setting: Setting { branching, path_combine: PathCombine::Product },
            ranker_accuracy: accuracy,
            ranker_tail_accuracy: tail,
            accuracy,
            tail_accuracy: tail,
            classifier: false,
            seconds: 0.0,
            hits: Vec::new(),
        }
    }

    #[test]
    fn settings_are_every_pair_and_an_empty_key_takes_the_configs_value() {
        let choose = ChooseConfig { branching: vec![16, 6], path_combine: vec![PathCombine::Product, PathCombine::GeometricMean], ..Default::default() };
        let s = choose.settings(8, PathCombine::GeometricMean);
        assert_eq!(s.len(), 4);
        assert_eq!(s[0], Setting { branching: 16, path_combine: PathCombine::Product });
        assert_eq!(s[3], Setting { branching: 6, path_combine: PathCombine::GeometricMean });
        let only_k = ChooseConfig { branching: vec![4, 6], path_combine: vec![], ..Default::default() };
        assert!(only_k.settings(8, PathCombine::Product).iter().all(|s| s.path_combine == PathCombine::Product));
        assert_eq!(ChooseConfig::default().settings(8, PathCombine::Product), vec![Setting { branching: 8, path_combine: PathCombine::Product }]);
    }

    #[test]
    fn bad_values_are_refused_by_key() {
        let bad = ChooseConfig { branching: vec![16, 1], ..Default::default() };
        assert!(bad.validate().unwrap_err().contains("choose.branching"));
        let repeated = ChooseConfig { branching: vec![6, 6], ..Default::default() };
        assert!(repeated.validate().unwrap_err().contains("repeat"));
        let repeated = ChooseConfig { path_combine: vec![PathCombine::Product, PathCombine::GeometricMean, PathCombine::Product], ..Default::default() };
        assert!(repeated.validate().unwrap_err().contains("repeat"));
        let many = ChooseConfig { branching: (2..12).collect(), ..Default::default() };
        assert!(many.validate().unwrap_err().contains("at most"));
        ChooseConfig { branching: vec![16, 6], path_combine: vec![PathCombine::Product, PathCombine::GeometricMean], ..Default::default() }.validate().unwrap();
    }

    #[test]
    fn the_most_accurate_wins_then_the_tail_and_ties_keep_the_first() {
        let trials = [trial(16, 0.80, Some(0.5)), trial(6, 0.81, Some(0.4)), trial(4, 0.81, Some(0.45)), trial(2, 0.81, Some(0.45))];
        assert_eq!(Choices::best(&trials), Some(2));
        assert_eq!(Choices::best(&trials[..1]), Some(0));
        assert_eq!(Choices::best(&[]), None);
    }

    #[test]
    fn the_classifiers_cross_fitted_figures_count_only_where_it_is_kept() {
        let labels = LabelSet::from_paths([["a".to_string()].as_slice(), ["b".to_string()].as_slice()], 25);
        let setting = Setting { branching: 2, path_combine: PathCombine::Product };
        let mut c = EncoderClassifier::new(1.0, vec![vec![1.0], vec![-1.0]]);
        c.fit.cross_fitted_accuracy = 0.9;
        c.fit.cross_fitted_tail_accuracy = Some(0.9);
        let top = [Some(0), Some(0)];
        let dropped = Trial::new(setting, &top, &[0, 1], &labels, Some(&c), 1.0);
        assert_eq!((dropped.accuracy, dropped.classifier), (0.5, false));
        c.weight = 1.0;
        let kept = Trial::new(setting, &top, &[0, 1], &labels, Some(&c), 1.0);
        assert_eq!((kept.accuracy, kept.ranker_accuracy, kept.classifier), (0.9, 0.5, true));
    }

    #[test]
    fn choices_round_trip_through_the_folder_and_an_old_folder_has_none() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Choices::load(dir.path()).unwrap().is_none());
        let trials = vec![trial(16, 0.8, None), trial(6, 0.7, Some(0.3))];
        let choices = Choices {
            chosen: trials[0].setting,
            trials,
            fine_tuning: Some(EpochChoice { best_epoch: 2, epochs: 3, valid_accuracy: 0.7 }),
            classifier_candidates: Some((5, true)),
            cross_chosen: Some((0.75, None)),
            note: HONESTY_NOTE.into(),
            trial_records: Some(2_000),
        };
        choices.save(dir.path()).unwrap();
        assert_eq!(Choices::load(dir.path()).unwrap(), Some(choices.clone()));
        let md = choices.markdown();
        assert!(md.contains("| k = 16, product | 80.00 |") && md.contains("epoch 2 of 3") && md.contains("optimistic"), "{md}");
        assert!(md.contains("cross-fitted (made on one half") && md.contains("accuracy 75.00"), "{md}");
        assert!(md.contains("trained on 2000 training records"), "{md}");
        // A file from before `trial_records` reads as trained on all records.
        let mut json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join(CHOICES_FILE)).unwrap()).unwrap();
        json.as_object_mut().unwrap().remove("trial_records");
        std::fs::write(dir.path().join(CHOICES_FILE), json.to_string()).unwrap();
        assert_eq!(Choices::load(dir.path()).unwrap().unwrap().trial_records, None);
    }

    /// A setting that wins on one half only by luck loses the other half: the cross-fitted
    /// choice scores each half with the setting the other half chose.
    #[test]
    fn the_choice_cross_fitted_scores_each_half_with_the_other_halfs_choice() {
        let labels = LabelSet::from_paths([["a".to_string()].as_slice()], 25);
        let truths = vec![0u32; 4];
        // Records 0, 2 are the even half; 1, 3 the odd one.
        let lucky_even = Trial { hits: vec![true, false, true, false], ..trial(16, 0.5, None) };
        let steady = Trial { hits: vec![true, true, false, true], ..trial(6, 0.75, None) };
        // Even half: lucky 2, steady 1 -> lucky, scored on the odd half: 0 of 2. Odd half:
        // lucky 0, steady 2 -> steady, scored on the even half: 1 of 2.
        let (accuracy, tail) = cross_chosen(&[lucky_even.clone(), steady.clone()], &truths, &labels).unwrap();
        assert_eq!((accuracy, tail), (0.25, Some(0.25)));
        assert_eq!(cross_chosen(&[steady.clone()], &truths, &labels).unwrap().0, 0.75, "one setting: its own hits");
        assert!(cross_chosen(&[trial(2, 0.5, None)], &truths, &labels).is_none(), "no hits, no figure");
    }
}
