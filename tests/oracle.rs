//! End-to-end oracle: `ticklane gen` writes a trade file, `ticklane run` processes it, and every output row
//! is compared with a plain batch computation of Flink's DataStream window semantics written here
//! (../shared/parity/README.md is the spec).
//!
//! The oracle favours being obviously right over being fast: it walks the input in arrival order, keeps
//! the watermark as Flink does (`W = max_ts − bound − 1`, event i judged against the watermark made by
//! events 0..i−1, +∞ at the end of input), keeps for every live (symbol, window) the explicit list of its
//! elements, and computes each emitted row from that list. All times are in the source's unit, as Flink
//! does with milliseconds; ticklane works in nanoseconds, which gives the same results for whole units.
//!
//! Rows are compared as multisets keyed by (symbol, window_start, window_end, fire), then, per symbol, in
//! emission order: for one key Flink's order is fixed (timers fire in time order, an element fires its
//! windows newest first), and ticklane keeps one key's results in order.

mod common;

use common::{fixed9, gen, int, run_config, stderr, toml_path, Table};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

const MIN: i64 = i64::MIN;
const MAX: i64 = i64::MAX;

const AGGREGATES: &str =
    r#"["open", "high", "low", "close", "volume", "vwap", "twap", "count", "pv", "first_ts", "last_ts"]"#;

// ------------------------------------------------------------------------------------------------------
// The input
// ------------------------------------------------------------------------------------------------------

/// One input trade; `seq` is its index in the file (= arrival order).
#[derive(Clone, Debug)]
struct Trade {
    seq: u64,
    ts: i64,
    sym: String,
    /// Raw units of 10⁻⁹.
    price: i128,
    qty: i64,
    side: String,
}

fn read_trades(path: &Path) -> Vec<Trade> {
    let t = Table::read(path);
    assert_eq!(t.header, ["ts", "symbol", "price", "qty", "side"], "gen's header");
    t.rows
        .iter()
        .enumerate()
        .map(|(i, r)| Trade {
            seq: i as u64,
            ts: int(&r[0]),
            sym: r[1].clone(),
            price: fixed9(&r[2]),
            qty: int(&r[3]),
            side: r[4].clone(),
        })
        .collect()
}

/// The watermark each event is judged against: `wms[i]` is made by events `0..i`. With several partitions
/// (event i belongs to partition `i % partitions`, as the synthetic source deals them) it is the minimum
/// over the partitions, and −∞ while some partition has had no event.
fn watermarks(trades: &[Trade], bound: i64, partitions: usize) -> Vec<i64> {
    let mut max_ts: Vec<Option<i64>> = vec![None; partitions];
    let mut out = Vec::with_capacity(trades.len());
    for (i, t) in trades.iter().enumerate() {
        let w = if max_ts.iter().any(Option::is_none) {
            MIN
        } else {
            max_ts.iter().map(|m| m.expect("checked") - bound - 1).min().expect("at least one partition")
        };
        out.push(w);
        let p = i % partitions;
        max_ts[p] = Some(max_ts[p].map_or(t.ts, |m| m.max(t.ts)));
    }
    out
}

// ------------------------------------------------------------------------------------------------------
// Rows
// ------------------------------------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Eq)]
struct WinRow {
    sym: String,
    start: i64,
    end: i64,
    fire: u32,
    open: i128,
    high: i128,
    low: i128,
    close: i128,
    volume: i64,
    vwap: i128,
    twap: i128,
    count: u64,
    pv: i128,
    first_ts: i64,
    last_ts: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct LateRow {
    seq: u64,
    sym: String,
    ts: i64,
    price: i128,
    qty: i64,
    side: String,
    /// The watermark the element was judged against (none for a continuous aggregate's late trades).
    watermark: Option<i64>,
    reason: String,
}

#[derive(Clone, Debug, PartialEq)]
struct TickRow {
    seq: u64,
    sym: String,
    ts: i64,
    price: i128,
    qty: i64,
    side: String,
    vwap: i128,
    ema: i128,
    volume: i64,
    count: u64,
}

/// `num / den` rounded to the nearest integer, halves away from zero (how ticklane rounds VWAP and TWAP
/// to 9 decimals).
fn round_div(num: i128, den: i128) -> i128 {
    assert!(den > 0, "division by {den}");
    let (q, r) = (num.div_euclid(den), num.rem_euclid(den));
    match (2 * r).cmp(&den) {
        std::cmp::Ordering::Greater => q + 1,
        std::cmp::Ordering::Less => q,
        std::cmp::Ordering::Equal if num >= 0 => q + 1,
        std::cmp::Ordering::Equal => q,
    }
}

/// The row of window `[start, end)` of `sym` holding `elems` (indices into `trades`).
fn window_row(trades: &[Trade], elems: &[usize], sym: &str, start: i64, end: i64, fire: u32) -> WinRow {
    assert!(!elems.is_empty(), "oracle: an empty window was emitted");
    let mut v: Vec<&Trade> = elems.iter().map(|&i| &trades[i]).collect();
    // Event-time order, ties by arrival.
    v.sort_by_key(|t| (t.ts, t.seq));
    let volume: i64 = v.iter().map(|t| t.qty).sum();
    let pv: i128 = v.iter().map(|t| t.price * t.qty as i128).sum();
    // TWAP: each price stands until the next trade (the last one until `end`), over [first trade, end).
    let mut integral: i128 = 0;
    for w in v.windows(2) {
        integral += w[0].price * (w[1].ts - w[0].ts) as i128;
    }
    let (first, last) = (v[0], v[v.len() - 1]);
    integral += last.price * (end - last.ts) as i128;
    WinRow {
        sym: sym.to_string(),
        start,
        end,
        fire,
        open: first.price,
        high: v.iter().map(|t| t.price).max().expect("non-empty"),
        low: v.iter().map(|t| t.price).min().expect("non-empty"),
        close: last.price,
        volume,
        vwap: round_div(pv, volume as i128),
        twap: round_div(integral, (end - first.ts) as i128),
        count: v.len() as u64,
        pv,
        first_ts: first.ts,
        last_ts: last.ts,
    }
}

fn late_row(t: &Trade, watermark: Option<i64>, reason: &str) -> LateRow {
    LateRow {
        seq: t.seq,
        sym: t.sym.clone(),
        ts: t.ts,
        price: t.price,
        qty: t.qty,
        side: t.side.clone(),
        watermark,
        reason: reason.to_string(),
    }
}

// ------------------------------------------------------------------------------------------------------
// The oracle
// ------------------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum Kind {
    Tumbling { size: i64, offset: i64 },
    Sliding { size: i64, slide: i64, offset: i64 },
    Session { gap: i64 },
}

#[derive(Default)]
struct Expected {
    rows: Vec<WinRow>,
    late: Vec<LateRow>,
}

/// Flink's `isWindowLate`: the window's state is (or would already be) purged at watermark `wm`.
fn is_late(end: i64, lateness: i64, wm: i64) -> bool {
    end - 1 + lateness <= wm
}

fn window_oracle(trades: &[Trade], wms: &[i64], kind: Kind, lateness: i64) -> Expected {
    match kind {
        Kind::Tumbling { size, offset } => aligned_oracle(trades, wms, size, size, offset, lateness),
        Kind::Sliding { size, slide, offset } => aligned_oracle(trades, wms, size, slide, offset, lateness),
        Kind::Session { gap } => session_oracle(trades, wms, gap, lateness),
    }
}

/// Tumbling (slide = size) and sliding windows.
fn aligned_oracle(trades: &[Trade], wms: &[i64], size: i64, slide: i64, offset: i64, lateness: i64) -> Expected {
    struct Win {
        elems: Vec<usize>,
        /// Emissions so far: the next emission's `fire`.
        fires: u32,
        /// An event-time timer at `end − 1` is registered.
        timer: bool,
    }
    let mut live: BTreeMap<(String, i64), Win> = BTreeMap::new(); // (symbol, start)
    let mut out = Expected::default();

    // The watermark advances: timers fire in time order, then expired windows are dropped.
    let advance = |live: &mut BTreeMap<(String, i64), Win>, out: &mut Expected, wm: i64| {
        let mut due: Vec<(i64, String, i64)> = live
            .iter()
            .filter(|((_, start), w)| w.timer && start + size - 1 <= wm)
            .map(|((sym, start), _)| (start + size, sym.clone(), *start))
            .collect();
        due.sort();
        for (end, sym, start) in due {
            let w = live.get_mut(&(sym.clone(), start)).expect("due window is live");
            out.rows.push(window_row(trades, &w.elems, &sym, start, end, w.fires));
            w.fires += 1;
            w.timer = false;
        }
        live.retain(|(_, start), _| !is_late(start + size, lateness, wm));
    };

    let mut wm = MIN;
    for (i, t) in trades.iter().enumerate() {
        if wms[i] > wm {
            wm = wms[i];
            advance(&mut live, &mut out, wm);
        }
        // The assigner's windows, newest first.
        let last_start = t.ts - (t.ts - offset).rem_euclid(slide);
        let mut skipped = true;
        let mut start = last_start;
        while start > t.ts - size {
            let end = start + size;
            if !is_late(end, lateness, wm) {
                skipped = false;
                let w = live.entry((t.sym.clone(), start)).or_insert(Win { elems: Vec::new(), fires: 0, timer: false });
                w.elems.push(i);
                // EventTimeTrigger.onElement
                if end - 1 > wm {
                    w.timer = true;
                } else {
                    out.rows.push(window_row(trades, &w.elems, &t.sym, start, end, w.fires));
                    w.fires += 1;
                }
            }
            start -= slide;
        }
        if skipped {
            out.late.push(late_row(t, Some(wm), "behind_watermark"));
        }
    }
    advance(&mut live, &mut out, MAX);
    assert!(live.is_empty(), "oracle: state left after the final watermark");
    out
}

/// Session windows: `[ts, ts + gap)` merges with every live session of its key it intersects
/// (`a.start <= b.end && a.end >= b.start`).
fn session_oracle(trades: &[Trade], wms: &[i64], gap: i64, lateness: i64) -> Expected {
    struct Session {
        start: i64,
        end: i64,
        elems: Vec<usize>,
        /// Emissions so far (for merged sessions, the most of the sessions merged).
        fires: u32,
        timer: bool,
    }
    let mut live: BTreeMap<String, Vec<Session>> = BTreeMap::new();
    let mut out = Expected::default();

    let advance = |live: &mut BTreeMap<String, Vec<Session>>, out: &mut Expected, wm: i64| {
        let mut due: Vec<(i64, String, usize)> = Vec::new();
        for (sym, list) in live.iter() {
            for (j, s) in list.iter().enumerate() {
                if s.timer && s.end - 1 <= wm {
                    due.push((s.end, sym.clone(), j));
                }
            }
        }
        due.sort();
        for (_, sym, j) in due {
            let s = &mut live.get_mut(&sym).expect("live key")[j];
            out.rows.push(window_row(trades, &s.elems, &sym, s.start, s.end, s.fires));
            s.fires += 1;
            s.timer = false;
        }
        for list in live.values_mut() {
            list.retain(|s| !is_late(s.end, lateness, wm));
        }
    };

    let mut wm = MIN;
    for (i, t) in trades.iter().enumerate() {
        if wms[i] > wm {
            wm = wms[i];
            advance(&mut live, &mut out, wm);
        }
        let (ns, ne) = (t.ts, t.ts + gap);
        let list = live.entry(t.sym.clone()).or_default();
        let (touching, rest): (Vec<Session>, Vec<Session>) =
            std::mem::take(list).into_iter().partition(|s| s.start <= ne && s.end >= ns);
        *list = rest;
        let mut s = if touching.is_empty() {
            if is_late(ne, lateness, wm) {
                out.late.push(late_row(t, Some(wm), "behind_watermark"));
                continue;
            }
            Session { start: ns, end: ne, elems: vec![i], fires: 0, timer: false }
        } else {
            let mut m = Session { start: ns, end: ne, elems: vec![i], fires: 0, timer: false };
            for o in touching {
                m.start = m.start.min(o.start);
                m.end = m.end.max(o.end);
                m.fires = m.fires.max(o.fires);
                m.elems.extend(o.elems);
            }
            assert!(!is_late(m.end, lateness, wm), "oracle: a session that merged with a live one is late");
            m
        };
        // EventTimeTrigger.onElement (after onMerge)
        if s.end - 1 > wm {
            s.timer = true;
        } else {
            out.rows.push(window_row(trades, &s.elems, &t.sym, s.start, s.end, s.fires));
            s.fires += 1;
        }
        list.push(s);
    }
    advance(&mut live, &mut out, MAX);
    assert!(live.values().all(Vec::is_empty), "oracle: sessions left after the final watermark");
    out
}

/// A continuous aggregate: per trade, the symbol's running VWAP (exact Σpv / Σqty), volume, count and EMA
/// since the start of its trading session (`reset` = (every, offset) in the source's unit).
fn continuous_oracle(
    trades: &[Trade],
    half_life_ns: f64,
    unit_ns: i64,
    reset: Option<(i64, i64)>,
) -> (Vec<TickRow>, Vec<LateRow>) {
    #[derive(Default)]
    struct Running {
        session: i64,
        pv: i128,
        volume: i64,
        count: u64,
        ema: f64,
        ema_ts: i64,
    }
    let mut state: BTreeMap<String, Running> = BTreeMap::new();
    let (mut ticks, mut late) = (Vec::new(), Vec::new());
    for t in trades {
        let r = state.entry(t.sym.clone()).or_default();
        if let Some((every, offset)) = reset {
            let session = (t.ts - offset).div_euclid(every);
            if r.count == 0 || session > r.session {
                *r = Running { session, ..Running::default() };
            } else if session < r.session {
                late.push(late_row(t, None, "previous_session"));
                continue;
            }
        }
        if r.count == 0 {
            r.ema = t.price as f64;
            r.ema_ts = t.ts;
        } else if t.ts > r.ema_ts {
            let dt_ns = ((t.ts - r.ema_ts) * unit_ns) as f64;
            let alpha = 1.0 - 0.5f64.powf(dt_ns / half_life_ns);
            r.ema += alpha * (t.price as f64 - r.ema);
            r.ema_ts = t.ts;
        }
        r.pv += t.price * t.qty as i128;
        r.volume += t.qty;
        r.count += 1;
        ticks.push(TickRow {
            seq: t.seq,
            sym: t.sym.clone(),
            ts: t.ts,
            price: t.price,
            qty: t.qty,
            side: t.side.clone(),
            vwap: round_div(r.pv, r.volume as i128),
            ema: r.ema.round() as i128,
            volume: r.volume,
            count: r.count,
        });
    }
    (ticks, late)
}

// ------------------------------------------------------------------------------------------------------
// ticklane's outputs
// ------------------------------------------------------------------------------------------------------

fn read_window_rows(path: &Path) -> Vec<WinRow> {
    let t = Table::read(path);
    let c: Vec<usize> = [
        "symbol",
        "window_start",
        "window_end",
        "fire",
        "open",
        "high",
        "low",
        "close",
        "volume",
        "vwap",
        "twap",
        "count",
        "pv",
        "first_ts",
        "last_ts",
        "is_update",
    ]
    .iter()
    .map(|n| t.col(n))
    .collect();
    t.rows
        .iter()
        .map(|r| {
            let row = WinRow {
                sym: r[c[0]].clone(),
                start: int(&r[c[1]]),
                end: int(&r[c[2]]),
                fire: int(&r[c[3]]) as u32,
                open: fixed9(&r[c[4]]),
                high: fixed9(&r[c[5]]),
                low: fixed9(&r[c[6]]),
                close: fixed9(&r[c[7]]),
                volume: int(&r[c[8]]),
                vwap: fixed9(&r[c[9]]),
                twap: fixed9(&r[c[10]]),
                count: int(&r[c[11]]) as u64,
                pv: fixed9(&r[c[12]]),
                first_ts: int(&r[c[13]]),
                last_ts: int(&r[c[14]]),
            };
            let is_update = &r[c[15]];
            assert_eq!(
                is_update,
                if row.fire > 0 { "true" } else { "false" },
                "{}: is_update must say whether fire > 0: {r:?}",
                path.display()
            );
            row
        })
        .collect()
}

fn read_late_rows(path: &Path) -> Vec<LateRow> {
    let t = Table::read(path);
    assert_eq!(t.header, ["ts", "symbol", "price", "qty", "side", "seq", "watermark", "reason"], "{}", path.display());
    t.rows
        .iter()
        .map(|r| LateRow {
            ts: int(&r[0]),
            sym: r[1].clone(),
            price: fixed9(&r[2]),
            qty: int(&r[3]),
            side: r[4].clone(),
            seq: int(&r[5]) as u64,
            watermark: if r[6].is_empty() { None } else { Some(int(&r[6])) },
            reason: r[7].clone(),
        })
        .collect()
}

fn read_tick_rows(path: &Path) -> Vec<TickRow> {
    let t = Table::read(path);
    assert_eq!(
        t.header,
        ["ts", "symbol", "price", "qty", "side", "seq", "vwap", "ema", "volume", "count"],
        "{}",
        path.display()
    );
    t.rows
        .iter()
        .map(|r| TickRow {
            ts: int(&r[0]),
            sym: r[1].clone(),
            price: fixed9(&r[2]),
            qty: int(&r[3]),
            side: r[4].clone(),
            seq: int(&r[5]) as u64,
            vwap: fixed9(&r[6]),
            ema: fixed9(&r[7]),
            volume: int(&r[8]),
            count: int(&r[9]) as u64,
        })
        .collect()
}

// ------------------------------------------------------------------------------------------------------
// Comparison
// ------------------------------------------------------------------------------------------------------

/// A raw 10⁻⁹ value as a decimal, for messages.
fn dec(v: i128) -> String {
    let sign = if v < 0 { "-" } else { "" };
    let a = v.unsigned_abs();
    format!("{sign}{}.{:09}", a / 1_000_000_000, a % 1_000_000_000)
}

fn win_diff(e: &WinRow, a: &WinRow) -> String {
    let mut d = Vec::new();
    macro_rules! field {
        ($f:ident, $show:expr) => {
            if e.$f != a.$f {
                d.push(format!("{}: expected {}, ticklane {}", stringify!($f), $show(&e.$f), $show(&a.$f)));
            }
        };
    }
    let p = |v: &i128| dec(*v);
    let n = |v: &dyn std::fmt::Display| v.to_string();
    field!(open, p);
    field!(high, p);
    field!(low, p);
    field!(close, p);
    field!(volume, |v: &i64| n(v));
    field!(vwap, p);
    field!(twap, p);
    field!(count, |v: &u64| n(v));
    field!(pv, p);
    field!(first_ts, |v: &i64| n(v));
    field!(last_ts, |v: &i64| n(v));
    d.join("; ")
}

const SHOW: usize = 8;

/// Compares window rows as multisets keyed by (symbol, start, end, fire), then each symbol's emission
/// order. Returns the failures found.
fn compare_windows(ctx: &str, expected: &[WinRow], actual: &[WinRow], lateness: i64) -> Vec<String> {
    type Key = (String, i64, i64, u32);
    let key = |r: &WinRow| (r.sym.clone(), r.start, r.end, r.fire);
    let mut exp: BTreeMap<Key, Vec<&WinRow>> = BTreeMap::new();
    for r in expected {
        exp.entry(key(r)).or_default().push(r);
    }
    let mut act: BTreeMap<Key, Vec<&WinRow>> = BTreeMap::new();
    for r in actual {
        act.entry(key(r)).or_default().push(r);
    }
    let (mut missing, mut extra, mut differ) = (Vec::new(), Vec::new(), Vec::new());
    for (k, es) in &exp {
        let got = act.get(k).map_or(&[][..], |v| &v[..]);
        for (j, e) in es.iter().enumerate() {
            match got.get(j) {
                None => missing.push(format!("{k:?}: {e:?}")),
                Some(a) if a != e => differ.push(format!("{k:?}: {}", win_diff(e, a))),
                Some(_) => {}
            }
        }
    }
    for (k, as_) in &act {
        let n = exp.get(k).map_or(0, Vec::len);
        for a in as_.iter().skip(n) {
            extra.push(format!("{k:?}: {a:?}"));
        }
    }
    let mut failures = Vec::new();
    if !(missing.is_empty() && extra.is_empty() && differ.is_empty()) {
        let mut m = format!(
            "{ctx}: {} rows expected, ticklane wrote {}: {} missing, {} extra, {} with different values",
            expected.len(),
            actual.len(),
            missing.len(),
            extra.len(),
            differ.len()
        );
        for (what, v) in [("missing", &missing), ("extra", &extra), ("differs", &differ)] {
            for s in v.iter().take(SHOW) {
                let _ = write!(m, "\n    {what} {s}");
            }
        }
        failures.push(m);
        return failures;
    }

    // Per symbol, the emission order.
    let order = |rows: &[WinRow]| {
        let mut m: BTreeMap<String, Vec<(i64, i64, u32)>> = BTreeMap::new();
        for r in rows {
            m.entry(r.sym.clone()).or_default().push((r.start, r.end, r.fire));
        }
        m
    };
    let (eo, ao) = (order(expected), order(actual));
    for (sym, e) in &eo {
        let a = &ao[sym];
        if let Some(i) = (0..e.len()).find(|&i| e[i] != a[i]) {
            failures.push(format!(
                "{ctx}: {sym}'s rows are out of order: row {i} of the symbol is (start, end, fire) {:?}, expected {:?} \
                 (expected order around it: {:?}, ticklane's: {:?})",
                a[i],
                e[i],
                &e[i.saturating_sub(2)..(i + 3).min(e.len())],
                &a[i.saturating_sub(2)..(i + 3).min(a.len())]
            ));
        }
    }
    // Without allowed lateness every emission is a timer firing, so each symbol's first firings come out
    // in window-end order. (With lateness, Flink fires a window created late but within the lateness at
    // once, possibly after a later window: the exact order is checked above.)
    if lateness == 0 {
        for (sym, a) in &ao {
            let ends: Vec<i64> = a.iter().filter(|r| r.2 == 0).map(|r| r.1).collect();
            if let Some(i) = (1..ends.len()).find(|&i| ends[i] < ends[i - 1]) {
                failures.push(format!(
                    "{ctx}: {sym}'s fire=0 rows are not in window-end order: end {} after end {}",
                    ends[i],
                    ends[i - 1]
                ));
            }
        }
    }
    failures
}

/// Late rows: the same elements (by seq) with the same values, each symbol's in input order.
fn compare_late(ctx: &str, expected: &[LateRow], actual: &[LateRow]) -> Vec<String> {
    let exp: BTreeMap<u64, &LateRow> = expected.iter().map(|r| (r.seq, r)).collect();
    let mut act: BTreeMap<u64, Vec<&LateRow>> = BTreeMap::new();
    for r in actual {
        act.entry(r.seq).or_default().push(r);
    }
    let mut problems = Vec::new();
    for (seq, e) in &exp {
        match act.get(seq).map(|v| &v[..]) {
            None | Some([]) => problems.push(format!("missing late row {e:?}")),
            Some([a]) if a != e => problems.push(format!("late row seq {seq}: expected {e:?}, ticklane {a:?}")),
            Some([_]) => {}
            Some(v) => problems.push(format!("seq {seq} written {} times", v.len())),
        }
    }
    for (seq, a) in &act {
        if !exp.contains_key(seq) {
            problems.push(format!("unexpected late row {:?}", a[0]));
        }
    }
    let mut failures = Vec::new();
    if !problems.is_empty() {
        let mut m = format!(
            "{ctx}: {} late rows expected, ticklane wrote {}; {} problems:",
            expected.len(),
            actual.len(),
            problems.len()
        );
        for p in problems.iter().take(SHOW) {
            let _ = write!(m, "\n    {p}");
        }
        failures.push(m);
        return failures;
    }
    let mut last: BTreeMap<&str, u64> = BTreeMap::new();
    for r in actual {
        if let Some(&prev) = last.get(r.sym.as_str()) {
            if r.seq < prev {
                failures.push(format!("{ctx}: {}'s late rows out of input order: seq {} after {prev}", r.sym, r.seq));
                break;
            }
        }
        last.insert(&r.sym, r.seq);
    }
    failures
}

/// Tick rows: every trade's row, each symbol's rows in input order, VWAP/volume/count exact, EMA within
/// 10⁻⁶ (it is a float smoothing).
fn compare_ticks(ctx: &str, expected: &[TickRow], actual: &[TickRow]) -> Vec<String> {
    let per_sym = |rows: &[TickRow]| {
        let mut m: BTreeMap<String, Vec<TickRow>> = BTreeMap::new();
        for r in rows {
            m.entry(r.sym.clone()).or_default().push(r.clone());
        }
        m
    };
    let (e, a) = (per_sym(expected), per_sym(actual));
    let mut problems = Vec::new();
    if expected.len() != actual.len() {
        problems.push(format!("{} rows expected, ticklane wrote {}", expected.len(), actual.len()));
    }
    for (sym, es) in &e {
        let Some(as_) = a.get(sym) else {
            problems.push(format!("no rows for {sym}"));
            continue;
        };
        for (i, (x, y)) in es.iter().zip(as_).enumerate() {
            let same = x.seq == y.seq
                && x.ts == y.ts
                && x.price == y.price
                && x.qty == y.qty
                && x.side == y.side
                && x.vwap == y.vwap
                && x.volume == y.volume
                && x.count == y.count
                && (x.ema - y.ema).abs() <= 1_000;
            if !same {
                problems.push(format!("{sym} row {i} (in input order): expected {x:?}, ticklane {y:?}"));
                break;
            }
        }
        if es.len() != as_.len() {
            problems.push(format!("{sym}: {} rows expected, ticklane wrote {}", es.len(), as_.len()));
        }
    }
    for sym in a.keys() {
        if !e.contains_key(sym) {
            problems.push(format!("rows for unexpected symbol {sym}"));
        }
    }
    if problems.is_empty() {
        return Vec::new();
    }
    let mut m = format!("{ctx}: {} problems:", problems.len());
    for p in problems.iter().take(SHOW) {
        let _ = write!(m, "\n    {p}");
    }
    vec![m]
}

// ------------------------------------------------------------------------------------------------------
// Scenarios
// ------------------------------------------------------------------------------------------------------

struct WindowDef {
    name: &'static str,
    kind: Kind,
    /// In the source's unit.
    lateness: i64,
}

struct ContinuousDef {
    name: &'static str,
    /// In the source's unit.
    half_life: i64,
    /// (every, offset) in the source's unit.
    reset: Option<(i64, i64)>,
}

struct Scenario {
    name: &'static str,
    seed: u64,
    events: u64,
    instruments: u32,
    /// Event-time span of the input (a duration); default 2,000 trades per second.
    span: Option<&'static str>,
    disorder: &'static str,
    disorder_fraction: f64,
    late_fraction: f64,
    zipf: f64,
    /// `ms`, `us` or `s`.
    unit: &'static str,
    /// First timestamp, in `unit`.
    start: i64,
    /// `max_out_of_orderness`, in `unit`.
    bound: i64,
    workers: usize,
    /// TOML value of `pipeline.wait`.
    wait: &'static str,
    /// `pipeline.emitter`: "thread" or "inline" (one worker only).
    emitter: &'static str,
    ring_capacity: Option<usize>,
    /// Read the trades from the in-process generator with this many partitions instead of the file.
    synthetic_partitions: Option<u32>,
    windows: Vec<WindowDef>,
    continuous: Vec<ContinuousDef>,
}

fn unit_ns(unit: &str) -> i64 {
    match unit {
        "s" => 1_000_000_000,
        "ms" => 1_000_000,
        "us" => 1_000,
        "ns" => 1,
        u => panic!("unit {u}"),
    }
}

impl Scenario {
    fn base(name: &'static str, seed: u64) -> Scenario {
        Scenario {
            name,
            seed,
            events: 40_000,
            instruments: 20,
            span: None,
            disorder: "2s",
            disorder_fraction: 0.2,
            late_fraction: 0.005,
            zipf: 1.0,
            unit: "ms",
            start: 1_700_000_000_000,
            bound: 1000,
            workers: 1,
            wait: r#""spin-then-yield""#,
            emitter: "thread",
            ring_capacity: None,
            synthetic_partitions: None,
            windows: Vec::new(),
            continuous: Vec::new(),
        }
    }

    /// A duration of `v` source units, as TOML.
    fn dur(&self, v: i64) -> String {
        format!("\"{v}{}\"", self.unit)
    }

    fn gen_args(&self) -> Vec<String> {
        let mut a: Vec<String> = vec![
            "-n".into(),
            self.events.to_string(),
            "--instruments".into(),
            self.instruments.to_string(),
            "--seed".into(),
            self.seed.to_string(),
            "--disorder".into(),
            self.disorder.into(),
            "--disorder-fraction".into(),
            self.disorder_fraction.to_string(),
            "--late-fraction".into(),
            self.late_fraction.to_string(),
            "--zipf".into(),
            self.zipf.to_string(),
            "--unit".into(),
            self.unit.into(),
            format!("--start={}", self.start),
        ];
        if let Some(s) = self.span {
            a.extend(["--span".into(), s.into()]);
        }
        a
    }

    fn config(&self, input: &Path, out: &Path) -> String {
        let mut c = String::new();
        let _ =
            writeln!(c, "[pipeline]\nworkers = {}\nwait = {}\nemitter = \"{}\"", self.workers, self.wait, self.emitter);
        if let Some(r) = self.ring_capacity {
            let _ = writeln!(c, "ring_capacity = {r}");
        }
        let _ = writeln!(c, "\n[metrics]\nlive = false\nsummary = false\n");
        let _ = writeln!(c, "[[source]]\nname = \"trades\"\nts_unit = \"{}\"", self.unit);
        let _ = writeln!(c, "max_out_of_orderness = {}", self.dur(self.bound));
        match self.synthetic_partitions {
            None => {
                let _ = writeln!(c, "type = \"csv\"\npath = {}", toml_path(input));
            }
            Some(p) => {
                // The generator behind `ticklane gen`, with the same clock: `events / span` events per second.
                let span_ns = humantime_ns(self.span.expect("synthetic scenarios give a span"));
                let per_event = span_ns / self.events as i64;
                assert_eq!(per_event * self.events as i64, span_ns, "span must be a whole number of ns per event");
                assert_eq!(1_000_000_000 % per_event, 0, "event_rate must be a whole number");
                let _ = writeln!(
                    c,
                    "type = \"synthetic\"\nevents = {}\ninstruments = {}\npartitions = {p}\nevent_rate = {}\n\
                     disorder = \"{}\"\ndisorder_fraction = {}\nlate_fraction = {}\nseed = {}\nzipf = {}\nstart = {}\n\
                     idle_timeout = \"50ms\"",
                    self.events,
                    self.instruments,
                    1_000_000_000 / per_event,
                    self.disorder,
                    self.disorder_fraction,
                    self.late_fraction,
                    self.seed,
                    self.zipf,
                    self.start
                );
            }
        }
        for w in &self.windows {
            let _ = writeln!(c, "\n[[window]]\nname = \"{}\"", w.name);
            match w.kind {
                Kind::Tumbling { size, offset } => {
                    let _ = writeln!(c, "type = \"tumbling\"\nsize = {}", self.dur(size));
                    if offset != 0 {
                        let _ = writeln!(c, "offset = {}", self.dur(offset));
                    }
                }
                Kind::Sliding { size, slide, offset } => {
                    let _ = writeln!(c, "type = \"sliding\"\nsize = {}\nslide = {}", self.dur(size), self.dur(slide));
                    if offset != 0 {
                        let _ = writeln!(c, "offset = {}", self.dur(offset));
                    }
                }
                Kind::Session { gap } => {
                    let _ = writeln!(c, "type = \"session\"\ngap = {}", self.dur(gap));
                }
            }
            let _ = writeln!(c, "allowed_lateness = {}\naggregates = {AGGREGATES}", self.dur(w.lateness));
            for stream in [w.name.to_string(), format!("{}_late", w.name)] {
                let _ = writeln!(
                    c,
                    "[[sink]]\nstream = \"{stream}\"\ntype = \"csv\"\npath = {}",
                    toml_path(&out.join(format!("{stream}.csv")))
                );
            }
        }
        for k in &self.continuous {
            let _ = writeln!(c, "\n[[continuous]]\nname = \"{}\"\nema_half_life = {}", k.name, self.dur(k.half_life));
            if let Some((every, offset)) = k.reset {
                let _ = writeln!(c, "session_reset = {}\nsession_offset = {}", self.dur(every), self.dur(offset));
            }
            for stream in [k.name.to_string(), format!("{}_late", k.name)] {
                let _ = writeln!(
                    c,
                    "[[sink]]\nstream = \"{stream}\"\ntype = \"csv\"\npath = {}",
                    toml_path(&out.join(format!("{stream}.csv")))
                );
            }
        }
        c
    }
}

/// `"20s"`, `"500ms"` as ns (the few forms the scenarios use).
fn humantime_ns(s: &str) -> i64 {
    for (suffix, mul) in [("ms", 1_000_000), ("us", 1_000), ("ns", 1), ("s", 1_000_000_000)] {
        if let Some(v) = s.strip_suffix(suffix) {
            if let Ok(v) = v.parse::<i64>() {
                return v * mul;
            }
        }
    }
    panic!("duration {s}")
}

/// Generates the input, runs ticklane, computes the oracle and compares every stream.
fn check(s: &Scenario) {
    let dir = tempfile::tempdir().expect("tempdir");
    let args = s.gen_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let input = gen(dir.path(), "trades.csv", &args);
    let out = dir.path().join("out");
    let toml = s.config(&input, &out);
    let res = run_config(dir.path(), "job.toml", &toml);

    let trades = read_trades(&input);
    assert_eq!(trades.len() as u64, s.events);
    let wms = watermarks(&trades, s.bound, s.synthetic_partitions.unwrap_or(1) as usize);
    let summary = stderr(&res);
    assert!(
        summary.contains(&format!("ticklane: {} events in", s.events)),
        "{}: the summary does not report {} events:\n{summary}",
        s.name,
        s.events
    );

    let mut failures = Vec::new();
    let mut total_late = 0;
    for w in &s.windows {
        let exp = window_oracle(&trades, &wms, w.kind, w.lateness);
        // The scenario must exercise what it is meant to.
        assert!(!exp.rows.is_empty(), "{}/{}: the oracle emits nothing", s.name, w.name);
        if w.lateness > 0 {
            assert!(exp.rows.iter().any(|r| r.fire > 0), "{}/{}: no re-firing to check", s.name, w.name);
        }
        total_late += exp.late.len();
        let ctx = format!("{}/{}", s.name, w.name);
        let rows = read_window_rows(&out.join(format!("{}.csv", w.name)));
        failures.extend(compare_windows(&ctx, &exp.rows, &rows, w.lateness));
        let late = read_late_rows(&out.join(format!("{}_late.csv", w.name)));
        failures.extend(compare_late(&format!("{ctx}_late"), &exp.late, &late));
    }
    if s.late_fraction > 0.0 {
        assert!(total_late > 0, "{}: no window has a late element to check", s.name);
    }
    for k in &s.continuous {
        let un = unit_ns(s.unit);
        let (ticks, late) = continuous_oracle(&trades, (k.half_life * un) as f64, un, k.reset);
        if k.reset.is_some() {
            assert!(!late.is_empty(), "{}/{}: no trade of a previous session to check", s.name, k.name);
        }
        total_late += late.len();
        let ctx = format!("{}/{}", s.name, k.name);
        failures.extend(compare_ticks(&ctx, &ticks, &read_tick_rows(&out.join(format!("{}.csv", k.name)))));
        let act_late = read_late_rows(&out.join(format!("{}_late.csv", k.name)));
        failures.extend(compare_late(&format!("{ctx}_late"), &late, &act_late));
    }
    assert!(
        summary.contains(&format!(" {total_late} late,")),
        "{}: the summary should count {total_late} late rows:\n{summary}",
        s.name
    );
    assert!(
        failures.is_empty(),
        "scenario `{}` differs from the oracle:\n{}\nconfig:\n{toml}",
        s.name,
        failures.join("\n")
    );
}

fn tumbling(size: i64, offset: i64, lateness: i64) -> WindowDef {
    WindowDef { name: "tumbling", kind: Kind::Tumbling { size, offset }, lateness }
}
fn sliding(name: &'static str, size: i64, slide: i64, offset: i64, lateness: i64) -> WindowDef {
    WindowDef { name, kind: Kind::Sliding { size, slide, offset }, lateness }
}
fn session(gap: i64, lateness: i64) -> WindowDef {
    WindowDef { name: "session", kind: Kind::Session { gap }, lateness }
}
fn running(name: &'static str, half_life: i64, reset: Option<(i64, i64)>) -> ContinuousDef {
    ContinuousDef { name, half_life, reset }
}

// ------------------------------------------------------------------------------------------------------
// Tests
// ------------------------------------------------------------------------------------------------------

/// No allowed lateness, one worker: tumbling, sliding 25 s / 10 s with an offset, sessions, running VWAP.
#[test]
fn no_lateness_one_worker_spin_then_yield() {
    let mut s = Scenario::base("no_lateness_one_worker", 101);
    s.events = 60_000;
    s.instruments = 40;
    s.span = Some("60s");
    s.disorder_fraction = 0.3;
    s.late_fraction = 0.01;
    s.bound = 800;
    s.windows = vec![tumbling(1000, 0, 0), sliding("sliding", 25_000, 10_000, 3_000, 0), session(150, 0)];
    s.continuous = vec![running("ticks", 1000, None)];
    check(&s);
}

/// Allowed lateness with many elements behind the watermark (bound < disorder): re-fires, windows created
/// late but within the lateness, four workers that park.
#[test]
fn lateness_four_workers_park() {
    let mut s = Scenario::base("lateness_four_workers_park", 202);
    s.events = 60_000;
    s.instruments = 30;
    s.span = Some("60s");
    s.disorder = "3s";
    s.disorder_fraction = 0.3;
    s.late_fraction = 0.01;
    s.bound = 700;
    s.workers = 4;
    s.wait = r#""park""#;
    s.windows = vec![tumbling(1000, 250, 1500), sliding("sliding", 25_000, 10_000, 3_000, 1500), session(150, 1500)];
    s.continuous = vec![running("ticks", 500, None)];
    check(&s);
}

/// Busy-spinning consumers (more threads than the machine may have cores: they must still make progress).
#[test]
fn spin_wait() {
    let mut s = Scenario::base("spin_wait", 303);
    s.events = 20_000;
    s.instruments = 10;
    s.workers = 2;
    s.wait = r#""spin""#;
    s.bound = 500;
    s.windows = vec![tumbling(1000, 0, 400), session(100, 0)];
    s.continuous = vec![running("ticks", 1000, None)];
    check(&s);
}

/// The parity kit's job (tumbling 1 s, sliding 60 s / 10 s, sessions 5 s, bound 2 s, lateness 3 s) with
/// more disorder than the bound, two workers, a different wait strategy per role, and a running VWAP that
/// restarts every 10 s (trades of an older session go to its late output).
#[test]
fn parity_job_lateness_3s_per_role_wait() {
    let mut s = Scenario::base("parity_job_lateness_3s", 404);
    s.events = 50_000;
    // Enough instruments that the rare ones trade more than a session gap apart: sessions close, and late
    // trades within the lateness re-fire them.
    s.instruments = 1000;
    s.span = Some("100s");
    s.disorder = "4s";
    s.disorder_fraction = 0.25;
    s.late_fraction = 0.004;
    s.bound = 2000;
    s.workers = 2;
    s.wait = r#"{ workers = "spin-then-yield", emitter = "park" }"#;
    s.windows = vec![
        tumbling(1000, 0, 3000),
        sliding("sliding", 60_000, 10_000, 0, 3000),
        WindowDef { name: "session", kind: Kind::Session { gap: 5000 }, lateness: 3000 },
    ];
    s.continuous = vec![running("ticks", 2000, None), running("session_vwap", 2000, Some((10_000, 4_000)))];
    check(&s);
}

/// Microsecond timestamps, uniform popularity, three workers behind rings of 8 slots (constant
/// backpressure).
#[test]
fn microseconds_tiny_rings() {
    let mut s = Scenario::base("microseconds_tiny_rings", 505);
    s.events = 30_000;
    s.instruments = 12;
    s.unit = "us";
    s.start = 1_700_000_000_000_000;
    s.span = Some("30s");
    s.zipf = 0.0;
    s.bound = 600_000;
    s.workers = 3;
    s.ring_capacity = Some(8);
    s.windows =
        vec![tumbling(1_000_000, 0, 400_000), sliding("sliding", 2_500_000, 1_000_000, 0, 0), session(40_000, 250_000)];
    s.continuous = vec![running("ticks", 300_000, None)];
    check(&s);
}

/// Timestamps in seconds.
#[test]
fn seconds() {
    let mut s = Scenario::base("seconds", 606);
    s.events = 20_000;
    s.instruments = 25;
    s.unit = "s";
    s.start = 1_700_000_000;
    s.span = Some("20000s");
    s.disorder = "30s";
    s.bound = 10;
    s.workers = 2;
    s.windows = vec![tumbling(60, 0, 0), sliding("sliding", 300, 120, 60, 90), session(20, 30)];
    s.continuous = vec![running("ticks", 60, Some((600, 0)))];
    check(&s);
}

/// The in-process generator with three watermark partitions (the source's watermark is the minimum over
/// them) and an idle timeout that must not change anything while events flow. Its trades are the ones
/// `ticklane gen` writes for the same parameters, which the tick rows confirm.
#[test]
fn synthetic_source_three_partitions() {
    let mut s = Scenario::base("synthetic_three_partitions", 707);
    s.events = 40_000;
    s.instruments = 25;
    s.span = Some("20s");
    s.disorder = "1s";
    s.late_fraction = 0.005;
    s.bound = 300;
    s.workers = 2;
    s.synthetic_partitions = Some(3);
    s.windows = vec![tumbling(1000, 0, 0), sliding("sliding", 25_000, 10_000, 0, 500), session(100, 200)];
    s.continuous = vec![running("ticks", 1000, None)];
    check(&s);
}

/// Several seeds of a small input, lateness on and off, through rings of 4 slots; the one-worker runs write
/// their sinks from the worker itself (`emitter = "inline"`).
#[test]
fn several_seeds() {
    for (i, seed) in [1u64, 2, 3, 4].into_iter().enumerate() {
        let mut s = Scenario::base("several_seeds", seed);
        s.events = 10_000;
        s.span = Some("40s");
        s.instruments = 5 + 5 * i as u32;
        s.bound = [0, 300, 1000, 1500][i];
        s.workers = 1 + i % 2;
        s.ring_capacity = Some(4);
        s.wait = [r#""park""#, r#""spin-then-yield""#][i % 2];
        s.emitter = if s.workers == 1 { "inline" } else { "thread" };
        let l = if i % 2 == 0 { 0 } else { 700 };
        s.windows = vec![tumbling(1000, 0, l), sliding("sliding", 3000, 1000, 0, l), session(200, l)];
        check(&s);
    }
}

/// The largest input: 200,000 trades of 50 instruments over 100 s, every window kind with lateness, four
/// workers.
#[test]
fn large_input_four_workers() {
    let mut s = Scenario::base("large_input_four_workers", 808);
    s.events = 200_000;
    s.instruments = 50;
    s.span = Some("100s");
    s.disorder = "2500ms";
    s.disorder_fraction = 0.25;
    s.late_fraction = 0.002;
    s.bound = 1500;
    s.workers = 4;
    s.windows = vec![
        tumbling(1000, 0, 2000),
        sliding("sliding", 60_000, 10_000, 0, 2000),
        sliding("sliding_odd", 7_000, 3_000, 1_000, 0),
        WindowDef { name: "session", kind: Kind::Session { gap: 300 }, lateness: 1000 },
    ];
    s.continuous = vec![running("ticks", 1000, None)];
    check(&s);
}

/// Nanosecond timestamps that start 20 s before the epoch: negative times, window starts and session
/// resets on both sides of 0 (mathematical modulo).
#[test]
fn nanoseconds_across_the_epoch() {
    let mut s = Scenario::base("nanoseconds_across_the_epoch", 909);
    s.events = 20_000;
    s.instruments = 10;
    s.unit = "ns";
    s.start = -20_000_000_000;
    s.span = Some("40s");
    s.bound = 400_000_000;
    s.workers = 2;
    s.windows = vec![
        tumbling(1_000_000_000, 300_000_000, 0),
        sliding("sliding", 2_500_000_000, 1_000_000_000, 0, 700_000_000),
        session(80_000_000, 0),
    ];
    s.continuous = vec![running("ticks", 500_000_000, Some((3_000_000_000, 1_000_000_000)))];
    check(&s);
}
