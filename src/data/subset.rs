//! A subset of another dataset, by index: the labelled fraction a
//! fine-tuning run learns from.

use std::sync::Arc;

use super::{Attributes, Dataset};

/// The images `indices` of `inner`, in that order.
pub struct Subset {
    inner: Arc<dyn Dataset>,
    indices: Vec<usize>,
    name: String,
}

impl Subset {
    /// Every index must be below `inner.len()` (checked here).
    pub fn new(inner: Arc<dyn Dataset>, indices: Vec<usize>) -> Option<Subset> {
        if indices.iter().any(|&i| i >= inner.len()) {
            return None;
        }
        let name = format!("{} ({} images)", inner.name(), indices.len());
        Some(Subset {
            inner,
            indices,
            name,
        })
    }
}

impl Dataset for Subset {
    fn name(&self) -> &str {
        &self.name
    }

    fn len(&self) -> usize {
        self.indices.len()
    }

    fn height(&self) -> usize {
        self.inner.height()
    }

    fn width(&self) -> usize {
        self.inner.width()
    }

    fn channels(&self) -> usize {
        self.inner.channels()
    }

    fn fill_image(&self, index: usize, out: &mut [u8]) {
        self.inner.fill_image(self.indices[index], out)
    }

    fn label(&self, index: usize) -> Option<u32> {
        self.indices.get(index).and_then(|&i| self.inner.label(i))
    }

    fn num_classes(&self) -> Option<usize> {
        self.inner.num_classes()
    }

    fn class_names(&self) -> Option<&[String]> {
        self.inner.class_names()
    }

    fn attributes(&self, index: usize) -> Option<Attributes> {
        self.indices
            .get(index)
            .and_then(|&i| self.inner.attributes(i))
    }
}
