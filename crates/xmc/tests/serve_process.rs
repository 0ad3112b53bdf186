//! `xmc serve` as a process: a real SIGTERM with requests in flight, and clients that stall.
//! The server must answer what it has received, close what stalls, and exit 0 within its drain
//! time.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A server process, killed if a test fails before it exits.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl std::ops::Deref for Server {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Server {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

/// Starts `xmc serve` on a free port with `extra` flags; returns the child and its address.
fn serve(extra: &[&str]) -> (Server, SocketAddr, std::sync::mpsc::Receiver<String>) {
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/folders/xr");
    let mut child = Command::new(env!("CARGO_BIN_EXE_xmc"))
        .args(["serve", "--model", model.to_str().unwrap(), "--port", "0"])
        .args(extra)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let started = Instant::now();
    loop {
        let line = rx.recv_timeout(Duration::from_secs(60)).expect("the server printed its address");
        if let Some(rest) = line.split("http://").nth(1) {
            let addr = rest.split_whitespace().next().unwrap().parse().unwrap();
            return (Server(child), addr, rx);
        }
        assert!(started.elapsed() < Duration::from_secs(60), "no address");
    }
}

fn sigterm(child: &Child) {
    // SAFETY: kill(2) with the pid of a child this test started and has not reaped.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) }, 0);
}

/// Waits up to `limit` for the child to exit; its exit code, or `None` if it is still running
/// (then it is killed).
fn exit_within(child: &mut Child, limit: Duration) -> Option<i32> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status.code().unwrap_or(-1));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// Sends the headers of a POST /predict with `body`, and the first `sent` bytes of it.
fn start_request(addr: SocketAddr, body: &[u8], sent: usize) -> TcpStream {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(stream, "POST /predict HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", body.len()).unwrap();
    stream.write_all(&body[..sent]).unwrap();
    stream.flush().unwrap();
    stream
}

fn status_of(stream: &mut TcpStream) -> Option<u16> {
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response);
    text.split(' ').nth(1).and_then(|s| s.parse().ok())
}

#[test]
fn sigterm_answers_the_request_in_flight_and_exits_0() {
    let (mut child, addr, _log) = serve(&["--drain-secs", "20"]);
    let body = br#"{"records": [{"title": "Hornby 00 gauge coach"}, {"title": "Lego fire station"}], "top_k": 3}"#;
    // Half the body is in; SIGTERM arrives; then the rest: the request is still answered.
    let mut stream = start_request(addr, body, body.len() / 2);
    std::thread::sleep(Duration::from_millis(200));
    sigterm(&child);
    std::thread::sleep(Duration::from_millis(300));
    stream.write_all(&body[body.len() / 2..]).unwrap();
    assert_eq!(status_of(&mut stream), Some(200), "the request in flight at SIGTERM is answered");
    assert_eq!(exit_within(&mut child, Duration::from_secs(10)), Some(0), "exits 0 once it is answered");
    assert!(TcpStream::connect(addr).is_err(), "no longer listening");
}

#[test]
fn a_stalled_client_does_not_hold_the_server_past_its_drain_time() {
    // A body timeout longer than the test: only the drain time can end the stalled request.
    let (mut child, addr, log) = serve(&["--drain-secs", "1", "--body-timeout-secs", "600", "--header-timeout-secs", "600"]);
    let body = [b'x'; 100];
    let mut stalled = start_request(addr, &body, 1);
    // A client that sent part of its headers only.
    let mut half_headers = TcpStream::connect(addr).unwrap();
    half_headers.write_all(b"POST /predict HTTP/1.1\r\nHost: x\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let sent = Instant::now();
    sigterm(&child);
    let code = exit_within(&mut child, Duration::from_secs(10));
    assert_eq!(code, Some(0), "exits 0 after its drain time, not held by the stalled clients");
    assert!(sent.elapsed() < Duration::from_secs(5), "{:?}", sent.elapsed());
    let said: Vec<String> = log.try_iter().collect();
    assert!(said.iter().any(|l| l.contains("drain time") && l.contains("closing")), "{said:?}");
    stalled.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(status_of(&mut stalled), None, "the stalled connection was closed without an answer");
    drop(half_headers);
}

#[test]
fn stalled_headers_and_bodies_time_out_and_the_server_goes_on() {
    let (mut child, addr, _log) = serve(&["--body-timeout-secs", "1", "--header-timeout-secs", "1", "--max-connections", "4"]);
    let body = [b'x'; 100];
    let mut stalled_body = start_request(addr, &body, 1);
    let started = Instant::now();
    assert_eq!(status_of(&mut stalled_body), Some(408), "a body that stalls gets 408");
    assert!(started.elapsed() < Duration::from_secs(5));
    // Idle connections beyond the cap wait; the header timeout frees their slots, and a
    // well-behaved client is then served.
    let idle: Vec<TcpStream> = (0..8).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let started = Instant::now();
    let mut health = TcpStream::connect(addr).unwrap();
    health.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(health, "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    assert_eq!(status_of(&mut health), Some(200));
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    drop(idle);
    sigterm(&child);
    assert_eq!(exit_within(&mut child, Duration::from_secs(10)), Some(0));
}
