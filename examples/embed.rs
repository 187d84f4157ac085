//! Embedding darkmatter in a wgpu application.
//!
//! The application owns the device and queue. It hands clones of them to
//! darkmatter, runs a matmul there, and then binds the result tensor's
//! `wgpu::Buffer` in a compute pass of its own: the data never leaves the
//! GPU between the two. Only the application's final answer is read back.
//!
//!     cargo run --release --example embed

use darkmatter::kernels::matmul::matmul;
use darkmatter::{Gpu, Tensor};

/// The host application's own shader: the trace of an n x n matrix.
const TRACE_WGSL: &str = r#"
@group(0) @binding(0) var<storage, read> m: array<f32>;
@group(0) @binding(1) var<storage, read_write> trace: array<f32>;

@compute @workgroup_size(1)
fn main() {
    let n = u32(sqrt(f32(arrayLength(&m))));
    var acc = 0.0;
    for (var i = 0u; i < n; i++) {
        acc += m[i * n + i];
    }
    trace[0] = acc;
}
"#;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 1. The application sets up wgpu as it always does.
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
        power_preference: wgpu::PowerPreference::HighPerformance,
        ..Default::default()
    }))?;
    let info = adapter.get_info();
    println!("host adapter: {} ({:?})", info.name, info.backend);
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        label: Some("host"),
        required_limits: adapter.limits(),
        ..Default::default()
    }))?;

    // 2. darkmatter adopts the device and queue (wgpu handles are cheap clones).
    let gpu = Gpu::from_wgpu(device.clone(), queue.clone(), Some(info));

    // 3. A matmul on darkmatter's side: C = A · Aᵀ for a 3 x 2 matrix A.
    let a = Tensor::from_slice(&gpu, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[3, 2])?;
    let c = matmul(&a, &a, false, true)?;
    // Recorded work reaches the shared queue at submit.
    gpu.submit();

    // 4. The application binds C's buffer in its own pass. Tensor buffers are
    //    STORAGE | COPY_SRC | COPY_DST; the binding covers the tensor's bytes
    //    (a pooled buffer may be larger than the tensor).
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some("host trace"),
        source: wgpu::ShaderSource::Wgsl(TRACE_WGSL.into()),
    });
    let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some("host trace"),
        layout: None,
        module: &module,
        entry_point: Some("main"),
        compilation_options: Default::default(),
        cache: None,
    });
    let trace = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("trace"),
        size: 4,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    let bind = device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: None,
        layout: &pipeline.get_bind_group_layout(0),
        entries: &[
            wgpu::BindGroupEntry {
                binding: 0,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: c.buffer(),
                    offset: 0,
                    size: wgpu::BufferSize::new(c.bytes()),
                }),
            },
            wgpu::BindGroupEntry {
                binding: 1,
                resource: trace.as_entire_binding(),
            },
        ],
    });
    let readback = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("trace readback"),
        size: 4,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut encoder = device.create_command_encoder(&Default::default());
    {
        let mut pass = encoder.begin_compute_pass(&Default::default());
        pass.set_pipeline(&pipeline);
        pass.set_bind_group(0, &bind, &[]);
        pass.dispatch_workgroups(1, 1, 1);
    }
    encoder.copy_buffer_to_buffer(&trace, 0, &readback, 0, 4);
    queue.submit([encoder.finish()]);

    // 5. Only the application's own answer comes back to the CPU.
    readback
        .slice(..)
        .map_async(wgpu::MapMode::Read, |r| r.expect("map"));
    device.poll(wgpu::PollType::wait_indefinitely())?;
    let value: f32 = bytemuck::cast_slice(&readback.slice(..).get_mapped_range()?)[0];
    // trace(A·Aᵀ) = sum of squares of A = 1 + 4 + 9 + 16 + 25 + 36.
    println!("trace(A·Aᵀ) computed by the host's own pass: {value} (expected 91)");
    if value != 91.0 {
        return Err(format!("wrong trace {value}").into());
    }
    Ok(())
}
