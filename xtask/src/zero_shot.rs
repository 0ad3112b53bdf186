//! `cargo xtask bench zero-shot <run>`: labels the tree never saw. A share of the labels is held out,
//! the tree is built again by the run's own tree settings over the other labels' embeddings only
//! (so k-means never saw the held-out ones), then each held-out label is inserted by nearest
//! centroid (as a new taxonomy leaf would be, from its name's embedding); the test records are
//! searched and accuracy is reported for held-out and seen labels separately.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::Args;
use xmc_cluster::ClusterIndex;
use xmc_data::{SplitMix64, Split};

#[derive(Debug, Args)]
pub struct ZeroShotArgs {
    /// A finished cluster-search run (e.g. experiments/cluster_search_amazon-uk).
    run: PathBuf,
    /// Share of the labels (with test records) held out of the tree.
    #[arg(long, default_value_t = 0.1)]
    holdout: f64,
    #[arg(long, default_value_t = 7)]
    seed: u64,
}

pub fn bench_zero_shot(args: ZeroShotArgs) -> Result<ExitCode> {
    let cfg: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(args.run.join("predict/config.json"))?)?;
    let data = xmc_data::PreparedData::load(&args.run.join("data"))?;
    let embeddings = xmc_cluster::LabelEmbeddings::load(&args.run.join("embed"))?;
    let embed_cfg: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(args.run.join("embed/config.json"))?)?;
    let encoder_dir = embed_cfg["encoder_dir"].as_str().unwrap_or("models/all-MiniLM-L6-v2").to_string();
    let beam = cfg["beam_width"].as_u64().or(cfg["beam"].as_u64()).unwrap_or(5) as usize;

    let mut candidates: Vec<u32> = data.labels.labels.iter().filter(|l| l.test_count > 0).map(|l| l.id).collect();
    SplitMix64::new(args.seed).shuffle(&mut candidates);
    let n_out = ((candidates.len() as f64 * args.holdout).round() as usize).max(1);
    let held: Vec<u32> = candidates[..n_out].to_vec();
    if held.len() >= data.labels.len() {
        bail!("nothing would be left in the tree");
    }
    // The tree over the seen labels alone, by the run's tree settings; its label ids mapped back.
    let tree_cfg: xmc_cluster::TreeConfig = serde_json::from_str(&std::fs::read_to_string(args.run.join("tree/config.json"))?)?;
    let held_set: std::collections::HashSet<u32> = held.iter().copied().collect();
    let seen: Vec<u32> = (0..data.labels.len() as u32).filter(|l| !held_set.contains(l)).collect();
    let seen_embeddings = xmc_cluster::LabelEmbeddings {
        kind: embeddings.kind,
        labels: seen.len(),
        dim: embeddings.dim,
        data: seen.iter().flat_map(|&l| embeddings.row(l as usize).iter().copied()).collect(),
    };
    let mut seen_tree = xmc_cluster::build_tree(&seen_embeddings, &tree_cfg)?;
    for node in &mut seen_tree.nodes {
        for child in &mut node.children {
            if let xmc_codes::Child::Label(l) = child {
                *l = seen[*l as usize];
            }
        }
    }
    seen_tree.n_labels = data.labels.len();
    let mut index = ClusterIndex::new(seen_tree, &embeddings);
    // Held-out labels come back as new ids past the end; map them to their real ids.
    let mut new_to_real = std::collections::HashMap::new();
    for &l in &held {
        let (new_id, _code) = index.insert(embeddings.row(l as usize));
        new_to_real.insert(new_id, l);
    }
    let encoder = xmc_model::SentenceEncoder::load(std::path::Path::new(&encoder_dir), &xmc_model::inference_device())?;
    let test: Vec<_> = data.split(Split::Test).collect();
    let texts: Vec<&str> = test.iter().map(|r| r.input.as_str()).collect();
    let queries = encoder.encode(&texts, 64, |_| {})?;
    let (mut held_hit, mut held_n, mut seen_hit, mut seen_n, mut held_top5) = (0, 0, 0, 0, 0);
    for (r, q) in test.iter().zip(&queries) {
        let hits: Vec<u32> = index.search(q, beam, 5).into_iter().map(|(l, _)| *new_to_real.get(&l).unwrap_or(&l)).collect();
        let top1 = hits.first() == Some(&r.label);
        if held_set.contains(&r.label) {
            held_n += 1;
            held_hit += top1 as usize;
            held_top5 += hits.contains(&r.label) as usize;
        } else {
            seen_n += 1;
            seen_hit += top1 as usize;
        }
    }
    println!("| run | labels held out | their test records | zero-shot accuracy (top 1) | zero-shot recall@5 | seen labels' accuracy |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| {} | {} of {} | {held_n} | {:.3} | {:.3} | {:.3} ({seen_n} records) |",
        args.run.display(),
        held.len(),
        data.labels.len(),
        held_hit as f64 / held_n.max(1) as f64,
        held_top5 as f64 / held_n.max(1) as f64,
        seen_hit as f64 / seen_n.max(1) as f64
    );
    Ok(ExitCode::SUCCESS)
}
