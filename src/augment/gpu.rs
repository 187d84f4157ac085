//! Host side of `shaders/augment/augment.wgsl`: the packed `u8` upload, the
//! per-view parameter records and the three dispatches.

use bytemuck::{Pod, Zeroable};

use super::config::AugmentConfig;
use super::params::{BlurKernel, ViewParams};
use super::{check, sample_params_at};
use crate::data::Batch;
use crate::error::Result;
use crate::gpu::{Binding, DeviceClass, Gpu, Kernel, PooledBuffer, Usage, dispatch, uniform};
use crate::tensor::Tensor;

const SOURCE: &str = include_str!("../../shaders/augment/augment.wgsl");

/// Compiled without runtime bounds checks (1.2-1.5x on CPU drivers): the
/// shader clamps every source coordinate, and [`check`] guarantees the
/// rest — a batch of the declared shape, one record per view, blur radii
/// below the view's size, and the staging buffers sized whenever a record
/// asks for contrast or blur.
const fn trusted(entry: &'static str) -> Kernel {
    Kernel {
        trusted: true,
        ..Kernel::new("augment", SOURCE, entry)
    }
}

const COLOUR: Kernel = trusted("colour");
const CONTRAST: Kernel = trusted("contrast");
const BLUR_H: Kernel = trusted("blur_h");
const BLUR_V: Kernel = trusted("blur_v");

/// A batch of `u8` images on the GPU, `B x H x W x C`, four bytes to a
/// `u32` word: a quarter of the upload an f32 batch would need.
pub struct U8Batch {
    gpu: Gpu,
    buf: PooledBuffer,
    shape: [usize; 4],
}

impl std::fmt::Debug for U8Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "U8Batch{:?}", self.shape)
    }
}

/// The shader reads source texels three words at a time and may read two
/// words past the last texel's.
const SOURCE_PADDING: u64 = 8;

/// Copies `bytes` into a pooled storage buffer of `len` bytes (at least the
/// data rounded up to whole words).
fn upload_bytes(gpu: &Gpu, what: &str, bytes: &[u8], len: u64) -> Result<PooledBuffer> {
    gpu.check_binding(|| what.to_string(), len)?;
    let buf = PooledBuffer::acquire(&gpu.inner, Usage::Storage, len.max(4), true);
    let _gl = gpu.inner.gl();
    // write_buffer wants whole words: the aligned prefix as is, the tail padded.
    let aligned = bytes.len() / 4 * 4;
    if aligned > 0 {
        gpu.queue().write_buffer(buf.buffer(), 0, &bytes[..aligned]);
    }
    if aligned < bytes.len() {
        let mut tail = [0u8; 4];
        tail[..bytes.len() - aligned].copy_from_slice(&bytes[aligned..]);
        gpu.queue()
            .write_buffer(buf.buffer(), aligned as u64, &tail);
    }
    Ok(buf)
}

/// Bytes of the source binding for a batch of `bytes` bytes.
fn source_len(bytes: usize) -> u64 {
    bytes.next_multiple_of(4) as u64 + SOURCE_PADDING
}

impl U8Batch {
    /// Uploads `images`, `shape` = `[B, H, W, C]` bytes, images back to back.
    pub fn upload(gpu: &Gpu, images: &[u8], shape: [usize; 4]) -> Result<U8Batch> {
        let want = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
        if want != Some(images.len()) {
            return Err(crate::Error::invalid(
                "U8Batch::upload",
                format!("shape {shape:?} but {} bytes", images.len()),
            ));
        }
        let what = format!("a u8 batch of shape {shape:?}");
        let buf = upload_bytes(gpu, &what, images, source_len(images.len()))?;
        Ok(U8Batch {
            gpu: gpu.clone(),
            buf,
            shape,
        })
    }

    /// Uploads a [`Loader`](crate::data::Loader)'s batch.
    pub fn from_batch(gpu: &Gpu, batch: &Batch) -> Result<U8Batch> {
        let shape = [batch.len(), batch.height, batch.width, batch.channels];
        U8Batch::upload(gpu, &batch.images, shape)
    }

    /// `[B, H, W, C]`.
    pub fn shape(&self) -> [usize; 4] {
        self.shape
    }

    /// The device the batch lives on.
    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }
}

/// Two views of every image of `batch`, with parameters drawn for training
/// step `step` under `seed`.
pub fn views(batch: &U8Batch, config: &AugmentConfig, seed: u64, step: u64) -> Result<[Tensor; 2]> {
    views_at(batch, config, seed, step, 0)
}

/// [`views`] of images `first..` of the step's global batch (a rank's
/// shard of it): the parameters a one-process run draws for them.
pub fn views_at(
    batch: &U8Batch,
    config: &AugmentConfig,
    seed: u64,
    step: u64,
    first: usize,
) -> Result<[Tensor; 2]> {
    let [b, h, w, _] = batch.shape;
    config.validate()?;
    let params = sample_params_at(config, seed, step, first, b, (h, w));
    views_with(batch, config, &params)
}

uniform! {
    pub(crate) struct Params {
        batch: u32,
        in_h: u32,
        in_w: u32,
        out_h: u32,
        out_w: u32,
        _pad0: u32,
        _pad1: u32,
        _pad2: u32,
        mean: [f32; 4],
        deviation: [f32; 4],
    }
}

/// One view's record, as `View` in the shader.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct GpuView {
    affine: [f32; 6],
    brightness: f32,
    contrast: f32,
    saturation: f32,
    hue: f32,
    order: u32,
    gray: u32,
    blur_radius: u32,
    solarize: u32,
    noise_std: f32,
    noise_key: u32,
    blur_first: f32,
    blur_step: f32,
    blur_ratio: f32,
    _pad: u32,
}

impl From<&ViewParams> for GpuView {
    fn from(p: &ViewParams) -> GpuView {
        let j = &p.jitter;
        let blur = BlurKernel::new(p.blur_sigma, p.blur_radius);
        GpuView {
            affine: p.affine,
            brightness: j.brightness,
            contrast: j.contrast,
            saturation: j.saturation,
            hue: j.hue,
            order: (0..4).map(|k| (j.order[k] as u32) << (2 * k)).sum(),
            gray: p.grayscale as u32,
            blur_radius: p.blur_radius,
            solarize: p.solarize as u32,
            noise_std: p.noise_std,
            noise_key: p.noise_key,
            blur_first: blur.first,
            blur_step: blur.step,
            blur_ratio: blur.ratio,
            _pad: 0,
        }
    }
}

/// Two views of every image of `batch` with explicit parameters,
/// `params[image][view]` (from [`sample_params`] or made by hand).
pub fn views_with(
    batch: &U8Batch,
    config: &AugmentConfig,
    params: &[[ViewParams; 2]],
) -> Result<[Tensor; 2]> {
    let gpu = &batch.gpu;
    let [b, h, w, c] = batch.shape;
    check(b * h * w * c, batch.shape, config, params)?;
    let (oh, ow) = config.output_size(h, w);
    let (mean, std) = config.normalize.for_channels(c);
    let p = Params {
        batch: b as u32,
        in_h: h as u32,
        in_w: w as u32,
        out_h: oh as u32,
        out_w: ow as u32,
        _pad0: 0,
        _pad1: 0,
        _pad2: 0,
        mean: [mean[0], mean[1], mean[2], 0.0],
        deviation: [std[0], std[1], std[2], 1.0],
    };
    let records: Vec<GpuView> = params.iter().flatten().map(GpuView::from).collect();
    let records: &[u8] = bytemuck::cast_slice(&records);
    let records = upload_bytes(gpu, "view parameters", records, records.len() as u64)?;
    let records = || Binding::buffer(2, records.buffer(), (b * 2 * size_of::<GpuView>()) as u64);
    let src = Binding::buffer(1, batch.buf.buffer(), source_len(b * h * w * c));

    let out = [
        Tensor::uninit(gpu, &[b, c, oh, ow])?,
        Tensor::uninit(gpu, &[b, c, oh, ow])?,
    ];
    // Staging only when some view waits for its contrast mean or its blur;
    // otherwise a placeholder the kernels never touch fills the binding.
    let any_blur = params.iter().flatten().any(|p| p.blur_radius > 0);
    let any_contrast = params.iter().flatten().any(|p| p.jitter.contrast != 1.0);
    let scratch =
        |needed: bool, shape: &[usize]| Tensor::uninit(gpu, if needed { shape } else { &[1] });
    let staged = [2 * b, c, oh, ow];
    let pre = scratch(any_blur || any_contrast, &staged)?;
    // See the shader's WG.
    let wg = match gpu.class() {
        DeviceClass::Cpu => 16,
        DeviceClass::Gpu => 64,
    };
    let partials = scratch(any_contrast, &[b, 2, wg])?;
    let constants = [("CHANNELS", c as f64), ("WG", wg as f64)];
    let groups = [b as u32, 2, 1];
    dispatch(
        gpu,
        &COLOUR,
        &constants,
        &p,
        &[
            src,
            records(),
            out[0].binding(3),
            out[1].binding(4),
            pre.binding(5),
            partials.binding(7),
        ],
        groups,
    )?;
    if any_contrast {
        dispatch(
            gpu,
            &CONTRAST,
            &constants,
            &p,
            &[
                records(),
                out[0].binding(3),
                out[1].binding(4),
                pre.binding(5),
                partials.binding(7),
            ],
            groups,
        )?;
    }
    if any_blur {
        let tmp = Tensor::uninit(gpu, &staged)?;
        dispatch(
            gpu,
            &BLUR_H,
            &constants,
            &p,
            &[records(), pre.binding(5), tmp.binding(6)],
            groups,
        )?;
        dispatch(
            gpu,
            &BLUR_V,
            &constants,
            &p,
            &[
                records(),
                out[0].binding(3),
                out[1].binding(4),
                tmp.binding(6),
            ],
            groups,
        )?;
    }
    Ok(out)
}
