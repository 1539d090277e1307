//! What can go wrong applying a feed's order messages to the books, as typed values carrying the data.

use crate::event::{KeyId, Price, Qty};
use std::fmt;
use thiserror::Error;

/// The book operation a message asked for (ITCH A/F, E, C, X, D, U).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Op {
    Add = 0,
    Execute = 1,
    ExecuteAt = 2,
    Cancel = 3,
    Delete = 4,
    Replace = 5,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Add => "add",
            Op::Execute => "execute",
            Op::ExecuteAt => "execute_at",
            Op::Cancel => "cancel",
            Op::Delete => "delete",
            Op::Replace => "replace",
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A message the books refused (the books are unchanged), or an anomaly an applied update reports
/// ([`BookError::Crossed`], [`BookError::OverExecution`] in [`crate::book::Update`]).
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
pub enum BookError {
    /// Execute, cancel, delete or replace of a reference no live order has.
    #[error("{op}: order {reference} is not in the book")]
    OrderNotFound { reference: u64, op: Op },
    /// An add (or the new reference of a replace) whose reference a live order already has.
    #[error("{op}: order {reference} is already in the book")]
    DuplicateReference { reference: u64, op: Op },
    /// A share count that is zero or negative, or for an add or replace above
    /// [`MAX_SHARES`](crate::book::MAX_SHARES).
    #[error("{op}: order {reference} with {shares} shares")]
    InvalidShares { reference: u64, op: Op, shares: Qty },
    /// An add for an instrument index at or beyond the limit the books were built with.
    #[error("{op}: order {reference} for instrument {instrument}, the limit is {limit} instruments")]
    InstrumentOutOfRange { reference: u64, op: Op, instrument: KeyId, limit: u32 },
    /// After an update the best bid is at or above the best ask (locked when equal). The update applied.
    #[error("instrument {instrument}: book crossed, best bid {bid} >= best ask {ask}")]
    Crossed { instrument: KeyId, bid: Price, ask: Price },
    /// An execution or cancel of more shares than the order had: the order was removed. The update applied.
    #[error("{op}: order {reference} had {remaining} shares, {requested} requested; the order was removed")]
    OverExecution { reference: u64, op: Op, requested: Qty, remaining: Qty },
}
