//! Secrets at rest: credentials stored in the database are sealed with AES-256-GCM under a
//! key kept outside the database (`[secrets] key_file`), so a copy of the database alone
//! reveals nothing. Each sealed value is bound to what it belongs to (the associated data,
//! e.g. `connector:7`), so a ciphertext moved to another row does not open.
//!
//! Format: `1` (version) ‖ 12-byte random nonce ‖ ciphertext ‖ 16-byte tag.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

const VERSION: u8 = 1;
const KEY_LEN: usize = 32;

/// Why a secret could not be kept or read.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read the secret key {path}: {message}")]
    ReadKey { path: PathBuf, message: String },
    #[error("cannot create the secret key {path}: {message}")]
    WriteKey { path: PathBuf, message: String },
    #[error(
        "the secret key {0} does not exist, so stored credentials cannot be read; restore it from backup or add the credentials again"
    )]
    MissingKey(PathBuf),
    #[error("a stored secret cannot be decrypted: it was sealed with another key, or it was altered")]
    Undecryptable,
    #[error("the system random generator failed")]
    Random,
}

fn hex_suffix(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What the audit chain's key is derived under.
const AUDIT_KEY_LABEL: &[u8] = b"attest audit chain key v1";

/// The key that seals secrets. Never printed.
pub struct SecretKey {
    key: LessSafeKey,
    /// The audit chain's key, derived from this one (so it lives beside it, never in the
    /// database): HMAC-SHA256 of a fixed label under the secrets key.
    audit: [u8; 32],
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

impl SecretKey {
    /// Reads the key at `path`, or creates it (owner-only permissions) when it does not exist.
    pub fn load_or_create(path: &Path) -> Result<SecretKey, SecretError> {
        match Self::load(path) {
            Err(SecretError::MissingKey(_)) => Self::create(path),
            other => other,
        }
    }

    /// Reads the key at `path`; [`SecretError::MissingKey`] when there is none.
    pub fn load(path: &Path) -> Result<SecretKey, SecretError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(SecretError::MissingKey(path.into())),
            Err(e) => return Err(SecretError::ReadKey { path: path.into(), message: e.to_string() }),
        };
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|e| SecretError::ReadKey { path: path.into(), message: format!("not base64: {e}") })?;
        Self::from_bytes(&bytes)
            .ok_or_else(|| SecretError::ReadKey { path: path.into(), message: format!("not a {KEY_LEN}-byte key") })
    }

    fn create(path: &Path) -> Result<SecretKey, SecretError> {
        let mut bytes = [0u8; KEY_LEN];
        SystemRandom::new().fill(&mut bytes).map_err(|_| SecretError::Random)?;
        let failed = |e: std::io::Error| SecretError::WriteKey { path: path.into(), message: e.to_string() };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(failed)?;
        }
        // Written whole under another name, then linked into place: a process starting at the
        // same moment (the server and a command) never reads a half-written key, and whichever
        // links first wins while the other reads that key.
        let mut suffix = [0u8; 8];
        SystemRandom::new().fill(&mut suffix).map_err(|_| SecretError::Random)?;
        let temporary = path.with_extension(format!("tmp-{}", hex_suffix(&suffix)));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let written = (|| {
            let mut file = options.open(&temporary)?;
            writeln!(file, "{}", STANDARD.encode(bytes))?;
            file.sync_all()?;
            std::fs::hard_link(&temporary, path)
        })();
        let _ = std::fs::remove_file(&temporary);
        match written {
            Ok(()) => Self::from_bytes(&bytes).ok_or(SecretError::Random),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Self::load(path),
            Err(e) => Err(failed(e)),
        }
    }

    fn from_bytes(bytes: &[u8]) -> Option<SecretKey> {
        let key = UnboundKey::new(&AES_256_GCM, bytes).ok()?;
        let derived = ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, bytes), AUDIT_KEY_LABEL);
        let audit: [u8; 32] = derived.as_ref().try_into().ok()?;
        Some(SecretKey { key: LessSafeKey::new(key), audit })
    }

    /// The key the audit chain is signed with (see `attest_domain::audit::ChainKey`).
    pub fn audit_chain_key(&self) -> [u8; 32] {
        self.audit
    }

    /// Seals `plaintext`, bound to `context`.
    pub fn seal(&self, plaintext: &[u8], context: &str) -> Result<Vec<u8>, SecretError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new().fill(&mut nonce).map_err(|_| SecretError::Random)?;
        let mut body = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(context.as_bytes()), &mut body)
            .map_err(|_| SecretError::Random)?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + body.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Opens what [`SecretKey::seal`] sealed with the same `context`.
    pub fn open(&self, sealed: &[u8], context: &str) -> Result<Vec<u8>, SecretError> {
        if sealed.len() < 1 + NONCE_LEN || sealed[0] != VERSION {
            return Err(SecretError::Undecryptable);
        }
        let nonce =
            Nonce::try_assume_unique_for_key(&sealed[1..1 + NONCE_LEN]).map_err(|_| SecretError::Undecryptable)?;
        let mut body = sealed[1 + NONCE_LEN..].to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut body)
            .map_err(|_| SecretError::Undecryptable)?;
        Ok(plain.to_vec())
    }
}

/// A secret from the configuration (a password). `Debug` never shows it; code that needs the
/// value calls [`SecretString::expose`], and never logs what it returns.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(value: impl Into<String>) -> SecretString {
        SecretString(value.into())
    }

    /// The secret itself, for the protocol that needs it only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretString(***)")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sealed_secrets_open_only_with_their_key_and_context() {
        let dir = std::env::temp_dir().join(format!("attest-secret-{}", std::process::id()));
        let path = dir.join("secret.key");
        let _ = std::fs::remove_file(&path);
        assert!(matches!(SecretKey::load(&path), Err(SecretError::MissingKey(_))));
        let key = SecretKey::load_or_create(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let sealed = key.seal(b"s3cret", "connector:1").unwrap();
        assert!(!sealed.windows(6).any(|w| w == b"s3cret"), "the plaintext does not appear");
        let again = SecretKey::load_or_create(&path).unwrap();
        assert_eq!(again.open(&sealed, "connector:1").unwrap(), b"s3cret");
        assert!(matches!(again.open(&sealed, "connector:2"), Err(SecretError::Undecryptable)), "bound to its row");
        let mut tampered = sealed.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(matches!(again.open(&tampered, "connector:1"), Err(SecretError::Undecryptable)));
        let other = SecretKey::from_bytes(&[7u8; KEY_LEN]).unwrap();
        assert!(matches!(other.open(&sealed, "connector:1"), Err(SecretError::Undecryptable)));
        assert_eq!(format!("{key:?}"), "SecretKey(..)");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
