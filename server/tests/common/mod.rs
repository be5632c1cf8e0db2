//! The test harness shared by the server's integration tests: a real server per test (its
//! own runtime on a thread, its own data directory, an admin token made with
//! `init_admin`), a minimal HTTP/1.1 client over std's TcpStream.

#![allow(dead_code)] // each test file uses its own part of the harness

use scry_server::{Retention, ServerConfig};
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// A fresh, empty data directory under cargo's temporary directory for tests.
pub fn data_dir(name: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "server-{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

pub struct Server {
    pub addr: SocketAddr,
    /// An admin token (made by `init_admin` before the start).
    pub admin: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), scry_server::ServerError>>>,
}

/// A running server: its address, the sender that stops it, its thread.
pub type Running = (
    SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    std::thread::JoinHandle<Result<(), scry_server::ServerError>>,
);

/// Runs `serve` on its own runtime on a thread: the bound address, or the error it
/// stopped with before binding.
pub fn spawn(config: ServerConfig) -> Result<Running, scry_server::ServerError> {
    let (bound_tx, bound_rx) = tokio::sync::oneshot::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(scry_server::serve(config, bound_tx, async move {
            let _ = stop_rx.await;
        }))
    });
    match bound_rx.blocking_recv() {
        Ok(addr) => Ok((addr, stop_tx, thread)),
        Err(_) => Err(thread
            .join()
            .unwrap()
            .expect_err("a server that does not bind fails")),
    }
}

impl Server {
    pub fn start(dir: &Path) -> Server {
        Self::start_with(dir, Retention::default())
    }

    pub fn start_with(dir: &Path, retention: Retention) -> Server {
        let config = ServerConfig {
            retention,
            ..ServerConfig::new("127.0.0.1:0".parse().unwrap(), dir)
        };
        Self::start_config(config)
    }

    pub fn start_config(config: ServerConfig) -> Server {
        let admin = scry_server::init_admin(&config.data_dir).expect("init_admin");
        let (addr, stop, thread) = spawn(config).expect("the server binds");
        Server {
            addr,
            admin,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Stops the server and waits until it has finished (its writer thread included).
    pub fn stop(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join().unwrap().expect("the server stops cleanly");
        }
    }

    /// A request as the admin.
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Resp {
        self.call_as(Some(&self.admin), method, path, body)
    }

    /// A request with this token (`None`: without one).
    pub fn call_as(
        &self,
        token: Option<&str>,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Resp {
        let body = body.map(|b| b.to_string().into_bytes());
        call(self.addr, token, method, path, body.as_deref())
    }

    pub fn get(&self, path: &str) -> Value {
        let r = self.call("GET", path, None);
        assert_eq!(r.status, 200, "GET {path}: {}", r.text());
        r.json()
    }

    pub fn post(&self, path: &str, body: Value) -> Value {
        let r = self.call("POST", path, Some(&body));
        assert_eq!(r.status, 200, "POST {path}: {}", r.text());
        r.json()
    }

    pub fn register(&self, host: &str, tags: Value) -> String {
        self.register_as(&self.admin, host, tags)
    }

    pub fn register_as(&self, token: &str, host: &str, tags: Value) -> String {
        let r = self.call_as(
            Some(token),
            "POST",
            "/v1/agents/register",
            Some(&json!({"host": host, "pid": 42, "executable": "/usr/bin/orders", "build_id": "abcd", "tags": tags})),
        );
        assert_eq!(r.status, 200, "register: {}", r.text());
        r.json()["agent_id"].as_str().unwrap().to_string()
    }

    /// A new token: (id, secret).
    pub fn token(&self, role: &str, tags: Value) -> (String, String) {
        let t = self.post(
            "/v1/tokens",
            json!({"role": role, "tags": tags, "name": format!("test {role}")}),
        );
        (
            t["info"]["id"].as_str().unwrap().to_string(),
            t["token"].as_str().unwrap().to_string(),
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.stop_now();
        } else if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Parses an HTTP/1.1 answer read to its end.
pub fn parse_response(raw: &[u8]) -> Resp {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP answer: {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let body = raw[split + 4..].to_vec();
    Resp {
        status,
        headers,
        body,
    }
}

/// Sends raw request bytes and reads the answer until the server closes.
pub fn exchange(addr: SocketAddr, request: &[u8]) -> Resp {
    let mut s = TcpStream::connect(addr).unwrap();
    // Only a guard against a hung test; nothing here is expected to come near it.
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let _ = s.write_all(request);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    parse_response(&raw)
}

/// The bytes of a request (`Connection: close`), with a bearer token when given.
pub fn request_bytes(
    host: &str,
    token: Option<&str>,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
) -> Vec<u8> {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    if let Some(b) = body {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            b.len()
        ));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body.unwrap_or_default());
    bytes
}

pub fn call(
    addr: SocketAddr,
    token: Option<&str>,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
) -> Resp {
    exchange(
        addr,
        &request_bytes(&addr.to_string(), token, method, path, body),
    )
}

pub fn action_ids(desired: &Value) -> Vec<String> {
    desired["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_string())
        .collect()
}

pub fn seqs(lines: &Value) -> Vec<u64> {
    lines
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["seq"].as_u64().unwrap())
        .collect()
}

pub fn log_line(action: &str, n: u32) -> Value {
    json!({"action_id": action, "time": "2026-01-01T00:00:00.000001Z", "tid": 7,
           "location": "loop.c:62", "message": format!("order {n}"), "values": {"o->id": n}})
}

pub fn assert_error(r: &Resp, status: u16) -> Value {
    assert_eq!(r.status, status, "{}", r.text());
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
    let v = r.json();
    assert!(!v["error"].as_str().unwrap().is_empty(), "{v}");
    assert!(!v["detail"].as_str().unwrap().is_empty(), "{v}");
    v
}
