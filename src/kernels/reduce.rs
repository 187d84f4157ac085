//! Host side of `shaders/reduce/`: sums and means over one axis or over all
//! elements.

use crate::error::{Error, Result};
use crate::gpu::{Kernel, dispatch, uniform};
use crate::tensor::Tensor;

const ROWS: Kernel = Kernel::new(
    "reduce/rows",
    include_str!("../../shaders/reduce/rows.wgsl"),
    "main",
);
const SHORT_ROWS: Kernel = Kernel::new(
    "reduce/rows",
    include_str!("../../shaders/reduce/rows.wgsl"),
    "short",
);
/// The longest row `short` sums in one invocation.
const SHORT_ROW: usize = 64;
const AXIS: Kernel = Kernel::new(
    "reduce/axis",
    include_str!("../../shaders/reduce/axis.wgsl"),
    "main",
);

/// Elements one workgroup of rows.wgsl reduces in the first level of a
/// whole-tensor sum.
const CHUNK: usize = 4096;

uniform! {
    pub(crate) struct RowParams {
        len: u32,
        total: u32,
        scale: f32,
        _pad: u32,
    }
}

uniform! {
    pub(crate) struct AxisParams {
        outer: u32,
        len: u32,
        inner: u32,
        scale: f32,
    }
}

/// Sums consecutive runs of `len` elements of `x` (the last run may be short)
/// into `out`, times `scale`; `square` squares the elements first.
fn rows(x: &Tensor, len: usize, scale: f32, out_shape: &[usize], square: bool) -> Result<Tensor> {
    let total = x.numel();
    let out = Tensor::uninit(x.gpu(), out_shape)?;
    let runs = total.div_ceil(len.max(1)).max(1);
    let p = RowParams {
        len: len as u32,
        total: total as u32,
        scale,
        _pad: 0,
    };
    let (kernel, grid) = if len <= SHORT_ROW {
        (&SHORT_ROWS, x.gpu().grid(runs.div_ceil(64) as u64)?)
    } else {
        (&ROWS, x.gpu().grid(runs as u64)?)
    };
    dispatch(
        x.gpu(),
        kernel,
        &[("SQUARE", square as u32 as f64)],
        &p,
        &[x.binding(1), out.binding(2)],
        grid,
    )?;
    Ok(out)
}

/// `scale * sum(x)` as a tensor of shape `[]`, in two levels (chunks, then
/// their partial sums) so that every workgroup has bounded work.
pub fn sum_all_scaled(x: &Tensor, scale: f32) -> Result<Tensor> {
    sum_all_impl(x, scale, false)
}

/// The sum of squares of all elements (the squared L2 norm), shape `[]`.
pub fn sum_squares_all(x: &Tensor) -> Result<Tensor> {
    sum_all_impl(x, 1.0, true)
}

fn sum_all_impl(x: &Tensor, scale: f32, square: bool) -> Result<Tensor> {
    let mut cur = x.clone();
    let mut square = square;
    while cur.numel() > CHUNK {
        let parts = cur.numel().div_ceil(CHUNK);
        cur = rows(&cur, CHUNK, 1.0, &[parts], square)?;
        // Only the first level squares; later levels add partial sums.
        square = false;
    }
    rows(&cur, cur.numel().max(1), scale, &[], square)
}

/// The sum of all elements, shape `[]`.
pub fn sum_all(x: &Tensor) -> Result<Tensor> {
    sum_all_scaled(x, 1.0)
}

/// The mean of all elements, shape `[]`.
pub fn mean_all(x: &Tensor) -> Result<Tensor> {
    if x.numel() == 0 {
        return Err(Error::invalid("mean_all", "the tensor is empty"));
    }
    sum_all_scaled(x, 1.0 / x.numel() as f32)
}

/// The longest axis the strided kernel sums in one invocation (two
/// elements per loop iteration: well under llvmpipe's 65 535).
const AXIS_RANGE: usize = 65_536;

/// `scale * sum` over `axis`, which is removed from the shape.
pub fn sum_axis_scaled(x: &Tensor, axis: usize, scale: f32) -> Result<Tensor> {
    let shape = x.shape();
    if axis >= shape.len() {
        return Err(Error::shape(
            "sum",
            &[shape],
            format!("axis {axis} is out of range for rank {}", shape.len()),
        ));
    }
    let outer: usize = shape[..axis].iter().product();
    let len = shape[axis];
    let inner: usize = shape[axis + 1..].iter().product();
    let mut out_shape = shape.to_vec();
    out_shape.remove(axis);
    if inner == 1 {
        // The innermost axis: rows are contiguous; one workgroup each.
        if len == 0 {
            return crate::tensor::Tensor::zeros(x.gpu(), &out_shape);
        }
        return rows(x, len, scale, &out_shape, false);
    }
    if len > AXIS_RANGE {
        // One invocation sums the whole axis, and llvmpipe ends a loop
        // after 65 535 iterations: sum equal pieces, then the pieces.
        let parts = (len.div_ceil(AXIS_RANGE)..len)
            .find(|p| len.is_multiple_of(*p))
            .ok_or_else(|| {
                Error::invalid(
                    "sum",
                    format!("an axis of {len} elements (a prime above {AXIS_RANGE}) cannot be cut into equal pieces"),
                )
            })?;
        let pieces = x.reshape(&[outer, parts, len / parts, inner])?;
        let partial = sum_axis_scaled(&pieces, 2, 1.0)?;
        return sum_axis_scaled(&partial, 1, scale)?.reshape(&out_shape);
    }
    let out = Tensor::uninit(x.gpu(), &out_shape)?;
    let p = AxisParams {
        outer: outer as u32,
        len: len as u32,
        inner: inner as u32,
        scale,
    };
    let grid = x.gpu().grid(((outer * inner) as u64).div_ceil(256))?;
    dispatch(
        x.gpu(),
        &AXIS,
        &[],
        &p,
        &[x.binding(1), out.binding(2)],
        grid,
    )?;
    Ok(out)
}

/// The sum over `axis`, which is removed from the shape.
pub fn sum_axis(x: &Tensor, axis: usize) -> Result<Tensor> {
    sum_axis_scaled(x, axis, 1.0)
}

/// The mean over `axis`, which is removed from the shape.
pub fn mean_axis(x: &Tensor, axis: usize) -> Result<Tensor> {
    let len = x.shape().get(axis).copied().unwrap_or(0);
    if len == 0 {
        return Err(Error::shape(
            "mean",
            &[x.shape()],
            format!("axis {axis} is empty or out of range"),
        ));
    }
    sum_axis_scaled(x, axis, 1.0 / len as f32)
}

/// Sums `g` down to `shape` over the dimensions where `shape` was broadcast
/// (the backward of broadcasting).
pub fn sum_to_shape(g: &Tensor, shape: &[usize]) -> Result<Tensor> {
    if g.shape() == shape {
        return Ok(g.clone());
    }
    let lead = g.rank() - shape.len();
    let mut cur = g.clone();
    // Leading dimensions the operand did not have: sum them away.
    for _ in 0..lead {
        cur = sum_axis(&cur, 0)?;
    }
    // Dimensions of size 1 that were repeated: sum, then restore the 1.
    for d in 0..shape.len() {
        if shape[d] == 1 && cur.shape()[d] != 1 {
            let mut kept = cur.shape().to_vec();
            kept[d] = 1;
            cur = sum_axis(&cur, d)?.reshape(&kept)?;
        }
    }
    cur.reshape(shape)
}
