//! Host side of `shaders/transpose/transpose.wgsl`.

use crate::error::{Error, Result};
use crate::gpu::{Kernel, dispatch, uniform};
use crate::tensor::Tensor;

const TRANSPOSE: Kernel = Kernel::new(
    "transpose",
    include_str!("../../shaders/transpose/transpose.wgsl"),
    "main",
);

uniform! {
    pub(crate) struct Params {
        rows: u32,
        cols: u32,
        batch: u32,
        _pad: u32,
    }
}

/// Swaps the last two dimensions: `[.., M, N]` becomes `[.., N, M]`.
pub fn transpose(x: &Tensor) -> Result<Tensor> {
    let shape = x.shape();
    if shape.len() < 2 {
        return Err(Error::shape(
            "transpose",
            &[shape],
            "needs at least two dimensions",
        ));
    }
    let r = shape.len();
    let (rows, cols) = (shape[r - 2], shape[r - 1]);
    let batch: usize = shape[..r - 2].iter().product();
    let mut out_shape = shape.to_vec();
    out_shape.swap(r - 2, r - 1);
    let out = Tensor::uninit(x.gpu(), &out_shape)?;
    if out.numel() == 0 {
        return Ok(out);
    }
    let max = x.gpu().limits().max_compute_workgroups_per_dimension as usize;
    if batch > max {
        return Err(Error::Limit {
            what: format!("a transpose of {batch} matrices"),
            limit: "max_compute_workgroups_per_dimension",
            requested: batch as u64,
            allowed: max as u64,
        });
    }
    let p = Params {
        rows: rows as u32,
        cols: cols as u32,
        batch: batch as u32,
        _pad: 0,
    };
    let groups = [
        cols.div_ceil(16) as u32,
        rows.div_ceil(16) as u32,
        batch as u32,
    ];
    dispatch(
        x.gpu(),
        &TRANSPOSE,
        &[],
        &p,
        &[x.binding(1), out.binding(2)],
        groups,
    )?;
    Ok(out)
}
