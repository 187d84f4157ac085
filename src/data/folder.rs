//! A folder of PNG / JPEG images, optionally one sub-folder per class.
//!
//! Layouts:
//!
//! ```text
//! DIR/cat/001.png DIR/dog/002.jpg ...   labelled: class ids follow sorted folder names
//! DIR/001.png DIR/002.jpg ...           unlabelled
//! DIR/train/... and DIR/test/...        both present: the split picks one of them
//! ```
//!
//! Files are found by extension (`png`, `jpg`, `jpeg`, any case) but decoded
//! by content, so a mislabelled JPEG still loads. Entries starting with `.`
//! are skipped (editor and notebook droppings). Every image is decoded,
//! converted and resized once, at open time, so a bad file is reported
//! before training starts rather than in the middle of an epoch.

use std::fs;
use std::path::{Path, PathBuf};

use image::imageops::{self, FilterType};

use super::{DataError, Dataset, Split};

/// The largest side [`FolderOptions`] accepts: far above any training
/// resolution, and low enough that `height * width * 3` cannot overflow.
const MAX_SIDE: usize = 8192;

/// Channel layout of the decoded images.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColorMode {
    /// One luminance channel.
    Grey,
    /// Three interleaved channels, R, G, B. Alpha is dropped, not composited.
    Rgb,
}

impl ColorMode {
    /// Number of channels per pixel.
    pub fn channels(self) -> usize {
        match self {
            ColorMode::Grey => 1,
            ColorMode::Rgb => 3,
        }
    }
}

/// How images are brought to one size and layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FolderOptions {
    /// Output height in pixels.
    pub height: usize,
    /// Output width in pixels.
    pub width: usize,
    /// Grey or RGB output.
    pub color: ColorMode,
}

impl Default for FolderOptions {
    /// 32x32 RGB, the size the CIFAR-style encoders expect.
    fn default() -> Self {
        FolderOptions {
            height: 32,
            width: 32,
            color: ColorMode::Rgb,
        }
    }
}

/// Images decoded from a folder, resized and held in memory.
#[derive(Debug)]
pub struct FolderDataset {
    name: String,
    options: FolderOptions,
    pixels: Vec<u8>,
    paths: Vec<PathBuf>,
    labels: Option<Vec<u32>>,
    class_names: Option<Vec<String>>,
}

impl FolderDataset {
    /// Loads every image under `dir` (see the module docs for layouts).
    pub fn open(dir: &Path, options: FolderOptions) -> Result<Self, DataError> {
        if options.height == 0 || options.width == 0 {
            return Err(DataError::Config(format!(
                "image size {}x{} has a zero side",
                options.height, options.width
            )));
        }
        if options.height > MAX_SIDE || options.width > MAX_SIDE {
            return Err(DataError::Config(format!(
                "image size {}x{} exceeds the {MAX_SIDE}-pixel limit per side",
                options.height, options.width
            )));
        }
        if !dir.is_dir() {
            return Err(DataError::Missing {
                path: dir.to_path_buf(),
                hint: "create it and put PNG or JPEG images in it, either directly or in \
                       one sub-folder per class, then pass it as `folder:DIR`"
                    .to_string(),
            });
        }
        let listing = list(dir)?;
        let (paths, labels, class_names) = if listing.dirs.is_empty() {
            if listing.images.is_empty() {
                return Err(DataError::EmptyFolder {
                    path: dir.to_path_buf(),
                });
            }
            (listing.images, None, None)
        } else {
            if let Some(stray) = listing.images.first() {
                return Err(DataError::invalid(
                    dir,
                    format!(
                        "mixes class sub-folders with loose images such as {}; \
                         move the loose images into a class folder",
                        stray.display()
                    ),
                ));
            }
            let mut paths = Vec::new();
            let mut labels = Vec::new();
            let mut names = Vec::new();
            for (class, class_dir) in listing.dirs.iter().enumerate() {
                let images = list(class_dir)?.images;
                if images.is_empty() {
                    return Err(DataError::EmptyFolder {
                        path: class_dir.clone(),
                    });
                }
                labels.extend(std::iter::repeat_n(class as u32, images.len()));
                paths.extend(images);
                names.push(file_name(class_dir));
            }
            (paths, Some(labels), Some(names))
        };

        let per_image = options.height * options.width * options.color.channels();
        let mut pixels = Vec::with_capacity(paths.len().saturating_mul(per_image));
        for path in &paths {
            pixels.extend(decode(path, options)?);
        }
        Ok(FolderDataset {
            name: format!("folder ({})", dir.display()),
            options,
            pixels,
            paths,
            labels,
            class_names,
        })
    }

    /// Like [`FolderDataset::open`], but when `dir` holds both `train/` and
    /// `test/`, loads the one `split` names. Otherwise both splits are the
    /// whole folder.
    pub fn open_split(dir: &Path, split: Split, options: FolderOptions) -> Result<Self, DataError> {
        let (train, test) = (dir.join("train"), dir.join("test"));
        if train.is_dir() && test.is_dir() {
            let chosen = match split {
                Split::Train => train,
                Split::Test => test,
            };
            Self::open(&chosen, options)
        } else {
            Self::open(dir, options)
        }
    }

    /// The file image `index` was read from.
    pub fn path(&self, index: usize) -> Option<&Path> {
        self.paths.get(index).map(PathBuf::as_path)
    }
}

/// The sorted sub-folders and image files directly inside a folder.
struct Listing {
    dirs: Vec<PathBuf>,
    images: Vec<PathBuf>,
}

fn list(dir: &Path) -> Result<Listing, DataError> {
    let mut listing = Listing {
        dirs: Vec::new(),
        images: Vec::new(),
    };
    let entries = fs::read_dir(dir).map_err(|e| DataError::io(dir, e))?;
    for entry in entries {
        let path = entry.map_err(|e| DataError::io(dir, e))?.path();
        if file_name(&path).starts_with('.') {
            continue;
        }
        // `is_dir` follows symlinks, so a linked class folder counts.
        if path.is_dir() {
            listing.dirs.push(path);
        } else if has_image_extension(&path) {
            listing.images.push(path);
        }
    }
    // read_dir order is whatever the file system returns; sorting makes
    // labels and indices the same on every machine.
    listing.dirs.sort();
    listing.images.sort();
    Ok(listing)
}

fn has_image_extension(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| {
        ["png", "jpg", "jpeg"]
            .iter()
            .any(|x| e.eq_ignore_ascii_case(x))
    })
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Decodes one image and brings it to the requested size and layout.
fn decode(path: &Path, options: FolderOptions) -> Result<Vec<u8>, DataError> {
    let bytes = fs::read(path).map_err(|e| DataError::io(path, e))?;
    // `load_from_memory` applies the image crate's default allocation limit
    // (512 MiB), so a hostile header cannot make it allocate without bound.
    let img = image::load_from_memory(&bytes).map_err(|e| DataError::Decode {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let (w, h) = (options.width as u32, options.height as u32);
    // Triangle is bilinear filtering whose support widens with the
    // downscale factor, so large photos are averaged rather than aliased.
    let raw = match options.color {
        ColorMode::Grey => {
            let grey = img.to_luma8();
            if grey.dimensions() == (w, h) {
                grey.into_raw()
            } else {
                imageops::resize(&grey, w, h, FilterType::Triangle).into_raw()
            }
        }
        ColorMode::Rgb => {
            let rgb = img.to_rgb8();
            if rgb.dimensions() == (w, h) {
                rgb.into_raw()
            } else {
                imageops::resize(&rgb, w, h, FilterType::Triangle).into_raw()
            }
        }
    };
    Ok(raw)
}

impl Dataset for FolderDataset {
    fn name(&self) -> &str {
        &self.name
    }
    fn len(&self) -> usize {
        self.paths.len()
    }
    fn height(&self) -> usize {
        self.options.height
    }
    fn width(&self) -> usize {
        self.options.width
    }
    fn channels(&self) -> usize {
        self.options.color.channels()
    }
    fn fill_image(&self, index: usize, out: &mut [u8]) {
        let n = self.image_len();
        out.copy_from_slice(&self.pixels[index * n..(index + 1) * n]);
    }
    fn label(&self, index: usize) -> Option<u32> {
        self.labels.as_ref()?.get(index).copied()
    }
    fn num_classes(&self) -> Option<usize> {
        self.class_names.as_ref().map(Vec::len)
    }
    fn class_names(&self) -> Option<&[String]> {
        self.class_names.as_deref()
    }
}
