//! A group of ranks that are threads of one process, exchanging through
//! shared memory: the collectives' users (the gathered losses, synchronised
//! batch norm, the gradient average, the sharded loader) run under it in
//! the ordinary test suite, with no MPI installed. Training across
//! processes and machines uses MPI ([`super::mpi`]); this is not a runtime
//! of its own.

use std::sync::{Arc, Condvar, Mutex};

use super::Collective;
use crate::error::{Error, Result};

/// The state every member shares: one exchange at a time, in rounds.
struct Shared {
    size: usize,
    state: Mutex<Round>,
    turn: Condvar,
}

#[derive(Default)]
struct Round {
    /// Increments each time a round completes.
    generation: u64,
    /// Each rank's contribution to the round in progress.
    slots: Vec<Option<Vec<u64>>>,
    /// The completed round's contributions, kept until every rank has
    /// read them.
    done: Vec<Vec<u64>>,
    readers: usize,
    /// A member hung up or failed: every exchange fails from now on.
    broken: bool,
}

/// One member of an in-process group.
pub struct LocalGroup {
    rank: usize,
    shared: Arc<Shared>,
}

impl LocalGroup {
    /// `size` members, one per thread that will use it.
    pub fn new(size: usize) -> Vec<LocalGroup> {
        let shared = Arc::new(Shared {
            size,
            state: Mutex::new(Round {
                slots: vec![None; size],
                ..Round::default()
            }),
            turn: Condvar::new(),
        });
        (0..size)
            .map(|rank| LocalGroup {
                rank,
                shared: shared.clone(),
            })
            .collect()
    }

    /// Contributes `mine` to a round and returns every rank's
    /// contribution, in rank order, once all have arrived.
    fn exchange(&self, mine: Vec<u64>) -> Result<Vec<Vec<u64>>> {
        let broken = || Error::invalid("dist", "a rank of the local group failed");
        let s = &self.shared;
        let mut st = s.state.lock().map_err(|_| broken())?;
        // Wait for the previous round to be read by everyone.
        while st.readers > 0 && !st.broken {
            st = s.turn.wait(st).map_err(|_| broken())?;
        }
        if st.broken {
            return Err(broken());
        }
        st.slots[self.rank] = Some(mine);
        let generation = st.generation;
        if st.slots.iter().all(Option::is_some) {
            st.done = st
                .slots
                .iter_mut()
                .map(|v| v.take().unwrap_or_default())
                .collect();
            st.readers = s.size;
            st.generation += 1;
            s.turn.notify_all();
        } else {
            // A round that completed counts even if a member has left since.
            while st.generation == generation {
                if st.broken {
                    return Err(broken());
                }
                st = s.turn.wait(st).map_err(|_| broken())?;
            }
        }
        let out = st.done.clone();
        st.readers -= 1;
        if st.readers == 0 {
            s.turn.notify_all();
        }
        Ok(out)
    }
}

impl Drop for LocalGroup {
    /// A member that goes away (its thread failed or ended) releases the
    /// others from any round they wait in.
    fn drop(&mut self) {
        if let Ok(mut st) = self.shared.state.lock() {
            st.broken = true;
            self.shared.turn.notify_all();
        }
    }
}

fn to_words(v: &[f32]) -> Vec<u64> {
    v.iter().map(|x| x.to_bits() as u64).collect()
}

impl Collective for LocalGroup {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.shared.size
    }

    fn local_rank(&self) -> usize {
        self.rank
    }

    fn all_reduce_sum(&self, data: &mut [f32]) -> Result<()> {
        let all = self.exchange(to_words(data))?;
        for (i, d) in data.iter_mut().enumerate() {
            // In rank order on every rank: the same sum everywhere.
            *d = all.iter().map(|r| f32::from_bits(r[i] as u32)).sum();
        }
        Ok(())
    }

    fn all_reduce_sum_f64(&self, data: &mut [f64]) -> Result<()> {
        let all = self.exchange(data.iter().map(|x| x.to_bits()).collect())?;
        for (i, d) in data.iter_mut().enumerate() {
            *d = all.iter().map(|r| f64::from_bits(r[i])).sum();
        }
        Ok(())
    }

    fn all_gather(&self, data: &[f32]) -> Result<Vec<f32>> {
        let all = self.exchange(to_words(data))?;
        Ok(all
            .iter()
            .flatten()
            .map(|&w| f32::from_bits(w as u32))
            .collect())
    }

    fn all_gather_u64(&self, data: &[u64]) -> Result<Vec<u64>> {
        Ok(self.exchange(data.to_vec())?.concat())
    }

    fn broadcast(&self, data: &mut [f32]) -> Result<()> {
        let all = self.exchange(to_words(data))?;
        for (d, &w) in data.iter_mut().zip(&all[0]) {
            *d = f32::from_bits(w as u32);
        }
        Ok(())
    }

    fn barrier(&self) -> Result<()> {
        self.exchange(Vec::new()).map(|_| ())
    }

    fn abort(&self, code: i32) -> ! {
        std::process::exit(code)
    }
}
