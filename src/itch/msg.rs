//! The ITCH 5.0 messages: one struct per message type, with the spec's fields, and a zero-copy decoder.
//!
//! Field layouts follow "Nasdaq TotalView-ITCH 5.0" (revision of April 28, 2023, which added the DLCR
//! price-discovery message `O`); docs/formats.md has the table of every type. Integers are big-endian; alpha
//! fields stay byte arrays borrowed from the input (`&[u8; N]`, space padded as on the wire); prices stay in
//! their wire units ([`Price4`], [`Price8`]) so a decoded message encodes back to the same bytes. Every byte of
//! every layout is a field (the trading action's reserved byte included), so the round trip is exact.

use crate::event::Price;
use thiserror::Error;

/// A stock symbol: 8 ASCII bytes, left justified and padded with spaces.
pub type Stock<'a> = &'a [u8; 8];

/// A market participant identifier (MPID): 4 ASCII bytes.
pub type Mpid<'a> = &'a [u8; 4];

/// A `Price(4)` field: an unsigned integer with 4 implied decimals (`1234500` is 123.45).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Price4(pub u32);

impl Price4 {
    /// Raw units per 1.0.
    pub const SCALE: u32 = 10_000;

    /// The price at the project's scale (10⁹): raw × 100,000. Exact, and never overflows (the largest
    /// `u32` is 429,496.7295).
    #[inline]
    pub const fn to_price(self) -> Price {
        Price(self.0 as i64 * 100_000)
    }

    /// The `Price(4)` of a project price, if it is a whole number of 10⁻⁴ units between 0 and `u32::MAX`.
    pub fn from_price(p: Price) -> Option<Price4> {
        if p.0 % 100_000 != 0 {
            return None;
        }
        u32::try_from(p.0 / 100_000).ok().map(Price4)
    }
}

/// A `Price(8)` field (the MWCB decline levels): an unsigned integer with 8 implied decimals.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Price8(pub u64);

impl Price8 {
    /// Raw units per 1.0.
    pub const SCALE: u64 = 100_000_000;

    /// The price at the project's scale (10⁹): raw × 10, or `None` past `i64::MAX` raw units (9.2 × 10⁹):
    /// a `u64` field can hold more than [`Price`] can.
    #[inline]
    pub fn to_price(self) -> Option<Price> {
        i64::try_from(self.0).ok()?.checked_mul(10).map(Price)
    }
}

/// The fields every message has after its type byte (offsets 1 to 10).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Header {
    /// The security's locate code for the day (0 in market-wide messages).
    pub stock_locate: u16,
    /// Nasdaq's internal tracking number.
    pub tracking_number: u16,
    /// Nanoseconds since midnight, venue local time (48 bits on the wire; [`super::SessionClock`] makes it an
    /// epoch time).
    pub timestamp: u64,
}

/// `S`, 12 bytes: a market or feed event (`event_code`: `O` start of messages, `S` start of system hours,
/// `Q` start of market hours, `M` end of market hours, `E` end of system hours, `C` end of messages).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SystemEvent {
    pub header: Header,
    pub event_code: u8,
}

/// `R`, 39 bytes: one security's reference data for the day, sent at the start of the day.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StockDirectory<'a> {
    pub header: Header,
    pub stock: Stock<'a>,
    pub market_category: u8,
    pub financial_status: u8,
    pub round_lot_size: u32,
    pub round_lots_only: u8,
    pub issue_classification: u8,
    pub issue_sub_type: &'a [u8; 2],
    pub authenticity: u8,
    pub short_sale_threshold: u8,
    pub ipo_flag: u8,
    pub luld_tier: u8,
    pub etp_flag: u8,
    pub etp_leverage_factor: u32,
    pub inverse_indicator: u8,
}

/// `H`, 25 bytes: a security's trading state (`H` halted, `P` paused, `Q` quotation only, `T` trading).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StockTradingAction<'a> {
    pub header: Header,
    pub stock: Stock<'a>,
    pub trading_state: u8,
    pub reserved: u8,
    pub reason: &'a [u8; 4],
}

/// `Y`, 20 bytes: Reg SHO short sale price test restriction (`0` none, `1` in effect after an intraday drop,
/// `2` remains in effect).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegSho<'a> {
    pub header: Header,
    pub stock: Stock<'a>,
    pub action: u8,
}

/// `L`, 26 bytes: a market participant's status in a security.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MarketParticipantPosition<'a> {
    pub header: Header,
    pub mpid: Mpid<'a>,
    pub stock: Stock<'a>,
    pub primary_market_maker: u8,
    pub market_maker_mode: u8,
    pub participant_state: u8,
}

/// `V`, 35 bytes: the day's market-wide circuit breaker levels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MwcbDeclineLevel {
    pub header: Header,
    pub level1: Price8,
    pub level2: Price8,
    pub level3: Price8,
}

/// `W`, 12 bytes: a market-wide circuit breaker level was breached (`1`, `2` or `3`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MwcbStatus {
    pub header: Header,
    pub breached_level: u8,
}

/// `K`, 28 bytes: the anticipated IPO quotation release time (seconds since midnight).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpoQuotingPeriod<'a> {
    pub header: Header,
    pub stock: Stock<'a>,
    pub release_time: u32,
    /// `A` anticipated, `C` cancelled or postponed.
    pub release_qualifier: u8,
    pub ipo_price: Price4,
}

/// `J`, 35 bytes: the collars within which a paused security can reopen after a LULD pause.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LuldAuctionCollar<'a> {
    pub header: Header,
    pub stock: Stock<'a>,
    pub reference_price: Price4,
    pub upper_price: Price4,
    pub lower_price: Price4,
    pub extension: u32,
}

/// `h`, 21 bytes: an operational halt of one market centre (`market_code` `Q`, `B`, `X`; `action` `H` halted,
/// `T` resumed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OperationalHalt<'a> {
    pub header: Header,
    pub stock: Stock<'a>,
    pub market_code: u8,
    pub action: u8,
}

/// `A` (36 bytes, no attribution) or `F` (40 bytes, with the MPID): a new displayed order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddOrder<'a> {
    pub header: Header,
    pub order_ref: u64,
    /// `B` buy, `S` sell.
    pub side: u8,
    pub shares: u32,
    pub stock: Stock<'a>,
    pub price: Price4,
    /// `Some` in an `F` message.
    pub attribution: Option<Mpid<'a>>,
}

/// `E`, 31 bytes: shares of a resting order executed at its display price.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderExecuted {
    pub header: Header,
    pub order_ref: u64,
    pub executed_shares: u32,
    pub match_number: u64,
}

/// `C`, 36 bytes: shares of a resting order executed at a price other than its display price.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderExecutedWithPrice {
    pub header: Header,
    pub order_ref: u64,
    pub executed_shares: u32,
    pub match_number: u64,
    /// `Y` printable, `N` not (to be printed later in bulk, e.g. a cross).
    pub printable: u8,
    pub execution_price: Price4,
}

/// `X`, 23 bytes: a partial cancel (the shares leave the order's display size).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderCancel {
    pub header: Header,
    pub order_ref: u64,
    pub cancelled_shares: u32,
}

/// `D`, 19 bytes: the order leaves the book.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderDelete {
    pub header: Header,
    pub order_ref: u64,
}

/// `U`, 35 bytes: cancel-replace; the original order leaves the book and the new reference takes its side,
/// stock and attribution with new shares and price.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderReplace {
    pub header: Header,
    pub original_ref: u64,
    pub new_ref: u64,
    pub shares: u32,
    pub price: Price4,
}

/// `P`, 44 bytes: an execution of a non-displayed order (the book does not change).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trade<'a> {
    pub header: Header,
    /// 0 since 2010.
    pub order_ref: u64,
    /// `B` since 2014, whatever the resting side.
    pub side: u8,
    pub shares: u32,
    pub stock: Stock<'a>,
    pub price: Price4,
    pub match_number: u64,
}

/// `Q`, 40 bytes: the bulk print of a cross (`cross_type` `O` opening, `C` closing, `H` IPO or halted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CrossTrade<'a> {
    pub header: Header,
    pub shares: u64,
    pub stock: Stock<'a>,
    pub cross_price: Price4,
    pub match_number: u64,
    pub cross_type: u8,
}

/// `B`, 19 bytes: the execution with this match number is broken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BrokenTrade {
    pub header: Header,
    pub match_number: u64,
}

/// `I`, 50 bytes: net order imbalance indicator before a cross.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Noii<'a> {
    pub header: Header,
    pub paired_shares: u64,
    pub imbalance_shares: u64,
    /// `B`, `S`, `N` none, `O` insufficient orders, `P` paused.
    pub imbalance_direction: u8,
    pub stock: Stock<'a>,
    pub far_price: Price4,
    pub near_price: Price4,
    pub current_reference_price: Price4,
    /// `O`, `C`, `H`, `A` extended trading close.
    pub cross_type: u8,
    pub price_variation: u8,
}

/// `N`, 20 bytes: retail price improvement interest (`B`, `S`, `A` both, `N` none).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetailInterest<'a> {
    pub header: Header,
    pub stock: Stock<'a>,
    pub interest_flag: u8,
}

/// `O`, 48 bytes: Direct Listing with Capital Raise price discovery (once a second for a DLCR security).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DlcrPriceDiscovery<'a> {
    pub header: Header,
    pub stock: Stock<'a>,
    /// `Y` eligible to be released for trading, `N` not.
    pub open_eligibility: u8,
    pub min_allowable_price: Price4,
    pub max_allowable_price: Price4,
    pub near_execution_price: Price4,
    /// When the near execution price was set (the spec says only "the time"; read as ns since midnight).
    pub near_execution_time: u64,
    pub lower_collar: Price4,
    pub upper_collar: Price4,
}

/// One decoded message, borrowing its alpha fields from the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Message<'a> {
    SystemEvent(SystemEvent),
    StockDirectory(StockDirectory<'a>),
    StockTradingAction(StockTradingAction<'a>),
    RegSho(RegSho<'a>),
    MarketParticipantPosition(MarketParticipantPosition<'a>),
    MwcbDeclineLevel(MwcbDeclineLevel),
    MwcbStatus(MwcbStatus),
    IpoQuotingPeriod(IpoQuotingPeriod<'a>),
    LuldAuctionCollar(LuldAuctionCollar<'a>),
    OperationalHalt(OperationalHalt<'a>),
    /// `A` or `F`.
    AddOrder(AddOrder<'a>),
    OrderExecuted(OrderExecuted),
    OrderExecutedWithPrice(OrderExecutedWithPrice),
    OrderCancel(OrderCancel),
    OrderDelete(OrderDelete),
    OrderReplace(OrderReplace),
    Trade(Trade<'a>),
    CrossTrade(CrossTrade<'a>),
    BrokenTrade(BrokenTrade),
    Noii(Noii<'a>),
    RetailInterest(RetailInterest<'a>),
    DlcrPriceDiscovery(DlcrPriceDiscovery<'a>),
    /// A type byte ITCH 5.0 does not define: skip the message (its framing gives the length) and count it.
    Unknown {
        kind: u8,
        raw: &'a [u8],
    },
}

/// Every message type ITCH 5.0 defines, in the spec's order.
pub const KINDS: [u8; 23] = *b"SRHYLVWKJhAFECXDUPQBINO";

/// The length of a message of type `kind` (type byte included), or `None` if ITCH 5.0 does not define it.
#[inline]
pub const fn message_len(kind: u8) -> Option<usize> {
    Some(match kind {
        b'S' => 12,
        b'R' => 39,
        b'H' => 25,
        b'Y' => 20,
        b'L' => 26,
        b'V' => 35,
        b'W' => 12,
        b'K' => 28,
        b'J' => 35,
        b'h' => 21,
        b'A' => 36,
        b'F' => 40,
        b'E' => 31,
        b'C' => 36,
        b'X' => 23,
        b'D' => 19,
        b'U' => 35,
        b'P' => 44,
        b'Q' => 40,
        b'B' => 19,
        b'I' => 50,
        b'N' => 20,
        b'O' => 48,
        _ => return None,
    })
}

/// Why a message did not decode.
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
pub enum DecodeError {
    /// No bytes at all (not even a type byte).
    #[error("empty message")]
    Empty,
    /// Shorter than its type's layout.
    #[error("message type {} truncated: {len} bytes, the layout has {need}", show_kind(*.kind))]
    Truncated { kind: u8, len: usize, need: usize },
}

/// A type byte for messages: the character when printable, else its hex value.
pub fn show_kind(kind: u8) -> String {
    if kind.is_ascii_graphic() {
        format!("'{}'", kind as char)
    } else {
        format!("0x{kind:02x}")
    }
}

impl<'a> Message<'a> {
    /// The type byte.
    pub fn kind(&self) -> u8 {
        match self {
            Message::SystemEvent(_) => b'S',
            Message::StockDirectory(_) => b'R',
            Message::StockTradingAction(_) => b'H',
            Message::RegSho(_) => b'Y',
            Message::MarketParticipantPosition(_) => b'L',
            Message::MwcbDeclineLevel(_) => b'V',
            Message::MwcbStatus(_) => b'W',
            Message::IpoQuotingPeriod(_) => b'K',
            Message::LuldAuctionCollar(_) => b'J',
            Message::OperationalHalt(_) => b'h',
            Message::AddOrder(m) if m.attribution.is_some() => b'F',
            Message::AddOrder(_) => b'A',
            Message::OrderExecuted(_) => b'E',
            Message::OrderExecutedWithPrice(_) => b'C',
            Message::OrderCancel(_) => b'X',
            Message::OrderDelete(_) => b'D',
            Message::OrderReplace(_) => b'U',
            Message::Trade(_) => b'P',
            Message::CrossTrade(_) => b'Q',
            Message::BrokenTrade(_) => b'B',
            Message::Noii(_) => b'I',
            Message::RetailInterest(_) => b'N',
            Message::DlcrPriceDiscovery(_) => b'O',
            Message::Unknown { kind, .. } => *kind,
        }
    }

    /// The common fields (`None` for an unknown type, whose layout is not known).
    pub fn header(&self) -> Option<&Header> {
        Some(match self {
            Message::SystemEvent(m) => &m.header,
            Message::StockDirectory(m) => &m.header,
            Message::StockTradingAction(m) => &m.header,
            Message::RegSho(m) => &m.header,
            Message::MarketParticipantPosition(m) => &m.header,
            Message::MwcbDeclineLevel(m) => &m.header,
            Message::MwcbStatus(m) => &m.header,
            Message::IpoQuotingPeriod(m) => &m.header,
            Message::LuldAuctionCollar(m) => &m.header,
            Message::OperationalHalt(m) => &m.header,
            Message::AddOrder(m) => &m.header,
            Message::OrderExecuted(m) => &m.header,
            Message::OrderExecutedWithPrice(m) => &m.header,
            Message::OrderCancel(m) => &m.header,
            Message::OrderDelete(m) => &m.header,
            Message::OrderReplace(m) => &m.header,
            Message::Trade(m) => &m.header,
            Message::CrossTrade(m) => &m.header,
            Message::BrokenTrade(m) => &m.header,
            Message::Noii(m) => &m.header,
            Message::RetailInterest(m) => &m.header,
            Message::DlcrPriceDiscovery(m) => &m.header,
            Message::Unknown { .. } => return None,
        })
    }

    /// Nanoseconds since midnight (`None` for an unknown type).
    #[inline]
    pub fn timestamp(&self) -> Option<u64> {
        self.header().map(|h| h.timestamp)
    }

    /// The locate code of the security the message is about; `None` for the market-wide messages (`S`, `V`,
    /// `W`, whose locate is always 0) and unknown types. (The spec says `K`'s locate is 0 too; it is returned
    /// as it is, and `K` names its security by `stock`.)
    #[inline]
    pub fn stock_locate(&self) -> Option<u16> {
        match self {
            Message::SystemEvent(_) | Message::MwcbDeclineLevel(_) | Message::MwcbStatus(_) => None,
            m => m.header().map(|h| h.stock_locate),
        }
    }

    /// The stock symbol, for the types that carry one.
    pub fn stock(&self) -> Option<Stock<'a>> {
        match *self {
            Message::StockDirectory(m) => Some(m.stock),
            Message::StockTradingAction(m) => Some(m.stock),
            Message::RegSho(m) => Some(m.stock),
            Message::MarketParticipantPosition(m) => Some(m.stock),
            Message::IpoQuotingPeriod(m) => Some(m.stock),
            Message::LuldAuctionCollar(m) => Some(m.stock),
            Message::OperationalHalt(m) => Some(m.stock),
            Message::AddOrder(m) => Some(m.stock),
            Message::Trade(m) => Some(m.stock),
            Message::CrossTrade(m) => Some(m.stock),
            Message::Noii(m) => Some(m.stock),
            Message::RetailInterest(m) => Some(m.stock),
            Message::DlcrPriceDiscovery(m) => Some(m.stock),
            _ => None,
        }
    }
}

/// A symbol without its space padding (`b"AAPL    "` → `b"AAPL"`).
#[inline]
pub fn trim_alpha(field: &[u8]) -> &[u8] {
    let n = field.iter().rposition(|&b| b != b' ').map_or(0, |i| i + 1);
    &field[..n]
}

/// Whether a message of `len` bytes is longer than its type's layout (a newer revision of the type, read
/// by its known prefix).
#[inline]
pub fn is_oversize(kind: u8, len: usize) -> bool {
    message_len(kind).is_some_and(|need| len > need)
}

/// Decodes one message (its framing gives `bytes`' length).
///
/// * an undefined type byte → `Ok(Message::Unknown)`, for the caller to skip and count;
/// * shorter than the type's layout → [`DecodeError::Truncated`];
/// * longer → the layout's prefix is decoded and the rest ignored (forward compatibility); [`is_oversize`]
///   and [`super::Counters`] make it visible.
///
/// Never panics, never allocates.
#[inline]
pub fn decode(bytes: &[u8]) -> Result<Message<'_>, DecodeError> {
    let Some((&kind, body)) = bytes.split_first() else {
        return Err(DecodeError::Empty);
    };
    let Some(need) = message_len(kind) else {
        return Ok(Message::Unknown { kind, raw: bytes });
    };
    let truncated = DecodeError::Truncated { kind, len: bytes.len(), need };
    if bytes.len() < need {
        return Err(truncated);
    }
    // The length is checked above, so the reader never runs out: its `None` paths are dead code the
    // optimizer removes, kept so that no index can panic.
    let mut r = Rd(body);
    let m = match kind {
        b'S' => system_event(&mut r),
        b'R' => stock_directory(&mut r),
        b'H' => trading_action(&mut r),
        b'Y' => reg_sho(&mut r),
        b'L' => participant_position(&mut r),
        b'V' => mwcb_decline(&mut r),
        b'W' => mwcb_status(&mut r),
        b'K' => ipo_quoting(&mut r),
        b'J' => luld_collar(&mut r),
        b'h' => operational_halt(&mut r),
        b'A' => add_order(&mut r, false),
        b'F' => add_order(&mut r, true),
        b'E' => executed(&mut r),
        b'C' => executed_with_price(&mut r),
        b'X' => cancel(&mut r),
        b'D' => delete(&mut r),
        b'U' => replace(&mut r),
        b'P' => trade(&mut r),
        b'Q' => cross_trade(&mut r),
        b'B' => broken_trade(&mut r),
        b'I' => noii(&mut r),
        b'N' => retail_interest(&mut r),
        b'O' => dlcr(&mut r),
        _ => None,
    };
    m.ok_or(truncated)
}

/// A cursor over a message's bytes after the type byte.
struct Rd<'a>(&'a [u8]);

impl<'a> Rd<'a> {
    #[inline(always)]
    fn arr<const N: usize>(&mut self) -> Option<&'a [u8; N]> {
        let (head, tail) = self.0.split_first_chunk::<N>()?;
        self.0 = tail;
        Some(head)
    }
    #[inline(always)]
    fn u8(&mut self) -> Option<u8> {
        self.arr::<1>().map(|a| a[0])
    }
    #[inline(always)]
    fn u16(&mut self) -> Option<u16> {
        self.arr().map(|a| u16::from_be_bytes(*a))
    }
    #[inline(always)]
    fn u32(&mut self) -> Option<u32> {
        self.arr().map(|a| u32::from_be_bytes(*a))
    }
    #[inline(always)]
    fn u48(&mut self) -> Option<u64> {
        self.arr::<6>().map(|a| u64::from_be_bytes([0, 0, a[0], a[1], a[2], a[3], a[4], a[5]]))
    }
    #[inline(always)]
    fn u64(&mut self) -> Option<u64> {
        self.arr().map(|a| u64::from_be_bytes(*a))
    }
    #[inline(always)]
    fn p4(&mut self) -> Option<Price4> {
        self.u32().map(Price4)
    }
    #[inline(always)]
    fn header(&mut self) -> Option<Header> {
        Some(Header { stock_locate: self.u16()?, tracking_number: self.u16()?, timestamp: self.u48()? })
    }
}

// One function per layout, reading the fields in the spec's order (offsets in docs/formats.md).

#[inline(always)]
fn system_event<'a>(r: &mut Rd<'a>) -> Option<Message<'a>> {
    Some(Message::SystemEvent(SystemEvent { header: r.header()?, event_code: r.u8()? }))
}

#[inline(always)]
fn stock_directory<'a>(r: &mut Rd<'a>) -> Option<Message<'a>> {
    Some(Message::StockDirectory(StockDirectory {
        header: r.header()?,
        stock: r.arr()?,
        market_category: r.u8()?,
        financial_status: r.u8()?,
        round_lot_size: r.u32()?,
        round_lots_only: r.u8()?,
        issue_classification: r.u8()?,
        issue_sub_type: r.arr()?,
        authenticity: r.u8()?,
        short_sale_threshold: r.u8()?,
        ipo_flag: r.u8()?,
        luld_tier: r.u8()?,
        etp_flag: r.u8()?,
        etp_leverage_factor: r.u32()?,
        inverse_indicator: r.u8()?,
    }))
}

#[inline(always)]
fn trading_action<'a>(r: &mut Rd<'a>) -> Option<Message<'a>> {
    Some(Message::StockTradingAction(StockTradingAction {
        header: r.header()?,
        stock: r.arr()?,
        trading_state: r.u8()?,
        reserved: r.u8()?,
        reason: r.arr()?,
    }))
}

#[inline(always)]
fn reg_sho<'a>(r: &mut Rd<'a>) -> Option<Message<'a>> {
    Some(Message::RegSho(RegSho { header: r.header()?, stock: r.arr()?, action: r.u8()? }))
}

#[inline(always)]
fn participant_position<'a>(r: &mut Rd<'a>) -> Option<Message<'a>> {
    Some(Message::MarketParticipantPosition(MarketParticipantPosition {
        header: r.header()?,
        mpid: r.arr()?,
        stock: r.arr()?,
        primary_market_maker: r.u8()?,
        market_maker_mode: r.u8()?,
        participant_state: r.u8()?,
    }))
}

#[inline(always)]
fn mwcb_decline<'a>(r: &mut Rd<'a>) -> Option<Message<'a>> {
    Some(Message::MwcbDeclineLevel(MwcbDeclineLevel {
        header: r.header()?,
        level1: Price8(r.u64()?),
        level2: Price8(r.u64()?),
        level3: Price8(r.u64()?),
    }))
}

#[inline(always)]
fn mwcb_status<'a>(r: &mut Rd<'a>) -> Option<Message<'a>> {
    Some(Message::MwcbStatus(MwcbStatus { header: r.header()?, breached_level: r.u8()? }))
}

#[inline(always)]
fn ipo_quoting<'a>(r: &mut Rd<'a>) -> Option<Message<'a>> {
    Some(Message::IpoQuotingPeriod(IpoQuotingPeriod {
        header: r.header()?,
        stock: r.arr()?,
        release_time: r.u32()?,
        release_qualifier: r.u8()?,
        ipo_price: r.p4()?,
    }))
}

#[inline(always)]
fn luld_collar<'a>(r: &mut Rd<'a>) -> Option<Message<'a>> {
    Some(Message::LuldAuctionCollar(LuldAuctionCollar {
        header: r.header()?,
        stock: r.arr()?,
        reference_price: r.p4()?,
        upper_price: r.p4()?,
        lower_price: r.p4()?,
        extension: r.u32()?,
    }))
}

#[inline(always)]
fn operational_halt<'a>(r: &mut Rd<'a>) -> Option<Message<'a>> {
    Some(Message::OperationalHalt(OperationalHalt {
        header: r.header()?,
        stock: r.arr()?,
        market_code: r.u8()?,
        action: r.u8()?,
    }))
}

#[inline(always)]
fn add_order<'a>(r: &mut Rd<'a>, attributed: bool) -> Option<Message<'a>> {
    Some(Message::AddOrder(AddOrder {
        header: r.header()?,
        order_ref: r.u64()?,
        side: r.u8()?,
        shares: r.u32()?,
        stock: r.arr()?,
        price: r.p4()?,
        attribution: if attributed { Some(r.arr()?) } else { None },
    }))
}

#[inline(always)]
fn executed<'a>(r: &mut Rd<'a>) -> Option<Message<'a>> {
    Some(Message::OrderExecuted(OrderExecuted {
        header: r.header()?,
        order_ref: r.u64()?,
        executed_shares: r.u32()?,
        match_number: r.u64()?,
    }))
}

#[inline(always)]
fn executed_with_price<'a>(r: &mut Rd<'a>) -> Option<Message<'a>> {
    Some(Message::OrderExecutedWithPrice(OrderExecutedWithPrice {
        header: r.header()?,
        order_ref: r.u64()?,
        executed_shares: r.u32()?,
        match_number: r.u64()?,
        printable: r.u8()?,
        execution_price: r.p4()?,
    }))
}

#[inline(always)]
fn cancel<'a>(r: &mut Rd<'a>) -> Option<Message<'a>> {
    Some(Message::OrderCancel(OrderCancel { header: r.header()?, order_ref: r.u64()?, cancelled_shares: r.u32()? }))
}

#[inline(always)]
fn delete<'a>(r: &mut Rd<'a>) -> Option<Message<'a>> {
    Some(Message::OrderDelete(OrderDelete { header: r.header()?, order_ref: r.u64()? }))
}

#[inline(always)]
fn replace<'a>(r: &mut Rd<'a>) -> Option<Message<'a>> {
    Some(Message::OrderReplace(OrderReplace {
        header: r.header()?,
        original_ref: r.u64()?,
        new_ref: r.u64()?,
        shares: r.u32()?,
        price: r.p4()?,
    }))
}

#[inline(always)]
fn trade<'a>(r: &mut Rd<'a>) -> Option<Message<'a>> {
    Some(Message::Trade(Trade {
        header: r.header()?,
        order_ref: r.u64()?,
        side: r.u8()?,
        shares: r.u32()?,
        stock: r.arr()?,
        price: r.p4()?,
        match_number: r.u64()?,
    }))
}

#[inline(always)]
fn cross_trade<'a>(r: &mut Rd<'a>) -> Option<Message<'a>> {
    Some(Message::CrossTrade(CrossTrade {
        header: r.header()?,
        shares: r.u64()?,
        stock: r.arr()?,
        cross_price: r.p4()?,
        match_number: r.u64()?,
        cross_type: r.u8()?,
    }))
}

#[inline(always)]
fn broken_trade<'a>(r: &mut Rd<'a>) -> Option<Message<'a>> {
    Some(Message::BrokenTrade(BrokenTrade { header: r.header()?, match_number: r.u64()? }))
}

#[inline(always)]
fn noii<'a>(r: &mut Rd<'a>) -> Option<Message<'a>> {
    Some(Message::Noii(Noii {
        header: r.header()?,
        paired_shares: r.u64()?,
        imbalance_shares: r.u64()?,
        imbalance_direction: r.u8()?,
        stock: r.arr()?,
        far_price: r.p4()?,
        near_price: r.p4()?,
        current_reference_price: r.p4()?,
        cross_type: r.u8()?,
        price_variation: r.u8()?,
    }))
}

#[inline(always)]
fn retail_interest<'a>(r: &mut Rd<'a>) -> Option<Message<'a>> {
    Some(Message::RetailInterest(RetailInterest { header: r.header()?, stock: r.arr()?, interest_flag: r.u8()? }))
}

#[inline(always)]
fn dlcr<'a>(r: &mut Rd<'a>) -> Option<Message<'a>> {
    Some(Message::DlcrPriceDiscovery(DlcrPriceDiscovery {
        header: r.header()?,
        stock: r.arr()?,
        open_eligibility: r.u8()?,
        min_allowable_price: r.p4()?,
        max_allowable_price: r.p4()?,
        near_execution_price: r.p4()?,
        near_execution_time: r.u64()?,
        lower_collar: r.p4()?,
        upper_collar: r.p4()?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn price_scales() {
        assert_eq!(Price4(1).to_price(), Price(100_000)); // 0.0001
        assert_eq!(Price4(u32::MAX).to_price(), Price(429_496_729_500_000));
        assert_eq!(Price4::from_price(Price(100_000)), Some(Price4(1)));
        assert_eq!(Price4::from_price(Price(1)), None, "finer than 10⁻⁴");
        assert_eq!(Price4::from_price(Price(-100_000)), None);
        assert_eq!(Price4::from_price(Price4(u32::MAX).to_price()), Some(Price4(u32::MAX)));
        assert_eq!(Price8(1).to_price(), Some(Price(10)));
        assert_eq!(Price8(i64::MAX as u64 / 10).to_price(), Some(Price(i64::MAX / 10 * 10)));
        assert_eq!(Price8(i64::MAX as u64 / 10 + 1).to_price(), None);
        assert_eq!(Price8(u64::MAX).to_price(), None);
    }

    #[test]
    fn alpha_padding() {
        assert_eq!(trim_alpha(b"AAPL    "), b"AAPL");
        assert_eq!(trim_alpha(b"        "), b"");
        assert_eq!(trim_alpha(b"BRK A   "), b"BRK A");
        assert_eq!(show_kind(b'A'), "'A'");
        assert_eq!(show_kind(0), "0x00");
    }

    #[test]
    fn lengths_and_size() {
        assert_eq!(KINDS.iter().filter(|&&k| message_len(k).is_some()).count(), 23);
        assert_eq!((0..=255u8).filter(|&k| message_len(k).is_some()).count(), 23);
        assert!(!is_oversize(b'z', 1_000) && is_oversize(b'D', 20) && !is_oversize(b'D', 19));
        // Messages travel by value on the hot path: keep them small.
        assert!(std::mem::size_of::<Message<'_>>() <= 72, "{}", std::mem::size_of::<Message<'_>>());
    }
}
