//! NASDAQ TotalView-ITCH 5.0: golden decodes of every message type from bytes laid out by hand after the
//! spec's tables, the round trip, the file framing (plain, gzip, faults), and the generator (determinism,
//! consistency, fault rates).

mod common;

use proptest::prelude::*;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use ticklane::event::Price;
use ticklane::itch::gen::{self, GenParams, GenSummary};
use ticklane::itch::*;

// Distinct values, so a field read from the wrong offset shows.
const LOCATE: u16 = 0x1234;
const TRACKING: u16 = 0x5678;
/// 09:30:00.123456789.
const TS: u64 = 34_200_123_456_789;

/// A message built field by field; `at(n)` checks that the next field starts at the spec's offset `n`.
struct Wire(Vec<u8>);

impl Wire {
    fn new(kind: u8) -> Wire {
        Wire(vec![kind])
    }
    /// The common fields: Stock Locate at 1, Tracking Number at 3, Timestamp at 5.
    fn header(self, locate: u16) -> Wire {
        self.at(1).u16(locate).at(3).u16(TRACKING).at(5).u48(TS)
    }
    fn at(self, offset: usize) -> Wire {
        assert_eq!(self.0.len(), offset, "the next field's offset");
        self
    }
    fn u8(mut self, v: u8) -> Wire {
        self.0.push(v);
        self
    }
    fn u16(mut self, v: u16) -> Wire {
        self.0.extend_from_slice(&[(v >> 8) as u8, v as u8]);
        self
    }
    fn u32(mut self, v: u32) -> Wire {
        for i in (0..4).rev() {
            self.0.push((v >> (8 * i)) as u8);
        }
        self
    }
    fn u48(mut self, v: u64) -> Wire {
        for i in (0..6).rev() {
            self.0.push((v >> (8 * i)) as u8);
        }
        self
    }
    fn u64(mut self, v: u64) -> Wire {
        for i in (0..8).rev() {
            self.0.push((v >> (8 * i)) as u8);
        }
        self
    }
    fn alpha(mut self, v: &[u8]) -> Wire {
        self.0.extend_from_slice(v);
        self
    }
    /// Ends the message, checking its total length.
    fn len(self, total: usize) -> Vec<u8> {
        assert_eq!(self.0.len(), total, "message length");
        self.0
    }
}

fn header(locate: u16) -> Header {
    Header { stock_locate: locate, tracking_number: TRACKING, timestamp: TS }
}

/// Decodes a golden message, checks that it encodes back to the same bytes, that each shorter prefix is
/// truncated and that a longer one decodes to the same message.
fn golden(bytes: &[u8]) -> Message<'_> {
    let m = decode(bytes).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(m.kind(), bytes[0]);
    assert_eq!(message_len(bytes[0]), Some(bytes.len()));
    let mut out = Vec::new();
    encode(&m, &mut out);
    assert_eq!(out, bytes, "re-encoded");
    assert_eq!(encoded_len(&m), bytes.len());
    for n in 1..bytes.len() {
        assert_eq!(
            decode(&bytes[..n]),
            Err(DecodeError::Truncated { kind: bytes[0], len: n, need: bytes.len() }),
            "prefix of {n}"
        );
    }
    let mut longer = bytes.to_vec();
    longer.extend_from_slice(b"future fields");
    assert_eq!(decode(&longer).map(|l| format!("{l:?}")), Ok(format!("{m:?}")));
    assert!(is_oversize(bytes[0], longer.len()) && !is_oversize(bytes[0], bytes.len()));
    m
}

#[test]
fn system_event_s() {
    let b = Wire::new(b'S').header(0).at(11).u8(b'Q').len(12); // Event Code at 11
    let Message::SystemEvent(m) = golden(&b) else { panic!("not S") };
    assert_eq!(m, SystemEvent { header: header(0), event_code: b'Q' });
    assert_eq!(decode(&b).expect("S").stock_locate(), None);
    assert_eq!(decode(&b).expect("S").timestamp(), Some(TS));
}

#[test]
fn stock_directory_r() {
    let b = Wire::new(b'R')
        .header(LOCATE)
        .at(11)
        .alpha(b"AAPL    ") // Stock
        .at(19)
        .u8(b'Q') // Market Category
        .at(20)
        .u8(b'N') // Financial Status Indicator
        .at(21)
        .u32(100) // Round Lot Size
        .at(25)
        .u8(b'N') // Round Lots Only
        .at(26)
        .u8(b'C') // Issue Classification
        .at(27)
        .alpha(b"Z ") // Issue Sub-Type
        .at(29)
        .u8(b'P') // Authenticity
        .at(30)
        .u8(b'Y') // Short Sale Threshold Indicator
        .at(31)
        .u8(b'N') // IPO Flag
        .at(32)
        .u8(b'1') // LULD Reference Price Tier
        .at(33)
        .u8(b'Y') // ETP Flag
        .at(34)
        .u32(3) // ETP Leverage Factor
        .at(38)
        .u8(b'Y') // Inverse Indicator
        .len(39);
    let Message::StockDirectory(m) = golden(&b) else { panic!("not R") };
    assert_eq!(
        m,
        StockDirectory {
            header: header(LOCATE),
            stock: b"AAPL    ",
            market_category: b'Q',
            financial_status: b'N',
            round_lot_size: 100,
            round_lots_only: b'N',
            issue_classification: b'C',
            issue_sub_type: b"Z ",
            authenticity: b'P',
            short_sale_threshold: b'Y',
            ipo_flag: b'N',
            luld_tier: b'1',
            etp_flag: b'Y',
            etp_leverage_factor: 3,
            inverse_indicator: b'Y',
        }
    );
    assert_eq!(trim_alpha(m.stock), b"AAPL");
    assert_eq!(decode(&b).expect("R").stock_locate(), Some(LOCATE));
}

#[test]
fn stock_trading_action_h() {
    let b = Wire::new(b'H')
        .header(LOCATE)
        .at(11)
        .alpha(b"MSFT    ") // Stock
        .at(19)
        .u8(b'H') // Trading State
        .at(20)
        .u8(b' ') // Reserved
        .at(21)
        .alpha(b"LUDP") // Reason
        .len(25);
    let Message::StockTradingAction(m) = golden(&b) else { panic!("not H") };
    assert_eq!(
        m,
        StockTradingAction {
            header: header(LOCATE),
            stock: b"MSFT    ",
            trading_state: b'H',
            reserved: b' ',
            reason: b"LUDP"
        }
    );
}

#[test]
fn reg_sho_y() {
    let b = Wire::new(b'Y').header(LOCATE).at(11).alpha(b"ZVZZT   ").at(19).u8(b'1').len(20); // Stock, Reg SHO Action
    let Message::RegSho(m) = golden(&b) else { panic!("not Y") };
    assert_eq!(m, RegSho { header: header(LOCATE), stock: b"ZVZZT   ", action: b'1' });
}

#[test]
fn market_participant_position_l() {
    let b = Wire::new(b'L')
        .header(LOCATE)
        .at(11)
        .alpha(b"GSCO") // MPID
        .at(15)
        .alpha(b"AAPL    ") // Stock
        .at(23)
        .u8(b'Y') // Primary Market Maker
        .at(24)
        .u8(b'P') // Market Maker Mode
        .at(25)
        .u8(b'A') // Market Participant State
        .len(26);
    let Message::MarketParticipantPosition(m) = golden(&b) else { panic!("not L") };
    assert_eq!(
        m,
        MarketParticipantPosition {
            header: header(LOCATE),
            mpid: b"GSCO",
            stock: b"AAPL    ",
            primary_market_maker: b'Y',
            market_maker_mode: b'P',
            participant_state: b'A',
        }
    );
}

#[test]
fn mwcb_decline_level_v() {
    let b = Wire::new(b'V')
        .header(0)
        .at(11)
        .u64(459_395_000_000) // Level 1, Price(8): 4,593.95
        .at(19)
        .u64(424_841_000_000) // Level 2
        .at(27)
        .u64(u64::MAX) // Level 3
        .len(35);
    let Message::MwcbDeclineLevel(m) = golden(&b) else { panic!("not V") };
    assert_eq!(
        m,
        MwcbDeclineLevel {
            header: header(0),
            level1: Price8(459_395_000_000),
            level2: Price8(424_841_000_000),
            level3: Price8(u64::MAX)
        }
    );
    assert_eq!(m.level1.to_price(), Some(Price(4_593_950_000_000)));
    assert_eq!(m.level3.to_price(), None, "past what Price holds");
    assert_eq!(decode(&b).expect("V").stock_locate(), None);
}

#[test]
fn mwcb_status_w() {
    let b = Wire::new(b'W').header(0).at(11).u8(b'2').len(12); // Breached Level
    let Message::MwcbStatus(m) = golden(&b) else { panic!("not W") };
    assert_eq!(m, MwcbStatus { header: header(0), breached_level: b'2' });
}

#[test]
fn ipo_quoting_period_k() {
    let b = Wire::new(b'K')
        .header(0)
        .at(11)
        .alpha(b"NEWCO   ") // Stock
        .at(19)
        .u32(41_400) // IPO Quotation Release Time: 11:30:00
        .at(23)
        .u8(b'A') // IPO Quotation Release Qualifier
        .at(24)
        .u32(170_000) // IPO Price: 17.00
        .len(28);
    let Message::IpoQuotingPeriod(m) = golden(&b) else { panic!("not K") };
    assert_eq!(
        m,
        IpoQuotingPeriod {
            header: header(0),
            stock: b"NEWCO   ",
            release_time: 41_400,
            release_qualifier: b'A',
            ipo_price: Price4(170_000)
        }
    );
    assert_eq!(m.ipo_price.to_price(), Price::from_units(17));
}

#[test]
fn luld_auction_collar_j() {
    let b = Wire::new(b'J')
        .header(LOCATE)
        .at(11)
        .alpha(b"AAPL    ") // Stock
        .at(19)
        .u32(1_000_000) // Auction Collar Reference Price: 100.00
        .at(23)
        .u32(1_050_000) // Upper Auction Collar Price
        .at(27)
        .u32(950_000) // Lower Auction Collar Price
        .at(31)
        .u32(2) // Auction Collar Extension
        .len(35);
    let Message::LuldAuctionCollar(m) = golden(&b) else { panic!("not J") };
    assert_eq!(
        m,
        LuldAuctionCollar {
            header: header(LOCATE),
            stock: b"AAPL    ",
            reference_price: Price4(1_000_000),
            upper_price: Price4(1_050_000),
            lower_price: Price4(950_000),
            extension: 2,
        }
    );
}

#[test]
fn operational_halt_h_lower() {
    let b = Wire::new(b'h')
        .header(LOCATE)
        .at(11)
        .alpha(b"AAPL    ") // Stock
        .at(19)
        .u8(b'X') // Market Code
        .at(20)
        .u8(b'H') // Operational Halt Action
        .len(21);
    let Message::OperationalHalt(m) = golden(&b) else { panic!("not h") };
    assert_eq!(m, OperationalHalt { header: header(LOCATE), stock: b"AAPL    ", market_code: b'X', action: b'H' });
}

#[test]
fn add_order_a() {
    let b = Wire::new(b'A')
        .header(LOCATE)
        .at(11)
        .u64(0x0102_0304_0506_0708) // Order Reference Number
        .at(19)
        .u8(b'B') // Buy/Sell Indicator
        .at(20)
        .u32(300) // Shares
        .at(24)
        .alpha(b"AAPL    ") // Stock
        .at(32)
        .u32(1_234_500) // Price: 123.45
        .len(36);
    let Message::AddOrder(m) = golden(&b) else { panic!("not A") };
    assert_eq!(
        m,
        AddOrder {
            header: header(LOCATE),
            order_ref: 0x0102_0304_0506_0708,
            side: b'B',
            shares: 300,
            stock: b"AAPL    ",
            price: Price4(1_234_500),
            attribution: None,
        }
    );
    assert_eq!(m.price.to_price(), Price(123_450_000_000));
    assert_eq!(Price4::from_price(Price(123_450_000_000)), Some(m.price));
}

#[test]
fn add_order_with_mpid_f() {
    let b = Wire::new(b'F')
        .header(LOCATE)
        .at(11)
        .u64(77) // Order Reference Number
        .at(19)
        .u8(b'S') // Buy/Sell Indicator
        .at(20)
        .u32(0xFFFF_FFFF) // Shares
        .at(24)
        .alpha(b"BRK.A   ") // Stock
        .at(32)
        .u32(0xFFFF_FFFF) // Price
        .at(36)
        .alpha(b"VIRT") // Attribution
        .len(40);
    let Message::AddOrder(m) = golden(&b) else { panic!("not F") };
    assert_eq!(
        m,
        AddOrder {
            header: header(LOCATE),
            order_ref: 77,
            side: b'S',
            shares: u32::MAX,
            stock: b"BRK.A   ",
            price: Price4(u32::MAX),
            attribution: Some(b"VIRT"),
        }
    );
    assert_eq!(m.price.to_price(), Price(u32::MAX as i64 * 100_000));
}

#[test]
fn order_executed_e() {
    let b = Wire::new(b'E')
        .header(LOCATE)
        .at(11)
        .u64(42) // Order Reference Number
        .at(19)
        .u32(100) // Executed Shares
        .at(23)
        .u64(0xAABB_CCDD_EEFF_0011) // Match Number
        .len(31);
    let Message::OrderExecuted(m) = golden(&b) else { panic!("not E") };
    assert_eq!(
        m,
        OrderExecuted {
            header: header(LOCATE),
            order_ref: 42,
            executed_shares: 100,
            match_number: 0xAABB_CCDD_EEFF_0011
        }
    );
}

#[test]
fn order_executed_with_price_c() {
    let b = Wire::new(b'C')
        .header(LOCATE)
        .at(11)
        .u64(42) // Order Reference Number
        .at(19)
        .u32(50) // Executed Shares
        .at(23)
        .u64(9_001) // Match Number
        .at(31)
        .u8(b'N') // Printable
        .at(32)
        .u32(1_234_600) // Execution Price
        .len(36);
    let Message::OrderExecutedWithPrice(m) = golden(&b) else { panic!("not C") };
    assert_eq!(
        m,
        OrderExecutedWithPrice {
            header: header(LOCATE),
            order_ref: 42,
            executed_shares: 50,
            match_number: 9_001,
            printable: b'N',
            execution_price: Price4(1_234_600),
        }
    );
}

#[test]
fn order_cancel_x() {
    let b = Wire::new(b'X').header(LOCATE).at(11).u64(42).at(19).u32(25).len(23); // Order Reference Number, Cancelled Shares
    let Message::OrderCancel(m) = golden(&b) else { panic!("not X") };
    assert_eq!(m, OrderCancel { header: header(LOCATE), order_ref: 42, cancelled_shares: 25 });
}

#[test]
fn order_delete_d() {
    let b = Wire::new(b'D').header(LOCATE).at(11).u64(u64::MAX).len(19); // Order Reference Number
    let Message::OrderDelete(m) = golden(&b) else { panic!("not D") };
    assert_eq!(m, OrderDelete { header: header(LOCATE), order_ref: u64::MAX });
}

#[test]
fn order_replace_u() {
    let b = Wire::new(b'U')
        .header(LOCATE)
        .at(11)
        .u64(42) // Original Order Reference Number
        .at(19)
        .u64(43) // New Order Reference Number
        .at(27)
        .u32(200) // Shares
        .at(31)
        .u32(1_234_400) // Price
        .len(35);
    let Message::OrderReplace(m) = golden(&b) else { panic!("not U") };
    assert_eq!(
        m,
        OrderReplace { header: header(LOCATE), original_ref: 42, new_ref: 43, shares: 200, price: Price4(1_234_400) }
    );
}

#[test]
fn trade_p() {
    let b = Wire::new(b'P')
        .header(LOCATE)
        .at(11)
        .u64(0) // Order Reference Number
        .at(19)
        .u8(b'B') // Buy/Sell Indicator
        .at(20)
        .u32(400) // Shares
        .at(24)
        .alpha(b"AAPL    ") // Stock
        .at(32)
        .u32(1_234_500) // Price
        .at(36)
        .u64(9_002) // Match Number
        .len(44);
    let Message::Trade(m) = golden(&b) else { panic!("not P") };
    assert_eq!(
        m,
        Trade {
            header: header(LOCATE),
            order_ref: 0,
            side: b'B',
            shares: 400,
            stock: b"AAPL    ",
            price: Price4(1_234_500),
            match_number: 9_002,
        }
    );
}

#[test]
fn cross_trade_q() {
    let b = Wire::new(b'Q')
        .header(LOCATE)
        .at(11)
        .u64(1_000_000_000_000) // Shares (8 bytes)
        .at(19)
        .alpha(b"AAPL    ") // Stock
        .at(27)
        .u32(1_234_500) // Cross Price
        .at(31)
        .u64(9_003) // Match Number
        .at(39)
        .u8(b'C') // Cross Type
        .len(40);
    let Message::CrossTrade(m) = golden(&b) else { panic!("not Q") };
    assert_eq!(
        m,
        CrossTrade {
            header: header(LOCATE),
            shares: 1_000_000_000_000,
            stock: b"AAPL    ",
            cross_price: Price4(1_234_500),
            match_number: 9_003,
            cross_type: b'C',
        }
    );
}

#[test]
fn broken_trade_b() {
    let b = Wire::new(b'B').header(LOCATE).at(11).u64(9_002).len(19); // Match Number
    let Message::BrokenTrade(m) = golden(&b) else { panic!("not B") };
    assert_eq!(m, BrokenTrade { header: header(LOCATE), match_number: 9_002 });
}

#[test]
fn noii_i() {
    let b = Wire::new(b'I')
        .header(LOCATE)
        .at(11)
        .u64(500_000) // Paired Shares
        .at(19)
        .u64(12_345) // Imbalance Shares
        .at(27)
        .u8(b'S') // Imbalance Direction
        .at(28)
        .alpha(b"AAPL    ") // Stock
        .at(36)
        .u32(1_230_000) // Far Price
        .at(40)
        .u32(1_232_000) // Near Price
        .at(44)
        .u32(1_231_000) // Current Reference Price
        .at(48)
        .u8(b'O') // Cross Type
        .at(49)
        .u8(b'L') // Price Variation Indicator
        .len(50);
    let Message::Noii(m) = golden(&b) else { panic!("not I") };
    assert_eq!(
        m,
        Noii {
            header: header(LOCATE),
            paired_shares: 500_000,
            imbalance_shares: 12_345,
            imbalance_direction: b'S',
            stock: b"AAPL    ",
            far_price: Price4(1_230_000),
            near_price: Price4(1_232_000),
            current_reference_price: Price4(1_231_000),
            cross_type: b'O',
            price_variation: b'L',
        }
    );
}

#[test]
fn retail_interest_n() {
    let b = Wire::new(b'N').header(LOCATE).at(11).alpha(b"AAPL    ").at(19).u8(b'A').len(20); // Stock, Interest Flag
    let Message::RetailInterest(m) = golden(&b) else { panic!("not N") };
    assert_eq!(m, RetailInterest { header: header(LOCATE), stock: b"AAPL    ", interest_flag: b'A' });
}

#[test]
fn dlcr_price_discovery_o() {
    let b = Wire::new(b'O')
        .header(LOCATE)
        .at(11)
        .alpha(b"DLCR    ") // Stock
        .at(19)
        .u8(b'Y') // Open Eligibility Status
        .at(20)
        .u32(80_000) // Minimum Allowable Price: 8.00
        .at(24)
        .u32(180_000) // Maximum Allowable Price: 18.00
        .at(28)
        .u32(125_000) // Near Execution Price: 12.50
        .at(32)
        .u64(34_200_000_000_000) // Near Execution Time
        .at(40)
        .u32(112_500) // Lower Price Range Collar
        .at(44)
        .u32(137_500) // Upper Price Range Collar
        .len(48);
    let Message::DlcrPriceDiscovery(m) = golden(&b) else { panic!("not O") };
    assert_eq!(
        m,
        DlcrPriceDiscovery {
            header: header(LOCATE),
            stock: b"DLCR    ",
            open_eligibility: b'Y',
            min_allowable_price: Price4(80_000),
            max_allowable_price: Price4(180_000),
            near_execution_price: Price4(125_000),
            near_execution_time: 34_200_000_000_000,
            lower_collar: Price4(112_500),
            upper_collar: Price4(137_500),
        }
    );
    assert_eq!(m.near_execution_price.to_price(), Price(12_500_000_000));
}

#[test]
fn unknown_and_empty() {
    let raw = b"z\x00\x01garbage";
    assert_eq!(decode(raw), Ok(Message::Unknown { kind: b'z', raw }));
    assert_eq!(decode(b""), Err(DecodeError::Empty));
    for k in 0..=255u8 {
        assert_eq!(message_len(k).is_some(), KINDS.contains(&k), "type {k}");
    }
    let e = decode(b"A\x00\x01").expect_err("short");
    assert_eq!(e.to_string(), "message type 'A' truncated: 3 bytes, the layout has 36");
}

#[test]
fn timestamp_is_48_bits_big_endian() {
    let b = Wire::new(b'D').header(1).at(11).u64(1).len(19);
    // 34_200_123_456_789 = 0x1F1A_D635_BD15.
    assert_eq!(&b[5..11], &[0x1F, 0x1A, 0xD6, 0x35, 0xBD, 0x15]);
    let mut max = b.clone();
    max[5..11].fill(0xFF);
    assert_eq!(decode(&max).expect("D").timestamp(), Some((1 << 48) - 1));
    let clock = SessionClock::new("2024-01-02", DEFAULT_TZ).expect("clock");
    assert_eq!(clock.to_epoch(TS), 1_704_171_600_000_000_000 + TS as i64);
}

// The round trip: any bytes of a type's exact length are a message, and every message is such bytes (but
// for timestamps of 2⁴⁸ ns or more, which the field cannot hold), so generating the bytes covers every
// message of every type.
proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]
    #[test]
    fn round_trip_every_type(k in 0..KINDS.len(), body in proptest::collection::vec(any::<u8>(), 64)) {
        let kind = KINDS[k];
        let len = message_len(kind).expect("known");
        let mut bytes = vec![kind];
        bytes.extend_from_slice(&body[..len - 1]);
        let m = decode(&bytes).expect("full length");
        prop_assert_eq!(m.kind(), kind);
        let mut out = Vec::new();
        encode(&m, &mut out);
        prop_assert_eq!(&out, &bytes);
        prop_assert_eq!(decode(&out), Ok(m));
        let mut framed = Vec::new();
        encode_framed(&m, &mut framed);
        prop_assert_eq!(&framed[..2], &(len as u16).to_be_bytes());
        prop_assert_eq!(&framed[2..], &bytes[..]);
    }

    #[test]
    fn frames_give_back_what_was_framed(msgs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..80), 0..40)) {
        let mut file = Vec::new();
        for m in &msgs {
            file.extend_from_slice(&(m.len() as u16).to_be_bytes());
            file.extend_from_slice(m);
        }
        let got: Vec<_> = frames(&file).map(|f| f.expect("well framed")).collect();
        prop_assert_eq!(got.len(), msgs.len());
        let mut offset = 0u64;
        for ((at, bytes), m) in got.iter().zip(&msgs) {
            prop_assert_eq!(*at, offset);
            prop_assert_eq!(*bytes, &m[..]);
            offset += 2 + m.len() as u64;
        }
    }
}

fn framed(msgs: &[&[u8]]) -> Vec<u8> {
    let mut v = Vec::new();
    for m in msgs {
        v.extend_from_slice(&(m.len() as u16).to_be_bytes());
        v.extend_from_slice(m);
    }
    v
}

/// Every frame and error of an opened file, with the counters a reader keeps.
/// Frames (offset, bytes), framing errors as text, counters.
type ReadAll = (Vec<(u64, Vec<u8>)>, Vec<String>, Counters);

fn read_all(f: &mut ItchFile) -> ReadAll {
    let (mut msgs, mut errs, mut c) = (Vec::new(), Vec::new(), Counters::default());
    while let Some(r) = f.next() {
        match r {
            Ok((at, b)) => {
                let _ = c.decode(b);
                msgs.push((at, b.to_vec()));
            }
            Err(e) => {
                c.frame_error(&e);
                errs.push(e.to_string());
            }
        }
    }
    (msgs, errs, c)
}

fn sample_messages() -> Vec<Vec<u8>> {
    vec![
        Wire::new(b'S').header(0).u8(b'O').len(12),
        Wire::new(b'A').header(1).u64(1).u8(b'B').u32(100).alpha(b"AAPL    ").u32(1_000_000).len(36),
        b"zunknown".to_vec(),
        Wire::new(b'E').header(1).u64(1).u32(40).u64(1).len(31),
        Wire::new(b'X').header(1).u64(1).u32(10).len(23)[..20].to_vec(), // truncated
        {
            let mut d = Wire::new(b'D').header(1).u64(1).len(19);
            d.extend_from_slice(b"newer"); // oversize
            d
        },
    ]
}

#[test]
fn plain_and_gzip_files_read_the_same() {
    let dir = tempfile::tempdir().expect("tempdir");
    let msgs = sample_messages();
    let refs: Vec<&[u8]> = msgs.iter().map(|m| &m[..]).collect();
    let bytes = framed(&refs);
    let plain = dir.path().join("day.itch");
    std::fs::write(&plain, &bytes).expect("write");
    // A gzip file named like a plain one: it is known by its magic bytes.
    let gz = dir.path().join("day.bin");
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(&bytes).expect("gzip");
    std::fs::write(&gz, e.finish().expect("gzip")).expect("write");

    let mut p = ItchFile::open(&plain).expect("open");
    let mut g = ItchFile::open(&gz).expect("open");
    assert!(!p.is_gzip() && g.is_gzip());
    let (pm, pe, pc) = read_all(&mut p);
    let (gm, ge, gc) = read_all(&mut g);
    assert_eq!((&pm, &pe, &pc), (&gm, &ge, &gc));
    assert!(pe.is_empty());
    assert_eq!(pm.len(), msgs.len());
    let mut at = 0;
    for ((o, b), m) in pm.iter().zip(&msgs) {
        assert_eq!((*o, b), (at, m));
        at += 2 + m.len() as u64;
    }
    assert_eq!((pc.of(b'S'), pc.of(b'A'), pc.of(b'E'), pc.of(b'D')), (1, 1, 1, 1));
    assert_eq!((pc.unknown, pc.truncated, pc.oversize, pc.messages()), (1, 1, 1, 4));
}

#[test]
fn truncated_tail_and_zero_length() {
    let a = Wire::new(b'D').header(1).u64(1).len(19);
    let mut bytes = framed(&[&a]);
    bytes.extend_from_slice(&[0, 0]); // zero length at 21: skipped
    bytes.extend_from_slice(&framed(&[&a])); // at 23
    let cut = bytes.len();
    bytes.extend_from_slice(&[0, 19]);
    bytes.extend_from_slice(&a[..10]); // cut at 44: needs 21 bytes, 12 there
    let got: Vec<_> = frames(&bytes).collect();
    assert_eq!(got.len(), 4);
    assert!(matches!(got[0], Ok((0, _))));
    assert!(matches!(got[1], Err(FrameError::ZeroLength { offset: 21 })));
    assert!(matches!(got[2], Ok((23, _))));
    match &got[3] {
        Err(e @ FrameError::Truncated { offset, need: 21, available: 12 }) => {
            assert_eq!(*offset as usize, cut);
            assert_eq!(e.offset(), 44);
            assert_eq!(e.to_string(), "truncated message at byte 44: the frame needs 21 bytes, the input has 12 left");
        }
        other => panic!("{other:?}"),
    }
    // A single byte left: the length itself is cut.
    let one: Vec<_> = frames(&[0, 19, 0x44]).chain(frames(&[7])).collect();
    assert!(matches!(one[0], Err(FrameError::Truncated { offset: 0, need: 21, available: 3 })));
    assert!(matches!(one[1], Err(FrameError::Truncated { offset: 0, need: 2, available: 1 })));
    assert_eq!(frames(&[]).count(), 0);

    // The same through a file, plain and gzip: counted.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("t.itch");
    std::fs::write(&path, &bytes).expect("write");
    let (m, e, c) = read_all(&mut ItchFile::open(&path).expect("open"));
    assert_eq!((m.len(), e.len(), c.zero_length, c.truncated_tail, c.of(b'D')), (2, 2, 1, 1, 2));
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(&bytes).expect("gzip");
    std::fs::write(&path, enc.finish().expect("gzip")).expect("write");
    let (gm, ge, gc) = read_all(&mut ItchFile::open(&path).expect("open"));
    assert_eq!((gm, ge, gc), (m, e, c));

    // An empty file.
    std::fs::write(&path, b"").expect("write");
    assert_eq!(read_all(&mut ItchFile::open(&path).expect("open")).0.len(), 0);
}

/// A reader giving at most 7 bytes a call, sometimes `Interrupted`.
struct Dribble<'a>(&'a [u8], u32);

impl std::io::Read for Dribble<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.1 += 1;
        if self.1 % 5 == 0 {
            return Err(std::io::ErrorKind::Interrupted.into());
        }
        let n = buf.len().min(self.0.len()).min(7);
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

#[test]
fn stream_frames_agree_with_slice_frames_across_buffer_refills() {
    // Enough messages to refill the 65,537-byte buffer many times, read in dribbles.
    let mut out = Vec::new();
    let p = params(20_000, 7, 5, 0.01);
    gen::generate(&p, &mut out).expect("generate");
    out.extend_from_slice(&[0, 0, 0, 40, b'A']); // zero length, then a cut tail
    let mut s = StreamFrames::with_capacity(Dribble(&out, 0), 0);
    let mut want = frames(&out);
    loop {
        match (s.next(), want.next()) {
            (None, None) => break,
            (Some(Ok(a)), Some(Ok(b))) => assert_eq!(a, b),
            (Some(Err(a)), Some(Err(b))) => assert_eq!(a.to_string(), b.to_string()),
            (a, b) => panic!("stream {a:?}, slice {b:?}"),
        }
    }
}

fn params(messages: u64, seed: u64, stocks: u16, faults: f64) -> GenParams {
    let clock = SessionClock::new("2024-01-02", DEFAULT_TZ).expect("clock");
    GenParams {
        messages,
        seed,
        stocks,
        start: clock.local_time(9, 30, 0).expect("09:30"),
        end: clock.local_time(16, 0, 0).expect("16:00"),
        faults,
    }
}

fn generated(p: &GenParams) -> (Vec<u8>, GenSummary) {
    let mut out = Vec::new();
    let s = gen::generate(p, &mut out).expect("generate");
    (out, s)
}

#[test]
fn generator_is_deterministic() {
    let (a, sa) = generated(&params(50_000, 1, 10, 0.0));
    let (b, sb) = generated(&params(50_000, 1, 10, 0.0));
    let (c, _) = generated(&params(50_000, 2, 10, 0.0));
    assert_eq!(a, b);
    assert_eq!(sa, sb);
    assert_ne!(a, c);
    assert_eq!(sa.bytes, a.len() as u64);
    assert_eq!(sa.messages, 50_000);
    assert!(gen::generate(&params(gen::overhead(10) - 1, 1, 10, 0.0), &mut Vec::new()).is_err());
    let (min, s) = generated(&params(gen::overhead(10), 1, 10, 0.0));
    assert_eq!(frames(&min).count() as u64, gen::overhead(10));
    assert_eq!(s.live_at_end, 0);
}

/// What a consistency check found in a generated file.
#[derive(Debug, Default)]
struct Findings {
    unknown_types: u64,
    unknown_refs: u64,
    overfills: u64,
    counters: Counters,
    max_live: usize,
}

/// Per locate: live orders per price, bids and asks.
type Books = HashMap<u16, (BTreeMap<u32, u32>, BTreeMap<u32, u32>)>;

#[derive(Clone, Copy)]
struct Order {
    locate: u16,
    side: u8,
    price: u32,
    shares: u32,
}

/// Reads a generated file and checks every rule the generator promises, panicking at the first break
/// that is not one of the injected faults (which it counts).
fn check_consistency(bytes: &[u8], stocks: u16) -> Findings {
    let mut f = Findings::default();
    let mut live: HashMap<u64, Order> = HashMap::new();
    let mut seen_refs: HashSet<u64> = HashSet::new();
    let mut books: Books = HashMap::new();
    let mut symbols: HashMap<u16, [u8; 8]> = HashMap::new();
    let mut last_ts = 34_200_000_000_000; // 09:30
    let mut last_match = 0u64;
    let mut system = Vec::new();
    let mut n = 0usize;
    let total = frames(bytes).count();

    fn level(book: &mut BTreeMap<u32, u32>, price: u32, add: bool) {
        let e = book.entry(price).or_insert(0);
        if add {
            *e += 1;
        } else {
            *e -= 1;
            if *e == 0 {
                book.remove(&price);
            }
        }
    }
    fn not_crossed(books: &Books, locate: u16, at: u64) {
        let (bids, asks) = &books[&locate];
        if let (Some((&bid, _)), Some((&ask, _))) = (bids.last_key_value(), asks.first_key_value()) {
            assert!(bid < ask, "book of {locate} crossed or locked at {at}: bid {bid} ask {ask}");
        }
    }

    for fr in frames(bytes) {
        let (at, b) = fr.expect("generated files frame cleanly");
        let m = f.counters.decode(b).expect("generated messages decode");
        n += 1;
        if let Message::Unknown { .. } = m {
            f.unknown_types += 1;
            continue;
        }
        let ts = m.timestamp().expect("known type");
        assert!(ts >= last_ts, "timestamp goes back at {at}");
        last_ts = ts;
        if let Some(l) = m.stock_locate() {
            assert!(l <= stocks, "locate {l} at {at}");
        }
        match m {
            Message::SystemEvent(e) => {
                system.push(e.event_code);
                match e.event_code {
                    b'O' => assert_eq!(n, 1, "start of messages first"),
                    b'C' => assert_eq!(n, total, "end of messages last"),
                    _ => {}
                }
            }
            Message::StockDirectory(d) => {
                assert_eq!(system, b"O", "directory before system hours");
                assert!(symbols.insert(d.header.stock_locate, *d.stock).is_none(), "one R per stock");
                books.insert(d.header.stock_locate, Default::default());
            }
            Message::AddOrder(a) => {
                let l = a.header.stock_locate;
                assert_eq!(symbols.get(&l), Some(a.stock), "symbol of locate {l} at {at}");
                assert!(a.side == b'B' || a.side == b'S');
                assert!(a.shares > 0 && a.price.0 > 0, "at {at}");
                assert!(seen_refs.insert(a.order_ref), "reference {} reused at {at}", a.order_ref);
                live.insert(a.order_ref, Order { locate: l, side: a.side, price: a.price.0, shares: a.shares });
                let book = books.get_mut(&l).expect("R first");
                level(if a.side == b'B' { &mut book.0 } else { &mut book.1 }, a.price.0, true);
                not_crossed(&books, l, at);
            }
            Message::OrderExecuted(OrderExecuted { order_ref, executed_shares: n, header, .. })
            | Message::OrderExecutedWithPrice(OrderExecutedWithPrice {
                order_ref, executed_shares: n, header, ..
            }) => {
                let mn = match m {
                    Message::OrderExecuted(e) => e.match_number,
                    Message::OrderExecutedWithPrice(e) => e.match_number,
                    _ => unreachable!(),
                };
                assert!(mn > last_match, "match numbers increase");
                last_match = mn;
                let Some(o) = live.get_mut(&order_ref) else {
                    f.unknown_refs += 1;
                    continue;
                };
                assert_eq!(o.locate, header.stock_locate);
                assert!(n > 0);
                if n > o.shares {
                    f.overfills += 1;
                    o.shares = 0;
                } else {
                    o.shares -= n;
                }
                if o.shares == 0 {
                    let o = live.remove(&order_ref).expect("live");
                    let book = books.get_mut(&o.locate).expect("book");
                    level(if o.side == b'B' { &mut book.0 } else { &mut book.1 }, o.price, false);
                }
            }
            Message::OrderCancel(x) => {
                let Some(o) = live.get_mut(&x.order_ref) else {
                    f.unknown_refs += 1;
                    continue;
                };
                assert!(x.cancelled_shares > 0 && x.cancelled_shares < o.shares, "partial cancel at {at}");
                o.shares -= x.cancelled_shares;
            }
            Message::OrderDelete(d) => {
                let o = live.remove(&d.order_ref).unwrap_or_else(|| panic!("delete of a dead order at {at}"));
                assert_eq!(o.locate, d.header.stock_locate);
                let book = books.get_mut(&o.locate).expect("book");
                level(if o.side == b'B' { &mut book.0 } else { &mut book.1 }, o.price, false);
            }
            Message::OrderReplace(u) => {
                let o = live.remove(&u.original_ref).unwrap_or_else(|| panic!("replace of a dead order at {at}"));
                assert_eq!(o.locate, u.header.stock_locate);
                assert!(seen_refs.insert(u.new_ref), "new reference {} reused at {at}", u.new_ref);
                assert!(u.shares > 0 && u.price.0 > 0);
                let book = books.get_mut(&o.locate).expect("book");
                let side = if o.side == b'B' { &mut book.0 } else { &mut book.1 };
                level(side, o.price, false);
                level(side, u.price.0, true);
                live.insert(u.new_ref, Order { price: u.price.0, shares: u.shares, ..o });
                not_crossed(&books, o.locate, at);
            }
            Message::Trade(t) => {
                assert_eq!((t.order_ref, t.side), (0, b'B'));
                assert!(t.match_number > last_match);
                last_match = t.match_number;
            }
            Message::CrossTrade(q) => {
                assert!(q.match_number > last_match);
                last_match = q.match_number;
            }
            Message::BrokenTrade(b) => assert!(b.match_number <= last_match && b.match_number > 0),
            _ => {}
        }
        f.max_live = f.max_live.max(live.len());
    }
    assert_eq!(system, b"OSQMEC", "system events");
    assert_eq!(symbols.len(), stocks as usize);
    f
}

#[test]
fn generated_files_are_consistent_and_have_every_type() {
    let p = params(400_000, 11, 20, 0.0);
    let (bytes, s) = generated(&p);
    let f = check_consistency(&bytes, 20);
    assert_eq!((f.unknown_types, f.unknown_refs, f.overfills), (0, 0, 0));
    assert_eq!(f.counters.messages(), 400_000);
    for k in KINDS {
        assert!(f.counters.of(k) > 0, "type {} missing", k as char);
        assert_eq!(f.counters.of(k), s.by_type[k as usize], "type {}", k as char);
    }
    assert_eq!(f.max_live as u64, s.max_live);
    assert!(s.max_live <= 20 * gen::MAX_LIVE_PER_STOCK as u64);
    // The flow's mix (docs/formats.md): adds, deletes and replaces dominate.
    let share = |k: u8| f.counters.of(k) as f64 / 400_000.0;
    assert!(share(b'A') > 0.25 && share(b'D') > 0.2 && share(b'U') > 0.1, "A {} D {}", share(b'A'), share(b'D'));
}

#[test]
fn faults_appear_at_their_rate() {
    let (n, rate) = (300_000u64, 0.03);
    let p = params(n, 5, 10, rate);
    let (bytes, s) = generated(&p);
    let f = check_consistency(&bytes, 10);
    assert_eq!(f.unknown_types, s.unknown_type_faults);
    assert_eq!(f.unknown_refs, s.unknown_ref_faults);
    assert_eq!(f.overfills, s.overfill_faults);
    assert_eq!(f.counters.unknown, s.unknown_type_faults);
    // Each kind a third of the faults: expected 3,000 here; within ±15 % (about 8 standard deviations).
    let third = (n - gen::overhead(10)) as f64 * rate / 3.0;
    for (name, got) in [("unknown type", f.unknown_types), ("unknown ref", f.unknown_refs), ("overfill", f.overfills)] {
        assert!((got as f64 - third).abs() < 0.15 * third, "{name}: {got}, expected about {third:.0}");
    }
}

#[test]
fn cli_writes_the_same_file_plain_and_gzip() {
    let dir = tempfile::tempdir().expect("tempdir");
    let args = |out: &str, extra: &[&'static str]| {
        let mut v = vec!["itch-gen", "--out", out, "--messages", "30000", "--seed", "9", "--stocks", "8"];
        v.extend_from_slice(extra);
        v.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let run = |a: Vec<String>| {
        let a: Vec<&str> = a.iter().map(|s| s.as_str()).collect();
        common::ticklane_ok(&a, dir.path())
    };
    run(args("a.itch", &[]));
    run(args("b.itch", &[]));
    run(args("c.itch", &["--gzip"]));
    let o = run(args("d.itch", &["--faults", "0.01"]));
    assert!(common::stderr(&o).contains("30000 messages"), "{}", common::stderr(&o));
    let a = std::fs::read(dir.path().join("a.itch")).expect("a");
    assert_eq!(a, std::fs::read(dir.path().join("b.itch")).expect("b"));
    assert_eq!(a, generated(&params(30_000, 9, 8, 0.0)).0, "the CLI writes what the library generates");
    let (plain, _, pc) = read_all(&mut ItchFile::open(&dir.path().join("a.itch")).expect("open"));
    let mut gz = ItchFile::open(&dir.path().join("c.itch")).expect("open");
    assert!(gz.is_gzip());
    let (unzipped, _, gc) = read_all(&mut gz);
    assert_eq!((plain, pc), (unzipped, gc));
    let bad = common::ticklane(&["itch-gen", "--out", "x", "--messages", "10", "--stocks", "8"], dir.path());
    assert!(!bad.status.success());
    assert!(common::stderr(&bad).contains("at least 55"), "{}", common::stderr(&bad));
}
