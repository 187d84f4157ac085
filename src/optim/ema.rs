//! Exponential moving averages of weights: `target = m * target + (1 - m) *
//! online`, in place on the device, for the EMA target networks of BYOL
//! (and the optional EMA target of latent prediction).

use crate::error::{Error, Result};
use crate::gpu::{Kernel, dispatch, uniform};
use crate::nn::{Entry, Module};
use crate::tensor::Tensor;

const EMA: Kernel = Kernel::new(
    "optim/ema",
    include_str!("../../shaders/optim/ema.wgsl"),
    "main",
);

uniform! {
    pub(crate) struct EmaParams {
        n: u32,
        momentum: f32,
    }
}

fn check_momentum(momentum: f32) -> Result<()> {
    if !(0.0..=1.0).contains(&momentum) {
        return Err(Error::invalid(
            "ema",
            format!("the momentum must be in [0, 1], got {momentum}"),
        ));
    }
    Ok(())
}

/// `average = momentum * average + (1 - momentum) * online`, elementwise
/// and in place; recorded into the current batch like any kernel.
pub fn update(average: &Tensor, online: &Tensor, momentum: f32) -> Result<()> {
    check_momentum(momentum)?;
    average.same_gpu(online, "ema")?;
    if average.shape() != online.shape() {
        return Err(Error::shape(
            "ema",
            &[average.shape(), online.shape()],
            "the average and the online tensor must have the same shape",
        ));
    }
    let n = average.numel();
    let gpu = average.gpu();
    let params = EmaParams {
        n: n as u32,
        momentum,
    };
    let grid = gpu.grid((n as u64).div_ceil(256))?;
    let b = [average.binding(1), online.binding(2)];
    dispatch(gpu, &EMA, &[], &params, &b, grid)
}

/// [`update`] over every parameter and every float buffer (batch-norm
/// running statistics) of `target`, from the entry of the same name in
/// `online`; counters (`num_batches_tracked`) are left alone. The two
/// modules must have the same state names and shapes, checked before
/// anything is recorded.
pub fn update_module(target: &dyn Module, online: &dyn Module, momentum: f32) -> Result<()> {
    check_momentum(momentum)?;
    let (mut t, mut o) = (Vec::new(), Vec::new());
    target.visit("", &mut t);
    online.visit("", &mut o);
    let tensor = |e: &Entry<'_>| -> Option<Tensor> {
        match e {
            Entry::Param(p) => Some(p.tensor.clone()),
            Entry::Buffer(b) => Some((*b).clone()),
            Entry::Counter(_) => None,
        }
    };
    let mut pairs = Vec::new();
    if t.len() != o.len() {
        return Err(Error::invalid(
            "ema",
            format!(
                "the target has {} state entries, the online module {}",
                t.len(),
                o.len()
            ),
        ));
    }
    for ((tn, te), (on, oe)) in t.iter().zip(&o) {
        if tn != on {
            return Err(Error::invalid(
                "ema",
                format!("target entry '{tn}' faces online entry '{on}'"),
            ));
        }
        if let (Some(a), Some(b)) = (tensor(te), tensor(oe)) {
            if a.shape() != b.shape() {
                return Err(Error::shape(
                    "ema",
                    &[a.shape(), b.shape()],
                    format!("'{tn}' has another shape in the target"),
                ));
            }
            pairs.push((a, b));
        }
    }
    for (a, b) in pairs {
        update(&a, &b, momentum)?;
    }
    Ok(())
}
