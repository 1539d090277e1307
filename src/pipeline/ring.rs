//! SPSC rings between pipeline threads: backpressure that blocks and counts instead of dropping, and the
//! wait strategies a consumer uses when its rings are empty.
//!
//! The rings are `rtrb` (each side caches the other's index and touches the shared atomic only when its
//! cached view says full or empty). On top of them:
//! * [`Sender::send`] never drops: on a full ring it backs off (spin, then yield) until there is room, and
//!   counts how often and for how long it waited.
//! * [`Idler`] is the consumer side's wait: busy-spin (lowest latency, needs a core per consumer),
//!   spin-then-yield (gives the core away when others need it), or park (sleeps until a producer rings its
//!   [`Doorbell`]; cheapest when idle, costs a futex wake when a producer finds it asleep). With more
//!   threads than cores, use spin-then-yield or park: a spinning consumer would hold the core its producer
//!   needs.

use crate::metrics::Backpressure;
use crossbeam_utils::Backoff;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::Thread;
use std::time::Duration;

/// How a consumer waits for its rings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Wait {
    /// Busy-spin with the CPU's pause hint.
    Spin,
    /// Spin briefly with exponential backoff, then `sched_yield` between checks.
    #[default]
    SpinThenYield,
    /// Spin briefly, then park until a producer wakes the thread (or 1 ms passes).
    Park,
}

/// How long a parked consumer sleeps at most, in case a wake-up raced with going to sleep.
const PARK_TIMEOUT: Duration = Duration::from_millis(1);

/// Lets producers wake a parked consumer thread.
#[derive(Debug, Default)]
pub struct Doorbell {
    sleeping: AtomicBool,
    thread: OnceLock<Thread>,
}

impl Doorbell {
    pub fn new() -> Arc<Doorbell> {
        Arc::new(Doorbell::default())
    }

    /// Called by the consumer thread once, before it first parks.
    pub fn register_current(&self) {
        let _ = self.thread.set(std::thread::current());
    }

    #[inline]
    fn ring(&self) {
        // Pairs with the consumer's SeqCst store of `sleeping` before it re-checks its rings: either the
        // consumer sees our push, or we see it asleep.
        fence(Ordering::SeqCst);
        if self.sleeping.load(Ordering::Relaxed) {
            self.sleeping.store(false, Ordering::Relaxed);
            if let Some(t) = self.thread.get() {
                t.unpark();
            }
        }
    }
}

/// The consumer side disappeared (its thread ended, most likely with an error).
#[derive(Debug, thiserror::Error)]
#[error("the next stage has stopped")]
pub struct Disconnected;

/// A producer end with blocking backpressure.
pub struct Sender<T> {
    prod: rtrb::Producer<T>,
    bell: Option<Arc<Doorbell>>,
    pub full_waits: u64,
    pub blocked_ns: u64,
}

impl<T> Sender<T> {
    /// Wraps a producer; `bell` is the consumer's doorbell when it parks.
    pub fn new(prod: rtrb::Producer<T>, bell: Option<Arc<Doorbell>>) -> Self {
        Self { prod, bell, full_waits: 0, blocked_ns: 0 }
    }

    /// Pushes `v`, waiting for room if the ring is full.
    #[inline]
    pub fn send(&mut self, v: T) -> Result<(), Disconnected> {
        match self.prod.push(v) {
            Ok(()) => {
                if let Some(b) = &self.bell {
                    b.ring();
                }
                Ok(())
            }
            Err(rtrb::PushError::Full(v)) => self.send_blocking(v),
        }
    }

    #[cold]
    #[inline(never)]
    fn send_blocking(&mut self, mut v: T) -> Result<(), Disconnected> {
        let t0 = crate::time::mono_now();
        self.full_waits += 1;
        if let Some(b) = &self.bell {
            b.ring();
        }
        let backoff = Backoff::new();
        loop {
            if self.prod.is_abandoned() {
                return Err(Disconnected);
            }
            match self.prod.push(v) {
                Ok(()) => break,
                Err(rtrb::PushError::Full(back)) => v = back,
            }
            if backoff.is_completed() {
                std::thread::yield_now();
            } else {
                backoff.snooze();
            }
        }
        if let Some(b) = &self.bell {
            b.ring();
        }
        self.blocked_ns += crate::time::mono_now().saturating_sub(t0);
        Ok(())
    }

    /// Publishes the backpressure counters.
    pub fn publish(&self, to: &Backpressure) {
        to.full_waits.store(self.full_waits, Ordering::Relaxed);
        to.blocked_ns.store(self.blocked_ns, Ordering::Relaxed);
    }
}

/// A consumer's wait when all its rings are empty.
pub struct Idler {
    wait: Wait,
    bell: Option<Arc<Doorbell>>,
    backoff: Backoff,
}

impl Idler {
    /// `bell` must be the doorbell the producers of this thread's rings ring (for [`Wait::Park`]).
    pub fn new(wait: Wait, bell: Option<Arc<Doorbell>>) -> Self {
        if let Some(b) = &bell {
            b.register_current();
        }
        Self { wait, bell, backoff: Backoff::new() }
    }

    /// Something was found: the next wait starts from spinning again.
    #[inline]
    pub fn reset(&mut self) {
        self.backoff.reset();
    }

    /// Waits a little. `still_empty` re-checks the rings after announcing sleep, so a push that raced with
    /// parking is not missed.
    #[inline]
    pub fn idle(&mut self, still_empty: impl FnOnce() -> bool) {
        match self.wait {
            Wait::Spin => std::hint::spin_loop(),
            Wait::SpinThenYield => {
                if self.backoff.is_completed() {
                    std::thread::yield_now();
                } else {
                    self.backoff.snooze();
                }
            }
            Wait::Park => {
                if !self.backoff.is_completed() {
                    self.backoff.snooze();
                    return;
                }
                match &self.bell {
                    Some(b) => {
                        b.sleeping.store(true, Ordering::SeqCst);
                        if still_empty() {
                            std::thread::park_timeout(PARK_TIMEOUT);
                        }
                        b.sleeping.store(false, Ordering::Relaxed);
                    }
                    None => std::thread::sleep(Duration::from_micros(50)),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transfer(wait: Wait, n: u64, cap: usize) {
        let bell = (wait == Wait::Park).then(Doorbell::new);
        let (p, mut c) = rtrb::RingBuffer::new(cap);
        let mut tx = Sender::new(p, bell.clone());
        let consumer = std::thread::spawn(move || {
            let mut idle = Idler::new(wait, bell);
            let mut next = 0u64;
            while next < n {
                match c.pop() {
                    Ok(v) => {
                        assert_eq!(v, next, "in order, nothing lost");
                        next += 1;
                        idle.reset();
                    }
                    Err(_) => idle.idle(|| c.is_empty()),
                }
            }
        });
        for i in 0..n {
            tx.send(i).unwrap();
        }
        consumer.join().unwrap();
        assert!(tx.full_waits > 0 || cap as u64 >= n);
    }

    #[test]
    fn every_strategy_delivers_everything_in_order_through_a_tiny_ring() {
        for w in [Wait::Spin, Wait::SpinThenYield, Wait::Park] {
            transfer(w, 200_000, 4);
        }
    }

    #[test]
    fn send_to_a_dead_consumer_errors_instead_of_hanging() {
        let (p, c) = rtrb::RingBuffer::new(1);
        let mut tx = Sender::new(p, None);
        tx.send(1u8).unwrap();
        drop(c);
        assert!(tx.send(2).is_err());
    }
}
