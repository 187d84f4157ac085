//! `darkmatter info`: what the engine runs on.

use clap::Args;

use crate::{Gpu, MatmulVariant, Result};

#[derive(Args, Debug, Default)]
pub struct InfoArgs {
    /// Also list every adapter wgpu can see, not only the chosen one.
    #[arg(long)]
    pub all: bool,
}

pub fn run(args: &InfoArgs) -> Result<()> {
    if args.all {
        let instance =
            wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        println!("adapters:");
        for a in pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all())) {
            let i = a.get_info();
            println!(
                "  {} ({:?}, {:?}, driver {})",
                i.name, i.backend, i.device_type, i.driver
            );
        }
        println!();
    }
    let gpu = Gpu::new()?;
    let i = gpu.adapter_info();
    let l = gpu.limits();
    println!("adapter      {}", i.name);
    println!("backend      {:?}", i.backend);
    println!(
        "device type  {:?} (kernel family: {:?})",
        i.device_type,
        gpu.class()
    );
    println!("driver       {} {}", i.driver, i.driver_info);
    println!(
        "matmul       {} (the heuristic's variant when a shape is not measured)",
        MatmulVariant::default_for(&gpu).name()
    );
    let (measure, file) = gpu.tuning_setup();
    println!(
        "tuning       {}",
        if measure {
            "variants measured on this device the first time a shape is met (DARKMATTER_TUNE=0: off)"
        } else {
            "off: each kernel family's heuristic chooses"
        }
    );
    match file {
        Some(path) => {
            let cached = gpu.cached_tuning();
            println!("  cache      {} ({} choices)", path.display(), cached.len());
            for (key, variant) in cached {
                println!("    {key:<56} {variant}");
            }
        }
        None => println!("  cache      none (in memory only)"),
    }
    println!("limits");
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    println!(
        "  max_buffer_size                       {} ({:.0} MiB)",
        l.max_buffer_size,
        mib(l.max_buffer_size)
    );
    println!(
        "  max_storage_buffer_binding_size       {} ({:.0} MiB)",
        l.max_storage_buffer_binding_size,
        mib(l.max_storage_buffer_binding_size)
    );
    println!(
        "  max_texture_dimension_2d              {}",
        l.max_texture_dimension_2d
    );
    println!(
        "  max_storage_buffers_per_shader_stage  {}",
        l.max_storage_buffers_per_shader_stage
    );
    println!(
        "  max_compute_workgroup_storage_size    {}",
        l.max_compute_workgroup_storage_size
    );
    println!(
        "  max_compute_invocations_per_workgroup {}",
        l.max_compute_invocations_per_workgroup
    );
    println!(
        "  max_compute_workgroup_size            {} x {} x {}",
        l.max_compute_workgroup_size_x,
        l.max_compute_workgroup_size_y,
        l.max_compute_workgroup_size_z
    );
    println!(
        "  max_compute_workgroups_per_dimension  {}",
        l.max_compute_workgroups_per_dimension
    );
    let f = gpu.features();
    let has = |x: wgpu::Features| if f.contains(x) { "yes" } else { "no" };
    println!("features");
    println!(
        "  timestamp queries  {}",
        has(wgpu::Features::TIMESTAMP_QUERY)
    );
    println!(
        "  subgroups          {} (size {}..{})",
        has(wgpu::Features::SUBGROUP),
        i.subgroup_min_size,
        i.subgroup_max_size
    );
    println!("  f16 in shaders     {}", has(wgpu::Features::SHADER_F16));
    Ok(())
}
