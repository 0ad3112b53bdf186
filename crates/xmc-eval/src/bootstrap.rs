//! Percentile bootstrap: resample the records with replacement and take the 2.5th and 97.5th
//! percentiles of a statistic.

use xmc_data::SplitMix64;

/// The 95% interval of `statistic` over `resamples` bootstrap samples of `n` records; the statistic
/// gets the indices of one sample.
pub fn interval(n: usize, resamples: usize, seed: u64, mut statistic: impl FnMut(&[usize]) -> f64) -> Option<[f64; 2]> {
    if n == 0 || resamples < 2 {
        return None;
    }
    let mut rng = SplitMix64::new(seed);
    let mut sample = vec![0usize; n];
    let mut values: Vec<f64> = (0..resamples)
        .map(|_| {
            sample.iter_mut().for_each(|s| *s = rng.below(n));
            statistic(&sample)
        })
        .collect();
    values.sort_by(f64::total_cmp);
    Some([percentile(&values, 0.025), percentile(&values, 0.975)])
}

/// Linear interpolation between order statistics (numpy's default).
fn percentile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_brackets_the_mean_and_narrows_with_n() {
        fn mean(values: &[f64]) -> impl FnMut(&[usize]) -> f64 + '_ {
            move |idx| idx.iter().map(|&i| values[i]).sum::<f64>() / idx.len() as f64
        }
        let small: Vec<f64> = (0..50).map(|i| (i % 2) as f64).collect();
        let large: Vec<f64> = (0..5000).map(|i| (i % 2) as f64).collect();
        let [lo, hi] = interval(small.len(), 500, 1, mean(&small)).unwrap();
        assert!(lo < 0.5 && 0.5 < hi, "{lo} {hi}");
        let [lo2, hi2] = interval(large.len(), 500, 1, mean(&large)).unwrap();
        assert!(lo2 < 0.5 && 0.5 < hi2);
        assert!(hi2 - lo2 < (hi - lo) / 4.0, "a 100x larger sample gives a ~10x narrower interval");
        assert_eq!(interval(0, 100, 1, |_| 0.0), None);
    }

    #[test]
    fn percentile_interpolates() {
        assert_eq!(percentile(&[0.0, 10.0], 0.25), 2.5);
        assert_eq!(percentile(&[1.0, 2.0, 3.0], 0.5), 2.0);
    }
}
