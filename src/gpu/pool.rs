//! A size-bucketed buffer pool.
//!
//! Creating and first binding a buffer is expensive in WebGPU, so tensors take
//! their buffers from here and give them back when they drop. Sizes are rounded
//! up to buckets of the form {4, 5, 6, 7} x 2^k bytes: at most 25% waste, and a
//! training step that allocates the same shapes every iteration finds each of
//! them waiting in the pool after the first one.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use super::Inner;

/// The two kinds of buffer the pool keeps apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Usage {
    /// Bound as storage by kernels, and the source or target of copies.
    Storage,
    /// A CPU-mappable target of a copy, for readback.
    Staging,
}

impl Usage {
    fn flags(self) -> wgpu::BufferUsages {
        match self {
            Usage::Storage => {
                wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_SRC
                    | wgpu::BufferUsages::COPY_DST
            }
            Usage::Staging => wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        }
    }
}

/// What the pool holds and has done.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Bytes of buffers held by live tensors (bucket sizes).
    pub live_bytes: u64,
    /// The most `live_bytes` reached since creation or the last `reset_peak`.
    pub peak_live_bytes: u64,
    /// Bytes of idle buffers waiting in the pool.
    pub pooled_bytes: u64,
    /// Buffers created on the device so far.
    pub allocations: u64,
    /// Requests served from the pool without creating a buffer.
    pub reuses: u64,
}

struct Idle {
    buffer: wgpu::Buffer,
    /// The batch during which the buffer was given back. Commands recorded in
    /// that batch may still read or write it, so a buffer that is about to be
    /// filled by `queue.write_buffer` (which runs before the batch) must come
    /// from an earlier batch.
    epoch: u64,
}

#[derive(Default)]
pub(crate) struct Pool {
    idle: HashMap<(Usage, u64), Vec<Idle>>,
    stats: PoolStats,
    /// Incremented each time a batch is submitted.
    pub(crate) epoch: u64,
}

/// Rounds `bytes` up to the next bucket: {4,5,6,7} x 2^k, at least 256.
pub(crate) fn bucket(bytes: u64) -> u64 {
    let bytes = bytes.max(256);
    let top = 63 - bytes.leading_zeros() as u64; // 2^top <= bytes
    let quarter = 1u64 << (top - 2);
    bytes.div_ceil(quarter) * quarter
}

impl Pool {
    pub(crate) fn stats(&self) -> PoolStats {
        self.stats
    }

    pub(crate) fn reset_peak(&mut self) {
        self.stats.peak_live_bytes = self.stats.live_bytes;
    }

    pub(crate) fn trim(&mut self) {
        self.idle.clear();
        self.stats.pooled_bytes = 0;
    }

    fn take(&mut self, usage: Usage, size: u64, for_write: bool) -> Option<wgpu::Buffer> {
        let list = self.idle.get_mut(&(usage, size))?;
        let epoch = self.epoch;
        let pos = list.iter().rposition(|b| !for_write || b.epoch < epoch)?;
        Some(list.swap_remove(pos).buffer)
    }

    fn give(&mut self, usage: Usage, buffer: wgpu::Buffer) {
        let size = buffer.size();
        self.stats.live_bytes -= size;
        self.stats.pooled_bytes += size;
        let epoch = self.epoch;
        self.idle
            .entry((usage, size))
            .or_default()
            .push(Idle { buffer, epoch });
    }
}

/// A buffer on loan from the pool; it goes back when this drops.
pub(crate) struct PooledBuffer {
    buffer: Option<wgpu::Buffer>,
    usage: Usage,
    owner: Weak<Inner>,
}

impl PooledBuffer {
    /// Takes a buffer of at least `bytes` bytes. `for_write` marks a buffer
    /// that will be filled by `queue.write_buffer`.
    pub(crate) fn acquire(
        inner: &Arc<Inner>,
        usage: Usage,
        bytes: u64,
        for_write: bool,
    ) -> PooledBuffer {
        let mut size = bucket(bytes);
        if size > inner.limits.max_buffer_size {
            size = bytes.next_multiple_of(4);
        }
        let _gl = inner.gl();
        let mut pool = inner.pool.lock().unwrap_or_else(|p| p.into_inner());
        let buffer = match pool.take(usage, size, for_write) {
            Some(b) => {
                pool.stats.reuses += 1;
                pool.stats.pooled_bytes -= size;
                b
            }
            None => {
                pool.stats.allocations += 1;
                inner.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some(match usage {
                        Usage::Storage => "darkmatter tensor",
                        Usage::Staging => "darkmatter readback",
                    }),
                    size,
                    usage: usage.flags(),
                    mapped_at_creation: false,
                })
            }
        };
        pool.stats.live_bytes += size;
        pool.stats.peak_live_bytes = pool.stats.peak_live_bytes.max(pool.stats.live_bytes);
        PooledBuffer {
            buffer: Some(buffer),
            usage,
            owner: Arc::downgrade(inner),
        }
    }

    pub(crate) fn buffer(&self) -> &wgpu::Buffer {
        self.buffer.as_ref().expect("buffer present until drop")
    }
}

impl Drop for PooledBuffer {
    fn drop(&mut self) {
        if let (Some(buffer), Some(inner)) = (self.buffer.take(), self.owner.upgrade()) {
            let mut pool = inner.pool.lock().unwrap_or_else(|p| p.into_inner());
            pool.give(self.usage, buffer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::bucket;

    #[test]
    fn buckets_waste_at_most_a_quarter() {
        assert_eq!(bucket(1), 256);
        assert_eq!(bucket(256), 256);
        assert_eq!(bucket(257), 320);
        assert_eq!(bucket(1024), 1024);
        assert_eq!(bucket(1025), 1280);
        for bytes in [300u64, 4097, 1 << 20, (1 << 20) + 1, 123_456_789] {
            let b = bucket(bytes);
            assert!(b >= bytes && b <= bytes + bytes / 4 + 64, "{bytes} -> {b}");
            assert_eq!(bucket(b), b, "buckets are fixed points");
        }
    }
}
