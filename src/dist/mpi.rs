//! The MPI group: `mpirun -np N darkmatter ...` (Open MPI or MPICH).
//!
//! MPI is initialised once per process at the "funneled" threading level:
//! only the thread that initialised it makes MPI calls, which every method
//! here checks (the data loader's worker thread never communicates).

use std::sync::{Arc, Mutex, OnceLock};
use std::thread::ThreadId;
use std::time::Duration;

use mpi::collective::SystemOperation;
use mpi::environment::Universe;
use mpi::topology::{Communicator, SimpleCommunicator};
use mpi::traits::*;

use super::{Collective, Group};
use crate::error::{Error, Result};

/// The world communicator of this process's job.
pub struct MpiGroup {
    world: SimpleCommunicator,
    rank: usize,
    size: usize,
    local_rank: usize,
    owner: ThreadId,
}

// SAFETY: the communicator is a handle into the MPI library; every method
// that uses it first checks it runs on the thread that initialised MPI
// (`MPI_THREAD_FUNNELED`), so no two threads ever call MPI through it.
unsafe impl Send for MpiGroup {}
unsafe impl Sync for MpiGroup {}

/// MPI's handle, dropped (finalising MPI) by [`finalize`].
struct Universal {
    _universe: Universe,
}

// SAFETY: as for `MpiGroup`: only the initialising thread finalises.
unsafe impl Send for Universal {}

static UNIVERSE: Mutex<Option<Universal>> = Mutex::new(None);
static WORLD: OnceLock<Option<Group>> = OnceLock::new();

/// This process's group: initialises MPI on the first call. `None` if MPI
/// could not be initialised.
pub fn world() -> Option<Group> {
    WORLD
        .get_or_init(|| {
            let (universe, _) = mpi::initialize_with_threading(mpi::Threading::Funneled)?;
            let world = universe.world();
            let node = world.split_shared(world.rank());
            let group = MpiGroup {
                rank: world.rank() as usize,
                size: world.size() as usize,
                local_rank: node.rank() as usize,
                world,
                owner: std::thread::current().id(),
            };
            *UNIVERSE.lock().unwrap_or_else(|p| p.into_inner()) = Some(Universal {
                _universe: universe,
            });
            Some(Arc::new(group) as Group)
        })
        .clone()
}

/// Finalises MPI if [`world`] initialised it.
pub fn finalize() {
    let taken = UNIVERSE.lock().unwrap_or_else(|p| p.into_inner()).take();
    drop(taken);
}

impl MpiGroup {
    fn check_thread(&self) -> Result<()> {
        if std::thread::current().id() != self.owner {
            return Err(Error::invalid(
                "dist",
                "MPI is called from a thread other than the one that initialised it",
            ));
        }
        Ok(())
    }
}

impl Collective for MpiGroup {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.size
    }

    fn local_rank(&self) -> usize {
        self.local_rank
    }

    fn all_reduce_sum(&self, data: &mut [f32]) -> Result<()> {
        self.check_thread()?;
        let send = data.to_vec();
        self.world
            .all_reduce_into(&send[..], data, SystemOperation::sum());
        Ok(())
    }

    fn all_reduce_sum_f64(&self, data: &mut [f64]) -> Result<()> {
        self.check_thread()?;
        let send = data.to_vec();
        self.world
            .all_reduce_into(&send[..], data, SystemOperation::sum());
        Ok(())
    }

    fn all_gather(&self, data: &[f32]) -> Result<Vec<f32>> {
        self.check_thread()?;
        let mut out = vec![0f32; data.len() * self.size];
        self.world.all_gather_into(data, &mut out[..]);
        Ok(out)
    }

    fn all_gather_u64(&self, data: &[u64]) -> Result<Vec<u64>> {
        self.check_thread()?;
        let mut out = vec![0u64; data.len() * self.size];
        self.world.all_gather_into(data, &mut out[..]);
        Ok(out)
    }

    fn broadcast(&self, data: &mut [f32]) -> Result<()> {
        self.check_thread()?;
        self.world.process_at_rank(0).broadcast_into(data);
        Ok(())
    }

    fn barrier(&self) -> Result<()> {
        self.check_thread()?;
        // A non-blocking barrier polled with sleeps: MPI's blocking
        // collectives spin, and a spinning rank takes a core from one
        // still evaluating on a CPU device.
        let mut request = self.world.immediate_barrier();
        let mut pause = Duration::from_micros(50);
        loop {
            match request.test() {
                Ok(_) => return Ok(()),
                Err(r) => request = r,
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }

    fn abort(&self, code: i32) -> ! {
        self.world.abort(code)
    }
}
