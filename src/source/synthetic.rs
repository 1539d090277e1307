//! The in-process synthetic trade feed: no file, no broker. Unpaced it runs as fast as the pipeline takes
//! events; paced (`rate` events/s) it is an open-loop load generator: event i is due at `start + i / rate`,
//! its event time is that instant on the wall clock, and its latency is measured from when it was due —
//! so a stalled pipeline shows up in the histograms instead of slowing the generator down.

use super::{Poll, Source, SourceError, SourceOut};
use crate::config::SynthPlan;
use crate::event::{Event, KeyId, Nanos, Trade};
use crate::gen::{GenParams, TradeGen};
use crate::symbols::Interner;
use crate::time::{mono_now, mono_to_wall_offset, TimeUnit};

const BATCH: u64 = 1024;

pub struct SyntheticSource {
    plan: SynthPlan,
    gen: TradeGen,
    ids: Vec<KeyId>,
    i: u64,
    /// Paced: (monotonic start, wall-clock offset).
    paced: Option<(u64, Nanos)>,
}

impl SyntheticSource {
    pub fn new(name: &str, plan: &SynthPlan, unit: TimeUnit, interner: &mut Interner) -> Result<Self, SourceError> {
        let gen = TradeGen::new(GenParams {
            instruments: plan.instruments,
            disorder: plan.disorder,
            disorder_fraction: plan.disorder_fraction,
            late_fraction: plan.late_fraction,
            zipf: plan.zipf,
            seed: plan.seed,
            granularity: unit.nanos(),
        });
        let mut ids = Vec::with_capacity(plan.instruments as usize);
        for i in 0..plan.instruments {
            let id = interner.id(TradeGen::symbol(i).as_bytes()).ok_or_else(|| {
                SourceError::io(
                    name,
                    "interning symbols",
                    std::io::Error::other("more instruments than pipeline.max_instruments"),
                )
            })?;
            ids.push(id);
        }
        Ok(Self { plan: plan.clone(), gen, ids, i: 0, paced: None })
    }
}

impl Source for SyntheticSource {
    fn partitions(&self) -> usize {
        self.plan.partitions as usize
    }

    fn poll(&mut self, out: &mut SourceOut) -> Result<Poll, SourceError> {
        let rate = self.plan.rate;
        if rate > 0 && self.paced.is_none() {
            self.paced = Some((mono_now(), mono_to_wall_offset()));
        }
        for n in 0..BATCH {
            if self.plan.events != 0 && self.i >= self.plan.events {
                return Ok(Poll::Done);
            }
            let (clock, due) = match self.paced {
                Some((start, wall)) => {
                    let due = start + (self.i as u128 * 1_000_000_000 / rate as u128) as u64;
                    let now = mono_now();
                    if due > now {
                        if n > 0 {
                            // Everything due is handed over.
                            return Ok(Poll::More);
                        }
                        if !super::wait_briefly(due) {
                            // Far ahead: let the caller do its housekeeping while we wait.
                            return Ok(Poll::Idle);
                        }
                    }
                    (due as Nanos + wall, due)
                }
                None => (self.plan.start + (self.i as i128 * 1_000_000_000 / self.plan.event_rate as i128) as Nanos, 0),
            };
            let g = self.gen.next(clock);
            let t = Trade {
                ts: g.ts,
                price: g.price,
                qty: g.qty,
                seq: self.i,
                instrument: self.ids[g.instrument as usize],
                side: g.side,
            };
            let partition = (self.i % self.plan.partitions as u64) as usize;
            out.emit(partition, Event::Trade(t), due)?;
            self.i += 1;
        }
        Ok(Poll::More)
    }
}
