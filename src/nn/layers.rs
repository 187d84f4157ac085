//! The building blocks: convolution, batch norm and linear layers holding
//! their parameters under PyTorch's names.

use std::cell::Cell;

use super::{Entry, Init, Param, join};
use crate::autograd::{BatchNormState, Tape, Var};
use crate::error::Result;
use crate::gpu::Gpu;
use crate::tensor::Tensor;

/// `nn.Conv2d` with square kernel, stride and padding.
#[derive(Debug)]
pub struct Conv2d {
    pub weight: Param,
    pub bias: Option<Param>,
    pub stride: usize,
    pub padding: usize,
}

impl Conv2d {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        gpu: &Gpu,
        init: &mut Init,
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        bias: bool,
    ) -> Result<Conv2d> {
        let shape = [out_channels, in_channels, kernel, kernel];
        let weight = Param::new(init.kaiming_uniform(gpu, &shape)?);
        let fan_in = (in_channels * kernel * kernel).max(1) as f32;
        let bias = if bias {
            Some(Param::new(init.uniform(
                gpu,
                &[out_channels],
                1.0 / fan_in.sqrt(),
            )?))
        } else {
            None
        };
        Ok(Conv2d {
            weight,
            bias,
            stride,
            padding,
        })
    }

    pub fn forward(&mut self, tape: &mut Tape, x: Var) -> Result<Var> {
        let w = self.weight.register(tape)?;
        let b = self.bias.as_mut().map(|b| b.register(tape)).transpose()?;
        tape.conv2d(x, w, b, self.stride, self.padding)
    }

    pub fn visit<'a>(&'a self, prefix: &str, out: &mut Vec<(String, Entry<'a>)>) {
        out.push((join(prefix, "weight"), Entry::Param(&self.weight)));
        if let Some(b) = &self.bias {
            out.push((join(prefix, "bias"), Entry::Param(b)));
        }
    }
}

/// `nn.BatchNorm1d` / `nn.BatchNorm2d` (the same maths; the input's rank
/// decides): momentum 0.1, eps 1e-5, optional affine transform.
#[derive(Debug)]
pub struct BatchNorm {
    pub weight: Option<Param>,
    pub bias: Option<Param>,
    pub running_mean: Tensor,
    pub running_var: Tensor,
    pub num_batches_tracked: Cell<i64>,
    pub momentum: f32,
    pub eps: f32,
}

impl BatchNorm {
    pub fn new(gpu: &Gpu, channels: usize, affine: bool) -> Result<BatchNorm> {
        let (weight, bias) = if affine {
            (
                Some(Param::new(Tensor::full(gpu, &[channels], 1.0)?)),
                Some(Param::new(Tensor::zeros(gpu, &[channels])?)),
            )
        } else {
            (None, None)
        };
        Ok(BatchNorm {
            weight,
            bias,
            running_mean: Tensor::zeros(gpu, &[channels])?,
            running_var: Tensor::full(gpu, &[channels], 1.0)?,
            num_batches_tracked: Cell::new(0),
            momentum: 0.1,
            eps: 1e-5,
        })
    }

    pub fn forward(&mut self, tape: &mut Tape, x: Var, train: bool) -> Result<Var> {
        self.forward_with(tape, x, train, false)
    }

    /// `relu(self.forward(x))` as one op ([`Tape::batch_norm_relu`]).
    pub fn forward_relu(&mut self, tape: &mut Tape, x: Var, train: bool) -> Result<Var> {
        self.forward_with(tape, x, train, true)
    }

    fn forward_with(&mut self, tape: &mut Tape, x: Var, train: bool, relu: bool) -> Result<Var> {
        let affine = match (&mut self.weight, &mut self.bias) {
            (Some(w), Some(b)) => Some((w.register(tape)?, b.register(tape)?)),
            _ => None,
        };
        let state = BatchNormState {
            running_mean: &self.running_mean,
            running_var: &self.running_var,
            momentum: self.momentum,
            eps: self.eps,
        };
        let y = if relu {
            tape.batch_norm_relu(x, affine, &state, train)?
        } else {
            tape.batch_norm(x, affine, &state, train)?
        };
        if train {
            self.num_batches_tracked
                .set(self.num_batches_tracked.get() + 1);
        }
        Ok(y)
    }

    pub fn visit<'a>(&'a self, prefix: &str, out: &mut Vec<(String, Entry<'a>)>) {
        if let (Some(w), Some(b)) = (&self.weight, &self.bias) {
            out.push((join(prefix, "weight"), Entry::Param(w)));
            out.push((join(prefix, "bias"), Entry::Param(b)));
        }
        out.push((
            join(prefix, "running_mean"),
            Entry::Buffer(&self.running_mean),
        ));
        out.push((
            join(prefix, "running_var"),
            Entry::Buffer(&self.running_var),
        ));
        out.push((
            join(prefix, "num_batches_tracked"),
            Entry::Counter(&self.num_batches_tracked),
        ));
    }
}

/// `nn.Linear`: weight `[out, in]`, optional bias `[out]`.
#[derive(Debug)]
pub struct Linear {
    pub weight: Param,
    pub bias: Option<Param>,
}

impl Linear {
    pub fn new(
        gpu: &Gpu,
        init: &mut Init,
        inputs: usize,
        outputs: usize,
        bias: bool,
    ) -> Result<Linear> {
        let weight = Param::new(init.kaiming_uniform(gpu, &[outputs, inputs])?);
        let bias = if bias {
            let bound = 1.0 / (inputs.max(1) as f32).sqrt();
            Some(Param::new(init.uniform(gpu, &[outputs], bound)?))
        } else {
            None
        };
        Ok(Linear { weight, bias })
    }

    pub fn forward(&mut self, tape: &mut Tape, x: Var) -> Result<Var> {
        let w = self.weight.register(tape)?;
        let b = self.bias.as_mut().map(|b| b.register(tape)).transpose()?;
        tape.linear(x, w, b)
    }

    pub fn visit<'a>(&'a self, prefix: &str, out: &mut Vec<(String, Entry<'a>)>) {
        out.push((join(prefix, "weight"), Entry::Param(&self.weight)));
        if let Some(b) = &self.bias {
            out.push((join(prefix, "bias"), Entry::Param(b)));
        }
    }
}
