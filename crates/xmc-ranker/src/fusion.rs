//! The fused method's reranker: each record's candidate labels (the ranker's top k and the
//! generator's beam) carry a few scores (ranker path score, generator log-probability, similarity
//! of record and label under the sentence encoder, label frequency); a conditional logit model
//! (a softmax over a record's candidates of a weighted sum of the standardised scores) picks among
//! them. Fitted by Newton's method on the validation split only (its caller's duty), with a small
//! L2 penalty; records whose true label is not among their candidates cannot teach it and are
//! left out of the fit.

use serde::{Deserialize, Serialize};

use crate::cascade::Skip;

/// One score a candidate carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FusionFeature {
    /// ln of the ranker's path score.
    RankerScore,
    /// The generator's teacher-forced log-probability of the label's code.
    GeneratorLogProb,
    /// Cosine of the record's and the label path's sentence embeddings.
    Similarity,
    /// ln(1 + the label's training records).
    LabelPrior,
}

/// The `[fusion]` section of an experiment config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FusionConfig {
    /// The ranker's top k that become candidates.
    pub ranker_candidates: usize,
    /// The generator's beam hypotheses that become candidates (0: the generator only scores).
    pub generator_candidates: usize,
    /// Train a T5 generator (`[model]`, `[train]`) and use its log-probability.
    pub generator: bool,
    /// Use the similarity of record and label under the sentence encoder.
    pub similarity: bool,
    /// L2 penalty on the standardised weights.
    pub l2: f64,
}

impl Default for FusionConfig {
    fn default() -> Self {
        FusionConfig { ranker_candidates: 20, generator_candidates: 5, generator: true, similarity: true, l2: 1e-2 }
    }
}

impl FusionConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.ranker_candidates == 0 {
            return Err("`fusion.ranker_candidates` must be at least 1".into());
        }
        if !(self.l2.is_finite() && self.l2 >= 0.0) {
            return Err(format!("`fusion.l2` = {} must be 0 or more", self.l2));
        }
        if self.generator_candidates > 0 && !self.generator {
            return Err("`fusion.generator_candidates` > 0 needs `fusion.generator = true`".into());
        }
        Ok(())
    }

    /// The features this config scores candidates with, in order.
    pub fn features(&self) -> Vec<FusionFeature> {
        let mut f = vec![FusionFeature::RankerScore];
        if self.generator {
            f.push(FusionFeature::GeneratorLogProb);
        }
        if self.similarity {
            f.push(FusionFeature::Similarity);
        }
        f.push(FusionFeature::LabelPrior);
        f
    }
}

/// One record's candidates: each row holds the raw features of one candidate; `truth` is the
/// position of the true label among them, when it is there.
#[derive(Debug, Clone, PartialEq)]
pub struct CandidateGroup {
    pub rows: Vec<Vec<f64>>,
    pub truth: Option<usize>,
}

/// A fitted reranker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FusionModel {
    pub config: FusionConfig,
    pub features: Vec<FusionFeature>,
    pub mean: Vec<f64>,
    pub scale: Vec<f64>,
    pub weights: Vec<f64>,
    /// Records the fit learned from (truth among the candidates) and all records given.
    pub fitted_records: usize,
    pub records: usize,
    /// Top-1 accuracy on the records given, of the combination fitted on the other half
    /// (two-fold cross-fitting), and of the ranker's score alone.
    #[serde(default)]
    pub cross_fitted_accuracy: Option<f64>,
    #[serde(default)]
    pub ranker_accuracy: Option<f64>,
    /// True when the cross-fitted combination did not beat the ranker alone, so the weights keep
    /// the ranker's score only.
    #[serde(default)]
    pub ranker_only: bool,
    /// Records on which the ranker is sure enough that the generator and the encoder are not
    /// run and the ranker's order stands (`None`: every record is fused; files written before
    /// it existed have none). Fitted on the validation split by the caller ([`Skip::fit`]).
    #[serde(default)]
    pub skip: Option<Skip>,
}

impl FusionModel {
    /// The combined score of one candidate's raw features.
    pub fn score(&self, row: &[f64]) -> f64 {
        row.iter().zip(&self.mean).zip(&self.scale).zip(&self.weights).map(|(((x, m), s), w)| w * (x - m) / s).sum()
    }

    /// Fits the weights on `groups` (every row has `features.len()` values).
    pub fn fit(groups: &[CandidateGroup], config: &FusionConfig) -> Result<Self, String> {
        let features = config.features();
        let d = features.len();
        if let Some(bad) = groups.iter().flat_map(|g| &g.rows).find(|r| r.len() != d) {
            return Err(format!("a candidate has {} features, expected {d}", bad.len()));
        }
        let usable: Vec<&CandidateGroup> = groups.iter().filter(|g| g.truth.is_some() && g.rows.len() > 1).collect();
        if usable.is_empty() {
            return Err("no record has its true label among two or more candidates: nothing to fit".into());
        }
        // Standardise each feature over every candidate row.
        let rows: Vec<&Vec<f64>> = usable.iter().flat_map(|g| &g.rows).collect();
        let n = rows.len() as f64;
        let mean: Vec<f64> = (0..d).map(|j| rows.iter().map(|r| r[j]).sum::<f64>() / n).collect();
        let scale: Vec<f64> =
            (0..d).map(|j| (rows.iter().map(|r| (r[j] - mean[j]).powi(2)).sum::<f64>() / n).sqrt().max(1e-9)).collect();
        let z: Vec<Vec<Vec<f64>>> =
            usable.iter().map(|g| g.rows.iter().map(|r| (0..d).map(|j| (r[j] - mean[j]) / scale[j]).collect()).collect()).collect();
        let truths: Vec<usize> = usable.iter().map(|g| g.truth.expect("filtered")).collect();
        let objective = |w: &[f64]| -> f64 {
            let mut ll = 0.0;
            for (g, &t) in z.iter().zip(&truths) {
                let s: Vec<f64> = g.iter().map(|r| dot(r, w)).collect();
                ll += s[t] - log_sum_exp(&s);
            }
            ll - 0.5 * config.l2 * dot(w, w)
        };
        let mut w = vec![0.0; d];
        let mut current = objective(&w);
        for _ in 0..50 {
            let mut grad: Vec<f64> = w.iter().map(|x| -config.l2 * x).collect();
            let mut hess = vec![vec![0.0; d]; d];
            for i in 0..d {
                hess[i][i] = config.l2.max(1e-8); // a constant feature would leave it singular
            }
            for (g, &t) in z.iter().zip(&truths) {
                let s: Vec<f64> = g.iter().map(|r| dot(r, &w)).collect();
                let lse = log_sum_exp(&s);
                let p: Vec<f64> = s.iter().map(|x| (x - lse).exp()).collect();
                let mut e = vec![0.0; d];
                for (r, &pi) in g.iter().zip(&p) {
                    for j in 0..d {
                        e[j] += pi * r[j];
                    }
                }
                for j in 0..d {
                    grad[j] += g[t][j] - e[j];
                }
                for (r, &pi) in g.iter().zip(&p) {
                    for a in 0..d {
                        for b in 0..d {
                            hess[a][b] += pi * (r[a] - e[a]) * (r[b] - e[b]);
                        }
                    }
                }
            }
            let step = solve(hess, grad.clone()).ok_or("the fit's Hessian is singular")?;
            // Backtracking keeps every step an ascent.
            let mut t = 1.0;
            let mut accepted = false;
            while t > 1e-6 {
                let cand: Vec<f64> = w.iter().zip(&step).map(|(a, b)| a + t * b).collect();
                let value = objective(&cand);
                if value >= current {
                    accepted = value - current > 1e-10;
                    w = cand;
                    current = value;
                    break;
                }
                t *= 0.5;
            }
            if !accepted || grad.iter().map(|g| g.abs()).fold(0.0, f64::max) < 1e-8 {
                break;
            }
        }
        Ok(FusionModel {
            config: config.clone(),
            features,
            mean,
            scale,
            weights: w,
            fitted_records: usable.len(),
            records: groups.len(),
            cross_fitted_accuracy: None,
            ranker_accuracy: None,
            ranker_only: false,
            skip: None,
        })
    }

    /// [`FusionModel::fit`], guarded: the combination is fitted on each half of `groups` and
    /// scored on the other; when that cross-fitted top-1 accuracy is not above the ranker
    /// score's alone, the model keeps the ranker's score only (a combination that does not help
    /// on held-out records is not used).
    pub fn fit_guarded(groups: &[CandidateGroup], config: &FusionConfig) -> Result<Self, String> {
        let mut model = Self::fit(groups, config)?;
        let top1 = |m: &FusionModel, g: &CandidateGroup| -> bool {
            let best = (0..g.rows.len()).max_by(|&a, &b| m.score(&g.rows[a]).total_cmp(&m.score(&g.rows[b])).then(b.cmp(&a)));
            best.is_some() && best == g.truth
        };
        let halves: [Vec<CandidateGroup>; 2] = [0, 1].map(|h| groups.iter().enumerate().filter(|(i, _)| i % 2 == h).map(|(_, g)| g.clone()).collect());
        let mut right = 0;
        for h in 0..2 {
            let fitted = Self::fit(&halves[h], config)?;
            right += halves[1 - h].iter().filter(|g| top1(&fitted, g)).count();
        }
        let n = groups.len().max(1) as f64;
        let ranker = FusionModel { weights: (0..model.features.len()).map(|j| if j == 0 { 1.0 } else { 0.0 }).collect(), ..model.clone() };
        let ranker_right = groups.iter().filter(|g| top1(&ranker, g)).count();
        model.cross_fitted_accuracy = Some(right as f64 / n);
        model.ranker_accuracy = Some(ranker_right as f64 / n);
        if right <= ranker_right {
            model.weights = ranker.weights;
            model.ranker_only = true;
        }
        Ok(model)
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn log_sum_exp(s: &[f64]) -> f64 {
    let m = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    m + s.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
}

/// Solves `a x = b` by Gaussian elimination with partial pivoting (a is small and symmetric
/// positive definite here).
fn solve(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Option<Vec<f64>> {
    let n = b.len();
    for col in 0..n {
        let pivot = (col..n).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[pivot][col].abs() < 1e-12 {
            return None;
        }
        a.swap(col, pivot);
        b.swap(col, pivot);
        for row in col + 1..n {
            let f = a[row][col] / a[col][col];
            for k in col..n {
                a[row][k] -= f * a[col][k];
            }
            b[row] -= f * b[col];
        }
    }
    let mut x = vec![0.0; n];
    for row in (0..n).rev() {
        x[row] = (b[row] - (row + 1..n).map(|k| a[row][k] * x[k]).sum::<f64>()) / a[row][row];
    }
    Some(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> FusionConfig {
        FusionConfig { generator: true, similarity: false, generator_candidates: 0, ..FusionConfig::default() }
    }

    #[test]
    fn learns_to_trust_the_informative_score() {
        // features: [ranker, generator, prior]; the generator's score marks the truth, the
        // ranker's is noise, so the fit weighs the generator far above the ranker.
        let mut rng = xmc_data::SplitMix64::new(3);
        let groups: Vec<CandidateGroup> = (0..200)
            .map(|_| {
                let truth = rng.below(5);
                let rows = (0..5)
                    .map(|c| vec![rng.next_f64(), if c == truth { 1.0 } else { 0.0 } + 0.3 * rng.next_f64(), rng.next_f64()])
                    .collect();
                CandidateGroup { rows, truth: Some(truth) }
            })
            .collect();
        let m = FusionModel::fit(&groups, &cfg()).unwrap();
        assert_eq!(m.features, vec![FusionFeature::RankerScore, FusionFeature::GeneratorLogProb, FusionFeature::LabelPrior]);
        assert!(m.weights[1] > 5.0 * m.weights[0].abs(), "{:?}", m.weights);
        let right = groups
            .iter()
            .filter(|g| {
                let best = (0..g.rows.len()).max_by(|&a, &b| m.score(&g.rows[a]).total_cmp(&m.score(&g.rows[b]))).unwrap();
                Some(best) == g.truth
            })
            .count();
        assert!(right > 190, "{right} of 200");
    }

    #[test]
    fn newton_reaches_the_optimum_of_a_two_candidate_problem() {
        // Two candidates differing by x = 1 in one feature, the first right 3 times out of 4: the
        // logit optimum (no penalty) is w = ln 3 in standardised units.
        let mut groups = Vec::new();
        for i in 0..400 {
            let truth = if i % 4 == 0 { 1 } else { 0 };
            groups.push(CandidateGroup { rows: vec![vec![1.0, 0.0, 0.0], vec![0.0, 0.0, 0.0]], truth: Some(truth) });
        }
        let m = FusionModel::fit(&groups, &FusionConfig { l2: 0.0, ..cfg() }).unwrap();
        let w_raw = m.weights[0] / m.scale[0];
        assert!((w_raw - 3f64.ln()).abs() < 1e-6, "{w_raw}");
    }

    #[test]
    fn the_guard_keeps_the_ranker_when_the_other_scores_are_noise() {
        // The ranker's score marks the truth 80% of the time; the others are noise: fitting them
        // cannot beat the ranker on held-out halves, so the guard keeps the ranker alone.
        let mut rng = xmc_data::SplitMix64::new(9);
        let groups: Vec<CandidateGroup> = (0..300)
            .map(|i| {
                let truth = rng.below(4);
                let marked = if i % 5 == 0 { (truth + 1) % 4 } else { truth };
                let rows = (0..4).map(|c| vec![if c == marked { 1.0 } else { 0.0 }, rng.next_f64(), rng.next_f64()]).collect();
                CandidateGroup { rows, truth: Some(truth) }
            })
            .collect();
        let m = FusionModel::fit_guarded(&groups, &cfg()).unwrap();
        assert!((m.ranker_accuracy.unwrap() - 0.8).abs() < 1e-9);
        assert!(m.cross_fitted_accuracy.unwrap() <= 0.8, "{m:?}");
        assert!(m.ranker_only);
        assert_eq!(m.weights, vec![1.0, 0.0, 0.0]);
        // When another score is informative, the combination is kept.
        let informative: Vec<CandidateGroup> = groups
            .iter()
            .map(|g| {
                let t = g.truth.unwrap();
                CandidateGroup { rows: g.rows.iter().enumerate().map(|(c, r)| vec![r[0], if c == t { 1.0 } else { 0.0 }, r[2]]).collect(), truth: g.truth }
            })
            .collect();
        let m = FusionModel::fit_guarded(&informative, &cfg()).unwrap();
        assert!(!m.ranker_only && m.cross_fitted_accuracy.unwrap() > 0.95, "{m:?}");
    }

    #[test]
    fn records_without_their_truth_are_left_out_and_bad_input_refused() {
        let g = CandidateGroup { rows: vec![vec![0.0, 1.0, 0.0], vec![1.0, 0.0, 0.0]], truth: None };
        assert!(FusionModel::fit(&[g.clone()], &cfg()).is_err());
        let ok = CandidateGroup { rows: vec![vec![0.0, 1.0, 0.0], vec![1.0, 0.0, 1.0]], truth: Some(0) };
        let m = FusionModel::fit(&[g, ok.clone(), ok], &cfg()).unwrap();
        assert_eq!((m.fitted_records, m.records), (2, 3));
        let bad = CandidateGroup { rows: vec![vec![0.0]], truth: Some(0) };
        assert!(FusionModel::fit(&[bad], &cfg()).unwrap_err().contains("features"));
        assert!(FusionConfig { generator: false, generator_candidates: 3, ..FusionConfig::default() }.validate().is_err());
    }
}
