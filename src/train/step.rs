//! One training step, the same for every objective: build the input the
//! objective asks for, record its forward and loss, walk the tape back,
//! update the trained parts, let the objective update the rest (an EMA
//! target), all recorded into one batch and submitted once. The loss terms
//! and the gradient norm come back asynchronously and are read a step
//! later.

use crate::augment::{self, AugmentConfig, PatchMask, U8Batch};
use crate::autograd::Tape;
use crate::data::Batch;
use crate::dist::Dist;
use crate::error::{Error, Result};
use crate::gpu::{Gpu, Readback};
use crate::kernels::{elementwise as ew, reduce};
use crate::objectives::{InputSpec, Objective, Role, StepInput};
use crate::optim::{Optimizer, Param};
use crate::tensor::Tensor;

/// The losses of a step once they are on the CPU.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StepLosses {
    pub step: u64,
    pub loss: f32,
    /// Named unweighted terms (VICReg: invariance, variance, covariance).
    pub terms: Vec<(&'static str, f32)>,
    /// The L2 norm of the whole gradient.
    pub grad_norm: f32,
    pub lr: f32,
}

/// Values of a step on their way back to the CPU.
pub struct PendingLosses {
    step: u64,
    lr: f32,
    loss: Readback,
    terms: Vec<(&'static str, Readback)>,
    grad_norm2: Readback,
    /// The group whose ranks' losses are averaged (each rank's loss is its
    /// shard's; the gradient norm is of the averaged gradient already).
    dist: Option<Dist>,
}

impl PendingLosses {
    /// Waits for the values (by now usually there) and checks they are finite.
    pub fn wait(self) -> Result<StepLosses> {
        let scalar =
            |r: Readback| -> Result<f32> { Ok(r.wait()?.first().copied().unwrap_or(f32::NAN)) };
        let mut loss = scalar(self.loss)?;
        let mut terms = Vec::new();
        for (name, r) in self.terms {
            terms.push((name, scalar(r)?));
        }
        let grad_norm = scalar(self.grad_norm2)?.sqrt();
        if let Some(d) = self.dist.as_ref().filter(|d| d.size() > 1) {
            let mut values: Vec<f32> = std::iter::once(loss)
                .chain(terms.iter().map(|t| t.1))
                .collect();
            d.group.all_reduce_sum(&mut values)?;
            let share = 1.0 / d.size() as f32;
            loss = values[0] * share;
            for (t, v) in terms.iter_mut().zip(&values[1..]) {
                t.1 = v * share;
            }
        }
        let out = StepLosses {
            step: self.step,
            loss,
            terms,
            grad_norm,
            lr: self.lr,
        };
        // Every quantity, the first non-finite one named: the loss (or one
        // of its terms) goes first when the forward broke, the gradient
        // norm when only the backward did.
        let mut quantities = vec![("the loss", loss)];
        quantities.extend(out.terms.iter().copied());
        quantities.push(("the gradient norm", grad_norm));
        if let Some((name, value)) = quantities.iter().find(|(_, v)| !v.is_finite()) {
            let all: Vec<String> = quantities.iter().map(|(n, v)| format!("{n} {v}")).collect();
            return Err(Error::invalid(
                "train",
                format!(
                    "training diverged at step {}: {name} is {value} ({}); the weights of the last update are not finite: try a lower --lr",
                    out.step + 1,
                    all.join(", ")
                ),
            ));
        }
        Ok(out)
    }
}

/// The input `spec` asks for, from a batch of `u8` images: augmented views
/// drawn on the device, and the patch mask or the corruption, all with
/// the keyed random parameters of `(seed, step)` (so a batch replays
/// exactly).
pub fn input(
    gpu: &Gpu,
    spec: InputSpec,
    batch: &Batch,
    augment: &AugmentConfig,
    seed: u64,
    step: u64,
) -> Result<StepInput> {
    let images = U8Batch::from_batch(gpu, batch)?;
    let [a, b] = augment::views_at(&images, augment, seed, step, batch.first)?;
    let [n, _, h, w] = <[usize; 4]>::try_from(a.shape())
        .map_err(|_| Error::invalid("train", "views must be [N, C, H, W]"))?;
    Ok(match spec {
        InputSpec::Views(2) => StepInput::views(vec![a, b]),
        InputSpec::Views(count) => {
            return Err(Error::invalid(
                "train",
                format!("the augmentation draws two views per image, not {count}"),
            ));
        }
        InputSpec::Masked { patch, ratio } | InputSpec::ViewsMasked { patch, ratio } => {
            let mask = PatchMask::draw_at(seed, step, batch.first, n, h, w, patch, ratio)?;
            let views = match spec {
                InputSpec::Masked { .. } => vec![a],
                _ => vec![a, b],
            };
            StepInput {
                views,
                mask: Some(mask),
                corrupted: None,
                frames: Vec::new(),
            }
        }
        InputSpec::Clip { .. } => {
            return Err(Error::invalid(
                "train",
                "a video method reads clips, not a batch of images: give it a video data set (--data moving-shapes)",
            ));
        }
        InputSpec::Corrupted(c) => {
            let shape = [n, a.shape()[1], h, w];
            let (scale, shift) = c.draw(gpu, shape, &augment.normalize, seed, step, batch.first)?;
            let scaled = ew::binary(&a, &scale, ew::BinaryOp::Mul)?;
            let corrupted = ew::binary(&scaled, &shift, ew::BinaryOp::Add)?;
            StepInput {
                views: vec![a],
                mask: None,
                corrupted: Some(corrupted),
                frames: Vec::new(),
            }
        }
    })
}

/// Everything a step needs besides its input.
pub struct StepContext<'a> {
    pub gpu: &'a Gpu,
    pub objective: &'a mut dyn Objective,
    pub optimizer: &'a mut Optimizer,
    /// Steps in the whole run, for schedules after the update (BYOL's
    /// momentum).
    pub total_steps: u64,
    /// The group this step spans (`None`: this process alone); see
    /// [`crate::dist`].
    pub dist: Option<Dist>,
}

/// True for parameters that LARS and weight decay skip: biases and the
/// affine parameters of normalisation layers (every 1-D parameter).
fn excluded(t: &Tensor) -> bool {
    t.rank() <= 1
}

/// Records one step and returns the readbacks of its losses.
pub fn train_step(
    ctx: &mut StepContext<'_>,
    input: &StepInput,
    step: u64,
    lr: f32,
) -> Result<PendingLosses> {
    step_with_gradients(ctx, input, step, lr).map(|(pending, _)| pending)
}

/// [`train_step`], also returning the gradient of every trained parameter
/// by name (`encoder.conv1.weight`, ...), as the update used it.
pub fn step_with_gradients(
    ctx: &mut StepContext<'_>,
    input: &StepInput,
    step: u64,
    lr: f32,
) -> Result<(PendingLosses, Vec<(String, Tensor)>)> {
    let mut tape = Tape::with_dist(ctx.gpu, ctx.dist.clone());
    let recorded = ctx.objective.record(&mut tape, input)?;
    let loss_value = tape.value(recorded.loss)?.clone();
    let grads = tape.backward(recorded.loss)?;

    let mut values = Vec::new();
    let mut gradients = Vec::new();
    for part in ctx.objective.parts() {
        if part.role != Role::Trained {
            continue;
        }
        for (name, p) in part.module.parameters() {
            let full = format!("{}.{name}", part.name);
            let var = p
                .var()
                .filter(|&v| tape.owns(v))
                .ok_or_else(|| Error::invalid("train", format!("{full} was not used")))?;
            let g = grads
                .get(var)
                .ok_or_else(|| Error::invalid("train", format!("no gradient for {full}")))?;
            values.push(p.tensor.clone());
            gradients.push((full, g.clone()));
        }
    }
    if let Some(d) = ctx.dist.as_ref().filter(|d| d.size() > 1) {
        average_gradients(d, &mut gradients)?;
    }
    // The squared gradient norm, summed on the device: one scalar comes back.
    let mut norm2: Option<Tensor> = None;
    for (_, g) in &gradients {
        let s = reduce::sum_squares_all(g)?;
        norm2 = Some(match norm2 {
            Some(acc) => ew::binary(&acc, &s, ew::BinaryOp::Add)?,
            None => s,
        });
    }
    let params: Vec<Param<'_>> = gradients
        .iter()
        .zip(&values)
        .map(|((name, grad), value)| Param {
            name,
            value,
            grad,
            exclude: excluded(value),
        })
        .collect();
    ctx.optimizer.step(&params, lr)?;
    ctx.objective.after_update(step, ctx.total_steps)?;

    let pending = PendingLosses {
        step,
        lr,
        loss: loss_value.read_async(),
        terms: recorded
            .terms
            .iter()
            .map(|(n, t)| (*n, t.read_async()))
            .collect(),
        grad_norm2: norm2
            .ok_or_else(|| Error::invalid("train", "the model has no parameters"))?
            .read_async(),
        dist: ctx.dist.clone(),
    };
    // One submit for the whole step.
    ctx.gpu.submit();
    Ok((pending, gradients))
}

/// Replaces every gradient by its average over the group's ranks: read
/// back in one submit, summed in one all-reduce of the concatenated
/// gradients, scaled and uploaded. (The backward is one submit on the
/// device, so there is nothing for the reduction to overlap with.)
fn average_gradients(d: &Dist, gradients: &mut [(String, Tensor)]) -> Result<()> {
    let pending: Vec<Readback> = gradients.iter().map(|(_, g)| g.read_async()).collect();
    let mut flat = Vec::new();
    for r in pending {
        flat.extend(r.wait()?);
    }
    d.group.all_reduce_sum(&mut flat)?;
    let share = 1.0 / d.size() as f32;
    let mut at = 0;
    for (_, g) in gradients.iter_mut() {
        let n = g.numel();
        let mean: Vec<f32> = flat[at..at + n].iter().map(|v| v * share).collect();
        *g = Tensor::from_slice(g.gpu(), &mean, g.shape())?;
        at += n;
    }
    Ok(())
}
