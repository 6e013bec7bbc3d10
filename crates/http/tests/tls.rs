//! The client speaks TLS: it fetches through an HTTPS front whose certificate chains to a trusted root, and
//! refuses one it cannot verify.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use attest_http::test_tls;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A plain-HTTP server answering every request with `200 ok`, behind a TLS front; returns the front's port.
async fn https_server() -> u16 {
    let plain = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = plain.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = plain.accept().await {
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buffer = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tcp.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buffer[..n]),
                    }
                }
                let reply = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok";
                let _ = tcp.write_all(reply).await;
            });
        }
    });
    let front = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = front.local_addr().unwrap().port();
    test_tls::spawn_front(front, upstream).unwrap();
    port
}

#[tokio::test]
async fn fetches_over_https_from_a_server_with_a_trusted_certificate() {
    let port = https_server().await;
    let client = test_tls::client_builder().unwrap().build().unwrap();
    let response = client.get(format!("https://localhost:{port}/v1.0/users")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "ok");
}

#[tokio::test]
async fn refuses_a_certificate_that_does_not_chain_to_a_trusted_root() {
    let port = https_server().await;
    let client = attest_http::client().unwrap();
    let error = client.get(format!("https://localhost:{port}/")).send().await.unwrap_err();
    assert!(error.is_connect(), "expected a TLS failure while connecting, got {error:?}");
}

/// Run in a child process whose environment hides the system's CA store (see the next test).
#[tokio::test]
#[ignore = "run by without_system_roots_plain_http_works_and_https_fails_cleanly"]
async fn child_without_system_roots() {
    assert!(std::env::var_os("SSL_CERT_FILE").is_some(), "run by the parent test only");
    let client = attest_http::client().expect("a client builds without any system CA");
    let port = https_server().await;
    let error = client.get(format!("https://localhost:{port}/")).send().await.unwrap_err();
    assert!(error.is_connect(), "{error:?}");
    // The test CA can still be added on top.
    let trusted = test_tls::client_builder().unwrap().build().unwrap();
    assert_eq!(trusted.get(format!("https://localhost:{port}/")).send().await.unwrap().status(), 200);
}

#[test]
fn without_system_roots_plain_http_works_and_https_fails_cleanly() {
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "child_without_system_roots", "--nocapture"])
        .env("SSL_CERT_FILE", "/nonexistent/attest-no-ca.pem")
        .env("SSL_CERT_DIR", "/nonexistent/attest-no-ca")
        .status()
        .unwrap();
    assert!(status.success(), "the child test failed: {status}");
}
