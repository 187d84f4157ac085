//! The tape's part in a distributed step (see [`crate::dist`]): rows
//! gathered from every rank, and batch norm whose statistics span the
//! global batch. Both read values back to the host, exchange them through
//! the group and upload the result; without a group of more than one rank
//! neither communicates.

use super::{BatchNormState, CustomOp, Tape, Var};
use crate::dist::Dist;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::kernels::norm::{self, BatchStats};
use crate::tensor::Tensor;

impl Tape {
    /// A recording tape whose step spans `dist`'s group (`None`: this
    /// process alone).
    pub fn with_dist(gpu: &Gpu, dist: Option<Dist>) -> Tape {
        Tape {
            dist,
            ..Tape::new(gpu)
        }
    }

    /// The group this tape's step spans, if any.
    pub fn dist(&self) -> Option<&Dist> {
        self.dist.as_ref()
    }

    /// A forward-only tape ([`Tape::no_grad`]) on the same device and
    /// group: an EMA target's forward, whose batch norm must see the same
    /// global batch as the online network's.
    pub fn detached(&self) -> Tape {
        Tape {
            dist: self.dist.clone(),
            ..Tape::no_grad(&self.gpu)
        }
    }

    /// The group, when it has more than one rank.
    pub(super) fn spread(&self) -> Option<Dist> {
        self.dist.clone().filter(|d| d.size() > 1)
    }

    /// `x` (`[n, ...]`) of every rank, `[size * n, ...]` in rank order, so
    /// a loss that needs batch statistics sees the global batch; without a
    /// group, `x` itself. The backward hands each rank the gradient of its
    /// own rows times the group's size: every rank computes the same loss,
    /// and the gradients are averaged over the ranks after the backward
    /// (see [`crate::dist`]).
    pub fn gather_rows(&mut self, x: Var) -> Result<Var> {
        let Some(d) = self.spread() else {
            return Ok(x);
        };
        let t = self.value(x)?.clone();
        let Some(&rows) = t.shape().first() else {
            return Err(Error::shape(
                "gather_rows",
                &[t.shape()],
                "a scalar has no rows",
            ));
        };
        let all = d.group.all_gather(&t.to_vec()?)?;
        let mut shape = t.shape().to_vec();
        shape[0] = rows * d.size();
        let out = Tensor::from_slice(&self.gpu, &all, &shape)?;
        let op = GatherRows {
            rank: d.rank(),
            size: d.size(),
            shape: t.shape().to_vec(),
        };
        self.record_custom(op, &[x], out, vec![])
    }

    /// Batch norm in training mode with statistics over the global batch:
    /// each rank's per-channel mean and variance are combined (in double
    /// precision, weighted by the ranks' sample counts) into the global
    /// ones, which normalise and update the running estimates on every
    /// rank alike. The backward sums the per-channel gradient sums over the
    /// ranks in the same way.
    pub(super) fn sync_batch_norm(
        &mut self,
        x: Var,
        affine: Option<(Var, Var)>,
        state: &BatchNormState<'_>,
        d: Dist,
    ) -> Result<Var> {
        let tx = self.value(x)?.clone();
        let (n, l) = match *tx.shape() {
            [n, _] => (n, 1),
            [n, _, h, w] => (n, h * w),
            _ => {
                return Err(Error::shape(
                    "batch_norm",
                    &[tx.shape()],
                    "batch norm takes [N, C] or [N, C, H, W] inputs",
                ));
            }
        };
        let (mean, var) = norm::batch_norm_moments(&tx)?;
        let (m, v) = (mean.read_async(), var.read_async());
        let (m, v) = (m.wait()?, v.wait()?);
        let c = m.len();
        // Per channel: the sum of the values and of their squares, and the
        // number of values, summed over the ranks.
        let count = (n * l) as f64;
        let mut sums: Vec<f64> = m.iter().map(|&mu| count * mu as f64).collect();
        sums.extend(
            m.iter()
                .zip(&v)
                .map(|(&mu, &var)| count * (var as f64 + (mu as f64).powi(2))),
        );
        sums.push(n as f64);
        d.group.all_reduce_sum_f64(&mut sums)?;
        let samples = sums[2 * c] as usize;
        let total = samples as f64 * l as f64;
        let mut g_mean = Vec::with_capacity(c);
        let mut g_invstd = Vec::with_capacity(c);
        let mut unbiased = Vec::with_capacity(c);
        for ch in 0..c {
            let mu = sums[ch] / total;
            let var = (sums[c + ch] / total - mu * mu).max(0.0);
            g_mean.push(mu as f32);
            g_invstd.push((1.0 / (var + state.eps as f64).sqrt()) as f32);
            unbiased.push((var * total / (total - 1.0).max(1.0)) as f32);
        }
        let stats = BatchStats {
            mean: Tensor::from_slice(&self.gpu, &g_mean, &[c])?,
            invstd: Tensor::from_slice(&self.gpu, &g_invstd, &[c])?,
        };
        let unbiased = Tensor::from_slice(&self.gpu, &unbiased, &[c])?;
        norm::batch_norm_update_running(
            state.running_mean,
            state.running_var,
            &stats.mean,
            &unbiased,
            state.momentum,
        )?;
        let params = affine
            .map(|(g, b)| Ok::<_, Error>((self.value(g)?.clone(), self.value(b)?.clone())))
            .transpose()?;
        let y = norm::batch_norm_normalize(&tx, &stats, params.as_ref().map(|(g, b)| (g, b)))?;
        let mut inputs = vec![x];
        let mut saved = vec![tx, stats.mean, stats.invstd];
        if let (Some((g, b)), Some((tg, _))) = (affine, params) {
            inputs.extend([g, b]);
            saved.push(tg);
        }
        self.record_custom(SyncBatchNorm { dist: d, samples }, &inputs, y, saved)
    }
}

/// [`Tape::gather_rows`]'s backward.
#[derive(Debug)]
struct GatherRows {
    rank: usize,
    size: usize,
    /// This rank's input shape.
    shape: Vec<usize>,
}

impl CustomOp for GatherRows {
    fn backward(&self, _: &[Tensor], g: &Tensor, _: &[bool]) -> Result<Vec<Option<Tensor>>> {
        let len: usize = self.shape.iter().product();
        let all = g.to_vec()?;
        let scale = self.size as f32;
        let mine: Vec<f32> = all[self.rank * len..(self.rank + 1) * len]
            .iter()
            .map(|v| v * scale)
            .collect();
        Ok(vec![Some(Tensor::from_slice(g.gpu(), &mine, &self.shape)?)])
    }
}

/// [`Tape::sync_batch_norm`]'s backward. `saved` is `[x, mean, invstd]`
/// and gamma when affine.
struct SyncBatchNorm {
    dist: Dist,
    /// Samples in the global batch.
    samples: usize,
}

impl std::fmt::Debug for SyncBatchNorm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncBatchNorm")
            .field("dist", &self.dist)
            .field("samples", &self.samples)
            .finish()
    }
}

impl CustomOp for SyncBatchNorm {
    fn backward(
        &self,
        saved: &[Tensor],
        g: &Tensor,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor>>> {
        let x = &saved[0];
        let stats = BatchStats {
            mean: saved[1].clone(),
            invstd: saved[2].clone(),
        };
        let (dgamma, dbeta) = norm::batch_norm_backward_reduce(x, g, &stats)?;
        let (rg, rb) = (dgamma.read_async(), dbeta.read_async());
        let mut sums = rg.wait()?;
        let c = sums.len();
        sums.extend(rb.wait()?);
        self.dist.group.all_reduce_sum(&mut sums)?;
        let gpu = x.gpu();
        let global_dgamma = Tensor::from_slice(gpu, &sums[..c], &[c])?;
        let global_dbeta = Tensor::from_slice(gpu, &sums[c..], &[c])?;
        let dx = norm::batch_norm_backward_input(
            x,
            g,
            &stats,
            saved.get(3),
            (&global_dgamma, &global_dbeta),
            true,
            self.samples,
        )?;
        // The parameters' gradients are this rank's own sums: averaged over
        // the ranks after the backward, like every other gradient.
        let mut grads = vec![Some(dx)];
        if needs.len() == 3 {
            grads.extend([Some(dgamma), Some(dbeta)]);
        }
        Ok(grads)
    }
}
