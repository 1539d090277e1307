//! MoldUDP64 transport: downstream packets, sequence tracking with gap reports, a sender with fault injection
//! and UDP receive sockets. It carries opaque messages; what is inside them (ITCH) is decoded elsewhere.
//!
//! - [`packet`]: the packet layout, read in place ([`Packet`], [`Messages`]) and its header encoding.
//! - [`tracker`]: the expected sequence per session, gaps, duplicates, heartbeats, end of session ([`Tracker`]).
//! - [`sender`]: packs messages into packets and sends them, paced, with seeded loss, reordering and
//!   duplication for tests ([`Sender`], [`Packetizer`]).
//! - [`udp`]: the receive socket (bind, multicast join, SO_RCVBUF) polled into a tracker ([`Receiver`]).
//!
//! docs/formats.md, "MoldUDP64", is the reference for the bytes and the rules. Retransmission requests to a
//! MoldUDP64 request server are not built: a gap is reported and counted, never filled.

pub mod packet;
pub mod sender;
pub mod tracker;
pub mod udp;

pub use packet::{Header, Kind, Messages, Packet, PacketError, Session, SessionError};
pub use sender::{Faults, Packetizer, SendReport, Sender, SenderConfig, SenderError};
pub use tracker::{Counters, Gap, Start, Tracked, Tracker, Verdict};
pub use udp::{Receiver, ReceiverConfig, UdpError};
