//! Session windows: per key, the live sessions; an event's `[ts, ts + gap)` merges with every session it
//! touches (Flink's `TimeWindow.intersects`: `a.start ≤ b.end && a.end ≥ b.start`, so events exactly `gap`
//! apart are one session).
//!
//! Live sessions of a key never touch each other (they would have merged), so the sessions an event
//! merges with are exactly those it touches directly, and they are adjacent in start order.
//!
//! Timers carry the uid of the session they were set for. Flink deletes and re-registers a session's timer
//! every time it grows; here a session keeps its uid when it grows, and a fire timer that comes due for an
//! end the session has since moved past is simply re-armed at the new end. Timers of sessions that merged
//! into another are skipped when they come due, and so is a cleanup timer for an end that is no longer the
//! session's. That keeps heap operations per session instead of per event (in-order events extend their
//! session on almost every trade).

use super::{cleanup_time, is_late, max_timestamp, Timer, TimerKind, WindowKind, WindowSpec};
use crate::agg::twap::{TwapFold, VecPool};
use crate::agg::{Bar, Twap};
use crate::checkpoint::codec::{self, Dec, DecodeError, Incremental};
use crate::event::{Event, KeyId, Nanos, Price, Trade};
use crate::operator::Operator;
use crate::record::{Collector, LateReason, LateRow, Record, StreamId, WindowRow};
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// First byte of this operator's checkpoint section.
const SNAPSHOT_TAG: u8 = 2;

#[derive(Debug)]
struct Session {
    start: Nanos,
    /// Exclusive: `last_ts + gap`.
    end: Nanos,
    bar: Bar,
    twap: Twap,
    /// Emissions so far (the most of the sessions merged into this one).
    fires: u32,
    /// Identity for timers; kept when the session grows, so its pending timer can be re-armed lazily.
    uid: i64,
    /// A fire timer is in the heap for this session (possibly for an earlier end).
    fire_pending: bool,
}

#[derive(Debug, Default)]
struct KeySessions {
    /// Live sessions, sorted by start.
    live: Vec<Session>,
    /// TWAP point vectors of finished sessions, reused by this key's new ones (per key, so capacities
    /// settle at what the key needs).
    spare: VecPool<(Nanos, Price)>,
}

/// Session windows for one output stream.
#[derive(Debug)]
pub struct SessionWindows {
    gap: Nanos,
    lateness: Nanos,
    twap: bool,
    value: super::Value,
    stream: StreamId,
    late_stream: StreamId,
    wm: Nanos,
    keys: Vec<KeySessions>,
    timers: BinaryHeap<Reverse<Timer>>,
    next_uid: i64,
    open: usize,
    /// The checkpoint snapshot being written, if any.
    snap: Incremental,
}

impl SessionWindows {
    /// # Panics
    /// If `spec` is not a session window or its gap is not positive (the config rejects those).
    pub fn new(spec: &WindowSpec, stream: StreamId, late_stream: StreamId) -> Self {
        let WindowKind::Session { gap } = spec.kind else { panic!("SessionWindows needs a session window") };
        assert!(gap > 0, "session gap must be positive");
        Self {
            gap,
            lateness: spec.lateness,
            twap: spec.twap,
            value: spec.value,
            stream,
            late_stream,
            wm: crate::event::WATERMARK_MIN,
            keys: Vec::new(),
            timers: BinaryHeap::new(),
            next_uid: 0,
            open: 0,
            snap: Incremental::default(),
        }
    }

    fn uid(&mut self) -> i64 {
        self.next_uid += 1;
        self.next_uid
    }

    /// A snapshot is being written: write `key` as it is now, before it changes (once per snapshot).
    #[inline]
    fn presave(&mut self, key: usize) {
        if self.snap.active() {
            self.save_key(key);
        }
    }

    #[cold]
    fn save_key(&mut self, key: usize) {
        if !self.snap.claim(key) {
            return;
        }
        let Some(ks) = self.keys.get(key) else { return };
        if ks.live.is_empty() {
            return;
        }
        let e = self.snap.key_enc();
        e.key(key as KeyId);
        e.len_of(ks.live.len());
        for s in &ks.live {
            e.i64(s.start);
            e.i64(s.end);
            s.bar.encode(e);
            e.u32(s.fires);
            e.i64(s.uid);
            e.bool(s.fire_pending);
            s.twap.encode(e);
        }
    }

    fn on_trade(&mut self, t: &Trade, arrival: u64, out: &mut dyn Collector) {
        let wm = self.wm;
        let (ns, ne) = (t.ts, t.ts.saturating_add(self.gap));
        let key = t.instrument as usize;
        self.presave(key);
        if key >= self.keys.len() {
            self.keys.resize_with(key + 1, KeySessions::default);
        }
        // Sessions touching [ns, ne) are a contiguous run in start order.
        let sessions = &self.keys[key].live;
        let lo = sessions.partition_point(|s| s.end < ns);
        let hi = lo + sessions[lo..].iter().take_while(|s| s.start <= ne).count();

        let grows = if lo == hi {
            // A session of its own; late if it would already be purged.
            if is_late(ne, self.lateness, wm) {
                out.emit(
                    self.late_stream,
                    Record::Late(LateRow { trade: *t, watermark: wm, reason: LateReason::BehindWatermark }),
                );
                return;
            }
            let uid = self.uid();
            let mut twap = Twap::with_vec(if self.twap { self.keys[key].spare.get() } else { Vec::new() });
            if self.twap {
                twap.add(t.ts, t.price);
            }
            let s = Session { start: ns, end: ne, bar: Bar::of(t, arrival), twap, fires: 0, uid, fire_pending: false };
            self.keys[key].live.insert(lo, s);
            self.open += 1;
            true
        } else {
            let KeySessions { live: sessions, spare } = &mut self.keys[key];
            let (cs, ce) = (sessions[lo].start.min(ns), sessions[hi - 1].end.max(ne));
            let grows = ce != sessions[lo].end;
            // Merge sessions lo+1..hi into lo; they follow it in time, so their points append in order.
            let (left, right) = sessions.split_at_mut(lo + 1);
            let target = &mut left[lo];
            for s in &right[..hi - lo - 1] {
                target.bar.merge(&s.bar);
                target.twap.append(&s.twap);
                target.fires = target.fires.max(s.fires);
            }
            for s in sessions.drain(lo + 1..hi) {
                spare.put(s.twap.into_vec());
                self.open -= 1;
            }
            let s = &mut sessions[lo];
            s.start = cs;
            s.end = ce;
            s.bar.add(t, arrival);
            if self.twap {
                s.twap.add(t.ts, t.price);
            }
            grows
        };

        let s = &mut self.keys[key].live[lo];
        let max_ts = max_timestamp(s.end);
        if max_ts > wm {
            if !s.fire_pending {
                self.timers.push(Reverse(Timer { at: max_ts, key: key as KeyId, id: s.uid, kind: TimerKind::Fire }));
                s.fire_pending = true;
            }
        } else {
            // EventTimeTrigger.onElement: the watermark is already past the session: fire at once.
            if grows {
                // A new end: the cleanup set for the old one no longer matches.
                if let Some(at) = cleanup_time(s.end, self.lateness) {
                    self.timers.push(Reverse(Timer { at, key: key as KeyId, id: s.uid, kind: TimerKind::Cleanup }));
                }
            }
            let fire = s.fires;
            s.fires += 1;
            emit(s, key as KeyId, self.twap, fire, self.stream, out);
        }
    }

    fn remove(&mut self, key: usize, i: usize) {
        let ks = &mut self.keys[key];
        let s = ks.live.remove(i);
        ks.spare.put(s.twap.into_vec());
        self.open -= 1;
    }
}

fn emit(s: &Session, key: KeyId, twap: bool, fire: u32, stream: StreamId, out: &mut dyn Collector) {
    let twap = if twap {
        let mut f = TwapFold::default();
        f.extend(s.twap.points());
        f.finish(s.end)
    } else {
        None
    };
    out.emit(stream, Record::Window(WindowRow { key, start: s.start, end: s.end, bar: s.bar, twap, fire }));
}

impl Operator for SessionWindows {
    #[inline]
    fn on_event(&mut self, ev: &Event, arrival: u64, out: &mut dyn Collector) {
        if let Some(t) = self.value.sample(ev) {
            self.on_trade(&t, arrival, out);
        }
    }

    fn on_watermark(&mut self, wm: Nanos, out: &mut dyn Collector) {
        if wm <= self.wm {
            return;
        }
        self.wm = wm;
        while let Some(&Reverse(t)) = self.timers.peek() {
            if t.at > wm {
                break;
            }
            self.timers.pop();
            let key = t.key as usize;
            self.presave(key);
            // A timer of a session that merged into another since is stale.
            let Some(i) = self.keys[key].live.iter().position(|s| s.uid == t.id) else {
                continue;
            };
            let s = &mut self.keys[key].live[i];
            let max_ts = max_timestamp(s.end);
            match t.kind {
                TimerKind::Fire if max_ts > t.at => {
                    // The session grew since this timer was set: wait for its new end.
                    self.timers.push(Reverse(Timer { at: max_ts, ..t }));
                }
                TimerKind::Fire => {
                    s.fire_pending = false;
                    let fire = s.fires;
                    s.fires += 1;
                    emit(s, t.key, self.twap, fire, self.stream, out);
                    match cleanup_time(s.end, self.lateness) {
                        Some(at) if at == t.at => self.remove(key, i),
                        Some(at) => self.timers.push(Reverse(Timer { at, kind: TimerKind::Cleanup, ..t })),
                        None => {}
                    }
                }
                TimerKind::Cleanup => {
                    // Only the cleanup for the session's current end counts.
                    if cleanup_time(s.end, self.lateness) == Some(t.at) && !s.fire_pending {
                        self.remove(key, i);
                    }
                }
            }
        }
    }

    #[inline]
    fn prefetch(&self, ev: &Event) {
        if let Some(k) = self.keys.get(ev.key(crate::event::KeyBy::Instrument) as usize) {
            crate::hint::prefetch(k);
        }
    }

    fn open_state(&self) -> usize {
        self.open
    }

    fn retained_from(&self) -> Nanos {
        // A scan of every key's live sessions: called about once a second, for commits.
        self.keys.iter().filter_map(|k| k.live.first().map(|s| s.start)).min().unwrap_or(crate::event::WATERMARK_MAX)
    }

    fn snapshot_begin(&mut self) {
        let e = self.snap.begin(self.keys.len());
        e.u8(SNAPSHOT_TAG);
        e.i64(self.gap);
        e.i64(self.lateness);
        e.bool(self.twap);
        e.u8(self.value.code());
        e.i64(self.wm);
        e.i64(self.next_uid);
        // The heap's order is the timers' own (time, key, session, kind), so sorted is as good as as-held.
        let mut timers: Vec<Timer> = self.timers.iter().map(|r| r.0).collect();
        timers.sort_unstable();
        e.len_of(timers.len());
        for t in timers {
            e.i64(t.at);
            e.key(t.key);
            e.i64(t.id);
            e.u8(match t.kind {
                TimerKind::Fire => 0,
                TimerKind::Cleanup => 1,
            });
        }
        self.snap.keys_follow();
    }

    fn snapshot_step(&mut self, budget: usize) -> bool {
        let Some(keys) = self.snap.step(budget) else { return true };
        for k in keys {
            self.save_key(k);
        }
        false
    }

    fn snapshot_take(&mut self, spare: Vec<u8>) -> Vec<u8> {
        self.snap.take(spare)
    }

    fn restore(&mut self, d: &mut Dec<'_>, owns: &dyn Fn(KeyId) -> bool) -> Result<(), DecodeError> {
        d.reserve_keys(&mut self.keys);
        d.expect_u8("operator", SNAPSHOT_TAG)?;
        d.expect_i64("session gap", self.gap)?;
        d.expect_i64("allowed lateness", self.lateness)?;
        d.expect_u8("twap", self.twap as u8)?;
        d.expect_u8("window value", self.value.code())?;
        self.wm = self.wm.max(d.i64("watermark")?);
        self.next_uid = self.next_uid.max(d.i64("next session uid")?);
        let n_timers = d.count(21, "timers")?;
        let mut timers = Vec::with_capacity(n_timers);
        for _ in 0..n_timers {
            let at = d.pos();
            let t_at = d.i64("timer time")?;
            let key = d.key()?;
            let id = d.i64("timer session")?;
            let kind = match d.u8("timer kind")? {
                0 => TimerKind::Fire,
                1 => TimerKind::Cleanup,
                k => return Err(DecodeError::Invalid { at, what: format!("timer kind {k}") }),
            };
            if owns(key) {
                timers.push((at, Timer { at: t_at, key, id, kind }));
            }
        }
        let keys = d.count(12, "keys")?;
        for _ in 0..keys {
            let at = d.pos();
            let key = d.key()?;
            let mine = owns(key);
            let idx = key as usize;
            if mine {
                if idx >= self.keys.len() {
                    self.keys.resize_with(idx + 1, KeySessions::default);
                }
                if !self.keys[idx].live.is_empty() {
                    return Err(DecodeError::Invalid { at, what: format!("key {key} restored twice") });
                }
            }
            let mut scratch = KeySessions::default();
            let ks = if mine { &mut self.keys[idx] } else { &mut scratch };
            let n = d.count(8 + 8 + 96 + 4 + 8 + 1 + 8, "sessions")?;
            // Only keys with live sessions are written: an empty one is not a snapshot's (its timers would
            // outlive it in the next snapshot, which could then not be restored).
            if n == 0 {
                return Err(DecodeError::Invalid { at, what: format!("key {key} listed with no sessions") });
            }
            for _ in 0..n {
                let at = d.pos();
                let start = d.i64("session start")?;
                let end = d.i64("session end")?;
                codec::ordered(at, start, end, "session start and end")?;
                if let Some(prev) = ks.live.last() {
                    codec::ordered(at, prev.end.saturating_add(1), start, "sessions")?;
                }
                let bar = Bar::decode(d)?;
                let fires = d.u32("session fires")?;
                let uid = d.i64("session uid")?;
                let fire_pending = d.bool("session fire pending")?;
                let mut twap = Twap::with_vec(ks.spare.get());
                twap.decode_into(d)?;
                ks.live.push(Session { start, end, bar, twap, fires, uid, fire_pending });
            }
            if mine {
                self.open += n;
            }
        }
        for (at, t) in timers {
            // Firing looks the key up: a timer must not name a key beyond the restored ones.
            if t.key as usize >= self.keys.len() {
                return Err(DecodeError::Invalid { at, what: format!("timer of key {}, which has no state", t.key) });
            }
            self.timers.push(Reverse(t));
        }
        Ok(())
    }

    fn forget(&mut self, key: KeyId) {
        self.presave(key as usize);
        let Some(ks) = self.keys.get_mut(key as usize) else { return };
        self.open -= ks.live.len();
        for s in ks.live.drain(..) {
            ks.spare.put(s.twap.into_vec());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Side, TradeKind, WATERMARK_MAX};

    fn trade(ts: Nanos, seq: u64) -> Event {
        Event::Trade(Trade {
            ts,
            price: Price::from_units(10),
            qty: 1,
            seq,
            instrument: 0,
            side: Side::Unknown,
            kind: TradeKind::Record,
        })
    }

    /// (start, end, count, fire) per emitted session.
    type Rows = Vec<(Nanos, Nanos, u64, u32)>;

    fn run(lateness: Nanos, bound: Nanos, gap: Nanos, evs: &[Nanos]) -> (Rows, Vec<Nanos>) {
        let spec = WindowSpec { kind: WindowKind::Session { gap }, lateness, twap: true, value: Default::default() };
        let mut op = SessionWindows::new(&spec, 0, 1);
        let mut out = Vec::new();
        let mut max = i64::MIN;
        for (i, &ts) in evs.iter().enumerate() {
            if max != i64::MIN {
                op.on_watermark(max - bound - 1, &mut out);
            }
            op.on_event(&trade(ts, i as u64), i as u64, &mut out);
            max = max.max(ts);
        }
        op.on_watermark(WATERMARK_MAX, &mut out);
        assert_eq!(op.open_state(), 0);
        let mut w = Vec::new();
        let mut l = Vec::new();
        for (_, r) in out {
            match r {
                Record::Window(r) => w.push((r.start, r.end, r.bar.count, r.fire)),
                Record::Late(r) => l.push(r.trade.ts),
                _ => unreachable!(),
            }
        }
        (w, l)
    }

    #[test]
    fn touching_sessions_merge_and_one_more_unit_splits() {
        let (w, _) = run(0, 10_000, 5000, &[0, 5000]);
        assert_eq!(w, vec![(0, 10_000, 2, 0)]);
        let (w, _) = run(0, 10_000, 5000, &[0, 5001]);
        assert_eq!(w, vec![(0, 5000, 1, 0), (5001, 10_001, 1, 0)]);
    }

    #[test]
    fn out_of_order_element_bridges_two_sessions() {
        // 0 and 8000 are separate sessions until 4000 arrives and touches both.
        let (w, l) = run(0, 10_000, 5000, &[0, 8000, 4000]);
        assert_eq!(w, vec![(0, 13_000, 3, 0)]);
        assert!(l.is_empty());
    }

    #[test]
    fn session_fires_at_watermark_and_late_element_is_side_output() {
        // bound 0: ts 20000 → wm 19999 ≥ 4999 fires [0,5000); 100 is then late (its own [100,5100) is late).
        let (w, l) = run(0, 0, 5000, &[0, 20_000, 100]);
        assert_eq!(w, vec![(0, 5000, 1, 0), (20_000, 25_000, 1, 0)]);
        assert_eq!(l, vec![100]);
    }

    #[test]
    fn lateness_refires_and_merges_across_a_late_element() {
        // lateness 3000: after 9000 the wm is 8999 and [0,5000) fired (4999 ≤ 8999) but is kept until
        // 7999 … it is already purged at 8999 (4999 + 3000 ≤ 8999). Use 7000 instead: wm 6999.
        let (w, l) = run(3000, 0, 5000, &[0, 7000, 1000]);
        // 1000 lands in the fired, unpurged [0,5000) and extends it to [0,6000): a new window, fired at
        // once because its maxTimestamp 5999 ≤ 6999; then it touches nothing else ([7000,12000) starts at 7000 > 6000).
        assert_eq!(w, vec![(0, 5000, 1, 0), (0, 6000, 2, 1), (7000, 12_000, 1, 0)]);
        assert!(l.is_empty());
    }

    #[test]
    fn purged_session_restarts_and_may_overlap() {
        // lateness 1000: 0 fires at wm ≥ 4999 and is purged at ≥ 5999; 20000 makes wm 19999.
        // 4000's own window [4000, 9000) has maxTimestamp 8999 + 1000 ≤ 19999: late.
        // 16000 is on time: a new session.
        let (w, l) = run(1000, 0, 5000, &[0, 20_000, 4000, 16_000]);
        assert_eq!(l, vec![4000]);
        assert_eq!(w, vec![(0, 5000, 1, 0), (16_000, 25_000, 2, 0)]);
    }
}
