//! Data sources: where images come from, before augmentation and the GPU.
//!
//! Every source implements [`Dataset`]: a fixed number of same-sized `u8`
//! images laid out `H x W x C` (row-major, channels interleaved), with
//! optional labels and, for the synthetic source, ground-truth attributes.
//! [`Loader`] turns a dataset into shuffled host batches on a background
//! thread, and [`open`] maps the CLI's spec strings to datasets.
//!
//! | spec                 | source                                                        |
//! |----------------------|---------------------------------------------------------------|
//! | `synthetic`          | [`SyntheticDataset`]: shapes rendered on demand, no files      |
//! | `fashion-mnist[:DIR]`| [`IdxDataset`], default `/usr/share/datasets/fashion-mnist`    |
//! | `mnist:DIR`          | [`IdxDataset`]                                                |
//! | `cifar10:DIR`        | [`Cifar10Dataset`], the binary version                         |
//! | `folder:DIR`         | [`FolderDataset`], PNG / JPEG, 32x32 RGB                       |
//! | `moving-shapes`      | [`MovingShapes`]: clips of moving, bouncing shapes (video)     |
//!
//! # Hostile input, without cargo-fuzz
//!
//! The parsers read files a user points us at, so they must return an error
//! for every byte string, never panic and never allocate what a header merely
//! promises. Rather than a cargo-fuzz target (nightly, libFuzzer, a separate
//! crate), they are written to be total and are tested that way:
//!
//! - every parser takes any `Read`, so tests feed it bytes from memory;
//! - header arithmetic is done in `u128`, which the product of the header's
//!   `u32` fields cannot overflow, and compared against a fixed ceiling;
//! - payloads are read with `take(promised + 1)` into a buffer that grows with
//!   the bytes that actually arrive, so a gzip bomb or a lying header costs
//!   no more memory than the data it really holds;
//! - slicing happens only after the length it relies on has been checked.
//!
//! `tests/data.rs` then runs a seeded mutation loop — random byte strings,
//! byte flips, truncations, extreme header fields, over raw and gzip inputs —
//! through the IDX and CIFAR parsers and asserts each returns. Set
//! `DARKMATTER_FUZZ_ITERS` to run it longer than the default few thousand
//! cases; the seed is printed on failure so any case can be replayed.

mod cifar;
mod error;
mod folder;
mod idx;
mod loader;
pub(crate) mod rng;
mod stream;
mod subset;
mod synthetic;
mod video;

use std::fmt;
use std::path::Path;
use std::sync::Arc;

pub use cifar::{
    CIFAR10_CLASSES, CIFAR10_RECORD_BYTES, Cifar10Dataset, CifarBatch, read_cifar10_batch,
};
pub use error::DataError;
pub use folder::{ColorMode, FolderDataset, FolderOptions};
pub use idx::{
    FASHION_MNIST_CLASSES, FASHION_MNIST_DIR, IDX1_UBYTE_MAGIC, IDX3_UBYTE_MAGIC, IdxDataset,
    IdxImages, read_idx_images, read_idx_labels,
};
pub use loader::{Batch, Batches, Loader, LoaderConfig};
pub use subset::Subset;
pub(crate) use synthetic::SCALE_RANGE;
pub use synthetic::{Shape, SyntheticConfig, SyntheticDataset};
pub use video::{
    Clip, MovingShapes, MovingShapesConfig, ObjectTruth, Violated, Violation, is_video, open_video,
};

/// Which half of a dataset to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Split {
    /// The training split.
    Train,
    /// The held-out split, for evaluation.
    Test,
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Split::Train => "train",
            Split::Test => "test",
        })
    }
}

/// Ground truth of a synthetic image.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Attributes {
    /// Class label (index into [`Shape::ALL`]).
    pub class: u32,
    /// Horizontal centre, as a fraction of the width (0 = left edge).
    pub x: f32,
    /// Vertical centre, as a fraction of the height (0 = top edge).
    pub y: f32,
    /// Diameter of the shape's circumscribed circle, as a fraction of the
    /// width; in `[0.3, 0.7)`.
    pub scale: f32,
    /// Rotation in radians, in `[0, 2π)`, applied from the shape's canonical
    /// pose (clockwise on screen, since image y points down). Every shape
    /// carries one, including the disc and the ring, which look the same at
    /// every angle; see [`Shape::symmetry_order`] for what the pixels reveal.
    pub rotation: f32,
}

/// A fixed, indexable collection of same-sized images.
///
/// Images are `u8`, `height x width x channels`, row-major with channels
/// interleaved (HWC). Implementations are immutable after construction and
/// shared across threads (the [`Loader`] reads them from its worker).
pub trait Dataset: Send + Sync {
    /// Human-readable name for logs, e.g. `fashion-mnist (train)`.
    fn name(&self) -> &str;

    /// Number of images.
    fn len(&self) -> usize;

    /// Whether there are no images (no constructor in this module makes such a dataset).
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Image height in pixels.
    fn height(&self) -> usize;

    /// Image width in pixels.
    fn width(&self) -> usize;

    /// Channels per pixel: 1 (grey) or 3 (RGB).
    fn channels(&self) -> usize;

    /// Bytes per image: `height * width * channels`.
    fn image_len(&self) -> usize {
        self.height() * self.width() * self.channels()
    }

    /// Writes image `index` into `out`.
    ///
    /// Filling a caller's buffer (rather than returning a slice) lets
    /// in-memory datasets copy straight into a batch and generated ones
    /// render there, with no allocation per image.
    ///
    /// # Panics
    ///
    /// If `index >= len()` or `out.len() != image_len()`, like slice
    /// indexing: both are bugs in the caller, not bad input.
    fn fill_image(&self, index: usize, out: &mut [u8]);

    /// Image `index` in a new buffer; see [`Dataset::fill_image`].
    fn image(&self, index: usize) -> Vec<u8> {
        let mut out = vec![0; self.image_len()];
        self.fill_image(index, &mut out);
        out
    }

    /// Class label of image `index`, if the dataset is labelled and `index` is in range.
    fn label(&self, index: usize) -> Option<u32>;

    /// Number of classes, if the dataset is labelled.
    fn num_classes(&self) -> Option<usize>;

    /// Class names by label, if known.
    fn class_names(&self) -> Option<&[String]> {
        None
    }

    /// Ground truth of image `index`; only synthetic datasets have it.
    fn attributes(&self, _index: usize) -> Option<Attributes> {
        None
    }
}

/// The image sides training accepts: a 3x3 convolution stack needs a few
/// pixels, and a side beyond this is a mistake (an IDX file declaring one
/// row of 100 000 pixels would otherwise train for minutes per image).
pub const SIDES: std::ops::RangeInclusive<usize> = 4..=1024;

/// Checks that a train and a test split can be used together: the same
/// image size and channels, and sides within [`SIDES`].
pub fn check_splits(train: &dyn Dataset, test: &dyn Dataset) -> Result<(), DataError> {
    let dims = |d: &dyn Dataset| (d.height(), d.width(), d.channels());
    if dims(train) != dims(test) {
        let (a, b) = (dims(train), dims(test));
        return Err(DataError::Config(format!(
            "the train split's images are {}x{} with {} channels but the test split's are {}x{} with {}",
            a.0, a.1, a.2, b.0, b.1, b.2
        )));
    }
    let (h, w, _) = dims(train);
    if !SIDES.contains(&h) || !SIDES.contains(&w) {
        return Err(DataError::Config(format!(
            "{}: images of {h}x{w} pixels; each side must be between {} and {}",
            train.name(),
            SIDES.start(),
            SIDES.end()
        )));
    }
    Ok(())
}

/// The spec forms [`open`] accepts, for error messages and `--help`.
pub const ACCEPTED_SPECS: &str = "synthetic, fashion-mnist, fashion-mnist:DIR, mnist:DIR, cifar10:DIR, folder:DIR, moving-shapes[:key=value,...] (video)";

/// Opens the dataset a CLI spec string names (see the module docs), with
/// default options: synthetic uses [`SyntheticConfig::default`], folders
/// load as 32x32 RGB.
pub fn open(spec: &str, split: Split) -> Result<Arc<dyn Dataset>, DataError> {
    let spec = spec.trim();
    // Split at the first colon only, so `folder:C:\images` keeps its drive letter.
    let (kind, dir) = match spec.split_once(':') {
        Some((kind, dir)) => (kind, Some(Path::new(dir))),
        None => (spec, None),
    };
    let dataset: Arc<dyn Dataset> = match (kind, dir) {
        (_, Some(dir)) if dir.as_os_str().is_empty() => return Err(unknown(spec)),
        _ if is_video(spec) => {
            return Err(DataError::Config(format!(
                "{spec} is a video data set: train it with a video method (--method pixel)"
            )));
        }
        ("synthetic", None) => Arc::new(SyntheticDataset::new(SyntheticConfig::default(), split)?),
        ("fashion-mnist", dir) => Arc::new(IdxDataset::fashion_mnist(dir, split)?),
        ("mnist", Some(dir)) => Arc::new(IdxDataset::mnist(dir, split)?),
        ("cifar10", Some(dir)) => Arc::new(Cifar10Dataset::open(dir, split)?),
        ("folder", Some(dir)) => Arc::new(FolderDataset::open_split(
            dir,
            split,
            FolderOptions::default(),
        )?),
        _ => return Err(unknown(spec)),
    };
    Ok(dataset)
}

fn unknown(spec: &str) -> DataError {
    DataError::UnknownSpec {
        spec: spec.to_string(),
        accepted: ACCEPTED_SPECS,
    }
}
