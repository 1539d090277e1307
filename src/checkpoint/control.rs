//! The running job's local control endpoint: a Unix socket in `checkpoint.dir` through which
//! `ticklane savepoint` asks the coordinator for a named snapshot.
//!
//! The socket (`control.sock`) also keeps two jobs from sharing a checkpoint directory: a job that finds a
//! live socket there refuses to start, and a stale one (its process killed) is replaced.
//!
//! Protocol, one exchange per connection, text lines: the client writes `savepoint\t<name>\t<dir>\n` (either
//! field may be empty: the coordinator then picks `savepoint-<id>` and `<checkpoint.dir>/savepoints/<name>`);
//! the job answers `ok\t<id>\t<bytes>\t<dir>\n` once the savepoint is complete on disk, or `error\t<reason>\n`.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;
use std::time::Duration;

/// The socket's name in `checkpoint.dir`.
pub const SOCKET: &str = "control.sock";

/// A savepoint asked for through the endpoint; the coordinator answers on `reply`.
#[derive(Debug)]
pub struct SavepointRequest {
    pub name: Option<String>,
    pub dir: Option<PathBuf>,
    pub reply: Sender<Result<Savepoint, String>>,
}

/// A savepoint written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Savepoint {
    pub id: u64,
    pub bytes: u64,
    pub dir: PathBuf,
}

/// Why the endpoint could not be opened, or a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("another ticklane job is running with checkpoint.dir {0} (its control socket answers): give each job its own directory")]
    InUse(PathBuf),
    #[error("control socket {path}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("no job is running with checkpoint.dir {dir} (cannot connect to {socket})")]
    NotRunning { dir: PathBuf, socket: PathBuf, source: std::io::Error },
    #[error("the job answered: {0}")]
    Refused(String),
    #[error("unexpected answer from the job: {0:?}")]
    Protocol(String),
}

/// A name that can be a directory name: letters, digits, `.`, `_`, `-`, not starting with `.`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

/// The listening endpoint; dropping it removes the socket file.
pub struct Endpoint {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Endpoint {
    /// Binds `dir/control.sock` and serves requests on thread `tl-control`, handing them to `to` (the
    /// coordinator's request channel).
    pub fn open(dir: &Path, to: Sender<SavepointRequest>) -> Result<Endpoint, ControlError> {
        std::fs::create_dir_all(dir).map_err(|source| ControlError::Io { path: dir.to_path_buf(), source })?;
        let path = dir.join(SOCKET);
        let io = |source| ControlError::Io { path: path.clone(), source };
        if path.exists() {
            if UnixStream::connect(&path).is_ok() {
                return Err(ControlError::InUse(dir.to_path_buf()));
            }
            // Left by a job that was killed.
            std::fs::remove_file(&path).map_err(io)?;
        }
        let listener = UnixListener::bind(&path).map_err(io)?;
        // Accepting polls, so the thread sees the job stop.
        listener.set_nonblocking(true).map_err(io)?;
        let stop = Arc::new(AtomicBool::new(false));
        let st = stop.clone();
        let thread = std::thread::Builder::new()
            .name("tl-control".into())
            .spawn(move || serve(listener, to, &st))
            .map_err(io)?;
        Ok(Endpoint { path, stop, thread: Some(thread) })
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

fn serve(listener: UnixListener, to: Sender<SavepointRequest>, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((conn, _)) => {
                if let Err(e) = answer(conn, &to, stop) {
                    tracing::warn!(error = %e, "control request failed");
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => {
                tracing::warn!(error = %e, "control socket: accept failed");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// Reads one request, passes it on, writes the answer.
fn answer(conn: UnixStream, to: &Sender<SavepointRequest>, stop: &AtomicBool) -> std::io::Result<()> {
    conn.set_nonblocking(false)?;
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut line = String::new();
    BufReader::new(&conn).take(4096).read_line(&mut line)?;
    let mut out = &conn;
    let fields: Vec<&str> = line.trim_end_matches('\n').split('\t').collect();
    let reply = match fields.as_slice() {
        ["savepoint", name, dir] => {
            let name = (!name.is_empty()).then(|| name.to_string());
            let dir = (!dir.is_empty()).then(|| PathBuf::from(dir));
            match &name {
                Some(n) if !valid_name(n) => {
                    Err(format!("savepoint name {n:?}: use letters, digits, `.`, `_` and `-` (not first)"))
                }
                _ => {
                    let (tx, rx) = std::sync::mpsc::channel();
                    match to.send(SavepointRequest { name, dir, reply: tx }) {
                        Err(_) => Err("the job is stopping".to_string()),
                        Ok(()) => wait(&rx, stop),
                    }
                }
            }
        }
        _ => Err(format!("unknown request {line:?}")),
    };
    let text = match reply {
        Ok(s) => format!("ok\t{}\t{}\t{}\n", s.id, s.bytes, s.dir.display()),
        Err(e) => format!("error\t{}\n", e.replace(['\n', '\t'], " ")),
    };
    out.write_all(text.as_bytes())
}

fn wait(rx: &Receiver<Result<Savepoint, String>>, stop: &AtomicBool) -> Result<Savepoint, String> {
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(r) => return r,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return Err("the job is stopping".into()),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) if stop.load(Ordering::Relaxed) => {
                return Err("the job is stopping".into())
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
        }
    }
}

/// Asks the job running with checkpoint directory `dir` for a savepoint and waits (up to `timeout`) until
/// it is complete on disk.
pub fn request_savepoint(
    dir: &Path,
    name: Option<&str>,
    target: Option<&Path>,
    timeout: Duration,
) -> Result<Savepoint, ControlError> {
    let socket = dir.join(SOCKET);
    let conn = UnixStream::connect(&socket).map_err(|source| ControlError::NotRunning {
        dir: dir.to_path_buf(),
        socket: socket.clone(),
        source,
    })?;
    let io = |source| ControlError::Io { path: socket.clone(), source };
    conn.set_read_timeout(Some(timeout)).map_err(io)?;
    let target = target.map(|t| t.display().to_string()).unwrap_or_default();
    let mut w = &conn;
    w.write_all(format!("savepoint\t{}\t{target}\n", name.unwrap_or("")).as_bytes()).map_err(io)?;
    let mut line = String::new();
    BufReader::new(&conn).read_line(&mut line).map_err(io)?;
    let fields: Vec<&str> = line.trim_end_matches('\n').split('\t').collect();
    match fields.as_slice() {
        ["ok", id, bytes, dir] => Ok(Savepoint {
            id: id.parse().map_err(|_| ControlError::Protocol(line.clone()))?,
            bytes: bytes.parse().map_err(|_| ControlError::Protocol(line.clone()))?,
            dir: PathBuf::from(dir),
        }),
        ["error", reason] => Err(ControlError::Refused(reason.to_string())),
        _ => Err(ControlError::Protocol(line)),
    }
}
