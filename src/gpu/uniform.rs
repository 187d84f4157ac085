//! Uniform parameter structs and their layout.
//!
//! Every kernel reads its parameters from a WGSL `struct Params` bound as a
//! uniform; the host writes the bytes of a `#[repr(C)]` Rust twin. Nothing
//! at run time checks that the two agree: a reordered or missing field
//! silently reads another field's bytes, or zeros. So each twin is declared
//! with [`uniform!`](crate::gpu::uniform), which records the name, offset
//! and size of every field, and `tests/abi.rs` compares them with what naga
//! computes for the WGSL struct, member by member. [`dispatch`] only takes
//! parameters declared this way.
//!
//! [`dispatch`]: crate::gpu::dispatch

/// One field of a uniform struct: its name, byte offset and byte size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    pub name: &'static str,
    pub offset: usize,
    pub size: usize,
}

/// A `#[repr(C)]` struct of kernel parameters with a known layout.
pub trait Uniform: bytemuck::Pod {
    /// The fields in declaration order.
    const FIELDS: &'static [Field];
}

/// Declares a uniform parameter struct: `#[repr(C)]`, `Pod`, and its
/// [`Uniform::FIELDS`].
///
/// ```ignore
/// uniform! {
///     /// What the kernel reads.
///     pub(crate) struct Params { n: u32, lr: f32 }
/// }
/// ```
macro_rules! uniform {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $( $(#[$fmeta:meta])* $fvis:vis $field:ident : $ty:ty ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
        $vis struct $name {
            $( $(#[$fmeta])* $fvis $field: $ty, )*
        }

        impl $crate::gpu::Uniform for $name {
            const FIELDS: &'static [$crate::gpu::Field] = &[
                $( $crate::gpu::Field {
                    name: stringify!($field),
                    offset: std::mem::offset_of!($name, $field),
                    size: std::mem::size_of::<$ty>(),
                }, )*
            ];
        }
    };
}

pub(crate) use uniform;
