//! Weighted k-nearest-neighbour classification by cosine similarity, the
//! evaluation of InstDisc (Wu et al. 2018) and DINO: each of a query's k
//! nearest train samples votes for its class with weight exp(sim / T).
//!
//! The GPU normalises the rows and computes similarities as a matmul, one
//! chunk of queries at a time so that a `[chunk, N]` similarity block stays
//! within the device's storage binding limit. The top-k selection runs on
//! the CPU while the GPU computes the next chunk: on lavapipe the matmul is
//! almost all of the time (`examples/knn.rs` prints the split), so a GPU
//! selection kernel would have little to win there.

use super::{check_labels, check_splits};
use crate::error::{Error, Result};
use crate::gpu::Readback;
use crate::kernels::{eval::normalize_rows, matmul::matmul};
use crate::tensor::Tensor;

/// The temperature of the vote weights exp(sim / T) in InstDisc and DINO.
pub const KNN_TEMPERATURE: f32 = 0.07;

/// The most bytes of similarities computed per chunk, below the binding
/// limit where that is larger: two chunks are alive at a time (one on the
/// GPU, one being ranked), each also in a staging buffer, so this bounds
/// the memory the evaluation adds to about four times its value.
const BLOCK_BYTES: u64 = 64 << 20;

/// Top-1 accuracy in percent of a weighted kNN classifier for each `k` in
/// `ks`: cosine similarity between `test` `[M, D]` and `train` `[N, D]`
/// feature rows, votes weighted by exp(sim / `temperature`), the class with
/// the largest summed weight wins (the lower class index on a tie). Equal
/// similarities rank the lower train index first.
pub fn knn(
    train: &Tensor,
    train_labels: &[u32],
    test: &Tensor,
    test_labels: &[u32],
    num_classes: usize,
    ks: &[usize],
    temperature: f32,
) -> Result<Vec<f32>> {
    let (n, m, _) = check_splits("knn", train, train_labels.len(), test, test_labels.len())?;
    check_labels("knn", train_labels, num_classes)?;
    check_labels("knn", test_labels, num_classes)?;
    if ks.is_empty() {
        return Err(Error::invalid("knn", "no k given"));
    }
    if let Some(&k) = ks.iter().find(|&&k| k == 0 || k > n) {
        return Err(Error::invalid(
            "knn",
            format!("k = {k} is outside 1..={n} (the number of train samples)"),
        ));
    }
    if !(temperature.is_finite() && temperature > 0.0) {
        return Err(Error::invalid(
            "knn",
            format!("temperature {temperature} must be finite and positive"),
        ));
    }
    train.same_gpu(test, "knn")?;

    let gpu = train.gpu();
    let bank = normalize_rows(train, 0, n)?;
    let block = gpu
        .limits()
        .max_storage_buffer_binding_size
        .min(BLOCK_BYTES);
    let chunk = (block / (n as u64 * 4)).clamp(1, m as u64) as usize;

    let mut voter = Voter::new(n, ks, num_classes, temperature);
    let mut correct = vec![0usize; ks.len()];
    // One chunk in flight on the GPU while the CPU ranks the previous one.
    let mut pending: Option<(usize, Readback)> = None;
    for start in (0..m).step_by(chunk).chain([m]) {
        let next = if start < m {
            let len = chunk.min(m - start);
            let queries = normalize_rows(test, start, len)?;
            let sims = matmul(&queries, &bank, false, true)?;
            let rb = sims.read_async();
            gpu.submit();
            Some((start, rb))
        } else {
            None
        };
        if let Some((first, rb)) = pending.take() {
            let sims = rb.wait()?;
            for (q, row) in sims.chunks_exact(n).enumerate() {
                voter.vote(row, train_labels, test_labels[first + q], &mut correct);
            }
        }
        pending = next;
    }
    Ok(correct
        .iter()
        .map(|&c| 100.0 * c as f32 / m as f32)
        .collect())
}

/// Ranks one query's similarities and counts, for each k, whether the vote
/// was right. Keeps its scratch buffers between queries.
struct Voter {
    ks: Vec<usize>,
    /// Indices into `ks`, smallest k first.
    order: Vec<usize>,
    k_max: usize,
    inv_t: f64,
    scratch: Vec<f32>,
    top: Vec<(f32, u32)>,
    scores: Vec<f64>,
}

impl Voter {
    fn new(n: usize, ks: &[usize], num_classes: usize, temperature: f32) -> Voter {
        let k_max = ks.iter().copied().max().unwrap_or(1);
        let mut order: Vec<usize> = (0..ks.len()).collect();
        order.sort_unstable_by_key(|&i| ks[i]);
        Voter {
            ks: ks.to_vec(),
            order,
            k_max,
            inv_t: 1.0 / temperature as f64,
            scratch: vec![0.0; n],
            top: Vec::with_capacity(k_max),
            scores: vec![0.0; num_classes],
        }
    }

    fn vote(&mut self, sims: &[f32], labels: &[u32], truth: u32, correct: &mut [usize]) {
        // The k_max-th largest similarity, found on a contiguous copy (no
        // index indirection in the selection), then one pass that keeps
        // everything above it and fills up with equal values in index order.
        self.scratch.copy_from_slice(sims);
        let (_, &mut kth, _) = self
            .scratch
            .select_nth_unstable_by(self.k_max - 1, |a, b| b.total_cmp(a));
        self.top.clear();
        self.top.extend(
            sims.iter()
                .enumerate()
                .filter(|&(_, s)| s.total_cmp(&kth).is_gt())
                .map(|(i, &s)| (s, i as u32)),
        );
        for (i, &s) in sims.iter().enumerate() {
            if self.top.len() == self.k_max {
                break;
            }
            if s.total_cmp(&kth).is_eq() {
                self.top.push((s, i as u32));
            }
        }
        self.top
            .sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));

        // Votes accumulate along the ranking, so every k reads its answer
        // from the same pass.
        self.scores.iter_mut().for_each(|s| *s = 0.0);
        let mut taken = 0;
        for &i in &self.order {
            for &(s, j) in &self.top[taken..self.ks[i]] {
                self.scores[labels[j as usize] as usize] += (s as f64 * self.inv_t).exp();
            }
            taken = self.ks[i];
            let best = argmax(&self.scores);
            correct[i] += (best == truth as usize) as usize;
        }
    }
}

/// The index of the largest score, the lowest on a tie.
fn argmax(scores: &[f64]) -> usize {
    let mut best = 0;
    for (i, &s) in scores.iter().enumerate() {
        if s > scores[best] {
            best = i;
        }
    }
    best
}
