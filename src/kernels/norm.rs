//! Host side of `shaders/norm/`: batch normalisation (training and eval
//! mode, affine or not) and layer normalisation, forward and backward.

use crate::error::{Error, Result};
use crate::gpu::{Gpu, Kernel, dispatch, uniform};
use crate::tensor::Tensor;

const BATCH_NORM: &str = include_str!("../../shaders/norm/batch_norm.wgsl");
const LAYER_NORM: &str = include_str!("../../shaders/norm/layer_norm.wgsl");

/// Trusted (compiled without runtime bounds checks): every index the shader
/// forms is below `N * C * L` or `C`, the sizes [`bn_dims`] and
/// [`check_channels`] have checked the bound tensors against.
fn bn_kernel(entry: &'static str) -> Kernel {
    Kernel {
        trusted: true,
        ..Kernel::new("norm/batch_norm", BATCH_NORM, entry)
    }
}

fn ln_kernel(entry: &'static str) -> Kernel {
    Kernel::new("norm/layer_norm", LAYER_NORM, entry)
}

uniform! {
    pub(crate) struct BnParams {
        n: u32,
        momentum: f32,
        eps: f32,
        total: u32,
    }
}

/// The override constants C and L of `shaders/norm/batch_norm.wgsl`, then
/// `extra`: a pipeline per layer shape, so the shader divides by constants.
fn bn_constants(c: usize, l: usize, extra: &[(&'static str, f64)]) -> Vec<(&'static str, f64)> {
    let mut k = vec![("C", c as f64), ("L", l as f64)];
    k.extend_from_slice(extra);
    k
}

/// The per-channel statistics a batch-norm forward used, kept for its backward.
#[derive(Clone, Debug)]
pub struct BatchStats {
    /// `[C]`: the batch mean (training) or the running mean (eval).
    pub mean: Tensor,
    /// `[C]`: 1 / sqrt(var + eps) of the same variance.
    pub invstd: Tensor,
}

/// `(n, c, l)` of an `[N, C]` or `[N, C, H, W]` input.
fn bn_dims(op: &'static str, x: &[usize]) -> Result<(usize, usize, usize)> {
    match *x {
        [n, c] => Ok((n, c, 1)),
        [n, c, h, w] => Ok((n, c, h * w)),
        _ => Err(Error::shape(
            op,
            &[x],
            "batch norm takes [N, C] or [N, C, H, W] inputs",
        )),
    }
}

fn check_channels(op: &'static str, x: &Tensor, c: usize, ts: &[&Tensor]) -> Result<()> {
    for t in ts {
        x.same_gpu(t, op)?;
        if t.shape() != [c] {
            return Err(Error::shape(
                op,
                &[x.shape(), t.shape()],
                format!("per-channel tensors must be [{c}]"),
            ));
        }
    }
    Ok(())
}

fn bn_params(n: usize, momentum: f32, eps: f32, total: usize) -> BnParams {
    BnParams {
        n: n as u32,
        momentum,
        eps,
        total: total as u32,
    }
}

/// Batch normalisation of `x` (`[N, C]` or `[N, C, H, W]`) per channel.
///
/// Training mode (`train`) normalises with the batch mean and biased
/// variance and updates `running_mean` and `running_var` in place:
/// `r = (1 - momentum) r + momentum b`, with the unbiased variance, as
/// PyTorch does. Eval mode normalises with the running estimates. `affine`
/// is `(gamma, beta)`, each `[C]`. Returns the output and the statistics used.
pub fn batch_norm(
    x: &Tensor,
    affine: Option<(&Tensor, &Tensor)>,
    running_mean: &Tensor,
    running_var: &Tensor,
    train: bool,
    momentum: f32,
    eps: f32,
) -> Result<(Tensor, BatchStats)> {
    let running = (running_mean, running_var);
    batch_norm_with(x, affine, running, train, momentum, eps, false)
}

/// `relu(batch_norm(x))` in the passes of [`batch_norm`] alone: the
/// normalisation writes max(y, 0). Same arguments and statistics; its
/// backward is [`batch_norm_relu_backward`].
pub fn batch_norm_relu(
    x: &Tensor,
    affine: Option<(&Tensor, &Tensor)>,
    running_mean: &Tensor,
    running_var: &Tensor,
    train: bool,
    momentum: f32,
    eps: f32,
) -> Result<(Tensor, BatchStats)> {
    let running = (running_mean, running_var);
    batch_norm_with(x, affine, running, train, momentum, eps, true)
}

fn batch_norm_with(
    x: &Tensor,
    affine: Option<(&Tensor, &Tensor)>,
    (running_mean, running_var): (&Tensor, &Tensor),
    train: bool,
    momentum: f32,
    eps: f32,
    relu: bool,
) -> Result<(Tensor, BatchStats)> {
    let (n, c, l) = bn_dims("batch_norm", x.shape())?;
    check_channels("batch_norm", x, c, &[running_mean, running_var])?;
    if train && n * l < 2 {
        return Err(Error::shape(
            "batch_norm",
            &[x.shape()],
            "training mode needs more than one value per channel",
        ));
    }
    let gpu = x.gpu();
    let p = bn_params(n, momentum, eps, n);
    let stats = BatchStats {
        mean: Tensor::uninit(gpu, &[c])?,
        invstd: Tensor::uninit(gpu, &[c])?,
    };
    if x.numel() == 0 {
        return Ok((Tensor::uninit(gpu, x.shape())?, stats));
    }
    let stat_bindings = [
        x.binding(1),
        stats.mean.binding(2),
        stats.invstd.binding(3),
        running_mean.binding(4),
        running_var.binding(5),
    ];
    if train {
        let groups = channel_groups(gpu, c, n * l)?;
        let k = bn_constants(c, l, &[]);
        dispatch(gpu, &bn_kernel("stats"), &k, &p, &stat_bindings, groups)?;
    } else {
        let groups = [c.div_ceil(64) as u32, 1, 1];
        dispatch(
            gpu,
            &bn_kernel("eval_stats"),
            &bn_constants(c, l, &[]),
            &p,
            &stat_bindings[1..],
            groups,
        )?;
    }
    let y = normalize_with(x, &stats, affine, relu)?;
    Ok((y, stats))
}

/// One rank's share of synchronised batch norm: the per-channel mean and
/// biased variance of `x` (`[N, C]` or `[N, C, H, W]`), each `[C]`,
/// touching no running estimate.
pub fn batch_norm_moments(x: &Tensor) -> Result<(Tensor, Tensor)> {
    let (n, c, l) = bn_dims("batch_norm", x.shape())?;
    if n * l == 0 {
        return Err(Error::shape("batch_norm", &[x.shape()], "an empty batch"));
    }
    let gpu = x.gpu();
    let mean = Tensor::uninit(gpu, &[c])?;
    let var = Tensor::uninit(gpu, &[c])?;
    dispatch(
        gpu,
        &bn_kernel("stats"),
        &bn_constants(c, l, &[("MOMENTS", 1.0)]),
        &bn_params(n, 0.0, 0.0, n),
        &[
            x.binding(1),
            mean.binding(2),
            var.binding(3),
            // Bound but never written with MOMENTS.
            mean.binding(4),
            var.binding(5),
        ],
        channel_groups(gpu, c, n * l)?,
    )?;
    Ok((mean, var))
}

/// Moves the running estimates towards `mean` and `unbiased_var` (each
/// `[C]`): `r = (1 - momentum) r + momentum b`, in place.
pub fn batch_norm_update_running(
    running_mean: &Tensor,
    running_var: &Tensor,
    mean: &Tensor,
    unbiased_var: &Tensor,
    momentum: f32,
) -> Result<()> {
    let c = running_mean.numel();
    check_channels(
        "batch_norm",
        running_mean,
        c,
        &[running_var, mean, unbiased_var],
    )?;
    let gpu = mean.gpu();
    dispatch(
        gpu,
        &bn_kernel("update_running"),
        &bn_constants(c, 1, &[]),
        &bn_params(1, momentum, 0.0, 1),
        &[
            mean.binding(2),
            unbiased_var.binding(3),
            running_mean.binding(4),
            running_var.binding(5),
        ],
        [c.div_ceil(64) as u32, 1, 1],
    )
}

/// `(x - mean) invstd (gamma + beta)` with the given statistics.
pub fn batch_norm_normalize(
    x: &Tensor,
    stats: &BatchStats,
    affine: Option<(&Tensor, &Tensor)>,
) -> Result<Tensor> {
    normalize_with(x, stats, affine, false)
}

fn normalize_with(
    x: &Tensor,
    stats: &BatchStats,
    affine: Option<(&Tensor, &Tensor)>,
    relu: bool,
) -> Result<Tensor> {
    let (n, c, l) = bn_dims("batch_norm", x.shape())?;
    check_channels("batch_norm", x, c, &[&stats.mean, &stats.invstd])?;
    if let Some((g, b)) = affine {
        check_channels("batch_norm", x, c, &[g, b])?;
    }
    let gpu = x.gpu();
    let y = Tensor::uninit(gpu, x.shape())?;
    if x.numel() == 0 {
        return Ok(y);
    }
    let (gamma, beta) = affine.unwrap_or((&stats.mean, &stats.mean));
    dispatch(
        gpu,
        &bn_kernel("normalize"),
        &bn_constants(
            c,
            l,
            &[
                ("AFFINE", affine.is_some() as u32 as f64),
                ("RELU", relu as u32 as f64),
            ],
        ),
        &bn_params(n, 0.0, 0.0, n),
        &[
            x.binding(1),
            stats.mean.binding(2),
            stats.invstd.binding(3),
            gamma.binding(4),
            beta.binding(5),
            y.binding(6),
        ],
        slice_groups(gpu, c, n * l)?,
    )?;
    Ok(y)
}

/// Values each invocation of the element-wise kernels aims to handle: a few,
/// so the channel's uniform loads are shared, with slices enough to fill
/// the device on small layers.
const PER_INVOCATION: usize = 4;

/// Workgroups of 256 for the element-wise kernels: one row per channel,
/// cut into slices of about `PER_INVOCATION` values per invocation.
fn slice_groups(gpu: &Gpu, c: usize, per_channel: usize) -> Result<[u32; 3]> {
    let [c, ..] = channel_groups(gpu, c, 0)?;
    let max = gpu.limits().max_compute_workgroups_per_dimension as usize;
    let slices = per_channel.div_ceil(256 * PER_INVOCATION).clamp(1, max);
    within_loop_limit(per_channel, per_channel.div_ceil(256 * slices))?;
    Ok([c, slices as u32, 1])
}

/// The most iterations a kernel's loop may run per invocation: llvmpipe
/// ends a loop after 65 535.
const LOOP_LIMIT: usize = 65_535;

/// `iterations` (of one invocation, over a channel of `per_channel`
/// values) within [`LOOP_LIMIT`], or the limit error.
fn within_loop_limit(per_channel: usize, iterations: usize) -> Result<()> {
    if iterations > LOOP_LIMIT {
        return Err(Error::Limit {
            what: format!("a batch norm over {per_channel} values per channel"),
            limit: "loop iterations per invocation",
            requested: iterations as u64,
            allowed: LOOP_LIMIT as u64,
        });
    }
    Ok(())
}

/// One workgroup per channel, each summing `per_channel` values 256 at a time.
fn channel_groups(gpu: &Gpu, c: usize, per_channel: usize) -> Result<[u32; 3]> {
    within_loop_limit(per_channel, per_channel.div_ceil(256))?;
    let max = gpu.limits().max_compute_workgroups_per_dimension as usize;
    if c > max {
        return Err(Error::Limit {
            what: format!("a batch norm over {c} channels"),
            limit: "max_compute_workgroups_per_dimension",
            requested: c as u64,
            allowed: max as u64,
        });
    }
    Ok([c as u32, 1, 1])
}

fn check_backward(x: &Tensor, dy: &Tensor, stats: &BatchStats) -> Result<(usize, usize, usize)> {
    let (n, c, l) = bn_dims("batch_norm_backward", x.shape())?;
    if dy.shape() != x.shape() {
        return Err(Error::shape(
            "batch_norm_backward",
            &[x.shape(), dy.shape()],
            "the output gradient must have the input's shape",
        ));
    }
    x.same_gpu(dy, "batch_norm_backward")?;
    check_channels("batch_norm_backward", x, c, &[&stats.mean, &stats.invstd])?;
    Ok((n, c, l))
}

/// The gradients of [`batch_norm`] given dL/dy: `(dx, dgamma, dbeta)`;
/// dgamma and dbeta are computed in any case (dx needs them in training mode).
pub fn batch_norm_backward(
    x: &Tensor,
    dy: &Tensor,
    stats: &BatchStats,
    gamma: Option<&Tensor>,
    train: bool,
) -> Result<(Tensor, Tensor, Tensor)> {
    let (dgamma, dbeta) = batch_norm_backward_reduce(x, dy, stats)?;
    let n = bn_dims("batch_norm_backward", x.shape())?.0;
    let dx = batch_norm_backward_input(x, dy, stats, gamma, (&dgamma, &dbeta), train, n)?;
    Ok((dx, dgamma, dbeta))
}

/// The gradients of [`batch_norm_relu`] given dL/dy, as
/// [`batch_norm_backward`]'s with dy zeroed where the output is zero. The
/// kernels recompute the normalised x for that mask, so they take beta
/// beside gamma: `affine` as the forward had it.
pub fn batch_norm_relu_backward(
    x: &Tensor,
    dy: &Tensor,
    stats: &BatchStats,
    affine: Option<(&Tensor, &Tensor)>,
    train: bool,
) -> Result<(Tensor, Tensor, Tensor)> {
    let mask = Some(affine);
    let (dgamma, dbeta) = backward_reduce_with(x, dy, stats, mask)?;
    let n = bn_dims("batch_norm_backward", x.shape())?.0;
    let sums = (&dgamma, &dbeta);
    let dx = backward_input_with(x, dy, stats, affine.map(|a| a.0), sums, train, n, mask)?;
    Ok((dx, dgamma, dbeta))
}

/// The per-channel sums of the backward: `(dgamma, dbeta)` = (sum of dy
/// xhat, sum of dy), each `[C]`.
pub fn batch_norm_backward_reduce(
    x: &Tensor,
    dy: &Tensor,
    stats: &BatchStats,
) -> Result<(Tensor, Tensor)> {
    backward_reduce_with(x, dy, stats, None)
}

/// The tensors a relu mask is recomputed from: `Some(affine)` for
/// [`batch_norm_relu`]'s backward (`affine` = the forward's gamma and beta,
/// or `None` without them), `None` for plain batch norm.
type ReluMask<'a> = Option<Option<(&'a Tensor, &'a Tensor)>>;

/// The `RELU` and `AFFINE` constants and the (gamma, beta) to bind for a
/// mask; the mean stands in for tensors the shader does not read.
fn mask_bindings<'a>(
    x: &Tensor,
    c: usize,
    stats: &'a BatchStats,
    mask: ReluMask<'a>,
) -> Result<(bool, bool, &'a Tensor, &'a Tensor)> {
    let affine = mask.flatten();
    if let Some((g, b)) = affine {
        check_channels("batch_norm_backward", x, c, &[g, b])?;
    }
    let (g, b) = affine.unwrap_or((&stats.mean, &stats.mean));
    Ok((mask.is_some(), affine.is_some(), g, b))
}

fn backward_reduce_with(
    x: &Tensor,
    dy: &Tensor,
    stats: &BatchStats,
    mask: ReluMask<'_>,
) -> Result<(Tensor, Tensor)> {
    let (n, c, l) = check_backward(x, dy, stats)?;
    let (relu, affine, gamma, beta) = mask_bindings(x, c, stats, mask)?;
    let gpu = x.gpu();
    if x.numel() == 0 {
        return Ok((Tensor::zeros(gpu, &[c])?, Tensor::zeros(gpu, &[c])?));
    }
    let dgamma = Tensor::uninit(gpu, &[c])?;
    let dbeta = Tensor::uninit(gpu, &[c])?;
    let flags = [
        ("AFFINE", affine as u32 as f64),
        ("RELU", relu as u32 as f64),
    ];
    dispatch(
        gpu,
        &bn_kernel("backward_reduce"),
        &bn_constants(c, l, &flags),
        &bn_params(n, 0.0, 0.0, n),
        &[
            x.binding(1),
            dy.binding(2),
            stats.mean.binding(3),
            stats.invstd.binding(4),
            dgamma.binding(5),
            dbeta.binding(6),
            gamma.binding(7),
            beta.binding(8),
        ],
        channel_groups(gpu, c, n * l)?,
    )?;
    Ok((dgamma, dbeta))
}

/// dL/dx of batch norm given the per-channel sums `(dgamma, dbeta)` of
/// [`batch_norm_backward_reduce`] over a batch of `total` samples (this
/// tensor's, or the whole batch across ranks when synchronised).
pub fn batch_norm_backward_input(
    x: &Tensor,
    dy: &Tensor,
    stats: &BatchStats,
    gamma: Option<&Tensor>,
    sums: (&Tensor, &Tensor),
    train: bool,
    total: usize,
) -> Result<Tensor> {
    backward_input_with(x, dy, stats, gamma, sums, train, total, None)
}

#[allow(clippy::too_many_arguments)]
fn backward_input_with(
    x: &Tensor,
    dy: &Tensor,
    stats: &BatchStats,
    gamma: Option<&Tensor>,
    (dgamma, dbeta): (&Tensor, &Tensor),
    train: bool,
    total: usize,
    mask: ReluMask<'_>,
) -> Result<Tensor> {
    let (n, c, l) = check_backward(x, dy, stats)?;
    if let Some(g) = gamma {
        check_channels("batch_norm_backward", x, c, &[g])?;
    }
    check_channels("batch_norm_backward", x, c, &[dgamma, dbeta])?;
    let (relu, _, _, beta) = mask_bindings(x, c, stats, mask)?;
    let gpu = x.gpu();
    let dx = Tensor::uninit(gpu, x.shape())?;
    if x.numel() == 0 {
        return Ok(dx);
    }
    dispatch(
        gpu,
        &bn_kernel("backward_input"),
        &bn_constants(
            c,
            l,
            &[
                ("AFFINE", gamma.is_some() as u32 as f64),
                ("TRAIN", train as u32 as f64),
                ("RELU", relu as u32 as f64),
            ],
        ),
        &bn_params(n, 0.0, 0.0, total),
        &[
            x.binding(1),
            dy.binding(2),
            stats.mean.binding(3),
            stats.invstd.binding(4),
            gamma.unwrap_or(&stats.mean).binding(5),
            dgamma.binding(6),
            dbeta.binding(7),
            dx.binding(8),
            beta.binding(9),
        ],
        slice_groups(gpu, c, n * l)?,
    )?;
    Ok(dx)
}

uniform! {
    pub(crate) struct LnParams {
        rows: u32,
        d: u32,
        eps: f32,
        _pad: u32,
    }
}

fn ln_dims(x: &Tensor, gamma: &Tensor, beta: &Tensor) -> Result<(usize, usize)> {
    let Some(&d) = x.shape().last() else {
        return Err(Error::shape(
            "layer_norm",
            &[x.shape()],
            "the input needs at least one dimension",
        ));
    };
    check_channels("layer_norm", x, d, &[gamma, beta])?;
    Ok((x.numel() / d.max(1), d))
}

fn rows_groups(rows: usize) -> [u32; 3] {
    [rows.div_ceil(64) as u32, 1, 1]
}

/// Layer normalisation over the last dimension with a learned `gamma` and
/// `beta` (`[D]`). Returns the output and the per-row mean and 1/std.
pub fn layer_norm(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f32,
) -> Result<(Tensor, Tensor, Tensor)> {
    let (rows, d) = ln_dims(x, gamma, beta)?;
    let gpu = x.gpu();
    let p = LnParams {
        rows: rows as u32,
        d: d as u32,
        eps,
        _pad: 0,
    };
    let y = Tensor::uninit(gpu, x.shape())?;
    let mean = Tensor::uninit(gpu, &[rows])?;
    let rstd = Tensor::uninit(gpu, &[rows])?;
    dispatch(
        gpu,
        &ln_kernel("forward"),
        &[],
        &p,
        &[
            x.binding(1),
            gamma.binding(2),
            beta.binding(3),
            y.binding(4),
            mean.binding(5),
            rstd.binding(6),
        ],
        rows_groups(rows),
    )?;
    Ok((y, mean, rstd))
}

/// The gradients of [`layer_norm`] given dL/dy: `(dx, dgamma, dbeta)`.
pub fn layer_norm_backward(
    x: &Tensor,
    dy: &Tensor,
    gamma: &Tensor,
    mean: &Tensor,
    rstd: &Tensor,
) -> Result<(Tensor, Tensor, Tensor)> {
    let (rows, d) = ln_dims(x, gamma, gamma)?;
    if dy.shape() != x.shape() || mean.shape() != [rows] || rstd.shape() != [rows] {
        return Err(Error::shape(
            "layer_norm_backward",
            &[x.shape(), dy.shape(), mean.shape(), rstd.shape()],
            "expected dy shaped as x and per-row statistics",
        ));
    }
    let gpu = x.gpu();
    let p = LnParams {
        rows: rows as u32,
        d: d as u32,
        eps: 0.0,
        _pad: 0,
    };
    let dx = Tensor::uninit(gpu, x.shape())?;
    let dgamma = Tensor::uninit(gpu, &[d])?;
    let dbeta = Tensor::uninit(gpu, &[d])?;
    dispatch(
        gpu,
        &ln_kernel("backward_input"),
        &[],
        &p,
        &[
            x.binding(1),
            dy.binding(2),
            gamma.binding(3),
            mean.binding(4),
            rstd.binding(5),
            dx.binding(6),
        ],
        rows_groups(rows),
    )?;
    dispatch(
        gpu,
        &ln_kernel("backward_params"),
        &[],
        &p,
        &[
            x.binding(1),
            dy.binding(2),
            mean.binding(3),
            rstd.binding(4),
            dgamma.binding(5),
            dbeta.binding(6),
        ],
        rows_groups(d),
    )?;
    Ok((dx, dgamma, dbeta))
}
