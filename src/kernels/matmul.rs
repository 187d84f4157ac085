//! Host side of `shaders/matmul/`: C = op(A) · op(B), with op a transpose
//! chosen per operand, optionally batched, in three variants side by side.

use bytemuck::{Pod, Zeroable};

use crate::error::{Error, Result};
use crate::gpu::{Gpu, Kernel, dispatch};
use crate::tensor::Tensor;

/// The matmul kernels, each a file under `shaders/matmul/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MatmulVariant {
    /// One output per invocation: the readable reference and the baseline.
    Naive,
    /// 64 x 64 workgroup-memory tiles, 4 x 4 outputs per invocation.
    Tiled,
    /// Barrier-free 8 x 16 register blocks: the default.
    Blocked,
}

impl MatmulVariant {
    /// Every variant, in order of sophistication.
    pub const ALL: [MatmulVariant; 3] = [
        MatmulVariant::Naive,
        MatmulVariant::Tiled,
        MatmulVariant::Blocked,
    ];

    /// The name used in benchmark ids and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            MatmulVariant::Naive => "naive",
            MatmulVariant::Tiled => "tiled",
            MatmulVariant::Blocked => "blocked",
        }
    }

    /// Parses [`MatmulVariant::name`].
    pub fn from_name(name: &str) -> Option<MatmulVariant> {
        MatmulVariant::ALL.into_iter().find(|v| v.name() == name)
    }

    /// The fastest variant measured for the adapter's kind. `blocked` won
    /// on both kinds measured (`examples/matmul.rs`, README.md): on lavapipe
    /// it is 4-9x faster than `tiled`, and on an NVIDIA H200 through Vulkan
    /// it ran at 3.7 TFLOP/s at 1024 where `tiled` ran at 0.33, because all
    /// lanes of a warp read the same B values as well.
    pub fn default_for(_gpu: &Gpu) -> MatmulVariant {
        MatmulVariant::Blocked
    }

    fn kernel(self) -> Kernel {
        match self {
            MatmulVariant::Naive => Kernel::new(
                "matmul/naive",
                include_str!("../../shaders/matmul/naive.wgsl"),
                "main",
            ),
            MatmulVariant::Tiled => Kernel::new(
                "matmul/tiled",
                include_str!("../../shaders/matmul/tiled.wgsl"),
                "main",
            ),
            // Every load index is clamped in the shader, so the runtime
            // bounds checks can go.
            MatmulVariant::Blocked => Kernel {
                trusted: true,
                ..Kernel::new(
                    "matmul/blocked",
                    include_str!("../../shaders/matmul/blocked.wgsl"),
                    "main",
                )
            },
        }
    }

    /// Workgroups for an m x n output of `batch` matrices.
    fn groups(self, m: usize, n: usize, batch: usize) -> [u64; 3] {
        let (m, n, b) = (m as u64, n as u64, batch as u64);
        match self {
            MatmulVariant::Naive => [n.div_ceil(16), m.div_ceil(16), b],
            MatmulVariant::Tiled => [n.div_ceil(64), m.div_ceil(64), b],
            MatmulVariant::Blocked => [m.div_ceil(8).div_ceil(64), n.div_ceil(16), b],
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    m: u32,
    n: u32,
    k: u32,
    _pad0: u32,
    stride_a: u32,
    stride_b: u32,
    stride_c: u32,
    _pad1: u32,
}

/// Splits a shape into (batch, rows, cols); rank 2 or 3.
fn matrix_dims(
    op: &'static str,
    shape: &[usize],
    all: &[&[usize]],
) -> Result<(usize, usize, usize)> {
    match *shape {
        [r, c] => Ok((1, r, c)),
        [b, r, c] => Ok((b, r, c)),
        _ => Err(Error::shape(
            op,
            all,
            "operands must be matrices or batches of matrices (rank 2 or 3)",
        )),
    }
}

/// `op(A) · op(B)` with the device's default variant. `trans_a` multiplies by
/// Aᵀ without materialising it (likewise `trans_b`). A is `[M, K]` (`[K, M]`
/// if transposed) or a batch `[batch, ., .]`; B likewise with `[K, N]`; a
/// rank-2 operand is shared by every matrix of a batch.
pub fn matmul(a: &Tensor, b: &Tensor, trans_a: bool, trans_b: bool) -> Result<Tensor> {
    matmul_with(MatmulVariant::default_for(a.gpu()), a, b, trans_a, trans_b)
}

/// [`matmul`] with an explicit variant.
pub fn matmul_with(
    variant: MatmulVariant,
    a: &Tensor,
    b: &Tensor,
    trans_a: bool,
    trans_b: bool,
) -> Result<Tensor> {
    a.same_gpu(b, "matmul")?;
    let all = [a.shape(), b.shape()];
    let (ba, ra, ca) = matrix_dims("matmul", a.shape(), &all)?;
    let (bb, rb, cb) = matrix_dims("matmul", b.shape(), &all)?;
    let (m, k) = if trans_a { (ca, ra) } else { (ra, ca) };
    let (kb, n) = if trans_b { (cb, rb) } else { (rb, cb) };
    if k != kb {
        return Err(Error::shape(
            "matmul",
            &all,
            format!(
                "inner dimensions differ: op(A) is {m}x{k}, op(B) is {kb}x{n} (trans_a={trans_a}, trans_b={trans_b})"
            ),
        ));
    }
    let batched = a.rank() == 3 || b.rank() == 3;
    let batch = ba.max(bb);
    if (a.rank() == 3 && ba != batch) || (b.rank() == 3 && bb != batch) {
        return Err(Error::shape("matmul", &all, "batch sizes differ"));
    }
    let out_shape: Vec<usize> = if batched {
        vec![batch, m, n]
    } else {
        vec![m, n]
    };
    let out = Tensor::uninit(a.gpu(), &out_shape)?;
    if out.numel() == 0 {
        return Ok(out);
    }
    if k == 0 {
        return Tensor::zeros(a.gpu(), &out_shape);
    }
    let p = Params {
        m: m as u32,
        n: n as u32,
        k: k as u32,
        _pad0: 0,
        stride_a: if a.rank() == 3 { (m * k) as u32 } else { 0 },
        stride_b: if b.rank() == 3 { (k * n) as u32 } else { 0 },
        stride_c: (m * n) as u32,
        _pad1: 0,
    };
    let gpu = a.gpu();
    let max = gpu.limits().max_compute_workgroups_per_dimension as u64;
    let g = variant.groups(m, n, batch);
    if let Some(&over) = g.iter().find(|&&d| d > max) {
        return Err(Error::Limit {
            what: format!(
                "matmul {m}x{k} · {k}x{n} (batch {batch}) with variant {}",
                variant.name()
            ),
            limit: "max_compute_workgroups_per_dimension",
            requested: over,
            allowed: max,
        });
    }
    dispatch(
        gpu,
        &variant.kernel(),
        &[
            ("TRANS_A", trans_a as u32 as f64),
            ("TRANS_B", trans_b as u32 as f64),
        ],
        &p,
        &[a.binding(1), b.binding(2), out.binding(3)],
        g.map(|d| d as u32),
    )?;
    Ok(out)
}
