//! Recording dispatches into one command encoder, and the pipeline cache.
//!
//! Every kernel call appends a compute pass to the pending encoder and its
//! uniform parameters to a CPU-side arena; nothing reaches the queue until
//! [`flush`], which writes the arena once and submits everything in one
//! command buffer. A training step is therefore one submit.

use std::collections::HashMap;
use std::time::Instant;

use super::Gpu;
use super::readback::MapRequest;
use crate::error::{Error, Result};

/// One WGSL entry point: a kernel of a family.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Kernel {
    /// A unique name, e.g. `matmul/blocked`.
    pub name: &'static str,
    /// The WGSL source (an `include_str!` of a file under `shaders/`).
    pub source: &'static str,
    pub entry: &'static str,
    /// Compile without runtime bounds checks. Only for kernels whose host code
    /// guarantees every index is in range: CPU drivers run them 1.2-1.5x faster.
    pub trusted: bool,
}

impl Kernel {
    pub(crate) const fn new(name: &'static str, source: &'static str, entry: &'static str) -> Self {
        Kernel {
            name,
            source,
            entry,
            trusted: false,
        }
    }
}

/// A resource bound to a kernel at `@binding(slot)` (slot 0 is the uniform
/// parameters).
pub(crate) struct Binding<'a> {
    pub slot: u32,
    pub resource: Resource<'a>,
}

pub(crate) enum Resource<'a> {
    /// The first `bytes` of a storage buffer.
    Buffer(&'a wgpu::Buffer, u64),
    /// A sampled or storage texture.
    Texture(&'a wgpu::TextureView),
}

impl<'a> Binding<'a> {
    pub(crate) fn buffer(slot: u32, buffer: &'a wgpu::Buffer, bytes: u64) -> Self {
        Binding {
            slot,
            resource: Resource::Buffer(buffer, bytes),
        }
    }

    pub(crate) fn texture(slot: u32, view: &'a wgpu::TextureView) -> Self {
        Binding {
            slot,
            resource: Resource::Texture(view),
        }
    }
}

type PipelineKey = (&'static str, &'static str, bool, Vec<(&'static str, u64)>);

#[derive(Default)]
pub(crate) struct PipelineCache {
    modules: HashMap<(&'static str, bool), wgpu::ShaderModule>,
    pipelines: HashMap<PipelineKey, (wgpu::ComputePipeline, wgpu::BindGroupLayout)>,
}

impl PipelineCache {
    /// Number of distinct pipelines compiled so far.
    pub(crate) fn len(&self) -> usize {
        self.pipelines.len()
    }
}

/// Wall time per kernel, when profiling.
#[derive(Default)]
pub(crate) struct Profile {
    totals: HashMap<String, (u64, f64)>,
}

impl Profile {
    pub(crate) fn report(&self) -> Vec<(String, u64, f64)> {
        let mut rows: Vec<_> = self
            .totals
            .iter()
            .map(|(k, &(n, t))| (k.clone(), n, t))
            .collect();
        rows.sort_by(|a, b| b.2.total_cmp(&a.2));
        rows
    }
}

/// Uniform parameters of each dispatch get a slot of this many bytes.
const SLOT: u64 = 256;
/// Dispatches per submit before an automatic flush.
const ARENA_SLOTS: u64 = 1024;

pub(crate) struct Batch {
    encoder: Option<wgpu::CommandEncoder>,
    arena: wgpu::Buffer,
    params: Vec<u8>,
    slot: u64,
    pub(super) maps: Vec<MapRequest>,
}

impl Batch {
    pub(crate) fn new(device: &wgpu::Device, limits: &wgpu::Limits) -> Batch {
        let slot = SLOT.max(limits.min_uniform_buffer_offset_alignment as u64);
        let arena = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("darkmatter params"),
            size: slot * ARENA_SLOTS,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Batch {
            encoder: None,
            arena,
            params: Vec::new(),
            slot,
            maps: Vec::new(),
        }
    }

    pub(crate) fn encoder(&mut self, device: &wgpu::Device) -> &mut wgpu::CommandEncoder {
        self.encoder.get_or_insert_with(|| {
            device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("darkmatter batch"),
            })
        })
    }
}

fn pipeline(
    gpu: &Gpu,
    kernel: &Kernel,
    constants: &[(&'static str, f64)],
) -> (wgpu::ComputePipeline, wgpu::BindGroupLayout) {
    let key: PipelineKey = (
        kernel.name,
        kernel.entry,
        kernel.trusted,
        constants.iter().map(|&(k, v)| (k, v.to_bits())).collect(),
    );
    let _gl = gpu.inner.gl();
    let mut cache = gpu
        .inner
        .pipelines
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(p) = cache.pipelines.get(&key) {
        return p.clone();
    }
    let device = &gpu.inner.device;
    let module = cache
        .modules
        .entry((kernel.name, kernel.trusted))
        .or_insert_with(|| {
            let desc = wgpu::ShaderModuleDescriptor {
                label: Some(kernel.name),
                source: wgpu::ShaderSource::Wgsl(kernel.source.into()),
            };
            if kernel.trusted {
                // SAFETY: kernels marked trusted clamp every load index on the
                // host's guarantee of in-range shapes, and guard every store.
                unsafe {
                    device
                        .create_shader_module_trusted(desc, wgpu::ShaderRuntimeChecks::unchecked())
                }
            } else {
                device.create_shader_module(desc)
            }
        })
        .clone();
    let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some(kernel.name),
        layout: None,
        module: &module,
        entry_point: Some(kernel.entry),
        compilation_options: wgpu::PipelineCompilationOptions {
            constants,
            zero_initialize_workgroup_memory: false,
        },
        cache: None,
    });
    let layout = pipeline.get_bind_group_layout(0);
    cache
        .pipelines
        .insert(key, (pipeline.clone(), layout.clone()));
    (pipeline, layout)
}

/// Records one dispatch of `kernel`: binding 0 is `params` (a uniform),
/// the others are `bindings` at their slots.
pub(crate) fn dispatch<P: super::Uniform>(
    gpu: &Gpu,
    kernel: &Kernel,
    constants: &[(&'static str, f64)],
    params: &P,
    bindings: &[Binding<'_>],
    groups: [u32; 3],
) -> Result<()> {
    let bytes = bytemuck::bytes_of(params);
    if bytes.len() as u64 > SLOT {
        return Err(Error::invalid(
            kernel.name,
            "uniform parameters exceed one slot",
        ));
    }
    if groups.contains(&0) {
        return Ok(());
    }
    let max = gpu.inner.limits.max_compute_workgroups_per_dimension;
    if let Some(&over) = groups.iter().find(|&&g| g > max) {
        return Err(Error::Limit {
            what: format!("a dispatch of {} with workgroups {groups:?}", kernel.name),
            limit: "max_compute_workgroups_per_dimension",
            requested: over as u64,
            allowed: max as u64,
        });
    }
    let (pipeline, layout) = pipeline(gpu, kernel, constants);
    if gpu.inner.profile.is_some() {
        // Time this dispatch alone: finish everything recorded before it.
        flush(gpu);
        let _gl = gpu.inner.gl();
        let _ = gpu.inner.device.poll(wgpu::PollType::wait_indefinitely());
    }
    let full = {
        let batch = gpu.inner.batch.lock().unwrap_or_else(|p| p.into_inner());
        batch.params.len() as u64 >= batch.slot * ARENA_SLOTS
    };
    if full {
        flush(gpu);
    }
    let device = &gpu.inner.device;
    let mut batch = gpu.inner.batch.lock().unwrap_or_else(|p| p.into_inner());
    let offset = batch.params.len() as u64;
    let slot = batch.slot;
    batch.params.extend_from_slice(bytes);
    batch.params.resize((offset + slot) as usize, 0);

    let mut entries = vec![wgpu::BindGroupEntry {
        binding: 0,
        resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: &batch.arena,
            offset,
            size: wgpu::BufferSize::new(slot),
        }),
    }];
    for b in bindings {
        let resource = match b.resource {
            Resource::Buffer(buffer, bytes) => wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer,
                offset: 0,
                size: wgpu::BufferSize::new(bytes.max(4)),
            }),
            Resource::Texture(view) => wgpu::BindingResource::TextureView(view),
        };
        entries.push(wgpu::BindGroupEntry {
            binding: b.slot,
            resource,
        });
    }
    let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some(kernel.name),
        layout: &layout,
        entries: &entries,
    });
    let encoder = batch.encoder(device);
    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
        label: Some(kernel.name),
        timestamp_writes: None,
    });
    pass.set_pipeline(&pipeline);
    pass.set_bind_group(0, &bind_group, &[]);
    pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
    drop(pass);
    drop(batch);
    if let Some(profile) = &gpu.inner.profile {
        let start = Instant::now();
        flush(gpu);
        let gl = gpu.inner.gl();
        let _ = gpu.inner.device.poll(wgpu::PollType::wait_indefinitely());
        drop(gl);
        let mut p = profile.lock().unwrap_or_else(|e| e.into_inner());
        let entry = p
            .totals
            .entry(format!("{}:{}", kernel.name, kernel.entry))
            .or_default();
        entry.0 += 1;
        entry.1 += start.elapsed().as_secs_f64();
    }
    Ok(())
}

/// Writes the parameter arena, submits the pending encoder, and asks for the
/// mapping of every readback recorded in it.
pub(crate) fn flush(gpu: &Gpu) {
    let inner = &gpu.inner;
    let _gl = inner.gl();
    // The batch stays locked until the submit and the epoch bump are done:
    // otherwise another thread could record and submit its own batch in
    // between, overwriting this batch's parameter arena before it runs, or
    // give back a buffer its pending batch still reads under the old epoch.
    let mut batch = inner.batch.lock().unwrap_or_else(|p| p.into_inner());
    if !batch.params.is_empty() {
        inner.queue.write_buffer(&batch.arena, 0, &batch.params);
        batch.params.clear();
    }
    if let Some(encoder) = batch.encoder.take() {
        inner.queue.submit([encoder.finish()]);
    }
    inner.pool.lock().unwrap_or_else(|p| p.into_inner()).epoch += 1;
    let maps = std::mem::take(&mut batch.maps);
    drop(batch);
    for request in maps {
        request.start();
    }
}

/// Shared by the readback and tensor code: record a buffer copy in the batch.
pub(crate) fn copy(gpu: &Gpu, src: &wgpu::Buffer, dst: &wgpu::Buffer, bytes: u64) {
    let mut batch = gpu.inner.batch.lock().unwrap_or_else(|p| p.into_inner());
    batch
        .encoder(&gpu.inner.device)
        .copy_buffer_to_buffer(src, 0, dst, 0, bytes);
}

/// Records a copy of rows of `bytes_per_row` bytes, starting at byte
/// `offset` of `src`, into the top-left `width` x `height` texels of `dst`.
pub(crate) fn copy_to_texture(
    gpu: &Gpu,
    src: &wgpu::Buffer,
    offset: u64,
    bytes_per_row: u32,
    dst: &wgpu::Texture,
    (width, height): (u32, u32),
) {
    let mut batch = gpu.inner.batch.lock().unwrap_or_else(|p| p.into_inner());
    batch.encoder(&gpu.inner.device).copy_buffer_to_texture(
        wgpu::TexelCopyBufferInfo {
            buffer: src,
            layout: wgpu::TexelCopyBufferLayout {
                offset,
                bytes_per_row: Some(bytes_per_row),
                rows_per_image: None,
            },
        },
        dst.as_image_copy(),
        wgpu::Extent3d {
            width,
            height,
            depth_or_array_layers: 1,
        },
    );
}

/// Shared by tensor constructors: zero a buffer inside the batch.
pub(crate) fn clear(gpu: &Gpu, dst: &wgpu::Buffer, bytes: u64) {
    let mut batch = gpu.inner.batch.lock().unwrap_or_else(|p| p.into_inner());
    batch
        .encoder(&gpu.inner.device)
        .clear_buffer(dst, 0, Some(bytes));
}

pub(crate) fn push_map(gpu: &Gpu, request: MapRequest) {
    let mut batch = gpu.inner.batch.lock().unwrap_or_else(|p| p.into_inner());
    batch.maps.push(request);
}
