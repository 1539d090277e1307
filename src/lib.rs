//! ticklane: a low-latency event-time stream processor for market data.
//!
//! Flink's DataStream window semantics (event time, bounded-out-of-orderness watermarks, tumbling, sliding
//! and session windows, allowed lateness, late side outputs) in one process: sources feed shard workers
//! over lock-free SPSC rings; each shard owns the state of its keys; one emitter writes the results.
//! docs/architecture.md maps the modules; docs/semantics.md states the contract.
//!
//! Layers, bottom up: domain types ([`event`], [`record`], [`symbols`], [`refdata`]) → engines ([`time::watermark`],
//! [`window`], [`agg`], [`continuous`]) → runtime ([`pipeline`], [`source`], [`sink`], [`metrics`]) →
//! configuration ([`config`]).

pub mod agg;
pub mod binary;
pub mod book;
pub mod checkpoint;
pub mod config;
pub mod continuous;
pub mod event;
pub mod gen;
pub mod hint;
pub mod itch;
pub mod kafka;
pub mod metrics;
pub mod moldudp64;
pub mod operator;
pub mod pipeline;
pub mod record;
pub mod refdata;
pub mod reload;
pub mod service;
pub mod sink;
pub mod source;
pub mod stream;
pub mod symbols;
pub mod time;
pub mod window;
