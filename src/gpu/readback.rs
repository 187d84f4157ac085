//! Reading tensors back to the CPU, blocking or asynchronously.
//!
//! A readback records a copy into a mappable staging buffer in the current
//! batch. Once the batch is submitted the mapping is requested; the data can be
//! taken as soon as the device has finished, without stalling the next step.

use std::sync::{Arc, Mutex};

use super::pool::{PooledBuffer, Usage};
use super::{Gpu, batch};
use crate::error::{Error, Result};

#[derive(Debug)]
enum State {
    /// The copy is recorded in a batch that has not been submitted yet.
    Recorded,
    /// Submitted; `map_async` requested.
    Mapping,
    /// The mapping finished, successfully or not.
    Done(Result<(), String>),
}

/// The mapping half of a readback, started when its batch is submitted.
pub(crate) struct MapRequest {
    buffer: wgpu::Buffer,
    bytes: u64,
    state: Arc<Mutex<State>>,
}

impl MapRequest {
    pub(crate) fn start(self) {
        *lock(&self.state) = State::Mapping;
        let state = self.state.clone();
        self.buffer
            .slice(..self.bytes)
            .map_async(wgpu::MapMode::Read, move |r| {
                *lock(&state) = State::Done(r.map_err(|e| e.to_string()));
            });
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

/// A pending readback of `len` f32 values. Take it with [`Readback::wait`]
/// (blocking) or poll it with [`Readback::try_take`] (a step late).
pub struct Readback {
    gpu: Gpu,
    staging: PooledBuffer,
    len: usize,
    state: Arc<Mutex<State>>,
}

impl Readback {
    /// Records a copy of the first `len` f32 values of `src`.
    pub(crate) fn record(gpu: &Gpu, src: &wgpu::Buffer, len: usize) -> Readback {
        let bytes = (len.max(1) * 4) as u64;
        let staging = PooledBuffer::acquire(&gpu.inner, Usage::Staging, bytes, false);
        batch::copy(gpu, src, staging.buffer(), bytes);
        let state = Arc::new(Mutex::new(State::Recorded));
        batch::push_map(
            gpu,
            MapRequest {
                buffer: staging.buffer().clone(),
                bytes,
                state: state.clone(),
            },
        );
        Readback {
            gpu: gpu.clone(),
            staging,
            len,
            state,
        }
    }

    /// True once the data can be taken without blocking.
    pub fn is_ready(&self) -> bool {
        let gl = self.gpu.inner.gl();
        let _ = self.gpu.inner.device.poll(wgpu::PollType::Poll);
        drop(gl);
        matches!(*lock(&self.state), State::Done(_))
    }

    /// Takes the data if the device has finished, without blocking. Submits
    /// the batch holding the copy if that has not happened yet.
    pub fn try_take(&mut self) -> Option<Result<Vec<f32>>> {
        if matches!(*lock(&self.state), State::Recorded) {
            self.gpu.submit();
        }
        if self.is_ready() {
            Some(self.read())
        } else {
            None
        }
    }

    /// Blocks until the data is on the CPU.
    pub fn wait(self) -> Result<Vec<f32>> {
        if matches!(*lock(&self.state), State::Recorded) {
            self.gpu.submit();
        }
        loop {
            if matches!(*lock(&self.state), State::Done(_)) {
                break;
            }
            let _gl = self.gpu.inner.gl();
            self.gpu
                .inner
                .device
                .poll(wgpu::PollType::wait_indefinitely())
                .map_err(|e| Error::Device(e.to_string()))?;
        }
        self.read()
    }

    fn read(&self) -> Result<Vec<f32>> {
        self.gpu.check_device_error()?;
        let _gl = self.gpu.inner.gl();
        if let State::Done(Err(e)) = &*lock(&self.state) {
            return Err(Error::Device(format!("readback mapping failed: {e}")));
        }
        let bytes = (self.len * 4) as u64;
        let out = {
            let buffer = self.staging.buffer();
            let slice = buffer.slice(..bytes.max(4));
            let view = slice
                .get_mapped_range()
                .map_err(|e| Error::Device(format!("readback view: {e}")))?;
            bytemuck::cast_slice::<u8, f32>(&view[..bytes as usize]).to_vec()
        };
        self.staging.buffer().unmap();
        // Mark consumed so a second take does not read an unmapped buffer.
        *lock(&self.state) = State::Done(Err("already taken".into()));
        Ok(out)
    }
}

impl Drop for Readback {
    fn drop(&mut self) {
        // The staging buffer goes back to the pool: it must not be left
        // mapped, nor with a mapping still to come.
        if matches!(*lock(&self.state), State::Recorded) {
            self.gpu.submit();
        }
        while matches!(*lock(&self.state), State::Mapping) {
            let _gl = self.gpu.inner.gl();
            if self
                .gpu
                .inner
                .device
                .poll(wgpu::PollType::wait_indefinitely())
                .is_err()
            {
                break;
            }
        }
        if matches!(*lock(&self.state), State::Done(Ok(()))) {
            let _gl = self.gpu.inner.gl();
            self.staging.buffer().unmap();
        }
    }
}
