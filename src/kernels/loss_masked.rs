//! Host side of `shaders/loss/masked_mse.wgsl`: the mean squared error of a
//! reconstruction over masked patches, against a target normalised per
//! patch or not.

use crate::error::{Error, Result};
use crate::gpu::{Kernel, dispatch, uniform};
use crate::kernels::{elementwise as ew, reduce};
use crate::tensor::Tensor;

const SOURCE: &str = include_str!("../../shaders/loss/masked_mse.wgsl");
const STATS: Kernel = Kernel::new("loss/masked_mse", SOURCE, "stats_main");
const BACKWARD: Kernel = Kernel::new("loss/masked_mse", SOURCE, "backward");
const NORMALIZE: Kernel = Kernel::new("loss/masked_mse", SOURCE, "normalize");

uniform! {
    pub(crate) struct Params {
        n: u32,
        c: u32,
        h: u32,
        w: u32,
        side: u32,
        gh: u32,
        gw: u32,
        inv_total: f32,
    }
}

/// The shapes of a masked loss: `pred` and `target` `[n, c, h, w]`, `mask`
/// `[n, h / patch, w / patch]`; `masked` patches of the mask are 1.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MaskedShape {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub patch: usize,
    pub masked: usize,
}

impl MaskedShape {
    pub fn new(
        pred: &[usize],
        target: &[usize],
        mask: &[usize],
        patch: usize,
        masked: usize,
    ) -> Result<MaskedShape> {
        let all = [pred, target, mask];
        let &[n, c, h, w] = pred else {
            return Err(Error::shape(
                "masked_mse",
                &all,
                "the reconstruction must be [N, C, H, W]",
            ));
        };
        if target != pred {
            return Err(Error::shape(
                "masked_mse",
                &all,
                "the target must have the reconstruction's shape",
            ));
        }
        if patch == 0 || !h.is_multiple_of(patch) || !w.is_multiple_of(patch) {
            return Err(Error::shape(
                "masked_mse",
                &all,
                format!("a patch of {patch} pixels does not divide the {h}x{w} images"),
            ));
        }
        if mask != [n, h / patch, w / patch] {
            return Err(Error::shape(
                "masked_mse",
                &all,
                "the mask must be [N, H / patch, W / patch]",
            ));
        }
        if masked > n * (h / patch) * (w / patch) {
            return Err(Error::invalid(
                "masked_mse",
                format!(
                    "{masked} masked patches of {}",
                    mask.iter().product::<usize>()
                ),
            ));
        }
        Ok(MaskedShape {
            n,
            c,
            h,
            w,
            patch,
            masked,
        })
    }

    fn patches(&self) -> usize {
        self.n * (self.h / self.patch) * (self.w / self.patch)
    }

    fn params(&self) -> Params {
        let u = |v: usize| v as u32;
        let total = self.masked * self.c * self.patch * self.patch;
        Params {
            n: u(self.n),
            c: u(self.c),
            h: u(self.h),
            w: u(self.w),
            side: u(self.patch),
            gh: u(self.h / self.patch),
            gw: u(self.w / self.patch),
            inv_total: if total == 0 { 0.0 } else { 1.0 / total as f32 },
        }
    }
}

fn norm_pix(on: bool) -> [(&'static str, f64); 1] {
    [("NORM_PIX", on as u32 as f64)]
}

/// The loss (shape `[]`: the mean over the masked patches' pixels and
/// channels; 0 when nothing is masked) and each patch's target mean and
/// 1 / std, `[patches, 2]`.
pub fn forward(
    pred: &Tensor,
    target: &Tensor,
    mask: &Tensor,
    s: &MaskedShape,
    normalize: bool,
) -> Result<(Tensor, Tensor)> {
    pred.same_gpu(target, "masked_mse")?;
    pred.same_gpu(mask, "masked_mse")?;
    let gpu = pred.gpu();
    let stats = Tensor::uninit(gpu, &[s.patches(), 2])?;
    let per_patch = Tensor::uninit(gpu, &[s.patches()])?;
    let grid = gpu.grid((s.patches() as u64).div_ceil(64))?;
    let b = [
        pred.binding(1),
        target.binding(2),
        mask.binding(3),
        stats.binding(4),
        per_patch.binding(5),
    ];
    dispatch(gpu, &STATS, &norm_pix(normalize), &s.params(), &b, grid)?;
    let sum = reduce::sum_all(&per_patch)?;
    let scale = if s.masked == 0 {
        0.0
    } else {
        1.0 / s.masked as f32
    };
    Ok((ew::scale(&sum, scale)?, stats))
}

/// g d(loss)/d(pred): zero on every visible patch.
pub fn backward(
    pred: &Tensor,
    target: &Tensor,
    mask: &Tensor,
    stats: &Tensor,
    g: &Tensor,
    s: &MaskedShape,
) -> Result<Tensor> {
    let gpu = pred.gpu();
    let out = Tensor::uninit(gpu, pred.shape())?;
    let grid = gpu.grid((pred.numel() as u64).div_ceil(64))?;
    let b = [
        pred.binding(1),
        target.binding(2),
        mask.binding(3),
        stats.binding(4),
        g.binding(5),
        out.binding(6),
    ];
    dispatch(gpu, &BACKWARD, &norm_pix(true), &s.params(), &b, grid)?;
    Ok(out)
}

/// The target as the loss compares it: normalised per patch with `stats`.
pub fn normalized_target(target: &Tensor, stats: &Tensor, s: &MaskedShape) -> Result<Tensor> {
    let gpu = target.gpu();
    let out = Tensor::uninit(gpu, target.shape())?;
    let grid = gpu.grid((target.numel() as u64).div_ceil(64))?;
    let b = [target.binding(2), stats.binding(4), out.binding(6)];
    dispatch(gpu, &NORMALIZE, &norm_pix(true), &s.params(), &b, grid)?;
    Ok(out)
}
