//! The reconstruction family's own ops side by side: the transposed
//! convolution (every convolution variant, forward and backward) on the
//! Fashion-MNIST decoder's two stages, the masked MSE fused against its
//! unfused reference, and the per-step cost of drawing a batch's patch
//! masks on the host and uploading them at every encoder resolution.
//! Criterion ids `conv_transpose2d/<variant>_<fwd|bwd>/<shape>`,
//! `masked_mse/<fused|unfused>/<shape>` and `mask/draw_upload/<shape>`.
//!
//!     cargo bench --bench reconstruction
//!     cargo bench --bench reconstruction -- masked_mse

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use darkmatter::augment::mask::PatchMask;
use darkmatter::kernels::conv_transpose::{
    TransposeGeometry, conv_transpose2d, conv_transpose2d_backward_input,
    conv_transpose2d_backward_weight,
};
use darkmatter::loss::{LossVariant, masked_mse};
use darkmatter::{ConvVariant, Gpu, Tape, Tensor};

/// (id, batch, channels in, channels out, input side) at k 4, s 2, p 1:
/// the default decoder of the ConvNet on 28x28 images (128 -> 64 -> 32).
const TRANSPOSE: [(&str, usize, usize, usize, usize); 2] = [
    ("decoder1_256x128x7", 256, 128, 64, 7),
    ("decoder2_256x64x14", 256, 64, 32, 14),
];

fn patterned(gpu: &Gpu, shape: &[usize], salt: usize) -> Tensor {
    let len: usize = shape.iter().product();
    let v: Vec<f32> = (0..len)
        .map(|k| (((k + salt) * 7919) % 1013) as f32 / 1013.0 - 0.5)
        .collect();
    Tensor::from_slice(gpu, &v, shape).unwrap()
}

fn transpose(c: &mut Criterion, gpu: &Gpu) {
    let mut group = c.benchmark_group("conv_transpose2d");
    group.sample_size(10);
    for (id, n, cin, cout, side) in TRANSPOSE {
        let x = patterned(gpu, &[n, cin, side, side], 1);
        let w = patterned(gpu, &[cin, cout, 4, 4], 2);
        let g = TransposeGeometry::new(x.shape(), w.shape(), 2, 1, 0).unwrap();
        let dy = patterned(gpu, &g.output_shape(), 3);
        for variant in ConvVariant::ALL {
            if !variant.available(gpu) {
                continue;
            }
            if conv_transpose2d_backward_weight(Some(variant), &x, &dy, &g).is_err() {
                continue;
            }
            group.throughput(Throughput::Elements(g.conv.macs()));
            group.bench_function(format!("{}_fwd/{id}", variant.name()), |b| {
                b.iter(|| {
                    conv_transpose2d(Some(variant), &x, &w, None, 2, 1, 0).unwrap();
                    gpu.sync().unwrap();
                })
            });
            group.throughput(Throughput::Elements(2 * g.conv.macs()));
            group.bench_function(format!("{}_bwd/{id}", variant.name()), |b| {
                b.iter(|| {
                    conv_transpose2d_backward_input(Some(variant), &dy, &w, &g).unwrap();
                    conv_transpose2d_backward_weight(Some(variant), &x, &dy, &g).unwrap();
                    gpu.sync().unwrap();
                })
            });
        }
    }
    group.finish();
}

fn masked(c: &mut Criterion, gpu: &Gpu) {
    let mut group = c.benchmark_group("masked_mse");
    group.sample_size(10);
    // (id, batch, channels, side, patch): Fashion-MNIST and 32x32 RGB.
    for (id, n, ch, side, patch) in [
        ("256x1x28_p4", 256, 1, 28, 4),
        ("256x3x32_p4", 256, 3, 32, 4),
    ] {
        let pred = patterned(gpu, &[n, ch, side, side], 4);
        let target = patterned(gpu, &[n, ch, side, side], 5);
        let mask = PatchMask::draw(0, 0, n, side, side, patch, 0.6).unwrap();
        let patches = mask.patches(gpu).unwrap();
        for variant in LossVariant::ALL {
            group.bench_function(format!("{}/{id}", variant.name()), |b| {
                b.iter(|| {
                    let mut tape = Tape::new(gpu);
                    let p = tape.param(&pred).unwrap();
                    let l = masked_mse(
                        &mut tape,
                        p,
                        &target,
                        &patches,
                        mask.count(),
                        patch,
                        true,
                        variant,
                    )
                    .unwrap();
                    let grads = tape.backward(l).unwrap();
                    gpu.sync().unwrap();
                    drop(grads);
                })
            });
        }
    }
    group.finish();

    // What a masked step spends on its masks: drawing them from the keyed
    // streams and uploading the patch grid plus the keep map at the input
    // and each ConvNet stage (28, 14, 7).
    let mut group = c.benchmark_group("mask");
    group.sample_size(10);
    group.bench_function("draw_upload/256x28_p4", |b| {
        let mut step = 0;
        b.iter(|| {
            step += 1;
            let mask = PatchMask::draw(0, step, 256, 28, 28, 4, 0.6).unwrap();
            let _p = mask.patches(gpu).unwrap();
            for s in [28, 14, 7] {
                let _k = mask.keep(gpu, s, s).unwrap();
            }
            gpu.sync().unwrap();
        })
    });
    group.finish();
}

fn bench(c: &mut Criterion) {
    let gpu = Gpu::new().expect("an adapter (lavapipe on CPU-only machines)");
    transpose(c, &gpu);
    masked(c, &gpu);
}

criterion_group! {
    name = benches;
    config = Criterion::default().without_plots();
    targets = bench
}
criterion_main!(benches);
