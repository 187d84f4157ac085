//! Every matmul variant at 256, 512, 1024 and 2048, beside a CPU sgemm
//! (`matrixmultiply`, threaded) as the reference line. Throughput is in
//! floating-point operations (2·n³ per product), so criterion's "elem/s"
//! reads as FLOP/s.
//!
//!     cargo bench --bench matmul
//!     cargo bench --bench matmul -- 'matmul/(blocked|cpu_sgemm)/'   # a subset
//!
//! On a CPU driver the naive variant at 2048 takes tens of seconds per
//! iteration; filter it out when that is not what you are measuring.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use darkmatter::kernels::matmul::{MatmulVariant, matmul_with};
use darkmatter::{Gpu, Tensor};

fn inputs(n: usize, seed: u32) -> Vec<f32> {
    (0..n * n)
        .map(|i| {
            let h = (i as u32 ^ seed).wrapping_mul(0x9E37_79B1).rotate_left(13);
            (h >> 8) as f32 / (1u32 << 23) as f32 - 1.0
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let gpu = Gpu::new().expect("an adapter (install mesa-vulkan-drivers for lavapipe)");
    eprintln!("device: {}", gpu.describe());
    let mut group = c.benchmark_group("matmul");
    group.sample_size(10);
    for n in [256usize, 512, 1024, 2048] {
        group.throughput(Throughput::Elements(2 * (n as u64).pow(3)));
        let (a, b) = (inputs(n, 1), inputs(n, 2));
        let mut out = vec![0f32; n * n];
        group.bench_with_input(BenchmarkId::new("cpu_sgemm", n), &n, |bench, &n| {
            bench.iter(|| unsafe {
                // SAFETY: a, b and out are n x n row-major and disjoint.
                matrixmultiply::sgemm(
                    n,
                    n,
                    n,
                    1.0,
                    a.as_ptr(),
                    n as isize,
                    1,
                    b.as_ptr(),
                    n as isize,
                    1,
                    0.0,
                    out.as_mut_ptr(),
                    n as isize,
                    1,
                )
            })
        });
        let at = Tensor::from_slice(&gpu, &a, &[n, n]).unwrap();
        let bt = Tensor::from_slice(&gpu, &b, &[n, n]).unwrap();
        for v in MatmulVariant::ALL {
            group.bench_with_input(BenchmarkId::new(v.name(), n), &n, |bench, _| {
                bench.iter(|| {
                    let c = matmul_with(v, &at, &bt, false, false).unwrap();
                    gpu.sync().unwrap();
                    c
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
