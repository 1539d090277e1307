//! Kafka topics as a source: a consumer-group member whose partitions are watermark partitions, and which
//! commits an offset only once every result that depends on the messages before it is durable in the sinks.
//!
//! **Commit protocol.** Every `commit_interval` the source sends a commit marker through the shards and
//! remembers, per partition, the offset it had reached and the largest event time read before it. The
//! emitter acknowledges a marker once every shard has passed it and the sinks have confirmed everything
//! written before it; the acknowledgement carries `retain`, the earliest event time any operator reading
//! this source still holds. An offset is committed when its partition's largest event time before it is
//! below `retain` of a later acknowledgement: then no window (or session, or running VWAP) holds any of
//! those messages any more, and all their results are durable. Restarting from a committed offset
//! therefore loses nothing (at-least-once: results after it may be written again).
//!
//! Each commit carries, as offset metadata, the largest event time read before the offset. Whoever reads
//! the partition next (this instance after a restart, or another after a rebalance) starts the partition's
//! watermark there, so lateness is judged as before, and the shards drop the windows of its keys that
//! started at or before it: those ended before the commit and were written in full by the previous reader
//! (re-reading only the messages after the offset would give partial rows for them).
//!
//! **Rebalances.** On revocation the offsets already safe for the revoked partitions are committed
//! synchronously before they are given up, and the shards drop the state of the keys those partitions fed
//! (the new owner rebuilds it from the committed offset). A newly assigned partition holds the watermark
//! back until it has data or goes idle.
//!
//! **With checkpoints** (`[checkpoint] dir`) none of the above applies: the checkpoint, not the group, holds
//! where each partition resumes. The source assigns itself every partition of its topics (no group
//! rebalancing: the state of a partition's keys lives in this instance's checkpoints), writes the next offset
//! and largest event time of each into every checkpoint, and seeks there on restore. When a checkpoint is
//! complete on disk its offsets are committed to the group as well, for lag monitoring only.
//!
//! **Hot path.** One `poll(0)` per message: a lock-free-when-uncontended queue pop inside librdkafka, no
//! system call (the fetching is done by librdkafka's own threads). When nothing is waiting the source
//! blocks in `poll` for up to 1 ms and is woken by the next message.

use super::{Json, LineFormat, Poll, Source, SourceError, SourceOut};
use crate::checkpoint::codec::{Dec, DecodeError, Enc};
use crate::checkpoint::manifest::{PartitionPosition, SourcePosition};
use crate::config::{EventTime, Format, KafkaSourcePlan};
use crate::event::{Event, Nanos, Trade};
use crate::kafka::{self, Consumed, ConsumedOffsets, Delivery};
use crate::record::{RejectReason, RejectRow};
use crate::symbols::Interner;
use crate::time::TimeUnit;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Messages handed over per poll.
const BATCH: usize = 1024;
/// How long to block in librdkafka when no message is waiting.
const IDLE_WAIT: Duration = Duration::from_millis(1);
/// Metadata and synchronous commit timeout.
const TIMEOUT: Duration = Duration::from_secs(10);

/// What the rebalance callbacks (run inside `poll`) tell the source, and what they need from it.
#[derive(Default)]
struct Shared {
    /// Offsets safe to commit, with the largest event time before each, by (topic, partition): what a
    /// revocation commits.
    safe: Vec<(String, i32, i64, Nanos)>,
    revoked: Vec<(String, i32)>,
    /// Assigned partitions, with the largest event time before their committed offset (from its metadata).
    assigned: Vec<(String, i32, Option<Nanos>)>,
}

/// The consumer's context: logs, counts errors, and handles rebalances.
struct Ctx {
    name: String,
    shared: Mutex<Shared>,
    changed: AtomicBool,
}

impl Ctx {
    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl ClientContext for Ctx {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        kafka::log(&self.name, level, fac, message)
    }
    fn error(&self, e: rdkafka::error::KafkaError, reason: &str) {
        kafka::error(&self.name, e, reason)
    }
}

impl ConsumerContext for Ctx {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(tpl) = rebalance else { return };
        let mut sh = self.lock();
        let mut commit = TopicPartitionList::new();
        for e in tpl.elements() {
            if let Some((_, _, off, max_ts)) = sh.safe.iter().find(|(t, p, ..)| t == e.topic() && *p == e.partition()) {
                add_commit(&mut commit, e.topic(), e.partition(), *off, *max_ts);
            }
            sh.revoked.push((e.topic().to_string(), e.partition()));
        }
        if commit.count() > 0 {
            if let Err(e) = consumer.commit(&commit, CommitMode::Sync) {
                tracing::warn!(source = %self.name, "committing offsets of revoked partitions failed: {e}");
            }
        }
        tracing::info!(source = %self.name, partitions = ?sh.revoked, "partitions revoked");
        self.changed.store(true, Ordering::Release);
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Assign(tpl) = rebalance else { return };
        // Where each partition resumes, and the largest event time before that (see `add_commit`).
        let committed = match consumer.committed_offsets((*tpl).clone(), TIMEOUT) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(source = %self.name, "cannot read the committed offsets of the assigned partitions: {e}");
                None
            }
        };
        let mut sh = self.lock();
        for e in tpl.elements() {
            let max_ts = committed
                .as_ref()
                .and_then(|c| c.find_partition(e.topic(), e.partition()))
                .and_then(|c| c.metadata().strip_prefix(METADATA_PREFIX).and_then(|m| m.parse().ok()));
            sh.assigned.push((e.topic().to_string(), e.partition(), max_ts));
        }
        tracing::info!(source = %self.name, partitions = ?sh.assigned, "partitions assigned");
        self.changed.store(true, Ordering::Release);
    }
}

/// Offset-commit metadata: the largest event time read before the committed offset. A new owner of the
/// partition starts its watermark there (so it judges lateness as the previous owner did), and drops the
/// windows that ended before the commit, which the previous owner wrote in full.
const METADATA_PREFIX: &str = "ticklane:max_ts=";

fn add_commit(tpl: &mut TopicPartitionList, topic: &str, partition: i32, offset: i64, max_ts: Nanos) {
    if tpl.add_partition_offset(topic, partition, Offset::Offset(offset)).is_ok() {
        if let Some(mut e) = tpl.find_partition(topic, partition) {
            e.set_metadata(format!("{METADATA_PREFIX}{max_ts}"));
        }
    }
}

/// Progress of one partition (one watermark slot).
struct Part {
    topic: usize,
    partition: i32,
    assigned: bool,
    /// Offset of the next message to read (-1: nothing read since assignment).
    next: i64,
    /// Largest event time read (since assignment).
    max_ts: Nanos,
    /// Offset and largest event time at the last marker that saw progress.
    marked: i64,
    /// (marker id, next offset, largest event time before it), oldest first: commit candidates.
    pending: VecDeque<(u64, i64, Nanos)>,
    /// Last committed offset.
    committed: i64,
}

/// Copies messages that do not decode to a topic, with headers saying where they came from.
struct DeadLetters {
    topic: String,
    producer: BaseProducer<Delivery>,
}

enum Decoder {
    Csv,
    Json(Json),
    Binary,
}

/// Turns a message into a trade.
struct Decode {
    decoder: Decoder,
    unit: TimeUnit,
    event_time: EventTime,
    interner: Interner,
    seq: u64,
}

impl Decode {
    fn decode(&mut self, payload: &[u8], kafka_ts: Option<i64>) -> Result<Trade, RejectReason> {
        let seq = self.seq;
        self.seq += 1;
        let body = payload.strip_suffix(b"\n").unwrap_or(payload);
        let body = body.strip_suffix(b"\r").unwrap_or(body);
        let mut t = match &self.decoder {
            Decoder::Csv => super::parse_csv_line(body, self.unit, seq, &mut self.interner)?,
            Decoder::Json(j) => j.decode(body, self.unit, seq, &mut self.interner)?,
            Decoder::Binary => crate::binary::decode_trade(payload, seq, &mut self.interner)?,
        };
        if self.event_time == EventTime::Kafka {
            let ms = kafka_ts.ok_or(RejectReason::MissingField("kafka timestamp"))?;
            t.ts = ms.checked_mul(1_000_000).ok_or(RejectReason::TimestampOutOfRange)?;
        }
        Ok(t)
    }
}

/// (topic, partition) → watermark slot: the topics' partitions numbered one after the other.
struct Slots {
    topics: Vec<String>,
    /// First slot of each topic, and its partition count.
    base: Vec<(usize, usize)>,
}

impl Slots {
    fn slot(&self, name: &str, topic: &str, partition: i32) -> Result<usize, SourceError> {
        let t = self.topics.iter().position(|t| t == topic).ok_or_else(|| {
            err(name, format!("a message of topic `{topic}`, which this source does not subscribe to"))
        })?;
        let (base, n) = self.base[t];
        if partition < 0 || partition as usize >= n {
            return Err(err(
                name,
                format!(
                    "topic `{topic}` has a partition {partition} but had {n} partitions when ticklane started: \
                     restart it to take the new partitions"
                ),
            ));
        }
        Ok(base + partition as usize)
    }
}

pub struct KafkaSource {
    name: String,
    consumer: BaseConsumer<Ctx>,
    slots: Slots,
    parts: Vec<Part>,
    dec: Decode,
    dead: Option<DeadLetters>,
    commit_every: u64,
    next_marker: u64,
    /// The newest acknowledgement not applied yet (waiting for dead letters to be delivered).
    ack: Option<crate::pipeline::Ack>,
    idle: bool,
    /// Checkpoints on: positions live in the checkpoints, partitions are assigned, not subscribed.
    checkpointed: bool,
    /// Checkpoints on: the partitions are assigned and have joined the watermark.
    started: bool,
    /// Checkpoints on: the offsets of checkpoints taken but not known complete, to commit when they are.
    to_commit: VecDeque<(u64, TopicPartitionList)>,
    /// Transactional sinks: the positions at each barrier go to them, committed in their transactions,
    /// instead of being committed here when the checkpoint completes.
    txn: Option<Arc<ConsumedOffsets>>,
    /// `auto.offset.reset`: where a partition with no committed offset starts.
    reset: String,
}

fn err(name: &str, msg: String) -> SourceError {
    SourceError::Other { source_name: name.to_string(), message: msg }
}

impl KafkaSource {
    /// Connects, checks that the topics exist (their partition counts size the watermark) and subscribes.
    /// With `checkpointed` it does not subscribe: the first poll assigns every partition at the position a
    /// restore left (or the group's committed offsets on a fresh start).
    pub fn open(
        name: &str,
        plan: &KafkaSourcePlan,
        unit: TimeUnit,
        interner: Interner,
        checkpointed: bool,
        txn: Option<Arc<ConsumedOffsets>>,
    ) -> Result<Self, SourceError> {
        let ctx =
            Ctx { name: name.to_string(), shared: Mutex::new(Shared::default()), changed: AtomicBool::new(false) };
        let consumer: BaseConsumer<Ctx> = kafka::client_config(&plan.props)
            .create_with_context(ctx)
            .map_err(|e| err(name, format!("cannot create the Kafka consumer: {e}")))?;
        let mut base = Vec::new();
        let mut parts = Vec::new();
        for (ti, t) in plan.topics.iter().enumerate() {
            let n = kafka::partitions_of(consumer.client(), t, TIMEOUT).map_err(|m| err(name, m))?;
            base.push((parts.len(), n));
            for p in 0..n {
                parts.push(Part {
                    topic: ti,
                    partition: p as i32,
                    assigned: false,
                    next: -1,
                    max_ts: Nanos::MIN,
                    marked: -1,
                    pending: VecDeque::with_capacity(64),
                    committed: -1,
                });
            }
        }
        if parts.len() > u16::MAX as usize {
            return Err(err(name, format!("{} partitions in all: at most 65535", parts.len())));
        }
        let topics: Vec<&str> = plan.topics.iter().map(String::as_str).collect();
        if !checkpointed {
            consumer.subscribe(&topics).map_err(|e| err(name, format!("cannot subscribe to {topics:?}: {e}")))?;
        }
        let dead = match &plan.dead_letter {
            None => None,
            Some(topic) => {
                let mut props = kafka::connection_props(&plan.props);
                props.extend([
                    ("enable.idempotence".to_string(), "true".to_string()),
                    ("linger.ms".to_string(), "5".to_string()),
                    ("message.timeout.ms".to_string(), "0".to_string()),
                ]);
                let producer: BaseProducer<Delivery> = kafka::client_config(&props)
                    .create_with_context(Delivery::new(format!("{name} dead letters")))
                    .map_err(|e| err(name, format!("cannot create the dead-letter producer: {e}")))?;
                kafka::partitions_of(producer.client(), topic, TIMEOUT)
                    .map_err(|m| err(name, format!("dead_letter: {m}")))?;
                Some(DeadLetters { topic: topic.clone(), producer })
            }
        };
        let decoder = match plan.format {
            Format::Csv => Decoder::Csv,
            Format::Jsonl => Decoder::Json(Json::new(&plan.fields)),
            Format::Binary => Decoder::Binary,
        };
        let mut src = Self {
            name: name.to_string(),
            consumer,
            slots: Slots { topics: plan.topics.clone(), base },
            parts,
            dec: Decode { decoder, unit, event_time: plan.event_time, interner, seq: 0 },
            dead,
            commit_every: plan.commit_interval as u64,
            next_marker: crate::time::mono_now() + plan.commit_interval as u64,
            ack: None,
            idle: false,
            checkpointed,
            started: false,
            to_commit: VecDeque::new(),
            txn,
            reset: plan
                .props
                .iter()
                .rev()
                .find(|(k, _)| k == "auto.offset.reset")
                .map_or_else(|| "latest".to_string(), |(_, v)| v.clone()),
        };
        if checkpointed {
            // A restore then overrides these positions with the checkpoint's.
            src.resolve()?;
        }
        Ok(src)
    }

    /// Checkpoints on, at open: resolves where every partition starts (the group's committed offset, else
    /// `auto.offset.reset`) to a concrete offset, so that every checkpoint and the start record hold one for
    /// every partition and a restore never depends on what the group has committed since.
    fn resolve(&mut self) -> Result<(), SourceError> {
        let mut all = TopicPartitionList::new();
        for p in &self.parts {
            all.add_partition(&self.slots.topics[p.topic], p.partition);
        }
        let committed = self
            .consumer
            .committed_offsets(all, TIMEOUT)
            .map_err(|e| err(&self.name, format!("cannot read the group's committed offsets: {e}")))?;
        for p in &mut self.parts {
            let topic = &self.slots.topics[p.topic];
            let c = committed.find_partition(topic, p.partition).map(|e| e.offset());
            p.next = match c {
                Some(Offset::Offset(o)) if o >= 0 => o,
                _ => {
                    let (low, high) = self.consumer.fetch_watermarks(topic, p.partition, TIMEOUT).map_err(|e| {
                        err(&self.name, format!("cannot read the offsets of `{topic}` partition {}: {e}", p.partition))
                    })?;
                    match self.reset.as_str() {
                        "earliest" | "smallest" | "beginning" => low,
                        "latest" | "largest" | "end" => high,
                        other => {
                            return Err(err(
                                &self.name,
                                format!(
                                    "`{topic}` partition {} has no committed offset and auto.offset.reset is `{other}`",
                                    p.partition
                                ),
                            ))
                        }
                    }
                }
            };
        }
        Ok(())
    }

    /// Checkpoints on, first poll: assigns every partition at its position (resolved at open, or restored)
    /// and lets those the restored watermark does not hold yet join it.
    fn start_assigned(&mut self, out: &mut SourceOut) -> Result<(), SourceError> {
        let mut tpl = TopicPartitionList::new();
        for p in &self.parts {
            let topic = &self.slots.topics[p.topic];
            tpl.add_partition_offset(topic, p.partition, Offset::Offset(p.next))
                .map_err(|e| err(&self.name, format!("assigning `{topic}` partition {}: {e}", p.partition)))?;
        }
        self.consumer.assign(&tpl).map_err(|e| err(&self.name, format!("cannot assign the partitions: {e}")))?;
        for (slot, p) in self.parts.iter_mut().enumerate() {
            if !p.assigned {
                p.assigned = true;
                out.join(slot, None)?;
            }
        }
        tracing::info!(
            source = %self.name,
            from = ?self.parts.iter().map(|p| (&self.slots.topics[p.topic], p.partition, p.next)).collect::<Vec<_>>(),
            "partitions assigned"
        );
        self.started = true;
        Ok(())
    }

    /// Sends a commit marker if one is due and something is waiting to be committed.
    fn maybe_mark(&mut self, out: &mut SourceOut) -> Result<(), SourceError> {
        let now = crate::time::mono_now();
        if now < self.next_marker {
            return Ok(());
        }
        self.next_marker = now + self.commit_every;
        self.mark(out).map(|_| ())
    }

    /// Sends a commit marker if anything is waiting to be committed; returns its id.
    fn mark(&mut self, out: &mut SourceOut) -> Result<Option<u64>, SourceError> {
        let progressed = self.parts.iter().any(|p| p.assigned && p.next > p.marked);
        let waiting = self.parts.iter().any(|p| !p.pending.is_empty());
        if !progressed && !waiting {
            return Ok(None);
        }
        let id = out.marker()?;
        for p in &mut self.parts {
            if p.assigned && p.next > p.marked {
                p.marked = p.next;
                p.pending.push_back((id, p.next, p.max_ts));
            }
        }
        Ok(Some(id))
    }

    /// Commits what the newest acknowledgement makes safe (once dead letters before it are delivered).
    /// Returns the id of the acknowledgement applied.
    fn apply_acks(&mut self, out: &mut SourceOut, mode: CommitMode) -> Result<Option<u64>, SourceError> {
        while let Some(a) = out.ack() {
            self.ack = Some(a);
        }
        let Some(ack) = self.ack else { return Ok(None) };
        if let Some(d) = &self.dead {
            d.producer.poll(Duration::ZERO);
            if let Some(f) = d.producer.context().failure() {
                return Err(err(&self.name, format!("dead-letter topic `{}`: {f}", d.topic)));
            }
            if d.producer.in_flight_count() > 0 {
                return Ok(None); // not yet: a dead letter before these offsets may still be lost
            }
        }
        self.ack = None;
        let mut tpl = TopicPartitionList::new();
        let mut safe = Vec::new();
        for p in &mut self.parts {
            let mut to = None;
            while let Some(&(id, next, max_ts)) = p.pending.front() {
                if id > ack.id || max_ts >= ack.retain {
                    break;
                }
                to = Some((next, max_ts));
                p.pending.pop_front();
            }
            if let Some((next, max_ts)) = to {
                if p.assigned && next > p.committed {
                    p.committed = next;
                    add_commit(&mut tpl, &self.slots.topics[p.topic], p.partition, next, max_ts);
                    safe.push((self.slots.topics[p.topic].clone(), p.partition, next, max_ts));
                }
            }
        }
        if tpl.count() > 0 {
            {
                let mut sh = self.consumer.context().lock();
                for (t, p, o, m) in safe {
                    match sh.safe.iter_mut().find(|(st, sp, ..)| *st == t && *sp == p) {
                        Some(s) => (s.2, s.3) = (o, m),
                        None => sh.safe.push((t, p, o, m)),
                    }
                }
            }
            tracing::debug!(source = %self.name, offsets = ?tpl, "committing");
            if let Err(e) = self.consumer.commit(&tpl, mode) {
                tracing::warn!(source = %self.name, "offset commit failed (the next one covers it): {e}");
            }
        }
        Ok(Some(ack.id))
    }
}

/// `a` (2 partitions), `b` (1 partition)
fn describe_topics(t: &[(String, usize)]) -> String {
    t.iter().map(|(t, n)| format!("`{t}` ({n} partitions)")).collect::<Vec<_>>().join(", ")
}

/// Applies what the rebalance callbacks recorded (called right after `poll`, before its message).
fn rebalanced(
    name: &str,
    consumer: &BaseConsumer<Ctx>,
    slots: &Slots,
    parts: &mut [Part],
    out: &mut SourceOut,
) -> Result<(), SourceError> {
    // A plain load first: this runs after every message, and a swap would write the shared line each time.
    let changed = &consumer.context().changed;
    if !changed.load(Ordering::Acquire) || !changed.swap(false, Ordering::Acquire) {
        return Ok(());
    }
    let (revoked, assigned) = {
        let mut sh = consumer.context().lock();
        (std::mem::take(&mut sh.revoked), std::mem::take(&mut sh.assigned))
    };
    for (t, p) in revoked {
        let s = slots.slot(name, &t, p)?;
        let part = &mut parts[s];
        part.assigned = false;
        part.pending.clear();
        out.forget(s)?;
    }
    for (t, p, resume) in assigned {
        let s = slots.slot(name, &t, p)?;
        let part = &mut parts[s];
        if !part.assigned {
            part.assigned = true;
            part.next = -1;
            part.max_ts = resume.unwrap_or(Nanos::MIN);
            part.marked = -1;
            part.committed = -1;
            out.join(s, resume)?;
        }
    }
    let mut sh = consumer.context().lock();
    sh.safe.retain(|(t, p, ..)| parts.iter().any(|x| x.assigned && slots.topics[x.topic] == *t && x.partition == *p));
    Ok(())
}

/// Sends a message that did not decode to the dead-letter topic (waiting for room in the producer's queue:
/// a dead letter is never dropped).
fn dead_letter(
    d: &DeadLetters,
    name: &str,
    (topic, partition, offset): (&str, i32, i64),
    payload: &[u8],
    reason: &RejectReason,
) -> Result<(), SourceError> {
    let mut why = Vec::new();
    reason.describe(&mut why);
    let (p, o) = (partition.to_string(), offset.to_string());
    let headers = OwnedHeaders::new_with_capacity(4)
        .insert(Header { key: "ticklane.source.topic", value: Some(topic) })
        .insert(Header { key: "ticklane.source.partition", value: Some(&p) })
        .insert(Header { key: "ticklane.source.offset", value: Some(&o) })
        .insert(Header { key: "ticklane.reason", value: Some(&why) });
    let mut rec: BaseRecord<'_, (), [u8]> = BaseRecord::to(&d.topic).payload(payload).headers(headers);
    loop {
        match d.producer.send(rec) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                rec = r;
                d.producer.poll(Duration::from_millis(10));
            }
            Err((e, _)) => return Err(err(name, format!("dead-letter topic `{}`: {e}", d.topic))),
        }
    }
}

impl Source for KafkaSource {
    fn partitions(&self) -> usize {
        self.parts.len()
    }

    fn partitions_start_empty(&self) -> bool {
        true
    }

    fn poll(&mut self, out: &mut SourceOut) -> Result<Poll, SourceError> {
        if self.checkpointed {
            if !self.started {
                self.start_assigned(out)?;
            }
        } else {
            rebalanced(&self.name, &self.consumer, &self.slots, &mut self.parts, out)?;
            self.apply_acks(out, CommitMode::Async)?;
            self.maybe_mark(out)?;
        }
        let mut got = 0;
        while got < BATCH {
            let wait = if self.idle { IDLE_WAIT } else { Duration::ZERO };
            let msg = match self.consumer.poll(wait) {
                None => {
                    self.idle = true;
                    break;
                }
                Some(Err(e)) => {
                    kafka::error(&self.name, e, "while consuming");
                    break;
                }
                Some(Ok(m)) => m,
            };
            self.idle = false;
            got += 1;
            // A rebalance callback may have run inside this poll: apply it before the message.
            if !self.checkpointed {
                rebalanced(&self.name, &self.consumer, &self.slots, &mut self.parts, out)?;
            }
            let (topic, partition, offset) = (msg.topic(), msg.partition(), msg.offset());
            let slot = self.slots.slot(&self.name, topic, partition)?;
            let part = &mut self.parts[slot];
            part.next = offset + 1;
            let payload = msg.payload();
            let decoded = match payload {
                Some(p) => self.dec.decode(p, msg.timestamp().to_millis()),
                None => Err(RejectReason::MissingField("payload")),
            };
            let payload = payload.unwrap_or(b"");
            match decoded {
                Ok(t) => {
                    part.max_ts = part.max_ts.max(t.ts);
                    out.emit(slot, Event::Trade(t), 0)?;
                }
                Err(reason) => {
                    out.reject(RejectRow::new(offset.max(0) as u64, reason, payload))?;
                    if let Some(d) = &self.dead {
                        dead_letter(d, &self.name, (topic, partition, offset), payload, &reason)?;
                    }
                }
            }
        }
        Ok(if got > 0 { Poll::More } else { Poll::Idle })
    }

    /// Per partition: the next offset and the largest event time read; then the record counter. Dead
    /// letters before the barrier are delivered first (after a restore they may be sent again, never lost).
    fn checkpoint(&mut self, id: u64, e: &mut Enc) -> Result<SourcePosition, String> {
        if !self.checkpointed {
            return Err("a Kafka source opened without checkpoints".into());
        }
        if let Some(d) = &self.dead {
            d.producer.flush(TIMEOUT).map_err(|e| format!("dead-letter topic `{}`: not delivered: {e}", d.topic))?;
            if let Some(f) = d.producer.context().failure() {
                return Err(format!("dead-letter topic `{}`: {f}", d.topic));
            }
        }
        e.len_of(self.slots.topics.len());
        for (t, &(_, n)) in self.slots.topics.iter().zip(&self.slots.base) {
            e.blob(t.as_bytes());
            e.len_of(n);
        }
        // Whether the partitions had joined the watermark (whose state follows this source's).
        e.bool(self.started);
        let mut partitions = Vec::with_capacity(self.parts.len());
        let mut commit = TopicPartitionList::new();
        for p in &self.parts {
            e.i64(p.next);
            e.i64(p.max_ts);
            let topic = &self.slots.topics[p.topic];
            partitions.push(PartitionPosition { topic: Some(topic.clone()), partition: p.partition, offset: p.next });
            if p.next >= 0 && commit.add_partition_offset(topic, p.partition, Offset::Offset(p.next)).is_ok() {
                if let Some(mut x) = commit.find_partition(topic, p.partition) {
                    x.set_metadata(format!("ticklane:checkpoint={id}"));
                }
            }
        }
        e.u64(self.dec.seq);
        if let Some(txn) = &self.txn {
            match self.consumer.group_metadata() {
                Some(group) if commit.count() > 0 => {
                    txn.post(Consumed { id, source: self.name.clone(), offsets: commit, group })
                }
                Some(_) => {}
                None => return Err("no consumer group metadata to commit offsets in a transaction".into()),
            }
        } else {
            // A checkpoint that never completes is superseded by a later one: keep a few.
            if self.to_commit.len() >= 16 {
                self.to_commit.pop_front();
            }
            self.to_commit.push_back((id, commit));
        }
        Ok(SourcePosition {
            source: String::new(),
            kind: "kafka".into(),
            partitions,
            byte_offset: None,
            seed: None,
            count: Some(self.dec.seq),
        })
    }

    fn resume_at(&mut self, pos: &SourcePosition) -> Result<(), SourceError> {
        for p in &mut self.parts {
            let topic = &self.slots.topics[p.topic];
            let at = pos
                .partitions
                .iter()
                .find(|x| x.topic.as_deref() == Some(topic.as_str()) && x.partition == p.partition);
            match at {
                Some(x) => p.next = x.offset,
                None => {
                    return Err(err(
                        &self.name,
                        format!(
                            "the start record has no offset for `{topic}` partition {}: were partitions added?",
                            p.partition
                        ),
                    ))
                }
            }
        }
        Ok(())
    }

    fn checkpoint_complete(&mut self, id: u64) {
        let mut newest = None;
        while self.to_commit.front().is_some_and(|(i, _)| *i <= id) {
            newest = self.to_commit.pop_front().filter(|(i, _)| *i == id);
        }
        if let Some((_, tpl)) = newest.filter(|(_, t)| t.count() > 0) {
            if let Err(e) = self.consumer.commit(&tpl, CommitMode::Async) {
                tracing::warn!(source = %self.name, "committing the offsets of checkpoint {id} failed: {e}");
            }
        }
    }

    fn restore(&mut self, d: &mut Dec<'_>) -> Result<(), SourceError> {
        let name = self.name.clone();
        let bad = |e: DecodeError| err(&name, format!("restoring the Kafka positions: {e}"));
        let n = d.count(16, "topics").map_err(bad)?;
        let mut was = Vec::with_capacity(n);
        for _ in 0..n {
            let t = d.blob("topic").map_err(bad)?;
            let parts = d.count(16, "partitions").map_err(bad)?;
            was.push((String::from_utf8_lossy(t).into_owned(), parts));
        }
        let now: Vec<(String, usize)> =
            self.slots.topics.iter().cloned().zip(self.slots.base.iter().map(|&(_, n)| n)).collect();
        if was != now {
            return Err(err(
                &self.name,
                format!(
                    "the checkpoint was taken reading {} and the source now reads {}: restore into the same \
                     topics and partition counts",
                    describe_topics(&was),
                    describe_topics(&now)
                ),
            ));
        }
        let joined = d.bool("partitions joined").map_err(bad)?;
        for p in &mut self.parts {
            p.next = d.i64("next offset").map_err(bad)?;
            p.max_ts = d.i64("largest event time").map_err(bad)?;
            p.assigned = joined;
        }
        self.dec.seq = d.u64("record counter").map_err(bad)?;
        Ok(())
    }

    /// Makes the results of everything read so far durable and commits what that makes safe, waiting up to
    /// `timeout` for the pipeline to acknowledge; then leaves the group.
    fn close(&mut self, out: &mut SourceOut, timeout: Duration) -> Result<(), SourceError> {
        if let Some(d) = &self.dead {
            if let Err(e) = d.producer.flush(timeout) {
                tracing::warn!(source = %self.name, "dead letters not all delivered at shutdown: {e}");
            }
        }
        if self.checkpointed {
            // The next start resumes from the last checkpoint, whatever is committed.
            return Ok(());
        }
        let Some(id) = self.mark(out)? else { return Ok(()) };
        let deadline = crate::time::mono_now() + timeout.as_nanos() as u64;
        loop {
            if let Some(done) = self.apply_acks(out, CommitMode::Sync)? {
                if done >= id {
                    break;
                }
            }
            if crate::time::mono_now() > deadline {
                tracing::warn!(source = %self.name, "the pipeline did not acknowledge the last commit marker in {timeout:?}: offsets after the last commit will be read again");
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }
}
