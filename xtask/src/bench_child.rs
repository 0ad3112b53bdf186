//! What the benches share: running a child process for its wall time and peak memory, and the
//! synthetic datasets over the Google taxonomy they run on.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

/// Wall seconds and peak resident memory (bytes) of one child run.
pub fn measure(mut command: Command) -> Result<(f64, u64)> {
    let started = Instant::now();
    let mut child = command.spawn().context("starting the bench child")?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: zeroed rusage is a valid value; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let seconds = started.elapsed().as_secs_f64();
    if waited != pid {
        let _ = child.kill();
        bail!("wait4 failed: {}", std::io::Error::last_os_error());
    }
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        bail!("the bench child failed (status {status})");
    }
    Ok((seconds, usage.ru_maxrss as u64 * 1024))
}

pub fn default_taxonomy(given: Option<PathBuf>) -> Result<PathBuf> {
    Ok(match given {
        Some(t) => t,
        None => xmc_data::descriptor::data_dir(Some(Path::new("datasets/x.toml")))?.join("google-taxonomy/taxonomy-with-ids.en-US.txt"),
    })
}

/// The synthetic CSV (written once) and its descriptor, under the bench folder.
pub fn synthetic_dataset(dir: &Path, records: usize, labels: usize, taxonomy: Option<PathBuf>) -> Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(dir)?;
    let taxonomy = default_taxonomy(taxonomy)?;
    let csv = dir.join(format!("synthetic-{records}-{labels}.csv"));
    if !csv.exists() {
        eprintln!("writing {records} synthetic records to {}", csv.display());
        let cfg = xmc_data::synth::SynthConfig { records, labels, ..Default::default() };
        let partial = csv.with_extension("csv.partial");
        xmc_data::synth::write_synthetic_csv(&taxonomy, &partial, &cfg)?;
        std::fs::rename(&partial, &csv)?;
    }
    let descriptor = dir.join(format!("synthetic-{records}-{labels}.toml"));
    let csv_abs = std::fs::canonicalize(&csv)?;
    std::fs::write(
        &descriptor,
        format!(
            "name = \"synthetic\"\npath = {:?}\n[columns]\nid = \"id\"\ntitle = \"title\"\nstore = \"store\"\nmanufacturer = \"manufacturer\"\nprice = \"price\"\ncategory_path = \"category_path\"\n",
            csv_abs.display().to_string()
        ),
    )?;
    Ok((csv, descriptor))
}
