//! The fine-tuning protocol: how an encoder serves a labelled task when it
//! is trained further, the way masked modelling is judged (kNN and linear
//! probes under-rate it in every public benchmark). The encoder and a
//! linear head on its representation are trained with labels on a
//! fraction of the training split (a keyed subset with the same share of
//! every class), with the training augmentation (one view per image),
//! AdamW and a warm-up + cosine schedule; then the test split's top-1
//! accuracy is measured, encoder in evaluation mode. The same protocol on
//! a random-init encoder is the supervised-from-scratch baseline.

use std::sync::Arc;

use crate::augment::{self, AugmentConfig, U8Batch};
use crate::autograd::Tape;
use crate::data::rng::{CounterRng, permutation};
use crate::data::{Dataset, Loader, LoaderConfig, Subset};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::nn::{Encoder, Init, Linear};
use crate::optim::{Optimizer, Param, Rule, WarmupCosine};
use crate::tensor::Tensor;

const STREAM: u64 = 0x4649_4e45_5455_4e45; // "FINETUNE"

/// The protocol's settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FinetuneConfig {
    pub epochs: u32,
    /// The share of the training split's labels used, in (0, 1].
    pub labels: f32,
    pub batch_size: usize,
    pub lr: f32,
    pub weight_decay: f32,
    pub seed: u64,
}

impl Default for FinetuneConfig {
    fn default() -> Self {
        FinetuneConfig {
            epochs: 10,
            labels: 0.01,
            batch_size: 128,
            lr: 1e-3,
            weight_decay: 1e-4,
            seed: 0,
        }
    }
}

/// What fine-tuning measured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FinetuneResult {
    /// Labelled training images used.
    pub images: usize,
    pub test_top1: f32,
}

/// `fraction` of every class of `data`, chosen by a keyed shuffle.
pub fn labelled_subset(data: &Arc<dyn Dataset>, fraction: f32, seed: u64) -> Result<Vec<usize>> {
    let classes = data
        .num_classes()
        .ok_or_else(|| Error::invalid("finetune", format!("{} has no labels", data.name())))?;
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); classes];
    for i in 0..data.len() {
        if let Some(l) = data.label(i) {
            by_class[l as usize % classes].push(i);
        }
    }
    let mut chosen = Vec::new();
    for (c, members) in by_class.iter().enumerate() {
        let take = ((members.len() as f64 * fraction as f64).round() as usize)
            .clamp(1, members.len().max(1))
            .min(members.len());
        let order = permutation(
            members.len(),
            &mut CounterRng::keyed(&[STREAM, seed, c as u64]),
        );
        chosen.extend(order[..take].iter().map(|&k| members[k]));
    }
    chosen.sort_unstable();
    Ok(chosen)
}

/// Fine-tunes `encoder` (in place) with a new linear head and returns the
/// test accuracy.
pub fn finetune(
    gpu: &Gpu,
    encoder: &mut dyn Encoder,
    train: &Arc<dyn Dataset>,
    test: &Arc<dyn Dataset>,
    augment: &AugmentConfig,
    cfg: &FinetuneConfig,
) -> Result<FinetuneResult> {
    if !(cfg.labels > 0.0 && cfg.labels <= 1.0) {
        return Err(Error::invalid(
            "eval",
            format!("--labels must be in (0, 1], got {}", cfg.labels),
        ));
    }
    if cfg.epochs == 0 {
        return Err(Error::invalid("eval", "--finetune needs at least 1 epoch"));
    }
    let classes = train
        .num_classes()
        .ok_or_else(|| Error::invalid("finetune", format!("{} has no labels", train.name())))?;
    let indices = labelled_subset(train, cfg.labels, cfg.seed)?;
    let images = indices.len();
    let subset: Arc<dyn Dataset> = Arc::new(
        Subset::new(train.clone(), indices)
            .ok_or_else(|| Error::invalid("finetune", "bad subset"))?,
    );
    let batch_size = cfg.batch_size.min(images).max(2);
    let loader = Loader::new(
        subset,
        LoaderConfig {
            batch_size,
            seed: cfg.seed,
            shuffle: true,
            drop_last: images >= 2 * batch_size,
        },
    )?;
    let mut head = Linear::new(
        gpu,
        &mut Init::new(cfg.seed ^ STREAM),
        encoder.dim(),
        classes,
        true,
    )?;
    let rule: Rule = "adamw".parse()?;
    let mut optimizer = Optimizer::new(rule, cfg.weight_decay);
    let per_epoch = loader.batches_per_epoch() as u64;
    let schedule = WarmupCosine {
        base: cfg.lr,
        warmup_steps: per_epoch / 10,
        total_steps: per_epoch * cfg.epochs as u64,
        final_fraction: 0.0,
    };
    for (step, batch) in loader.epochs(0..cfg.epochs as u64).enumerate() {
        let step = step as u64;
        let labels = batch
            .labels
            .as_ref()
            .ok_or_else(|| Error::invalid("finetune", "a batch without labels"))?;
        let y: Vec<f32> = labels.iter().map(|&l| l as f32).collect();
        let y = Tensor::from_slice(gpu, &y, &[y.len()])?;
        let u8s = U8Batch::from_batch(gpu, &batch)?;
        let [view, _] = augment::views(&u8s, augment, cfg.seed ^ STREAM, step)?;
        let mut tape = Tape::new(gpu);
        let x = tape.constant(&view)?;
        let h = encoder.forward(&mut tape, x, true)?;
        let logits = head.forward(&mut tape, h)?;
        let loss = crate::loss::cross_entropy(&mut tape, logits, &y)?;
        let grads = tape.backward(loss)?;
        let mut named: Vec<(String, Tensor, Tensor)> = Vec::new();
        for (prefix, params) in [
            ("encoder", encoder.parameters()),
            ("head", head_params(&head)),
        ] {
            for (name, p) in params {
                let g = p.var().and_then(|v| grads.get(v)).ok_or_else(|| {
                    Error::invalid("finetune", format!("no gradient for {prefix}.{name}"))
                })?;
                named.push((format!("{prefix}.{name}"), p.tensor.clone(), g.clone()));
            }
        }
        let params: Vec<Param<'_>> = named
            .iter()
            .map(|(name, value, grad)| Param {
                name,
                value,
                grad,
                exclude: value.rank() <= 1,
            })
            .collect();
        optimizer.step(&params, schedule.at(step))?;
        gpu.submit();
    }
    // Test accuracy, encoder in evaluation mode.
    let (h, w, c) = (test.height(), test.width(), test.channels());
    let mut plain = AugmentConfig::preset(augment::Preset::None);
    plain.normalize = augment.normalize;
    let mut hits = 0usize;
    for start in (0..test.len()).step_by(256) {
        let end = (start + 256).min(test.len());
        let images: Vec<u8> = (start..end).flat_map(|i| test.image(i)).collect();
        let u8s = U8Batch::upload(gpu, &images, [end - start, h, w, c])?;
        let [view, _] = augment::views(&u8s, &plain, 0, 0)?;
        let mut tape = Tape::no_grad(gpu);
        let x = tape.constant(&view)?;
        let r = encoder.forward(&mut tape, x, false)?;
        let logits = head.forward(&mut tape, r)?;
        let values = tape.value(logits)?.to_vec()?;
        for (k, row) in values.chunks_exact(classes).enumerate() {
            let best = (0..classes).fold(0, |b, j| if row[j] > row[b] { j } else { b });
            if test.label(start + k) == Some(best as u32) {
                hits += 1;
            }
        }
    }
    Ok(FinetuneResult {
        images,
        test_top1: 100.0 * hits as f32 / test.len().max(1) as f32,
    })
}

/// The head's parameters by name (`weight`, `bias`).
fn head_params(head: &Linear) -> Vec<(String, &crate::nn::Param)> {
    let mut entries = Vec::new();
    head.visit("", &mut entries);
    entries
        .into_iter()
        .filter_map(|(n, e)| match e {
            crate::nn::Entry::Param(p) => Some((n, p)),
            _ => None,
        })
        .collect()
}
