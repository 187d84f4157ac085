//! Every matmul variant at 1024 and 2048, timed side by side against a CPU
//! sgemm (the `matrixmultiply` crate, using every core), and checked against
//! it.
//!
//!     cargo run --release --example matmul            # 1024 and 2048
//!     cargo run --release --example matmul -- 512     # other sizes
//!
//! Each figure is the median of several runs after a warm-up run, measured
//! as: record the dispatch, submit, wait for the device. Uploads and
//! readbacks are outside the timed region.

use std::time::{Duration, Instant};

use darkmatter::kernels::matmul::{MatmulVariant, matmul_with};
use darkmatter::{Gpu, Tensor};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Times `f` after one warm-up call: runs for about a second (at most 20
/// runs), at least 3 runs unless those take over 10 s, at least 1.
fn time(mut f: impl FnMut()) -> Duration {
    f();
    let mut samples = Vec::new();
    let start = Instant::now();
    let more = |n: usize, t: Duration| {
        n == 0 || (n < 20 && t < Duration::from_secs(1)) || (n < 3 && t < Duration::from_secs(10))
    };
    while more(samples.len(), start.elapsed()) {
        let t = Instant::now();
        f();
        samples.push(t.elapsed());
    }
    median(samples)
}

fn cpu_sgemm(a: &[f32], b: &[f32], c: &mut [f32], n: usize) {
    // SAFETY: a, b and c are n x n row-major and do not overlap.
    unsafe {
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
            c.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}

fn main() -> darkmatter::Result<()> {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|s| s.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![1024, 2048]
    } else {
        sizes
    };
    let gpu = Gpu::new()?;
    println!("device: {}", gpu.describe());
    println!(
        "default variant: {}\n",
        MatmulVariant::default_for(&gpu).name()
    );
    println!(
        "{:>6} {:>10} {:>10} {:>9} {:>12} {:>10}",
        "size", "variant", "ms", "GFLOP/s", "vs cpu_sgemm", "max err"
    );

    for n in sizes {
        // Deterministic inputs in [-1, 1).
        let inputs = |seed: u32| -> Vec<f32> {
            (0..n * n)
                .map(|i| {
                    let h = (i as u32 ^ seed)
                        .wrapping_mul(0x9E37_79B1)
                        .rotate_left(13)
                        .wrapping_mul(0x85EB_CA77);
                    (h >> 8) as f32 / (1u32 << 23) as f32 - 1.0
                })
                .collect()
        };
        let (a, b) = (inputs(1), inputs(2));
        let flops = 2.0 * (n as f64).powi(3);

        let mut reference = vec![0f32; n * n];
        let cpu = time(|| cpu_sgemm(&a, &b, &mut reference, n));
        let cpu_gflops = flops / cpu.as_secs_f64() / 1e9;
        println!(
            "{n:>6} {:>10} {:>10.1} {:>9.2} {:>12} {:>10}",
            "cpu_sgemm",
            cpu.as_secs_f64() * 1e3,
            cpu_gflops,
            "1.00x",
            "-"
        );

        let at = Tensor::from_slice(&gpu, &a, &[n, n])?;
        let bt = Tensor::from_slice(&gpu, &b, &[n, n])?;
        for v in MatmulVariant::ALL {
            let mut out = None;
            let t = time(|| {
                out = Some(matmul_with(v, &at, &bt, false, false).expect("matmul"));
                gpu.sync().expect("sync");
            });
            let got = out.expect("ran").to_vec()?;
            let err = got
                .iter()
                .zip(&reference)
                .map(|(x, y)| (x - y).abs())
                .fold(0f32, f32::max);
            let gflops = flops / t.as_secs_f64() / 1e9;
            println!(
                "{n:>6} {:>10} {:>10.1} {:>9.2} {:>11.3}x {:>10.2e}",
                v.name(),
                t.as_secs_f64() * 1e3,
                gflops,
                gflops / cpu_gflops,
                err
            );
            if err > 1e-2 {
                eprintln!("error: {} differs from the CPU sgemm by {err}", v.name());
                std::process::exit(1);
            }
        }
        println!();
    }
    Ok(())
}
