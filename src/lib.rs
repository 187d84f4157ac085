//! darkmatter: self-supervised vision training on hand-written WGSL compute shaders.

pub mod data;
