//! The masked autoencoder's reconstruction loss: the mean squared error
//! over the masked patches only, against the target normalised per patch
//! (MAE's norm-pix: each patch minus its mean, over its std) or not:
//!
//! `loss = sum over masked patches q of |pred_q - t_q|^2 / (masked C p p)`.
//!
//! The fused variant works out each patch's statistics and error in one
//! pass and its backward is exactly zero on visible patches; the unfused
//! one composes tape ops with a pixel mask.

use super::LossVariant;
use crate::autograd::{CustomOp, Tape, Var};
use crate::error::{Error, Result};
use crate::kernels::loss_masked::{self as kernel, MaskedShape};
use crate::tensor::Tensor;

/// Records the masked MSE of `pred` `[N, C, H, W]` against `target` (no
/// gradient), with `mask` `[N, H / patch, W / patch]` holding 1 for the
/// `masked` patches.
#[allow(clippy::too_many_arguments)]
pub fn masked_mse(
    tape: &mut Tape,
    pred: Var,
    target: &Tensor,
    mask: &Tensor,
    masked: usize,
    patch: usize,
    norm_pix: bool,
    variant: LossVariant,
) -> Result<Var> {
    let tp = tape.value(pred)?.clone();
    let s = MaskedShape::new(tp.shape(), target.shape(), mask.shape(), patch, masked)?;
    match variant {
        LossVariant::Fused => {
            let (loss, stats) = kernel::forward(&tp, target, mask, &s, norm_pix)?;
            let saved = vec![tp, target.clone(), mask.clone(), stats];
            tape.record_custom(Fused(s), &[pred], loss, saved)
        }
        LossVariant::Unfused => {
            let (_, stats) = kernel::forward(&tp, target, mask, &s, norm_pix)?;
            let t = kernel::normalized_target(target, &stats, &s)?;
            let pixels = pixel_mask(mask, &s)?;
            let t = tape.constant(&t)?;
            let m = tape.constant(&pixels)?;
            let diff = tape.sub(pred, t)?;
            let sq = tape.square(diff)?;
            let kept = tape.mul(sq, m)?;
            let total = tape.sum_all(kept)?;
            let elements = s.masked * s.c * s.patch * s.patch;
            tape.scale(
                total,
                if elements == 0 {
                    0.0
                } else {
                    1.0 / elements as f32
                },
            )
        }
    }
}

/// The patch mask at pixel resolution, `[N, 1, H, W]` (read back and
/// expanded on the host: the reference variant's way).
fn pixel_mask(mask: &Tensor, s: &MaskedShape) -> Result<Tensor> {
    let m = mask.to_vec()?;
    let (gh, gw) = (s.h / s.patch, s.w / s.patch);
    let pixels: Vec<f32> = (0..s.n * s.h * s.w)
        .map(|i| {
            let (n, y, x) = (i / (s.h * s.w), (i / s.w) % s.h, i % s.w);
            m[(n * gh + y / s.patch) * gw + x / s.patch]
        })
        .collect();
    Tensor::from_slice(mask.gpu(), &pixels, &[s.n, 1, s.h, s.w])
}

#[derive(Debug)]
struct Fused(MaskedShape);

impl CustomOp for Fused {
    /// `saved` is `[pred, target, mask, stats]`.
    fn backward(&self, saved: &[Tensor], g: &Tensor, _: &[bool]) -> Result<Vec<Option<Tensor>>> {
        let [pred, target, mask, stats] = saved else {
            return Err(Error::invalid(
                "masked_mse backward",
                "expected 4 saved tensors",
            ));
        };
        Ok(vec![Some(kernel::backward(
            pred, target, mask, stats, g, &self.0,
        )?)])
    }
}
