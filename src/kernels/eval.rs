//! Host side of `shaders/eval/`: row L2 normalisation for the kNN
//! evaluation.

use crate::error::{Error, Result};
use crate::gpu::{Kernel, dispatch, uniform};
use crate::tensor::Tensor;

const NORMALIZE_ROWS: Kernel = Kernel::new(
    "eval/normalize_rows",
    include_str!("../../shaders/eval/normalize_rows.wgsl"),
    "main",
);

uniform! {
    pub(crate) struct Params {
        start: u32,
        count: u32,
        d: u32,
        _pad: u32,
    }
}

/// Rows `start .. start + count` of the `[rows, d]` matrix `x`, each divided
/// by its L2 norm (all-zero rows stay zero), as a fresh `[count, d]` tensor.
pub fn normalize_rows(x: &Tensor, start: usize, count: usize) -> Result<Tensor> {
    let &[rows, d] = x.shape() else {
        return Err(Error::shape(
            "normalize_rows",
            &[x.shape()],
            "expected a [rows, d] matrix",
        ));
    };
    if start.checked_add(count).is_none_or(|end| end > rows) {
        return Err(Error::shape(
            "normalize_rows",
            &[x.shape()],
            format!(
                "rows {start}..{} are out of range",
                start.saturating_add(count)
            ),
        ));
    }
    let gpu = x.gpu();
    let y = Tensor::uninit(gpu, &[count, d])?;
    if y.numel() == 0 {
        return Ok(y);
    }
    let p = Params {
        start: start as u32,
        count: count as u32,
        d: d as u32,
        _pad: 0,
    };
    let grid = gpu.grid((count as u64).div_ceil(64))?;
    dispatch(
        gpu,
        &NORMALIZE_ROWS,
        &[],
        &p,
        &[x.binding(1), y.binding(2)],
        grid,
    )?;
    Ok(y)
}
