//! Host side of `shaders/matmul/`: C = op(A) · op(B), with op a transpose
//! chosen per operand, optionally batched, in four variants side by side.

use crate::error::{Error, Result};
use crate::gpu::{Binding, DeviceClass, Gpu, Kernel, copy_to_texture, dispatch, time_run, uniform};
use crate::tensor::Tensor;

pub use crate::variant::MatmulVariant;

impl MatmulVariant {
    /// The fastest variant measured for the adapter's kind
    /// (`examples/matmul.rs`, README.md). On CPU adapters `texture`: on
    /// lavapipe it is 3-4x faster than `blocked` at 1024, because a texel
    /// fetch compiles to vector loads where a storage-buffer load with a
    /// per-lane address becomes a loop over the lanes. On GPUs `blocked`: on
    /// an NVIDIA H200 through Vulkan it ran at 3.7 TFLOP/s at 1024 where
    /// `tiled` ran at 0.33.
    /// [`GpuOptions::matmul`](crate::GpuOptions::matmul) overrides it.
    pub fn default_for(gpu: &Gpu) -> MatmulVariant {
        if let Some(v) = gpu.inner.matmul {
            return v;
        }
        match gpu.class() {
            DeviceClass::Cpu => MatmulVariant::Texture,
            DeviceClass::Gpu => MatmulVariant::Blocked,
        }
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
            // Every fetch is inside the zero-padded textures; stores are guarded.
            MatmulVariant::Texture => Kernel {
                trusted: true,
                ..Kernel::new(
                    "matmul/texture",
                    include_str!("../../shaders/matmul/texture.wgsl"),
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
            // One dispatch per matrix of a batch.
            MatmulVariant::Texture => [n.div_ceil(16).div_ceil(64), m.div_ceil(16), 1],
        }
    }
}

uniform! {
    pub(crate) struct Params {
        m: u32,
        n: u32,
        k: u32,
        _pad0: u32,
        stride_a: u32,
        stride_b: u32,
        stride_c: u32,
        _pad1: u32,
    }
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

impl MatmulVariant {
    /// The variant for a product of these shapes on `gpu`: the one forced
    /// by [`GpuOptions::matmul`](crate::GpuOptions::matmul), else the
    /// fastest of `tiled`, `blocked` and `texture` measured on the device
    /// the first time the shape is met (see `gpu::tune`), else
    /// [`MatmulVariant::default_for`].
    pub fn choose(
        gpu: &Gpu,
        a: &[usize],
        b: &[usize],
        trans_a: bool,
        trans_b: bool,
    ) -> MatmulVariant {
        let fallback = MatmulVariant::default_for(gpu);
        if gpu.inner.matmul.is_some() {
            return fallback;
        }
        let key = format!(
            "matmul/{a:?}{}x{b:?}{}",
            if trans_a { "T" } else { "" },
            if trans_b { "T" } else { "" }
        );
        let candidates = [
            MatmulVariant::Tiled,
            MatmulVariant::Blocked,
            MatmulVariant::Texture,
        ]
        .map(|v| v.name());
        let mut time = |name: &'static str, to_beat: f64| -> Result<f64> {
            let variant: MatmulVariant = name.parse()?;
            let x = Tensor::full(gpu, a, 0.5)?;
            let y = Tensor::full(gpu, b, 0.25)?;
            time_run(gpu, to_beat, || {
                matmul_with(variant, &x, &y, trans_a, trans_b).map(drop)
            })
        };
        // Multiply-adds: the product of the two shapes over the shared k.
        let k = if trans_a {
            a[a.len() - 2]
        } else {
            a[a.len() - 1]
        };
        let work = (a.iter().product::<usize>() / k.max(1) * b.iter().product::<usize>()) as u64;
        gpu.tuned(&key, &candidates, fallback.name(), work, &mut time)
            .parse()
            .unwrap_or(fallback)
    }
}

/// `op(A) · op(B)` with the variant [`MatmulVariant::choose`] picks.
/// `trans_a` multiplies by Aᵀ without materialising it (likewise
/// `trans_b`). A is `[M, K]` (`[K, M]` if transposed) or a batch `[batch,
/// ., .]`; B likewise with `[K, N]`; a rank-2 operand is shared by every
/// matrix of a batch.
///
/// Where the variant is `texture` and an operand is too large to fold into
/// a texture, `blocked` does the product instead.
pub fn matmul(a: &Tensor, b: &Tensor, trans_a: bool, trans_b: bool) -> Result<Tensor> {
    let variant = MatmulVariant::choose(a.gpu(), a.shape(), b.shape(), trans_a, trans_b);
    match matmul_with(variant, a, b, trans_a, trans_b) {
        Err(Error::Limit {
            limit: "max_texture_dimension_2d",
            ..
        }) => matmul_with(MatmulVariant::Blocked, a, b, trans_a, trans_b),
        result => result,
    }
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
    if variant == MatmulVariant::Texture {
        let strides = (p.stride_a as usize, p.stride_b as usize);
        textured(a, b, &out, (m, n, k), batch, (trans_a, trans_b), strides)?;
        return Ok(out);
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

const PACK: Kernel = Kernel::new(
    "matmul/pack",
    include_str!("../../shaders/matmul/pack.wgsl"),
    "main",
);

uniform! {
    pub(crate) struct PackParams {
        rows: u32,
        cols: u32,
        base: u32,
        width: u32,
        shift: u32,
        _pad0: u32,
        _pad1: u32,
        _pad2: u32,
    }
}

uniform! {
    pub(crate) struct TextureParams {
        m: u32,
        n: u32,
        k4: u32,
        n4: u32,
        shift_a: u32,
        shift_b: u32,
        base_c: u32,
        _pad0: u32,
    }
}

/// An rgba32float texture holding op(X) as pack.wgsl lays it out.
struct Packed {
    texture: wgpu::Texture,
    view: wgpu::TextureView,
    /// Texels per matrix row.
    width: u32,
    /// log2 of the page height.
    shift: u32,
}

impl Packed {
    /// A texture for a `rows` x `width`-texel matrix, `rows` already padded.
    fn new(gpu: &Gpu, what: &str, rows: usize, width: usize) -> Result<Packed> {
        let max = gpu.limits().max_texture_dimension_2d as usize;
        // Pages are the largest power of two a texture side allows.
        let shift = max.ilog2();
        let page = 1usize << shift;
        let pages = rows.div_ceil(page);
        let (w, h) = (width * pages, rows.min(page));
        if w > max {
            return Err(Error::Limit {
                what: format!("{what} packed into a texture ({rows} rows of {width} texels)"),
                limit: "max_texture_dimension_2d",
                requested: w as u64,
                allowed: max as u64,
            });
        }
        let _gl = gpu.inner.gl();
        let texture = gpu.device().create_texture(&wgpu::TextureDescriptor {
            label: Some("darkmatter matmul operand"),
            size: wgpu::Extent3d {
                width: w as u32,
                height: h as u32,
                depth_or_array_layers: 1,
            },
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format: wgpu::TextureFormat::Rgba32Float,
            usage: wgpu::TextureUsages::STORAGE_BINDING
                | wgpu::TextureUsages::TEXTURE_BINDING
                | wgpu::TextureUsages::COPY_DST,
            view_formats: &[],
        });
        let view = texture.create_view(&wgpu::TextureViewDescriptor::default());
        Ok(Packed {
            texture,
            view,
            width: width as u32,
            shift,
        })
    }

    /// Packs op(X), a `rows` x `cols` matrix at element `base` of `x`.
    fn pack(&self, x: &Tensor, base: usize, rows: usize, cols: usize, trans: bool) -> Result<()> {
        // Where the texture's layout is the buffer's own (rows of whole
        // texels with no padding, on one page, at offsets a copy allows), a
        // copy does it; the texture is zero-initialised, so padding rows
        // below the matrix stay zero.
        let row_bytes = cols * 4;
        if !trans
            && row_bytes.is_multiple_of(wgpu::COPY_BYTES_PER_ROW_ALIGNMENT as usize)
            && cols == self.width as usize * 4
            && rows <= self.texture.height() as usize
            && base.is_multiple_of(4)
        {
            copy_to_texture(
                x.gpu(),
                x.buffer(),
                (base * 4) as u64,
                row_bytes as u32,
                &self.texture,
                (self.width, rows as u32),
            );
            return Ok(());
        }
        let p = PackParams {
            rows: rows as u32,
            cols: cols as u32,
            base: base as u32,
            width: self.width,
            shift: self.shift,
            _pad0: 0,
            _pad1: 0,
            _pad2: 0,
        };
        let groups = [
            self.texture.width().div_ceil(8),
            self.texture.height().div_ceil(8),
            1,
        ];
        dispatch(
            x.gpu(),
            &PACK,
            &[("TRANS", trans as u32 as f64)],
            &p,
            &[x.binding(1), Binding::texture(2, &self.view)],
            groups,
        )
    }
}

/// The `texture` variant: packs each operand once per matrix (once in all
/// for an operand shared by a batch), then one dispatch per matrix.
fn textured(
    a: &Tensor,
    b: &Tensor,
    out: &Tensor,
    (m, n, k): (usize, usize, usize),
    batch: usize,
    (trans_a, trans_b): (bool, bool),
    (stride_a, stride_b): (usize, usize),
) -> Result<()> {
    let gpu = a.gpu();
    let k4 = k.div_ceil(4);
    // B's texel rows cover whole 16-column blocks.
    let n4 = n.div_ceil(16) * 4;
    let ta = Packed::new(gpu, "matmul operand A", m.div_ceil(16) * 16, k4)?;
    let tb = Packed::new(gpu, "matmul operand B", k4 * 4, n4)?;
    let groups = MatmulVariant::Texture.groups(m, n, 1).map(|d| d as u32);
    for i in 0..batch {
        if i == 0 || stride_a != 0 {
            ta.pack(a, i * stride_a, m, k, trans_a)?;
        }
        if i == 0 || stride_b != 0 {
            tb.pack(b, i * stride_b, k, n, trans_b)?;
        }
        let p = TextureParams {
            m: m as u32,
            n: n as u32,
            k4: k4 as u32,
            n4: n4 as u32,
            shift_a: ta.shift,
            shift_b: tb.shift,
            base_c: (i * m * n) as u32,
            _pad0: 0,
        };
        dispatch(
            gpu,
            &MatmulVariant::Texture.kernel(),
            &[],
            &p,
            &[
                Binding::texture(1, &ta.view),
                Binding::texture(2, &tb.view),
                out.binding(3),
            ],
            groups,
        )?;
    }
    Ok(())
}
