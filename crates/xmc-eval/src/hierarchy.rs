//! Scores that use the label hierarchy: per-level accuracy and macro-F1 (ancestors derived from the
//! predicted leaf), hierarchical precision/recall/F1 over ancestor sets, and code-prefix accuracy.

use serde::{Deserialize, Serialize};
use xmc_data::LabelSet;

use crate::classification::{Prf, averages};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LevelScore {
    /// 0-based: L0 is the top of the taxonomy.
    pub level: usize,
    /// Records whose true label reaches this level.
    pub records: usize,
    pub accuracy: f64,
    pub macro_f1: f64,
}

/// For each level, the records whose true leaf is at least that deep, compared by their ancestor
/// at that level; a predicted leaf shallower than the level is a miss.
pub fn per_level(labels: &LabelSet, pairs: &[(u32, Option<u32>)]) -> Vec<LevelScore> {
    let depth = labels.max_depth();
    (0..depth)
        .filter_map(|level| {
            let level_pairs: Vec<(String, Option<String>)> = pairs
                .iter()
                .filter_map(|&(t, p)| {
                    let truth = labels.get(t)?.ancestor(level)?;
                    Some((truth, p.and_then(|p| labels.get(p)).and_then(|l| l.ancestor(level))))
                })
                .collect();
            if level_pairs.is_empty() {
                return None;
            }
            let correct = level_pairs.iter().filter(|(t, p)| p.as_ref() == Some(t)).count();
            Some(LevelScore {
                level,
                records: level_pairs.len(),
                accuracy: correct as f64 / level_pairs.len() as f64,
                macro_f1: averages(level_pairs).macro_avg.f1,
            })
        })
        .collect()
}

/// Hierarchical precision, recall and F1 (Kiritchenko et al., as hiclass computes them): each
/// label stands for the set of its ancestors and itself; the overlaps are summed over all records
/// before dividing (micro average).
pub fn hierarchical_prf(labels: &LabelSet, pairs: &[(u32, Option<u32>)]) -> Prf {
    let (mut overlap, mut predicted, mut truth_size) = (0usize, 0usize, 0usize);
    for &(t, p) in pairs {
        let Some(t) = labels.get(t) else { continue };
        truth_size += t.depth();
        if let Some(p) = p.and_then(|p| labels.get(p)) {
            predicted += p.depth();
            overlap += t.levels.iter().zip(&p.levels).take_while(|(a, b)| a == b).count();
        }
    }
    let precision = crate::classification::ratio(overlap as f64, predicted as f64);
    let recall = crate::classification::ratio(overlap as f64, truth_size as f64);
    Prf { precision, recall, f1: crate::classification::ratio(2.0 * precision * recall, precision + recall) }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrefixScore {
    /// Number of leading code symbols compared.
    pub depth: usize,
    /// Records whose true code is at least this long.
    pub records: usize,
    /// Share of them whose predicted code starts with the same `depth` symbols.
    pub accuracy: f64,
}

/// Credit for a correct code prefix: at each depth, how often the predicted code agrees with the
/// true code on its first `depth` symbols. Labels without a code (never seen in training) have an
/// empty code.
pub fn code_prefix(codes: &[Vec<u32>], pairs: &[(u32, Option<u32>)]) -> Vec<PrefixScore> {
    let code = |l: u32| codes.get(l as usize).map(Vec::as_slice).unwrap_or(&[]);
    let max = pairs.iter().map(|&(t, _)| code(t).len()).max().unwrap_or(0);
    (1..=max)
        .map(|depth| {
            let eligible: Vec<_> = pairs.iter().filter(|&&(t, _)| code(t).len() >= depth).collect();
            let hits = eligible
                .iter()
                .filter(|&&&(t, p)| p.is_some_and(|p| code(p).len() >= depth && code(p)[..depth] == code(t)[..depth]))
                .count();
            PrefixScore { depth, records: eligible.len(), accuracy: crate::classification::ratio(hits as f64, eligible.len() as f64) }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> LabelSet {
        let paths: Vec<Vec<String>> = [vec!["A", "B", "C"], vec!["A", "B", "D"], vec!["A", "E"], vec!["F"]]
            .into_iter()
            .map(|p| p.into_iter().map(String::from).collect())
            .collect();
        LabelSet::from_paths(paths.iter().map(Vec::as_slice), 25)
    }

    #[test]
    fn per_level_derives_ancestors() {
        let l = labels();
        let id = |p: &str| l.labels.iter().find(|x| x.path == p).unwrap().id;
        // truth A>B>C predicted A>B>D: right at L0, L1, wrong at L2; truth F predicted A>E: wrong at L0.
        let pairs = [(id("A > B > C"), Some(id("A > B > D"))), (id("F"), Some(id("A > E")))];
        let levels = per_level(&l, &pairs);
        assert_eq!(levels.len(), 3);
        assert_eq!((levels[0].records, levels[0].accuracy), (2, 0.5));
        assert_eq!((levels[1].records, levels[1].accuracy), (1, 1.0));
        assert_eq!((levels[2].records, levels[2].accuracy), (1, 0.0));
        // L0 classes A, F: A P .5 R 1 F .667, F 0 -> macro .333.
        assert!((levels[0].macro_f1 - 1.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn hierarchical_overlap() {
        let l = labels();
        let id = |p: &str| l.labels.iter().find(|x| x.path == p).unwrap().id;
        // {A, AB, ABC} vs {A, AB, ABD}: overlap 2 of 3/3; {A, AE} vs {A, AB, ABC}: overlap 1 of 3 predicted, 2 true.
        let pairs = [(id("A > B > C"), Some(id("A > B > D"))), (id("A > E"), Some(id("A > B > C")))];
        let h = hierarchical_prf(&l, &pairs);
        assert!((h.precision - 3.0 / 6.0).abs() < 1e-12);
        assert!((h.recall - 3.0 / 5.0).abs() < 1e-12);
    }

    #[test]
    fn prefix_credit() {
        let codes = vec![vec![0, 1, 2], vec![0, 1, 3], vec![1, 0]];
        let scores = code_prefix(&codes, &[(0, Some(1)), (2, Some(0)), (1, None)]);
        assert_eq!(scores.iter().map(|s| s.records).collect::<Vec<_>>(), vec![3, 3, 2]);
        assert!((scores[0].accuracy - 1.0 / 3.0).abs() < 1e-12);
        assert!((scores[1].accuracy - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(scores[2].accuracy, 0.0);
    }
}
