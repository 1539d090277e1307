//! Barrier alignment: a stage with several inputs takes its part of checkpoint `id` once that checkpoint's
//! barrier has come through every input that has not ended, reading nothing more from an input whose
//! barrier is in until then (its later messages belong after the checkpoint).
//!
//! Only one checkpoint is aligned at a time. A newer barrier on any input means the coordinator gave the
//! older checkpoint up: its alignment is dropped and the newer one's starts; an older barrier arriving late
//! is ignored.

/// Which inputs have delivered the barrier of the checkpoint being aligned.
#[derive(Debug)]
pub struct Alignment {
    id: Option<u64>,
    arrived: Vec<bool>,
    /// The last checkpoint completed here: barriers up to it are stale.
    done: u64,
}

impl Alignment {
    pub fn new(inputs: usize) -> Self {
        Self { id: None, arrived: vec![false; inputs], done: 0 }
    }

    /// Checkpoint `id`'s barrier came through input `i`.
    pub fn arrive(&mut self, i: usize, id: u64) {
        if id <= self.done {
            return;
        }
        match self.id {
            Some(cur) if id < cur => return,
            Some(cur) if id > cur => self.arrived.iter_mut().for_each(|a| *a = false),
            _ => {}
        }
        self.id = Some(id);
        self.arrived[i] = true;
    }

    /// Input `i` is held back until the checkpoint being aligned is taken.
    #[inline]
    pub fn blocked(&self, i: usize) -> bool {
        self.arrived[i]
    }

    /// The checkpoint whose barrier has come through every input not `ended`, if any.
    pub fn complete(&self, ended: &[bool]) -> Option<u64> {
        let id = self.id?;
        self.arrived.iter().zip(ended).all(|(&a, &e)| a || e).then_some(id)
    }

    /// The checkpoint being aligned, if any barrier of it is in.
    pub fn pending(&self) -> Option<u64> {
        self.id
    }

    /// The checkpoint is taken: every input flows again.
    pub fn release(&mut self) {
        if let Some(id) = self.id.take() {
            self.done = id;
        }
        self.arrived.iter_mut().for_each(|a| *a = false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completes_when_every_live_input_has_its_barrier() {
        let mut a = Alignment::new(3);
        assert_eq!(a.complete(&[false; 3]), None);
        a.arrive(0, 1);
        assert!(a.blocked(0) && !a.blocked(1));
        a.arrive(2, 1);
        assert_eq!(a.complete(&[false; 3]), None);
        assert_eq!(a.complete(&[false, true, false]), Some(1), "an ended input does not hold it back");
        a.arrive(1, 1);
        assert_eq!(a.complete(&[false; 3]), Some(1));
        a.release();
        assert!(!a.blocked(0));
        a.arrive(0, 1);
        assert_eq!(a.pending(), None, "a barrier of a completed checkpoint is stale");
    }

    #[test]
    fn a_newer_barrier_gives_the_older_checkpoint_up() {
        let mut a = Alignment::new(2);
        a.arrive(0, 4);
        a.arrive(1, 5);
        assert!(!a.blocked(0) && a.blocked(1));
        assert_eq!(a.pending(), Some(5));
        a.arrive(0, 4); // late, of the abandoned one
        assert!(!a.blocked(0));
        a.arrive(0, 5);
        assert_eq!(a.complete(&[false; 2]), Some(5));
    }
}
