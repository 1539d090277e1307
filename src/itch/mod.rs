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
