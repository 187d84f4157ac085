//! IDX files: MNIST and Fashion-MNIST.
//!
//! The format (from Yann LeCun's MNIST page) is a big-endian header followed
//! by raw bytes:
//!
//! ```text
//! images (idx3-ubyte): magic 0x00000803, count, rows, cols, then count*rows*cols pixels
//! labels (idx1-ubyte): magic 0x00000801, count, then count label bytes
//! ```
//!
//! The magic number encodes the element type (0x08 = unsigned byte) and the
//! number of dimensions, so checking it also fixes the header length. Files
//! may be gzip-compressed or raw; that is decided from their content.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::stream::{Stream, open_reader};
use super::{DataError, Dataset, Split};

/// Magic number of an idx3-ubyte file (unsigned bytes, three dimensions).
pub const IDX3_UBYTE_MAGIC: u32 = 0x0000_0803;
/// Magic number of an idx1-ubyte file (unsigned bytes, one dimension).
pub const IDX1_UBYTE_MAGIC: u32 = 0x0000_0801;

/// Where `apt-get install dataset-fashion-mnist` puts the four files.
pub const FASHION_MNIST_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// Fashion-MNIST's class names, by label.
pub const FASHION_MNIST_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// Both MNIST variants have ten classes; a label byte of 10 or more means a
/// corrupt or foreign file.
const IDX_NUM_CLASSES: usize = 10;

/// The contents of an idx3-ubyte image file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxImages {
    /// Number of images.
    pub count: usize,
    /// Rows (height) of each image.
    pub rows: usize,
    /// Columns (width) of each image.
    pub cols: usize,
    /// `count * rows * cols` grey pixels, image after image, row-major.
    pub pixels: Vec<u8>,
}

/// Reads the big-endian header of an IDX file: checks the magic number,
/// then returns its `dims` dimensions. Zero dimensions are refused because
/// an empty dataset or a zero-pixel image is never what the user meant.
fn read_header<const N: usize>(s: &mut Stream, magic: u32) -> Result<[u32; N], DataError> {
    let mut word = [0u8; 4];
    s.read_exact(&mut word)?;
    let found = u32::from_be_bytes(word);
    if found != magic {
        return Err(DataError::BadMagic {
            path: s.path().to_path_buf(),
            expected: magic,
            found,
        });
    }
    let mut dims = [0u32; N];
    let mut raw = vec![0u8; 4 * N];
    s.read_exact(&mut raw)?;
    for (d, chunk) in dims.iter_mut().zip(raw.chunks_exact(4)) {
        *d = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
    }
    if let Some(pos) = dims.iter().position(|&d| d == 0) {
        return Err(DataError::invalid(
            s.path(),
            format!(
                "dimension {pos} of the header (byte offset {}) is zero",
                4 + 4 * pos
            ),
        ));
    }
    Ok(dims)
}

/// Parses an idx3-ubyte image file, gzip-compressed or raw, from `reader`.
/// `path` only names the source in error messages.
pub fn read_idx_images<R: Read>(reader: R, path: &Path) -> Result<IdxImages, DataError> {
    let mut s = Stream::new(reader, path)?;
    let [count, rows, cols] = read_header::<3>(&mut s, IDX3_UBYTE_MAGIC)?;
    // u128 holds the product of three u32 exactly, so a hostile header
    // cannot overflow the size check.
    let promised = u128::from(count) * u128::from(rows) * u128::from(cols);
    let pixels = s.read_payload(promised)?;
    Ok(IdxImages {
        count: count as usize,
        rows: rows as usize,
        cols: cols as usize,
        pixels,
    })
}

/// Parses an idx1-ubyte label file, gzip-compressed or raw, from `reader`.
/// Labels are not range-checked here; [`IdxDataset::from_files`] does that.
pub fn read_idx_labels<R: Read>(reader: R, path: &Path) -> Result<Vec<u8>, DataError> {
    let mut s = Stream::new(reader, path)?;
    let [count] = read_header::<1>(&mut s, IDX1_UBYTE_MAGIC)?;
    s.read_payload(u128::from(count))
}

/// An in-memory MNIST-style dataset: grey images with labels 0..10.
#[derive(Debug)]
pub struct IdxDataset {
    name: String,
    images: IdxImages,
    labels: Vec<u8>,
    class_names: Vec<String>,
}

impl IdxDataset {
    /// Loads a pair of IDX files. `class_names` must list the ten classes.
    pub fn from_files(
        name: &str,
        images_path: &Path,
        labels_path: &Path,
        class_names: Vec<String>,
    ) -> Result<Self, DataError> {
        let images = read_idx_images(open_reader(images_path)?, images_path)?;
        let labels = read_idx_labels(open_reader(labels_path)?, labels_path)?;
        if images.count != labels.len() {
            return Err(DataError::CountMismatch {
                images: images_path.to_path_buf(),
                image_count: images.count,
                labels: labels_path.to_path_buf(),
                label_count: labels.len(),
            });
        }
        if let Some(i) = labels
            .iter()
            .position(|&l| usize::from(l) >= IDX_NUM_CLASSES)
        {
            return Err(DataError::BadLabel {
                path: labels_path.to_path_buf(),
                offset: 8 + i as u64, // after magic and count
                label: u32::from(labels[i]),
                num_classes: IDX_NUM_CLASSES,
            });
        }
        Ok(IdxDataset {
            name: name.to_string(),
            images,
            labels,
            class_names,
        })
    }

    /// MNIST digits from `dir` (files `train-images-idx3-ubyte[.gz]` and so on).
    pub fn mnist(dir: &Path, split: Split) -> Result<Self, DataError> {
        let hint = format!(
            "download train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, \
             t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz (MNIST) into {} \
             and pass it as `mnist:DIR`",
            dir.display()
        );
        let names = (0..10).map(|d| d.to_string()).collect();
        Self::from_dir("mnist", dir, split, &hint, names)
    }

    /// Fashion-MNIST from `dir`, or from [`FASHION_MNIST_DIR`] when `None`.
    pub fn fashion_mnist(dir: Option<&Path>, split: Split) -> Result<Self, DataError> {
        let dir = dir.unwrap_or(Path::new(FASHION_MNIST_DIR));
        let hint = format!(
            "install it with `apt-get install dataset-fashion-mnist` (files go to {FASHION_MNIST_DIR}), \
             or pass a directory holding train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, \
             t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz as `fashion-mnist:DIR`"
        );
        let names = FASHION_MNIST_CLASSES
            .iter()
            .map(|s| s.to_string())
            .collect();
        Self::from_dir("fashion-mnist", dir, split, &hint, names)
    }

    fn from_dir(
        kind: &str,
        dir: &Path,
        split: Split,
        hint: &str,
        class_names: Vec<String>,
    ) -> Result<Self, DataError> {
        // The original distribution names the test split "t10k".
        let prefix = match split {
            Split::Train => "train",
            Split::Test => "t10k",
        };
        let missing = |path: PathBuf| DataError::Missing {
            path,
            hint: hint.to_string(),
        };
        if !dir.is_dir() {
            return Err(missing(dir.to_path_buf()));
        }
        let find = |stem: String| {
            let gz = dir.join(format!("{stem}.gz"));
            let raw = dir.join(&stem);
            if gz.is_file() {
                Ok(gz)
            } else if raw.is_file() {
                Ok(raw)
            } else {
                Err(missing(gz))
            }
        };
        let images = find(format!("{prefix}-images-idx3-ubyte"))?;
        let labels = find(format!("{prefix}-labels-idx1-ubyte"))?;
        let name = format!("{kind} ({split})");
        Self::from_files(&name, &images, &labels, class_names)
    }
}

impl Dataset for IdxDataset {
    fn name(&self) -> &str {
        &self.name
    }
    fn len(&self) -> usize {
        self.images.count
    }
    fn height(&self) -> usize {
        self.images.rows
    }
    fn width(&self) -> usize {
        self.images.cols
    }
    fn channels(&self) -> usize {
        1
    }
    fn fill_image(&self, index: usize, out: &mut [u8]) {
        let n = self.image_len();
        out.copy_from_slice(&self.images.pixels[index * n..(index + 1) * n]);
    }
    fn label(&self, index: usize) -> Option<u32> {
        self.labels.get(index).map(|&l| u32::from(l))
    }
    fn num_classes(&self) -> Option<usize> {
        Some(IDX_NUM_CLASSES)
    }
    fn class_names(&self) -> Option<&[String]> {
        Some(&self.class_names)
    }
}
