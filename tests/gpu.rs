//! The GPU context: pooling, batching, readback, embedding, independence.

mod common;
use common::*;
use darkmatter::kernels::matmul;
use darkmatter::{Gpu, Tape, Tensor};

/// One step of a tiny regression model through the tape.
fn step(gpu: &Gpu, w: &Tensor, x: &Tensor) -> Tensor {
    let mut tape = Tape::new(gpu);
    let (wv, xv) = (tape.param(w).unwrap(), tape.constant(x).unwrap());
    let y = tape.matmul(xv, wv, false, false).unwrap();
    let y = tape.relu(y).unwrap();
    let sq = tape.square(y).unwrap();
    let loss = tape.mean_all(sq).unwrap();
    let grads = tape.backward(loss).unwrap();
    grads.get(wv).unwrap().clone()
}

#[test]
fn memory_stays_flat_over_training_steps() {
    // A device of its own, so other tests do not disturb the statistics.
    let gpu = Gpu::new().unwrap();
    let mut rng = Rng::new(1);
    let w = Tensor::from_slice(&gpu, &rng.vec(64 * 32, -1.0, 1.0), &[64, 32]).unwrap();
    let x = Tensor::from_slice(&gpu, &rng.vec(50 * 64, -1.0, 1.0), &[50, 64]).unwrap();
    step(&gpu, &w, &x).to_vec().unwrap();
    let after_first = gpu.pool_stats();
    let pipelines = gpu.pipeline_count();
    for _ in 0..5 {
        step(&gpu, &w, &x).to_vec().unwrap();
    }
    let after = gpu.pool_stats();
    assert_eq!(
        after.allocations, after_first.allocations,
        "{after_first:?} -> {after:?}"
    );
    assert_eq!(after.live_bytes, after_first.live_bytes);
    assert!(after.reuses > after_first.reuses);
    assert_eq!(gpu.pipeline_count(), pipelines, "pipelines are cached");
    // Every buffer of the steps is back in the pool.
    drop((w, x));
    let idle = gpu.pool_stats();
    assert_eq!(idle.live_bytes, 0, "{idle:?}");
    assert!(idle.pooled_bytes > 0);
    gpu.trim_pool();
    assert_eq!(gpu.pool_stats().pooled_bytes, 0);
}

#[test]
fn uploads_after_a_release_in_the_same_batch_do_not_clobber_pending_work() {
    // x is consumed by a recorded (not yet submitted) dispatch, then dropped;
    // a new upload of the same size must not reuse its buffer, because
    // queue writes land before the pending batch runs.
    let gpu = Gpu::new().unwrap();
    let x = Tensor::from_slice(&gpu, &[1.0, 2.0, 3.0, 4.0], &[4]).unwrap();
    let y = darkmatter::kernels::elementwise::scale(&x, 10.0).unwrap();
    drop(x);
    let z = Tensor::from_slice(&gpu, &[-1.0; 4], &[4]).unwrap();
    assert_eq!(y.to_vec().unwrap(), vec![10.0, 20.0, 30.0, 40.0]);
    assert_eq!(z.to_vec().unwrap(), vec![-1.0; 4]);
}

#[test]
fn async_readback_completes_without_blocking_calls() {
    let a = upload(&[1.0, 2.0, 3.0, 4.0], &[2, 2]);
    let c = matmul::matmul(&a, &a, false, false).unwrap();
    let mut pending = c.read_async();
    let mut polls = 0;
    let values = loop {
        if let Some(v) = pending.try_take() {
            break v.unwrap();
        }
        polls += 1;
        assert!(polls < 1_000_000, "readback never completed");
        std::thread::yield_now();
    };
    assert_eq!(values, vec![7.0, 10.0, 15.0, 22.0]);
    // A readback recorded and then dropped unread leaves its buffer reusable.
    drop(c.read_async());
    assert_eq!(c.to_vec().unwrap(), vec![7.0, 10.0, 15.0, 22.0]);
}

#[test]
fn two_devices_live_side_by_side() {
    let g1 = Gpu::new().unwrap();
    let g2 = Gpu::new().unwrap();
    let a = Tensor::from_slice(&g1, &[2.0; 4], &[2, 2]).unwrap();
    let b = Tensor::from_slice(&g2, &[3.0; 4], &[2, 2]).unwrap();
    let ca = matmul::matmul(&a, &a, false, false).unwrap();
    let cb = matmul::matmul(&b, &b, false, false).unwrap();
    assert_eq!(ca.to_vec().unwrap(), vec![8.0; 4]);
    assert_eq!(cb.to_vec().unwrap(), vec![18.0; 4]);
    assert!(g1.pool_stats().allocations > 0 && g2.pool_stats().allocations > 0);
}

#[test]
fn an_adopted_device_gives_plain_buffers() {
    // A host application's own device and queue.
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapter =
        pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions::default()))
            .expect("an adapter");
    let info = adapter.get_info();
    let (device, queue) =
        pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor::default()))
            .expect("a device");
    let gpu = Gpu::from_wgpu(device.clone(), queue.clone(), Some(info));
    let a = Tensor::from_slice(&gpu, &[1.0, 2.0, 3.0, 4.0], &[2, 2]).unwrap();
    let c = matmul::matmul(&a, &a, false, false).unwrap();
    gpu.submit();
    // The host reads the result with its own copy, on its own queue.
    let staging = device.create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: 16,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut enc = device.create_command_encoder(&Default::default());
    enc.copy_buffer_to_buffer(c.buffer(), 0, &staging, 0, 16);
    queue.submit([enc.finish()]);
    staging
        .slice(..)
        .map_async(wgpu::MapMode::Read, |r| r.unwrap());
    device.poll(wgpu::PollType::wait_indefinitely()).unwrap();
    let got: Vec<f32> =
        bytemuck::cast_slice(&staging.slice(..).get_mapped_range().unwrap()).to_vec();
    assert_eq!(got, vec![7.0, 10.0, 15.0, 22.0]);
    assert!(c.buffer().usage().contains(wgpu::BufferUsages::STORAGE));
}
