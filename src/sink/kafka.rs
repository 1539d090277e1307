//! A Kafka topic as a sink: one message per record, keyed by instrument symbol (so one instrument's results
//! stay in order in one partition), through an idempotent librdkafka producer.
//!
//! A full producer queue (a slow or absent broker) blocks the write until librdkafka has room: the emitter
//! stalls and the pipeline backpressures up to the sources; nothing is dropped (`message.timeout.ms = 0`
//! by default: librdkafka retries until the broker takes the message). `sync` waits for every delivery
//! report; a failed delivery (retries exhausted, or a fatal idempotence error) fails the sink with the
//! topic named, so no offset after it is ever committed.

use super::{Encoder, Sink};
use crate::config::{Format, KafkaSinkPlan, SinkPlan, StreamDef};
use crate::kafka::{self, Delivery};
use crate::record::{Record, RejectRow};
use crate::symbols::SymbolCache;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use std::collections::HashMap;
use std::io;
use std::sync::Arc;
use std::time::Duration;

/// Delivery reports are served every this many messages.
const POLL_EVERY: u32 = 64;

/// The producers of a pipeline by name: sinks that name the same producer share it.
#[derive(Default)]
pub struct Producers(HashMap<String, Arc<BaseProducer<Delivery>>>);

impl Producers {
    fn get(&mut self, p: &KafkaSinkPlan) -> io::Result<Arc<BaseProducer<Delivery>>> {
        if let Some(prod) = self.0.get(&p.producer) {
            return Ok(prod.clone());
        }
        let prod: BaseProducer<Delivery> = kafka::client_config(&p.props)
            .create_with_context(Delivery::new(format!("producer {}", p.producer)))
            .map_err(|e| io::Error::other(format!("cannot create Kafka producer `{}`: {e}", p.producer)))?;
        let prod = Arc::new(prod);
        self.0.insert(p.producer.clone(), prod.clone());
        Ok(prod)
    }
}

pub struct KafkaSink {
    topic: String,
    producer: Arc<BaseProducer<Delivery>>,
    enc: Encoder,
    buf: Vec<u8>,
    since_poll: u32,
    what: String,
}

impl KafkaSink {
    pub fn open(plan: &SinkPlan, def: &StreamDef, producers: &mut Producers) -> io::Result<KafkaSink> {
        let kp = plan.kafka.as_ref().ok_or_else(|| io::Error::other("a kafka sink without its topic"))?;
        let producer = producers.get(kp)?;
        // Fail at start, not at the first result, when the topic does not exist or the brokers are unreachable.
        kafka::partitions_of(producer.client(), &kp.topic, Duration::from_secs(10)).map_err(io::Error::other)?;
        Ok(KafkaSink {
            topic: kp.topic.clone(),
            producer,
            enc: Encoder { format: plan.format, columns: plan.columns.clone(), unit: def.unit },
            buf: Vec::with_capacity(1024),
            since_poll: 0,
            what: format!("kafka topic `{}` (producer `{}`)", kp.topic, kp.producer),
        })
    }

    fn check(&self) -> io::Result<()> {
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
        let payload: &[u8] = match self.enc.format {
            Format::Binary => &self.buf,
            _ => self.buf.strip_suffix(b"\n").unwrap_or(&self.buf),
        };
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
        // Waits for every delivery report: with the broker away this waits (the emitter stalls and the
        // pipeline backpressures) until it is back.
        // Not `Producer::flush`: it waits in steps of up to 100 ms, which would stall the pipeline that long at
        // every commit. Delivery reports are served in 1 ms steps instead.
        let started = std::time::Instant::now();
        let mut report = started + Duration::from_secs(5);
        loop {
            self.producer.poll(Duration::ZERO);
            self.check()?;
            let in_flight = self.producer.in_flight_count();
            if in_flight == 0 {
                break;
            }
            if std::time::Instant::now() >= report {
                report += Duration::from_secs(5);
                tracing::warn!(
                    sink = %self.what,
                    waiting = ?started.elapsed(),
                    in_flight,
                    "the broker has not confirmed every message yet: results wait (nothing is dropped)"
                );
            }
            self.producer.poll(Duration::from_millis(1));
        }
        self.check()
    }

    fn describe(&self) -> String {
        self.what.clone()
    }
}
