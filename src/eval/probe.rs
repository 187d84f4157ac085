//! The linear classification probe: a softmax classifier trained on frozen,
//! standardised features with the engine's own tape and optimiser.

use super::{Standardizer, check_labels, check_splits};
use crate::autograd::Tape;
use crate::data::rng::{CounterRng, permutation};
use crate::error::{Error, Result};
use crate::kernels::{BinaryOp, elementwise as ew, matmul::matmul};
use crate::optim::{Optimizer, Param, Rule, WarmupCosine};
use crate::tensor::Tensor;

/// How the probe is trained. The defaults (AdamW at 1e-3 with a cosine
/// decay over 30 epochs of 256-sample minibatches, weight decay 1e-4) fit a
/// softmax regression on standardised features to convergence on the
/// datasets darkmatter ships readers for, in seconds on a GPU.
#[derive(Clone, Debug, PartialEq)]
pub struct ProbeConfig {
    pub epochs: usize,
    pub batch_size: usize,
    /// The peak learning rate, decayed to zero by a cosine schedule.
    pub lr: f32,
    /// Decoupled weight decay on the weights (not on the bias).
    pub weight_decay: f32,
    /// Seeds the minibatch order.
    pub seed: u64,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        ProbeConfig {
            epochs: 30,
            batch_size: 256,
            lr: 1e-3,
            weight_decay: 1e-4,
            seed: 0,
        }
    }
}

/// Keys the minibatch order's random stream apart from the data loader's.
const PROBE_STREAM: u64 = 0x70_726f_6265; // "probe"

/// Top-1 accuracies in percent of the trained probe.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ProbeResult {
    pub train_top1: f32,
    pub test_top1: f32,
}

/// Trains a linear classifier `W x + b` on `train` `[N, D]` with
/// `train_labels`, after standardising each feature with the train split's
/// mean and standard deviation (applied to both splits), and reports its
/// accuracy on both splits.
pub fn linear_probe(
    train: &Tensor,
    train_labels: &[u32],
    test: &Tensor,
    test_labels: &[u32],
    num_classes: usize,
    config: &ProbeConfig,
) -> Result<ProbeResult> {
    let op = "linear_probe";
    let (n, _, d) = check_splits(op, train, train_labels.len(), test, test_labels.len())?;
    check_labels(op, train_labels, num_classes)?;
    check_labels(op, test_labels, num_classes)?;
    if config.epochs == 0 || config.batch_size == 0 {
        return Err(Error::invalid(op, "epochs and batch_size must be positive"));
    }
    if !(config.lr.is_finite() && config.lr > 0.0 && config.weight_decay >= 0.0) {
        return Err(Error::invalid(
            op,
            format!(
                "learning rate {} must be positive and weight decay {} non-negative",
                config.lr, config.weight_decay
            ),
        ));
    }
    train.same_gpu(test, op)?;
    let gpu = train.gpu();
    let train_x = train.to_vec()?;
    let scaler = Standardizer::fit(&train_x, d);
    let as_f32 = |x: Vec<f64>| x.into_iter().map(|v| v as f32).collect::<Vec<f32>>();
    let train_x = as_f32(scaler.apply(&train_x));

    // Zero initialisation: the problem is convex, and it makes runs
    // independent of any initialiser.
    let w = Tensor::zeros(gpu, &[num_classes, d])?;
    let b = Tensor::zeros(gpu, &[num_classes])?;
    let mut opt = Optimizer::new("adamw".parse::<Rule>()?, config.weight_decay);
    let batch = config.batch_size.min(n);
    let steps_per_epoch = n.div_ceil(batch);
    let schedule = WarmupCosine {
        base: config.lr,
        warmup_steps: 0,
        total_steps: (config.epochs * steps_per_epoch) as u64,
        final_fraction: 0.0,
    };
    let mut xb = Vec::with_capacity(batch * d);
    let mut step = 0u64;
    for epoch in 0..config.epochs {
        let order = permutation(
            n,
            &mut CounterRng::keyed(&[PROBE_STREAM, config.seed, epoch as u64]),
        );
        for idx in order.chunks(batch) {
            xb.clear();
            for &i in idx {
                xb.extend_from_slice(&train_x[i * d..(i + 1) * d]);
            }
            let yb: Vec<f32> = idx.iter().map(|&i| train_labels[i] as f32).collect();
            let x = Tensor::from_slice(gpu, &xb, &[idx.len(), d])?;
            let y = Tensor::from_slice(gpu, &yb, &[idx.len()])?;
            let mut tape = Tape::new(gpu);
            let (xv, wv, bv) = (tape.constant(&x)?, tape.param(&w)?, tape.param(&b)?);
            let logits = tape.linear(xv, wv, Some(bv))?;
            let loss = crate::loss::cross_entropy(&mut tape, logits, &y)?;
            let grads = tape.backward(loss)?;
            let grad = |v| {
                grads
                    .get(v)
                    .ok_or_else(|| Error::invalid(op, "the probe's loss has no gradient"))
            };
            opt.step(
                &[
                    Param {
                        name: "weight",
                        value: &w,
                        grad: grad(wv)?,
                        exclude: false,
                    },
                    Param {
                        name: "bias",
                        value: &b,
                        grad: grad(bv)?,
                        exclude: true,
                    },
                ],
                schedule.at(step),
            )?;
            gpu.submit();
            step += 1;
        }
    }

    let accuracy = |x: Vec<f32>, labels: &[u32]| -> Result<f32> {
        let x = Tensor::from_slice(gpu, &x, &[labels.len(), d])?;
        let logits = ew::binary(&matmul(&x, &w, false, true)?, &b, BinaryOp::Add)?.to_vec()?;
        let hits = logits
            .chunks_exact(num_classes)
            .zip(labels)
            .filter(|&(row, &l)| argmax(row) == l as usize)
            .count();
        Ok(100.0 * hits as f32 / labels.len() as f32)
    };
    let train_top1 = accuracy(train_x, train_labels)?;
    let test_x = as_f32(scaler.apply(&test.to_vec()?));
    let test_top1 = accuracy(test_x, test_labels)?;
    Ok(ProbeResult {
        train_top1,
        test_top1,
    })
}

fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}
