//! The NASDAQ TotalView-ITCH 5.0 source: a feed file rebuilt into order books, handing trades and
//! top-of-book quotes to the shards.
//!
//! Per message: the stock directory (`R`) names each stock locate, interned into the pipeline's instrument
//! ids; adds, executions, cancels, deletes and replaces change the books (`src/book/`); executions (`E` at
//! the resting order's price, `C` at its own when printable), non-cross trades (`P`) and crosses (`Q`)
//! become trades (`trades` chooses which); a book change that moves an instrument's best levels or its
//! imbalance becomes a quote; and, when a level stream reads the source, each level a change leaves becomes
//! a level update. What the feed gets wrong — a message cut short, an order the book does not
//! know, an execution larger than the order — is counted and sent to the rejects stream with its byte
//! offset, never a stop.

use super::itch_prefetch::Prefetcher;
use super::{Poll, Source, SourceError, SourceOut};
use crate::book::{BookError, BookSide, Books, Execution, LastQuotes, LevelChange, Update};
use crate::checkpoint::codec::{Dec, DecodeError, Enc};
use crate::checkpoint::manifest::SourcePosition;
use crate::config::{ItchPlan, Schedule};
use crate::event::{Event, KeyId, LevelUpdate, Nanos, Price, Side, Trade, TradeKind};
use crate::itch::{self, ItchFile, Message, SessionClock};
use crate::metrics::{FeedCounter, FeedMetrics};
use crate::moldudp64::{Receiver, ReceiverConfig, Start, Tracker, Verdict};
use crate::record::{RejectReason, RejectRow};
use crate::refdata::{Directory, DirectoryWriter, Listing};
use crate::symbols::Interner;
use std::path::PathBuf;
use std::sync::Arc;

/// Messages per poll.
const BATCH: usize = 1024;
/// First byte of an itch source's part of a checkpoint.
const PART_TAG: u8 = 0x49;
/// No instrument id for a stock locate (its directory message has not come).
const NONE: KeyId = KeyId::MAX;

pub struct ItchSource {
    name: String,
    path: PathBuf,
    input: Input,
    feed: Feed,
    speed: Option<f64>,
    /// Paced: the first message's event time and when it was replayed (monotonic ns).
    first: Option<(Nanos, u64)>,
    /// Paced: a message read but not yet due, with its offset.
    held: Option<(u64, [u8; 64], usize)>,
    /// The file's next messages, prefetched for the books.
    ahead: Prefetcher,
}

/// Where the messages come from.
enum Input {
    /// A sample file: 2-byte lengths before the messages, plain or gzip.
    File(ItchFile),
    /// A live MoldUDP64 stream, its gaps and duplicates tracked (`src/moldudp64/`).
    Udp { rx: Box<Receiver>, tracker: Tracker, ended: bool, gaps_logged: u64, schedule: Option<Schedule> },
}

/// Everything the messages change: books, ids, counters.
struct Feed {
    clock: SessionClock,
    books: Books,
    interner: Interner,
    /// Instrument id by stock locate.
    ids: Vec<KeyId>,
    /// Each instrument's listing from its directory message, for readers elsewhere.
    directory: DirectoryWriter,
    /// The last quote sent per instrument id (to send only changes).
    last: LastQuotes,
    trades: [bool; 256],
    quotes: bool,
    /// Send each book update's level changes (a level stream reads this source).
    levels: bool,
    counters: itch::Counters,
    /// Adds and trades refused because their stock locate had no directory message.
    no_directory: u64,
    /// Messages read (the record index of trades and rejects).
    seq: u64,
    /// The counters above, the books' and the transport's, published for the metrics (`publish`).
    metrics: Arc<FeedMetrics>,
}

impl ItchSource {
    pub fn open(name: &str, plan: &ItchPlan, interner: Interner) -> Result<ItchSource, SourceError> {
        let input = match &plan.listen {
            None => Input::File(
                ItchFile::open(&plan.path)
                    .map_err(|e| SourceError::io(name, format!("opening {}", plan.path.display()), e))?,
            ),
            Some(addr) => {
                let mut rc = ReceiverConfig::new(*addr);
                rc.group = plan.group;
                if let Some(i) = plan.interface {
                    rc.interface = i;
                }
                rc.recv_buffer = Some(plan.recv_buffer);
                let rx = Receiver::bind(&rc).map_err(|e| SourceError::Other {
                    source_name: name.to_string(),
                    message: format!("listening for MoldUDP64 on {addr}: {e}"),
                })?;
                tracing::info!(source = name, %addr, recv_buffer = rx.recv_buffer(), "listening for MoldUDP64");
                Input::Udp {
                    rx: Box::new(rx),
                    tracker: Tracker::new(Start::FirstSeen),
                    ended: false,
                    gaps_logged: 0,
                    schedule: plan.schedule,
                }
            }
        };
        let clock = SessionClock::new(&plan.date, &plan.time_zone).map_err(|e| SourceError::Other {
            source_name: name.to_string(),
            message: format!("the session clock: {e}"),
        })?;
        let mut trades = [false; 256];
        for &t in &plan.trades {
            trades[t as usize] = true;
        }
        let limit = interner.limit();
        let mut books = Books::new(plan.depth, limit.min(KeyId::MAX as usize - 1) as u32);
        // A busy ITCH day peaks around a million live orders: their memory is allocated (not touched) up
        // front, so the books never call the allocator while they replay; the order map itself stays sized
        // by the live orders and grows a little per message (src/book/refmap.rs).
        books.reserve(1 << 20, 256);
        let (_, directory) = Directory::new(limit);
        Ok(ItchSource {
            name: name.to_string(),
            path: plan.path.clone(),
            input,
            feed: Feed {
                clock,
                books,
                interner,
                ids: vec![NONE; 1 << 16],
                directory,
                last: LastQuotes::default(),
                trades,
                quotes: plan.quotes,
                levels: plan.levels,
                counters: itch::Counters::default(),
                no_directory: 0,
                seq: 0,
                metrics: Arc::new(FeedMetrics::default()),
            },
            speed: plan.speed,
            first: None,
            held: None,
            ahead: Prefetcher::new(),
        })
    }
}

/// Paced at `speed`: whether a message of event time `ts` is due, and when; notes the first message's time.
fn due(first: &mut Option<(Nanos, u64)>, speed: Option<f64>, ts: Nanos) -> (bool, u64) {
    let Some(speed) = speed else { return (true, 0) };
    let (t0, m0) = *first.get_or_insert((ts, crate::time::mono_now()));
    let due = m0 + ((ts - t0).max(0) as f64 / speed) as u64;
    (super::wait_briefly(due), due)
}

impl Source for ItchSource {
    fn poll(&mut self, out: &mut SourceOut) -> Result<Poll, SourceError> {
        let r = self.read(out);
        self.publish();
        r
    }

    fn feed_metrics(&self) -> Option<Arc<FeedMetrics>> {
        Some(self.feed.metrics.clone())
    }

    fn directory(&self) -> Option<Arc<Directory>> {
        Some(self.feed.directory.directory().clone())
    }

    fn checkpoint(&mut self, _id: u64, e: &mut Enc) -> Result<SourcePosition, String> {
        let Input::File(file) = &self.input else {
            return Err("a live MoldUDP64 source cannot be checkpointed (no re-request server to fetch the \
                        messages since)"
                .into());
        };
        // A message the pacer holds is not handed over yet: the position is before it.
        let pos = self.held.map_or_else(|| file.position(), |(offset, ..)| offset);
        e.u8(PART_TAG);
        e.u64(pos);
        self.feed.snapshot(e);
        Ok(SourcePosition {
            source: String::new(),
            kind: "itch-file".into(),
            partitions: Vec::new(),
            byte_offset: Some(pos),
            seed: None,
            count: Some(self.feed.seq),
        })
    }

    fn restore(&mut self, d: &mut Dec<'_>) -> Result<(), SourceError> {
        let bad = |e: DecodeError| SourceError::Other {
            source_name: self.name.clone(),
            message: format!("restoring the itch source's state: {e}"),
        };
        let Input::File(file) = &mut self.input else {
            return Err(SourceError::Other {
                source_name: self.name.clone(),
                message: "a live MoldUDP64 source cannot be restored from a checkpoint".into(),
            });
        };
        d.expect_u8("itch source section", PART_TAG).map_err(bad)?;
        let pos = d.u64("itch byte offset").map_err(bad)?;
        self.feed.restore(d).map_err(bad)?;
        let what = if file.is_gzip() { "decompressing again up to" } else { "resuming at" };
        file.resume_at(pos)
            .map_err(|e| SourceError::io(&self.name, format!("{what} byte {pos} of {}", self.path.display()), e))?;
        self.held = None;
        self.first = None;
        self.ahead = Prefetcher::new();
        self.publish();
        Ok(())
    }
}

impl ItchSource {
    /// Copies the counters into the shared [`FeedMetrics`]: a relaxed store each, once per batch.
    fn publish(&self) {
        use FeedCounter as F;
        let f = &self.feed;
        let (m, b, c) = (&f.metrics, f.books.counters(), &f.counters);
        m.set(F::Messages, f.seq);
        m.set(F::UnknownTypes, c.unknown);
        m.set(F::Truncated, c.truncated);
        m.set(F::FramingErrors, c.zero_length + c.truncated_tail + c.io_errors);
        m.set(F::NoDirectory, f.no_directory);
        m.set(F::UnknownReference, b.unknown_reference);
        m.set(F::DuplicateReference, b.duplicate_reference);
        m.set(F::InvalidOrders, b.invalid);
        m.set(F::OverExecutions, b.over_executions);
        m.set(F::Crossed, b.crossed);
        m.set(F::Locked, b.locked);
        m.set(F::LiveOrders, f.books.len() as u64);
        if let Input::Udp { tracker, .. } = &self.input {
            let t = tracker.counters();
            m.set(F::Packets, t.packets);
            m.set(F::Gaps, t.gaps);
            m.set(F::Missing, t.missing);
            m.set(F::Duplicates, t.duplicates);
            m.set(F::OldPackets, t.old);
            m.set(F::StalePackets, t.stale + t.after_end);
            m.set(F::DamagedPackets, t.truncated + t.invalid);
            m.set(F::Sessions, t.sessions);
        }
    }

    fn read(&mut self, out: &mut SourceOut) -> Result<Poll, SourceError> {
        if let Some((offset, buf, len)) = self.held {
            let ts = header_ts(&buf[..len]).map_or(0, |t| self.feed.clock.to_epoch(t));
            let (due, at) = due(&mut self.first, self.speed, ts);
            if !due {
                return Ok(Poll::Idle);
            }
            self.held = None;
            self.feed.message(offset, &buf[..len], at, out)?;
        }
        let file = match &mut self.input {
            Input::File(f) => f,
            Input::Udp { rx, tracker, ended, gaps_logged, schedule } => {
                if *ended {
                    log_session(&self.name, rx, tracker);
                    log_summary(&self.name, &self.feed);
                    return Ok(Poll::Done);
                }
                let feed = &mut self.feed;
                let schedule = *schedule;
                let mut failed = None;
                let n = rx
                    .poll_timed(tracker, 64, |t, received| {
                        // Latency counts from the packet's receipt, or with a schedule from when each message
                        // was due: the host clock read now says how long ago that was.
                        let host_now = schedule.map_or(0, |_| crate::time::host_monotonic_ns());
                        if t.verdict == Verdict::EndOfSession {
                            *ended = true;
                        }
                        for (sequence, msg) in t.messages {
                            if failed.is_none() {
                                let at = match schedule {
                                    None => received,
                                    Some(sc) => {
                                        received.saturating_sub(host_now.saturating_sub(sc.due(sequence))).max(1)
                                    }
                                };
                                // The offset of a live message is its MoldUDP64 sequence number.
                                failed = feed.message(sequence, msg, at, out).err();
                            }
                        }
                    })
                    .map_err(|e| SourceError::Other { source_name: self.name.clone(), message: e.to_string() })?;
                if let Some(e) = failed {
                    return Err(e);
                }
                let c = tracker.counters();
                if c.gaps > *gaps_logged {
                    // The tracker logs each gap's range; the running totals go with the source's name.
                    *gaps_logged = c.gaps;
                    tracing::warn!(source = self.name, gaps = c.gaps, missing = c.missing, "MoldUDP64 messages lost");
                }
                return Ok(if n == 0 { Poll::Idle } else { Poll::More });
            }
        };
        for _ in 0..BATCH {
            self.ahead.step(file.position(), file.buffered(), &self.feed.books, &self.feed.ids);
            let (offset, msg) = match file.next() {
                None => {
                    log_summary(&self.name, &self.feed);
                    return Ok(Poll::Done);
                }
                Some(Ok(m)) => m,
                Some(Err(e)) => {
                    self.feed.counters.frame_error(&e);
                    let row =
                        RejectRow::new(self.feed.seq, RejectReason::BadFeed("ITCH framing"), e.to_string().as_bytes());
                    out.reject(row)?;
                    if matches!(e, itch::FrameError::Io { .. }) {
                        return Err(SourceError::io(
                            &self.name,
                            format!("reading {}", self.path.display()),
                            std::io::Error::other(e.to_string()),
                        ));
                    }
                    continue;
                }
            };
            let at = if self.speed.is_some() {
                let ts = header_ts(msg).map_or(0, |t| self.feed.clock.to_epoch(t));
                let (due, at) = due(&mut self.first, self.speed, ts);
                if !due && msg.len() <= 64 {
                    let mut buf = [0u8; 64];
                    buf[..msg.len()].copy_from_slice(msg);
                    self.held = Some((offset, buf, msg.len()));
                    return Ok(Poll::Idle);
                }
                at
            } else {
                0
            };
            self.feed.message(offset, msg, at, out)?;
        }
        Ok(Poll::More)
    }
}

/// The 6-byte timestamp of a message with the standard header (bytes 5..11), if it is long enough.
fn header_ts(msg: &[u8]) -> Option<u64> {
    let b = msg.get(5..11)?;
    Some(b.iter().fold(0u64, |a, &x| (a << 8) | x as u64))
}

/// The end of a MoldUDP64 session: what the tracker saw, and what the kernel dropped before it could.
fn log_session(name: &str, rx: &Receiver, tracker: &Tracker) {
    let c = tracker.counters();
    let kernel_drops = rx.kernel_drops().map_or(-1, |d| d as i64);
    tracing::info!(
        source = name,
        datagrams = rx.datagrams(),
        packets = c.data,
        messages = c.messages,
        gaps = c.gaps,
        missing = c.missing,
        duplicates = c.duplicates,
        old = c.old,
        kernel_drops,
        "MoldUDP64 session ended"
    );
}

fn log_summary(name: &str, f: &Feed) {
    let c = f.books.counters();
    tracing::info!(
        source = name,
        messages = f.seq,
        unknown_types = f.counters.unknown,
        truncated = f.counters.truncated,
        no_directory = f.no_directory,
        unknown_reference = c.unknown_reference,
        duplicate_reference = c.duplicate_reference,
        invalid_orders = c.invalid,
        over_executions = c.over_executions,
        crossed = c.crossed,
        locked = c.locked,
        live_orders = f.books.len(),
        "ITCH feed ended"
    );
}

impl Feed {
    /// Writes what the messages so far left: the record index, the counters, the instrument of each stock
    /// locate and its listing, the last quotes and the books (docs/checkpoints.md, "An itch source's part").
    fn snapshot(&self, e: &mut Enc) {
        e.u64(self.seq);
        e.u64(self.no_directory);
        let c = &self.counters;
        for v in [c.unknown, c.truncated, c.oversize, c.zero_length, c.truncated_tail, c.io_errors] {
            e.u64(v);
        }
        let kinds = c.by_type.iter().filter(|&&n| n > 0).count();
        e.len_of(kinds);
        for (k, &n) in c.by_type.iter().enumerate().filter(|(_, &n)| n > 0) {
            e.u8(k as u8);
            e.u64(n);
        }
        let locates = self.ids.iter().filter(|&&k| k != NONE).count();
        e.len_of(locates);
        for (locate, &k) in self.ids.iter().enumerate().filter(|(_, &k)| k != NONE) {
            e.u32(locate as u32);
            e.u32(k);
        }
        let dir = self.directory.directory();
        e.len_of(dir.len());
        for (k, l) in dir.iter() {
            e.u32(k);
            for w in l.pack() {
                e.u64(w);
            }
        }
        self.last.snapshot(e);
        self.books.snapshot(e);
    }

    /// Reads back what [`Feed::snapshot`] wrote, into a feed that has read nothing yet.
    fn restore(&mut self, d: &mut Dec<'_>) -> Result<(), DecodeError> {
        let limit = self.interner.limit();
        let key = |d: &mut Dec<'_>, what: &'static str| {
            let at = d.pos();
            let k = d.u32(what)?;
            match (k as usize) < limit {
                true => Ok(k),
                false => Err(DecodeError::Invalid { at, what: format!("{what} {k}: the instrument limit is {limit}") }),
            }
        };
        self.seq = d.u64("messages read")?;
        self.no_directory = d.u64("messages with no directory")?;
        let c = &mut self.counters;
        for v in [
            &mut c.unknown,
            &mut c.truncated,
            &mut c.oversize,
            &mut c.zero_length,
            &mut c.truncated_tail,
            &mut c.io_errors,
        ] {
            *v = d.u64("feed counter")?;
        }
        for _ in 0..d.count(9, "message types")? {
            let k = d.u8("message type")?;
            c.by_type[k as usize] = d.u64("messages of a type")?;
        }
        for _ in 0..d.count(8, "stock locates")? {
            let at = d.pos();
            let locate = d.u32("stock locate")?;
            let slot = self.ids.get_mut(locate as usize).ok_or_else(|| DecodeError::Invalid {
                at,
                what: format!("stock locate {locate} is not a 16-bit number"),
            })?;
            *slot = key(d, "instrument of a stock locate")?;
        }
        for _ in 0..d.count(36, "listings")? {
            let k = key(d, "listed instrument")?;
            let mut w = [0u64; 4];
            for v in &mut w {
                *v = d.u64("listing")?;
            }
            self.directory.set(k, &Listing::unpack(w));
        }
        self.last.restore(d, limit)?;
        self.books.restore(d)
    }

    fn message(&mut self, offset: u64, bytes: &[u8], at: u64, out: &mut SourceOut) -> Result<(), SourceError> {
        let seq = self.seq;
        self.seq += 1;
        let m = match self.counters.decode(bytes) {
            Ok(m) => m,
            Err(e) => return reject(out, seq, offset, &e.to_string(), bytes),
        };
        let ts = m.timestamp().map_or(0, |t| self.clock.to_epoch(t));
        let k = m.stock_locate().map_or(NONE, |l| self.ids[l as usize]);
        let print = |qty: i64, price: Price, kind: TradeKind| Trade {
            ts,
            price,
            qty,
            seq,
            instrument: k,
            side: Side::Unknown,
            kind,
        };
        match m {
            Message::StockDirectory(d) => {
                let sym = itch::trim_alpha(d.stock);
                match self.interner.id(sym) {
                    Some(k) => {
                        self.ids[d.header.stock_locate as usize] = k;
                        self.directory.set(k, &itch::listing(&d));
                    }
                    None => return out.reject(RejectRow::new(seq, RejectReason::TooManyInstruments, sym)),
                }
            }
            Message::AddOrder(_) if k == NONE => {
                self.no_directory += 1;
                return reject(out, seq, offset, "add order for a stock locate with no directory message", bytes);
            }
            Message::Trade(_) | Message::CrossTrade(_) if k == NONE && self.trades[m.kind() as usize] => {
                self.no_directory += 1;
                return reject(out, seq, offset, "trade for a stock locate with no directory message", bytes);
            }
            Message::Trade(p) if self.trades[b'P' as usize] && p.shares > 0 => {
                out.emit(0, Event::Trade(print(p.shares as i64, p.price.to_price(), TradeKind::NonCross)), at)?;
            }
            Message::CrossTrade(q) if self.trades[b'Q' as usize] && q.shares > 0 => {
                let qty = i64::try_from(q.shares).unwrap_or(i64::MAX);
                out.emit(0, Event::Trade(print(qty, q.cross_price.to_price(), TradeKind::Cross)), at)?;
            }
            _ => match apply(&mut self.books, &m, k) {
                None => {}
                Some(Err(e)) => reject(out, seq, offset, &e.to_string(), bytes)?,
                Some(Ok(Applied::Update(u))) => self.applied(u, ts, at, offset, bytes, seq, out)?,
                Some(Ok(Applied::Fill(x))) => {
                    // E prints at the resting order's price, C (when printable) at its own: `fill.price`.
                    let (prints, kind) = match m {
                        Message::OrderExecutedWithPrice(c) => {
                            (c.printable == b'Y' && self.trades[b'C' as usize], TradeKind::ExecutionWithPrice)
                        }
                        _ => (self.trades[b'E' as usize], TradeKind::Execution),
                    };
                    if prints {
                        let f = x.fill;
                        let t = trade(ts, f.price, f.shares, seq, f.instrument, f.side, kind);
                        out.emit(0, Event::Trade(t), at)?;
                    }
                    self.applied(x.update, ts, at, offset, bytes, seq, out)?;
                }
            },
        }
        Ok(())
    }

    /// A book change: its level changes (when asked for), then a quote if the top of book moved; an
    /// over-execution to the rejects.
    #[allow(clippy::too_many_arguments)]
    fn applied(
        &mut self,
        u: Update,
        ts: Nanos,
        at: u64,
        offset: u64,
        bytes: &[u8],
        seq: u64,
        out: &mut SourceOut,
    ) -> Result<(), SourceError> {
        // Applied, but the feed and the book disagree: say where. (A crossed or locked book is only counted:
        // it stays so for many updates, and each would be another reject.)
        if let Some(e) = &u.over_execution {
            reject(out, seq, offset, &e.to_string(), bytes)?;
        }
        if self.levels {
            for c in u.levels() {
                out.emit(0, Event::Level(level(u.instrument, ts, c)), at)?;
            }
        }
        // A change below the top `depth` levels leaves the quote as it was: no need to look.
        if self.quotes && u.touches_top() {
            self.quote(u.instrument, ts, at, out)?;
        }
        Ok(())
    }

    /// Sends `k`'s quote if its best levels or imbalance differ from the last one sent.
    fn quote(&mut self, k: KeyId, ts: Nanos, at: u64, out: &mut SourceOut) -> Result<(), SourceError> {
        match self.last.changed(self.books.quote(k).to_event(k, ts)) {
            Some(q) => out.emit(0, Event::Quote(q), at),
            None => Ok(()),
        }
    }
}

/// What an order message did to the books.
pub enum Applied {
    /// An add, cancel, delete or replace.
    Update(Update),
    /// An execution (E, or C at the message's price).
    Fill(Execution),
}

/// Applies an order message (A, F, E, C, X, D, U) to `books`, a new order going to `instrument`; `None` for
/// the messages that do not change a book. The source and `ticklane book` rebuild books through this.
pub fn apply(books: &mut Books, m: &Message<'_>, instrument: KeyId) -> Option<Result<Applied, BookError>> {
    let update = |r: Result<Update, BookError>| Some(r.map(Applied::Update));
    match *m {
        Message::AddOrder(a) => {
            let side = if a.side == b'B' { BookSide::Bid } else { BookSide::Ask };
            update(books.add(a.order_ref, instrument, side, a.price.to_price(), a.shares as i64))
        }
        Message::OrderExecuted(e) => Some(books.execute(e.order_ref, e.executed_shares as i64).map(Applied::Fill)),
        Message::OrderExecutedWithPrice(c) => Some(
            books.execute_at(c.order_ref, c.executed_shares as i64, c.execution_price.to_price()).map(Applied::Fill),
        ),
        Message::OrderCancel(c) => update(books.cancel(c.order_ref, c.cancelled_shares as i64)),
        Message::OrderDelete(d) => update(books.delete(d.order_ref)),
        Message::OrderReplace(u) => {
            update(books.replace(u.original_ref, u.new_ref, u.price.to_price(), u.shares as i64))
        }
        _ => None,
    }
}

/// A level change of `instrument`'s book as the pipeline carries it.
#[inline]
fn level(instrument: KeyId, ts: Nanos, c: &LevelChange) -> LevelUpdate {
    let side = match c.side {
        BookSide::Bid => Side::Buy,
        BookSide::Ask => Side::Sell,
    };
    LevelUpdate { ts, price: c.price, shares: c.shares, instrument, orders: c.orders, side }
}

fn trade(ts: Nanos, price: Price, qty: i64, seq: u64, instrument: KeyId, resting: BookSide, kind: TradeKind) -> Trade {
    // The resting order's side is the passive one: an execution against a bid is a sell.
    let side = match resting {
        BookSide::Bid => Side::Sell,
        BookSide::Ask => Side::Buy,
    };
    Trade { ts, price, qty, seq, instrument, side, kind }
}

/// A message the feed got wrong, to the rejects stream: the record index, and a text naming the byte offset,
/// what is wrong and the message's bytes in hex.
fn reject(out: &mut SourceOut, seq: u64, offset: u64, what: &str, bytes: &[u8]) -> Result<(), SourceError> {
    let mut text = [0u8; RejectRow::TEXT];
    let mut w = std::io::Cursor::new(&mut text[..]);
    use std::io::Write;
    let _ = write!(w, "offset {offset}: {what}: ");
    for b in bytes.iter().take(48) {
        let _ = write!(w, "{b:02x}");
    }
    let n = w.position() as usize;
    out.reject(RejectRow::new(seq, RejectReason::BadFeed("ITCH message"), &text[..n]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::symbols::Symbols;

    /// A source over a small feed file (its first message read, so the position is past it), with books,
    /// ids, a listing, a last quote and counters set as messages would set them.
    fn source(dir: &std::path::Path) -> ItchSource {
        let path = dir.join("feed.itch");
        // Two frames: a system event (`S`) and a zero-length one.
        let mut feed = vec![0u8, 12, b'S'];
        feed.extend_from_slice(&[0; 11]);
        feed.extend_from_slice(&[0, 0]);
        std::fs::write(&path, &feed).unwrap();
        let plan = ItchPlan {
            path,
            speed: None,
            date: "2024-01-02".into(),
            time_zone: itch::DEFAULT_TZ.into(),
            depth: 5,
            trades: vec![b'E', b'C', b'P', b'Q'],
            quotes: true,
            levels: false,
            listen: None,
            group: None,
            interface: None,
            recv_buffer: 0,
            schedule: None,
        };
        ItchSource::open("feed", &plan, Interner::new(Symbols::new(), 16)).unwrap()
    }

    fn fill(s: &mut ItchSource) {
        let Input::File(file) = &mut s.input else { unreachable!() };
        assert!(matches!(file.next(), Some(Ok(_))));
        let f = &mut s.feed;
        let k = f.interner.id(b"AAA").unwrap();
        f.ids[7] = k;
        f.directory.set(k, &Listing { symbol: *b"AAA     ", round_lot_size: 100, ..Listing::default() });
        let p = Price::from_units;
        f.books.add(1, k, BookSide::Bid, p(10), 100).unwrap();
        f.books.add(2, k, BookSide::Bid, p(10), 50).unwrap();
        f.books.add(3, k, BookSide::Ask, p(11), 70).unwrap();
        f.last.changed(f.books.quote(k).to_event(k, 5));
        f.counters.by_type[b'A' as usize] = 3;
        f.counters.unknown = 2;
        f.no_directory = 1;
        f.seq = 6;
    }

    fn part(s: &mut ItchSource) -> Vec<u8> {
        let mut e = Enc::new();
        let pos = s.checkpoint(1, &mut e).unwrap();
        assert_eq!((pos.kind.as_str(), pos.byte_offset, pos.count), ("itch-file", Some(14), Some(6)));
        e.into_vec()
    }

    #[test]
    fn a_restored_source_writes_the_same_part() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = source(dir.path());
        fill(&mut a);
        let bytes = part(&mut a);
        let mut b = source(dir.path());
        let mut d = Dec::new(&bytes);
        b.restore(&mut d).unwrap();
        d.finish().unwrap();
        assert_eq!(part(&mut b), bytes);
        assert_eq!(b.feed.ids[7], a.feed.ids[7]);
        assert_eq!(b.feed.directory.directory().get(0).map(|l| l.round_lot_size), Some(100));
        // The last quote came back: the same book gives no new quote, a change does.
        let q = b.feed.books.quote(0).to_event(0, 9);
        assert!(b.feed.last.changed(q).is_none());
        b.feed.books.delete(2).unwrap();
        assert!(b.feed.last.changed(b.feed.books.quote(0).to_event(0, 9)).is_some());
        // The reader goes on at the zero-length frame after the first message.
        let Input::File(file) = &mut b.input else { unreachable!() };
        assert!(matches!(file.next(), Some(Err(itch::FrameError::ZeroLength { offset: 14 }))));
    }

    #[test]
    fn a_damaged_part_is_refused_naming_the_source() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = source(dir.path());
        fill(&mut a);
        let bytes = part(&mut a);
        // One source restored again and again (a fresh one each time costs its books' reserve): a restore
        // replaces all that the part holds, and a plain file is entered at any offset.
        let mut s = source(dir.path());
        let mut restore = |b: &[u8]| s.restore(&mut Dec::new(b)).map_err(|e| e.to_string());
        // Cut anywhere: an error naming the source and where the bytes ran out.
        for n in 0..bytes.len() {
            let e = restore(&bytes[..n]).expect_err("a cut part restores");
            let what = e.contains("truncated") || e.contains("cannot fit");
            assert!(e.contains("source `feed`") && what, "cut at {n}: {e}");
        }
        // Any byte changed: an error naming the source, or a state that restores (a price, a count of shares);
        // never a panic.
        let mut refused = 0;
        for i in 0..bytes.len() {
            for x in [0x01, 0x80, 0xff] {
                let mut b = bytes.clone();
                b[i] ^= x;
                if let Err(e) = restore(&b) {
                    assert!(e.contains("source `feed`"), "byte {i} ^ {x:#x}: {e}");
                    refused += 1;
                }
            }
        }
        // Counters and prices take any value; tags, counts, ids, order shares and the position do not.
        assert!(refused > bytes.len() / 4, "only {refused} of {} damaged parts refused", 3 * bytes.len());
        // Named faults.
        let e = restore(&[0x48]).unwrap_err();
        assert!(e.contains("itch source section"), "{e}");
        let mut b = bytes.clone();
        b[1..9].copy_from_slice(&1000u64.to_le_bytes());
        let e = restore(&b).unwrap_err();
        assert!(e.contains("byte 1000") && e.contains("feed.itch"), "{e}");
    }
}
