//! Value parsers for numeric flags: each flag has a range, given in its `--help`, and a value
//! outside it is refused by the parser with the flag's name and the range, before any work is
//! sized by it.

use clap::builder::RangedU64ValueParser;

/// A whole number in `min..=max`.
pub fn count(min: usize, max: usize) -> RangedU64ValueParser<usize> {
    RangedU64ValueParser::<usize>::new().range(min as u64..=max as u64)
}

/// A number of seconds (or milliseconds) in `min..=max`, finite; `min` itself is allowed only
/// when `min_inclusive`.
#[derive(Debug, Clone, Copy)]
pub struct Span {
    pub min: f64,
    pub max: f64,
    pub min_inclusive: bool,
}

impl Span {
    /// Strictly more than 0, at most `max`.
    pub const fn positive(max: f64) -> Self {
        Span { min: 0.0, max, min_inclusive: false }
    }

    /// 0 or more, at most `max`.
    pub const fn non_negative(max: f64) -> Self {
        Span { min: 0.0, max, min_inclusive: true }
    }
}

impl clap::builder::TypedValueParser for Span {
    type Value = f64;

    fn parse_ref(&self, cmd: &clap::Command, arg: Option<&clap::Arg>, value: &std::ffi::OsStr) -> Result<f64, clap::Error> {
        let name = arg.map(|a| a.to_string()).unwrap_or_else(|| "the value".into());
        let text = value.to_string_lossy();
        let fail = |why: String| clap::Error::raw(clap::error::ErrorKind::ValueValidation, format!("invalid value '{text}' for '{name}': {why}\n")).with_cmd(cmd);
        let v: f64 = text.trim().parse().map_err(|_| fail("not a number".into()))?;
        let above_min = if self.min_inclusive { v >= self.min } else { v > self.min };
        if !(v.is_finite() && above_min && v <= self.max) {
            let low = if self.min_inclusive { "at least" } else { "more than" };
            return Err(fail(format!("must be {low} {} and at most {}", self.min, self.max)));
        }
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Flags {
        #[arg(long, value_parser = count(1, 10))]
        n: Option<usize>,
        #[arg(long, value_parser = Span::positive(60.0))]
        secs: Option<f64>,
    }

    #[test]
    fn values_outside_the_range_are_refused_with_the_flag_and_range() {
        let ok = Flags::try_parse_from(["x", "--n", "10", "--secs", "0.5"]).unwrap();
        assert_eq!((ok.n, ok.secs), (Some(10), Some(0.5)));
        for v in ["0", "11", "1000000000000", "-1"] {
            let err = Flags::try_parse_from(["x", &format!("--n={v}")]).unwrap_err().to_string();
            assert!(err.contains("--n") && err.contains(v), "{err}");
        }
        for v in ["0", "-1", "1e20", "NaN", "inf", "soon"] {
            let err = Flags::try_parse_from(["x", &format!("--secs={v}")]).unwrap_err().to_string();
            assert!(err.contains("--secs") && err.contains(v), "{v}: {err}");
        }
    }
}
