//! Certificate credentials: instead of a client secret, the app proves itself with a JWT (the
//! client assertion) signed with the private key of a certificate uploaded to its registration.
//! Attest keeps the key (sealed with its secret key, as secrets are) and shows the certificate,
//! to upload to Entra; the assertion names it by thumbprint (`x5t`, and `x5t#S256`).

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{KeyPair, RSA_PKCS1_SHA256, RsaKeyPair, RsaPublicKeyComponents};
use serde_json::json;

/// How long an assertion is valid: Entra needs it only for the one token request.
const ASSERTION_LIFETIME_SECS: i64 = 600;

/// A generated certificate's key size: Entra accepts RSA keys of 2048 bits or more.
const GENERATED_KEY_BITS: usize = 2048;

/// A certificate and its private key, ready to sign assertions.
pub struct ClientCertificate {
    pair: RsaKeyPair,
    der: Vec<u8>,
    pem: String,
}

impl std::fmt::Debug for ClientCertificate {
    /// The key is never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCertificate").field("thumbprint", &self.thumbprint()).finish_non_exhaustive()
    }
}

/// The DER inside a PEM block labelled `label`.
fn pem_block(pem: &str, label: &str) -> Option<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let body: String = pem
        .lines()
        .map(str::trim)
        .skip_while(|l| *l != begin)
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    STANDARD.decode(body).ok().filter(|der| !der.is_empty())
}

/// `der` as a PEM block labelled `label`, in lines of 64 characters.
fn pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let lines: Vec<&str> = body.as_bytes().chunks(64).filter_map(|c| std::str::from_utf8(c).ok()).collect();
    format!("-----BEGIN {label}-----\n{}\n-----END {label}-----\n", lines.join("\n"))
}

impl ClientCertificate {
    /// The certificate (`-----BEGIN CERTIFICATE-----`) and its RSA private key (PKCS#8,
    /// `-----BEGIN PRIVATE KEY-----`, as `openssl req -x509 -newkey rsa:2048 -nodes` writes it).
    /// Refused when either is missing or the key is not the certificate's.
    pub fn from_pem(certificate: &str, key: &str) -> Result<ClientCertificate, String> {
        let der = pem_block(certificate, "CERTIFICATE")
            .ok_or("the certificate is not a PEM certificate (-----BEGIN CERTIFICATE-----)")?;
        let key_der = pem_block(key, "PRIVATE KEY").ok_or(
            "the private key is not an unencrypted PKCS#8 PEM key (-----BEGIN PRIVATE KEY-----); convert it with `openssl pkcs8 -topk8 -nocrypt`",
        )?;
        let pair = RsaKeyPair::from_pkcs8(&key_der)
            .map_err(|e| format!("the private key is not an RSA key of 2048 bits or more ({e})"))?;
        // The key's modulus appears verbatim in the certificate's public key when they belong
        // together (and, being 256 random bytes or more, nowhere else).
        let modulus = RsaPublicKeyComponents::<Vec<u8>>::from(pair.public_key()).n;
        let modulus = modulus.strip_prefix(&[0u8][..]).unwrap_or(&modulus).to_vec();
        if !der.windows(modulus.len()).any(|w| w == modulus) {
            return Err("the private key does not belong to the certificate".into());
        }
        let pem = pem("CERTIFICATE", &der);
        Ok(ClientCertificate { pair, der, pem })
    }

    /// A new RSA key pair and a self-signed certificate for it, named `common_name`, valid
    /// from `today` for `days` (Entra accepts self-signed certificates for client assertions):
    /// the certificate to upload to the app registration, and the private key as PKCS#8 PEM,
    /// for Attest to seal. The key never leaves Attest.
    pub fn generate(
        common_name: &str,
        today: chrono::NaiveDate,
        days: u32,
    ) -> Result<(ClientCertificate, String), String> {
        use chrono::Datelike;
        use rsa::pkcs8::EncodePrivateKey;

        let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, GENERATED_KEY_BITS)
            .map_err(|e| format!("no RSA key could be generated ({e})"))?;
        let key_der = key.to_pkcs8_der().map_err(|e| format!("the new key could not be encoded ({e})"))?;
        let signer = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(
            &rustls_pki_types::PrivatePkcs8KeyDer::from(key_der.as_bytes()),
            &rcgen::PKCS_RSA_SHA256,
        )
        .map_err(|e| format!("the new key cannot sign ({e})"))?;
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())
            .map_err(|e| format!("the certificate cannot be described ({e})"))?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(rcgen::DnType::CommonName, common_name);
        let date = |d: chrono::NaiveDate| {
            // Months and days always fit a u8.
            rcgen::date_time_ymd(d.year(), d.month() as u8, d.day() as u8)
        };
        params.not_before = date(today);
        params.not_after = date(today + chrono::Days::new(u64::from(days)));
        let certificate =
            params.self_signed(&signer).map_err(|e| format!("the certificate could not be signed ({e})"))?;
        let key_pem = pem("PRIVATE KEY", key_der.as_bytes());
        Ok((ClientCertificate::from_pem(&certificate.pem(), &key_pem)?, key_pem))
    }

    /// The certificate as PEM, to upload to the app registration.
    pub fn certificate_pem(&self) -> &str {
        &self.pem
    }

    /// The SHA-1 thumbprint in upper-case hex, as the Entra admin center lists it.
    pub fn thumbprint(&self) -> String {
        self.sha1().iter().map(|b| format!("{b:02X}")).collect()
    }

    fn sha1(&self) -> Vec<u8> {
        ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &self.der).as_ref().to_vec()
    }

    /// A client assertion for `client_id` at the token endpoint `audience`, valid from `now`
    /// (seconds since the epoch) for ten minutes.
    pub fn assertion(&self, client_id: &str, audience: &str, now: i64) -> Result<String, String> {
        let rng = SystemRandom::new();
        let mut jti = [0u8; 16];
        rng.fill(&mut jti).map_err(|_| "the system's random generator failed")?;
        let sha256 = ring::digest::digest(&ring::digest::SHA256, &self.der);
        let header = json!({
            "alg": "RS256",
            "typ": "JWT",
            "x5t": URL_SAFE_NO_PAD.encode(self.sha1()),
            "x5t#S256": URL_SAFE_NO_PAD.encode(sha256.as_ref()),
        });
        let claims = json!({
            "aud": audience,
            "iss": client_id,
            "sub": client_id,
            "jti": URL_SAFE_NO_PAD.encode(jti),
            "nbf": now,
            "iat": now,
            "exp": now + ASSERTION_LIFETIME_SECS,
        });
        let input =
            format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
        let mut signature = vec![0u8; self.pair.public().modulus_len()];
        self.pair
            .sign(&RSA_PKCS1_SHA256, &rng, input.as_bytes(), &mut signature)
            .map_err(|_| "the client assertion could not be signed")?;
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const CERT: &str = include_str!("../../entra-sim/keys/client-cert.pem");
    const KEY: &str = include_str!("../../entra-sim/keys/client-key.pem");

    #[test]
    fn a_generated_certificate_holds_its_own_new_key_and_its_dates() {
        let today = chrono::NaiveDate::from_ymd_opt(2026, 12, 4).unwrap();
        let (certificate, key) = ClientCertificate::generate("Attest contoso", today, 730).unwrap();
        assert!(key.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        // What Attest seals opens again as the same certificate.
        let again = ClientCertificate::from_pem(certificate.certificate_pem(), &key).unwrap();
        assert_eq!(again.thumbprint(), certificate.thumbprint());
        // Another generation is another key.
        let (other, other_key) = ClientCertificate::generate("Attest contoso", today, 730).unwrap();
        assert_ne!(other.thumbprint(), certificate.thumbprint());
        assert!(ClientCertificate::from_pem(certificate.certificate_pem(), &other_key).is_err());
        // The name and validity are in the certificate (UTCTime; 730 days span a leap day).
        let der = STANDARD
            .decode(certificate.certificate_pem().lines().filter(|l| !l.starts_with("-----")).collect::<String>())
            .unwrap();
        let text = String::from_utf8_lossy(&der);
        assert!(text.contains("Attest contoso"));
        assert!(text.contains("261204000000Z") && text.contains("281203000000Z"));
    }

    #[test]
    fn a_certificate_and_its_key_sign_assertions_and_strangers_are_refused() {
        let certificate = ClientCertificate::from_pem(CERT, KEY).unwrap();
        assert_eq!(certificate.thumbprint().len(), 40);
        assert!(certificate.certificate_pem().starts_with("-----BEGIN CERTIFICATE-----\n"));
        assert!(!format!("{certificate:?}").contains("PRIVATE"), "the key is never printed");
        let jwt = certificate.assertion("app", "https://login/t/oauth2/v2.0/token", 1_000).unwrap();
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(jwt.split('.').nth(1).unwrap()).unwrap()).unwrap();
        assert_eq!(
            (claims["iss"].as_str(), claims["sub"].as_str(), claims["exp"].as_i64()),
            (Some("app"), Some("app"), Some(1_600))
        );
        // The wrong way round, garbage, and a key that is not the certificate's.
        assert!(ClientCertificate::from_pem(KEY, CERT).is_err());
        assert!(ClientCertificate::from_pem("hello", KEY).is_err());
        let other = include_bytes!("../../entra-sim/keys/signing-key.pk8");
        let other_pem = format!("-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n", STANDARD.encode(other));
        assert_eq!(
            ClientCertificate::from_pem(CERT, &other_pem).unwrap_err(),
            "the private key does not belong to the certificate"
        );
    }
}
