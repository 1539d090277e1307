//! Writes ITCH 5.0 messages back to bytes: for the generator, the tests and tools that cut sample files.
//!
//! `encode(decode(b))` is `b` for every message of exactly its type's length (every byte of every layout is a
//! field); an unknown type is written as the bytes it was read from.

use super::msg::*;

/// Appends the message's bytes (type byte first, no length prefix) to `out`.
pub fn encode(msg: &Message<'_>, out: &mut Vec<u8>) {
    let mut w = Wr(out);
    if let Message::Unknown { raw, .. } = msg {
        w.bytes(raw);
        return;
    }
    w.u8(msg.kind());
    match msg {
        Message::SystemEvent(m) => {
            w.header(&m.header);
            w.u8(m.event_code);
        }
        Message::StockDirectory(m) => {
            w.header(&m.header);
            w.bytes(m.stock);
            w.u8(m.market_category);
            w.u8(m.financial_status);
            w.u32(m.round_lot_size);
            w.u8(m.round_lots_only);
            w.u8(m.issue_classification);
            w.bytes(m.issue_sub_type);
            w.u8(m.authenticity);
            w.u8(m.short_sale_threshold);
            w.u8(m.ipo_flag);
            w.u8(m.luld_tier);
            w.u8(m.etp_flag);
            w.u32(m.etp_leverage_factor);
            w.u8(m.inverse_indicator);
        }
        Message::StockTradingAction(m) => {
            w.header(&m.header);
            w.bytes(m.stock);
            w.u8(m.trading_state);
            w.u8(m.reserved);
            w.bytes(m.reason);
        }
        Message::RegSho(m) => {
            w.header(&m.header);
            w.bytes(m.stock);
            w.u8(m.action);
        }
        Message::MarketParticipantPosition(m) => {
            w.header(&m.header);
            w.bytes(m.mpid);
            w.bytes(m.stock);
            w.u8(m.primary_market_maker);
            w.u8(m.market_maker_mode);
            w.u8(m.participant_state);
        }
        Message::MwcbDeclineLevel(m) => {
            w.header(&m.header);
            w.u64(m.level1.0);
            w.u64(m.level2.0);
            w.u64(m.level3.0);
        }
        Message::MwcbStatus(m) => {
            w.header(&m.header);
            w.u8(m.breached_level);
        }
        Message::IpoQuotingPeriod(m) => {
            w.header(&m.header);
            w.bytes(m.stock);
            w.u32(m.release_time);
            w.u8(m.release_qualifier);
            w.u32(m.ipo_price.0);
        }
        Message::LuldAuctionCollar(m) => {
            w.header(&m.header);
            w.bytes(m.stock);
            w.u32(m.reference_price.0);
            w.u32(m.upper_price.0);
            w.u32(m.lower_price.0);
            w.u32(m.extension);
        }
        Message::OperationalHalt(m) => {
            w.header(&m.header);
            w.bytes(m.stock);
            w.u8(m.market_code);
            w.u8(m.action);
        }
        Message::AddOrder(m) => {
            w.header(&m.header);
            w.u64(m.order_ref);
            w.u8(m.side);
            w.u32(m.shares);
            w.bytes(m.stock);
            w.u32(m.price.0);
            if let Some(mpid) = m.attribution {
                w.bytes(mpid);
            }
        }
        Message::OrderExecuted(m) => {
            w.header(&m.header);
            w.u64(m.order_ref);
            w.u32(m.executed_shares);
            w.u64(m.match_number);
        }
        Message::OrderExecutedWithPrice(m) => {
            w.header(&m.header);
            w.u64(m.order_ref);
            w.u32(m.executed_shares);
            w.u64(m.match_number);
            w.u8(m.printable);
            w.u32(m.execution_price.0);
        }
        Message::OrderCancel(m) => {
            w.header(&m.header);
            w.u64(m.order_ref);
            w.u32(m.cancelled_shares);
        }
        Message::OrderDelete(m) => {
            w.header(&m.header);
            w.u64(m.order_ref);
        }
        Message::OrderReplace(m) => {
            w.header(&m.header);
            w.u64(m.original_ref);
            w.u64(m.new_ref);
            w.u32(m.shares);
            w.u32(m.price.0);
        }
        Message::Trade(m) => {
            w.header(&m.header);
            w.u64(m.order_ref);
            w.u8(m.side);
            w.u32(m.shares);
            w.bytes(m.stock);
            w.u32(m.price.0);
            w.u64(m.match_number);
        }
        Message::CrossTrade(m) => {
            w.header(&m.header);
            w.u64(m.shares);
            w.bytes(m.stock);
            w.u32(m.cross_price.0);
            w.u64(m.match_number);
            w.u8(m.cross_type);
        }
        Message::BrokenTrade(m) => {
            w.header(&m.header);
            w.u64(m.match_number);
        }
        Message::Noii(m) => {
            w.header(&m.header);
            w.u64(m.paired_shares);
            w.u64(m.imbalance_shares);
            w.u8(m.imbalance_direction);
            w.bytes(m.stock);
            w.u32(m.far_price.0);
            w.u32(m.near_price.0);
            w.u32(m.current_reference_price.0);
            w.u8(m.cross_type);
            w.u8(m.price_variation);
        }
        Message::RetailInterest(m) => {
            w.header(&m.header);
            w.bytes(m.stock);
            w.u8(m.interest_flag);
        }
        Message::DlcrPriceDiscovery(m) => {
            w.header(&m.header);
            w.bytes(m.stock);
            w.u8(m.open_eligibility);
            w.u32(m.min_allowable_price.0);
            w.u32(m.max_allowable_price.0);
            w.u32(m.near_execution_price.0);
            w.u64(m.near_execution_time);
            w.u32(m.lower_collar.0);
            w.u32(m.upper_collar.0);
        }
        Message::Unknown { .. } => {}
    }
}

/// Appends the message with the sample files' framing: its length as a big-endian `u16`, then its bytes.
///
/// The length field has 16 bits: an unknown message longer than 65,535 bytes is cut to 65,535.
pub fn encode_framed(msg: &Message<'_>, out: &mut Vec<u8>) {
    let at = out.len();
    out.extend_from_slice(&[0, 0]);
    encode(msg, out);
    let max = at + 2 + u16::MAX as usize;
    out.truncate(max);
    let n = (out.len() - at - 2) as u16;
    out[at..at + 2].copy_from_slice(&n.to_be_bytes());
}

/// The number of bytes [`encode`] writes.
pub fn encoded_len(msg: &Message<'_>) -> usize {
    match msg {
        Message::Unknown { raw, .. } => raw.len(),
        m => message_len(m.kind()).unwrap_or(0),
    }
}

struct Wr<'a>(&'a mut Vec<u8>);

impl Wr<'_> {
    #[inline(always)]
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    #[inline(always)]
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    #[inline(always)]
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    /// The low 48 bits: a timestamp past 2⁴⁸ ns (78 hours) does not fit the field and is cut.
    #[inline(always)]
    fn u48(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_be_bytes()[2..]);
    }
    #[inline(always)]
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    #[inline(always)]
    fn bytes(&mut self, b: &[u8]) {
        self.0.extend_from_slice(b);
    }
    #[inline(always)]
    fn header(&mut self, h: &Header) {
        self.u16(h.stock_locate);
        self.u16(h.tracking_number);
        self.u48(h.timestamp);
    }
}
