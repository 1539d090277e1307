//! A seeded, deterministic generator of internally consistent ITCH 5.0 sample files (`ticklane itch-gen`).
//!
//! The file is a trading day in miniature: system events and reference data at 09:30 local time, then
//! an order flow per stock around a random-walk price, then the closing crosses and end-of-day events. The
//! flow keeps the rules a book builder relies on: only live orders are executed, cancelled, deleted or
//! replaced, never for more shares than remain; order references are unique; every bid is below every ask
//! of its stock (the book is never crossed or locked). `faults` breaks them on purpose, at a known rate, for
//! testing a reader's sanity counters. Memory is bounded by the live orders (at most [`MAX_LIVE_PER_STOCK`]
//! per stock); messages go straight to the writer through one reused buffer. docs/formats.md describes the mix.

use super::encode::encode_framed;
use super::msg::*;
use std::collections::BTreeMap;
use std::io::{self, Write};

/// Generator parameters.
#[derive(Clone, Debug)]
pub struct GenParams {
    /// Messages in the file, everything included (at least [`overhead`] of the stock count).
    pub messages: u64,
    pub seed: u64,
    /// Securities, with locate codes 1 to `stocks`.
    pub stocks: u16,
    /// The first timestamp (ns since midnight): 09:30 local ([`super::SessionClock::local_time`]).
    pub start: u64,
    /// The end of the continuous session (16:00 local): the flow's timestamps are below it.
    pub end: u64,
    /// Probability, per flow message, of a fault instead (0 to 1).
    pub faults: f64,
}

/// What a generated file holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GenSummary {
    pub messages: u64,
    pub bytes: u64,
    /// Messages by type byte (fault messages included, unknown types too).
    pub by_type: Box<[u64; 256]>,
    /// Faults injected, by kind.
    pub unknown_type_faults: u64,
    pub unknown_ref_faults: u64,
    pub overfill_faults: u64,
    /// Live orders at the end, and the most at any time.
    pub live_at_end: u64,
    pub max_live: u64,
    pub first_ts: u64,
    pub last_ts: u64,
}

impl GenSummary {
    pub fn faults(&self) -> u64 {
        self.unknown_type_faults + self.unknown_ref_faults + self.overfill_faults
    }
}

/// Live orders a stock may have; at this many, an add becomes a delete.
pub const MAX_LIVE_PER_STOCK: usize = 2_000;

/// Fault order references have this bit set; real ones count up from 1 and never reach it.
pub const FAULT_REF_BIT: u64 = 1 << 63;

/// Type bytes the unknown-type fault uses: none is defined by ITCH 5.0.
pub const UNKNOWN_KINDS: &[u8; 6] = b"GMTZaz";

/// Market participants used for attribution (`F`) and positions (`L`).
pub const MPIDS: [&[u8; 4]; 8] = [b"GSCO", b"MSCO", b"JPMS", b"UBSS", b"CDRG", b"VIRT", b"NITE", b"SUSQ"];

/// Messages written besides the flow: `S O`, per stock `R H Y L`, `V`, `S S`, `S Q`, per stock the opening
/// cross `Q`; then per stock the closing cross `Q`, and `S M`, `S E`, `S C`.
pub const fn overhead(stocks: u16) -> u64 {
    7 + 6 * stocks as u64
}

/// The symbol of the stock with index `i` (locate `i + 1`): four letters, unique for every `u16`.
pub fn symbol(i: u16) -> [u8; 8] {
    let mut s = *b"        ";
    let mut v = i as u32;
    for k in (0..4).rev() {
        s[k] = b'A' + (v % 26) as u8;
        v /= 26;
    }
    s
}

const TICK: u32 = 100; // 0.01 in Price(4)
const MIN_MID: u32 = 10_000; // 1.00
const MAX_MID: u32 = 1_000_000_000; // 100,000.00

#[derive(Clone, Copy, Debug)]
struct Live {
    order_ref: u64,
    side: u8,
    price: u32,
    shares: u32,
}

struct StockState {
    symbol: [u8; 8],
    mid: u32,
    orders: Vec<Live>,
    /// Live orders per price, per side: the best bid and ask in O(log n).
    bids: BTreeMap<u32, u32>,
    asks: BTreeMap<u32, u32>,
}

impl StockState {
    fn levels(&mut self, side: u8) -> &mut BTreeMap<u32, u32> {
        if side == b'B' {
            &mut self.bids
        } else {
            &mut self.asks
        }
    }

    fn level_add(&mut self, side: u8, price: u32) {
        *self.levels(side).entry(price).or_insert(0) += 1;
    }

    fn level_remove(&mut self, side: u8, price: u32) {
        let levels = self.levels(side);
        if let Some(n) = levels.get_mut(&price) {
            *n -= 1;
            if *n == 0 {
                levels.remove(&price);
            }
        }
    }

    /// A price for a new or replaced order `ticks` away from the mid, moved if needed so that bids stay below
    /// every ask and asks above every bid.
    fn price_for(&self, side: u8, ticks: u32) -> u32 {
        if side == b'B' {
            let p = self.mid.saturating_sub(ticks * TICK).max(TICK);
            match self.asks.first_key_value() {
                Some((&ask, _)) => p.min(ask - TICK),
                None => p,
            }
        } else {
            let p = self.mid + ticks * TICK;
            match self.bids.last_key_value() {
                Some((&bid, _)) => p.max(bid + TICK),
                None => p,
            }
        }
    }
}

struct Sink<W: Write> {
    out: W,
    buf: Vec<u8>,
    summary: GenSummary,
}

impl<W: Write> Sink<W> {
    fn emit(&mut self, m: &Message<'_>) -> io::Result<()> {
        self.buf.clear();
        encode_framed(m, &mut self.buf);
        self.out.write_all(&self.buf)?;
        let s = &mut self.summary;
        s.messages += 1;
        s.bytes += self.buf.len() as u64;
        s.by_type[m.kind() as usize] += 1;
        if let Some(ts) = m.timestamp() {
            if s.messages == 1 {
                s.first_ts = ts;
            }
            s.last_ts = ts;
        }
        Ok(())
    }
}

/// Writes a file of `p.messages` framed messages to `out` (wrap it in a `BufWriter`, and a gzip encoder if
/// wanted) and says what it holds. The same parameters give the same bytes.
pub fn generate<W: Write>(p: &GenParams, out: W) -> io::Result<GenSummary> {
    let over = overhead(p.stocks);
    if p.stocks == 0 || p.messages < over {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} stocks need at least {over} messages (given {})", p.stocks, p.messages),
        ));
    }
    if !(0.0..=1.0).contains(&p.faults) || p.end <= p.start {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "faults must be in [0, 1] and end after start"));
    }
    let mut g = Gen::new(p, out);
    g.header()?;
    let flow = p.messages - over;
    let span = p.end - p.start;
    let step = (span / flow.max(1)).max(1);
    for i in 0..flow {
        let base = p.start + (i as u128 * span as u128 / flow as u128) as u64;
        g.ts = (base + g.rng.u64(0..step)).min(p.end - 1).max(g.ts);
        g.flow_message()?;
    }
    g.trailer()?;
    g.sink.out.flush()?;
    let mut s = g.sink.summary;
    s.live_at_end = g.live as u64;
    s.max_live = g.max_live as u64;
    Ok(s)
}

struct Gen<'p, W: Write> {
    p: &'p GenParams,
    rng: fastrand::Rng,
    stocks: Vec<StockState>,
    sink: Sink<W>,
    ts: u64,
    next_ref: u64,
    next_match: u64,
    next_fault_ref: u64,
    live: usize,
    max_live: usize,
}

impl<'p, W: Write> Gen<'p, W> {
    fn new(p: &'p GenParams, out: W) -> Self {
        let mut rng = fastrand::Rng::with_seed(p.seed);
        let stocks = (0..p.stocks)
            .map(|i| StockState {
                symbol: symbol(i),
                mid: rng.u32(10..=500) * 10_000 + rng.u32(0..100) * TICK,
                orders: Vec::new(),
                bids: BTreeMap::new(),
                asks: BTreeMap::new(),
            })
            .collect();
        let summary = GenSummary {
            messages: 0,
            bytes: 0,
            by_type: Box::new([0; 256]),
            unknown_type_faults: 0,
            unknown_ref_faults: 0,
            overfill_faults: 0,
            live_at_end: 0,
            max_live: 0,
            first_ts: 0,
            last_ts: 0,
        };
        Gen {
            p,
            rng,
            stocks,
            sink: Sink { out, buf: Vec::with_capacity(128), summary },
            ts: p.start,
            next_ref: 1,
            next_match: 1,
            next_fault_ref: FAULT_REF_BIT,
            live: 0,
            max_live: 0,
        }
    }

    fn hdr(&mut self, locate: u16) -> Header {
        Header { stock_locate: locate, tracking_number: self.rng.u16(0..16), timestamp: self.ts }
    }

    fn system(&mut self, code: u8) -> io::Result<()> {
        let header = self.hdr(0);
        self.sink.emit(&Message::SystemEvent(SystemEvent { header, event_code: code }))
    }

    fn header(&mut self) -> io::Result<()> {
        self.system(b'O')?;
        for i in 0..self.stocks.len() {
            let locate = i as u16 + 1;
            let h = [self.hdr(locate), self.hdr(locate), self.hdr(locate), self.hdr(locate)];
            let category = *self.rng.choice(b"QGSNAPZV").unwrap_or(&b'Q');
            let tier = if self.rng.bool() { b'1' } else { b'2' };
            let mpid = MPIDS[self.rng.usize(..MPIDS.len())];
            let primary = if self.rng.u8(0..4) == 0 { b'Y' } else { b'N' };
            let s = &self.stocks[i];
            self.sink.emit(&Message::StockDirectory(StockDirectory {
                header: h[0],
                stock: &s.symbol,
                market_category: category,
                financial_status: if matches!(category, b'Q' | b'G' | b'S') { b'N' } else { b' ' },
                round_lot_size: 100,
                round_lots_only: b'N',
                issue_classification: b'C',
                issue_sub_type: b"C ",
                authenticity: b'P',
                short_sale_threshold: b'N',
                ipo_flag: b'N',
                luld_tier: tier,
                etp_flag: b'N',
                etp_leverage_factor: 0,
                inverse_indicator: b'N',
            }))?;
            self.sink.emit(&Message::StockTradingAction(StockTradingAction {
                header: h[1],
                stock: &s.symbol,
                trading_state: b'T',
                reserved: b' ',
                reason: b"    ",
            }))?;
            self.sink.emit(&Message::RegSho(RegSho { header: h[2], stock: &s.symbol, action: b'0' }))?;
            self.sink.emit(&Message::MarketParticipantPosition(MarketParticipantPosition {
                header: h[3],
                mpid,
                stock: &s.symbol,
                primary_market_maker: primary,
                market_maker_mode: b'N',
                participant_state: b'A',
            }))?;
        }
        let header = self.hdr(0);
        self.sink.emit(&Message::MwcbDeclineLevel(MwcbDeclineLevel {
            header,
            level1: Price8(4_593_950_000_000),
            level2: Price8(4_248_410_000_000),
            level3: Price8(3_802_030_000_000),
        }))?;
        self.system(b'S')?;
        self.system(b'Q')?;
        for i in 0..self.stocks.len() {
            self.cross(i, b'O')?;
        }
        Ok(())
    }

    fn trailer(&mut self) -> io::Result<()> {
        self.ts = self.ts.max(self.p.end);
        for i in 0..self.stocks.len() {
            self.cross(i, b'C')?;
        }
        self.system(b'M')?;
        self.ts += 4 * 3_600_000_000_000; // 20:00 after a 16:00 close
        self.system(b'E')?;
        self.ts += 300_000_000_000;
        self.system(b'C')
    }

    fn match_number(&mut self) -> u64 {
        let m = self.next_match;
        self.next_match += 1;
        m
    }

    fn new_ref(&mut self) -> u64 {
        let r = self.next_ref;
        self.next_ref += 1;
        r
    }

    fn round_lot(&mut self) -> u32 {
        if self.rng.u8(0..10) == 0 {
            self.rng.u32(1..100) // odd lot
        } else {
            100 * self.rng.u32(1..=20)
        }
    }

    fn cross(&mut self, i: usize, cross_type: u8) -> io::Result<()> {
        let header = self.hdr(i as u16 + 1);
        let shares = self.rng.u64(0..500_000);
        let match_number = self.match_number();
        let s = &self.stocks[i];
        self.sink.emit(&Message::CrossTrade(CrossTrade {
            header,
            shares,
            stock: &s.symbol,
            cross_price: Price4(s.mid),
            match_number,
            cross_type,
        }))
    }

    fn flow_message(&mut self) -> io::Result<()> {
        if self.p.faults > 0.0 && self.rng.f64() < self.p.faults {
            return self.fault();
        }
        let i = self.rng.usize(..self.stocks.len());
        // The random walk: a tick up or down now and then.
        if self.rng.u8(0..10) == 0 {
            let s = &mut self.stocks[i];
            s.mid = if self.rng.bool() { s.mid + TICK } else { s.mid - TICK }.clamp(MIN_MID, MAX_MID);
        }
        let has_live = !self.stocks[i].orders.is_empty();
        let roll = self.rng.u32(0..1000);
        match roll {
            _ if !has_live && (355..915).contains(&roll) => self.add(i),
            0..=354 => self.add(i),
            355..=439 => self.execute(i, false),
            440..=454 => self.execute(i, true),
            455..=514 => self.cancel(i),
            515..=789 => self.delete(i),
            790..=914 => self.replace(i),
            915..=974 => self.trade(i),
            _ => self.rare(i, roll - 975),
        }
    }

    fn add(&mut self, i: usize) -> io::Result<()> {
        // Adds slightly outnumber removals in the mix; past a few hundred live orders, a growing share of adds
        // become deletes, so books stay near that size (and at most the cap).
        let n = self.stocks[i].orders.len();
        if n >= MAX_LIVE_PER_STOCK || (n > 200 && self.rng.usize(..MAX_LIVE_PER_STOCK) < n) {
            return self.delete(i);
        }
        let side = if self.rng.bool() { b'B' } else { b'S' };
        let ticks = self.rng.u32(1..=10);
        let shares = self.round_lot();
        let order_ref = self.new_ref();
        let attribution = if self.rng.u8(0..8) == 0 { Some(MPIDS[self.rng.usize(..MPIDS.len())]) } else { None };
        let header = self.hdr(i as u16 + 1);
        let s = &mut self.stocks[i];
        let price = s.price_for(side, ticks);
        s.orders.push(Live { order_ref, side, price, shares });
        s.level_add(side, price);
        self.live += 1;
        self.max_live = self.max_live.max(self.live);
        let s = &self.stocks[i];
        self.sink.emit(&Message::AddOrder(AddOrder {
            header,
            order_ref,
            side,
            shares,
            stock: &s.symbol,
            price: Price4(price),
            attribution,
        }))
    }

    /// Removes live order `k` of stock `i` from the generator's book.
    fn remove(&mut self, i: usize, k: usize) -> Live {
        let s = &mut self.stocks[i];
        let o = s.orders.swap_remove(k);
        s.level_remove(o.side, o.price);
        self.live -= 1;
        o
    }

    fn pick(&mut self, i: usize) -> usize {
        self.rng.usize(..self.stocks[i].orders.len())
    }

    fn execute(&mut self, i: usize, with_price: bool) -> io::Result<()> {
        let k = self.pick(i);
        let o = self.stocks[i].orders[k];
        let full = o.shares == 1 || self.rng.bool();
        let executed_shares = if full { o.shares } else { self.rng.u32(1..o.shares) };
        if full {
            self.remove(i, k);
        } else {
            self.stocks[i].orders[k].shares -= executed_shares;
        }
        let header = self.hdr(i as u16 + 1);
        let match_number = self.match_number();
        if with_price {
            // An execution away from the display price (price improvement, or a cross print marked non-printable).
            let printable = if self.rng.u8(0..4) == 0 { b'N' } else { b'Y' };
            let off = self.rng.u32(0..=2) * TICK;
            let execution_price =
                Price4(if o.side == b'B' { o.price.saturating_sub(off).max(TICK) } else { o.price + off });
            self.sink.emit(&Message::OrderExecutedWithPrice(OrderExecutedWithPrice {
                header,
                order_ref: o.order_ref,
                executed_shares,
                match_number,
                printable,
                execution_price,
            }))
        } else {
            self.sink.emit(&Message::OrderExecuted(OrderExecuted {
                header,
                order_ref: o.order_ref,
                executed_shares,
                match_number,
            }))
        }
    }

    fn cancel(&mut self, i: usize) -> io::Result<()> {
        let k = self.pick(i);
        let o = self.stocks[i].orders[k];
        if o.shares < 2 {
            return self.delete(i);
        }
        let cancelled_shares = self.rng.u32(1..o.shares);
        self.stocks[i].orders[k].shares -= cancelled_shares;
        let header = self.hdr(i as u16 + 1);
        self.sink.emit(&Message::OrderCancel(OrderCancel { header, order_ref: o.order_ref, cancelled_shares }))
    }

    fn delete(&mut self, i: usize) -> io::Result<()> {
        let k = self.pick(i);
        let o = self.remove(i, k);
        let header = self.hdr(i as u16 + 1);
        self.sink.emit(&Message::OrderDelete(OrderDelete { header, order_ref: o.order_ref }))
    }

    fn replace(&mut self, i: usize) -> io::Result<()> {
        let k = self.pick(i);
        let o = self.remove(i, k);
        let ticks = self.rng.u32(1..=10);
        let shares = self.round_lot();
        let new_ref = self.new_ref();
        let s = &mut self.stocks[i];
        let price = s.price_for(o.side, ticks);
        s.orders.push(Live { order_ref: new_ref, side: o.side, price, shares });
        s.level_add(o.side, price);
        self.live += 1;
        let header = self.hdr(i as u16 + 1);
        self.sink.emit(&Message::OrderReplace(OrderReplace {
            header,
            original_ref: o.order_ref,
            new_ref,
            shares,
            price: Price4(price),
        }))
    }

    fn trade(&mut self, i: usize) -> io::Result<()> {
        let header = self.hdr(i as u16 + 1);
        let shares = self.round_lot();
        let match_number = self.match_number();
        let s = &self.stocks[i];
        self.sink.emit(&Message::Trade(Trade {
            header,
            order_ref: 0,
            side: b'B',
            shares,
            stock: &s.symbol,
            price: Price4(s.mid),
            match_number,
        }))
    }

    /// One of the occasional types, `which` in 0..25.
    fn rare(&mut self, i: usize, which: u32) -> io::Result<()> {
        let header = self.hdr(i as u16 + 1);
        let mid = self.stocks[i].mid;
        let pct = |p: u32| Price4((mid as u64 * p as u64 / 100 / TICK as u64 * TICK as u64) as u32);
        let m = match which % 9 {
            0 if self.next_match > 1 => {
                let match_number = self.rng.u64(1..self.next_match);
                Message::BrokenTrade(BrokenTrade { header, match_number })
            }
            0 | 1 => {
                let direction = *self.rng.choice(b"BSNOP").unwrap_or(&b'N');
                let cross_type = *self.rng.choice(b"OCHA").unwrap_or(&b'C');
                let variation = *self.rng.choice(b"L123456789ABC ").unwrap_or(&b'L');
                Message::Noii(Noii {
                    header,
                    paired_shares: self.rng.u64(0..1_000_000),
                    imbalance_shares: self.rng.u64(0..100_000),
                    imbalance_direction: direction,
                    stock: &self.stocks[i].symbol,
                    far_price: pct(self.rng.u32(95..=105)),
                    near_price: pct(self.rng.u32(98..=102)),
                    current_reference_price: Price4(mid),
                    cross_type,
                    price_variation: variation,
                })
            }
            2 => Message::RetailInterest(RetailInterest {
                header,
                stock: &self.stocks[i].symbol,
                interest_flag: *self.rng.choice(b"BSAN").unwrap_or(&b'N'),
            }),
            3 => Message::IpoQuotingPeriod(IpoQuotingPeriod {
                header: Header { stock_locate: 0, ..header },
                stock: &self.stocks[i].symbol,
                release_time: (self.ts / 1_000_000_000) as u32 + self.rng.u32(60..3_600),
                release_qualifier: if self.rng.u8(0..5) == 0 { b'C' } else { b'A' },
                ipo_price: Price4(mid),
            }),
            4 => Message::LuldAuctionCollar(LuldAuctionCollar {
                header,
                stock: &self.stocks[i].symbol,
                reference_price: Price4(mid),
                upper_price: pct(105),
                lower_price: pct(95),
                extension: self.rng.u32(0..4),
            }),
            5 => Message::OperationalHalt(OperationalHalt {
                header,
                stock: &self.stocks[i].symbol,
                market_code: *self.rng.choice(b"QBX").unwrap_or(&b'Q'),
                action: if self.rng.bool() { b'H' } else { b'T' },
            }),
            6 => Message::MwcbStatus(MwcbStatus {
                header: Header { stock_locate: 0, ..header },
                breached_level: *self.rng.choice(b"123").unwrap_or(&b'1'),
            }),
            7 => Message::DlcrPriceDiscovery(DlcrPriceDiscovery {
                header,
                stock: &self.stocks[i].symbol,
                open_eligibility: if self.rng.bool() { b'Y' } else { b'N' },
                min_allowable_price: pct(80),
                max_allowable_price: pct(180),
                near_execution_price: Price4(mid),
                near_execution_time: self.ts,
                lower_collar: pct(90),
                upper_collar: pct(110),
            }),
            _ => {
                // An intraday (IPO or halted) cross print.
                let shares = self.rng.u64(0..100_000);
                let match_number = self.match_number();
                Message::CrossTrade(CrossTrade {
                    header,
                    shares,
                    stock: &self.stocks[i].symbol,
                    cross_price: Price4(mid),
                    match_number,
                    cross_type: b'H',
                })
            }
        };
        self.sink.emit(&m)
    }

    fn fault(&mut self) -> io::Result<()> {
        let mut kind = self.rng.u8(0..3);
        let with_live: Option<usize> = if kind == 2 {
            let i = self.rng.usize(..self.stocks.len());
            // The first stock from `i` on with a live order.
            (0..self.stocks.len()).map(|d| (i + d) % self.stocks.len()).find(|&j| !self.stocks[j].orders.is_empty())
        } else {
            None
        };
        if kind == 2 && with_live.is_none() {
            kind = 1;
        }
        match (kind, with_live) {
            (0, _) => {
                // A message of a type ITCH 5.0 does not define: a header and random bytes.
                self.sink.summary.unknown_type_faults += 1;
                let len = self.rng.usize(12..=40);
                let mut raw = [0u8; 40];
                raw[0] = *self.rng.choice(UNKNOWN_KINDS).unwrap_or(&b'z');
                let locate = self.rng.u16(0..=self.p.stocks);
                raw[1..3].copy_from_slice(&locate.to_be_bytes());
                raw[5..11].copy_from_slice(&self.ts.to_be_bytes()[2..]);
                for b in &mut raw[11..len] {
                    *b = self.rng.u8(..);
                }
                let kind = raw[0];
                self.sink.emit(&Message::Unknown { kind, raw: &raw[..len] })
            }
            (2, Some(i)) => {
                // An execution of more shares than remain; the order is gone afterwards.
                self.sink.summary.overfill_faults += 1;
                let k = self.pick(i);
                let o = self.remove(i, k);
                let header = self.hdr(i as u16 + 1);
                let match_number = self.match_number();
                let executed_shares = o.shares + self.rng.u32(1..=100);
                self.sink.emit(&Message::OrderExecuted(OrderExecuted {
                    header,
                    order_ref: o.order_ref,
                    executed_shares,
                    match_number,
                }))
            }
            _ => {
                // An execution or a cancel of a reference never added.
                self.sink.summary.unknown_ref_faults += 1;
                let order_ref = self.next_fault_ref;
                self.next_fault_ref += 1;
                let locate = self.rng.u16(1..=self.p.stocks);
                let header = self.hdr(locate);
                if self.rng.bool() {
                    let match_number = self.match_number();
                    let executed_shares = self.rng.u32(1..=1_000);
                    self.sink.emit(&Message::OrderExecuted(OrderExecuted {
                        header,
                        order_ref,
                        executed_shares,
                        match_number,
                    }))
                } else {
                    let cancelled_shares = self.rng.u32(1..=1_000);
                    self.sink.emit(&Message::OrderCancel(OrderCancel { header, order_ref, cancelled_shares }))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbols_are_unique_four_letters() {
        let all: std::collections::HashSet<[u8; 8]> = (0..=u16::MAX).map(symbol).collect();
        assert_eq!(all.len(), 65_536);
        assert_eq!(&symbol(0), b"AAAA    ");
        assert_eq!(&symbol(27), b"AABB    ");
    }

    #[test]
    fn parameters_are_checked() {
        let p = GenParams { messages: overhead(3), seed: 1, stocks: 3, start: 10, end: 20, faults: 0.0 };
        assert!(generate(&p, Vec::new()).is_ok());
        for bad in [
            GenParams { messages: overhead(3) - 1, ..p.clone() },
            GenParams { stocks: 0, ..p.clone() },
            GenParams { faults: 1.5, ..p.clone() },
            GenParams { end: 10, ..p.clone() },
        ] {
            assert_eq!(generate(&bad, Vec::new()).map_err(|e| e.kind()).err(), Some(io::ErrorKind::InvalidInput));
        }
    }

    #[test]
    fn every_message_a_fault_at_rate_one() {
        let p = GenParams { messages: overhead(2) + 3_000, seed: 3, stocks: 2, start: 10, end: 1 << 40, faults: 1.0 };
        let s = generate(&p, std::io::sink()).expect("generate");
        assert_eq!(s.faults(), 3_000);
        // No add ever happens, so every overfill drawn became an unknown reference.
        assert_eq!(s.overfill_faults, 0);
        assert!(s.unknown_type_faults > 800 && s.unknown_ref_faults > 1_600, "{s:?}");
    }
}
