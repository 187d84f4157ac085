//! Host side of `shaders/loss/gram.wgsl`: tiles of a Gram-like product
//! `op(A)·op(B)` that are reduced, written as a bounded strip, or multiplied
//! back into a gradient, so that a D x D matrix is never held whole.

use crate::error::Result;
use crate::gpu::{Gpu, Kernel, dispatch, uniform};
use crate::tensor::Tensor;

const SOURCE: &str = include_str!("../../shaders/loss/gram.wgsl");
const PENALTY: Kernel = Kernel::new("loss/gram", SOURCE, "penalty");
const GRAD_STRIP: Kernel = Kernel::new("loss/gram", SOURCE, "grad_strip");
const ACCUMULATE: Kernel = Kernel::new("loss/gram", SOURCE, "accumulate");

/// Rows and columns of the product one invocation computes, and invocations
/// per workgroup (as in the shader).
const RB: usize = 8;
const CB: usize = 16;
const WG: usize = 16;

uniform! {
    pub(crate) struct Params {
        m: u32,
        n: u32,
        k: u32,
        diag_off: u32,
        a_off: u32,
        a_rs: u32,
        a_ks: u32,
        b_off: u32,
        b_ks: u32,
        b_cs: u32,
        out_off: u32,
        out_ld: u32,
        symmetric: u32,
        acc_scale: f32,
        w_off: f32,
        w_diag: f32,
        t_diag: f32,
        scale: f32,
        _pad0: u32,
        _pad1: u32,
    }
}

/// A strided matrix view of a tensor: element `(r, k)` is
/// `t[off + r * row_stride + k * k_stride]` (for B: `(k, c)` is
/// `t[off + k * k_stride + c * row_stride]`).
#[derive(Clone, Copy)]
pub(crate) struct View<'a> {
    pub t: &'a Tensor,
    pub off: usize,
    pub row_stride: usize,
    pub k_stride: usize,
}

/// `P = A·B` of `m x n` over `k`, with row `r` of P being row
/// `r + diag_off` of the whole matrix (for the diagonal test).
#[derive(Clone, Copy)]
pub(crate) struct Product<'a> {
    pub a: View<'a>,
    pub b: View<'a>,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub diag_off: usize,
}

/// The penalty on `c = acc_scale * P`: `w_off c²` off the diagonal and
/// `w_diag (c - t_diag)²` on it. `symmetric` asserts that P is symmetric.
#[derive(Clone, Copy)]
pub(crate) struct Penalty {
    pub acc_scale: f32,
    pub w_off: f32,
    pub w_diag: f32,
    pub t_diag: f32,
    pub symmetric: bool,
}

impl Product<'_> {
    fn params(&self, pen: Penalty, out_off: usize, out_ld: usize, scale: f32) -> Params {
        Params {
            m: self.m as u32,
            n: self.n as u32,
            k: self.k as u32,
            diag_off: self.diag_off as u32,
            a_off: self.a.off as u32,
            a_rs: self.a.row_stride as u32,
            a_ks: self.a.k_stride as u32,
            b_off: self.b.off as u32,
            b_ks: self.b.k_stride as u32,
            b_cs: self.b.row_stride as u32,
            out_off: out_off as u32,
            out_ld: out_ld as u32,
            symmetric: pen.symmetric as u32,
            acc_scale: pen.acc_scale,
            w_off: pen.w_off,
            w_diag: pen.w_diag,
            t_diag: pen.t_diag,
            scale,
            _pad0: 0,
            _pad1: 0,
        }
    }

    fn groups(&self) -> [u32; 3] {
        [
            self.m.div_ceil(RB).div_ceil(WG) as u32,
            self.n.div_ceil(CB) as u32,
            1,
        ]
    }

    /// How many partial sums [`Product::penalty`] writes.
    pub(crate) fn partials(&self) -> usize {
        let [x, y, _] = self.groups();
        x as usize * y as usize * WG
    }

    /// Writes the penalty's partial sums to `partial[off .. off + partials()]`.
    pub(crate) fn penalty(&self, pen: Penalty, partial: &Tensor, off: usize) -> Result<()> {
        let p = self.params(pen, off, 0, 1.0);
        dispatch(
            partial.gpu(),
            &PENALTY,
            &[],
            &p,
            &[self.a.t.binding(1), self.b.t.binding(2), partial.binding(3)],
            self.groups(),
        )
    }

    /// Writes `scale * g * dPenalty/dc` for this product's rows into `strip`
    /// (row stride `n`).
    pub(crate) fn grad_strip(
        &self,
        pen: Penalty,
        scale: f32,
        g: &Tensor,
        strip: &Tensor,
    ) -> Result<()> {
        let p = self.params(pen, 0, self.n, scale);
        dispatch(
            strip.gpu(),
            &GRAD_STRIP,
            &[],
            &p,
            &[
                self.a.t.binding(1),
                self.b.t.binding(2),
                strip.binding(3),
                g.binding(4),
            ],
            self.groups(),
        )
    }

    /// `out[off + r * ld + c] += scale * P[r, c]`.
    pub(crate) fn accumulate(&self, scale: f32, out: &Tensor, off: usize, ld: usize) -> Result<()> {
        let pen = Penalty {
            acc_scale: 1.0,
            w_off: 0.0,
            w_diag: 0.0,
            t_diag: 0.0,
            symmetric: false,
        };
        let p = self.params(pen, off, ld, scale);
        dispatch(
            out.gpu(),
            &ACCUMULATE,
            &[],
            &p,
            &[self.a.t.binding(1), self.b.t.binding(2), out.binding(3)],
            self.groups(),
        )
    }
}

/// Rows per strip when a D x D product is walked in strips: a strip holds
/// about as many elements as the `n x d` embeddings (at least 2^20), so the
/// backward's memory stays O(N·D) while strips stay large enough to keep
/// every core busy; and never more than one storage binding holds.
pub(crate) fn strip_rows(gpu: &Gpu, n: usize, d: usize) -> usize {
    let d = d.max(1);
    let binding = gpu.limits().max_storage_buffer_binding_size as usize / 4;
    let rows = (n * d).max(1 << 20).min(binding) / d;
    rows.clamp(1, d)
}
