//! The batch loader: permutations, reproducibility, contents, shutdown.

use std::collections::HashSet;
use std::sync::Arc;

use darkmatter::data::{
    DataError, Dataset, Loader, LoaderConfig, Split, SyntheticConfig, SyntheticDataset,
};

/// A 2x3x1 dataset whose image `i` is six bytes of `i` (mod 256), and whose
/// label is `i % 4` when labelled: contents identify their index.
struct Counting {
    len: usize,
    labelled: bool,
}

impl Dataset for Counting {
    fn name(&self) -> &str {
        "counting"
    }
    fn len(&self) -> usize {
        self.len
    }
    fn height(&self) -> usize {
        2
    }
    fn width(&self) -> usize {
        3
    }
    fn channels(&self) -> usize {
        1
    }
    fn fill_image(&self, index: usize, out: &mut [u8]) {
        assert!(index < self.len);
        out.fill(index as u8);
    }
    fn label(&self, index: usize) -> Option<u32> {
        (self.labelled && index < self.len).then_some(index as u32 % 4)
    }
    fn num_classes(&self) -> Option<usize> {
        self.labelled.then_some(4)
    }
}

fn loader(len: usize, batch_size: usize, seed: u64, drop_last: bool) -> Loader {
    let dataset = Arc::new(Counting {
        len,
        labelled: true,
    });
    let config = LoaderConfig {
        batch_size,
        seed,
        shuffle: true,
        drop_last,
    };
    Loader::new(dataset, config).unwrap()
}

#[test]
fn each_epoch_visits_every_index_once() {
    let keep = loader(103, 10, 5, false);
    assert_eq!(keep.batches_per_epoch(), 11);
    let batches: Vec<_> = keep.epoch(0).collect();
    assert_eq!(batches.len(), 11);
    assert_eq!(batches[10].len(), 3);
    let mut seen: Vec<usize> = batches.iter().flat_map(|b| b.indices.clone()).collect();
    assert_eq!(seen, keep.order(0));
    seen.sort_unstable();
    assert_eq!(seen, (0..103).collect::<Vec<_>>());

    let drop = loader(103, 10, 5, true);
    let batches: Vec<_> = drop.epoch(0).collect();
    assert_eq!(batches.len(), 10);
    assert!(batches.iter().all(|b| b.len() == 10));
    let unique: HashSet<usize> = batches.iter().flat_map(|b| b.indices.clone()).collect();
    assert_eq!(unique.len(), 100);
}

#[test]
fn order_depends_on_seed_and_epoch_only() {
    let a = loader(200, 16, 42, true);
    let b = loader(200, 16, 42, true);
    // Asking for epoch 3 first does not change it: no hidden state.
    let late = b.order(3);
    assert_eq!(a.order(0), b.order(0));
    assert_eq!(a.order(3), late);
    assert_ne!(a.order(0), a.order(1));
    assert_ne!(a.order(0), loader(200, 16, 43, true).order(0));
    let first: Vec<Vec<usize>> = a.epoch(2).map(|batch| batch.indices).collect();
    let again: Vec<Vec<usize>> = b.epoch(2).map(|batch| batch.indices).collect();
    assert_eq!(first, again);
}

#[test]
fn batch_contents_equal_the_dataset_images() {
    let ds: Arc<dyn Dataset> = Arc::new(
        SyntheticDataset::new(
            SyntheticConfig {
                size: 16,
                train_len: 50,
                test_len: 10,
                seed: 9,
                ..SyntheticConfig::default()
            },
            Split::Train,
        )
        .unwrap(),
    );
    let loader = Loader::new(Arc::clone(&ds), LoaderConfig::new(8)).unwrap();
    for batch in loader.epoch(1) {
        assert_eq!((batch.height, batch.width, batch.channels), (16, 16, 3));
        assert_eq!(batch.images.len(), batch.len() * ds.image_len());
        let labels = batch.labels.as_ref().unwrap();
        for (k, &i) in batch.indices.iter().enumerate() {
            assert_eq!(batch.image(k), ds.image(i));
            assert_eq!(labels[k], ds.label(i).unwrap());
        }
    }
}

#[test]
fn epochs_stream_across_boundaries() {
    let l = loader(30, 7, 1, true);
    let stream = l.epochs(2..5);
    assert_eq!(stream.size_hint(), (12, Some(12)));
    let batches: Vec<_> = stream.collect();
    assert_eq!(batches.len(), 12);
    for (n, batch) in batches.iter().enumerate() {
        assert_eq!((batch.epoch, batch.step), (2 + n as u64 / 4, n % 4));
        for (k, &i) in batch.indices.iter().enumerate() {
            assert!(batch.image(k).iter().all(|&v| v == i as u8));
        }
    }
}

#[test]
fn dropping_early_stops_the_worker() {
    let l = loader(1000, 4, 0, true);
    let mut endless = l.epochs(0..u64::MAX);
    assert_eq!(endless.size_hint().1, None);
    let first = endless.next().unwrap();
    assert_eq!(first.len(), 4);
    drop(endless); // must return, not hang on a full channel
    assert_eq!(l.epoch(0).next().unwrap(), first);
}

#[test]
fn unshuffled_unlabelled_and_degenerate_cases() {
    let ds = Arc::new(Counting {
        len: 10,
        labelled: false,
    });
    let config = LoaderConfig {
        shuffle: false,
        drop_last: false,
        ..LoaderConfig::new(4)
    };
    let l = Loader::new(ds.clone(), config).unwrap();
    assert_eq!(l.order(7), (0..10).collect::<Vec<_>>());
    let batches: Vec<_> = l.epoch(0).collect();
    assert!(batches.iter().all(|b| b.labels.is_none()));
    assert_eq!(batches[2].indices, [8, 9]);

    // A batch larger than the dataset, with drop_last: no batches, no hang.
    let l = Loader::new(ds.clone(), LoaderConfig::new(11)).unwrap();
    assert_eq!(l.epochs(0..u64::MAX).count(), 0);

    let error = Loader::new(ds, LoaderConfig::new(0)).unwrap_err();
    assert!(matches!(error, DataError::Config(_)));
}
