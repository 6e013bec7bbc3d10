//! The simulator's token-signing key: RS256 JWTs and the JWKS that verifies them.
//!
//! The key is fixed (`keys/signing-key.pk8`, public test material) so tokens verify the same
//! way everywhere; `kid` is derived from the public key, as clients select keys by `kid`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{KeyPair, RSA_PKCS1_SHA256, RsaKeyPair, RsaPublicKeyComponents};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const KEY: &[u8] = include_bytes!("../keys/signing-key.pk8");

pub(crate) struct SigningKey {
    pair: RsaKeyPair,
    kid: String,
    rng: SystemRandom,
}

impl SigningKey {
    /// The built-in key. It is valid PKCS#8 (checked by a test), so loading cannot fail at
    /// run time; if the file were replaced by something else, tokens would be unsigned.
    pub(crate) fn builtin() -> Option<SigningKey> {
        let pair = RsaKeyPair::from_pkcs8(KEY)
            .map_err(|e| tracing::error!(error = ?e, "the simulator's signing key does not load: tokens are unsigned"))
            .ok()?;
        let public = RsaPublicKeyComponents::<Vec<u8>>::from(pair.public_key());
        let modulus = public.n;
        let kid = URL_SAFE_NO_PAD.encode(&Sha256::digest(&modulus)[..20]);
        Some(SigningKey { pair, kid, rng: SystemRandom::new() })
    }

    /// A compact JWS: `header.claims.signature`, RS256.
    pub(crate) fn sign(&self, claims: &Value) -> String {
        let header = json!({"typ": "JWT", "alg": "RS256", "kid": self.kid});
        let input =
            format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
        let mut signature = vec![0u8; self.pair.public().modulus_len()];
        if self.pair.sign(&RSA_PKCS1_SHA256, &self.rng, input.as_bytes(), &mut signature).is_err() {
            signature.clear();
        }
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    /// The JWKS document (`discovery/v2.0/keys`), shaped like Entra's.
    pub(crate) fn jwks(&self, issuer: &str) -> Value {
        let public = RsaPublicKeyComponents::<Vec<u8>>::from(self.pair.public_key());
        json!({"keys": [{
            "kty": "RSA",
            "use": "sig",
            "kid": self.kid,
            "n": URL_SAFE_NO_PAD.encode(&public.n),
            "e": URL_SAFE_NO_PAD.encode(&public.e),
            "issuer": issuer,
        }]})
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use ring::signature::RSA_PKCS1_2048_8192_SHA256;

    #[test]
    fn tokens_verify_against_the_published_key() {
        let key = SigningKey::builtin().unwrap();
        let jwt = key.sign(&json!({"sub": "x"}));
        let jwks = key.jwks("https://issuer");
        let jwk = &jwks["keys"][0];
        let decode = |v: &Value| URL_SAFE_NO_PAD.decode(v.as_str().unwrap()).unwrap();
        let public = RsaPublicKeyComponents { n: decode(&jwk["n"]), e: decode(&jwk["e"]) };
        let (input, signature) = jwt.rsplit_once('.').unwrap();
        let signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
        public.verify(&RSA_PKCS1_2048_8192_SHA256, input.as_bytes(), &signature).unwrap();
        assert!(public.verify(&RSA_PKCS1_2048_8192_SHA256, b"tampered", &signature).is_err());
        let header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(jwt.split('.').next().unwrap()).unwrap()).unwrap();
        assert_eq!((header["alg"].as_str(), header["kid"].as_str()), (Some("RS256"), jwk["kid"].as_str()));
    }
}
