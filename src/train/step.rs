//! One training step, the same for every objective: build the input the
//! objective asks for, record its forward and loss, walk the tape back,
//! update the trained parts, let the objective update the rest (an EMA
//! target), all recorded into one batch and submitted once. The loss terms
//! and the gradient norm come back asynchronously and are read a step
//! later.

use crate::augment::{self, AugmentConfig, PatchMask, U8Batch};
use crate::autograd::Tape;
use crate::data::Batch;
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
}

impl PendingLosses {
    /// Waits for the values (by now usually there) and checks they are finite.
    pub fn wait(self) -> Result<StepLosses> {
        let scalar =
            |r: Readback| -> Result<f32> { Ok(r.wait()?.first().copied().unwrap_or(f32::NAN)) };
        let loss = scalar(self.loss)?;
        let mut terms = Vec::new();
        for (name, r) in self.terms {
            terms.push((name, scalar(r)?));
        }
        let grad_norm = scalar(self.grad_norm2)?.sqrt();
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
    let [a, b] = augment::views(&images, augment, seed, step)?;
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
            let mask = PatchMask::draw(seed, step, n, h, w, patch, ratio)?;
            let views = match spec {
                InputSpec::Masked { .. } => vec![a],
                _ => vec![a, b],
            };
            StepInput {
                views,
                mask: Some(mask),
                corrupted: None,
            }
        }
        InputSpec::Corrupted(c) => {
            let shape = [n, a.shape()[1], h, w];
            let (scale, shift) = c.draw(gpu, shape, &augment.normalize, seed, step)?;
            let scaled = ew::binary(&a, &scale, ew::BinaryOp::Mul)?;
            let corrupted = ew::binary(&scaled, &shift, ew::BinaryOp::Add)?;
            StepInput {
                views: vec![a],
                mask: None,
                corrupted: Some(corrupted),
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
    let mut tape = Tape::new(ctx.gpu);
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
    };
    // One submit for the whole step.
    ctx.gpu.submit();
    Ok((pending, gradients))
}
