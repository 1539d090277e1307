//! `ticklane::itch::decode` on any bytes as one ITCH 5.0 message (docs/formats.md, "NASDAQ TotalView-ITCH 5.0").
//!
//! Checks: no panic; empty input is `Empty`; an undefined type byte is `Unknown` carrying the whole input; a
//! defined type shorter than its layout is `Truncated` with the input's length and the layout's; anything else
//! decodes, and `encode` writes back exactly the layout's prefix of the input (every byte is a field), which
//! decodes to the same message; the accessors and price and time conversions do not panic, and `Counters`
//! counts the message the way `decode` classed it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ticklane::itch::SessionClock;
use ticklane::itch::{decode, encode, encoded_len, is_oversize, message_len, Counters, DecodeError, Message};

fuzz_target!(|data: &[u8]| {
    let mut counters = Counters::default();
    let r = counters.decode(data);
    assert_eq!(r, decode(data), "Counters::decode is decode");
    match r {
        Err(DecodeError::Empty) => {
            assert!(data.is_empty());
            assert_eq!(counters.truncated, 1);
        }
        Err(DecodeError::Truncated { kind, len, need }) => {
            assert_eq!((kind, len), (data[0], data.len()));
            assert_eq!(message_len(kind), Some(need));
            assert!(len < need);
            assert_eq!(counters.truncated, 1);
        }
        Ok(Message::Unknown { kind, raw }) => {
            assert_eq!(message_len(kind), None);
            assert_eq!((kind, raw), (data[0], data));
            assert_eq!(counters.unknown, 1);
        }
        Ok(m) => {
            let kind = m.kind();
            let need = message_len(kind).expect("a known type");
            assert_eq!(kind, data[0]);
            assert!(data.len() >= need);
            let mut out = Vec::new();
            encode(&m, &mut out);
            assert_eq!(out, &data[..need], "re-encoded");
            assert_eq!(encoded_len(&m), need);
            assert_eq!(decode(&out), Ok(m));
            assert_eq!(counters.of(kind), 1);
            assert_eq!(counters.oversize, u64::from(is_oversize(kind, data.len())));
            assert_eq!(is_oversize(kind, data.len()), data.len() > need);
            let ts = m.timestamp().expect("known types have a header");
            assert!(ts < 1 << 48);
            let clock = SessionClock::new("2024-01-02", "America/New_York").expect("clock");
            assert!(clock.to_epoch(ts) >= clock.midnight());
            let _ = (m.stock_locate(), m.stock(), m.header());
            prices(&m);
        }
    }
});

/// Every price field converts: `Price(4)` exactly (×100,000), `Price(8)` (×10) or `None` past `i64`.
fn prices(m: &Message<'_>) {
    let p4 = |p: ticklane::itch::Price4| assert_eq!(p.to_price().0, p.0 as i64 * 100_000);
    match m {
        Message::AddOrder(a) => p4(a.price),
        Message::OrderExecutedWithPrice(c) => p4(c.execution_price),
        Message::OrderReplace(u) => p4(u.price),
        Message::Trade(t) => p4(t.price),
        Message::CrossTrade(q) => p4(q.cross_price),
        Message::IpoQuotingPeriod(k) => p4(k.ipo_price),
        Message::LuldAuctionCollar(j) => [j.reference_price, j.upper_price, j.lower_price].into_iter().for_each(p4),
        Message::Noii(i) => [i.far_price, i.near_price, i.current_reference_price].into_iter().for_each(p4),
        Message::DlcrPriceDiscovery(o) => {
            [o.min_allowable_price, o.max_allowable_price, o.near_execution_price, o.lower_collar, o.upper_collar]
                .into_iter()
                .for_each(p4)
        }
        Message::MwcbDeclineLevel(v) => {
            for l in [v.level1, v.level2, v.level3] {
                match l.to_price() {
                    Some(p) => assert_eq!(p.0 as i128, l.0 as i128 * 10),
                    None => assert!(l.0 as i128 * 10 > i64::MAX as i128),
                }
            }
        }
        _ => {}
    }
}
