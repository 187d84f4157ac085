//! The projector head (and the predictors of BYOL and SimSiam, which have
//! the same shape): Linear -> BatchNorm1d -> ReLU blocks and a final Linear
//! without bias, optionally followed by a batch norm without affine
//! parameters (SimSiam's projector).

use super::{Arch, BatchNorm, Entry, Init, Linear, Module, join};
use crate::autograd::{Tape, Var};
use crate::error::{Error, Result};
use crate::gpu::Gpu;

/// For dims `[d0, d1, ..., dk]`: k - 1 blocks Linear(d_i, d_i+1) ->
/// BatchNorm1d(d_i+1) -> ReLU, then Linear(d_k-1, d_k, bias=False), then,
/// with `output_norm`, BatchNorm1d(d_k, affine=False). Names match
/// PyTorch's `nn.Sequential` stored as `layers` (the ReLUs take indices
/// too): layers.0 Linear, layers.1 BatchNorm1d, layers.3 Linear, ...
#[derive(Debug)]
pub struct Projector {
    dims: Vec<usize>,
    blocks: Vec<(Linear, BatchNorm)>,
    last: Linear,
    output_norm: Option<BatchNorm>,
}

impl Projector {
    pub fn new(gpu: &Gpu, dims: &[usize], init: &mut Init) -> Result<Projector> {
        Projector::with_output_norm(gpu, dims, false, init)
    }

    /// A projector whose output goes through a batch norm without affine
    /// parameters when `output_norm` is set.
    pub fn with_output_norm(
        gpu: &Gpu,
        dims: &[usize],
        output_norm: bool,
        init: &mut Init,
    ) -> Result<Projector> {
        if dims.len() < 2 || dims.contains(&0) {
            return Err(Error::invalid(
                "Projector",
                format!("dims {dims:?}: need at least two, none zero"),
            ));
        }
        let k = dims.len() - 1;
        let mut blocks = Vec::new();
        for i in 0..k - 1 {
            blocks.push((
                Linear::new(gpu, init, dims[i], dims[i + 1], true)?,
                BatchNorm::new(gpu, dims[i + 1], true)?,
            ));
        }
        let last = Linear::new(gpu, init, dims[k - 1], dims[k], false)?;
        let output_norm = if output_norm {
            Some(BatchNorm::new(gpu, dims[k], false)?)
        } else {
            None
        };
        Ok(Projector {
            dims: dims.to_vec(),
            blocks,
            last,
            output_norm,
        })
    }
}

impl Module for Projector {
    fn arch(&self) -> Arch {
        Arch::Projector {
            dims: self.dims.clone(),
            output_norm: self.output_norm.is_some(),
        }
    }

    fn forward(&mut self, tape: &mut Tape, x: Var, train: bool) -> Result<Var> {
        let shape = tape.shape(x)?;
        if shape.len() != 2 || shape[1] != self.dims[0] {
            return Err(Error::shape(
                "Projector",
                &[shape],
                format!("expected [N, {}] features", self.dims[0]),
            ));
        }
        // Activations are released once read, as in the encoders.
        let mut h = x;
        for (linear, bn) in &mut self.blocks {
            let l = linear.forward(tape, h)?;
            if h != x {
                tape.release(h)?;
            }
            h = bn.forward_relu(tape, l, train)?;
            tape.release(l)?;
        }
        let y = self.last.forward(tape, h)?;
        if h != x {
            tape.release(h)?;
        }
        match &mut self.output_norm {
            Some(bn) => {
                let z = bn.forward(tape, y, train)?;
                tape.release(y)?;
                Ok(z)
            }
            None => Ok(y),
        }
    }

    fn visit<'a>(&'a self, prefix: &str, out: &mut Vec<(String, Entry<'a>)>) {
        let layers = join(prefix, "layers");
        for (i, (linear, bn)) in self.blocks.iter().enumerate() {
            linear.visit(&join(&layers, &(3 * i).to_string()), out);
            bn.visit(&join(&layers, &(3 * i + 1).to_string()), out);
        }
        let last = 3 * self.blocks.len();
        self.last.visit(&join(&layers, &last.to_string()), out);
        if let Some(bn) = &self.output_norm {
            bn.visit(&join(&layers, &(last + 1).to_string()), out);
        }
    }
}
