//! The in-process synthetic trade feed: no file, no broker. Unpaced it runs as fast as the pipeline takes
//! events; paced (`rate` events/s) it is an open-loop load generator: event i is due at `start + i / rate`,
//! its event time is that instant on the wall clock, and its latency is measured from when it was due —
//! so a stalled pipeline shows up in the histograms instead of slowing the generator down.

use super::{Poll, Source, SourceError, SourceOut};
use crate::checkpoint::codec::{Dec, Enc};
use crate::checkpoint::manifest::SourcePosition;
use crate::config::SynthPlan;
use crate::event::{Event, KeyId, Nanos, Trade, TradeKind};
use crate::gen::{GenParams, TradeGen};
use crate::symbols::Interner;
use crate::time::{mono_now, mono_to_wall_offset, TimeUnit};

const BATCH: u64 = 1024;

pub struct SyntheticSource {
    name: String,
    plan: SynthPlan,
    /// Restored from a checkpoint: pacing resumes at the restored event.
    resumed: bool,
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
        // Interned at once into the shared table: the generator names instruments by number, so it needs
        // no map of its own.
        let n = plan.instruments as usize;
        let ids = interner
            .shared()
            .intern_all(n, interner.limit(), |i, buf| TradeGen::write_symbol(i as u32, buf))
            .ok_or_else(|| {
                SourceError::io(
                    name,
                    "interning symbols",
                    std::io::Error::other("more instruments than pipeline.max_instruments"),
                )
            })?;
        Ok(Self { name: name.to_string(), plan: plan.clone(), resumed: false, gen, ids, i: 0, paced: None })
    }
}

impl Source for SyntheticSource {
    fn partitions(&self) -> usize {
        self.plan.partitions as usize
    }

    fn checkpoint(&mut self, _id: u64, e: &mut Enc) -> Result<SourcePosition, String> {
        e.u64(self.i);
        self.gen.encode(e);
        Ok(SourcePosition {
            source: String::new(),
            kind: "synthetic".into(),
            partitions: Vec::new(),
            byte_offset: None,
            seed: Some(self.plan.seed),
            count: Some(self.i),
        })
    }

    fn restore(&mut self, d: &mut Dec<'_>) -> Result<(), SourceError> {
        let bad = |e: crate::checkpoint::codec::DecodeError| SourceError::Other {
            source_name: self.name.clone(),
            message: format!("restoring the generator: {e}"),
        };
        let i = d.u64("events generated").map_err(bad)?;
        self.gen.decode_into(d).map_err(bad)?;
        self.i = i;
        // Paced: event i is due when the run resumes, not i / rate after some earlier start.
        self.resumed = true;
        Ok(())
    }

    fn poll(&mut self, out: &mut SourceOut) -> Result<Poll, SourceError> {
        let rate = self.plan.rate;
        if rate > 0 && self.paced.is_none() {
            let back = if self.resumed { (self.i as u128 * 1_000_000_000 / rate as u128) as u64 } else { 0 };
            self.paced = Some((mono_now().saturating_sub(back), mono_to_wall_offset()));
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
                kind: TradeKind::Record,
            };
            let partition = (self.i % self.plan.partitions as u64) as usize;
            out.emit(partition, Event::Trade(t), due)?;
            self.i += 1;
        }
        Ok(Poll::More)
    }
}
