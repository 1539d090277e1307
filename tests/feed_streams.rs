//! Pass-through streams of an ITCH feed (`[[stream]]`): its L2 level updates, quotes and trades written as rows,
//! checked against a reference book computed here from the messages with plain maps, and the configuration's
//! refusals.

mod common;

use common::{fixed9, int, toml_path, Table};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use ticklane::itch::{self, Message, SessionClock};

const DATE: &str = "2026-11-26";
/// The source's default imbalance depth.
const DEPTH: usize = 5;

/// A level row: ts, symbol, side (`B`/`S`), price (raw 10⁻⁹), shares, orders.
type LevelRow = (i64, String, String, i128, i64, u32);
/// Levels by (symbol, side, price): shares, orders.
type L2 = BTreeMap<(String, String, i128), (i64, u32)>;
/// A quote row: ts, symbol, bid, bid_qty, ask, ask_qty, mid, spread, microprice, imbalance (absent: `None`).
type QuoteRow =
    (i64, String, Option<i128>, i64, Option<i128>, i64, Option<i128>, Option<i128>, Option<i128>, Option<i128>);

/// A top of book: best bid and best ask (price, shares), the imbalance.
type Top = (Option<(i128, i64)>, Option<(i128, i64)>, Option<i128>);

/// `num / den` rounded half away from zero (ticklane's `Price::from_ratio`).
fn ratio(num: i128, den: i128) -> i128 {
    let (q, r) = (num / den, num % den);
    q + if 2 * r.abs() >= den { num.signum() } else { 0 }
}

/// What the reference expects, and the book at some points of the stream.
struct Reference {
    levels: Vec<LevelRow>,
    quotes: Vec<QuoteRow>,
    /// (level rows so far, the book then), at several points and at the end.
    books: Vec<(usize, L2)>,
    trades: usize,
}

/// The level rows and quotes the feed's messages make, from a map of orders and a map of levels.
fn reference(path: &Path) -> Reference {
    let clock = SessionClock::new(DATE, itch::DEFAULT_TZ).unwrap();
    let bytes = std::fs::read(path).unwrap();
    let mut names: HashMap<u16, String> = HashMap::new();
    // Reference → (symbol, side, price, shares).
    let mut orders: HashMap<u64, (String, String, i128, i64)> = HashMap::new();
    let mut book: L2 = BTreeMap::new();
    let mut last: HashMap<String, Top> = HashMap::new();
    let mut r = Reference { levels: Vec::new(), quotes: Vec::new(), books: Vec::new(), trades: 0 };
    // Adds `shares` and `orders` to a level, returning its row (a level left empty is gone).
    let change = |book: &mut L2, ts: i64, sym: &str, side: &str, price: i128, shares: i64, orders: i64| {
        let key = (sym.to_string(), side.to_string(), price);
        let l = book.entry(key.clone()).or_insert((0, 0));
        l.0 += shares;
        l.1 = (l.1 as i64 + orders) as u32;
        let row = (ts, sym.to_string(), side.to_string(), price, l.0, l.1);
        assert!(l.0 >= 0 && (l.0 == 0) == (l.1 == 0), "reference level {key:?} = {l:?}");
        if l.0 == 0 {
            book.remove(&key);
        }
        row
    };
    for (i, f) in itch::frames(&bytes).enumerate() {
        let (_, m) = f.unwrap();
        let m = itch::decode(m).unwrap();
        let ts = m.timestamp().map_or(0, |t| clock.to_epoch(t));
        let n = r.levels.len();
        // Takes `shares` off a live order (all of them: `None`), and the order if none are left.
        let take =
            |book: &mut L2, orders: &mut HashMap<u64, (String, String, i128, i64)>, rf: u64, shares: Option<i64>| {
                let o = orders.get_mut(&rf).expect("a live order");
                let n = shares.unwrap_or(o.3);
                o.3 -= n;
                let (sym, side, price, left) = o.clone();
                if left == 0 {
                    orders.remove(&rf);
                }
                (sym.clone(), change(book, ts, &sym, &side, price, -n, if left == 0 { -1 } else { 0 }))
            };
        let sym = match m {
            Message::StockDirectory(d) => {
                names.insert(d.header.stock_locate, String::from_utf8(itch::trim_alpha(d.stock).to_vec()).unwrap());
                None
            }
            Message::AddOrder(a) => {
                let sym = names[&a.header.stock_locate].clone();
                let side = if a.side == b'B' { "B" } else { "S" };
                let price = a.price.to_price().0 as i128;
                orders.insert(a.order_ref, (sym.clone(), side.into(), price, a.shares as i64));
                r.levels.push(change(&mut book, ts, &sym, side, price, a.shares as i64, 1));
                Some(sym)
            }
            Message::OrderExecuted(e) => {
                let (sym, row) = take(&mut book, &mut orders, e.order_ref, Some(e.executed_shares as i64));
                r.levels.push(row);
                r.trades += 1;
                Some(sym)
            }
            Message::OrderExecutedWithPrice(c) => {
                let (sym, row) = take(&mut book, &mut orders, c.order_ref, Some(c.executed_shares as i64));
                r.levels.push(row);
                r.trades += (c.printable == b'Y') as usize;
                Some(sym)
            }
            Message::OrderCancel(x) => {
                let (sym, row) = take(&mut book, &mut orders, x.order_ref, Some(x.cancelled_shares as i64));
                r.levels.push(row);
                Some(sym)
            }
            Message::OrderDelete(d) => {
                let (sym, row) = take(&mut book, &mut orders, d.order_ref, None);
                r.levels.push(row);
                Some(sym)
            }
            Message::OrderReplace(u) => {
                let (sym, old) = take(&mut book, &mut orders, u.original_ref, None);
                let (side, price) = (old.2.clone(), u.price.to_price().0 as i128);
                orders.insert(u.new_ref, (sym.clone(), side.clone(), price, u.shares as i64));
                let new = change(&mut book, ts, &sym, &side, price, u.shares as i64, 1);
                // At another price the old level changed first; at the same one, one change of that level.
                if old.3 != price {
                    r.levels.push(old);
                }
                r.levels.push(new);
                Some(sym)
            }
            Message::Trade(p) => {
                r.trades += (p.shares > 0) as usize;
                None
            }
            Message::CrossTrade(q) => {
                r.trades += (q.shares > 0) as usize;
                None
            }
            _ => None,
        };
        if let Some(sym) = sym {
            assert!(r.levels.len() > n, "a book change without a level row: {m:?}");
            // The quote after the change, if it is not the one sent last.
            let side = |s: &str| {
                let mut v: Vec<(i128, i64)> = book
                    .range((sym.clone(), s.to_string(), i128::MIN)..=(sym.clone(), s.to_string(), i128::MAX))
                    .map(|(k, l)| (k.2, l.0))
                    .collect();
                if s == "B" {
                    v.reverse();
                }
                v
            };
            let (bids, asks) = (side("B"), side("S"));
            let depth = |v: &[(i128, i64)]| v.iter().take(DEPTH).map(|l| l.1 as i128).sum::<i128>();
            let (bd, ad) = (depth(&bids), depth(&asks));
            let imbalance = (bd + ad > 0).then(|| ratio((bd - ad) * 1_000_000_000, bd + ad));
            let q = (bids.first().copied(), asks.first().copied(), imbalance);
            if last.get(&sym) != Some(&q) {
                last.insert(sym.clone(), q);
                let both = q.0.zip(q.1);
                r.quotes.push((
                    ts,
                    sym,
                    q.0.map(|b| b.0),
                    q.0.map_or(0, |b| b.1),
                    q.1.map(|a| a.0),
                    q.1.map_or(0, |a| a.1),
                    both.map(|(b, a)| ratio(b.0 + a.0, 2)),
                    both.map(|(b, a)| a.0 - b.0),
                    both.map(|(b, a)| ratio(b.0 * a.1 as i128 + a.0 * b.1 as i128, (b.1 + a.1) as i128)),
                    imbalance,
                ));
            }
        }
        if i % 40_000 == 39_999 {
            r.books.push((r.levels.len(), book.clone()));
        }
    }
    r.books.push((r.levels.len(), book));
    r
}

fn opt(s: &str) -> Option<i128> {
    (!s.is_empty()).then(|| fixed9(s))
}

fn level_rows(t: &Table) -> Vec<LevelRow> {
    assert_eq!(t.header, ["ts", "symbol", "side", "price", "shares", "orders"]);
    t.rows
        .iter()
        .map(|r| (int(&r[0]), r[1].clone(), r[2].clone(), fixed9(&r[3]), int(&r[4]), int(&r[5]) as u32))
        .collect()
}

fn quote_rows(t: &Table) -> Vec<QuoteRow> {
    assert_eq!(
        t.header,
        ["ts", "symbol", "bid", "bid_qty", "ask", "ask_qty", "mid", "spread", "microprice", "imbalance"]
    );
    t.rows
        .iter()
        .map(|r| {
            (
                int(&r[0]),
                r[1].clone(),
                opt(&r[2]),
                int(&r[3]),
                opt(&r[4]),
                int(&r[5]),
                opt(&r[6]),
                opt(&r[7]),
                opt(&r[8]),
                opt(&r[9]),
            )
        })
        .collect()
}

/// The book the level rows alone rebuild.
fn rebuild(rows: &[LevelRow]) -> L2 {
    let mut book = L2::new();
    for (_, sym, side, price, shares, orders) in rows {
        let key = (sym.clone(), side.clone(), *price);
        if *shares == 0 {
            assert_eq!(*orders, 0, "a removed level with orders: {key:?}");
            assert!(book.remove(&key).is_some(), "a level removed that was not there: {key:?}");
        } else {
            book.insert(key, (*shares, *orders));
        }
    }
    book
}

fn job(feed: &Path, out: &Path) -> String {
    format!(
        r#"
{head}[[stream]]
name = "levels"
input = "feed"
events = "level"
[[stream]]
name = "quotes"
events = "quote"
[[stream]]
name = "trades"
events = "trade"
[[window]]
name = "imbalance"
type = "tumbling"
size = "1m"
value = "imbalance"
aggregates = ["count"]
[[sink]]
stream = "levels"
type = "csv"
path = {levels}
[[sink]]
stream = "quotes"
type = "csv"
path = {quotes}
[[sink]]
stream = "trades"
type = "jsonl"
path = {trades}
[[sink]]
stream = "imbalance"
type = "csv"
path = {windows}
[[sink]]
stream = "imbalance_late"
type = "csv"
path = {late}
"#,
        head = common::itch_source(DATE, &format!("path = {}", toml_path(feed))),
        levels = toml_path(&out.join("levels.csv")),
        quotes = toml_path(&out.join("quotes.csv")),
        trades = toml_path(&out.join("trades.jsonl")),
        windows = toml_path(&out.join("imbalance.csv")),
        late = toml_path(&out.join("late.csv")),
    )
}

#[test]
fn level_and_quote_rows_are_the_reference_books_changes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let feed = d.join("day.itch");
    let args = ["itch-gen", "--out", feed.to_str().unwrap(), "--messages", "150000", "--stocks", "6", "--seed", "11"];
    common::ticklane_ok(&[&args[..], &["--date", DATE]].concat(), d);
    let out = d.join("out");
    common::run_config(d, "job.toml", &job(&feed, &out));
    let want = reference(&feed);

    // Level rows: exactly the reference's changes, in order (one shard, one source), a replace that moves an
    // order giving the old level first; and the rows alone rebuild the book at every point checked.
    let levels = level_rows(&Table::read(&out.join("levels.csv")));
    assert!(levels.len() > 100_000, "{} level rows", levels.len());
    assert_eq!(levels.len(), want.levels.len());
    for (i, (got, w)) in levels.iter().zip(&want.levels).enumerate() {
        assert_eq!(got, w, "level row {i}");
    }
    assert!(want.books.len() > 3);
    for (n, book) in &want.books {
        assert!(!book.is_empty());
        assert_eq!(&rebuild(&levels[..*n]), book, "the book rebuilt from the first {n} level rows");
    }

    // Quote rows: the reference's top of book after each change that moved it, with its derived metrics.
    let quotes = quote_rows(&Table::read(&out.join("quotes.csv")));
    assert!(quotes.len() > 10_000, "{} quotes", quotes.len());
    assert_eq!(quotes.len(), want.quotes.len());
    for (i, (got, w)) in quotes.iter().zip(&want.quotes).enumerate() {
        assert_eq!(got, w, "quote row {i}");
    }
    assert!(quotes.iter().any(|q| q.2.is_none()) && quotes.iter().any(|q| q.6.is_some()), "one- and two-sided");

    // The quotes a window of imbalances reads are the quote rows: per symbol and minute, its count is the
    // number of quote rows with an imbalance.
    assert_eq!(Table::read(&out.join("late.csv")).rows.len(), 0, "no quote is late");
    let mut counted: BTreeMap<(String, i64), i64> = BTreeMap::new();
    for q in quotes.iter().filter(|q| q.9.is_some()) {
        *counted.entry((q.1.clone(), q.0 - q.0.rem_euclid(60_000_000_000))).or_default() += 1;
    }
    let windows = Table::read(&out.join("imbalance.csv"));
    let (sym, start, count) = (windows.col("symbol"), windows.col("window_start"), windows.col("count"));
    let read: BTreeMap<(String, i64), i64> =
        windows.rows.iter().map(|r| ((r[sym].clone(), int(&r[start])), int(&r[count]))).collect();
    assert!(read.len() > 100);
    assert_eq!(read, counted);

    // Trade rows: one per print, with the trade columns of a feed (its kind).
    let trades = std::fs::read_to_string(out.join("trades.jsonl")).unwrap();
    assert_eq!(trades.lines().count(), want.trades);
    let first = trades.lines().next().unwrap();
    let keys: Vec<&str> = first.split(',').map(|f| f.split('"').nth(1).unwrap()).collect();
    assert_eq!(keys, ["ts", "symbol", "price", "qty", "side", "trade_kind", "seq"], "{first}");
}

/// A job with an itch source, a csv source and the given tables after them.
fn config(tables: &str) -> String {
    format!(
        r#"
[[source]]
name = "feed"
type = "itch"
date = "{DATE}"
path = "day.itch"
[[source]]
name = "file"
type = "csv"
path = "trades.csv"
ts_unit = "ns"
[[window]]
name = "bars"
type = "tumbling"
size = "1s"
{tables}"#
    )
}

/// The one error `toml` gets, as printed.
fn error(toml: &str) -> String {
    match ticklane::config::parse(toml, "job.toml") {
        Ok(_) => panic!("accepted:\n{toml}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn the_configuration_refuses_streams_it_cannot_make_or_write() {
    let unknown = error(&config("[[stream]]\nname = \"q\"\ninput = \"feed\"\nevents = \"quotes\"\n"));
    assert!(
        unknown.contains("key `stream[0].events`: unknown events `quotes` (one of: trade, quote, level)"),
        "{unknown}"
    );
    assert!(unknown.starts_with("job.toml:19:"), "the line of the key: {unknown}");
    for events in ["quote", "level"] {
        let e = error(&config(&format!("[[stream]]\nname = \"q\"\ninput = \"file\"\nevents = \"{events}\"\n")));
        assert!(
            e.contains(&format!(
                "key `stream[0].input`: source `file` is a csv source: only itch sources have {events}s"
            )),
            "{e}"
        );
    }
    // Reading every source, one of them an itch source: its quotes; with no itch source at all, refused.
    ticklane::config::parse(&config("[[stream]]\nname = \"q\"\nevents = \"level\"\n"), "job.toml").unwrap();
    let none = error(
        "[[source]]\nname = \"file\"\ntype = \"csv\"\npath = \"t.csv\"\n[[stream]]\nname = \"q\"\nevents = \"quote\"\n",
    );
    assert!(none.contains("key `stream[0].input`: no source is an itch source"), "{none}");
    let taken = error(&config("[[stream]]\nname = \"bars_late\"\nevents = \"trade\"\n"));
    assert!(taken.contains("key `stream[0].name`: stream name `bars_late` is already used"), "{taken}");
    let off = error(
        &config("[[stream]]\nname = \"q\"\ninput = \"feed\"\nevents = \"quote\"\n")
            .replace("type = \"itch\"", "type = \"itch\"\nquotes = false"),
    );
    assert!(off.contains("source `feed` has quotes = false"), "{off}");
    // Sinks that cannot take the rows say which stream.
    let pg = error(&config(
        "[[stream]]\nname = \"q\"\ninput = \"feed\"\nevents = \"quote\"\n[[sink]]\nstream = \"q\"\ntype = \"postgres\"\n\
         postgres = { connect = \"host=localhost user=t dbname=t\", table = \"q\" }\n",
    ));
    assert!(pg.contains("stream `q` has no window bounds"), "{pg}");
    let binary = error(&config(
        "[[stream]]\nname = \"l\"\ninput = \"feed\"\nevents = \"level\"\n[[sink]]\nstream = \"l\"\ntype = \"kafka\"\n\
         topic = \"l\"\nformat = \"binary\"\nkafka = { \"bootstrap.servers\" = \"localhost:9092\" }\n",
    ));
    assert!(binary.contains("key `sink[0].format`: stream `l` is a level stream: binary records"), "{binary}");
    // A trade stream in binary records is the input format's trade record.
    ticklane::config::parse(
        &config(
            "[[stream]]\nname = \"t\"\nevents = \"trade\"\n[[sink]]\nstream = \"t\"\ntype = \"kafka\"\ntopic = \"t\"\n\
             format = \"binary\"\nkafka = { \"bootstrap.servers\" = \"localhost:9092\" }\n",
        ),
        "job.toml",
    )
    .unwrap();
}

/// An influxdb sink maps quote rows to points of their symbol, and level rows to points of their symbol, side
/// and price (two levels changed at one time stay two points), at `ts`.
#[test]
fn influxdb_points_of_quotes_and_levels() {
    use ticklane::sink::Column;
    let sink = |stream: &str| {
        let toml = config(&format!(
            "[[stream]]\nname = \"quotes\"\ninput = \"feed\"\nevents = \"quote\"\n[[stream]]\nname = \"levels\"\n\
             input = \"feed\"\nevents = \"level\"\n[[sink]]\nstream = \"{stream}\"\ntype = \"influxdb\"\n\
             influxdb = {{ url = \"http://127.0.0.1:8086\", database = \"d\" }}\n"
        ));
        let plan = ticklane::config::parse(&toml, "job.toml").unwrap();
        let p = plan.sinks[0].influxdb.clone().unwrap();
        (p.tags, p.time, p.fields)
    };
    let (tags, time, fields) = sink("quotes");
    assert_eq!((tags, time), (vec![Column::Symbol], Column::Ts));
    assert_eq!(fields.len(), 8, "{fields:?}");
    let (tags, time, fields) = sink("levels");
    assert_eq!((tags, time), (vec![Column::Symbol, Column::Side, Column::Price], Column::Ts));
    assert_eq!(fields, [Column::Shares, Column::Orders]);
}

/// Only the sources a level stream reads make level updates.
#[test]
fn levels_are_made_for_the_sources_a_level_stream_reads() {
    use ticklane::config::SourceKindPlan;
    let levels = |toml: &str| -> Vec<bool> {
        let plan = ticklane::config::parse(toml, "job.toml").unwrap();
        plan.sources
            .iter()
            .filter_map(|s| match &s.kind {
                SourceKindPlan::Itch(p) => Some(p.levels),
                _ => None,
            })
            .collect()
    };
    assert_eq!(levels(&config("")), [false]);
    assert_eq!(levels(&config("[[stream]]\nname = \"q\"\ninput = \"feed\"\nevents = \"quote\"\n")), [false]);
    assert_eq!(levels(&config("[[stream]]\nname = \"l\"\ninput = \"feed\"\nevents = \"level\"\n")), [true]);
}
