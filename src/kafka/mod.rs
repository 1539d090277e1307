//! What the Kafka source and sink share: client configuration from the TOML's properties, and librdkafka's
//! logs and errors routed to tracing and counted.
//!
//! librdkafka reconnects by itself; an error it reports (broker down, transport failure) is logged and
//! counted in [`broker_errors`], shown on the live line, and the pipeline goes on: the consumer has nothing
//! to read and the producer's queue fills until the sink backpressures.

use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::KafkaError;
use std::sync::atomic::{AtomicU64, Ordering};

static BROKER_ERRORS: AtomicU64 = AtomicU64::new(0);

/// Errors librdkafka has reported since the process started (every client).
pub fn broker_errors() -> u64 {
    BROKER_ERRORS.load(Ordering::Relaxed)
}

/// A client configuration with `props` set in order.
pub fn client_config(props: &[(String, String)]) -> ClientConfig {
    let mut c = ClientConfig::new();
    for (k, v) in props {
        c.set(k, v);
    }
    c.set_log_level(RDKafkaLogLevel::Warning);
    c
}

/// The connection properties of `props` (brokers, security, client id), for a helper client such as the
/// dead-letter producer of a consumer: the consumer's own properties would be warned about and ignored.
pub fn connection_props(props: &[(String, String)]) -> Vec<(String, String)> {
    const PREFIXES: [&str; 9] =
        ["bootstrap.servers", "security.", "sasl.", "ssl.", "client.id", "socket.", "broker.", "api.version", "debug"];
    props.iter().filter(|(k, _)| PREFIXES.iter().any(|p| k.starts_with(p))).cloned().collect()
}

/// Logs librdkafka's messages through tracing and counts its errors. `what` names the client in logs.
pub fn log(what: &str, level: RDKafkaLogLevel, fac: &str, message: &str) {
    match level {
        RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical | RDKafkaLogLevel::Error => {
            tracing::error!(client = what, facility = fac, "{message}")
        }
        RDKafkaLogLevel::Warning => tracing::warn!(client = what, facility = fac, "{message}"),
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => tracing::info!(client = what, facility = fac, "{message}"),
        RDKafkaLogLevel::Debug => tracing::debug!(client = what, facility = fac, "{message}"),
    }
}

/// Counts and logs an error librdkafka reports outside of a call (broker down, all brokers down …).
pub fn error(what: &str, error: KafkaError, reason: &str) {
    BROKER_ERRORS.fetch_add(1, Ordering::Relaxed);
    tracing::warn!(client = what, "kafka: {error}: {reason}");
}

/// A plain client context that logs and counts (admin and metadata clients, the dead-letter producer).
pub struct Logged(pub String);

impl ClientContext for Logged {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        log(&self.0, level, fac, message)
    }
    fn error(&self, e: KafkaError, reason: &str) {
        error(&self.0, e, reason)
    }
}

impl rdkafka::consumer::ConsumerContext for Logged {}

/// A producer context that remembers failed deliveries: the first failure's message and how many.
pub struct Delivery {
    what: String,
    failed: AtomicU64,
    first: std::sync::Mutex<Option<String>>,
}

impl Delivery {
    pub fn new(what: impl Into<String>) -> Self {
        Self { what: what.into(), failed: AtomicU64::new(0), first: std::sync::Mutex::new(None) }
    }

    /// The first delivery failure, if any message could not be delivered.
    pub fn failure(&self) -> Option<String> {
        if self.failed.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let first = self.first.lock().unwrap_or_else(|e| e.into_inner()).clone();
        Some(format!(
            "{} message(s) could not be delivered; first: {}",
            self.failed.load(Ordering::Relaxed),
            first.unwrap_or_default()
        ))
    }
}

impl ClientContext for Delivery {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        log(&self.what, level, fac, message)
    }
    fn error(&self, e: KafkaError, reason: &str) {
        error(&self.what, e, reason)
    }
}

impl rdkafka::producer::ProducerContext for Delivery {
    type DeliveryOpaque = ();
    fn delivery(&self, r: &rdkafka::producer::DeliveryResult<'_>, _: ()) {
        if let Err((e, m)) = r {
            use rdkafka::Message;
            self.failed.fetch_add(1, Ordering::Relaxed);
            let mut first = self.first.lock().unwrap_or_else(|e| e.into_inner());
            if first.is_none() {
                *first = Some(format!("topic `{}` partition {}: {e}", m.topic(), m.partition()));
            }
        }
    }
}

/// Partitions of `topic`, or an error saying why not (unreachable brokers, unknown topic).
pub fn partitions_of<C: ClientContext>(
    client: &rdkafka::client::Client<C>,
    topic: &str,
    timeout: std::time::Duration,
) -> Result<usize, String> {
    let md = client
        .fetch_metadata(Some(topic), timeout)
        .map_err(|e| format!("cannot read the metadata of topic `{topic}`: {e}"))?;
    let t = md
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .ok_or_else(|| format!("topic `{topic}` is not in the metadata"))?;
    if let Some(e) = t.error() {
        return Err(format!("topic `{topic}`: {}", rdkafka::error::RDKafkaErrorCode::from(e)));
    }
    if t.partitions().is_empty() {
        return Err(format!("topic `{topic}` does not exist (or has no partitions)"));
    }
    Ok(t.partitions().len())
}

pub mod tools;

/// The offsets Kafka sources consumed up to each checkpoint barrier, for transactional sinks to commit in
/// the transaction that holds the output up to that barrier (`send_offsets_to_transaction`): the group's
/// committed offsets then move in the same atomic step as the results they produced.
///
/// A source posts its positions when it injects barrier `id`, before the barrier enters its rings; a sink
/// takes them when the barrier reaches it, so what it takes for `id` is complete. Off the hot path: one
/// post and one take per checkpoint.
#[derive(Default)]
pub struct ConsumedOffsets(std::sync::Mutex<Vec<Consumed>>);

/// One source's positions at one barrier.
pub struct Consumed {
    pub id: u64,
    pub source: String,
    pub offsets: rdkafka::TopicPartitionList,
    pub group: rdkafka::consumer::ConsumerGroupMetadata,
}

impl ConsumedOffsets {
    /// Records `source`'s positions at barrier `id`.
    pub fn post(&self, c: Consumed) {
        self.lock().push(c);
    }

    /// Takes every position posted at barriers up to `id`, only the newest of each source (positions only
    /// move forward, and a group's offset is the newest committed).
    pub fn take_upto(&self, id: u64) -> Vec<Consumed> {
        let mut all = self.lock();
        let mut out: Vec<Consumed> = Vec::new();
        let mut i = 0;
        while i < all.len() {
            if all[i].id > id {
                i += 1;
                continue;
            }
            let c = all.remove(i);
            match out.iter_mut().find(|o| o.source == c.source) {
                Some(o) if o.id < c.id => *o = c,
                Some(_) => {}
                None => out.push(c),
            }
        }
        out
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Consumed>> {
        // A panic elsewhere while holding it leaves a list that is still whole.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}
