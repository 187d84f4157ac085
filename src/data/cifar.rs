//! CIFAR-10, binary version (`cifar-10-binary.tar.gz`).
//!
//! Each batch file is a plain sequence of 3073-byte records: one label byte,
//! then a 32x32 image stored planar — 1024 red bytes, 1024 green, 1024 blue,
//! each plane row-major. The rest of `darkmatter` expects interleaved HWC
//! pixels, so records are transposed once, at load time.
//!
//! Training data is `data_batch_1.bin` .. `data_batch_5.bin`, test data is
//! `test_batch.bin`, and `batches.meta.txt` lists the class names one per line.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::stream::{MAX_PAYLOAD_BYTES, Stream, open_reader};
use super::{DataError, Dataset, Split};

/// CIFAR-10's class names, by label; used when `batches.meta.txt` is absent.
pub const CIFAR10_CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

const SIDE: usize = 32;
const PLANE: usize = SIDE * SIDE;
const IMAGE_BYTES: usize = 3 * PLANE;
/// Bytes per record: label + planar image.
pub const CIFAR10_RECORD_BYTES: usize = 1 + IMAGE_BYTES;

/// The directory the official tarball extracts to.
const TARBALL_DIR: &str = "cifar-10-batches-bin";

/// The records of one or more CIFAR-10 batch files.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CifarBatch {
    /// 32x32x3 images, interleaved RGB (HWC), one after another.
    pub images: Vec<u8>,
    /// One label (0..10) per image.
    pub labels: Vec<u8>,
}

impl CifarBatch {
    /// Number of records.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no records.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// Parses one CIFAR-10 binary batch from `reader` (raw, or gzip-compressed,
/// detected by content) and appends its records to `batch`. `path` only names
/// the source in error messages.
pub fn read_cifar10_batch<R: Read>(
    reader: R,
    path: &Path,
    batch: &mut CifarBatch,
) -> Result<(), DataError> {
    let mut s = Stream::new(reader, path)?;
    let mut record = [0u8; CIFAR10_RECORD_BYTES];
    let mut records = 0usize;
    loop {
        let offset = s.offset();
        if offset > MAX_PAYLOAD_BYTES {
            return Err(DataError::TooLarge {
                path: path.to_path_buf(),
                promised: u128::from(offset),
                limit: MAX_PAYLOAD_BYTES,
            });
        }
        let n = s.read_up_to(&mut record)?;
        if n == 0 {
            break;
        }
        if n < record.len() {
            return Err(DataError::Truncated {
                path: path.to_path_buf(),
                offset,
                expected: CIFAR10_RECORD_BYTES as u64,
                available: n as u64,
            });
        }
        let label = record[0];
        if usize::from(label) >= CIFAR10_CLASSES.len() {
            return Err(DataError::BadLabel {
                path: path.to_path_buf(),
                offset,
                label: u32::from(label),
                num_classes: CIFAR10_CLASSES.len(),
            });
        }
        batch.labels.push(label);
        let planes = &record[1..];
        // Planar (C, H, W) -> interleaved (H, W, C).
        batch
            .images
            .extend((0..PLANE).flat_map(|p| [planes[p], planes[PLANE + p], planes[2 * PLANE + p]]));
        records += 1;
    }
    if records == 0 {
        return Err(DataError::invalid(
            path,
            "holds no CIFAR-10 records (empty file)",
        ));
    }
    Ok(())
}

/// CIFAR-10 in memory.
#[derive(Debug)]
pub struct Cifar10Dataset {
    name: String,
    batch: CifarBatch,
    class_names: Vec<String>,
}

impl Cifar10Dataset {
    /// Loads a split from `dir`: either the directory holding the `.bin`
    /// files, or the one the tarball was extracted in (which holds
    /// `cifar-10-batches-bin/`).
    pub fn open(dir: &Path, split: Split) -> Result<Self, DataError> {
        let missing = |path: PathBuf| DataError::Missing {
            path,
            hint: format!(
                "download the binary version (cifar-10-binary.tar.gz) from \
                 https://www.cs.toronto.edu/~kriz/cifar.html, extract it in {} \
                 and pass it as `cifar10:DIR`",
                dir.display()
            ),
        };
        if !dir.is_dir() {
            return Err(missing(dir.to_path_buf()));
        }
        let nested = dir.join(TARBALL_DIR);
        let root = if !dir.join("test_batch.bin").exists() && nested.is_dir() {
            nested
        } else {
            dir.to_path_buf()
        };
        let files: Vec<PathBuf> = match split {
            Split::Train => (1..=5)
                .map(|i| root.join(format!("data_batch_{i}.bin")))
                .collect(),
            Split::Test => vec![root.join("test_batch.bin")],
        };
        if let Some(absent) = files.iter().find(|f| !f.is_file()) {
            return Err(missing(absent.clone()));
        }
        let mut batch = CifarBatch::default();
        for file in &files {
            read_cifar10_batch(open_reader(file)?, file, &mut batch)?;
        }
        let class_names = read_class_names(&root.join("batches.meta.txt"))?;
        Ok(Cifar10Dataset {
            name: format!("cifar10 ({split})"),
            batch,
            class_names,
        })
    }
}

/// Class names from `batches.meta.txt` (one per line, blank lines ignored),
/// or the standard ten when the file is absent.
fn read_class_names(path: &Path) -> Result<Vec<String>, DataError> {
    if !path.exists() {
        return Ok(CIFAR10_CLASSES.iter().map(|s| s.to_string()).collect());
    }
    let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
    let names: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    if names.len() != CIFAR10_CLASSES.len() {
        return Err(DataError::invalid(
            path,
            format!(
                "lists {} class names, CIFAR-10 has {}",
                names.len(),
                CIFAR10_CLASSES.len()
            ),
        ));
    }
    Ok(names)
}

impl Dataset for Cifar10Dataset {
    fn name(&self) -> &str {
        &self.name
    }
    fn len(&self) -> usize {
        self.batch.len()
    }
    fn height(&self) -> usize {
        SIDE
    }
    fn width(&self) -> usize {
        SIDE
    }
    fn channels(&self) -> usize {
        3
    }
    fn fill_image(&self, index: usize, out: &mut [u8]) {
        out.copy_from_slice(&self.batch.images[index * IMAGE_BYTES..(index + 1) * IMAGE_BYTES]);
    }
    fn label(&self, index: usize) -> Option<u32> {
        self.batch.labels.get(index).map(|&l| u32::from(l))
    }
    fn num_classes(&self) -> Option<usize> {
        Some(CIFAR10_CLASSES.len())
    }
    fn class_names(&self) -> Option<&[String]> {
        Some(&self.class_names)
    }
}
