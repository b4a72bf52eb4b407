//! `TCP_NODELAY` on this process's connections to PostgreSQL.
//!
//! sqlx 0.9.0 stopped setting it on the sockets it opens (transact-rs/sqlx#4335; the fix,
//! #4336, is merged but not released) and offers no hook to set it. Without it, Nagle's
//! algorithm holds a small message sent right after a large one until the server's delayed
//! ACK arrives, about 40 ms later. A `COPY` always ends that way (its data, then `CopyDone`),
//! so every write group on PostgreSQL would wait 40 ms twice. Until sqlx sets the option
//! again, the writer finds its sockets among the process's open descriptors (Linux's
//! `/proc/self/fd`) by the server's address and sets it there. Elsewhere this does nothing.

use std::net::SocketAddr;
use std::os::fd::{BorrowedFd, RawFd};

use socket2::SockRef;

/// Sets `TCP_NODELAY` on every open TCP connection of this process whose peer is one of
/// `servers`, and returns how many now have it.
pub(crate) fn set_on_connections_to(servers: &[SocketAddr]) -> usize {
    let Ok(fds) = std::fs::read_dir("/proc/self/fd") else {
        return 0;
    };
    let mut set = 0;
    for entry in fds.flatten() {
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<RawFd>().ok())
        else {
            continue;
        };
        let is_socket = std::fs::read_link(entry.path())
            .is_ok_and(|target| target.to_string_lossy().starts_with("socket:"));
        if !is_socket {
            continue;
        }
        // SAFETY: the descriptor is only borrowed for the two calls below. Another thread
        // may close it meanwhile (the calls then fail with EBADF) or reuse its number for a
        // new socket (which is then touched only if it is also connected to the server, where
        // the option is wanted too); neither reads or writes memory this code does not own.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        let socket = SockRef::from(&fd);
        let to_server = socket
            .peer_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .is_some_and(|peer| servers.contains(&peer));
        if to_server && socket.set_tcp_nodelay(true).is_ok() {
            set += 1;
        }
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn only_connections_to_the_server_get_the_option() {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let other = TcpListener::bind("127.0.0.1:0").unwrap();
        let to_server = TcpStream::connect(server.local_addr().unwrap()).unwrap();
        let to_other = TcpStream::connect(other.local_addr().unwrap()).unwrap();
        assert!(!to_server.nodelay().unwrap());

        let set = set_on_connections_to(&[server.local_addr().unwrap()]);

        assert!(set >= 1, "{set}");
        assert!(to_server.nodelay().unwrap());
        assert!(
            !to_other.nodelay().unwrap(),
            "a connection elsewhere is left alone"
        );
        let (accepted, _) = server.accept().unwrap();
        assert!(
            !accepted.nodelay().unwrap(),
            "the server's own end is not a peer of it"
        );
    }
}
