//! Logging in to PostgreSQL as a user found through `[auth] query` without ever knowing the
//! password: the client side of SCRAM-SHA-256 from keys (md5 answers from the stored hash with
//! `frontend::auth::md5_response`).
//! When the client authenticated to pgtide against the user's verifier, its proof gave away
//! its ClientKey (proof XOR ClientSignature, RFC 5802); with the verifier's ServerKey that is
//! all a SCRAM client needs: ClientProof = ClientKey XOR HMAC(SHA-256(ClientKey), AuthMessage),
//! and the server's signature is checked with HMAC(ServerKey, AuthMessage).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use sha2::{Digest, Sha256};

use pgtide_config::PassThrough;

use crate::frontend::auth::hmac;
use postgres_protocol::authentication::sasl::ScramSha256;

/// A backend login's SCRAM client: from the URL's password, or from a client's keys.
pub(crate) enum Scram {
    Password(ScramSha256),
    Keys(ScramFromKeys),
}

impl Scram {
    pub(crate) fn message(&self) -> &[u8] {
        match self {
            Scram::Password(s) => s.message(),
            Scram::Keys(s) => s.message(),
        }
    }

    pub(crate) fn update(&mut self, data: &[u8]) -> Result<(), String> {
        match self {
            Scram::Password(s) => s.update(data).map_err(|e| e.to_string()),
            Scram::Keys(s) => s.update(data),
        }
    }

    pub(crate) fn finish(&mut self, data: &[u8]) -> Result<(), String> {
        match self {
            Scram::Password(s) => s.finish(data).map_err(|e| e.to_string()),
            Scram::Keys(s) => s.finish(data),
        }
    }
}

/// One exchange, fed the server's messages in order; `message()` is what to send next.
pub(crate) struct ScramFromKeys {
    client_key: [u8; 32],
    server_key: [u8; 32],
    client_nonce: String,
    /// client-first-message-bare, then AuthMessage once the server's first message came.
    auth_message: String,
    expected_server_signature: Option<[u8; 32]>,
    next: Vec<u8>,
}

impl ScramFromKeys {
    /// None for credentials that are not SCRAM keys.
    pub(crate) fn new(pass_through: &PassThrough) -> Option<Self> {
        let PassThrough::Scram {
            client_key,
            server_key,
        } = pass_through
        else {
            return None;
        };
        let nonce: [u8; 18] = rand::random();
        let client_nonce = B64.encode(nonce);
        let bare = format!("n=,r={client_nonce}");
        Some(ScramFromKeys {
            client_key: *client_key,
            server_key: *server_key,
            next: format!("n,,{bare}").into_bytes(),
            auth_message: bare,
            client_nonce,
            expected_server_signature: None,
        })
    }

    pub(crate) fn message(&self) -> &[u8] {
        &self.next
    }

    /// server-first-message: answers with client-final-message.
    pub(crate) fn update(&mut self, server_first: &[u8]) -> Result<(), String> {
        let text = std::str::from_utf8(server_first).map_err(|_| "server-first is not UTF-8")?;
        let nonce = text
            .split(',')
            .find_map(|a| a.strip_prefix("r="))
            .ok_or("server-first has no nonce")?;
        if !nonce.starts_with(&self.client_nonce) || nonce.len() == self.client_nonce.len() {
            return Err("server nonce does not extend ours".into());
        }
        let without_proof = format!("c=biws,r={nonce}");
        self.auth_message = format!("{},{text},{without_proof}", self.auth_message);
        let stored_key: [u8; 32] = Sha256::digest(self.client_key).into();
        let signature = hmac(&stored_key, &[self.auth_message.as_bytes()]);
        let mut proof = self.client_key;
        proof.iter_mut().zip(signature).for_each(|(p, s)| *p ^= s);
        self.expected_server_signature =
            Some(hmac(&self.server_key, &[self.auth_message.as_bytes()]));
        self.next = format!("{without_proof},p={}", B64.encode(proof)).into_bytes();
        Ok(())
    }

    /// server-final-message: the server must prove it holds the verifier too.
    pub(crate) fn finish(&mut self, server_final: &[u8]) -> Result<(), String> {
        let text = std::str::from_utf8(server_final).map_err(|_| "server-final is not UTF-8")?;
        let signature = text
            .strip_prefix("v=")
            .and_then(|v| B64.decode(v).ok())
            .ok_or("server-final has no signature")?;
        match self.expected_server_signature {
            Some(expected) if expected[..] == signature[..] => Ok(()),
            _ => Err("the server's signature does not match the verifier".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against PostgreSQL's own server side (postgres-protocol's verifier and a hand-run server
    /// exchange): the keys of password "pencil" log in, and a forged server is caught.
    #[test]
    fn md5_from_the_stored_hash_is_what_the_password_gives() {
        let stored = crate::frontend::auth::md5_hash("alice", "pw");
        let salt = [1, 2, 3, 4];
        let from_password = postgres_protocol::authentication::md5_hash(b"alice", b"pw", salt);
        let from_stored = crate::frontend::auth::md5_response(&stored, salt);
        assert_eq!(from_stored, Some(from_password));
    }

    #[test]
    fn keys_log_in_where_the_password_would() {
        use crate::frontend::auth::{ScramExchange, ScramSecret};
        let secret = ScramSecret::from_password("pencil");
        let client_key = crate::frontend::auth::client_key_for_tests("pencil", &secret);
        let keys = PassThrough::Scram {
            client_key,
            server_key: secret.server_key,
        };
        let mut server = ScramExchange::new(secret.clone());
        let mut client = ScramFromKeys::new(&keys).expect("SCRAM keys");
        let first = server.client_first(client.message()).expect("client-first");
        client.update(&first).expect("server-first");
        let fin = server
            .client_final(client.message())
            .expect("the proof is accepted");
        client.finish(&fin).expect("the server's signature checks");

        let mut forged = ScramFromKeys::new(&keys).expect("SCRAM keys");
        let mut other = ScramExchange::new(ScramSecret::from_password("other"));
        let first = other.client_first(forged.message()).expect("client-first");
        forged.update(&first).expect("server-first");
        assert!(
            other.client_final(forged.message()).is_err(),
            "wrong verifier"
        );
        assert!(forged.finish(b"v=AAAA").is_err());
    }
}
