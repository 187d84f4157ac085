//! ResNet-18 with the CIFAR stem (3x3 stride-1 first convolution, no max
//! pool), basic blocks, global average pool to a 512-d representation.
//! Names follow torchvision's `resnet18` (conv1, bn1, layer1.0.conv1, ...,
//! layer2.0.downsample.0 / .1), without the `fc` head.

use super::{Arch, BatchNorm, Conv2d, Encoder, Entry, Init, Module, StageHook, after_stage, join};
use crate::autograd::{Tape, Var};
use crate::error::{Error, Result};
use crate::gpu::Gpu;

#[derive(Debug)]
struct BasicBlock {
    conv1: Conv2d,
    bn1: BatchNorm,
    conv2: Conv2d,
    bn2: BatchNorm,
    downsample: Option<(Conv2d, BatchNorm)>,
}

impl BasicBlock {
    fn new(gpu: &Gpu, init: &mut Init, cin: usize, cout: usize, stride: usize) -> Result<Self> {
        let downsample = if stride != 1 || cin != cout {
            Some((
                Conv2d::new(gpu, init, cin, cout, 1, stride, 0, false)?,
                BatchNorm::new(gpu, cout, true)?,
            ))
        } else {
            None
        };
        Ok(BasicBlock {
            conv1: Conv2d::new(gpu, init, cin, cout, 3, stride, 1, false)?,
            bn1: BatchNorm::new(gpu, cout, true)?,
            conv2: Conv2d::new(gpu, init, cout, cout, 3, 1, 1, false)?,
            bn2: BatchNorm::new(gpu, cout, true)?,
            downsample,
        })
    }

    /// relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)).
    /// Every activation but `x` (the caller's) is released once read.
    fn forward(&mut self, tape: &mut Tape, x: Var, train: bool) -> Result<Var> {
        let c1 = self.conv1.forward(tape, x)?;
        let r1 = self.bn1.forward_relu(tape, c1, train)?;
        tape.release(c1)?;
        let c2 = self.conv2.forward(tape, r1)?;
        tape.release(r1)?;
        let b2 = self.bn2.forward(tape, c2, train)?;
        tape.release(c2)?;
        let shortcut = match &mut self.downsample {
            Some((conv, bn)) => {
                let s = conv.forward(tape, x)?;
                let t = bn.forward(tape, s, train)?;
                tape.release(s)?;
                t
            }
            None => x,
        };
        let sum = tape.add(b2, shortcut)?;
        tape.release(b2)?;
        if shortcut != x {
            tape.release(shortcut)?;
        }
        let out = tape.relu(sum)?;
        tape.release(sum)?;
        Ok(out)
    }

    fn visit<'a>(&'a self, prefix: &str, out: &mut Vec<(String, Entry<'a>)>) {
        self.conv1.visit(&join(prefix, "conv1"), out);
        self.bn1.visit(&join(prefix, "bn1"), out);
        self.conv2.visit(&join(prefix, "conv2"), out);
        self.bn2.visit(&join(prefix, "bn2"), out);
        if let Some((conv, bn)) = &self.downsample {
            conv.visit(&join(prefix, "downsample.0"), out);
            bn.visit(&join(prefix, "downsample.1"), out);
        }
    }
}

/// ResNet-18, CIFAR variant.
#[derive(Debug)]
pub struct ResNet18 {
    in_channels: usize,
    conv1: Conv2d,
    bn1: BatchNorm,
    /// layer1..layer4, two blocks each.
    layers: Vec<Vec<BasicBlock>>,
}

impl ResNet18 {
    /// The width of the representation.
    pub const DIM: usize = 512;

    pub fn new(gpu: &Gpu, in_channels: usize, init: &mut Init) -> Result<ResNet18> {
        let conv1 = Conv2d::new(gpu, init, in_channels, 64, 3, 1, 1, false)?;
        let bn1 = BatchNorm::new(gpu, 64, true)?;
        let mut layers = Vec::new();
        let mut cin = 64;
        for (cout, stride) in [(64, 1), (128, 2), (256, 2), (512, 2)] {
            layers.push(vec![
                BasicBlock::new(gpu, init, cin, cout, stride)?,
                BasicBlock::new(gpu, init, cout, cout, 1)?,
            ]);
            cin = cout;
        }
        Ok(ResNet18 {
            in_channels,
            conv1,
            bn1,
            layers,
        })
    }
}

impl Module for ResNet18 {
    fn arch(&self) -> Arch {
        Arch::ResNet18 {
            in_channels: self.in_channels,
        }
    }

    fn forward(&mut self, tape: &mut Tape, x: Var, train: bool) -> Result<Var> {
        let map = self.feature_map(tape, x, train)?;
        let pooled = tape.global_avg_pool(map)?;
        tape.release(map)?;
        Ok(pooled)
    }

    fn visit<'a>(&'a self, prefix: &str, out: &mut Vec<(String, Entry<'a>)>) {
        self.conv1.visit(&join(prefix, "conv1"), out);
        self.bn1.visit(&join(prefix, "bn1"), out);
        for (i, layer) in self.layers.iter().enumerate() {
            for (j, block) in layer.iter().enumerate() {
                block.visit(&join(prefix, &format!("layer{}.{j}", i + 1)), out);
            }
        }
    }
}

impl Encoder for ResNet18 {
    fn dim(&self) -> usize {
        ResNet18::DIM
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
                "ResNet18",
                &[shape],
                format!("expected [N, {}, H, W] images", self.in_channels),
            ));
        }
        let c = self.conv1.forward(tape, x)?;
        let r = self.bn1.forward_relu(tape, c, train)?;
        tape.release(c)?;
        let mut h = after_stage(tape, r, hook)?;
        for layer in &mut self.layers {
            for block in layer {
                let next = block.forward(tape, h, train)?;
                tape.release(h)?;
                h = after_stage(tape, next, hook)?;
            }
        }
        Ok(h)
    }
}
