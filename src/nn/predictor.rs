//! The video predictor: from the feature maps of two consecutive frames
//! to the feature map of the next.
//!
//! `next = cur + out(relu(bn(prev(z_prev) + cur(z_cur))))`: two 3x3
//! convolutions read the two frames (together they are one convolution
//! over the two maps stacked along the channels, written as a sum so that
//! no concatenation is needed), then batch norm, ReLU and a 3x3
//! convolution with a bias back to the map's channels, added to the
//! current map. The residual makes "nothing moves" the starting point,
//! and two frames are the least that shows a velocity.

use super::{Arch, BatchNorm, Conv2d, Entry, Init, Module, join};
use crate::autograd::{Tape, Var};
use crate::error::{Error, Result};
use crate::gpu::Gpu;

/// Names match a PyTorch module with attributes `prev`, `cur` (Conv2d
/// without bias), `bn` (BatchNorm2d) and `out` (Conv2d with bias).
#[derive(Debug)]
pub struct LatentPredictor {
    channels: usize,
    hidden: usize,
    prev: Conv2d,
    cur: Conv2d,
    bn: BatchNorm,
    out: Conv2d,
}

impl LatentPredictor {
    pub fn new(
        gpu: &Gpu,
        channels: usize,
        hidden: usize,
        init: &mut Init,
    ) -> Result<LatentPredictor> {
        if channels == 0 || hidden == 0 {
            return Err(Error::invalid(
                "LatentPredictor",
                format!("{channels} channels, {hidden} hidden: neither may be 0"),
            ));
        }
        Ok(LatentPredictor {
            channels,
            hidden,
            prev: Conv2d::new(gpu, init, channels, hidden, 3, 1, 1, false)?,
            cur: Conv2d::new(gpu, init, channels, hidden, 3, 1, 1, false)?,
            bn: BatchNorm::new(gpu, hidden, true)?,
            out: Conv2d::new(gpu, init, hidden, channels, 3, 1, 1, true)?,
        })
    }

    /// The next frame's map from the maps of the previous (`z_prev`) and
    /// the current frame (`z_cur`), each `[N, channels, h, w]`.
    pub fn predict(
        &mut self,
        tape: &mut Tape,
        z_prev: Var,
        z_cur: Var,
        train: bool,
    ) -> Result<Var> {
        let (a, b) = (tape.shape(z_prev)?.to_vec(), tape.shape(z_cur)?.to_vec());
        if a != b || a.len() != 4 || a[1] != self.channels {
            return Err(Error::shape(
                "LatentPredictor",
                &[&a, &b],
                format!(
                    "expected two [N, {}, h, w] maps of one shape",
                    self.channels
                ),
            ));
        }
        let p = self.prev.forward(tape, z_prev)?;
        let c = self.cur.forward(tape, z_cur)?;
        let s = tape.add(p, c)?;
        tape.release(p)?;
        tape.release(c)?;
        let r = self.bn.forward_relu(tape, s, train)?;
        tape.release(s)?;
        let d = self.out.forward(tape, r)?;
        tape.release(r)?;
        tape.add(z_cur, d)
    }
}

impl Module for LatentPredictor {
    fn arch(&self) -> Arch {
        Arch::LatentPredictor {
            channels: self.channels,
            hidden: self.hidden,
        }
    }

    /// The predictor reads two frames: see [`LatentPredictor::predict`].
    fn forward(&mut self, _tape: &mut Tape, _x: Var, _train: bool) -> Result<Var> {
        Err(Error::invalid(
            "LatentPredictor",
            "the predictor reads the maps of two frames: call predict(z_prev, z_cur)",
        ))
    }

    fn visit<'a>(&'a self, prefix: &str, out: &mut Vec<(String, Entry<'a>)>) {
        self.prev.visit(&join(prefix, "prev"), out);
        self.cur.visit(&join(prefix, "cur"), out);
        self.bn.visit(&join(prefix, "bn"), out);
        self.out.visit(&join(prefix, "out"), out);
    }
}
