//! The rejects path: `RejectRow::new` from arbitrary record bytes, then `Encoder::encode_reject` as CSV and as
//! JSON lines.
//!
//! Input: byte 0 picks the reason, bytes 1–2 the columns (0 to 4 of `line`, `reason`, `text` and `symbol`, a
//! column rejects do not have, which is written empty/null; repeats allowed), bytes 3–10 the line number,
//! the rest is the record (longer than 200 bytes is truncated).
//!
//! Checks: no panic; the row keeps the first 200 bytes and says whether it truncated; the CSV output is exactly
//! one RFC 4180 record whose fields read back as the line number, the reason text and the record bytes
//! exactly; the JSON output is one line that serde_json parses as an object whose `line` is the number,
//! `reason` the reason text and `text` the record (invalid UTF-8 replaced by U+FFFD, as
//! `String::from_utf8_lossy` does).
#![no_main]

use libfuzzer_sys::fuzz_target;
use ticklane::config::{Format, StreamKind};
use ticklane::record::{RejectReason, RejectRow};
use ticklane::sink::{Column, Encoder};
use ticklane::time::TimeUnit;
use ticklane_fuzz::parse_csv_record;

const REASONS: [RejectReason; 18] = [
    RejectReason::MissingField("ts"),
    RejectReason::MissingField("symbol"),
    RejectReason::MissingField("price"),
    RejectReason::MissingField("qty"),
    RejectReason::BadTimestamp,
    RejectReason::TimestampOutOfRange,
    RejectReason::BadPrice,
    RejectReason::BadQty,
    RejectReason::BadSide,
    RejectReason::EmptySymbol,
    RejectReason::SymbolNotString,
    RejectReason::BadUtf8,
    RejectReason::BadJson,
    RejectReason::TooManyFields,
    RejectReason::TooManyInstruments,
    RejectReason::BadBinary(ticklane::binary::why::KIND),
    RejectReason::BadBinary("symbol_len is over 32"),
    RejectReason::BadFeed("ITCH message"),
];

/// Fails to compile when a reason is added, as a reminder to add it to `REASONS`.
#[allow(dead_code)]
fn every_reason_is_listed(r: RejectReason) {
    match r {
        RejectReason::MissingField(_)
        | RejectReason::BadTimestamp
        | RejectReason::TimestampOutOfRange
        | RejectReason::BadPrice
        | RejectReason::BadQty
        | RejectReason::BadSide
        | RejectReason::EmptySymbol
        | RejectReason::SymbolNotString
        | RejectReason::BadUtf8
        | RejectReason::BadJson
        | RejectReason::TooManyFields
        | RejectReason::TooManyInstruments
        | RejectReason::BadBinary(_)
        | RejectReason::BadFeed(_) => {}
    }
}

const COLUMNS: [Column; 4] = [Column::Line, Column::Reason, Column::Text, Column::Symbol];

fuzz_target!(|data: &[u8]| {
    if data.len() < 11 {
        return;
    }
    let reason = REASONS[data[0] as usize % REASONS.len()];
    let sel = u16::from_le_bytes([data[1], data[2]]) as usize;
    let columns: Vec<Column> = if sel == 0 {
        Column::defaults(StreamKind::Reject, &[], false)
    } else {
        let n = sel % 5;
        (0..n).map(|i| COLUMNS[(sel / 5 >> (2 * i)) & 3]).collect()
    };
    let line = u64::from_le_bytes(data[3..11].try_into().unwrap());
    let record = &data[11..];

    let row = RejectRow::new(line, reason, record);
    let n = record.len().min(RejectRow::TEXT);
    assert_eq!(row.text(), &record[..n]);
    assert_eq!(row.truncated, record.len() > RejectRow::TEXT);
    assert_eq!((row.line, row.reason), (line, reason));

    let mut reason_text = Vec::new();
    reason.describe(&mut reason_text);
    assert!(!reason_text.is_empty());
    let want = |c: Column| -> Vec<u8> {
        match c {
            Column::Line => line.to_string().into_bytes(),
            Column::Reason => reason_text.clone(),
            Column::Text => row.text().to_vec(),
            _ => Vec::new(),
        }
    };

    // CSV: one record whose fields read back exactly.
    let csv = Encoder { format: Format::Csv, columns: columns.clone(), unit: TimeUnit::Millis };
    let mut out = Vec::new();
    csv.encode_reject(&row, &mut out);
    let fields =
        parse_csv_record(&out).unwrap_or_else(|| panic!("not one CSV record: {:?}", String::from_utf8_lossy(&out)));
    if columns.is_empty() {
        assert_eq!(out, b"\n");
    } else {
        assert_eq!(fields.len(), columns.len(), "CSV field count: {:?}", String::from_utf8_lossy(&out));
        for (c, f) in columns.iter().zip(&fields) {
            assert_eq!(*f, want(*c), "CSV column {c:?} does not read back");
        }
    }

    // JSON lines: one line, a JSON object with the right values.
    let json = Encoder { format: Format::Jsonl, columns: columns.clone(), unit: TimeUnit::Millis };
    let mut out = Vec::new();
    json.encode_reject(&row, &mut out);
    assert_eq!(out.last(), Some(&b'\n'));
    assert!(!out[..out.len() - 1].contains(&b'\n'), "JSON row spans lines");
    let v: serde_json::Value = serde_json::from_slice(&out)
        .unwrap_or_else(|e| panic!("JSON row does not parse ({e}): {:?}", String::from_utf8_lossy(&out)));
    let obj = v.as_object().expect("JSON row is not an object");
    for c in &columns {
        let got = &obj[c.name()];
        match c {
            Column::Line => assert_eq!(got.as_u64(), Some(line), "line"),
            Column::Reason => assert_eq!(got.as_str().map(str::as_bytes), Some(&reason_text[..]), "reason"),
            Column::Text => {
                assert_eq!(got.as_str(), Some(&*String::from_utf8_lossy(row.text())), "text does not read back")
            }
            _ => assert!(got.is_null(), "{c:?} should be null"),
        }
    }
    let mut distinct = columns.clone();
    distinct.sort_by_key(|c| c.name());
    distinct.dedup();
    assert_eq!(obj.len(), distinct.len());
});
