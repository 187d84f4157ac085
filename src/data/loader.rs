//! Shuffled host batches, prepared on a background thread.
//!
//! While the GPU runs step `n`, a worker thread fills the pixels of steps
//! `n + 1` and `n + 2` (a bounded channel of depth 2 stops it from running
//! further ahead and holding more memory). Uploading is the caller's job: a
//! [`Batch`] is plain host memory laid out `B x H x W x C`.
//!
//! Each epoch's order is a Fisher-Yates shuffle drawn from a stream keyed by
//! `(seed, epoch)`, so epoch 7 can be reproduced without replaying epochs
//! 0..7 — resuming from a checkpoint sees the same batches as an
//! uninterrupted run.

use std::ops::Range;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, sync_channel};
use std::thread::JoinHandle;

use super::rng::{CounterRng, permutation};
use super::{DataError, Dataset};

/// Keeps shuffle streams apart from every other keyed stream.
const STREAM_TAG: u64 = 0x5348_5546_464c_4521; // "SHUFFLE!"

/// Batches the worker may have ready before the consumer takes one.
const PREFETCH_DEPTH: usize = 2;

/// How a [`Loader`] cuts a dataset into batches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoaderConfig {
    /// Images per batch (at least 1).
    pub batch_size: usize,
    /// Seed of the per-epoch shuffles.
    pub seed: u64,
    /// Shuffle each epoch; when false every epoch is `0..len` in order
    /// (what evaluation wants).
    pub shuffle: bool,
    /// Drop the last, smaller batch of an epoch (what training with batch
    /// statistics wants: a batch of 1 breaks batch norm and contrastive losses).
    pub drop_last: bool,
}

impl LoaderConfig {
    /// Shuffled, seed 0, dropping the last partial batch.
    pub fn new(batch_size: usize) -> Self {
        LoaderConfig {
            batch_size,
            seed: 0,
            shuffle: true,
            drop_last: true,
        }
    }
}

/// One batch of images in host memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    /// Epoch this batch belongs to.
    pub epoch: u64,
    /// Position of this batch within its epoch.
    pub step: usize,
    /// Dataset index of each image, in batch order.
    pub indices: Vec<usize>,
    /// The position of the first image in the global batch: 0, or where a
    /// rank's shard starts ([`Loader::shard`]). Per-image random draws are
    /// keyed by the global position, so a shard is augmented as the same
    /// images of a one-process run.
    pub first: usize,
    /// `len x height x width x channels` bytes, images back to back.
    pub images: Vec<u8>,
    /// The label of each image, when the dataset has labels for all of them.
    pub labels: Option<Vec<u32>>,
    /// Image height.
    pub height: usize,
    /// Image width.
    pub width: usize,
    /// Channels per pixel.
    pub channels: usize,
}

impl Batch {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.indices.len()
    }

    /// Whether the batch holds no image (never true for batches a [`Loader`] yields).
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    /// The pixels of image `k` of the batch (not dataset index `k`).
    pub fn image(&self, k: usize) -> &[u8] {
        let n = self.height * self.width * self.channels;
        &self.images[k * n..(k + 1) * n]
    }
}

/// Cuts a dataset into shuffled batches; see the module docs.
#[derive(Clone)]
pub struct Loader {
    dataset: Arc<dyn Dataset>,
    config: LoaderConfig,
    /// `(rank, ranks)`: yield only this rank's contiguous share of each batch.
    shard: Option<(usize, usize)>,
}

impl std::fmt::Debug for Loader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loader")
            .field("dataset", &self.dataset.name())
            .field("config", &self.config)
            .finish()
    }
}

impl Loader {
    /// A loader over `dataset`. Fails only on a zero batch size.
    pub fn new(dataset: Arc<dyn Dataset>, config: LoaderConfig) -> Result<Self, DataError> {
        if config.batch_size == 0 {
            return Err(DataError::Config("batch size is zero".to_string()));
        }
        Ok(Loader {
            dataset,
            config,
            shard: None,
        })
    }

    /// This loader, yielding only rank `rank`'s share of every batch: the
    /// batches (of `batch_size`, the global batch) are those of the
    /// unsharded loader, cut into `ranks` contiguous pieces of equal size.
    pub fn shard(mut self, rank: usize, ranks: usize) -> Result<Self, DataError> {
        if ranks == 0 || rank >= ranks || !self.config.batch_size.is_multiple_of(ranks) {
            return Err(DataError::Config(format!(
                "a batch of {} cannot be split evenly over {ranks} ranks",
                self.config.batch_size
            )));
        }
        let last = self.dataset.len() % self.config.batch_size;
        if !self.config.drop_last && !last.is_multiple_of(ranks) {
            return Err(DataError::Config(format!(
                "the last batch of {last} images cannot be split evenly over {ranks} ranks (drop it with drop_last)"
            )));
        }
        self.shard = Some((rank, ranks));
        Ok(self)
    }

    /// The dataset batches are drawn from.
    pub fn dataset(&self) -> &Arc<dyn Dataset> {
        &self.dataset
    }

    /// The configuration this loader was made with.
    pub fn config(&self) -> LoaderConfig {
        self.config
    }

    /// Number of batches each epoch yields.
    pub fn batches_per_epoch(&self) -> usize {
        let (len, size) = (self.dataset.len(), self.config.batch_size);
        if self.config.drop_last {
            len / size
        } else {
            len.div_ceil(size)
        }
    }

    /// The dataset indices of `epoch`, in the order batches visit them.
    pub fn order(&self, epoch: u64) -> Vec<usize> {
        epoch_order(self.dataset.len(), &self.config, epoch)
    }

    /// The batches of one epoch.
    pub fn epoch(&self, epoch: u64) -> Batches {
        self.epochs(epoch..epoch.saturating_add(1))
    }

    /// The batches of several epochs as one stream, so the worker keeps
    /// prefetching across epoch boundaries. `start..u64::MAX` is, in
    /// practice, endless.
    pub fn epochs(&self, epochs: Range<u64>) -> Batches {
        let per_epoch = self.batches_per_epoch();
        let remaining = usize::try_from(epochs.end.saturating_sub(epochs.start))
            .ok()
            .and_then(|n| n.checked_mul(per_epoch));
        let producer = self.producer(epochs.clone());
        let (sender, receiver) = sync_channel(PREFETCH_DEPTH);
        let spawned = std::thread::Builder::new()
            .name("darkmatter-loader".to_string())
            .spawn(move || {
                for batch in producer {
                    // The consumer hung up: stop quietly.
                    if sender.send(batch).is_err() {
                        break;
                    }
                }
            });
        let source = match spawned {
            Ok(worker) => Source::Background {
                receiver: Some(receiver),
                worker: Some(worker),
            },
            // No thread to be had (resource exhaustion): the first producer
            // went down with the closure, so run a fresh one on the caller's
            // thread. Slower, but the same batches.
            Err(_) => Source::Inline(self.producer(epochs)),
        };
        Batches { source, remaining }
    }

    fn producer(&self, epochs: Range<u64>) -> Producer {
        Producer {
            dataset: Arc::clone(&self.dataset),
            config: self.config,
            shard: self.shard,
            per_epoch: self.batches_per_epoch(),
            epochs,
            current: None,
            step: 0,
        }
    }
}

/// Dataset indices of one epoch: a keyed Fisher-Yates shuffle, or `0..len`.
fn epoch_order(len: usize, config: &LoaderConfig, epoch: u64) -> Vec<usize> {
    if config.shuffle {
        permutation(
            len,
            &mut CounterRng::keyed(&[STREAM_TAG, config.seed, epoch]),
        )
    } else {
        (0..len).collect()
    }
}

/// Makes batches synchronously; the worker thread drives it.
struct Producer {
    dataset: Arc<dyn Dataset>,
    config: LoaderConfig,
    shard: Option<(usize, usize)>,
    per_epoch: usize,
    epochs: Range<u64>,
    /// The epoch being cut and its order.
    current: Option<(u64, Vec<usize>)>,
    step: usize,
}

impl Iterator for Producer {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        // Without this, an epoch with no batches would loop over epochs forever.
        if self.per_epoch == 0 {
            return None;
        }
        loop {
            if let Some((epoch, order)) = &self.current
                && self.step < self.per_epoch
            {
                let size = self.config.batch_size;
                let start = self.step * size;
                let global = &order[start..(start + size).min(order.len())];
                let (first, indices) = match self.shard {
                    Some((rank, ranks)) => {
                        let share = global.len() / ranks;
                        (
                            rank * share,
                            global[rank * share..(rank + 1) * share].to_vec(),
                        )
                    }
                    None => (0, global.to_vec()),
                };
                let mut batch = make_batch(self.dataset.as_ref(), *epoch, self.step, indices);
                batch.first = first;
                self.step += 1;
                return Some(batch);
            }
            let epoch = self.epochs.next()?;
            let order = epoch_order(self.dataset.len(), &self.config, epoch);
            self.current = Some((epoch, order));
            self.step = 0;
        }
    }
}

fn make_batch(dataset: &dyn Dataset, epoch: u64, step: usize, indices: Vec<usize>) -> Batch {
    let n = dataset.image_len();
    let mut images = vec![0u8; indices.len() * n];
    for (out, &i) in images.chunks_exact_mut(n).zip(&indices) {
        dataset.fill_image(i, out);
    }
    let labels = indices.iter().map(|&i| dataset.label(i)).collect();
    Batch {
        epoch,
        step,
        indices,
        first: 0,
        images,
        labels,
        height: dataset.height(),
        width: dataset.width(),
        channels: dataset.channels(),
    }
}

enum Source {
    Background {
        // Options so `Drop` can hang up before joining.
        receiver: Option<Receiver<Batch>>,
        worker: Option<JoinHandle<()>>,
    },
    Inline(Producer),
}

/// An iterator over batches; see [`Loader::epoch`] and [`Loader::epochs`].
///
/// Dropping it early stops the worker thread.
pub struct Batches {
    source: Source,
    /// Batches still to come, when that number fits a `usize`.
    remaining: Option<usize>,
}

impl std::fmt::Debug for Batches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batches")
            .field("remaining", &self.remaining)
            .finish_non_exhaustive()
    }
}

impl Iterator for Batches {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        let batch = match &mut self.source {
            Source::Inline(producer) => producer.next(),
            Source::Background { receiver, worker } => {
                match receiver.as_ref().and_then(|r| r.recv().ok()) {
                    Some(batch) => Some(batch),
                    None => {
                        // The worker finished or died. A panic inside a
                        // dataset is a bug worth surfacing, not a short epoch.
                        if let Some(Err(panic)) = worker.take().map(JoinHandle::join) {
                            std::panic::resume_unwind(panic);
                        }
                        None
                    }
                }
            }
        };
        if batch.is_some() {
            self.remaining = self.remaining.map(|r| r.saturating_sub(1));
        }
        batch
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self.remaining {
            Some(n) => (n, Some(n)),
            None => (usize::MAX, None),
        }
    }
}

impl Drop for Batches {
    fn drop(&mut self) {
        if let Source::Background { receiver, worker } = &mut self.source {
            // Hang up first, so a worker blocked on a full channel wakes
            // with a send error and exits; then wait for it.
            drop(receiver.take());
            if let Some(worker) = worker.take() {
                let _ = worker.join();
            }
        }
    }
}
