//! Data-parallel training over several processes, each with its own
//! device: the collective operations a step needs, behind one trait.
//!
//! The runtime is MPI (Open MPI or MPICH through the `mpi` crate, cargo
//! feature `mpi`): `mpirun -np N darkmatter train ...` starts N ranks, and
//! [`mpi::world`] hands each its [`Group`]. A group of threads in one
//! process ([`local::LocalGroup`]) implements the same trait, so the
//! arithmetic of every collective's user is tested without MPI.
//!
//! What a step communicates (see `train::step` and the tape):
//!
//! - each rank reads its shard of the global batch (the batch a one-process
//!   run would see, cut into `size` contiguous pieces) and augments it with
//!   the keyed parameters that run would draw for those images;
//! - the embeddings of the objectives whose losses need batch statistics
//!   (VICReg, SimCLR, Barlow Twins) are gathered, so every rank computes the
//!   loss of the whole global batch; its backward returns each rank the
//!   gradient of its own rows ([`crate::Tape::gather_rows`]);
//! - with synchronised batch norm, each batch-norm layer's per-channel
//!   moments in the forward and gradient sums in the backward are summed
//!   over the ranks;
//! - the gradients are averaged over the ranks before the optimiser update.
//!
//! Every rank's loss is arranged so that its gradient with respect to its
//! own images is `size` times their share of the global batch's gradient
//! (a per-sample mean over a shard does that by itself; the gather's
//! backward multiplies by `size`): the average over the ranks is then the
//! one-process gradient.

pub mod local;
#[cfg(feature = "mpi")]
pub mod mpi;

use std::sync::Arc;

use crate::error::{Error, Result};

/// The collective operations of a group of ranks. Every rank must call the
/// same operations in the same order with the same lengths.
pub trait Collective: Send + Sync {
    /// This process's rank, `0..size`.
    fn rank(&self) -> usize;
    /// Ranks in the group.
    fn size(&self) -> usize;
    /// This rank's index among the ranks on its machine (chooses its
    /// adapter).
    fn local_rank(&self) -> usize;
    /// Sums `data` element-wise over the ranks, in place; every rank gets
    /// the same result.
    fn all_reduce_sum(&self, data: &mut [f32]) -> Result<()>;
    /// As [`Collective::all_reduce_sum`] in double precision.
    fn all_reduce_sum_f64(&self, data: &mut [f64]) -> Result<()>;
    /// Every rank's `data` (the same length on every rank), in rank order.
    fn all_gather(&self, data: &[f32]) -> Result<Vec<f32>>;
    /// Every rank's `data` (the same length on every rank), in rank order.
    fn all_gather_u64(&self, data: &[u64]) -> Result<Vec<u64>>;
    /// Rank 0's `data` on every rank.
    fn broadcast(&self, data: &mut [f32]) -> Result<()>;
    /// Waits until every rank has arrived, idling rather than spinning (a
    /// waiting rank must not take a core from one still working on a CPU
    /// device).
    fn barrier(&self) -> Result<()>;
    /// Ends every rank of the job with `code`, after this rank has said why.
    fn abort(&self, code: i32) -> !;
}

/// A handle on a group of ranks.
pub type Group = Arc<dyn Collective>;

/// Whether this process was started by an MPI launcher (`mpirun`,
/// `mpiexec`, `srun`): Open MPI, MPICH's Hydra and PMIx set these.
pub fn launched_by_mpi() -> bool {
    ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"]
        .iter()
        .any(|v| std::env::var_os(v).is_some())
}

/// This process's MPI group, when it was started by an MPI launcher:
/// `Ok(None)` otherwise. Without the `mpi` feature a launched process is
/// an error (each rank would train alone and write the same files).
pub fn world() -> Result<Option<Group>> {
    if !launched_by_mpi() {
        return Ok(None);
    }
    #[cfg(feature = "mpi")]
    {
        mpi::world()
            .map(Some)
            .ok_or_else(|| Error::invalid("dist", "MPI could not be initialised"))
    }
    #[cfg(not(feature = "mpi"))]
    {
        Err(Error::invalid(
            "dist",
            "this darkmatter was built without MPI: build it with `cargo build --release --features mpi` to run under mpirun",
        ))
    }
}

/// Ends MPI in this process, if [`world`] started it (before exiting:
/// `mpirun` treats a rank that exits without it as failed).
pub fn finalize() {
    #[cfg(feature = "mpi")]
    mpi::finalize();
}

/// How a training step is spread over a group.
#[derive(Clone)]
pub struct Dist {
    pub group: Group,
    /// Batch-norm statistics over the global batch (the references'
    /// `SyncBatchNorm`) instead of each rank's shard.
    pub sync_bn: bool,
}

impl std::fmt::Debug for Dist {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dist")
            .field("rank", &self.group.rank())
            .field("size", &self.group.size())
            .field("sync_bn", &self.sync_bn)
            .finish()
    }
}

impl Dist {
    pub fn rank(&self) -> usize {
        self.group.rank()
    }

    pub fn size(&self) -> usize {
        self.group.size()
    }

    /// Rank 0, the one that prints, evaluates and writes files.
    pub fn is_leader(&self) -> bool {
        self.group.rank() == 0
    }
}

/// Whether `dist` leads (no group: a single process always does).
pub fn leads(dist: Option<&Dist>) -> bool {
    dist.is_none_or(Dist::is_leader)
}

/// Agrees on the outcome of a step every rank took on its own (opening its
/// device, checking its inputs): all ranks get `Ok` only if every rank's
/// `local` was `Ok`; otherwise every rank gets the error of the first rank
/// that failed, its message naming that rank.
pub fn agree<T>(group: &dyn Collective, local: Result<T>) -> Result<T> {
    let message = match &local {
        Ok(_) => Vec::new(),
        Err(e) => e.to_string().into_bytes(),
    };
    let lengths = group.all_gather_u64(&[message.len() as u64])?;
    let Some(first) = lengths.iter().position(|&l| l > 0) else {
        return local;
    };
    // Every rank's message, padded to the longest, eight bytes per word.
    let words = (*lengths.iter().max().unwrap_or(&0) as usize).div_ceil(8);
    let mut mine = vec![0u64; words];
    for (i, b) in message.iter().enumerate() {
        mine[i / 8] |= (*b as u64) << (8 * (i % 8));
    }
    let all = group.all_gather_u64(&mine)?;
    let bytes: Vec<u8> = all[first * words..(first + 1) * words]
        .iter()
        .flat_map(|w| w.to_le_bytes())
        .take(lengths[first] as usize)
        .collect();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    match local {
        Err(e) if first == group.rank() => Err(e),
        _ => Err(Error::Rank {
            rank: first,
            size: group.size(),
            message: text,
        }),
    }
}

/// A 64-bit FNV-1a hash of `values`' bits, to compare replicas cheaply.
pub fn fingerprint(values: &[f32], mut h: u64) -> u64 {
    for v in values {
        for b in v.to_bits().to_le_bytes() {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// The FNV-1a offset basis, [`fingerprint`]'s starting value.
pub const FINGERPRINT_START: u64 = 0xcbf2_9ce4_8422_2325;
