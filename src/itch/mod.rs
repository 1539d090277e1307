//! NASDAQ TotalView-ITCH 5.0: message decoder and encoder, sample-file framing, timestamps, and a synthetic
//! file generator.
//!
//! [`decode`] reads one message (zero-copy, no allocation, never panics); [`frames`] and [`ItchFile`] split
//! a sample file into messages; [`SessionClock`] turns the messages' nanoseconds since midnight into epoch
//! time; [`gen`] writes consistent synthetic files (`ticklane itch-gen`). docs/formats.md, "NASDAQ
//! TotalView-ITCH 5.0", has the layouts and the rules.

pub mod encode;
pub mod file;
pub mod gen;
pub mod msg;
pub mod time;

pub use encode::{encode, encode_framed, encoded_len};
pub use file::{frames, map, Counters, FrameError, Frames, ItchFile, StreamFrames};
pub use msg::*;
pub use time::{SessionClock, TimeError, DEFAULT_TZ};

/// The listing a stock directory message (`R`) gives, for the instrument reference data.
pub fn listing(d: &StockDirectory<'_>) -> crate::refdata::Listing {
    crate::refdata::Listing {
        symbol: *d.stock,
        market_category: d.market_category,
        financial_status: d.financial_status,
        round_lot_size: d.round_lot_size,
        round_lots_only: d.round_lots_only,
        issue_classification: d.issue_classification,
        issue_sub_type: *d.issue_sub_type,
        authenticity: d.authenticity,
        short_sale_threshold: d.short_sale_threshold,
        ipo_flag: d.ipo_flag,
        luld_tier: d.luld_tier,
        etp_flag: d.etp_flag,
        etp_leverage_factor: d.etp_leverage_factor,
        inverse: d.inverse_indicator,
    }
}
