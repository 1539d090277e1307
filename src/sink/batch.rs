//! Batching for the database sinks: the emitter fills reused buffers, a writer thread of the sink writes
//! them through a [`Backend`] and retries, drops or gives up as the sink's [`Policy`] says.
//!
//! Why a thread per sink: a database round trip takes milliseconds and an outage takes minutes; the emitter
//! must go on encoding while a batch is in flight, and must never be the thread that sleeps between retries.
//! Why a fixed set of buffers: the emitter allocates nothing per row once the buffers have grown to a batch,
//! and when the writer holds them all the emitter waits (counted in `ticklane_sink_blocked_seconds_total`),
//! which backpressures through its rings exactly as a slow Kafka producer does.
//!
//! The writer joins every batch that is queued when it becomes free (up to all but one buffer) into one
//! request or transaction: a database that is slower than the emitter gets larger writes, not more of them.

use super::stats::SinkStats;
use crate::time::{format_duration, mono_now};
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Why a write failed.
pub(crate) enum Failure {
    /// The database is down, unreachable, overloaded or failing: tried again.
    Retry(String),
    /// The database refused the write (a bad row, a missing table, no permission): the job stops.
    Refused(String),
}

/// How a sink writes its batches: one kind of database.
pub(crate) trait Backend: Send + 'static {
    /// Writes the rows of `bufs`, in order, as one request or one transaction: all or nothing.
    fn write(&mut self, bufs: &[&[u8]]) -> Result<(), Failure>;

    /// A write failed and will be retried: a connection kept may be broken.
    fn reset(&mut self) {}

    /// Credentials changed by a reload ([`Credentials`]): used from the next write on.
    fn set_credentials(&mut self, _c: &Credentials) {}
}

/// A user and password or a token, as a reload hands them to a running sink.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Credentials {
    pub user: Option<String>,
    pub password: Option<String>,
    pub token: Option<String>,
}

/// Where a reload puts a sink's new credentials; the writer thread picks them up before its next write.
#[derive(Debug, Default)]
pub struct CredentialSlot {
    new: Mutex<Option<Credentials>>,
    /// Set with `new`: the writer looks at the lock only when this is set.
    changed: AtomicBool,
}

impl CredentialSlot {
    pub fn set(&self, c: Credentials) {
        *self.new.lock().unwrap_or_else(|p| p.into_inner()) = Some(c);
        self.changed.store(true, Ordering::Release);
    }

    fn take(&self) -> Option<Credentials> {
        if !self.changed.swap(false, Ordering::Acquire) {
            return None;
        }
        self.new.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// Sinks whose credentials a reload can change, by sink index in the config.
static SLOTS: Mutex<Vec<(usize, std::sync::Weak<CredentialSlot>)>> = Mutex::new(Vec::new());

/// Hands `c` to the running sink `sink[index]`; false when no such sink takes credentials.
pub fn reload_credentials(index: usize, c: Credentials) -> bool {
    let slots = SLOTS.lock().unwrap_or_else(|p| p.into_inner());
    match slots.iter().rev().find(|(i, _)| *i == index).and_then(|(_, w)| w.upgrade()) {
        Some(s) => {
            s.set(c);
            true
        }
        None => false,
    }
}

/// How a sink batches and what it does when writes fail.
pub(crate) struct Policy {
    /// The sink type, for logs: `influxdb`.
    pub kind: &'static str,
    /// The stream written.
    pub stream: String,
    /// Where it writes, for logs and errors (never a password).
    pub target: String,
    /// The sink's index in the config (`sink[i]`), for reloads.
    pub index: usize,
    /// Batch buffers: one filled by the emitter, the others queued or being written (at least 2).
    pub buffers: usize,
    /// Bytes each buffer starts with.
    pub buffer_bytes: usize,
    pub batch_rows: u64,
    /// The longest a row waits in a batch that is not full while results keep coming, ns.
    pub batch_time: u64,
    /// Retries wait 100 ms, then twice as long each time up to this.
    pub retry_max: Duration,
    /// Once writes have failed this long with no success between, a batch that fails is dropped and counted.
    pub drop_after: Option<Duration>,
    /// At a stop (signal or end of input), how long rows not yet written are still retried.
    pub shutdown_timeout: Duration,
}

/// The first retry's delay; each next one doubles, up to `retry_max`.
const FIRST_RETRY: Duration = Duration::from_millis(100);

/// A full batch on its way to the writer thread.
struct Batch {
    buf: Vec<u8>,
    rows: u64,
}

/// A batch buffer back from the writer thread, with the error that stops the job if its write failed.
struct Done {
    buf: Vec<u8>,
    error: Option<String>,
}

/// What the emitter and the writer thread share besides the queue.
struct Shared {
    stats: Arc<SinkStats>,
    /// The job's stop flag (SIGINT/SIGTERM), once the pipeline has handed it over.
    stop: OnceLock<Arc<AtomicBool>>,
    /// `mono_now()` when `finish` began (0: not yet).
    finishing: AtomicU64,
    credentials: Arc<CredentialSlot>,
}

/// The emitter's side: the batch being filled, the spare buffers, the queue to the writer thread.
pub(crate) struct Batcher {
    buf: Vec<u8>,
    rows: u64,
    /// `mono_now()` at the batch's first row.
    first_at: u64,
    batch_rows: u64,
    batch_time: u64,
    spare: Vec<Vec<u8>>,
    /// Buffers with the writer thread.
    out: usize,
    tx: Option<SyncSender<Batch>>,
    back: Receiver<Done>,
    shared: Arc<Shared>,
    /// For errors: `influxdb http://…`.
    what: String,
}

impl Batcher {
    /// Starts the writer thread of `backend`; nothing is written until the first batch.
    pub fn start<B: Backend>(backend: B, policy: Policy, stats: Arc<SinkStats>) -> io::Result<Batcher> {
        let buffers = policy.buffers.max(2);
        let credentials = Arc::new(CredentialSlot::default());
        {
            let mut slots = SLOTS.lock().unwrap_or_else(|p| p.into_inner());
            slots.retain(|(_, w)| w.strong_count() > 0);
            slots.push((policy.index, Arc::downgrade(&credentials)));
        }
        let shared = Arc::new(Shared { stats, stop: OnceLock::new(), finishing: AtomicU64::new(0), credentials });
        let (tx, rx) = mpsc::sync_channel(buffers);
        // Never full: there are only `buffers` buffers.
        let (back_tx, back) = mpsc::sync_channel(buffers);
        let what = format!("{} {}", policy.kind, policy.target);
        let cap = policy.buffer_bytes;
        let (batch_rows, batch_time) = (policy.batch_rows.max(1), policy.batch_time);
        let writer = WriterThread {
            backend,
            join: buffers - 1,
            policy,
            shared: shared.clone(),
            stop_seen: None,
            failing_since: None,
        };
        std::thread::Builder::new()
            .name(format!("{}-{}", writer.policy.kind, writer.policy.stream))
            .spawn(move || writer.run(rx, back_tx))
            .map_err(|e| io::Error::other(format!("starting the writer thread of {what}: {e}")))?;
        Ok(Batcher {
            buf: Vec::with_capacity(cap),
            rows: 0,
            first_at: 0,
            batch_rows,
            batch_time,
            spare: (1..buffers).map(|_| Vec::with_capacity(cap)).collect(),
            out: 0,
            tx: Some(tx),
            back,
            shared,
            what,
        })
    }

    /// The batch being filled: append one row's bytes, then call [`Batcher::added`].
    #[inline]
    pub fn buf(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    pub fn stats(&self) -> &SinkStats {
        &self.shared.stats
    }

    /// One row was appended: hands the batch over when it is full or its first row has waited `batch_time`.
    #[inline]
    pub fn added(&mut self) -> io::Result<()> {
        if self.rows == 0 {
            self.first_at = mono_now();
        }
        self.rows += 1;
        // The clock is read every 64 rows only: batch_time is a bound for a batch filling slowly.
        if self.rows >= self.batch_rows
            || (self.rows % 64 == 0 && mono_now().saturating_sub(self.first_at) >= self.batch_time)
        {
            self.hand_off()?;
        }
        Ok(())
    }

    /// Takes back the buffers the writer thread is done with; the first error among them fails the call.
    fn collect(&mut self, block: bool) -> io::Result<()> {
        let mut error = None;
        loop {
            let d = if block && self.spare.is_empty() {
                let t = mono_now();
                let d = self.back.recv();
                self.shared.stats.blocked_ns.fetch_add(mono_now() - t, Ordering::Relaxed);
                d
            } else {
                match self.back.try_recv() {
                    Ok(d) => Ok(d),
                    Err(_) => break,
                }
            };
            let Ok(d) = d else {
                return Err(self.ended());
            };
            error = error.or(self.returned(d));
        }
        match error {
            Some(e) => Err(io::Error::other(e)),
            None => Ok(()),
        }
    }

    /// A buffer is back: kept for reuse; its error, if any.
    fn returned(&mut self, mut d: Done) -> Option<String> {
        self.out -= 1;
        d.buf.clear();
        self.spare.push(d.buf);
        d.error
    }

    fn ended(&self) -> io::Error {
        io::Error::other(format!("{}: the writer thread has ended", self.what))
    }

    /// Hands the batch being filled to the writer thread, waiting for a free buffer if none is.
    fn hand_off(&mut self) -> io::Result<()> {
        if self.rows == 0 {
            return self.collect(false);
        }
        self.collect(true)?;
        let next = self.spare.pop().expect("collect(true) leaves a spare buffer");
        let buf = std::mem::replace(&mut self.buf, next);
        let rows = std::mem::take(&mut self.rows);
        self.shared.stats.batches_queued.fetch_add(1, Ordering::Relaxed);
        self.out += 1;
        let tx = self.tx.as_ref().expect("the queue lives until the sink is dropped");
        tx.send(Batch { buf, rows }).map_err(|_| self.ended())
    }

    /// The emitter has nothing waiting: the batch goes now, whatever its size, so that results show up —
    /// unless the writer holds every buffer (the database is slow or down). Then the rows stay in this one
    /// until a write fills it or the end of the run drains it: waiting here would keep the emitter from ever
    /// reaching the end of the run, where `shutdown_timeout` bounds an outage.
    pub fn flush(&mut self) -> io::Result<()> {
        self.collect(false)?;
        if self.rows > 0 && self.spare.is_empty() {
            return Ok(());
        }
        self.hand_off()
    }

    /// Waits until the writer thread has written (or, as configured, dropped) every batch handed to it.
    pub fn drain(&mut self) -> io::Result<()> {
        self.hand_off()?;
        let mut first = None;
        while self.out > 0 {
            let Ok(d) = self.back.recv() else {
                return Err(self.ended());
            };
            let e = self.returned(d);
            first = first.or(e);
        }
        first.map_or(Ok(()), |e| Err(io::Error::other(e)))
    }

    /// The end of the run: from now on `shutdown_timeout` bounds the retries; then everything is drained.
    pub fn finish(&mut self) -> io::Result<()> {
        self.shared.finishing.store(mono_now(), Ordering::Relaxed);
        self.drain()
    }

    pub fn watch_stop(&mut self, stop: Arc<AtomicBool>) {
        let _ = self.shared.stop.set(stop);
    }
}

impl Drop for Batcher {
    fn drop(&mut self) {
        // Closing the queue ends the writer thread once it has written what it holds; not joined, so that a
        // job failing for another reason does not wait here for a database that is down.
        self.tx.take();
    }
}

/// The writer thread's side: writes batches through the backend and retries them.
struct WriterThread<B> {
    backend: B,
    /// Most batches joined into one write.
    join: usize,
    policy: Policy,
    shared: Arc<Shared>,
    /// When the stop flag (or the end of the run) was first seen.
    stop_seen: Option<Instant>,
    /// When the writes began to fail, since the last that succeeded (None: the last one succeeded).
    failing_since: Option<Instant>,
}

impl<B: Backend> WriterThread<B> {
    fn run(mut self, rx: Receiver<Batch>, back: SyncSender<Done>) {
        let mut held: Vec<Batch> = Vec::with_capacity(self.join);
        while let Ok(first) = rx.recv() {
            held.push(first);
            while held.len() < self.join {
                match rx.try_recv() {
                    Ok(b) => held.push(b),
                    Err(_) => break,
                }
            }
            let rows: u64 = held.iter().map(|b| b.rows).sum();
            let mut error = {
                let bufs: Vec<&[u8]> = held.iter().map(|b| b.buf.as_slice()).collect();
                self.deliver(&bufs, rows).err()
            };
            self.shared.stats.batches_queued.fetch_sub(held.len() as u64, Ordering::Relaxed);
            for b in held.drain(..) {
                let _ = back.send(Done { buf: b.buf, error: error.take() });
            }
        }
    }

    /// When retrying stops: `shutdown_timeout` after the job began to stop (a signal, or the end of the run).
    fn give_up_at(&mut self) -> Option<Instant> {
        if self.stop_seen.is_none() {
            let stopped = self.shared.stop.get().is_some_and(|s| s.load(Ordering::Relaxed));
            if stopped || self.shared.finishing.load(Ordering::Relaxed) != 0 {
                self.stop_seen = Some(Instant::now());
            }
        }
        self.stop_seen.map(|t| t + self.policy.shutdown_timeout)
    }

    /// Writes one batch of `rows` rows, retrying as configured. Err: the job must stop, with this message.
    fn deliver(&mut self, bufs: &[&[u8]], rows: u64) -> Result<(), String> {
        let mut delay = FIRST_RETRY;
        let mut attempt = 0u32;
        let kind = self.policy.kind;
        loop {
            if let Some(c) = self.shared.credentials.take() {
                tracing::info!(stream = %self.policy.stream, target = %self.policy.target, "{kind} sink: new credentials from the reloaded config");
                self.backend.set_credentials(&c);
            }
            let error = match self.backend.write(bufs) {
                Ok(()) => {
                    if let Some(t) = self.failing_since.take() {
                        tracing::info!(stream = %self.policy.stream, target = %self.policy.target,
                            "{kind} writes succeed again after {}", format_duration(t.elapsed().as_nanos() as i64));
                    }
                    self.shared.stats.rows_written.fetch_add(rows, Ordering::Relaxed);
                    return Ok(());
                }
                Err(Failure::Refused(e)) => {
                    return Err(format!(
                        "stream `{}`: {} {} refused the write: {e}",
                        self.policy.stream, kind, self.policy.target
                    ));
                }
                Err(Failure::Retry(e)) => e.replace('\n', " "),
            };
            self.backend.reset();
            attempt += 1;
            self.shared.stats.retries.fetch_add(1, Ordering::Relaxed);
            // drop_after bounds an outage as a whole: once writes have failed that long, each batch is tried
            // once and dropped if it fails too, so that the pipeline moves on instead of waiting per batch.
            let failing_since = *self.failing_since.get_or_insert_with(Instant::now);
            if let Some(limit) = self.policy.drop_after.filter(|&d| failing_since.elapsed() >= d) {
                self.shared.stats.rows_dropped.fetch_add(rows, Ordering::Relaxed);
                tracing::error!(stream = %self.policy.stream, target = %self.policy.target, %error, rows,
                    "{kind} write still failing after drop_after ({}): {rows} rows dropped", format_duration(limit.as_nanos() as i64));
                return Ok(());
            }
            if self.give_up_at().is_some_and(|g| Instant::now() >= g) {
                self.shared.stats.rows_dropped.fetch_add(rows, Ordering::Relaxed);
                return Err(format!(
                    "stream `{}`: {rows} rows not written: {kind} {} still failing {} after the job began to stop ({error})",
                    self.policy.stream,
                    self.policy.target,
                    format_duration(self.policy.shutdown_timeout.as_nanos() as i64)
                ));
            }
            tracing::warn!(stream = %self.policy.stream, target = %self.policy.target, %error, attempt,
                retry_in_ms = delay.as_millis() as u64, "{kind} write failed; retrying");
            let wake = Instant::now() + delay;
            // In short naps, so that a stop during a long backoff is seen.
            while Instant::now() < wake {
                if self.give_up_at().is_some_and(|g| Instant::now() >= g) {
                    break;
                }
                std::thread::sleep((wake - Instant::now()).min(Duration::from_millis(50)));
            }
            delay = (delay * 2).min(self.policy.retry_max);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the test backend was given (rows, credentials) and how many writes it still fails.
    type Given = (Vec<u8>, Vec<Credentials>, u32);

    /// A backend that keeps what it was given, and fails as told.
    #[derive(Clone, Default)]
    struct Kept(Arc<Mutex<Given>>);

    impl Backend for Kept {
        fn write(&mut self, bufs: &[&[u8]]) -> Result<(), Failure> {
            let mut k = self.0.lock().unwrap();
            if k.2 > 0 {
                k.2 -= 1;
                return Err(Failure::Retry("down".into()));
            }
            for b in bufs {
                k.0.extend_from_slice(b);
            }
            Ok(())
        }
        fn set_credentials(&mut self, c: &Credentials) {
            self.0.lock().unwrap().1.push(c.clone());
        }
    }

    fn policy(index: usize) -> Policy {
        Policy {
            kind: "test",
            stream: "s".into(),
            target: "t".into(),
            index,
            buffers: 3,
            buffer_bytes: 64,
            batch_rows: 2,
            batch_time: u64::MAX,
            retry_max: Duration::from_millis(100),
            drop_after: None,
            shutdown_timeout: Duration::from_secs(30),
        }
    }

    fn row(b: &mut Batcher, s: &str) {
        b.buf().extend_from_slice(s.as_bytes());
        b.added().unwrap();
    }

    #[test]
    fn rows_arrive_in_order_through_retries_and_credentials_reach_the_writer() {
        let kept = Kept::default();
        kept.0.lock().unwrap().2 = 2;
        let stats = Arc::new(SinkStats::default());
        let mut b = Batcher::start(kept.clone(), policy(90_001), stats.clone()).unwrap();
        for i in 0..7 {
            row(&mut b, &format!("{i};"));
        }
        b.flush().unwrap();
        b.drain().unwrap();
        assert_eq!(kept.0.lock().unwrap().0, b"0;1;2;3;4;5;6;");
        assert_eq!(stats.rows_written.load(Ordering::Relaxed), 7);
        assert_eq!(stats.retries.load(Ordering::Relaxed), 2);
        assert_eq!(stats.batches_queued.load(Ordering::Relaxed), 0);

        let c = Credentials { user: Some("u".into()), password: Some("p".into()), token: None };
        assert!(reload_credentials(90_001, c.clone()));
        assert!(!reload_credentials(90_002, c.clone()), "no such sink");
        row(&mut b, "7;");
        b.finish().unwrap();
        assert_eq!(kept.0.lock().unwrap().1, [c], "taken once, before the next write");
        drop(b);
    }

    #[test]
    fn a_stop_during_an_outage_gives_up_after_shutdown_timeout() {
        let kept = Kept::default();
        kept.0.lock().unwrap().2 = u32::MAX;
        let stats = Arc::new(SinkStats::default());
        let mut p = policy(90_003);
        p.shutdown_timeout = Duration::from_millis(200);
        let mut b = Batcher::start(kept, p, stats.clone()).unwrap();
        row(&mut b, "a;");
        row(&mut b, "b;");
        let t = Instant::now();
        let e = b.finish().unwrap_err().to_string();
        assert!(e.contains("2 rows not written") && e.contains("stream `s`"), "{e}");
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        assert_eq!(stats.rows_dropped.load(Ordering::Relaxed), 2);
    }
}
