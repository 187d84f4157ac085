//! conv2d variants side by side, forward and backward (input + weight
//! gradients), on the ConvNet's layer shapes at batch 256 (28x28 input) and
//! a ResNet-18 stage (64 channels, 32x32, batch 128). Criterion reports
//! throughput in elements; GFLOP/s = 2 * elements / time (elements are
//! multiply-adds; the backward does two convolutions' worth).
//!
//!     cargo bench --bench conv2d
//!     cargo bench --bench conv2d -- implicit_gemm_fwd

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use darkmatter::kernels::conv2d::{
    ConvGeometry, ConvVariant, conv2d_backward_input, conv2d_backward_weight, conv2d_with,
};
use darkmatter::{Gpu, Tensor};

/// (id, batch, channels in, channels out, size, stride) at 3x3, padding 1.
const SHAPES: [(&str, usize, usize, usize, usize, usize); 5] = [
    ("convnet1_256x1x28", 256, 1, 32, 28, 1),
    ("convnet2_256x32x28", 256, 32, 64, 28, 2),
    ("convnet3_256x64x14", 256, 64, 128, 14, 2),
    ("convnet4_256x128x7", 256, 128, 128, 7, 1),
    ("resnet_128x64x32", 128, 64, 64, 32, 1),
];

fn bench(c: &mut Criterion) {
    let gpu = Gpu::new().expect("an adapter (lavapipe on CPU-only machines)");
    let mut group = c.benchmark_group("conv2d");
    group.sample_size(10);
    for (id, n, cin, cout, size, stride) in SHAPES {
        let x = Tensor::full(&gpu, &[n, cin, size, size], 0.5).unwrap();
        let w = Tensor::full(&gpu, &[cout, cin, 3, 3], 0.25).unwrap();
        let g = ConvGeometry::new(x.shape(), w.shape(), stride, 1).unwrap();
        let dy = Tensor::full(&gpu, &g.output_shape(), 0.1).unwrap();
        for variant in ConvVariant::ALL {
            if !variant.available(&gpu) {
                continue;
            }
            // im2col's patch matrix must fit one storage binding (128 MiB
            // on lavapipe): skip the sizes where it does not.
            if conv2d_backward_weight(variant, &x, &dy, w.shape(), stride, 1).is_err() {
                continue;
            }
            group.throughput(Throughput::Elements(g.macs()));
            group.bench_function(format!("{}_fwd/{id}", variant.name()), |b| {
                b.iter(|| {
                    conv2d_with(variant, &x, &w, None, stride, 1).unwrap();
                    gpu.sync().unwrap();
                })
            });
            group.throughput(Throughput::Elements(2 * g.macs()));
            group.bench_function(format!("{}_bwd/{id}", variant.name()), |b| {
                b.iter(|| {
                    conv2d_backward_input(variant, &dy, &w, x.shape(), stride, 1).unwrap();
                    conv2d_backward_weight(variant, &x, &dy, w.shape(), stride, 1).unwrap();
                    gpu.sync().unwrap();
                })
            });
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    // Plots off: the plot fonts of the crate's plotters build are not
    // registered in criterion's process.
    config = Criterion::default().without_plots();
    targets = bench
}
criterion_main!(benches);
