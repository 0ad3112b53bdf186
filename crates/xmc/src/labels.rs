//! `xmc labels add`: new taxonomy leaves for a trained model without retraining, written as a new
//! model folder (the old one is left as it is).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub enum LabelsCommand {
    /// Add leaves to a model's taxonomy, predictable at once: each is embedded from its name and
    /// placed in the label tree by nearest centroid. Cluster-search models only (the other
    /// methods learn a label from its records; they refuse with the reason).
    Add(AddArgs),
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// The trained model folder.
    #[arg(long)]
    pub model: PathBuf,
    /// The new labels: a text file, one path per line, levels separated by ` > `.
    #[arg(long)]
    pub labels: PathBuf,
    /// The new model folder to write (must not exist); it appears only when complete.
    #[arg(long)]
    pub output: PathBuf,
}

pub fn run(command: LabelsCommand) -> Result<ExitCode> {
    match command {
        LabelsCommand::Add(args) => add(&args),
    }
}

fn add(args: &AddArgs) -> Result<ExitCode> {
    if args.output.exists() {
        bail!("{} already exists: name a new model folder", args.output.display());
    }
    let mut predictor = xmc_methods::Predictor::load(&args.model)?;
    let paths = xmc_cluster::read_new_labels(&args.labels, predictor.labels())?;
    if paths.is_empty() {
        bail!("{}: no labels in the file (one path per line, levels separated by ` > `)", args.labels.display());
    }
    let added = predictor.add_labels(&paths).with_context(|| format!("adding labels to {}", args.model.display()))?;
    let parent = args.output.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let work = tempfile::Builder::new().prefix(".xmc-labels-").tempdir_in(parent).with_context(|| format!("a work folder in {}", parent.display()))?;
    xmc_methods::copy_dir(&args.model, work.path())?;
    predictor.save_labels(work.path())?;
    let work = work.keep();
    std::fs::rename(&work, &args.output).with_context(|| format!("moving the model folder to {}", args.output.display()))?;
    for a in &added {
        let code: Vec<String> = a.code.iter().map(u32::to_string).collect();
        eprintln!("  {} -> code {}", a.path, code.join("."));
    }
    eprintln!("added {} labels ({} in all); wrote the model folder {}", added.len(), predictor.labels().len(), args.output.display());
    Ok(ExitCode::SUCCESS)
}
