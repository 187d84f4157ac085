//! Times the weighted kNN evaluation at the size the training loop runs it
//! (MNIST-sized: 60000 train and 10000 test features of width 128, k = 20
//! and 200), and the similarity pass alone, to show where the time goes.
//!
//! ```text
//! cargo run --release --example knn [N M D]
//! ```

use std::time::Instant;

use darkmatter::eval::{KNN_TEMPERATURE, knn};
use darkmatter::kernels::{eval::normalize_rows, matmul::matmul};
use darkmatter::{Gpu, Result, Tensor};

/// Noisy features around 10 random class centres, so the accuracy means
/// something; the same centres for every call (one seed), other noise.
fn features(n: usize, d: usize, noise_seed: u64) -> (Vec<f32>, Vec<u32>) {
    let lcg = |state: &mut u64| {
        *state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((*state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    };
    let mut seed = 7;
    let centres: Vec<f32> = (0..10 * d).map(|_| lcg(&mut seed)).collect();
    let mut seed = noise_seed;
    let x = (0..n * d)
        .map(|i| centres[(i / d % 10) * d + i % d] + 1.5 * lcg(&mut seed))
        .collect();
    (x, (0..n).map(|i| (i % 10) as u32).collect())
}

fn main() -> Result<()> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let (n, m, d) = match args[..] {
        [n, m, d] => (n, m, d),
        _ => (60_000, 10_000, 128),
    };
    let gpu = Gpu::new()?;
    println!("{}", gpu.describe());
    let (xtr, ytr) = features(n, d, 1);
    let (xte, yte) = features(m, d, 2);
    let train = Tensor::from_slice(&gpu, &xtr, &[n, d])?;
    let test = Tensor::from_slice(&gpu, &xte, &[m, d])?;
    gpu.sync()?;

    // The similarity pass alone, in the chunks knn uses, each read back.
    let t = Instant::now();
    let bank = normalize_rows(&train, 0, n)?;
    let block = gpu.limits().max_storage_buffer_binding_size.min(64 << 20);
    let chunk = (block / (n as u64 * 4)).clamp(1, m as u64) as usize;
    for start in (0..m).step_by(chunk) {
        let len = chunk.min(m - start);
        let sims = matmul(&normalize_rows(&test, start, len)?, &bank, false, true)?;
        sims.to_vec()?;
    }
    let sims_s = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let acc = knn(&train, &ytr, &test, &yte, 10, &[20, 200], KNN_TEMPERATURE)?;
    let total_s = t.elapsed().as_secs_f64();
    let gflop = 2.0 * n as f64 * m as f64 * d as f64 / 1e9;
    println!("kNN N={n} M={m} D={d}, chunks of {chunk} queries");
    println!(
        "  similarities + readback: {sims_s:.2} s ({:.1} GFLOP/s)",
        gflop / sims_s
    );
    println!("  knn() total, k=20 and 200: {total_s:.2} s (top-k on the CPU, overlapped)");
    println!("  accuracy: k=20 {:.2}%, k=200 {:.2}%", acc[0], acc[1]);
    Ok(())
}
