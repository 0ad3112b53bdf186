//! The fused method (`method = "fused"`): candidates from the XR ranker's top k and the T5
//! generator's beam, each scored by the ranker (path score), the generator (teacher-forced
//! log-probability of its code), the sentence encoder (similarity of record and label path) and
//! the label's training frequency, combined by a conditional logit fitted on the validation
//! split only ([`fit_fusion`]). The model folder is an XR folder plus `generator/` (a T5 folder),
//! `encoder/` and `fusion.json`.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde_json::json;
use xmc_data::{InputTemplate, LabelSet, PreparedData, Split};
use xmc_model::SentenceEncoder;
use xmc_ranker::{CandidateGroup, FusionConfig, FusionFeature, FusionModel, Outcome, Skip, XrModel};
use xmc_train::TrainedModel;

use crate::config::ExperimentConfig;
use crate::figures::TrainFigures;
use crate::method::{Method, Model, Pools, PredictSettings, TrainContext, TrainPlan, Upstream};
use crate::recipes;

pub const FUSION_FILE: &str = "fusion.json";
pub const GENERATOR_DIR: &str = "generator";
/// Records whose candidates are built together.
const CHUNK: usize = 256;

/// The fused method.
pub struct Fused;

impl Method for Fused {
    fn name(&self) -> &'static str {
        "fused"
    }

    fn folder_file(&self) -> &'static str {
        FUSION_FILE
    }

    fn load(&self, dir: &Path) -> Result<Box<dyn Model>> {
        Ok(Box::new(FusedModel::load(dir)?))
    }

    fn validate(&self, cfg: &ExperimentConfig) -> Result<()> {
        if cfg.fusion.generator && cfg.model.mode != xmc_model::TargetMode::Hierarchical {
            bail!("the fused method scores candidates by their codes: set `model.mode = \"hierarchical\"`");
        }
        Ok(())
    }

    fn train_plan(&self, cfg: &ExperimentConfig) -> Result<TrainPlan> {
        let fusion = &cfg.fusion;
        let needs_encoder = needs_encoder(cfg);
        let mut upstream = vec![Upstream::Data, Upstream::Tree];
        if fusion.generator {
            upstream.push(Upstream::Codes);
        }
        let template = recipes::resolved_template(cfg)?;
        Ok(TrainPlan {
            upstream,
            files: crate::xr::encoder_input(cfg, needs_encoder),
            config: json!({
                "method": "fused",
                "ranker": cfg.ranker,
                "fusion": fusion,
                "template": template,
                "encoder_dir": needs_encoder.then_some(&cfg.embed.encoder_dir),
                "contrastive": needs_encoder.then_some(&cfg.contrastive),
                "model": fusion.generator.then_some(&cfg.model),
                "train": fusion.generator.then_some(&cfg.train),
            }),
        })
    }

    /// The ranker (as in `xr`), the T5 generator over the codes (into `generator/`), then the
    /// combination fitted on the validation split (`fusion.json`).
    fn train(&self, ctx: &TrainContext) -> Result<TrainFigures> {
        let (cfg, out) = (ctx.cfg, ctx.out);
        let fusion = &cfg.fusion;
        let data = PreparedData::load(&ctx.dir(Upstream::Data))?;
        let template = recipes::resolved_template(cfg)?;
        let ranker = crate::xr::train_ranker_into(ctx, &data, &template, needs_encoder(cfg), false)?;
        let mut report = ranker.report;
        let started = Instant::now();
        if fusion.generator {
            self.validate(cfg)?;
            let codes = xmc_codes::LabelCodes::load(&ctx.dir(Upstream::Codes))?.codes;
            let outcome = recipes::train_generator(cfg, &data, Some(&codes), &template, &out.join(GENERATOR_DIR), ctx.resume)?;
            eprintln!("train (generator): best validation accuracy {:.4} at epoch {} of {}", outcome.best_valid_accuracy, outcome.best_epoch, outcome.epochs);
            report.generator_valid_accuracy = Some(outcome.best_valid_accuracy);
            report.generator_seconds = Some(outcome.train_seconds);
        }
        let parts = FusedParts::load(out, fusion)?;
        drop(ranker.model);
        let (model, cands, truths) = fit_fusion(&parts, fusion, &data)?;
        std::fs::write(out.join(FUSION_FILE), serde_json::to_string_pretty(&model)? + "\n")?;
        let top = |f: &dyn Fn(&Candidates) -> Vec<u32>| cands.iter().map(f).collect::<Vec<_>>();
        let fused = recipes::valid_metrics(&data, &top(&|c| rank_cascaded(&model, c, 5).into_iter().map(|(l, _)| l).collect()), &truths);
        let recall = cands.iter().zip(&truths).filter(|(c, t)| c.labels.contains(t)).count() as f64 / truths.len().max(1) as f64;
        eprintln!(
            "train (fusion): weights {:?} over {:?}{}; validation: candidates hold the truth for {recall:.4}; cross-fitted accuracy {:.4} \
             vs the ranker's score alone {:.4}; fused accuracy {:.4} (fitted on these records), macro-F1 {:.4}, tail {}; {:.1} s",
            model.weights,
            model.features,
            if model.ranker_only { " (the ranker's score alone: the combination did not beat it on held-out halves)" } else { "" },
            model.cross_fitted_accuracy.unwrap_or(f64::NAN),
            model.ranker_accuracy.unwrap_or(f64::NAN),
            fused.accuracy,
            fused.leaf.macro_avg.f1,
            fused.tail_accuracy.map_or("-".into(), |a| format!("{a:.4}")),
            started.elapsed().as_secs_f64()
        );
        match model.skip {
            Some(skip) => eprintln!(
                "train (fusion): the generator is skipped where the ranker's {:?} is at least {:.4}: {:.1}% of validation records",
                skip.gate,
                skip.threshold,
                100.0 * skip.skipped
            ),
            None => eprintln!("train (fusion): the generator is run on every record"),
        }
        report.fused_valid_accuracy_in_sample = Some(fused.accuracy);
        report.candidate_recall = Some(recall);
        report.fusion_cross_fitted_accuracy = model.cross_fitted_accuracy;
        report.fusion_ranker_only = Some(model.ranker_only);
        report.train_seconds = Some(report.train_seconds.unwrap_or(0.0) + started.elapsed().as_secs_f64());
        Ok(report)
    }

    fn predict_settings(&self, cfg: &ExperimentConfig) -> PredictSettings {
        // The candidates are the fusion's own; the beam is the ranker's.
        PredictSettings { beam: cfg.ranker.beam, top_k: cfg.ranker.top_k }
    }

    fn speed_target(&self) -> f64 {
        300.0
    }

    fn describe(&self, cfg: &ExperimentConfig) -> Result<String> {
        Ok(format!(
            "fused: candidates from the XR ranker's top {} (k = {} tree, {} features) and the T5 ({}) beam's top {}, rescored by \
             a conditional logit over ranker score{}{}, label frequency, fitted on the validation split",
            cfg.fusion.ranker_candidates,
            cfg.tree.branching,
            recipes::name_of(cfg.ranker.features)?,
            cfg.model.preset,
            cfg.fusion.generator_candidates,
            if cfg.fusion.generator { ", generator log-probability" } else { "" },
            if cfg.fusion.similarity { ", record-label similarity" } else { "" },
        ))
    }
}

/// The ranker's dense block or the similarity feature needs the sentence encoder.
fn needs_encoder(cfg: &ExperimentConfig) -> bool {
    cfg.ranker.features.uses_dense() || cfg.fusion.similarity
}

/// The models whose scores are fused.
pub struct FusedParts {
    pub xr: XrModel,
    /// The sentence encoder (the ranker's dense block and the similarity feature).
    pub encoder: Option<SentenceEncoder>,
    /// Each label's path embedding under `encoder`.
    pub label_vectors: Option<Vec<Vec<f32>>>,
    pub generator: Option<TrainedModel>,
}

/// One record's candidates, their raw features (in [`FusionConfig::features`] order), and what
/// each component alone would have answered. A record the cascade skips ([`Skip`]) has the
/// ranker's answer only: no rows, no generator hypotheses.
#[derive(Debug, Clone)]
pub struct Candidates {
    pub labels: Vec<u32>,
    pub rows: Vec<Vec<f64>>,
    pub ranker_top: Vec<(u32, f32)>,
    pub generator_top: Vec<(u32, f32)>,
    /// Whether the generator and the encoder were run (false: the ranker's order stands).
    pub consulted: bool,
}

impl FusedParts {
    /// Loads the parts of a fused model folder (without `fusion.json`, so that the fit can use
    /// them before the fusion exists).
    pub fn load(dir: &Path, cfg: &FusionConfig) -> Result<Self> {
        let xr = XrModel::load(dir)?;
        let enc_dir = dir.join(xmc_ranker::ENCODER_DIR);
        let needs_encoder = xr.meta.layout.kind.uses_dense() || cfg.similarity;
        let encoder = if needs_encoder {
            Some(SentenceEncoder::load(&enc_dir, &xmc_model::inference_device()).and_then(|e| e.with_fast_path()).with_context(|| format!("{}: the sentence encoder", dir.display()))?)
        } else {
            None
        };
        let label_vectors = match (&encoder, cfg.similarity) {
            (Some(e), true) => {
                let texts = xmc_cluster::label_texts(&xr.labels, xmc_cluster::LabelText::Path);
                let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                Some(e.encode(&refs, crate::xr::ENCODE_BATCH, |_| {})?)
            }
            _ => None,
        };
        let generator = if cfg.generator {
            let g = dir.join(GENERATOR_DIR);
            Some(crate::generative::load_generator(&g, dir)?)
        } else {
            None
        };
        if let Some(g) = &generator {
            if g.labels.labels.iter().map(|l| &l.path).ne(xr.labels.labels.iter().map(|l| &l.path)) {
                bail!("{}: the generator and the ranker were trained on different labels", dir.display());
            }
        }
        Ok(FusedParts { xr, encoder, label_vectors, generator })
    }

    /// The candidates of each rendered input, with their raw features; with a cascade (`skip`),
    /// the records it skips keep the ranker's answer and cost neither the generator nor the
    /// encoder (unless the ranker's own dense block needs it).
    pub fn candidates(&self, cfg: &FusionConfig, texts: &[&str], skip: Option<&Skip>) -> Result<Vec<Candidates>> {
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(CHUNK) {
            out.extend(self.candidates_of_chunk(cfg, chunk, skip)?);
        }
        Ok(out)
    }

    fn candidates_of_chunk(&self, cfg: &FusionConfig, texts: &[&str], skip: Option<&Skip>) -> Result<Vec<Candidates>> {
        let encode = |texts: &[&str]| -> Result<Option<Vec<Vec<f32>>>> { Ok(self.encoder.as_ref().map(|e| e.encode(texts, crate::xr::ENCODE_BATCH, |_| {})).transpose()?) };
        let ranker_uses_dense = self.xr.meta.layout.kind.uses_dense();
        let all_dense = if ranker_uses_dense { encode(texts)? } else { None };
        let x = self.xr.features(texts, all_dense.as_deref())?;
        let ranker_top = self.xr.predict(&x, None, cfg.ranker_candidates);
        // The records the generator and the similarity are computed for.
        let asked: Vec<usize> = (0..texts.len()).filter(|&i| skip.is_none_or(|s| !s.skips(&ranker_top[i]))).collect();
        let asked_texts: Vec<&str> = asked.iter().map(|&i| texts[i]).collect();
        let dense = match all_dense {
            Some(d) => Some(asked.iter().map(|&i| d[i].clone()).collect::<Vec<_>>()),
            None if cfg.similarity => encode(&asked_texts)?,
            None => None,
        };
        let generator_top: Vec<Vec<(u32, f32)>> = match (&self.generator, cfg.generator_candidates) {
            (Some(g), k) if k > 0 => {
                let beam = k.max(g.meta.model.beam_width);
                crate::generative::predict_texts(g, &asked_texts, beam, k, |_| {})?
                    .into_iter()
                    .map(|h| h.into_iter().map(|h| (h.label, h.score)).collect())
                    .collect()
            }
            _ => vec![Vec::new(); asked.len()],
        };
        let mut labels: Vec<Vec<u32>> = Vec::with_capacity(asked.len());
        for (r, g) in asked.iter().map(|&i| &ranker_top[i]).zip(&generator_top) {
            let mut l: Vec<u32> = r.iter().map(|&(l, _)| l).collect();
            for &(gl, _) in g {
                if !l.contains(&gl) {
                    l.push(gl);
                }
            }
            labels.push(l);
        }
        let generator_scores = match &self.generator {
            Some(g) if !asked.is_empty() => Some(xmc_train::score_candidates(&g.model, &g.task, &asked_texts, &labels, g.meta.train.max_input_tokens)?),
            _ => None,
        };
        let features = cfg.features();
        let mut out: Vec<Candidates> = ranker_top
            .iter()
            .map(|r| Candidates { labels: r.iter().map(|c| c.0).collect(), rows: Vec::new(), ranker_top: r.clone(), generator_top: Vec::new(), consulted: false })
            .collect();
        for (i, &record) in asked.iter().enumerate() {
            let ranker_scores = self.xr.label_scores(x.row(record), &labels[i]);
            let rows = labels[i]
                .iter()
                .enumerate()
                .map(|(c, &l)| {
                    features
                        .iter()
                        .map(|f| match f {
                            FusionFeature::RankerScore => (ranker_scores[c].max(1e-12) as f64).ln(),
                            FusionFeature::GeneratorLogProb => generator_scores.as_ref().map_or(0.0, |s| s[i][c] as f64),
                            FusionFeature::Similarity => match (&dense, &self.label_vectors) {
                                (Some(d), Some(v)) => d[i].iter().zip(&v[l as usize]).map(|(a, b)| (a * b) as f64).sum(),
                                _ => 0.0,
                            },
                            FusionFeature::LabelPrior => (1.0 + self.xr.labels.get(l).map_or(0, |l| l.train_count) as f64).ln(),
                        })
                        .collect()
                })
                .collect();
            out[record] = Candidates { labels: labels[i].clone(), rows, ranker_top: ranker_top[record].clone(), generator_top: generator_top[i].clone(), consulted: true };
        }
        Ok(out)
    }
}

/// Fits the fusion on the validation split of `data`, and on nothing else: the test split is
/// not read; then the cascade ([`Skip::fit`]): the records on which the ranker is sure enough
/// that keeping its order never costs a validation hit against fusing. Returns the model and
/// the validation records' candidates (all of them fused).
pub fn fit_fusion(parts: &FusedParts, cfg: &FusionConfig, data: &PreparedData) -> Result<(FusionModel, Vec<Candidates>, Vec<u32>)> {
    let (texts, truths): (Vec<&str>, Vec<u32>) = data.split(Split::Valid).map(|r| (r.input.as_str(), r.label)).unzip();
    if texts.is_empty() {
        bail!("the fused method fits its combination on the validation split, which is empty");
    }
    let cands = parts.candidates(cfg, &texts, None)?;
    let groups: Vec<CandidateGroup> = cands
        .iter()
        .zip(&truths)
        .map(|(c, t)| CandidateGroup { rows: c.rows.clone(), truth: c.labels.iter().position(|l| l == t) })
        .collect();
    let mut model = FusionModel::fit_guarded(&groups, cfg).map_err(|e| anyhow::anyhow!("fitting the fusion: {e}"))?;
    let outcomes: Vec<Outcome> = cands
        .iter()
        .zip(&truths)
        .map(|(c, &t)| {
            let top = |ranked: &[(u32, f32)]| ranked.first().is_some_and(|r| r.0 == t);
            Outcome { ranker_right: top(&c.ranker_top), consulted_right: top(&rank_with(&model, c, 1)), tail: data.labels.get(t).is_some_and(|l| l.tail) }
        })
        .collect();
    let ranker_tops: Vec<Vec<(u32, f32)>> = cands.iter().map(|c| c.ranker_top.clone()).collect();
    model.skip = Skip::fit(&ranker_tops, &outcomes);
    Ok((model, cands, truths))
}

/// A loaded fused model folder.
pub struct FusedModel {
    pub parts: FusedParts,
    pub fusion: FusionModel,
}

impl FusedModel {
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(FUSION_FILE);
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let fusion: FusionModel = serde_json::from_str(&text).with_context(|| format!("{}: not a fusion file", path.display()))?;
        if fusion.features != fusion.config.features() || fusion.weights.len() != fusion.features.len() {
            bail!("{}: its weights do not match its features", path.display());
        }
        Ok(FusedModel { parts: FusedParts::load(dir, &fusion.config)?, fusion })
    }

    /// Candidates ranked by the fused score, with a softmax over each record's candidates.
    pub fn rank(&self, candidates: &Candidates, top_k: usize) -> Vec<(u32, f32)> {
        rank_with(&self.fusion, candidates, top_k)
    }

    pub fn predict_texts(&self, texts: &[&str], top_k: usize, mut on_batch: impl FnMut(usize)) -> Result<Vec<Vec<(u32, f32)>>> {
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(CHUNK) {
            out.extend(self.parts.candidates(&self.fusion.config, chunk, self.fusion.skip.as_ref())?.iter().map(|c| self.rank(c, top_k)));
            on_batch(chunk.len());
        }
        Ok(out)
    }
}

impl Model for FusedModel {
    fn method(&self) -> &'static str {
        Fused.name()
    }

    fn labels(&self) -> &LabelSet {
        &self.parts.xr.labels
    }

    fn template(&self) -> &InputTemplate {
        &self.parts.xr.meta.template
    }

    fn default_beam(&self) -> usize {
        self.parts.xr.meta.config.beam
    }

    fn codes(&self) -> Option<Vec<Vec<u32>>> {
        Some(self.parts.xr.ranker.tree.codes())
    }

    /// The candidates and the beams are the fused model's own; the pool is every candidate.
    fn pools(&self, texts: &[&str], _beam: usize, on_batch: &mut dyn FnMut(usize)) -> Result<Pools> {
        self.predict_texts(texts, usize::MAX, on_batch)
    }

    /// The ranker's and the generator's own answers on every record (without the cascade, which
    /// runs the generator on some records only).
    fn components(&self, texts: &[&str]) -> Result<Vec<(&'static str, Pools)>> {
        let mut cands = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(CHUNK) {
            cands.extend(self.parts.candidates(&self.fusion.config, chunk, None)?);
        }
        let mut out = vec![("ranker", cands.iter().map(|c| c.ranker_top.clone()).collect())];
        if self.parts.generator.is_some() && cands.iter().any(|c| !c.generator_top.is_empty()) {
            out.push(("generator", cands.iter().map(|c| c.generator_top.clone()).collect()));
        }
        Ok(out)
    }
}

/// What the folder answers for a record whose `candidates` were built without the cascade: the
/// ranker's order where `fusion.skip` skips it, [`rank_with`] elsewhere.
pub fn rank_cascaded(fusion: &FusionModel, candidates: &Candidates, top_k: usize) -> Vec<(u32, f32)> {
    match fusion.skip {
        Some(s) if s.skips(&candidates.ranker_top) => candidates.ranker_top.iter().take(top_k).copied().collect(),
        _ => rank_with(fusion, candidates, top_k),
    }
}

/// `candidates` by `fusion`'s score, best first, scores a softmax over the candidates; a record
/// the cascade skipped keeps the ranker's order and scores.
pub fn rank_with(fusion: &FusionModel, candidates: &Candidates, top_k: usize) -> Vec<(u32, f32)> {
    if !candidates.consulted {
        return candidates.ranker_top.iter().take(top_k).copied().collect();
    }
    let scores: Vec<f64> = candidates.rows.iter().map(|r| fusion.score(r)).collect();
    let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let total: f64 = scores.iter().map(|s| (s - max).exp()).sum();
    let mut ranked: Vec<(u32, f32)> = candidates.labels.iter().zip(&scores).map(|(&l, s)| (l, ((s - max).exp() / total) as f32)).collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked.truncate(top_k);
    ranked
}
