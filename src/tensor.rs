//! Tensors: f32, row-major, rank 0 to 4, in a pooled `wgpu::Buffer`.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::gpu::{Binding, Gpu, PooledBuffer, Readback, Usage, batch_clear};

/// The largest rank a tensor may have.
pub const MAX_RANK: usize = 4;

/// An f32 tensor living on the GPU. Cloning is cheap and shares the buffer;
/// the buffer goes back to its pool when the last clone drops.
#[derive(Clone)]
pub struct Tensor {
    gpu: Gpu,
    buf: Arc<PooledBuffer>,
    shape: Vec<usize>,
}

fn numel_of(op: &'static str, shape: &[usize]) -> Result<usize> {
    if shape.len() > MAX_RANK {
        return Err(Error::shape(
            op,
            &[shape],
            format!("rank {} exceeds the maximum rank {MAX_RANK}", shape.len()),
        ));
    }
    shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| Error::shape(op, &[shape], "element count overflows"))
}

impl Tensor {
    /// A tensor with undefined contents (a kernel's output).
    pub(crate) fn uninit(gpu: &Gpu, shape: &[usize]) -> Result<Tensor> {
        Tensor::alloc(gpu, shape, false, "Tensor::uninit")
    }

    fn alloc(gpu: &Gpu, shape: &[usize], for_write: bool, op: &'static str) -> Result<Tensor> {
        let numel = numel_of(op, shape)?;
        let bytes = (numel as u64).saturating_mul(4);
        gpu.check_binding(|| format!("a tensor of shape {shape:?}"), bytes)?;
        let buf = PooledBuffer::acquire(&gpu.inner, Usage::Storage, bytes.max(4), for_write);
        Ok(Tensor {
            gpu: gpu.clone(),
            buf: Arc::new(buf),
            shape: shape.to_vec(),
        })
    }

    /// Uploads `data` as a tensor of `shape`.
    pub fn from_slice(gpu: &Gpu, data: &[f32], shape: &[usize]) -> Result<Tensor> {
        let numel = numel_of("Tensor::from_slice", shape)?;
        if numel != data.len() {
            return Err(Error::shape(
                "Tensor::from_slice",
                &[shape],
                format!("shape holds {numel} elements but {} were given", data.len()),
            ));
        }
        let t = Tensor::alloc(gpu, shape, true, "Tensor::from_slice")?;
        if !data.is_empty() {
            let _gl = gpu.inner.gl();
            gpu.queue()
                .write_buffer(t.buffer(), 0, bytemuck::cast_slice(data));
        }
        Ok(t)
    }

    /// A tensor of zeros.
    pub fn zeros(gpu: &Gpu, shape: &[usize]) -> Result<Tensor> {
        let t = Tensor::alloc(gpu, shape, false, "Tensor::zeros")?;
        batch_clear(gpu, t.buffer(), t.bytes());
        Ok(t)
    }

    /// A tensor filled with `value`, uploaded like [`Tensor::from_slice`]
    /// (zeros are cleared on the device instead: see [`Tensor::zeros`]).
    pub fn full(gpu: &Gpu, shape: &[usize], value: f32) -> Result<Tensor> {
        if value.to_bits() == 0 {
            return Tensor::zeros(gpu, shape);
        }
        let numel = numel_of("Tensor::full", shape)?;
        gpu.check_binding(
            || format!("a tensor of shape {shape:?}"),
            (numel as u64).saturating_mul(4),
        )?;
        Tensor::from_slice(gpu, &vec![value; numel], shape)
    }

    /// The shape, outermost dimension first.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The number of dimensions.
    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    /// The number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// The size of the data in bytes (the buffer may be larger: pool bucket).
    pub fn bytes(&self) -> u64 {
        (self.numel() * 4) as u64
    }

    /// The `wgpu::Buffer` holding the data, row-major from offset 0, for a
    /// host application to bind in its own passes. Usage: STORAGE, COPY_SRC,
    /// COPY_DST. Work darkmatter has recorded but not submitted yet is only
    /// visible after [`Gpu::submit`].
    pub fn buffer(&self) -> &wgpu::Buffer {
        self.buf.buffer()
    }

    /// The device this tensor lives on.
    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    /// The same data under another shape with the same element count.
    pub fn reshape(&self, shape: &[usize]) -> Result<Tensor> {
        let numel = numel_of("reshape", shape)?;
        if numel != self.numel() {
            return Err(Error::shape(
                "reshape",
                &[&self.shape, shape],
                "element counts differ",
            ));
        }
        Ok(Tensor {
            gpu: self.gpu.clone(),
            buf: self.buf.clone(),
            shape: shape.to_vec(),
        })
    }

    /// Copies the data back to the CPU, blocking.
    pub fn to_vec(&self) -> Result<Vec<f32>> {
        self.read_async().wait()
    }

    /// Starts a readback that completes once the current batch has run.
    pub fn read_async(&self) -> Readback {
        Readback::record(&self.gpu, self.buffer(), self.numel())
    }

    /// The first element, blocking (for scalars such as a loss).
    pub fn item(&self) -> Result<f32> {
        self.to_vec()?
            .first()
            .copied()
            .ok_or_else(|| Error::invalid("item", "the tensor is empty"))
    }

    /// Overwrites every value with `data` (in order after the work
    /// recorded so far): how a rank takes rank 0's parameters.
    pub fn write(&self, data: &[f32]) -> Result<()> {
        if data.len() != self.numel() {
            return Err(Error::shape(
                "Tensor::write",
                &[&self.shape],
                format!("{} values for {} elements", data.len(), self.numel()),
            ));
        }
        if self.numel() > 0 {
            let src = Tensor::from_slice(&self.gpu, data, &self.shape)?;
            crate::gpu::batch_copy(&self.gpu, src.buffer(), self.buffer(), self.bytes());
        }
        Ok(())
    }

    /// A copy in a fresh buffer.
    pub fn deep_clone(&self) -> Result<Tensor> {
        let t = Tensor::uninit(&self.gpu, &self.shape)?;
        if self.numel() > 0 {
            crate::gpu::batch_copy(&self.gpu, self.buffer(), t.buffer(), self.bytes());
        }
        Ok(t)
    }

    pub(crate) fn binding(&self, slot: u32) -> Binding<'_> {
        Binding::buffer(slot, self.buffer(), self.bytes())
    }

    pub(crate) fn same_gpu(&self, other: &Tensor, op: &'static str) -> Result<()> {
        if Arc::ptr_eq(&self.gpu.inner, &other.gpu.inner) {
            Ok(())
        } else {
            Err(Error::invalid(op, "tensors live on different devices"))
        }
    }
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tensor{:?}", self.shape)
    }
}
