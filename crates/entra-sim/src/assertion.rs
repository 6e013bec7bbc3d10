//! Certificate credentials: a client proves itself with a JWT it signed with the private key of
//! a certificate uploaded to its app registration (`client_assertion`, with
//! `client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer`), checked as
//! Entra checks it:
//! - the header names the certificate by thumbprint (`x5t`: base64url SHA-1 of its DER, or
//!   `x5t#S256`), and it is one uploaded to the app, else AADSTS700027;
//! - RS256 (or PS256) over the certificate's public key, else AADSTS700027;
//! - `iss` and `sub` are the client id, else AADSTS700021;
//! - `aud` is the token endpoint the request came to, else AADSTS700023;
//! - `exp` not past and `nbf` not ahead (five minutes of skew), else AADSTS700024.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use ring::signature::{RSA_PKCS1_2048_8192_SHA256, RSA_PSS_2048_8192_SHA256, UnparsedPublicKey};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The assertion type Entra accepts.
pub(crate) const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A certificate uploaded to the app registration: its DER, and where its public key is.
#[derive(Debug, Clone, PartialEq)]
pub struct UploadedCertificate {
    der: Vec<u8>,
}

impl UploadedCertificate {
    /// A certificate from its PEM text (`-----BEGIN CERTIFICATE-----`).
    pub fn from_pem(pem: &str) -> Option<UploadedCertificate> {
        let body: String = pem
            .lines()
            .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE-----"))
            .skip(1)
            .take_while(|l| !l.starts_with("-----END"))
            .collect();
        let der = STANDARD.decode(body.trim()).ok()?;
        let certificate = UploadedCertificate { der };
        certificate.rsa_public_key()?;
        Some(certificate)
    }

    fn sha1(&self) -> Vec<u8> {
        ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &self.der).as_ref().to_vec()
    }

    fn sha256(&self) -> Vec<u8> {
        Sha256::digest(&self.der).to_vec()
    }

    /// The `RSAPublicKey` (what ring verifies with): the content of the BIT STRING that follows
    /// the `rsaEncryption` algorithm identifier in the certificate's SubjectPublicKeyInfo.
    fn rsa_public_key(&self) -> Option<&[u8]> {
        // OID 1.2.840.113549.1.1.1 and a NULL parameter; the signature algorithm's OID differs
        // in its last byte, so this finds the key's.
        const RSA_ENCRYPTION: &[u8] = &[0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00];
        let at = self.der.windows(RSA_ENCRYPTION.len()).position(|w| w == RSA_ENCRYPTION)? + RSA_ENCRYPTION.len();
        let rest = self.der.get(at..)?;
        if rest.first() != Some(&0x03) {
            return None;
        }
        let (length, header) = der_length(rest.get(1..)?)?;
        let bits = rest.get(1 + header..1 + header + length)?;
        // The first byte counts unused bits: none in a key.
        (bits.first() == Some(&0)).then(|| &bits[1..])
    }
}

/// A DER length: its value and how many bytes it took.
fn der_length(bytes: &[u8]) -> Option<(usize, usize)> {
    let first = *bytes.first()?;
    if first < 0x80 {
        return Some((usize::from(first), 1));
    }
    let count = usize::from(first & 0x7f);
    if count == 0 || count > 4 {
        return None;
    }
    let length = bytes.get(1..=count)?.iter().fold(0usize, |n, b| (n << 8) | usize::from(*b));
    Some((length, 1 + count))
}

/// Why an assertion is refused: the AADSTS code and its message.
pub(crate) type Refusal = (u32, String);

/// Checks `assertion` for `client_id` at the token endpoint `audience` against `uploaded`.
pub(crate) fn check(
    assertion: &str,
    client_id: &str,
    audiences: &[String],
    uploaded: &[UploadedCertificate],
    now: DateTime<Utc>,
) -> Result<(), Refusal> {
    let malformed = || (50027, "JWT token is invalid or malformed.".to_owned());
    let mut parts = assertion.split('.');
    let (Some(header), Some(claims), Some(signature), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed());
    };
    let decode = |part: &str| URL_SAFE_NO_PAD.decode(part.trim_end_matches('=')).ok();
    let header: Value = decode(header).and_then(|b| serde_json::from_slice(&b).ok()).ok_or_else(malformed)?;
    let claims: Value = decode(claims).and_then(|b| serde_json::from_slice(&b).ok()).ok_or_else(malformed)?;
    let signature = decode(signature).ok_or_else(malformed)?;
    let not_uploaded = || {
        (
            700027,
            format!(
                "Client assertion failed signature validation. The certificate used to sign it is not registered on application '{client_id}'."
            ),
        )
    };
    let thumbprint =
        |name: &str| header[name].as_str().and_then(|t| URL_SAFE_NO_PAD.decode(t.trim_end_matches('=')).ok());
    let certificate = match (thumbprint("x5t#S256"), thumbprint("x5t")) {
        (Some(sha256), _) => uploaded.iter().find(|c| c.sha256() == sha256),
        (None, Some(sha1)) => uploaded.iter().find(|c| c.sha1() == sha1),
        (None, None) => None,
    }
    .ok_or_else(not_uploaded)?;
    let algorithm: &dyn ring::signature::VerificationAlgorithm = match header["alg"].as_str() {
        Some("RS256") => &RSA_PKCS1_2048_8192_SHA256,
        Some("PS256") => &RSA_PSS_2048_8192_SHA256,
        _ => return Err(not_uploaded()),
    };
    let key = certificate.rsa_public_key().ok_or_else(not_uploaded)?;
    let signed = assertion.rsplit_once('.').map(|(input, _)| input).unwrap_or_default();
    UnparsedPublicKey::new(algorithm, key)
        .verify(signed.as_bytes(), &signature)
        .map_err(|_| (700027, "Client assertion contains an invalid signature.".to_owned()))?;
    if claims["iss"].as_str() != Some(client_id) || claims["sub"].as_str() != Some(client_id) {
        return Err((
            700021,
            "Client assertion application identifier doesn't match 'client_id' parameter.".to_owned(),
        ));
    }
    let aud = claims["aud"].as_str().unwrap_or_default();
    if !audiences.iter().any(|a| a.eq_ignore_ascii_case(aud)) {
        return Err((
            700023,
            format!(
                "Client assertion audience claim does not match Realm issuer. Review the documentation at https://aka.ms/certCreds. (audience '{aud}')"
            ),
        ));
    }
    let skew = 300;
    let (exp, nbf) = (claims["exp"].as_i64(), claims["nbf"].as_i64().unwrap_or(i64::MIN));
    let now = now.timestamp();
    if exp.is_none_or(|exp| exp + skew < now) || nbf - skew > now {
        return Err((700024, "Client assertion is not within its valid time range.".to_owned()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use ring::rand::SystemRandom;
    use ring::signature::RsaKeyPair;
    use serde_json::json;

    use super::*;

    const CERT: &str = include_str!("../keys/client-cert.pem");
    const KEY: &str = include_str!("../keys/client-key.pem");
    const AUD: &str = "https://login.example/tenant/oauth2/v2.0/token";

    fn pem_der(pem: &str) -> Vec<u8> {
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        STANDARD.decode(body).unwrap()
    }

    fn sign(header: Value, claims: Value) -> String {
        let pair = RsaKeyPair::from_pkcs8(&pem_der(KEY)).unwrap();
        let input =
            format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
        let mut signature = vec![0u8; pair.public().modulus_len()];
        pair.sign(&ring::signature::RSA_PKCS1_SHA256, &SystemRandom::new(), input.as_bytes(), &mut signature).unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    #[test]
    fn an_assertion_is_checked_as_entra_checks_it() {
        let uploaded = vec![UploadedCertificate::from_pem(CERT).unwrap()];
        let x5t = URL_SAFE_NO_PAD.encode(uploaded[0].sha1());
        let now = chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 12, 5, 9, 0, 0).unwrap();
        let t = now.timestamp();
        let header = json!({"alg": "RS256", "typ": "JWT", "x5t": x5t});
        let claims = json!({"aud": AUD, "iss": "app", "sub": "app", "jti": "1", "nbf": t, "exp": t + 600});
        let audiences = vec![AUD.to_owned()];
        assert_eq!(check(&sign(header.clone(), claims.clone()), "app", &audiences, &uploaded, now), Ok(()));
        let code = |header: Value, claims: Value| {
            check(&sign(header, claims), "app", &audiences, &uploaded, now).unwrap_err().0
        };
        let with = |mut v: Value, k: &str, x: Value| {
            v[k] = x;
            v
        };
        assert_eq!(code(with(header.clone(), "x5t", json!("AAAA")), claims.clone()), 700027, "not uploaded");
        assert_eq!(code(header.clone(), with(claims.clone(), "iss", json!("other"))), 700021);
        assert_eq!(code(header.clone(), with(claims.clone(), "sub", json!("other"))), 700021);
        assert_eq!(code(header.clone(), with(claims.clone(), "aud", json!("https://elsewhere/token"))), 700023);
        assert_eq!(code(header.clone(), with(claims.clone(), "exp", json!(t - 3600))), 700024);
        assert_eq!(code(header.clone(), with(claims.clone(), "nbf", json!(t + 3600))), 700024);
        // A changed byte breaks the signature; nothing uploaded, nothing accepted.
        let good = sign(header.clone(), claims.clone());
        let (input, signature) = good.rsplit_once('.').unwrap();
        let tampered = format!("{input}x.{signature}");
        assert!(check(&tampered, "app", &audiences, &uploaded, now).is_err());
        assert_eq!(check(&good, "app", &audiences, &[], now).unwrap_err().0, 700027);
        assert_eq!(check("not-a-jwt", "app", &audiences, &uploaded, now).unwrap_err().0, 50027);
    }
}
