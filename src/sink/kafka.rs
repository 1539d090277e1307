//! A Kafka topic as a sink: one message per record, keyed by instrument symbol (so one instrument's results
//! stay in order in one partition), through an idempotent librdkafka producer.
//!
//! A full producer queue (a slow or absent broker) blocks the write until librdkafka has room: the emitter
//! stalls and the pipeline backpressures up to the sources; nothing is dropped (`message.timeout.ms = 0`
//! by default: librdkafka retries until the broker takes the message). `sync` waits for every delivery
//! report; a failed delivery (retries exhausted, or a fatal idempotence error) fails the sink with the
//! topic named, so no offset after it is ever committed.
//!
//! **Exactly once with checkpoints** (`exactly_once = "replay"`, the default when `[checkpoint] dir` is set),
//! without Kafka transactions. Processing is deterministic, so a run restored from a checkpoint computes again
//! exactly the results the run before it wrote after that checkpoint. Each checkpoint records the topic's end
//! offset per partition, taken after every delivery before the barrier is confirmed. A restore reads what the
//! topic holds after those offsets, and the restored run writes a result only once it has gone past what was
//! already written for that instrument: each result is compared with the next one already written for its
//! key (one instrument's results are in order in one partition), and a difference stops the job naming both.
//! Until everything read back has been produced again the sink holds new checkpoints back (a checkpoint then
//! could not say where the output stands). This needs the topic to be written by this sink only.
//!
//! **Transactions** (`exactly_once = "transactions"`, on brokers that have them): the output between two
//! barriers is one transaction, closed at the second barrier with the Kafka sources' offsets and committed
//! when that checkpoint completes ([`Txns`]); read_committed consumers see it only then. Replay-suppression
//! runs as well, over what read_committed shows: a restore that falls back past a checkpoint whose commit was
//! not recorded skips whatever that commit did write.

use super::{Encoder, Sink};
use crate::checkpoint::coordinator::Hold;
use crate::checkpoint::manifest::{PartitionPosition, SinkPosition, KIND_KAFKA_TRANSACTIONS};
use crate::config::{Format, KafkaSinkPlan, SinkPlan, StreamDef};
use crate::kafka::{self, ConsumedOffsets, Delivery, Logged};
use crate::record::{Record, RejectRow};
use crate::symbols::SymbolCache;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};
use std::collections::{HashMap, VecDeque};
use std::io;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Delivery reports are served every this many messages.
const POLL_EVERY: u32 = 64;

/// The producers of a pipeline by name: sinks that name the same producer share it (and its transactions).
#[derive(Default)]
pub struct Producers {
    by_name: HashMap<String, Shared>,
    /// Transactions: the Kafka sources' positions at each barrier, committed with the output up to it.
    offsets: Option<Arc<ConsumedOffsets>>,
}

/// One producer, or the producers taking turns at a transactional producer name.
#[derive(Clone)]
struct Shared {
    producer: Arc<BaseProducer<Delivery>>,
    txns: Option<Arc<Txns>>,
}

/// How long transaction calls (init, commit) may take before the sink fails.
const TXN_TIMEOUT: Duration = Duration::from_secs(30);

fn txn_error(what: &str, e: KafkaError) -> io::Error {
    let hint = match &e {
        KafkaError::Transaction(t) if t.code() == RDKafkaErrorCode::InvalidTransactionTimeout => {
            " (the producer's transaction.timeout.ms is above the broker's transaction.max.timeout.ms, 15 minutes by \
             default: shorten checkpoint.interval + checkpoint.timeout, set a smaller transaction.timeout.ms in the \
             sink's kafka table, or raise the broker's limit)"
        }
        KafkaError::Transaction(t) if t.is_retriable() => " (retriable)",
        KafkaError::Transaction(t) if t.txn_requires_abort() => " (the transaction must be aborted)",
        KafkaError::Transaction(t) if t.is_fatal() => {
            " (fatal: another producer with this transactional.id may have fenced this one)"
        }
        _ => "",
    };
    io::Error::other(format!("{what}: {e}{hint}"))
}

/// The transactions of one producer name (docs/checkpoints.md, "Kafka transactions"). A checkpoint's barrier
/// closes the open transaction — its output is delivered and the consumed offsets added — and output goes on
/// in the next producer's; the closed one is committed when that checkpoint (or a later one) completes. A
/// librdkafka producer has one transaction at a time and cannot resume another session's, hence producers
/// taking turns: one writing, and one per checkpoint that may still be waiting for its completion.
struct Txns {
    name: String,
    producers: Vec<Arc<BaseProducer<Delivery>>>,
    /// The producer whose transaction takes new output.
    active: AtomicUsize,
    state: Mutex<TxnState>,
    offsets: Option<Arc<ConsumedOffsets>>,
}

#[derive(Default)]
struct TxnState {
    /// Transactions closed at a barrier, oldest first: (the barrier's checkpoint id, producer).
    closed: VecDeque<(u64, usize)>,
    /// Producers without a transaction.
    free: Vec<usize>,
    /// The last barrier that closed a transaction (or tried to).
    barrier: u64,
    /// A transaction call failed: nothing more is written (the next run restores and replays).
    broken: Option<String>,
}

impl Txns {
    /// Creates `n` producers with `transactional.id` + `-0` … `-(n-1)` and initialises their transactions,
    /// which fences any earlier instance with the same ids and aborts what it left open: output a crash cut
    /// short never becomes visible to read_committed consumers. The first one begins a transaction.
    fn open(kp: &KafkaSinkPlan, offsets: Option<Arc<ConsumedOffsets>>) -> io::Result<Txns> {
        let base = kp.props.iter().find(|(k, _)| k == "transactional.id").map_or("ticklane", |(_, v)| v).to_string();
        let n = kp.transaction_producers.max(2);
        let mut producers = Vec::with_capacity(n);
        for i in 0..n {
            let mut props = kp.props.clone();
            props.retain(|(k, _)| k != "transactional.id");
            props.push(("transactional.id".into(), format!("{base}-{i}")));
            let name = format!("producer {} ({base}-{i})", kp.producer);
            let prod: BaseProducer<Delivery> = kafka::client_config(&props)
                .create_with_context(Delivery::new(name.clone()))
                .map_err(|e| io::Error::other(format!("cannot create Kafka {name}: {e}")))?;
            prod.init_transactions(TXN_TIMEOUT).map_err(|e| {
                txn_error(&format!("{name}: initialising transactions (does the broker support them?)"), e)
            })?;
            producers.push(Arc::new(prod));
        }
        producers[0]
            .begin_transaction()
            .map_err(|e| txn_error(&format!("producer `{}`: beginning a transaction", kp.producer), e))?;
        let state = TxnState { free: (1..n).rev().collect(), ..TxnState::default() };
        Ok(Txns {
            name: format!("producer `{}`", kp.producer),
            producers,
            active: AtomicUsize::new(0),
            state: Mutex::new(state),
            offsets,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TxnState> {
        // Only the emitter's thread takes it; a panic there ends the job anyway.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn active(&self) -> &Arc<BaseProducer<Delivery>> {
        &self.producers[self.active.load(Ordering::Relaxed)]
    }

    fn broken(&self) -> Option<String> {
        self.lock().broken.clone()
    }

    /// At checkpoint `id`'s barrier (once for all the name's sinks): closes the open transaction — every
    /// message delivered, the consumed offsets up to `id` added — and begins the next in a free producer.
    /// With none free (earlier checkpoints failed and their transactions still wait) this checkpoint fails
    /// and the output goes on in the open transaction, which a later barrier closes.
    fn close(&self, id: u64) -> io::Result<()> {
        let mut st = self.lock();
        if let Some(b) = &st.broken {
            return Err(io::Error::other(b.clone()));
        }
        if st.barrier >= id {
            return Ok(());
        }
        st.barrier = id;
        let Some(next) = st.free.pop() else {
            let waiting: Vec<u64> = st.closed.iter().map(|c| c.0).collect();
            return Err(io::Error::other(format!(
                "{}: no producer free for a new transaction: those of checkpoints {waiting:?} wait for a checkpoint \
                 to complete",
                self.name
            )));
        };
        let cur = self.active.load(Ordering::Relaxed);
        let res = self.seal(&self.producers[cur], id).and_then(|()| {
            self.producers[next]
                .begin_transaction()
                .map_err(|e| txn_error(&format!("{}: beginning a transaction", self.name), e))
        });
        if let Err(e) = res {
            st.broken = Some(e.to_string());
            return Err(e);
        }
        st.closed.push_back((id, cur));
        self.active.store(next, Ordering::Relaxed);
        tracing::debug!(producer = %self.name, id, "transaction closed at the barrier");
        Ok(())
    }

    /// Checkpoint `done` (and every one before it) is complete: commits the transactions closed at its
    /// barrier and before, oldest first. A failure breaks the producer name's sinks: the job stops, and the
    /// next run restores the newest checkpoint whose commit is recorded and replays.
    fn commit_upto(&self, done: u64) -> io::Result<()> {
        self.commit_closed(done, "transaction committed")
    }

    /// Commits the transactions closed at barrier `upto` and before, oldest first, logging `what` for each.
    fn commit_closed(&self, upto: u64, what: &str) -> io::Result<()> {
        let mut st = self.lock();
        while let Some(&(id, p)) = st.closed.front().filter(|c| c.0 <= upto) {
            crate::checkpoint::crash_point("before committing a transaction");
            if let Err(e) = self.producers[p].commit_transaction(TXN_TIMEOUT) {
                let e = txn_error(&format!("{}: committing the transaction of checkpoint {id}", self.name), e);
                st.broken = Some(e.to_string());
                return Err(e);
            }
            st.closed.pop_front();
            st.free.push(p);
            tracing::debug!(producer = %self.name, id, "{what}");
        }
        Ok(())
    }

    /// At the end of the run: commits every transaction, the open one last (with the sources' final
    /// offsets). Whether the input ended or the job was stopped, the results are correct, and a restart
    /// replays (and skips) them like any written after the checkpoint it restores.
    fn commit_all(&self) -> io::Result<()> {
        // Closed at a barrier whose checkpoint had not completed (or never will).
        self.commit_closed(u64::MAX, "transaction committed at the end of the run")?;
        let mut st = self.lock();
        if st.barrier == u64::MAX {
            return Ok(());
        }
        st.barrier = u64::MAX;
        let cur = self.active();
        let res = self.seal(cur, u64::MAX).and_then(|()| {
            cur.commit_transaction(TXN_TIMEOUT)
                .map_err(|e| txn_error(&format!("{}: committing the last transaction", self.name), e))
        });
        match res {
            Ok(()) => {
                tracing::debug!(producer = %self.name, "last transaction committed (end of the run)");
                Ok(())
            }
            Err(e) => {
                st.broken = Some(e.to_string());
                Err(e)
            }
        }
    }

    /// Completes what `prod`'s open transaction holds up to barrier `id` (all of it at the end of the run): every
    /// message delivered, and the sources' offsets up to there added; it can then be committed.
    fn seal(&self, prod: &BaseProducer<Delivery>, id: u64) -> io::Result<()> {
        deliver_all(prod, &self.name)?;
        self.send_offsets(prod, id)
    }

    /// Adds the Kafka sources' positions at barrier `id` (all of them at the end of the run) to `prod`'s
    /// transaction, so the group's offsets are committed with the output up to the barrier.
    fn send_offsets(&self, prod: &BaseProducer<Delivery>, id: u64) -> io::Result<()> {
        let Some(board) = &self.offsets else { return Ok(()) };
        for c in board.take_upto(id) {
            prod.send_offsets_to_transaction(&c.offsets, &c.group, TXN_TIMEOUT).map_err(|e| {
                txn_error(
                    &format!(
                        "{}: sending the offsets of source `{}` at checkpoint {} with the transaction",
                        self.name, c.source, c.id
                    ),
                    e,
                )
            })?;
            if tracing::enabled!(tracing::Level::DEBUG) {
                let at: Vec<String> = c
                    .offsets
                    .elements()
                    .iter()
                    .map(|e| match e.offset() {
                        Offset::Offset(o) => format!("{}[{}]={o}", e.topic(), e.partition()),
                        other => format!("{}[{}]={other:?}", e.topic(), e.partition()),
                    })
                    .collect();
                tracing::debug!(producer = %self.name, source = %c.source, checkpoint = c.id, offsets = %at.join(","), "consumed offsets sent with the transaction");
            }
        }
        Ok(())
    }
}

/// Waits for the delivery report of every message `prod` has sent, serving them in 1 ms steps. Not
/// `Producer::flush`: it waits in steps of up to 100 ms, which would stall the pipeline that long at every
/// checkpoint. With the broker away this waits (the emitter stalls and the pipeline backpressures) until it
/// is back.
fn deliver_all(prod: &BaseProducer<Delivery>, what: &str) -> io::Result<()> {
    let started = Instant::now();
    let mut report = started + Duration::from_secs(5);
    loop {
        prod.poll(Duration::ZERO);
        if let Some(f) = prod.context().failure() {
            return Err(io::Error::other(format!("{what}: delivery to kafka failed: {f}")));
        }
        let in_flight = prod.in_flight_count();
        if in_flight == 0 {
            return Ok(());
        }
        if Instant::now() >= report {
            report += Duration::from_secs(5);
            tracing::warn!(
                producer = %what,
                waiting = ?started.elapsed(),
                in_flight,
                "the broker has not confirmed every message yet: results wait (nothing is dropped)"
            );
        }
        prod.poll(Duration::from_millis(1));
    }
}

impl Producers {
    /// Producers whose transactions carry the consumed offsets `offsets` collects.
    pub fn with_offsets(offsets: Option<Arc<ConsumedOffsets>>) -> Producers {
        Producers { by_name: HashMap::new(), offsets }
    }

    fn get(&mut self, p: &KafkaSinkPlan) -> io::Result<Shared> {
        if let Some(s) = self.by_name.get(&p.producer) {
            return Ok(s.clone());
        }
        let s = if p.transactional {
            let txns = Arc::new(Txns::open(p, self.offsets.clone())?);
            Shared { producer: txns.active().clone(), txns: Some(txns) }
        } else {
            let prod: BaseProducer<Delivery> = kafka::client_config(&p.props)
                .create_with_context(Delivery::new(format!("producer {}", p.producer)))
                .map_err(|e| io::Error::other(format!("cannot create Kafka producer `{}`: {e}", p.producer)))?;
            Shared { producer: Arc::new(prod), txns: None }
        };
        self.by_name.insert(p.producer.clone(), s.clone());
        Ok(s)
    }
}

pub struct KafkaSink {
    topic: String,
    /// The producer written to: with transactions, the one whose transaction is open (it changes at a
    /// barrier).
    producer: Arc<BaseProducer<Delivery>>,
    /// Transactions: the producer name's.
    txns: Option<Arc<Txns>>,
    enc: Encoder,
    buf: Vec<u8>,
    since_poll: u32,
    what: String,
    /// Checkpoints on: end offsets for the checkpoints, and what a restore read back.
    exact: Option<Exact>,
}

/// Metadata and read-back timeout.
const TIMEOUT: Duration = Duration::from_secs(10);

/// A sink under checkpoints: the topic's end offsets at each barrier and, after a restore, the results the
/// run before wrote after the checkpoint.
struct Exact {
    /// Reads the end offsets at each barrier: `read_uncommitted`, so they are the high watermarks. A
    /// `read_committed` client would get the last stable offset, which at a barrier is the start of the
    /// transaction just closed (committed only when the checkpoint completes): a restore would then read that
    /// transaction's results back as if written after the checkpoint, and stop at the first of them.
    ends: BaseConsumer<Logged>,
    partitions: usize,
    replay: Option<Replay>,
    /// Results read back and not yet produced again (the coordinator holds checkpoints while it is not 0).
    pending: Arc<AtomicU64>,
}

/// One message the run before the restore wrote after the checkpoint.
struct Written {
    partition: i32,
    offset: i64,
    payload: Vec<u8>,
}

/// What the run before the restore wrote after the checkpoint, by key in the order written.
struct Replay {
    by_key: HashMap<Vec<u8>, VecDeque<Written>>,
    /// Messages without a key (reject rows): matched by content, as rows of several sources interleave.
    keyless: VecDeque<Written>,
    left: usize,
    skipped: u64,
}

impl Replay {
    /// True if `payload` under `key` was already written before the restore (and is now accounted for);
    /// an error if the results written for `key` differ from what this run computes.
    fn take(&mut self, topic: &str, key: Option<&[u8]>, payload: &[u8]) -> io::Result<bool> {
        let hit = match key {
            Some(k) => {
                let Some(q) = self.by_key.get_mut(k) else { return Ok(false) };
                let Some(w) = q.front() else { return Ok(false) };
                if w.payload != payload {
                    return Err(io::Error::other(format!(
                        "after the restore, key `{}` computes a different result from the one already written to \
                         topic `{topic}` partition {} offset {}: written {:?}, computed now {:?} (was the input, \
                         the configuration or the topic changed?)",
                        String::from_utf8_lossy(k),
                        w.partition,
                        w.offset,
                        String::from_utf8_lossy(&w.payload),
                        String::from_utf8_lossy(payload)
                    )));
                }
                q.pop_front();
                true
            }
            None => match self.keyless.iter().position(|w| w.payload == payload) {
                Some(i) => {
                    self.keyless.remove(i);
                    true
                }
                None => false,
            },
        };
        if hit {
            self.left -= 1;
            self.skipped += 1;
        }
        Ok(hit)
    }
}

impl KafkaSink {
    /// With `checkpointed`, checkpoints record the topic's end offsets; with `resume` as well (a restore),
    /// what was written after the checkpoint's offsets is read back so as not to write it again.
    pub fn open(
        plan: &SinkPlan,
        def: &StreamDef,
        producers: &mut Producers,
        checkpointed: bool,
        resume: Option<&SinkPosition>,
    ) -> io::Result<KafkaSink> {
        let kp = plan.kafka.as_ref().ok_or_else(|| io::Error::other("a kafka sink without its topic"))?;
        let Shared { producer, txns } = producers.get(kp)?;
        // Fail at start, not at the first result, when the topic does not exist or the brokers are unreachable.
        let partitions = kafka::partitions_of(producer.client(), &kp.topic, TIMEOUT).map_err(io::Error::other)?;
        let what = format!("kafka topic `{}` (producer `{}`)", kp.topic, kp.producer);
        let exact = match checkpointed {
            false => None,
            true => Some(Exact::open(kp, partitions, resume.filter(|_| kp.replay), &what)?),
        };
        Ok(KafkaSink {
            topic: kp.topic.clone(),
            producer,
            txns,
            enc: Encoder { format: plan.format, columns: plan.columns.clone(), unit: def.unit },
            buf: Vec::with_capacity(1024),
            since_poll: 0,
            what,
            exact,
        })
    }

    /// After a restore: true if the record in `buf` was already written before it.
    #[cold]
    fn replayed(&mut self, key: Option<&str>) -> io::Result<bool> {
        let payload = payload(self.enc.format, &self.buf);
        let Some(x) = &mut self.exact else { return Ok(false) };
        let Some(r) = &mut x.replay else { return Ok(false) };
        let hit = r.take(&self.topic, key.map(str::as_bytes), payload)?;
        if hit {
            x.pending.store(r.left as u64, Ordering::Relaxed);
            if r.left == 0 {
                tracing::info!(sink = %self.what, skipped = r.skipped, "every result written before the restore was computed again identically and not written twice");
                x.replay = None;
            }
        }
        Ok(hit)
    }

    #[inline]
    fn replaying(&self) -> bool {
        self.exact.as_ref().is_some_and(|x| x.replay.is_some())
    }

    fn check(&self) -> io::Result<()> {
        if let Some(b) = self.txns.as_ref().and_then(|t| t.broken()) {
            return Err(io::Error::other(b));
        }
        if let Some(f) = self.producer.context().failure() {
            return Err(io::Error::other(format!("delivery to kafka failed: {f}")));
        }
        if let Some((code, reason)) = self.producer.client().fatal_error() {
            return Err(io::Error::other(format!(
                "kafka producer fatal error on topic `{}`: {code}: {reason}",
                self.topic
            )));
        }
        Ok(())
    }

    /// Sends the encoded `buf` with `key`, waiting for room in the producer's queue.
    fn send(&mut self, key: Option<&str>) -> io::Result<()> {
        if self.replaying() && self.replayed(key)? {
            return Ok(());
        }
        if let Some(t) = &self.txns {
            // A barrier another sink of the producer name reached first, or one this sink's checkpoint call
            // did not come to (an earlier sink failed it), moved the open transaction to another producer.
            let a = t.active();
            if !Arc::ptr_eq(a, &self.producer) {
                self.producer = a.clone();
            }
        }
        let payload = payload(self.enc.format, &self.buf);
        let mut rec: BaseRecord<'_, str, [u8]> = BaseRecord::to(&self.topic).payload(payload);
        if let Some(k) = key {
            rec = rec.key(k);
        }
        loop {
            match self.producer.send(rec) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    // Backpressure: serve delivery reports until there is room.
                    rec = r;
                    self.producer.poll(Duration::from_millis(1));
                    self.check()?;
                }
                Err((e, _)) => return Err(io::Error::other(format!("cannot produce to topic `{}`: {e}", self.topic))),
            }
        }
        self.since_poll += 1;
        if self.since_poll >= POLL_EVERY {
            self.since_poll = 0;
            self.producer.poll(Duration::ZERO);
            self.check()?;
        }
        Ok(())
    }
}

impl Sink for KafkaSink {
    #[inline]
    fn write(&mut self, rec: &Record, syms: &mut SymbolCache) -> io::Result<()> {
        self.buf.clear();
        self.enc.encode(rec, syms, &mut self.buf);
        let key = syms.get(rec.key());
        self.send(Some(key))
    }

    fn write_reject(&mut self, rej: &RejectRow) -> io::Result<()> {
        self.buf.clear();
        self.enc.encode_reject(rej, &mut self.buf);
        self.send(None)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.producer.poll(Duration::ZERO);
        self.check()
    }

    fn sync(&mut self) -> io::Result<()> {
        self.check()?;
        deliver_all(&self.producer, &self.what)?;
        self.check()
    }

    /// Every delivery confirmed, then the topic's end offsets: after a restore, what follows them was written
    /// after this checkpoint.
    fn checkpoint(&mut self, id: u64) -> io::Result<SinkPosition> {
        if let Some(t) = &self.txns {
            // The first of the producer name's sinks closes the transaction (every message of all of them
            // delivered); the others go on in the producer it opened.
            t.close(id)?;
            self.producer = t.active().clone();
        }
        self.sync()?;
        let mut end_offsets = Vec::new();
        if let Some(x) = &self.exact {
            if x.replay.is_some() {
                // The coordinator does not start a checkpoint while results read back are pending.
                return Err(io::Error::other(format!(
                    "{}: results written before the restore still pending",
                    self.what
                )));
            }
            for p in 0..x.partitions as i32 {
                let (_, high) = x.ends.fetch_watermarks(&self.topic, p, TIMEOUT).map_err(|e| {
                    io::Error::other(format!("reading the end offset of topic `{}` partition {p}: {e}", self.topic))
                })?;
                end_offsets.push(PartitionPosition { topic: None, partition: p, offset: high });
            }
        }
        Ok(SinkPosition {
            sink: self.what.clone(),
            kind: if self.txns.is_some() { KIND_KAFKA_TRANSACTIONS } else { "kafka" }.into(),
            path: None,
            bytes: None,
            topic: Some(self.topic.clone()),
            end_offsets,
            next_part: None,
            pending: Vec::new(),
        })
    }

    /// Transactions: the checkpoint is complete, so the transactions closed at its barrier and before are
    /// committed (once for all the producer name's sinks).
    fn checkpoint_complete(&mut self, id: u64) -> io::Result<()> {
        match &self.txns {
            Some(t) => t.commit_upto(id),
            None => Ok(()),
        }
    }

    /// At the end of the run: with transactions, every one is committed, the open one too (see
    /// [`Txns::commit_all`]).
    fn finish(&mut self, _ended: bool) -> io::Result<()> {
        if let Some(t) = &self.txns {
            t.commit_all()?;
        }
        self.sync()
    }

    fn hold(&self) -> Option<Hold> {
        self.exact.as_ref().map(|x| Hold { what: self.what.clone(), pending: x.pending.clone() })
    }

    fn describe(&self) -> String {
        self.what.clone()
    }
}

/// What goes into the message for a record encoded in `buf` (text formats without the newline).
fn payload(format: Format, buf: &[u8]) -> &[u8] {
    match format {
        Format::Binary => buf,
        _ => buf.strip_suffix(b"\n").unwrap_or(buf),
    }
}

impl Drop for KafkaSink {
    fn drop(&mut self) {
        if let Some(r) = self.exact.as_ref().and_then(|x| x.replay.as_ref()) {
            tracing::warn!(
                sink = %self.what,
                pending = r.left,
                "stopped before every result written before the restore was computed again: the next start checks them again"
            );
        }
    }
}

impl Exact {
    fn open(kp: &KafkaSinkPlan, partitions: usize, resume: Option<&SinkPosition>, what: &str) -> io::Result<Exact> {
        let mut props = kafka::connection_props(&kp.props);
        props.extend([
            ("group.id".to_string(), "ticklane-sink-reader".to_string()),
            ("enable.auto.commit".to_string(), "false".to_string()),
            ("fetch.wait.max.ms".to_string(), "10".to_string()),
        ]);
        let ends = Self::consumer(&props, "read_uncommitted", &format!("{what} end offsets"))?;
        let mut x = Exact { ends, partitions, replay: None, pending: Arc::new(AtomicU64::new(0)) };
        if let Some(pos) = resume {
            let r = x.read_back(&props, &kp.topic, pos, what)?;
            if r.left > 0 {
                tracing::info!(sink = %what, results = r.left, "results written after the checkpoint: each is computed again and compared, not written twice");
                x.pending.store(r.left as u64, Ordering::Relaxed);
                x.replay = Some(r);
            }
        }
        Ok(x)
    }

    fn consumer(props: &[(String, String)], isolation: &str, name: &str) -> io::Result<BaseConsumer<Logged>> {
        let mut c = kafka::client_config(props);
        c.set("isolation.level", isolation);
        c.create_with_context(Logged(name.to_string()))
            .map_err(|e| io::Error::other(format!("{name}: cannot create the consumer: {e}")))
    }

    /// Reads every message after the checkpoint's end offsets up to the current ones, as read_committed
    /// consumers see them (a consumer with `props`): up to the last stable offset, without aborted transactions.
    fn read_back(&self, props: &[(String, String)], topic: &str, pos: &SinkPosition, what: &str) -> io::Result<Replay> {
        let reader = Self::consumer(props, "read_committed", &format!("{what} reader"))?;
        if pos.end_offsets.len() != self.partitions {
            return Err(io::Error::other(format!(
                "{what}: the checkpoint recorded {} partitions of topic `{topic}`, it now has {}",
                pos.end_offsets.len(),
                self.partitions
            )));
        }
        let mut tpl = TopicPartitionList::new();
        // Per partition: (next offset to read, end).
        let mut range = Vec::with_capacity(self.partitions);
        for e in &pos.end_offsets {
            let (_, high) = reader.fetch_watermarks(topic, e.partition, TIMEOUT).map_err(|err| {
                io::Error::other(format!("{what}: reading the end offset of partition {}: {err}", e.partition))
            })?;
            if high < e.offset {
                return Err(io::Error::other(format!(
                    "{what}: partition {} ends at offset {high}, before the checkpoint's {}: was the topic deleted or \
                     truncated?",
                    e.partition, e.offset
                )));
            }
            range.push((e.offset, high));
            tpl.add_partition_offset(topic, e.partition, Offset::Offset(e.offset))
                .map_err(|err| io::Error::other(format!("{what}: {err}")))?;
        }
        let mut r = Replay { by_key: HashMap::new(), keyless: VecDeque::new(), left: 0, skipped: 0 };
        if range.iter().all(|(from, to)| from == to) {
            return Ok(r);
        }
        reader.assign(&tpl).map_err(|e| io::Error::other(format!("{what}: {e}")))?;
        let mut last = Instant::now();
        while range.iter().any(|(from, to)| from < to) {
            match reader.poll(Duration::from_millis(100)) {
                None => {
                    // A transactional topic's commit markers and aborted messages take offsets a
                    // read_committed consumer never delivers: its position, past them, says where it is.
                    if let Ok(at) = reader.position() {
                        for (p, slot) in range.iter_mut().enumerate() {
                            let pos = at.find_partition(topic, p as i32).map(|e| e.offset());
                            if let Some(Offset::Offset(o)) = pos {
                                slot.0 = slot.0.max(o.min(slot.1));
                            }
                        }
                        if range.iter().all(|(from, to)| from >= to) {
                            break;
                        }
                    }
                    if last.elapsed() > TIMEOUT {
                        return Err(io::Error::other(format!(
                            "{what}: reading back what was written after the checkpoint: nothing for {TIMEOUT:?}; \
                             still to read (from, to) per partition: {range:?}"
                        )));
                    }
                }
                Some(Err(e)) => return Err(io::Error::other(format!("{what}: reading back: {e}"))),
                Some(Ok(m)) => {
                    last = Instant::now();
                    let (p, off) = (m.partition(), m.offset());
                    let Some(slot) = range.get_mut(p as usize) else { continue };
                    if off < slot.0 || off >= slot.1 {
                        continue;
                    }
                    slot.0 = off + 1;
                    let w = Written { partition: p, offset: off, payload: m.payload().unwrap_or(b"").to_vec() };
                    match m.key() {
                        Some(k) => r.by_key.entry(k.to_vec()).or_default().push_back(w),
                        None => r.keyless.push_back(w),
                    }
                    r.left += 1;
                }
            }
        }
        let _ = reader.unassign();
        Ok(r)
    }
}
