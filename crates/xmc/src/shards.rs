//! Sharded, resumable batch prediction: `xmc predict --input DIR_OR_GLOB --output DIR`. One output
//! shard per input shard, written under a temporary name and renamed when complete, so a shard's
//! output exists only when it is whole and on disk; beside it, `.<name>.made-by.json` records
//! what made it (the model, the descriptor, the options that change predictions, the input
//! shard's content hash). A rerun skips the shards whose output was made by the same (a killed
//! job restarts where it stopped) and redoes the others, and `--shard i/n` splits the shards
//! among processes without a coordinator.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use xmc_methods::output::OutputFormat;

/// Which of the shards this process takes: those whose position (in path order) is `index`
/// modulo `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardSlice {
    pub index: usize,
    pub count: usize,
}

impl std::str::FromStr for ShardSlice {
    type Err = String;

    /// `i/n` with `0 <= i < n`.
    fn from_str(text: &str) -> Result<Self, String> {
        let (i, n) = text.split_once('/').ok_or_else(|| format!("`{text}`: expected i/n, e.g. 0/4"))?;
        let index: usize = i.trim().parse().map_err(|_| format!("`{text}`: `{i}` is not a number"))?;
        let count: usize = n.trim().parse().map_err(|_| format!("`{text}`: `{n}` is not a number"))?;
        if count == 0 || index >= count {
            return Err(format!("`{text}`: need 0 <= i < n"));
        }
        Ok(ShardSlice { index, count })
    }
}

/// Whether `--input` names several shards: a folder, or a pattern with `*`, `?` or `[`.
pub fn is_sharded(input: &Path) -> bool {
    input.is_dir() || input.to_string_lossy().contains(['*', '?', '['])
}

/// The input shards, in path order: a folder's files with a data extension (csv, jsonl, ndjson,
/// json, parquet, pq), or the files a pattern matches.
pub fn input_shards(input: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = if input.is_dir() {
        std::fs::read_dir(input)
            .with_context(|| format!("listing {}", input.display()))?
            .map(|e| e.map(|e| e.path()))
            .collect::<std::io::Result<Vec<_>>>()?
            .into_iter()
            .filter(|p| p.is_file() && xmc_data::FileFormat::from_path(p).is_some())
            .collect()
    } else {
        let pattern = input.to_string_lossy();
        glob::glob(&pattern)
            .with_context(|| format!("`{pattern}` is not a valid pattern"))?
            .collect::<std::result::Result<Vec<_>, _>>()
            .with_context(|| format!("reading the files `{pattern}` matches"))?
            .into_iter()
            .filter(|p| p.is_file())
            .collect()
    };
    files.sort();
    if files.is_empty() {
        bail!("{}: no input shards (CSV, JSON lines or Parquet files) found", input.display());
    }
    Ok(files)
}

/// The output file of one input shard: its stem, the output format's extension, in `out_dir`.
/// Two inputs with the same stem (a.csv, a.parquet) would collide, and are refused.
pub fn output_of(shard: &Path, out_dir: &Path, format: OutputFormat) -> PathBuf {
    let stem = shard.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let ext = match format {
        OutputFormat::Csv => "csv",
        OutputFormat::Jsonl => "jsonl",
        OutputFormat::Parquet => "parquet",
    };
    out_dir.join(format!("{stem}.{ext}"))
}

/// What a run's outputs depend on besides each input shard: the model folder's hash, the
/// dataset descriptor's, and the options that change predictions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSettings {
    pub model: String,
    pub dataset: String,
    pub top_k: usize,
    pub beam: usize,
    pub skip_bad_rows: bool,
    pub format: OutputFormat,
}

/// What made one output shard: the run's settings and the input shard's content (its SHA-256,
/// so that a changed input is predicted again and an identical copy is not).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MadeBy {
    pub settings: RunSettings,
    pub input_sha256: String,
}

impl MadeBy {
    pub fn of(input: &Path, settings: &RunSettings) -> Result<Self> {
        Ok(MadeBy { settings: settings.clone(), input_sha256: xmc_pipeline::fingerprint::file_sha256(input)? })
    }

    /// Where the record of `output` lives: `.<name>.made-by.json` beside it.
    pub fn path_of(output: &Path) -> PathBuf {
        let name = output.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        output.with_file_name(format!(".{name}.made-by.json"))
    }

    /// The record beside `output`, if there is a readable one.
    pub fn read(output: &Path) -> Option<MadeBy> {
        serde_json::from_slice(&std::fs::read(Self::path_of(output)).ok()?).ok()
    }

    /// Writes the record beside `output` durably (a temporary file, flushed, renamed, the folder
    /// flushed), after the output itself is in place.
    pub fn write(&self, output: &Path) -> Result<()> {
        let path = Self::path_of(output);
        let dir = path.parent().unwrap_or(Path::new("."));
        let tmp = tempfile::Builder::new().prefix(".made-by.").suffix(".partial").tempfile_in(dir)?;
        serde_json::to_writer_pretty(tmp.as_file(), self)?;
        tmp.as_file().sync_all().with_context(|| format!("flushing {}", path.display()))?;
        tmp.persist(&path).with_context(|| format!("writing {}", path.display()))?;
        xmc_methods::output::sync_parent(&path)
    }
}

/// Where a shard stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardState {
    /// No output yet.
    Todo,
    /// An output made by this model with these options from this input: skipped.
    Done,
    /// An output made by something else (another model, other options, a changed input, or a
    /// version that did not record it): predicted again.
    Stale,
}

/// One shard's plan: its input, its output, and where it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardPlan {
    pub input: PathBuf,
    pub output: PathBuf,
    pub state: ShardState,
    pub made_by: MadeBy,
}

/// The shards this process takes, with their outputs and whether each was made by `settings`.
pub fn plan(input: &Path, out_dir: &Path, format: OutputFormat, slice: Option<ShardSlice>, settings: &RunSettings) -> Result<Vec<ShardPlan>> {
    let shards = input_shards(input)?;
    let mut seen = std::collections::HashMap::new();
    for shard in &shards {
        let out = output_of(shard, out_dir, format);
        if let Some(other) = seen.insert(out.clone(), shard.clone()) {
            bail!("{} and {} would both write {}: rename one", other.display(), shard.display(), out.display());
        }
    }
    let slice = slice.unwrap_or(ShardSlice { index: 0, count: 1 });
    shards
        .into_iter()
        .enumerate()
        .filter(|(i, _)| i % slice.count == slice.index)
        .map(|(_, input)| {
            let output = output_of(&input, out_dir, format);
            let made_by = MadeBy::of(&input, settings)?;
            let state = match (output.is_file(), MadeBy::read(&output)) {
                (false, _) => ShardState::Todo,
                (true, Some(recorded)) if recorded == made_by => ShardState::Done,
                (true, _) => ShardState::Stale,
            };
            Ok(ShardPlan { input, output, state, made_by })
        })
        .collect()
}

/// Removes the temporary files a killed run left for `output` (`.<name>.*.partial` beside it).
/// Only the process that takes a shard calls this for it, so no live writer's file is removed.
pub fn remove_stale_partials(output: &Path) -> Result<()> {
    let (Some(dir), Some(name)) = (output.parent(), output.file_name()) else { return Ok(()) };
    let prefix = format!(".{}.", name.to_string_lossy());
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let entry = entry?;
        let file = entry.file_name().to_string_lossy().into_owned();
        if file.starts_with(&prefix) && file.ends_with(".partial") {
            std::fs::remove_file(entry.path()).with_context(|| format!("removing {}", entry.path().display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(top_k: usize) -> RunSettings {
        RunSettings { model: "m1".into(), dataset: "d1".into(), top_k, beam: 5, skip_bad_rows: false, format: OutputFormat::Parquet }
    }

    #[test]
    fn shards_are_listed_in_order_split_by_slice_and_skipped_only_when_made_by_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in");
        std::fs::create_dir(&input).unwrap();
        for name in ["b.csv", "a.csv", "c.parquet", "notes.txt", "d.jsonl"] {
            std::fs::write(input.join(name), "x").unwrap();
        }
        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        let settings = settings(5);
        // b's output was made by these settings; c's by a run with another top_k; d's by a
        // version that recorded nothing.
        for (name, input_name, made_with) in [("b.parquet", "b.csv", Some(settings.clone())), ("c.parquet", "c.parquet", Some(self::settings(1))), ("d.parquet", "d.jsonl", None)] {
            std::fs::write(out.join(name), "done").unwrap();
            if let Some(made_with) = made_with {
                MadeBy::of(&input.join(input_name), &made_with).unwrap().write(&out.join(name)).unwrap();
            }
        }
        let all = plan(&input, &out, OutputFormat::Parquet, None, &settings).unwrap();
        let names: Vec<_> = all.iter().map(|p| p.input.file_name().unwrap().to_str().unwrap()).collect();
        assert_eq!(names, ["a.csv", "b.csv", "c.parquet", "d.jsonl"]);
        let states: Vec<ShardState> = all.iter().map(|p| p.state).collect();
        assert_eq!(states, [ShardState::Todo, ShardState::Done, ShardState::Stale, ShardState::Stale]);
        // A changed input shard is predicted again.
        std::fs::write(input.join("b.csv"), "x,y").unwrap();
        assert_eq!(plan(&input, &out, OutputFormat::Parquet, None, &settings).unwrap()[1].state, ShardState::Stale);
        let half: ShardSlice = "1/2".parse().unwrap();
        let second = plan(&input, &out, OutputFormat::Parquet, Some(half), &settings).unwrap();
        assert_eq!(second.iter().map(|p| p.input.file_name().unwrap().to_str().unwrap()).collect::<Vec<_>>(), ["b.csv", "d.jsonl"]);
        // A pattern picks the same files.
        let by_glob = plan(&input.join("*.csv"), &out, OutputFormat::Parquet, None, &settings).unwrap();
        assert_eq!(by_glob.len(), 2);
        // Two shards that would write one output are refused.
        std::fs::write(input.join("a.parquet"), "x").unwrap();
        assert!(plan(&input, &out, OutputFormat::Parquet, None, &settings).unwrap_err().to_string().contains("would both write"));
    }

    #[test]
    fn stale_partials_of_a_shard_are_removed_and_others_kept() {
        let dir = tempfile::tempdir().unwrap();
        for name in [".a.parquet.x1.partial", ".b.parquet.x2.partial", "a.parquet.keep"] {
            std::fs::write(dir.path().join(name), "x").unwrap();
        }
        remove_stale_partials(&dir.path().join("a.parquet")).unwrap();
        let mut left: Vec<String> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        left.sort();
        assert_eq!(left, [".b.parquet.x2.partial", "a.parquet.keep"]);
    }

    #[test]
    fn shard_slices_parse_and_refuse_nonsense() {
        assert_eq!("0/4".parse::<ShardSlice>().unwrap(), ShardSlice { index: 0, count: 4 });
        for bad in ["4/4", "1/0", "a/2", "3"] {
            assert!(bad.parse::<ShardSlice>().is_err(), "{bad}");
        }
    }
}
