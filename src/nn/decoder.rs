//! The decoder of the reconstruction methods: from an encoder's feature
//! map back to an image. Each stage doubles the resolution with a
//! transposed convolution (k 4, s 2, p 1) and refines it with a 3x3
//! convolution, each followed by batch norm and ReLU; a 1x1 convolution
//! with a bias gives the image's channels. For masked modelling a learned
//! mask token fills the masked positions of the feature map first.

use super::{Arch, BatchNorm, Conv2d, ConvTranspose2d, Entry, Init, Module, Param, join};
use crate::autograd::{Tape, Var};
use crate::error::{Error, Result};
use crate::gpu::Gpu;

/// Names match a PyTorch module with a `mask_token` parameter `[1, C, 1,
/// 1]` (when it has one) and an `nn.Sequential` `layers`: per stage i,
/// ConvTranspose2d at 6i, BatchNorm2d 6i + 1, ReLU, Conv2d 6i + 3,
/// BatchNorm2d 6i + 4, ReLU; the 1x1 head last.
#[derive(Debug)]
pub struct Decoder {
    in_channels: usize,
    widths: Vec<usize>,
    out_channels: usize,
    mask_token: Option<Param>,
    stages: Vec<(ConvTranspose2d, BatchNorm, Conv2d, BatchNorm)>,
    head: Conv2d,
}

impl Decoder {
    /// `widths` gives each stage's channels (one stage per doubling).
    pub fn new(
        gpu: &Gpu,
        in_channels: usize,
        widths: &[usize],
        out_channels: usize,
        mask_token: bool,
        init: &mut Init,
    ) -> Result<Decoder> {
        if widths.is_empty() || widths.contains(&0) || in_channels == 0 || out_channels == 0 {
            return Err(Error::invalid(
                "Decoder",
                format!(
                    "{in_channels} -> {widths:?} -> {out_channels}: need one or more stages, no width zero"
                ),
            ));
        }
        let token = if mask_token {
            // MAE's and SparK's init: std 0.02 (here uniform, of that std).
            Some(Param::new(init.uniform(
                gpu,
                &[1, in_channels, 1, 1],
                0.02 * 3f32.sqrt(),
            )?))
        } else {
            None
        };
        let mut stages = Vec::new();
        let mut c = in_channels;
        for &w in widths {
            stages.push((
                ConvTranspose2d::new(gpu, init, c, w, 4, 2, 1, false)?,
                BatchNorm::new(gpu, w, true)?,
                Conv2d::new(gpu, init, w, w, 3, 1, 1, false)?,
                BatchNorm::new(gpu, w, true)?,
            ));
            c = w;
        }
        Ok(Decoder {
            in_channels,
            widths: widths.to_vec(),
            out_channels,
            mask_token: token,
            stages,
            head: Conv2d::new(gpu, init, c, out_channels, 1, 1, 0, true)?,
        })
    }

    /// The decoder on `z` whose positions with `keep` 0 (`[N, 1, h, w]`)
    /// are replaced by the mask token: `z keep + token (1 - keep)`.
    pub fn forward_masked(
        &mut self,
        tape: &mut Tape,
        z: Var,
        keep: Var,
        train: bool,
    ) -> Result<Var> {
        let token = self
            .mask_token
            .as_mut()
            .ok_or_else(|| Error::invalid("Decoder", "this decoder has no mask token"))?
            .register(tape)?;
        let kept = tape.mul(z, keep)?;
        let hole = tape.scale(keep, -1.0)?;
        let hole = tape.add_scalar(hole, 1.0)?;
        let filled = tape.mul(hole, token)?;
        let input = tape.add(kept, filled)?;
        self.forward(tape, input, train)
    }
}

impl Module for Decoder {
    fn arch(&self) -> Arch {
        Arch::Decoder {
            in_channels: self.in_channels,
            widths: self.widths.clone(),
            out_channels: self.out_channels,
            mask_token: self.mask_token.is_some(),
        }
    }

    fn forward(&mut self, tape: &mut Tape, x: Var, train: bool) -> Result<Var> {
        let shape = tape.shape(x)?;
        if shape.len() != 4 || shape[1] != self.in_channels {
            return Err(Error::shape(
                "Decoder",
                &[shape],
                format!("expected [N, {}, h, w] features", self.in_channels),
            ));
        }
        let mut h = x;
        for (up, bn1, conv, bn2) in &mut self.stages {
            let u = up.forward(tape, h)?;
            if h != x {
                tape.release(h)?;
            }
            let r = bn1.forward_relu(tape, u, train)?;
            tape.release(u)?;
            let c = conv.forward(tape, r)?;
            tape.release(r)?;
            h = bn2.forward_relu(tape, c, train)?;
            tape.release(c)?;
        }
        let y = self.head.forward(tape, h)?;
        tape.release(h)?;
        Ok(y)
    }

    fn visit<'a>(&'a self, prefix: &str, out: &mut Vec<(String, Entry<'a>)>) {
        if let Some(t) = &self.mask_token {
            out.push((join(prefix, "mask_token"), Entry::Param(t)));
        }
        let layers = join(prefix, "layers");
        for (i, (up, bn1, conv, bn2)) in self.stages.iter().enumerate() {
            up.visit(&join(&layers, &(6 * i).to_string()), out);
            bn1.visit(&join(&layers, &(6 * i + 1).to_string()), out);
            conv.visit(&join(&layers, &(6 * i + 3).to_string()), out);
            bn2.visit(&join(&layers, &(6 * i + 4).to_string()), out);
        }
        self.head
            .visit(&join(&layers, &(6 * self.stages.len()).to_string()), out);
    }
}
