//! The MoldUDP64 receive socket: bind, optional IPv4 multicast join, SO_REUSEADDR and SO_RCVBUF, and
//! non-blocking reads into one reused buffer handed to a [`Tracker`].

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};

use socket2::{Domain, Protocol, Socket, Type};

use super::tracker::{Tracked, Tracker};
use crate::time::mono_now;

/// The largest UDP payload over IPv4 (65,535 − 8 − 20): a buffer this long never truncates a datagram.
pub const MAX_DATAGRAM: usize = 65_507;

/// How a [`Receiver`] opens its socket.
#[derive(Clone, Debug)]
pub struct ReceiverConfig {
    /// Address and port to bind. For multicast, the group's port on the unspecified address (or on the group
    /// address itself, so the socket receives that group only).
    pub bind: SocketAddr,
    /// IPv4 multicast group to join.
    pub group: Option<Ipv4Addr>,
    /// The IPv4 address of the interface to join on; unspecified lets the kernel pick by its routes.
    pub interface: Ipv4Addr,
    /// SO_REUSEADDR, so several receivers (or a restarted one) can bind the same group and port.
    pub reuse_addr: bool,
    /// SO_RCVBUF to ask for. Linux grants at most `net.core.rmem_max` (unless the process has CAP_NET_ADMIN:
    /// then SO_RCVBUFFORCE is used) and reports twice the value granted (the other half is its bookkeeping);
    /// [`Receiver::recv_buffer`] says what it reports.
    pub recv_buffer: Option<usize>,
    /// Bytes of the receive buffer; a datagram longer than this is cut (the tracker then sees a damaged
    /// packet). [`MAX_DATAGRAM`] by default.
    pub buffer_len: usize,
}

impl ReceiverConfig {
    pub fn new(bind: SocketAddr) -> ReceiverConfig {
        ReceiverConfig {
            bind,
            group: None,
            interface: Ipv4Addr::UNSPECIFIED,
            reuse_addr: true,
            recv_buffer: None,
            buffer_len: MAX_DATAGRAM,
        }
    }
}

/// A receive socket that could not be opened or read.
#[derive(Debug, thiserror::Error)]
pub enum UdpError {
    #[error("cannot create a UDP socket for {addr}: {source}")]
    Socket { addr: SocketAddr, source: io::Error },
    #[error("cannot set {option} on the UDP socket for {addr}: {source}")]
    SocketOption { addr: SocketAddr, option: &'static str, source: io::Error },
    #[error("cannot bind a UDP socket to {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
    #[error("{group} is not an IPv4 multicast group (224.0.0.0/4)")]
    NotMulticast { group: Ipv4Addr },
    #[error("a multicast group ({group}) needs an IPv4 bind address, not {addr}")]
    GroupOnIpv6 { group: Ipv4Addr, addr: SocketAddr },
    #[error("cannot join multicast group {group} on interface {interface} (socket on {addr}): {source}")]
    Join { group: Ipv4Addr, interface: Ipv4Addr, addr: SocketAddr, source: io::Error },
    #[error("receiving on {addr} failed: {source}")]
    Recv { addr: SocketAddr, source: io::Error },
}

impl UdpError {
    /// The OS error number behind the error, if any.
    pub fn errno(&self) -> Option<i32> {
        match self {
            UdpError::Socket { source, .. }
            | UdpError::SocketOption { source, .. }
            | UdpError::Bind { source, .. }
            | UdpError::Join { source, .. }
            | UdpError::Recv { source, .. } => source.raw_os_error(),
            UdpError::NotMulticast { .. } | UdpError::GroupOnIpv6 { .. } => None,
        }
    }
}

/// A non-blocking MoldUDP64 receive socket with its one datagram buffer.
#[derive(Debug)]
pub struct Receiver {
    socket: UdpSocket,
    addr: SocketAddr,
    buf: Box<[u8]>,
    recv_buffer: usize,
    datagrams: u64,
}

impl Receiver {
    /// Opens, configures and binds the socket, and joins the group if one is given.
    pub fn bind(cfg: &ReceiverConfig) -> Result<Receiver, UdpError> {
        let addr = cfg.bind;
        let opt = |option: &'static str| move |source| UdpError::SocketOption { addr, option, source };
        if let Some(group) = cfg.group {
            if !group.is_multicast() {
                return Err(UdpError::NotMulticast { group });
            }
            if !addr.is_ipv4() {
                return Err(UdpError::GroupOnIpv6 { group, addr });
            }
        }
        let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))
            .map_err(|source| UdpError::Socket { addr, source })?;
        if cfg.reuse_addr {
            s.set_reuse_address(true).map_err(opt("SO_REUSEADDR"))?;
        }
        if let Some(n) = cfg.recv_buffer {
            s.set_recv_buffer_size(n).map_err(opt("SO_RCVBUF"))?;
        }
        let mut recv_buffer = s.recv_buffer_size().map_err(opt("SO_RCVBUF (reading it back)"))?;
        if let Some(n) = cfg.recv_buffer {
            // Linux reports twice what it granted. Less than asked: `net.core.rmem_max` capped it, which a
            // process with CAP_NET_ADMIN may exceed (SO_RCVBUFFORCE); without it, the capped size stands.
            if recv_buffer < n.saturating_mul(2)
                && rustix::net::sockopt::set_socket_recv_buffer_size_force(&s, n).is_ok()
            {
                recv_buffer = s.recv_buffer_size().map_err(opt("SO_RCVBUF (reading it back)"))?;
            }
            if recv_buffer < n {
                tracing::warn!(
                    %addr, requested = n, granted = recv_buffer,
                    "UDP receive buffer smaller than asked for (raise net.core.rmem_max)"
                );
            }
        }
        s.bind(&addr.into()).map_err(|source| UdpError::Bind { addr, source })?;
        let bound = s.local_addr().ok().and_then(|a| a.as_socket()).unwrap_or(addr);
        if let Some(group) = cfg.group {
            s.join_multicast_v4(&group, &cfg.interface).map_err(|source| UdpError::Join {
                group,
                interface: cfg.interface,
                addr: bound,
                source,
            })?;
        }
        s.set_nonblocking(true).map_err(opt("O_NONBLOCK"))?;
        let buf = vec![0u8; cfg.buffer_len.max(1)].into_boxed_slice();
        Ok(Receiver { socket: s.into(), addr: bound, buf, recv_buffer, datagrams: 0 })
    }

    /// The address the socket is bound to (with the port the kernel chose for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// SO_RCVBUF as the kernel reports it after the request (Linux: twice the bytes granted).
    pub fn recv_buffer(&self) -> usize {
        self.recv_buffer
    }

    /// Datagrams received so far.
    pub fn datagrams(&self) -> u64 {
        self.datagrams
    }

    /// Reads one datagram if one is waiting: `Ok(None)` when there is none.
    pub fn recv(&mut self) -> Result<Option<&[u8]>, UdpError> {
        loop {
            match self.socket.recv(&mut self.buf) {
                Ok(n) => {
                    self.datagrams += 1;
                    return Ok(self.buf.get(..n));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => return Err(UdpError::Recv { addr: self.addr, source }),
            }
        }
    }

    /// Reads up to `max` waiting datagrams, hands each to `tracker` and what it delivers to `on`. Returns the
    /// datagrams read: fewer than `max` means the socket had no more.
    pub fn poll<F>(&mut self, tracker: &mut Tracker, max: usize, mut on: F) -> Result<usize, UdpError>
    where
        F: FnMut(Tracked<'_>),
    {
        self.poll_timed(tracker, max, |t, _| on(t))
    }

    /// [`Receiver::poll`], also handing `on` when each datagram was received: [`mono_now`] read as soon as
    /// `recv` returned it, before the tracker or anything else looked at it (the start of the latency a
    /// receiver adds).
    pub fn poll_timed<F>(&mut self, tracker: &mut Tracker, max: usize, mut on: F) -> Result<usize, UdpError>
    where
        F: FnMut(Tracked<'_>, u64),
    {
        let mut n = 0;
        while n < max {
            match self.recv()? {
                Some(datagram) => {
                    let at = mono_now();
                    on(tracker.track(datagram), at);
                    n += 1;
                }
                None => break,
            }
        }
        Ok(n)
    }

    /// The datagrams the kernel dropped for this socket because its receive buffer was full (the `drops`
    /// column of /proc/net/udp or /proc/net/udp6, found by the socket's inode). Linux only.
    pub fn kernel_drops(&self) -> io::Result<u64> {
        use std::os::unix::fs::MetadataExt;
        use std::os::unix::io::AsRawFd;
        let inode = std::fs::metadata(format!("/proc/self/fd/{}", self.socket.as_raw_fd()))?.ino();
        let table = match self.addr.ip() {
            IpAddr::V4(_) => "/proc/net/udp",
            IpAddr::V6(_) => "/proc/net/udp6",
        };
        let text = std::fs::read_to_string(table)?;
        socket_drops(&text, inode)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("socket inode {inode} not in {table}")))
    }
}

/// The `drops` column (the last) of the line of /proc/net/udp whose `inode` column (the tenth) is `inode`.
fn socket_drops(table: &str, inode: u64) -> Option<u64> {
    table.lines().skip(1).find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.get(9)?.parse::<u64>().ok()? == inode {
            cols.last()?.parse().ok()
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_column() {
        let t = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
                 1234: 0100007F:A1B2 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 55501 2 0000000000000000 17\n\
                 1235: 0100007F:A1B3 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 55502 2 0000000000000000 0\n";
        assert_eq!(socket_drops(t, 55501), Some(17));
        assert_eq!(socket_drops(t, 55502), Some(0));
        assert_eq!(socket_drops(t, 9), None);
    }

    #[test]
    fn refuses_a_unicast_group() {
        let mut cfg = ReceiverConfig::new("127.0.0.1:0".parse().unwrap());
        cfg.group = Some(Ipv4Addr::new(10, 0, 0, 1));
        let e = Receiver::bind(&cfg).unwrap_err();
        assert!(matches!(e, UdpError::NotMulticast { .. }), "{e}");
        cfg.group = Some(Ipv4Addr::new(239, 1, 1, 1));
        cfg.bind = "[::1]:0".parse().unwrap();
        assert!(matches!(Receiver::bind(&cfg), Err(UdpError::GroupOnIpv6 { .. })));
    }

    #[test]
    fn bind_error_names_address_and_errno() {
        let a = Receiver::bind(&ReceiverConfig::new("127.0.0.1:0".parse().unwrap())).unwrap();
        let mut cfg = ReceiverConfig::new(a.local_addr());
        cfg.reuse_addr = false;
        let e = Receiver::bind(&cfg).unwrap_err();
        assert_eq!(e.errno(), Some(libc::EADDRINUSE));
        let msg = e.to_string();
        assert!(msg.contains(&a.local_addr().to_string()) && msg.contains("os error"), "{msg}");
    }

    #[test]
    fn reads_nothing_when_idle() {
        let mut r = Receiver::bind(&ReceiverConfig::new("127.0.0.1:0".parse().unwrap())).unwrap();
        assert!(r.recv().unwrap().is_none());
        let mut t = Tracker::default();
        assert_eq!(r.poll(&mut t, 8, |_| panic!("nothing was sent")).unwrap(), 0);
    }
}
