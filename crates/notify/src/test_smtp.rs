//! A real SMTP server for tests: Debian's aiosmtpd (`apt-get install python3-aiosmtpd`) on
//! 127.0.0.1, delivering into a maildir (or refusing every recipient), in plain text, STARTTLS or
//! implicit TLS with crates/http's test certificate. Used by this crate's tests and the e2e tests.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

/// How long the server may take to start, and mail to arrive.
const DEADLINE: Duration = Duration::from_secs(30);

/// An aiosmtpd server on 127.0.0.1, killed when dropped.
pub struct SmtpServer {
    child: tokio::process::Child,
    dir: PathBuf,
    pub port: u16,
}

/// How the test server answers.
pub enum Handler {
    /// Accepts everything into a maildir.
    Maildir,
    /// Refuses every recipient with 550.
    Reject,
}

/// TLS on the test server, with the test certificate for `localhost` / `127.0.0.1`.
#[derive(Clone, Copy, PartialEq)]
pub enum ServerTls {
    None,
    /// STARTTLS offered and required before MAIL.
    StartTls,
    /// TLS from the first byte.
    Implicit,
}

/// The test CA and leaf that crates/http's TLS tests use (CA key discarded).
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../http/src/test_tls_fixtures").join(name)
}

fn python() -> &'static str {
    static PYTHON: OnceLock<&'static str> = OnceLock::new();
    PYTHON.get_or_init(|| {
        // A pyenv or virtualenv python3 first on PATH may lack Debian's python3-aiosmtpd.
        for candidate in ["python3", "/usr/bin/python3"] {
            let found = std::process::Command::new(candidate)
                .args(["-c", "import aiosmtpd"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if found {
                return candidate;
            }
        }
        panic!("no python3 can import aiosmtpd: apt-get install python3-aiosmtpd")
    })
}

/// A port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn temp_dir() -> PathBuf {
    static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("attest-notify-smtp-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

const REJECT_HANDLER: &str = r#"
class Reject:
    @classmethod
    def from_cli(cls, parser, *args):
        return cls()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        return "550 5.1.1 <%s>: no such user here" % address
"#;

impl SmtpServer {
    /// Starts aiosmtpd on `port` and waits until it listens.
    pub async fn start(port: u16, handler: Handler, tls: ServerTls) -> SmtpServer {
        let dir = temp_dir();
        let mut command = tokio::process::Command::new(python());
        command.args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")]);
        match tls {
            ServerTls::None => {}
            ServerTls::StartTls => {
                command.arg("--tlscert").arg(fixture("localhost.pem")).arg("--tlskey").arg(fixture("localhost.key"));
            }
            ServerTls::Implicit => {
                command
                    .arg("--smtpscert")
                    .arg(fixture("localhost.pem"))
                    .arg("--smtpskey")
                    .arg(fixture("localhost.key"));
            }
        }
        match handler {
            Handler::Maildir => {
                command.args(["-c", "aiosmtpd.handlers.Mailbox"]).arg(dir.join("maildir"));
            }
            Handler::Reject => {
                std::fs::write(dir.join("attest_reject.py"), REJECT_HANDLER).unwrap();
                command.env("PYTHONPATH", &dir).args(["-c", "attest_reject.Reject"]);
            }
        }
        let log = std::fs::File::create(dir.join("server.log")).unwrap();
        command.stdout(Stdio::null()).stderr(log).kill_on_drop(true);
        let mut child = command.spawn().unwrap();
        let started = tokio::time::Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
                panic!("aiosmtpd exited with {status}:\n{log}");
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                break;
            }
            assert!(started.elapsed() < DEADLINE, "aiosmtpd did not listen on port {port} in time");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        SmtpServer { child, dir, port }
    }

    /// The messages received so far (maildir files), oldest first.
    pub fn messages(&self) -> Vec<String> {
        let mut files = Vec::new();
        for sub in ["new", "cur"] {
            if let Ok(entries) = std::fs::read_dir(self.dir.join("maildir").join(sub)) {
                files.extend(entries.map(|e| e.unwrap().path()));
            }
        }
        files.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
        files.iter().map(|p| std::fs::read_to_string(p).unwrap()).collect()
    }

    /// Waits until `n` messages have arrived.
    pub async fn wait_for(&self, n: usize) -> Vec<String> {
        let started = tokio::time::Instant::now();
        loop {
            let messages = self.messages();
            if messages.len() >= n {
                return messages;
            }
            assert!(started.elapsed() < DEADLINE, "{n} message(s) expected, {} arrived", messages.len());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl SmtpServer {
    /// The messages received once `check` holds for them; `what` names the wait in a failure.
    pub async fn wait_until(&self, what: &str, check: impl Fn(&[String]) -> bool) -> Vec<String> {
        let started = tokio::time::Instant::now();
        loop {
            let messages = self.messages();
            if check(&messages) {
                return messages;
            }
            assert!(started.elapsed() < DEADLINE, "{what}: {} message(s) arrived:\n{messages:#?}", messages.len());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The value of a header in a raw message.
pub fn header<'a>(message: &'a str, name: &str) -> Option<&'a str> {
    message.lines().take_while(|l| !l.is_empty()).find_map(|l| l.strip_prefix(&format!("{name}: ")))
}

/// Undoes quoted-printable (the HTML part's encoding): soft line breaks and `=XX` escapes.
pub fn decode_quoted_printable(text: &str) -> String {
    let joined = text.replace("=\r\n", "").replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
        match (bytes[i], hex) {
            (b'=', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
}
