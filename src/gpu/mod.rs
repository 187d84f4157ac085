//! The GPU context: adapter choice, device limits, pipeline cache, buffer pool,
//! command batching and readback.
//!
//! A [`Gpu`] is a cheap handle (an `Arc`) that tensors keep so that their
//! buffers can go back to the pool when they drop. There is no global state:
//! several `Gpu`s can live in one process, each with its own device, pool and
//! pipelines.

mod batch;
mod pool;
mod readback;
mod tune;
mod uniform;

use std::sync::{Arc, Mutex};

pub use pool::PoolStats;
pub use readback::Readback;
pub use tune::cache_dir;
pub(crate) use tune::{SMALL, time_run};
pub(crate) use uniform::uniform;
pub use uniform::{Field, Uniform};

pub(crate) use batch::{
    Binding, Kernel, clear as batch_clear, copy as batch_copy, copy_to_texture, dispatch,
};
pub(crate) use pool::{PooledBuffer, Usage};

use crate::error::{Error, Result};
use crate::variant::{ConvVariant, MatmulVariant};

/// Which family of kernels suits the adapter: GPUs reward workgroup-memory
/// tiling, CPU rasterisers (lavapipe, WARP, SwiftShader) reward large
/// barrier-free register blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceClass {
    /// A real GPU: discrete, integrated or virtual.
    Gpu,
    /// A software implementation running on the CPU.
    Cpu,
}

/// Options for [`Gpu::with_options`]. `Default` reads the environment.
#[derive(Clone, Debug)]
pub struct GpuOptions {
    /// Restrict to one backend (`DARKMATTER_BACKEND`: vulkan, metal, dx12, gl).
    pub backend: Option<String>,
    /// Pick the first adapter whose name contains this (`DARKMATTER_ADAPTER`).
    pub adapter: Option<String>,
    /// Among the adapters of the best kind (discrete GPUs, say), take this
    /// one, counting modulo their number: a rank of a distributed run
    /// passes its index on its machine, so the ranks there share the GPUs
    /// out. Ignored when `adapter` names one.
    pub index: Option<usize>,
    /// Ask for a smaller `max_storage_buffer_binding_size` than the adapter
    /// allows, e.g. to test that kernels tile within a 128 MiB binding.
    pub max_storage_binding: Option<u64>,
    /// Ask for a smaller `max_texture_dimension_2d` than the adapter allows,
    /// e.g. to test how the `texture` matmul folds tall operands.
    pub max_texture_dimension: Option<u32>,
    /// Use this matmul variant instead of the adapter's default
    /// (`DARKMATTER_MATMUL`: naive, tiled, blocked, texture).
    pub matmul: Option<String>,
    /// Use this convolution variant for every pass instead of choosing
    /// (`DARKMATTER_CONV`: direct, implicit_gemm, im2col, texture).
    pub conv: Option<String>,
    /// Measure kernel variants on this device the first time a shape is
    /// met (`DARKMATTER_TUNE`, on unless `0` or `off`); otherwise each
    /// family's heuristic chooses.
    pub tune: bool,
    /// Where measured choices are cached between runs (`None`: in memory
    /// only); `cache_dir()` by default.
    pub cache_dir: Option<std::path::PathBuf>,
}

impl Default for GpuOptions {
    fn default() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        GpuOptions {
            backend: var("DARKMATTER_BACKEND"),
            adapter: var("DARKMATTER_ADAPTER"),
            index: None,
            max_storage_binding: None,
            max_texture_dimension: None,
            matmul: var("DARKMATTER_MATMUL"),
            conv: var("DARKMATTER_CONV"),
            tune: var("DARKMATTER_TUNE").is_none_or(|v| v != "0" && v != "off"),
            cache_dir: tune::cache_dir(),
        }
    }
}

/// A handle on one wgpu device and everything darkmatter keeps for it.
#[derive(Clone)]
pub struct Gpu {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    pub(crate) info: wgpu::AdapterInfo,
    pub(crate) limits: wgpu::Limits,
    pub(crate) features: wgpu::Features,
    pub(crate) class: DeviceClass,
    /// The matmul variant asked for in [`GpuOptions::matmul`].
    pub(crate) matmul: Option<MatmulVariant>,
    /// The convolution variant asked for in [`GpuOptions::conv`].
    pub(crate) conv: Option<ConvVariant>,
    /// Variant choices measured on this device.
    pub(crate) tuner: tune::Tuner,
    pub(crate) pool: Mutex<pool::Pool>,
    pub(crate) batch: Mutex<batch::Batch>,
    pub(crate) pipelines: Mutex<batch::PipelineCache>,
    /// The first error the device reported outside our own checks.
    pub(crate) device_error: Arc<Mutex<Option<String>>>,
    /// Per-kernel wall time when profiling (`DARKMATTER_PROFILE=1`).
    pub(crate) profile: Option<Mutex<batch::Profile>>,
}

/// The backends wgpu can use on this platform, by name.
const PLATFORM_BACKENDS: &[(&str, bool)] = &[
    (
        "vulkan",
        cfg!(any(
            target_os = "linux",
            target_os = "windows",
            target_os = "android",
            target_os = "macos"
        )),
    ),
    ("metal", cfg!(any(target_os = "macos", target_os = "ios"))),
    ("dx12", cfg!(target_os = "windows")),
    ("gl", true),
];

/// Serialises every call darkmatter makes into a GL device, process-wide.
///
/// wgpu's GL backend guards its context with a lock it waits six seconds
/// for, then panics ("Could not lock adapter context"); on a CPU driver one
/// thread's long submit or wait is enough to trip it for another thread,
/// and devices share EGL state. With this lock taken first (it has no
/// timeout) threads queue here instead. Other backends do not take it.
static GL_LOCK: Mutex<()> = Mutex::new(());

impl Inner {
    /// The GL lock for a GL device, `None` for every other backend. Taken
    /// before any other of darkmatter's locks, never while holding one.
    pub(crate) fn gl(&self) -> Option<std::sync::MutexGuard<'static, ()>> {
        (self.info.backend == wgpu::Backend::Gl).then(gl_lock)
    }
}

fn gl_lock() -> std::sync::MutexGuard<'static, ()> {
    GL_LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

fn parse_backend(name: &str) -> Result<wgpu::Backends> {
    let (canonical, backends) = match name.to_ascii_lowercase().as_str() {
        "vulkan" | "vk" => ("vulkan", wgpu::Backends::VULKAN),
        "metal" | "mtl" => ("metal", wgpu::Backends::METAL),
        "dx12" | "d3d12" => ("dx12", wgpu::Backends::DX12),
        "gl" | "gles" | "opengl" => ("gl", wgpu::Backends::GL),
        other => {
            return Err(Error::NoAdapter(format!(
                "unknown backend '{other}' in DARKMATTER_BACKEND (expected vulkan, metal, dx12 or gl)"
            )));
        }
    };
    if !PLATFORM_BACKENDS.contains(&(canonical, true)) {
        let here: Vec<&str> = PLATFORM_BACKENDS
            .iter()
            .filter(|(_, ok)| *ok)
            .map(|(n, _)| *n)
            .collect();
        return Err(Error::NoAdapter(format!(
            "DARKMATTER_BACKEND={name}: the {canonical} backend is not available on {}; the backends here are {}",
            std::env::consts::OS,
            here.join(", ")
        )));
    }
    Ok(backends)
}

/// Higher is preferred: discrete > integrated > virtual > CPU.
fn adapter_rank(info: &wgpu::AdapterInfo) -> u8 {
    match info.device_type {
        wgpu::DeviceType::DiscreteGpu => 4,
        wgpu::DeviceType::IntegratedGpu => 3,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 1,
        wgpu::DeviceType::Other => 0,
    }
}

impl Gpu {
    /// Picks the best adapter (discrete > integrated > virtual > CPU),
    /// honouring `DARKMATTER_BACKEND` and `DARKMATTER_ADAPTER`.
    pub fn new() -> Result<Gpu> {
        Gpu::with_options(GpuOptions::default())
    }

    /// Like [`Gpu::new`], with explicit options.
    pub fn with_options(options: GpuOptions) -> Result<Gpu> {
        let matmul = match &options.matmul {
            Some(name) => Some(
                name.parse::<MatmulVariant>()
                    .map_err(|e| Error::invalid("DARKMATTER_MATMUL", e.to_string()))?,
            ),
            None => None,
        };
        let conv = match &options.conv {
            Some(name) => Some(
                name.parse::<ConvVariant>()
                    .map_err(|e| Error::invalid("DARKMATTER_CONV", e.to_string()))?,
            ),
            None => None,
        };
        let instance_for = |backends| {
            wgpu::Instance::new(wgpu::InstanceDescriptor {
                backends,
                ..wgpu::InstanceDescriptor::new_without_display_handle_from_env()
            })
        };
        // Probing and creating GL devices touches shared EGL state.
        let gl_guard = gl_lock();
        let adapters = match &options.backend {
            Some(name) => {
                let backends = parse_backend(name)?;
                pollster::block_on(instance_for(backends).enumerate_adapters(backends))
            }
            // GL last: it lacks compute limits the others have, and probing
            // it (EGL) is slow and noisy where a native API already answered.
            None => {
                let native = wgpu::Backends::PRIMARY;
                let found = pollster::block_on(instance_for(native).enumerate_adapters(native));
                if found.is_empty() {
                    let gl = wgpu::Backends::GL;
                    pollster::block_on(instance_for(gl).enumerate_adapters(gl))
                } else {
                    found
                }
            }
        };
        let seen: Vec<String> = adapters
            .iter()
            .map(|a| {
                let i = a.get_info();
                format!("{} ({:?}, {:?})", i.name, i.backend, i.device_type)
            })
            .collect();
        let wanted = options.adapter.as_ref().map(|s| s.to_lowercase());
        let mut matching: Vec<wgpu::Adapter> = adapters
            .into_iter()
            .filter(|a| match &wanted {
                Some(w) => a.get_info().name.to_lowercase().contains(w),
                None => true,
            })
            .collect();
        let best = matching.iter().map(|a| adapter_rank(&a.get_info())).max();
        matching.retain(|a| Some(adapter_rank(&a.get_info())) == best);
        let pick = match options.index.filter(|_| wanted.is_none()) {
            Some(i) if !matching.is_empty() => i % matching.len(),
            _ => 0,
        };
        let adapter = (pick < matching.len())
            .then(|| matching.swap_remove(pick))
            .ok_or_else(|| {
                let filter = match (&options.backend, &options.adapter) {
                    (None, None) => String::new(),
                    (b, a) => format!(" matching backend={b:?} adapter={a:?}"),
                };
                let seen = if seen.is_empty() {
                    "none; on a machine without a GPU install Mesa's lavapipe: \
                     apt-get install mesa-vulkan-drivers libvulkan1"
                        .to_string()
                } else {
                    seen.join(", ")
                };
                Error::NoAdapter(format!("no adapter{filter}; adapters present: {seen}"))
            })?;

        let mut limits = adapter.limits();
        if let Some(cap) = options.max_storage_binding {
            limits.max_storage_buffer_binding_size =
                limits.max_storage_buffer_binding_size.min(cap);
        }
        if let Some(cap) = options.max_texture_dimension {
            limits.max_texture_dimension_2d = limits.max_texture_dimension_2d.min(cap);
        }
        let wanted_features =
            wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::SUBGROUP | wgpu::Features::SHADER_F16;
        let features = adapter.features() & wanted_features;
        let info = adapter.get_info();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("darkmatter"),
            required_features: features,
            required_limits: limits,
            ..Default::default()
        }))
        .map_err(|e| Error::RequestDevice {
            adapter: info.name.clone(),
            reason: e.to_string(),
        })?;
        let tuner = tune::Tuner::new(options.tune, options.cache_dir.clone(), &info);
        drop(gl_guard);
        let gpu = Gpu::from_parts(device, queue, info, (matmul, conv), tuner);
        // Our own device: route validation errors into a value rather than
        // wgpu's default panic. An adopted device keeps its host's handler.
        let sink = gpu.inner.device_error.clone();
        gpu.inner
            .device
            .on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
                let mut slot = sink.lock().unwrap_or_else(|p| p.into_inner());
                slot.get_or_insert_with(|| e.to_string());
            }));
        Ok(gpu)
    }

    /// Adopts a host application's device and queue. Tensors made on the
    /// returned `Gpu` are plain `wgpu::Buffer`s on that device, which the host
    /// can bind in its own passes. The adapter info, when the host has it,
    /// decides which kernel family is the default; without it the GPU family
    /// is used. An adopted device's kernels are chosen by each family's
    /// heuristic, never by timing them on the host's queue.
    pub fn from_wgpu(
        device: wgpu::Device,
        queue: wgpu::Queue,
        adapter_info: Option<wgpu::AdapterInfo>,
    ) -> Gpu {
        let info = adapter_info.unwrap_or_else(|| {
            let mut info = wgpu::AdapterInfo::new(wgpu::DeviceType::Other, wgpu::Backend::Noop);
            info.name = "host device".into();
            info
        });
        let tuner = tune::Tuner::new(false, None, &info);
        Gpu::from_parts(device, queue, info, (None, None), tuner)
    }

    fn from_parts(
        device: wgpu::Device,
        queue: wgpu::Queue,
        info: wgpu::AdapterInfo,
        (matmul, conv): (Option<MatmulVariant>, Option<ConvVariant>),
        tuner: tune::Tuner,
    ) -> Gpu {
        let class = match info.device_type {
            wgpu::DeviceType::Cpu => DeviceClass::Cpu,
            _ => DeviceClass::Gpu,
        };
        let limits = device.limits();
        let features = device.features();
        let batch = batch::Batch::new(&device, &limits);
        Gpu {
            inner: Arc::new(Inner {
                device,
                queue,
                info,
                limits,
                features,
                class,
                matmul,
                conv,
                tuner,
                pool: Mutex::new(pool::Pool::default()),
                batch: Mutex::new(batch),
                pipelines: Mutex::new(batch::PipelineCache::default()),
                device_error: Arc::new(Mutex::new(None)),
                profile: std::env::var("DARKMATTER_PROFILE")
                    .is_ok_and(|v| v == "1")
                    .then(Default::default),
            }),
        }
    }

    /// The wgpu device, for embedding.
    pub fn device(&self) -> &wgpu::Device {
        &self.inner.device
    }

    /// The wgpu queue, for embedding.
    pub fn queue(&self) -> &wgpu::Queue {
        &self.inner.queue
    }

    /// What the adapter says about itself.
    pub fn adapter_info(&self) -> &wgpu::AdapterInfo {
        &self.inner.info
    }

    /// The limits of the device in use (the adapter's real limits).
    pub fn limits(&self) -> &wgpu::Limits {
        &self.inner.limits
    }

    /// The optional features enabled on the device.
    pub fn features(&self) -> wgpu::Features {
        self.inner.features
    }

    /// GPU or CPU: decides the default kernel variants.
    pub fn class(&self) -> DeviceClass {
        self.inner.class
    }

    /// One line naming the adapter, its backend and its type.
    pub fn describe(&self) -> String {
        let i = &self.inner.info;
        format!(
            "{} ({:?}, {:?}, driver {} {})",
            i.name, i.backend, i.device_type, i.driver, i.driver_info
        )
    }

    /// Statistics of the buffer pool.
    pub fn pool_stats(&self) -> PoolStats {
        self.lock_pool().stats()
    }

    /// Number of compute pipelines compiled so far (each is cached).
    pub fn pipeline_count(&self) -> usize {
        self.inner
            .pipelines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    /// Resets the pool's peak-live-bytes counter to the current live bytes.
    pub fn reset_peak(&self) {
        self.lock_pool().reset_peak();
    }

    /// Drops every idle pooled buffer, giving its memory back to the driver.
    pub fn trim_pool(&self) {
        self.lock_pool().trim();
    }

    /// With `DARKMATTER_PROFILE=1` in the environment every dispatch is
    /// submitted and waited for on its own, and its wall time added to its
    /// kernel's total: slow, but it shows where a step's time goes. Returns
    /// (kernel, calls, seconds), slowest first; empty when not profiling.
    pub fn profile(&self) -> Vec<(String, u64, f64)> {
        self.inner.profile.as_ref().map_or_else(Vec::new, |p| {
            p.lock().unwrap_or_else(|e| e.into_inner()).report()
        })
    }

    /// Forgets the profile's totals so far (a warm-up that compiled
    /// pipelines and measured variants is not part of a step).
    pub fn reset_profile(&self) {
        if let Some(p) = &self.inner.profile {
            *p.lock().unwrap_or_else(|e| e.into_inner()) = batch::Profile::default();
        }
    }

    /// Submits every recorded dispatch in one command buffer.
    pub fn submit(&self) {
        batch::flush(self);
    }

    /// Submits recorded work and blocks until the device has finished it.
    pub fn sync(&self) -> Result<()> {
        batch::flush(self);
        let gl = self.inner.gl();
        self.inner
            .device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Device(e.to_string()))?;
        drop(gl);
        self.check_device_error()
    }

    pub(crate) fn check_device_error(&self) -> Result<()> {
        let slot = self
            .inner
            .device_error
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        match &*slot {
            Some(e) => Err(Error::Device(e.clone())),
            None => Ok(()),
        }
    }

    pub(crate) fn lock_pool(&self) -> std::sync::MutexGuard<'_, pool::Pool> {
        self.inner.pool.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Fails with a typed error if a buffer of `bytes` cannot be bound as storage.
    pub(crate) fn check_binding(&self, what: impl FnOnce() -> String, bytes: u64) -> Result<()> {
        let l = &self.inner.limits;
        if bytes > l.max_buffer_size {
            return Err(Error::Limit {
                what: what(),
                limit: "max_buffer_size",
                requested: bytes,
                allowed: l.max_buffer_size,
            });
        }
        let binding = l.max_storage_buffer_binding_size;
        if bytes > binding {
            return Err(Error::Limit {
                what: what(),
                limit: "max_storage_buffer_binding_size",
                requested: bytes,
                allowed: binding,
            });
        }
        Ok(())
    }

    /// Splits `groups` workgroups over x and y so neither exceeds the
    /// per-dimension dispatch limit; shaders recover the linear index from
    /// `num_workgroups`.
    pub(crate) fn grid(&self, groups: u64) -> Result<[u32; 3]> {
        let max = self.inner.limits.max_compute_workgroups_per_dimension as u64;
        let groups = groups.max(1);
        let x = groups.min(max);
        let y = groups.div_ceil(x);
        if y > max {
            return Err(Error::Limit {
                what: format!("a dispatch of {groups} workgroups"),
                limit: "max_compute_workgroups_per_dimension squared",
                requested: groups,
                allowed: max * max,
            });
        }
        Ok([x as u32, y as u32, 1])
    }
}

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Gpu({})", self.describe())
    }
}
