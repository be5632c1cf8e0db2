//! HTTPS: a test CA and a server certificate made here (rcgen); a client trusting the CA
//! talks to the server, one trusting another CA is refused; plain HTTP on an address that is
//! not loopback is refused without `insecure_listen`.

mod common;

use common::*;
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, SanType};
use rustls::pki_types::{CertificateDer, ServerName};
use scry_server::{ServerConfig, ServerError, TlsFiles};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn ca(name: &str) -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("scry test CA {name}"));
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    Ca { cert, key }
}

/// A server certificate for localhost and 127.0.0.1 signed by `ca`: (cert PEM, key PEM).
fn server_cert(ca: &Ca) -> (String, String) {
    let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params
        .subject_alt_names
        .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca.cert, &ca.key).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn client(trusted: &CertificateDer<'static>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trusted.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// One request over TLS: the answer, or the I/O error (a refused certificate shows here).
fn https(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    request: &[u8],
) -> std::io::Result<Resp> {
    let conn = rustls::ClientConnection::new(config, ServerName::try_from("localhost").unwrap())
        .map_err(std::io::Error::other)?;
    let tcp = TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    tls.write_all(request)?;
    tls.flush()?;
    let mut raw = Vec::new();
    match tls.read_to_end(&mut raw) {
        Ok(_) => {}
        // A peer closing without close_notify after a complete answer.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
        Err(e) => return Err(e),
    }
    Ok(parse_response(&raw))
}

#[test]
fn https_with_a_trusted_ca_only() {
    let dir = data_dir("tls");
    std::fs::create_dir_all(&dir).unwrap();
    let good = ca("good");
    let other = ca("other");
    let (cert, key) = server_cert(&good);
    let files = TlsFiles {
        cert: dir.join("server.crt"),
        key: dir.join("server.key"),
    };
    std::fs::write(&files.cert, cert).unwrap();
    std::fs::write(&files.key, key).unwrap();
    let config = ServerConfig {
        tls: Some(files.clone()),
        ..ServerConfig::new("127.0.0.1:0".parse().unwrap(), &dir)
    };
    assert_eq!(config.scheme(), "https");
    let s = Server::start_config(config);

    let req = request_bytes("localhost", Some(&s.admin), "GET", "/v1/tokens", None);
    let r = https(s.addr, client(good.cert.der()), &req)
        .expect("a client trusting the CA gets through");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()[0]["role"], "admin");
    let r = https(
        s.addr,
        client(good.cert.der()),
        &request_bytes("localhost", None, "GET", "/v1/agents", None),
    )
    .unwrap();
    assert_eq!(r.status, 401);

    let refused = https(s.addr, client(other.cert.der()), &req);
    let e = refused
        .err()
        .expect("a client trusting another CA is refused");
    assert!(e.to_string().contains("certificate"), "{e}");

    // Plain HTTP to the HTTPS port gets no HTTP answer.
    let mut tcp = TcpStream::connect(s.addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    tcp.write_all(&req).unwrap();
    let mut raw = Vec::new();
    let _ = tcp.read_to_end(&mut raw);
    assert!(
        !raw.starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&raw)
    );
    s.stop();

    // A key that does not belong to the certificate: refused at start, saying so.
    let (_, other_key) = server_cert(&good);
    std::fs::write(&files.key, other_key).unwrap();
    let err = spawn(ServerConfig {
        tls: Some(files),
        ..ServerConfig::new("127.0.0.1:0".parse().unwrap(), &dir)
    })
    .expect_err("a mismatched key is refused");
    assert!(matches!(err, ServerError::Tls { .. }), "{err}");
    assert!(err.to_string().contains("--tls-key"), "{err}");
}

#[test]
fn plain_http_only_on_loopback_unless_insecure() {
    let dir = data_dir("insecure");
    let err = spawn(ServerConfig::new("0.0.0.0:0".parse().unwrap(), &dir))
        .expect_err("plain HTTP on 0.0.0.0 is refused");
    let text = err.to_string();
    assert!(matches!(err, ServerError::InsecureListen { .. }), "{text}");
    assert!(
        text.contains("--tls-cert")
            && text.contains("--tls-key")
            && text.contains("--insecure-listen"),
        "{text}"
    );

    // With insecure_listen it serves (reached here through loopback).
    let s = Server::start_config(ServerConfig {
        insecure_listen: true,
        ..ServerConfig::new("0.0.0.0:0".parse().unwrap(), &dir)
    });
    let local: SocketAddr = format!("127.0.0.1:{}", s.addr.port()).parse().unwrap();
    let r = call(local, Some(&s.admin), "GET", "/v1/agents", None);
    assert_eq!(r.status, 200, "{}", r.text());
    s.stop();

    // Loopback (v4 and v6) needs nothing.
    let s = Server::start(&data_dir("loopback"));
    assert!(s.addr.ip().is_loopback());
    s.stop();
}
