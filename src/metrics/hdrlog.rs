//! HdrHistogram interval logs: written once per interval per stage (tag = stage name), in the standard
//! format HdrHistogram's own tools (HistogramLogProcessor, HdrHistogramVisualizer …) read; read back by
//! `ticklane stats`; and the same format in memory for the metrics endpoint's `/api/histograms`.

use super::new_histogram;
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, IntervalLogWriterBuilder, LogEntry, Tag};
use hdrhistogram::serialization::{Deserializer, V2DeflateSerializer};
use hdrhistogram::Histogram;
use std::io::{self, Write};
use std::path::Path;
use std::time::{Duration, SystemTime};

/// Appends interval histograms to a log file.
pub struct IntervalLog {
    out: io::BufWriter<std::fs::File>,
    ser: V2DeflateSerializer,
    start: SystemTime,
}

impl IntervalLog {
    /// Creates (truncates) `path` and writes the header: a comment, StartTime and BaseTime.
    pub fn create(path: &Path, start: SystemTime) -> io::Result<IntervalLog> {
        let file = std::fs::File::create(path)?;
        let mut out = io::BufWriter::new(file);
        let mut ser = V2DeflateSerializer::new();
        IntervalLogWriterBuilder::new()
            .add_comment("ticklane latency histograms, ns; tags: ingest_to_shard, shard, shard_to_sink, end_to_end")
            .with_start_time(start)
            .with_base_time(start)
            .begin_log_with(&mut out, &mut ser)?;
        out.flush()?;
        Ok(IntervalLog { out, ser, start })
    }

    /// Writes one interval's histogram for `tag`; `from` is when the interval began. Empty histograms are
    /// skipped.
    pub fn write(&mut self, tag: &str, h: &Histogram<u64>, from: SystemTime, len: Duration) -> io::Result<()> {
        if h.is_empty() {
            return Ok(());
        }
        let mut w = IntervalLogWriterBuilder::new().begin_log_with(&mut self.out, &mut self.ser)?;
        let offset = from.duration_since(self.start).unwrap_or_default();
        w.write_histogram(h, offset, len, Tag::new(tag)).map_err(|e| io::Error::other(format!("{e:?}")))?;
        Ok(())
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// An interval log holding one histogram per tag, each covering `len` from `start`: the histograms since a job
/// started, as its metrics endpoint serves them. Empty histograms are left out.
pub fn encode(hists: &[(&str, &Histogram<u64>)], start: SystemTime, len: Duration) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut ser = V2DeflateSerializer::new();
    let mut w = IntervalLogWriterBuilder::new()
        .add_comment("ticklane latency histograms since the start, ns; one per stage (tag)")
        .with_start_time(start)
        .with_base_time(start)
        .begin_log_with(&mut out, &mut ser)?;
    for (tag, h) in hists.iter().filter(|(_, h)| !h.is_empty()) {
        w.write_histogram(h, Duration::ZERO, len, Tag::new(tag)).map_err(|e| io::Error::other(format!("{e:?}")))?;
    }
    Ok(out)
}

/// Reads an interval log and sums its histograms per tag (untagged ones under `""`): the pipeline's stages in
/// pipeline order, then other tags in order of first appearance.
pub fn read_log(path: &Path) -> anyhow::Result<Vec<(String, Histogram<u64>)>> {
    let bytes = std::fs::read(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    parse(&bytes, &path.display())
}

/// [`read_log`] of a log in memory; `what` names it in errors.
pub fn parse(bytes: &[u8], what: &dyn std::fmt::Display) -> anyhow::Result<Vec<(String, Histogram<u64>)>> {
    let path = what;
    let mut out: Vec<(String, Histogram<u64>)> = Vec::new();
    let mut de = Deserializer::new();
    for (i, entry) in IntervalLogIterator::new(bytes).enumerate() {
        let entry =
            entry.map_err(|e| anyhow::anyhow!("{path}: entry {}: not an HdrHistogram interval log ({e:?})", i + 1))?;
        let LogEntry::Interval(ih) = entry else {
            continue;
        };
        let tag = ih.tag().map(|t| t.as_str().to_string()).unwrap_or_default();
        let raw = base64_decode(ih.encoded_histogram())
            .ok_or_else(|| anyhow::anyhow!("{path}: interval {} ({tag}): bad base64", i + 1))?;
        let h: Histogram<u64> = de
            .deserialize(&mut io::Cursor::new(raw))
            .map_err(|e| anyhow::anyhow!("{path}: interval {} ({tag}): {e:?}", i + 1))?;
        match out.iter_mut().find(|(t, _)| *t == tag) {
            Some((_, acc)) => acc.add(&h).map_err(|e| anyhow::anyhow!("{e:?}"))?,
            None => {
                let mut acc = new_histogram();
                acc.add(&h).map_err(|e| anyhow::anyhow!("{e:?}"))?;
                out.push((tag, acc));
            }
        }
    }
    // Pipeline order for the known stages, whatever order the threads happened to write them in.
    out.sort_by_key(|(tag, _)| super::STAGES.iter().position(|s| s == tag).unwrap_or(usize::MAX));
    Ok(out)
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s.trim()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_then_read_sums_per_tag() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lat.hlog");
        let start = SystemTime::now();
        let mut log = IntervalLog::create(&path, start).unwrap();
        let mut a = new_histogram();
        a.record(1_000).unwrap();
        a.record(2_000).unwrap();
        let mut b = new_histogram();
        b.record(5_000_000).unwrap();
        log.write("end_to_end", &b, start, Duration::from_secs(1)).unwrap();
        log.write("shard", &a, start, Duration::from_secs(1)).unwrap();
        log.write("shard", &a, start + Duration::from_secs(1), Duration::from_secs(1)).unwrap();
        log.flush().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("Tag=shard,"), "{text}");
        let got = read_log(&path).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0, "shard", "pipeline order: shard before end_to_end");
        assert_eq!(got[0].1.len(), 4);
        assert_eq!(got[1].1.max(), b.max());
    }

    #[test]
    fn an_encoded_log_reads_back_exactly() {
        let mut a = new_histogram();
        for v in [700, 1_000, 1_000, 250_000, 9_000_000] {
            a.record(v).unwrap();
        }
        let empty = new_histogram();
        let log = encode(&[("shard", &a), ("end_to_end", &empty)], SystemTime::now(), Duration::from_secs(3)).unwrap();
        let got = parse(&log, &"the log").unwrap();
        assert_eq!(got.len(), 1, "empty histograms are left out");
        assert_eq!(got[0].0, "shard");
        assert_eq!(got[0].1, a);
    }

    #[test]
    fn a_file_that_is_not_a_log_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.hlog");
        std::fs::write(&path, "0.0,1.0,2.0,not-base64$$\n").unwrap();
        assert!(read_log(&path).is_err());
    }
}
