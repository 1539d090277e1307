//! Tumbling and sliding event-time windows over panes.
//!
//! A tumbling window is a sliding window whose slide equals its size, so one implementation serves both.
//! Per key the operator keeps the panes (width `gcd(size, slide)`) that hold data and, for every window
//! that has received an element, its emission count. An element updates one pane and registers each of
//! its (at most `size / slide`) windows; a window's result is the merge of its panes when it fires.
//!
//! Why the panes give exactly Flink's per-window contents: a window is late exactly when its state would
//! be purged (`maxTimestamp + lateness ≤ watermark`), and lateness only grows as the watermark advances.
//! So every element in a pane of a live window was added while that window was live, which is when Flink
//! would have added it to that window; an element that was late for some of a pane's windows only reached
//! the pane after those windows were purged, and purged windows are never emitted again.

use super::timers::BucketTimers;
use super::{cleanup_time, is_late, max_timestamp, window_start, WindowKind, WindowSpec};
use crate::agg::twap::{TwapFold, VecPool};
use crate::agg::{Bar, Twap};
use crate::checkpoint::codec::{self, Dec, DecodeError, Incremental};
use crate::event::{Event, KeyId, Nanos, Price, Trade};
use crate::operator::Operator;
use crate::record::{Collector, LateReason, LateRow, Record, StreamId, WindowRow};
use std::collections::VecDeque;

/// First byte of this operator's checkpoint section.
const SNAPSHOT_TAG: u8 = 1;

#[derive(Debug)]
struct Pane {
    start: Nanos,
    bar: Bar,
    twap: Twap,
    /// Tumbling windows only (a pane is the window): emissions so far.
    fires: u32,
}

#[derive(Debug, Clone, Copy)]
struct Win {
    start: Nanos,
    /// Emissions so far (the next emission's `fire`).
    fires: u32,
}

#[derive(Debug, Default)]
struct KeyState {
    /// Sorted by start.
    panes: VecDeque<Pane>,
    /// Sliding windows that hold data, sorted by start (tumbling windows are their panes).
    windows: VecDeque<Win>,
    /// TWAP point vectors of dropped panes, reused by this key's new panes. Per key, so each vector's
    /// capacity settles at what this key needs (a shared pool kept handing small vectors to busy keys).
    spare: VecPool<(Nanos, Price)>,
}

/// Tumbling or sliding windows for one output stream.
#[derive(Debug)]
pub struct AlignedWindows {
    size: Nanos,
    slide: Nanos,
    offset: Nanos,
    pane: Nanos,
    lateness: Nanos,
    twap: bool,
    value: super::Value,
    stream: StreamId,
    late_stream: StreamId,
    wm: Nanos,
    keys: Vec<KeyState>,
    /// Keys whose window ending at `t + 1` fires at `t`.
    fire: BucketTimers,
    /// Keys whose window ending at `t + 1 − lateness` is dropped at `t` (only with allowed lateness).
    cleanup: BucketTimers,
    open: usize,
    /// The checkpoint snapshot being written, if any.
    snap: Incremental,
}

impl AlignedWindows {
    /// # Panics
    /// If `spec` is a session window or has a non-positive size or slide (the config rejects those).
    pub fn new(spec: &WindowSpec, stream: StreamId, late_stream: StreamId) -> Self {
        let (size, slide, offset) = match spec.kind {
            WindowKind::Tumbling { size, offset } => (size, size, offset),
            WindowKind::Sliding { size, slide, offset } => (size, slide, offset),
            WindowKind::Session { .. } => {
                panic!("AlignedWindows needs a tumbling or sliding window")
            }
        };
        assert!(size > 0 && slide > 0, "window size and slide must be positive");
        Self {
            size,
            slide,
            offset: offset.rem_euclid(slide),
            pane: super::gcd(size, slide),
            lateness: spec.lateness,
            twap: spec.twap,
            value: spec.value,
            stream,
            late_stream,
            wm: crate::event::WATERMARK_MIN,
            keys: Vec::new(),
            fire: BucketTimers::default(),
            cleanup: BucketTimers::default(),
            open: 0,
            snap: Incremental::default(),
        }
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
        if ks.panes.is_empty() && ks.windows.is_empty() {
            return;
        }
        let e = self.snap.key_enc();
        e.key(key as KeyId);
        e.len_of(ks.panes.len());
        for p in &ks.panes {
            e.i64(p.start);
            p.bar.encode(e);
            e.u32(p.fires);
            p.twap.encode(e);
        }
        e.len_of(ks.windows.len());
        for w in &ks.windows {
            e.i64(w.start);
            e.u32(w.fires);
        }
    }

    #[inline]
    fn on_trade(&mut self, t: &Trade, arrival: u64, out: &mut dyn Collector) {
        let wm = self.wm;
        let key = t.instrument as usize;
        self.presave(key);
        if key >= self.keys.len() {
            self.keys.resize_with(key + 1, KeyState::default);
        }
        let ks = &mut self.keys[key];
        // The element's pane; most elements land in the key's newest pane, which saves a division.
        let pstart = match ks.panes.back() {
            Some(p) if t.ts >= p.start && t.ts - p.start < self.pane => p.start,
            _ => window_start(t.ts, self.offset, self.pane),
        };
        let last_start = if self.pane == self.slide { pstart } else { window_start(t.ts, self.offset, self.slide) };
        // Windows are visited newest first; the newest is the least late, so if it is late all are.
        if is_late(last_start.saturating_add(self.size), self.lateness, wm) {
            out.emit(
                self.late_stream,
                Record::Late(LateRow { trade: *t, watermark: wm, reason: LateReason::BehindWatermark }),
            );
            return;
        }

        // 1. the element's pane
        let mut pi = ks.panes.len();
        while pi > 0 && ks.panes[pi - 1].start > pstart {
            pi -= 1;
        }
        let created = if pi > 0 && ks.panes[pi - 1].start == pstart {
            pi -= 1;
            ks.panes[pi].bar.add(t, arrival);
            false
        } else {
            let twap = Twap::with_vec(if self.twap { ks.spare.get() } else { Vec::new() });
            ks.panes.insert(pi, Pane { start: pstart, bar: Bar::of(t, arrival), twap, fires: 0 });
            true
        };
        if self.twap {
            ks.panes[pi].twap.add(t.ts, t.price);
        }

        if self.pane == self.size {
            // Tumbling: the pane is the element's only window.
            let end = pstart.saturating_add(self.size);
            let max_ts = max_timestamp(end);
            if created {
                self.open += 1;
                set_timer(&mut self.fire, &mut self.cleanup, self.lateness, key as KeyId, end, wm);
            }
            if max_ts <= wm {
                let fire = ks.panes[pi].fires;
                ks.panes[pi].fires += 1;
                emit(ks, key as KeyId, pstart, self.size, self.twap, fire, self.stream, out);
            }
            return;
        }

        // 2. Sliding: its windows. If the pane already held data, every live window containing it is already
        //    registered; and if the element is ahead of the watermark, none of them has fired yet. So the
        //    usual in-order element costs one pane update, not `size / slide` window updates.
        if !created && t.ts > wm {
            return;
        }
        // Newest first (Flink's assigner order); `wi` only moves towards older windows.
        let oldest_exclusive = t.ts.saturating_sub(self.size);
        let mut s = last_start;
        let mut wi = ks.windows.len();
        while s > oldest_exclusive {
            let end = s.saturating_add(self.size);
            if is_late(end, self.lateness, wm) {
                break;
            }
            let max_ts = max_timestamp(end);
            while wi > 0 && ks.windows[wi - 1].start > s {
                wi -= 1;
            }
            if wi > 0 && ks.windows[wi - 1].start == s {
                wi -= 1;
            } else {
                ks.windows.insert(wi, Win { start: s, fires: 0 });
                self.open += 1;
                set_timer(&mut self.fire, &mut self.cleanup, self.lateness, key as KeyId, end, wm);
            }
            if max_ts <= wm {
                // EventTimeTrigger.onElement: the watermark is past the window, fire at once.
                let fire = ks.windows[wi].fires;
                ks.windows[wi].fires += 1;
                emit(ks, key as KeyId, s, self.size, self.twap, fire, self.stream, out);
            }
            s -= self.slide;
        }
    }

    /// Drops window `start` of `key` and the panes no live window of that key still covers.
    fn purge(&mut self, key: usize, start: Nanos) {
        let ks = &mut self.keys[key];
        if self.pane == self.size {
            if ks.panes.iter().any(|p| p.start == start) {
                self.open -= 1;
            }
        } else if let Some(i) = ks.windows.iter().position(|w| w.start == start) {
            ks.windows.remove(i);
            self.open -= 1;
        }
        // Windows of one key are dropped in start order, so no remaining window starts before `start + slide`.
        let keep_from = start + self.slide;
        while let Some(p) = ks.panes.front() {
            if p.start >= keep_from {
                break;
            }
            let p = ks.panes.pop_front().expect("front exists");
            ks.spare.put(p.twap.into_vec());
        }
    }

    /// Fires the windows ending at `at + 1` of `keys`.
    fn fire_bucket(&mut self, at: Nanos, keys: &[KeyId], out: &mut dyn Collector) {
        let end = at + 1;
        let start = end - self.size;
        let cleanup = cleanup_time(end, self.lateness);
        for &key in keys {
            self.presave(key as usize);
            let ks = &mut self.keys[key as usize];
            let fires = if self.pane == self.size {
                ks.panes.iter_mut().find(|p| p.start == start).map(|p| &mut p.fires)
            } else {
                ks.windows.iter_mut().find(|w| w.start == start).map(|w| &mut w.fires)
            };
            // Fired already: a timer left behind when the key was forgotten and its window made again.
            let Some(fires) = fires.filter(|f| **f == 0) else { continue };
            *fires = 1;
            emit(ks, key, start, self.size, self.twap, 0, self.stream, out);
            match cleanup {
                Some(c) if c == at => self.purge(key as usize, start),
                Some(c) => self.cleanup.add(c, key),
                None => {}
            }
        }
    }
}

/// A window of `key` ending at `end` has received its first element: its firing is due at `end − 1`; one
/// created after that but within the allowed lateness fires at once (the caller does it) and only its
/// cleanup is due later.
fn set_timer(fire: &mut BucketTimers, cleanup: &mut BucketTimers, lateness: Nanos, key: KeyId, end: Nanos, wm: Nanos) {
    let max_ts = max_timestamp(end);
    if max_ts > wm {
        fire.add(max_ts, key);
    } else if let Some(at) = cleanup_time(end, lateness) {
        cleanup.add(at, key);
    }
}

/// Emits window `[start, start + size)` of `key`, merging its panes.
#[allow(clippy::too_many_arguments)]
fn emit(
    ks: &KeyState,
    key: KeyId,
    start: Nanos,
    size: Nanos,
    twap: bool,
    fire: u32,
    stream: StreamId,
    out: &mut dyn Collector,
) {
    let end = start.saturating_add(size);
    let first = ks.panes.partition_point(|p| p.start < start);
    let mut bar: Option<Bar> = None;
    let mut fold = TwapFold::default();
    for p in ks.panes.range(first..) {
        if p.start >= end {
            break;
        }
        match &mut bar {
            None => bar = Some(p.bar),
            Some(b) => b.merge(&p.bar),
        }
        if twap {
            fold.extend(p.twap.points());
        }
    }
    if let Some(bar) = bar {
        let twap = if twap { fold.finish(end) } else { None };
        out.emit(stream, Record::Window(WindowRow { key, start, end, bar, twap, fire }));
    }
}

impl Operator for AlignedWindows {
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
        // Fire and cleanup buckets in time order (a window's cleanup is never before its firing).
        loop {
            let f = self.fire.next_due().filter(|&t| t <= wm);
            let c = self.cleanup.next_due().filter(|&t| t <= wm);
            match (f, c) {
                (Some(ft), c) if c.is_none_or(|ct| ft <= ct) => {
                    let (at, keys) = self.fire.pop_due(wm).expect("due");
                    self.fire_bucket(at, &keys, out);
                    self.fire.recycle(keys);
                }
                (_, Some(_)) => {
                    let (at, keys) = self.cleanup.pop_due(wm).expect("due");
                    let start = at - self.lateness + 1 - self.size;
                    for &k in &keys {
                        self.presave(k as usize);
                        self.purge(k as usize, start);
                    }
                    self.cleanup.recycle(keys);
                }
                (None, None) => break,
                (Some(_), None) => unreachable!("covered above"),
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
        // Live panes belong to live windows, and every live window has a pending firing or cleanup: the
        // earliest pending timer bounds the earliest live window's start.
        let from_fire = self.fire.next_due().map(|at| at + 1 - self.size);
        let from_cleanup = self.cleanup.next_due().map(|at| at + 1 - self.lateness - self.size);
        from_fire.into_iter().chain(from_cleanup).min().unwrap_or(crate::event::WATERMARK_MAX)
    }

    fn snapshot_begin(&mut self) {
        let e = self.snap.begin(self.keys.len());
        e.u8(SNAPSHOT_TAG);
        for v in [self.size, self.slide, self.offset, self.lateness] {
            e.i64(v);
        }
        e.bool(self.twap);
        e.u8(self.value.code());
        e.i64(self.wm);
        self.fire.encode(e);
        self.cleanup.encode(e);
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
        d.expect_i64("window size", self.size)?;
        d.expect_i64("window slide", self.slide)?;
        d.expect_i64("window offset", self.offset)?;
        d.expect_i64("allowed lateness", self.lateness)?;
        d.expect_u8("twap", self.twap as u8)?;
        d.expect_u8("window value", self.value.code())?;
        // Every shard's watermark is the same at a barrier; the largest is the one to continue from.
        self.wm = self.wm.max(d.i64("watermark")?);
        self.fire.decode_into(d, owns)?;
        self.cleanup.decode_into(d, owns)?;
        let keys = d.count(20, "keys")?;
        for _ in 0..keys {
            let at = d.pos();
            let key = d.key()?;
            let mine = owns(key);
            let idx = key as usize;
            if mine {
                if idx >= self.keys.len() {
                    self.keys.resize_with(idx + 1, KeyState::default);
                }
                if !self.keys[idx].panes.is_empty() || !self.keys[idx].windows.is_empty() {
                    return Err(DecodeError::Invalid { at, what: format!("key {key} restored twice") });
                }
            }
            let mut scratch = KeyState::default();
            let ks = if mine { &mut self.keys[idx] } else { &mut scratch };
            let panes = d.count(8 + 96 + 4 + 8, "panes")?;
            // Exactly the room restored: growth would give every key four panes (a tumbling window's key
            // holds one), four times the memory for the restore to fault in.
            ks.panes.reserve_exact(panes);
            for _ in 0..panes {
                let at = d.pos();
                let start = d.i64("pane start")?;
                if let Some(prev) = ks.panes.back() {
                    codec::ordered(at, prev.start.saturating_add(1), start, "pane starts")?;
                }
                let bar = Bar::decode(d)?;
                let fires = d.u32("pane fires")?;
                let mut twap = Twap::with_vec(ks.spare.get());
                twap.decode_into(d)?;
                ks.panes.push_back(Pane { start, bar, twap, fires });
            }
            let windows = d.count(12, "windows")?;
            ks.windows.reserve_exact(windows);
            for _ in 0..windows {
                let at = d.pos();
                let start = d.i64("window start")?;
                if let Some(prev) = ks.windows.back() {
                    codec::ordered(at, prev.start.saturating_add(1), start, "window starts")?;
                }
                ks.windows.push_back(Win { start, fires: d.u32("window fires")? });
            }
            if mine {
                self.open += if self.pane == self.size { panes } else { windows };
            }
        }
        // Firing and cleanup look keys up by id: every key a timer names must exist (a timer of a key with
        // no window finds nothing and is skipped, as after `forget`).
        if let Some(k) = self.fire.max_key().max(self.cleanup.max_key()) {
            if k as usize >= self.keys.len() {
                self.keys.resize_with(k as usize + 1, KeyState::default);
            }
        }
        Ok(())
    }

    fn forget(&mut self, key: KeyId) {
        self.presave(key as usize);
        let Some(ks) = self.keys.get_mut(key as usize) else { return };
        self.open -= if self.pane == self.size { ks.panes.len() } else { ks.windows.len() };
        ks.windows.clear();
        for p in ks.panes.drain(..) {
            ks.spare.put(p.twap.into_vec());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Side, TradeKind, WATERMARK_MAX};

    const S: StreamId = 0;
    const LATE: StreamId = 1;

    fn trade(ts: Nanos, price: i64, seq: u64) -> Event {
        Event::Trade(Trade {
            ts,
            price: Price::from_units(price),
            qty: 1,
            seq,
            instrument: 0,
            side: Side::Unknown,
            kind: TradeKind::Record,
        })
    }

    /// Runs events through the operator with Flink's watermark (max − bound − 1, judged before each event).
    fn run(op: &mut AlignedWindows, bound: Nanos, evs: &[(Nanos, i64)]) -> Vec<(StreamId, Record)> {
        let mut out = Vec::new();
        let mut max = i64::MIN;
        for (i, &(ts, p)) in evs.iter().enumerate() {
            if max != i64::MIN {
                op.on_watermark(max - bound - 1, &mut out);
            }
            op.on_event(&trade(ts, p, i as u64), i as u64, &mut out);
            max = max.max(ts);
        }
        op.on_watermark(WATERMARK_MAX, &mut out);
        out
    }

    fn windows(out: &[(StreamId, Record)]) -> Vec<(Nanos, Nanos, u64, u32)> {
        out.iter()
            .filter_map(|(_, r)| match r {
                Record::Window(w) => Some((w.start, w.end, w.bar.count, w.fire)),
                _ => None,
            })
            .collect()
    }

    fn lates(out: &[(StreamId, Record)]) -> Vec<Nanos> {
        out.iter()
            .filter_map(|(s, r)| match r {
                Record::Late(l) => {
                    assert_eq!(*s, LATE);
                    Some(l.trade.ts)
                }
                _ => None,
            })
            .collect()
    }

    fn tumbling(size: Nanos, lateness: Nanos) -> AlignedWindows {
        AlignedWindows::new(
            &WindowSpec {
                kind: WindowKind::Tumbling { size, offset: 0 },
                lateness,
                twap: true,
                value: Default::default(),
            },
            S,
            LATE,
        )
    }

    #[test]
    fn boundary_timestamp_belongs_to_the_window_that_starts_there() {
        let mut op = tumbling(1000, 0);
        let out = run(&mut op, 0, &[(999, 1), (1000, 2), (1999, 3), (2000, 4)]);
        assert_eq!(windows(&out), vec![(0, 1000, 1, 0), (1000, 2000, 2, 0), (2000, 3000, 1, 0)]);
    }

    #[test]
    fn fires_when_watermark_reaches_max_timestamp() {
        let mut op = tumbling(1000, 0);
        let mut out = Vec::new();
        op.on_event(&trade(10, 1, 0), 0, &mut out);
        op.on_watermark(998, &mut out);
        assert!(out.is_empty());
        op.on_watermark(999, &mut out);
        assert_eq!(windows(&out), vec![(0, 1000, 1, 0)]);
    }

    #[test]
    fn exactly_late_goes_to_the_late_output() {
        // bound 0: after ts 1000 the watermark is 999 = maxTimestamp of [0,1000): that window is late.
        let mut op = tumbling(1000, 0);
        let out = run(&mut op, 0, &[(1000, 1), (999, 2), (998, 3)]);
        assert_eq!(lates(&out), vec![999, 998]);
        assert_eq!(windows(&out), vec![(1000, 2000, 1, 0)]);
        // with one more unit of bound it is on time
        let mut op = tumbling(1000, 0);
        let out = run(&mut op, 1, &[(1000, 1), (999, 2)]);
        assert!(lates(&out).is_empty());
        assert_eq!(windows(&out), vec![(0, 1000, 1, 0), (1000, 2000, 1, 0)]);
    }

    #[test]
    fn allowed_lateness_refires_with_full_contents_then_drops() {
        let mut op = tumbling(1000, 500);
        // 1200 → wm 1199 fires [0,1000); 500 re-fires it (2 elements); 1600 → wm 1599 ≥ 999+500 purges it;
        // 400 is then late.
        let out = run(&mut op, 0, &[(100, 1), (1200, 2), (500, 3), (1600, 4), (400, 5)]);
        assert_eq!(windows(&out), vec![(0, 1000, 1, 0), (0, 1000, 2, 1), (1000, 2000, 2, 0)]);
        assert_eq!(lates(&out), vec![400]);
    }

    #[test]
    fn late_element_creates_an_unfired_window_within_lateness() {
        let mut op = tumbling(1000, 2000);
        // [0,1000) never had data; the element at 10 arrives after wm 2499 but within lateness: fire 0.
        let out = run(&mut op, 0, &[(2500, 1), (10, 2)]);
        assert_eq!(windows(&out), vec![(0, 1000, 1, 0), (2000, 3000, 1, 0)]);
    }

    #[test]
    fn sliding_windows_late_for_some_count_in_others() {
        // size 3000, slide 1000; element at 1500 after wm 2999: windows [-1000,2000), [0,3000) late,
        // [1000,4000) not: it counts there and does not go to the late output.
        let spec = WindowSpec {
            kind: WindowKind::Sliding { size: 3000, slide: 1000, offset: 0 },
            lateness: 0,
            twap: false,
            value: Default::default(),
        };
        let mut op = AlignedWindows::new(&spec, S, LATE);
        let out = run(&mut op, 0, &[(500, 1), (3000, 2), (1500, 3)]);
        assert!(lates(&out).is_empty());
        let w = windows(&out);
        assert!(w.contains(&(1000, 4000, 2, 0)), "{w:?}");
        assert!(w.contains(&(-2000, 1000, 1, 0)));
        assert!(w.contains(&(0, 3000, 1, 0)));
        assert_eq!(w.len(), 6, "{w:?}");
    }

    #[test]
    fn twap_over_tumbling_window() {
        let mut op = tumbling(100, 0);
        // 10 stands 0..40, 20 stands 40..100 → 16
        let out = run(&mut op, 100, &[(40, 20), (0, 10)]);
        match &out[0].1 {
            Record::Window(w) => {
                assert_eq!(w.twap, Some(Price::from_units(16)));
                assert_eq!(w.bar.open, Price::from_units(10));
                assert_eq!(w.bar.close, Price::from_units(20));
            }
            r => panic!("{r:?}"),
        }
    }

    #[test]
    fn infinite_watermark_fires_everything_and_frees_state() {
        let spec = WindowSpec {
            kind: WindowKind::Sliding { size: 60_000, slide: 10_000, offset: 0 },
            lateness: 3000,
            twap: true,
            value: Default::default(),
        };
        let mut op = AlignedWindows::new(&spec, S, LATE);
        let out = run(&mut op, 2000, &[(1, 1), (70_000, 2), (5, 3)]);
        assert_eq!(op.open_state(), 0);
        assert!(op.keys[0].panes.is_empty());
        assert_eq!(windows(&out).len(), 12);
    }
}
