//! The small encoder: four 3x3 convolutions with batch norm and relu, then a
//! global average pool to a 128-d representation.

use super::{Arch, BatchNorm, Conv2d, Entry, Init, Module, join};
use crate::autograd::{Tape, Var};
use crate::error::{Error, Result};
use crate::gpu::Gpu;

/// (in, out, stride) of conv1..conv4; every kernel is 3x3 with padding 1.
const LAYERS: [(usize, usize, usize); 4] = [(0, 32, 1), (32, 64, 2), (64, 128, 2), (128, 128, 1)];

/// conv1 3x3 in->32 pad 1, bn1, relu; conv2 3x3 32->64 stride 2, bn2, relu;
/// conv3 3x3 64->128 stride 2, bn3, relu; conv4 3x3 128->128, bn4, relu;
/// global average pool. Convolutions have no bias. Names match a PyTorch
/// module with attributes conv1..conv4 and bn1..bn4.
#[derive(Debug)]
pub struct ConvNet {
    in_channels: usize,
    convs: Vec<Conv2d>,
    bns: Vec<BatchNorm>,
}

impl ConvNet {
    /// The width of the representation.
    pub const DIM: usize = 128;

    pub fn new(gpu: &Gpu, in_channels: usize, init: &mut Init) -> Result<ConvNet> {
        let mut convs = Vec::new();
        let mut bns = Vec::new();
        for (i, &(cin, cout, stride)) in LAYERS.iter().enumerate() {
            let cin = if i == 0 { in_channels } else { cin };
            convs.push(Conv2d::new(gpu, init, cin, cout, 3, stride, 1, false)?);
            bns.push(BatchNorm::new(gpu, cout, true)?);
        }
        Ok(ConvNet {
            in_channels,
            convs,
            bns,
        })
    }
}

impl Module for ConvNet {
    fn arch(&self) -> Arch {
        Arch::ConvNet {
            in_channels: self.in_channels,
        }
    }

    fn forward(&mut self, tape: &mut Tape, x: Var, train: bool) -> Result<Var> {
        let shape = tape.shape(x)?;
        if shape.len() != 4 || shape[1] != self.in_channels {
            return Err(Error::shape(
                "ConvNet",
                &[shape],
                format!("expected [N, {}, H, W] images", self.in_channels),
            ));
        }
        let mut h = x;
        for (conv, bn) in self.convs.iter_mut().zip(&mut self.bns) {
            h = conv.forward(tape, h)?;
            h = bn.forward(tape, h, train)?;
            h = tape.relu(h)?;
        }
        tape.global_avg_pool(h)
    }

    fn visit<'a>(&'a self, prefix: &str, out: &mut Vec<(String, Entry<'a>)>) {
        for (i, (conv, bn)) in self.convs.iter().zip(&self.bns).enumerate() {
            conv.visit(&join(prefix, &format!("conv{}", i + 1)), out);
            bn.visit(&join(prefix, &format!("bn{}", i + 1)), out);
        }
    }
}
