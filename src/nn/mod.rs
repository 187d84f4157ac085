//! Network modules: the layers an encoder is made of, the small ConvNet and
//! ResNet-18 encoders, the projector MLP, and safetensors checkpoints.
//!
//! An [`Encoder`] is a module with a spatial feature map `[N, D, h, w]`;
//! its `forward` pools that map into the `[N, D]` representation that
//! evaluation reads.
//!
//! A module owns its parameters as [`Param`]s (a [`Tensor`] plus the [`Var`]
//! it was registered as on the current step's tape) and its buffers (batch
//! norm running statistics) as plain tensors. `forward` registers every
//! parameter on the tape it is given with [`Tape::param`]; after the
//! backward, [`Module::parameters`] pairs each PyTorch-style name with its
//! tensor and var, so an optimizer can look up the gradient and update the
//! tensor's buffer in place for the next step.

mod checkpoint;
mod conv_transpose;
mod convnet;
mod decoder;
mod init;
mod layers;
mod predictor;
mod projector;
mod resnet;

use std::cell::Cell;

use serde::{Deserialize, Serialize};

pub use checkpoint::{
    PartInfo, load, load_into, load_tensors, read_metadata, read_parts, save, save_with,
};
pub use conv_transpose::{ConvTranspose2d, conv_transpose2d};
pub use convnet::{ConvNet, ConvNetWidths};
pub use decoder::Decoder;
pub use init::Init;
pub use layers::{BatchNorm, Conv2d, Linear};
pub use predictor::LatentPredictor;
pub use projector::Projector;
pub use resnet::ResNet18;

use crate::autograd::{Tape, Var};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::tensor::Tensor;

/// A trainable tensor and the var it was registered as by the last forward.
#[derive(Debug)]
pub struct Param {
    pub tensor: Tensor,
    var: Option<Var>,
}

impl Param {
    pub fn new(tensor: Tensor) -> Param {
        Param { tensor, var: None }
    }

    /// The var of the last forward's tape, if a forward has run.
    pub fn var(&self) -> Option<Var> {
        self.var
    }

    /// Registers the tensor on `tape` as a parameter for this step. A
    /// second forward on the same tape (the other view of a pair) reuses the
    /// same var, so the gradients of both forwards add up in one place.
    pub fn register(&mut self, tape: &mut Tape) -> Result<Var> {
        if let Some(v) = self.var.filter(|&v| tape.owns(v)) {
            return Ok(v);
        }
        let v = tape.param(&self.tensor)?;
        self.var = Some(v);
        Ok(v)
    }
}

/// One named piece of a module's state, as PyTorch's `state_dict` lists it.
#[derive(Debug)]
pub enum Entry<'a> {
    Param(&'a Param),
    /// A buffer such as `running_mean`: state that is not trained.
    Buffer(&'a Tensor),
    /// `num_batches_tracked` (an int64 scalar in PyTorch).
    Counter(&'a Cell<i64>),
}

/// The architecture of a top-level module: written into checkpoints so a
/// file rebuilds the module it came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Arch {
    ConvNet {
        in_channels: usize,
        /// Absent in files written before widths could change.
        #[serde(default)]
        widths: ConvNetWidths,
    },
    ResNet18 {
        in_channels: usize,
    },
    Projector {
        dims: Vec<usize>,
        /// A batch norm without affine parameters on the output (SimSiam's
        /// projector); absent in older files.
        #[serde(default)]
        output_norm: bool,
    },
    Decoder {
        in_channels: usize,
        widths: Vec<usize>,
        out_channels: usize,
        mask_token: bool,
    },
    LatentPredictor {
        channels: usize,
        hidden: usize,
    },
}

impl Arch {
    /// A fresh module of this architecture, initialised from `seed`.
    pub fn build(&self, gpu: &Gpu, seed: u64) -> Result<Box<dyn Module>> {
        match self {
            Arch::Projector { dims, output_norm } => Ok(Box::new(Projector::with_output_norm(
                gpu,
                dims,
                *output_norm,
                &mut Init::new(seed),
            )?)),
            Arch::Decoder { .. } => Ok(self.build_decoder(gpu, seed)?),
            Arch::LatentPredictor { .. } => Ok(self.build_predictor(gpu, seed)?),
            _ => Ok(self.build_encoder(gpu, seed)?),
        }
    }

    /// A fresh decoder of this architecture, initialised from `seed`; an
    /// error for an architecture that is not a decoder.
    pub fn build_decoder(&self, gpu: &Gpu, seed: u64) -> Result<Box<Decoder>> {
        match self {
            Arch::Decoder {
                in_channels,
                widths,
                out_channels,
                mask_token,
            } => Ok(Box::new(Decoder::new(
                gpu,
                *in_channels,
                widths,
                *out_channels,
                *mask_token,
                &mut Init::new(seed),
            )?)),
            _ => Err(Error::invalid(
                "Arch::build_decoder",
                format!("{self:?} is not a decoder"),
            )),
        }
    }

    /// A fresh video predictor of this architecture, initialised from
    /// `seed`; an error for another architecture.
    pub fn build_predictor(&self, gpu: &Gpu, seed: u64) -> Result<Box<LatentPredictor>> {
        match self {
            Arch::LatentPredictor { channels, hidden } => Ok(Box::new(LatentPredictor::new(
                gpu,
                *channels,
                *hidden,
                &mut Init::new(seed),
            )?)),
            _ => Err(Error::invalid(
                "Arch::build_predictor",
                format!("{self:?} is not a video predictor"),
            )),
        }
    }

    /// A fresh encoder of this architecture, initialised from `seed`; an
    /// error for an architecture that is not an encoder.
    pub fn build_encoder(&self, gpu: &Gpu, seed: u64) -> Result<Box<dyn Encoder>> {
        let mut init = Init::new(seed);
        Ok(match self {
            Arch::ConvNet {
                in_channels,
                widths,
            } => Box::new(ConvNet::with_widths(gpu, *in_channels, *widths, &mut init)?),
            Arch::ResNet18 { in_channels } => {
                Box::new(ResNet18::new(gpu, *in_channels, &mut init)?)
            }
            Arch::Projector { .. } | Arch::Decoder { .. } | Arch::LatentPredictor { .. } => {
                return Err(Error::invalid(
                    "Arch::build_encoder",
                    format!("{self:?} is not an encoder"),
                ));
            }
        })
    }

    /// The image channels an encoder takes (`None` for a projector).
    pub fn in_channels(&self) -> Option<usize> {
        match self {
            Arch::ConvNet { in_channels, .. } | Arch::ResNet18 { in_channels } => {
                Some(*in_channels)
            }
            Arch::Projector { .. } | Arch::Decoder { .. } | Arch::LatentPredictor { .. } => None,
        }
    }
}

/// A network: forward on a tape, and its state by PyTorch name.
pub trait Module {
    /// What [`Arch::build`] needs to rebuild this module.
    fn arch(&self) -> Arch;

    /// Runs the module on `x`, registering its parameters on `tape`.
    /// `train` selects batch statistics (and updates the running ones) over
    /// the running statistics in batch norms.
    fn forward(&mut self, tape: &mut Tape, x: Var, train: bool) -> Result<Var>;

    /// Appends every parameter and buffer, named `prefix` + its PyTorch name,
    /// in `state_dict` order.
    fn visit<'a>(&'a self, prefix: &str, out: &mut Vec<(String, Entry<'a>)>);

    /// The trainable parameters by name.
    fn parameters(&self) -> Vec<(String, &Param)> {
        let mut all = Vec::new();
        self.visit("", &mut all);
        all.into_iter()
            .filter_map(|(name, e)| match e {
                Entry::Param(p) => Some((name, p)),
                _ => None,
            })
            .collect()
    }
}

/// A module that turns images into a spatial feature map, whose global
/// average is the representation ([`Module::forward`] returns that pooled
/// `[N, dim]` representation).
pub trait Encoder: Module {
    /// The channels of the feature map: the width of the representation.
    fn dim(&self) -> usize;

    /// The last stage's output before pooling, `[N, dim, h, w]`.
    fn feature_map(&mut self, tape: &mut Tape, x: Var, train: bool) -> Result<Var> {
        self.feature_map_with(tape, x, train, &mut |_, v| Ok(v))
    }

    /// [`Encoder::feature_map`] with `after_stage` applied to the output
    /// of every stage (each conv-BN-ReLU of the ConvNet; the stem and each
    /// residual block of ResNet-18) before the next stage reads it: masked
    /// image modelling re-applies its mask there, so that visible
    /// positions never see masked content (SparK's emulation of sparse
    /// convolution).
    fn feature_map_with(
        &mut self,
        tape: &mut Tape,
        x: Var,
        train: bool,
        after_stage: &mut StageHook<'_>,
    ) -> Result<Var>;
}

/// What [`Encoder::feature_map_with`] calls after each stage.
pub type StageHook<'a> = dyn FnMut(&mut Tape, Var) -> Result<Var> + 'a;

/// Applies `hook` to `v` and releases `v` if the hook made a new value.
pub(crate) fn after_stage(tape: &mut Tape, v: Var, hook: &mut StageHook<'_>) -> Result<Var> {
    let out = hook(tape, v)?;
    if out != v {
        tape.release(v)?;
    }
    Ok(out)
}

/// `prefix.name`, or `name` at the top.
fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}
