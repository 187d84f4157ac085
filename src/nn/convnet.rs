//! The small encoder: four 3x3 convolutions with batch norm and relu, then a
//! global average pool to a 128-d representation.

use serde::{Deserialize, Serialize};

use super::{Arch, BatchNorm, Conv2d, Encoder, Entry, Init, Module, StageHook, after_stage, join};
use crate::autograd::{Tape, Var};
use crate::error::{Error, Result};
use crate::gpu::Gpu;

/// The strides of conv1..conv4; every kernel is 3x3 with padding 1.
const STRIDES: [usize; 4] = [1, 2, 2, 1];

/// The output channels of conv1..conv4.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConvNetWidths(pub [usize; 4]);

impl Default for ConvNetWidths {
    /// 32, 64, 128, 128: the ConvNet every run trains.
    fn default() -> Self {
        ConvNetWidths([32, 64, 128, 128])
    }
}

/// conv1 3x3 in->32 pad 1, bn1, relu; conv2 3x3 32->64 stride 2, bn2, relu;
/// conv3 3x3 64->128 stride 2, bn3, relu; conv4 3x3 128->128, bn4, relu;
/// global average pool. Convolutions have no bias. Names match a PyTorch
/// module with attributes conv1..conv4 and bn1..bn4. Other widths
/// ([`ConvNet::with_widths`]) keep the shape of the network: the PyTorch
/// golden step uses a narrow one so that its fixture stays small.
#[derive(Debug)]
pub struct ConvNet {
    in_channels: usize,
    widths: ConvNetWidths,
    convs: Vec<Conv2d>,
    bns: Vec<BatchNorm>,
}

impl ConvNet {
    /// The width of the representation.
    pub const DIM: usize = 128;

    pub fn new(gpu: &Gpu, in_channels: usize, init: &mut Init) -> Result<ConvNet> {
        ConvNet::with_widths(gpu, in_channels, ConvNetWidths::default(), init)
    }

    /// A ConvNet with other channel counts per layer.
    pub fn with_widths(
        gpu: &Gpu,
        in_channels: usize,
        widths: ConvNetWidths,
        init: &mut Init,
    ) -> Result<ConvNet> {
        if in_channels == 0 || widths.0.contains(&0) {
            return Err(Error::invalid(
                "ConvNet",
                format!(
                    "{in_channels} input channels, widths {:?}: none may be 0",
                    widths.0
                ),
            ));
        }
        let mut convs = Vec::new();
        let mut bns = Vec::new();
        let mut cin = in_channels;
        for (&cout, &stride) in widths.0.iter().zip(&STRIDES) {
            convs.push(Conv2d::new(gpu, init, cin, cout, 3, stride, 1, false)?);
            bns.push(BatchNorm::new(gpu, cout, true)?);
            cin = cout;
        }
        Ok(ConvNet {
            in_channels,
            widths,
            convs,
            bns,
        })
    }
}

impl Module for ConvNet {
    fn arch(&self) -> Arch {
        Arch::ConvNet {
            in_channels: self.in_channels,
            widths: self.widths,
        }
    }

    fn forward(&mut self, tape: &mut Tape, x: Var, train: bool) -> Result<Var> {
        let map = self.feature_map(tape, x, train)?;
        let pooled = tape.global_avg_pool(map)?;
        tape.release(map)?;
        Ok(pooled)
    }

    fn visit<'a>(&'a self, prefix: &str, out: &mut Vec<(String, Entry<'a>)>) {
        for (i, (conv, bn)) in self.convs.iter().zip(&self.bns).enumerate() {
            conv.visit(&join(prefix, &format!("conv{}", i + 1)), out);
            bn.visit(&join(prefix, &format!("bn{}", i + 1)), out);
        }
    }
}

impl Encoder for ConvNet {
    fn dim(&self) -> usize {
        self.widths.0[3]
    }

    fn feature_map_with(
        &mut self,
        tape: &mut Tape,
        x: Var,
        train: bool,
        hook: &mut StageHook<'_>,
    ) -> Result<Var> {
        let shape = tape.shape(x)?;
        if shape.len() != 4 || shape[1] != self.in_channels {
            return Err(Error::shape(
                "ConvNet",
                &[shape],
                format!("expected [N, {}, H, W] images", self.in_channels),
            ));
        }
        // Each activation is released once the next op has read it (a no-op
        // on a recording tape); the caller's input is left alone.
        let mut h = x;
        for (conv, bn) in self.convs.iter_mut().zip(&mut self.bns) {
            let c = conv.forward(tape, h)?;
            if h != x {
                tape.release(h)?;
            }
            let r = bn.forward_relu(tape, c, train)?;
            tape.release(c)?;
            h = after_stage(tape, r, hook)?;
        }
        Ok(h)
    }
}
