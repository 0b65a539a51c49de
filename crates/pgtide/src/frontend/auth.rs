//! Server side of client authentication: SCRAM-SHA-256 (RFC 5802/7677) and md5.
//!
//! Everything here parses untrusted peer bytes, so parsing never indexes or unwraps;
//! every malformed input maps to an [`AuthError`].

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use md5::{Digest as _, Md5};
use sha2::Sha256;
use std::sync::OnceLock;
use AuthError::{BadPassword, Malformed, OutOfOrder};

type HmacSha256 = Hmac<Sha256>;

const DEFAULT_ITERATIONS: u32 = 4096;

/// A stored SCRAM-SHA-256 secret in PostgreSQL's pg_authid format:
/// `SCRAM-SHA-256$<iterations>:<salt base64>$<StoredKey base64>:<ServerKey base64>`.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramSecret {
    pub iterations: u32,
    pub salt: Vec<u8>,
    pub stored_key: [u8; 32],
    pub server_key: [u8; 32],
}

// Keys are password-equivalent for SCRAM impersonation of the server; keep them out of logs.
impl std::fmt::Debug for ScramSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ScramSecret {{ iterations: {}, .. }}", self.iterations)
    }
}

impl ScramSecret {
    pub fn parse(s: &str) -> Option<ScramSecret> {
        let rest = s.strip_prefix("SCRAM-SHA-256$")?;
        let (params, keys) = rest.split_once('$')?;
        let (iterations, salt) = params.split_once(':')?;
        let (stored, server) = keys.split_once(':')?;
        let iterations: u32 = iterations.parse().ok().filter(|&i| i > 0)?;
        let salt = B64.decode(salt).ok().filter(|s| !s.is_empty())?;
        let stored_key = B64.decode(stored).ok()?.try_into().ok()?;
        let server_key = B64.decode(server).ok()?.try_into().ok()?;
        Some(ScramSecret {
            iterations,
            salt,
            stored_key,
            server_key,
        })
    }

    /// Derive from a plain-text password with a random 16-byte salt and 4096 iterations.
    pub fn from_password(password: &str) -> ScramSecret {
        let salt: [u8; 16] = rand::random();
        Self::from_password_with(password, &salt, DEFAULT_ITERATIONS)
    }

    /// Minimal SASLprep: for ASCII input SASLprep is either the identity or fails (control
    /// characters), and PostgreSQL falls back to the raw bytes on failure, so ASCII is exact.
    /// Non-ASCII passwords are used as raw bytes: we skip NFKC, the non-ASCII-space and
    /// map-to-nothing tables. That matches PostgreSQL whenever the password is already
    /// SASLprep-stable (e.g. NFC text without exotic spaces/soft hyphens), the common case.
    pub fn from_password_with(password: &str, salt: &[u8], iterations: u32) -> ScramSecret {
        let salted = hi(password.as_bytes(), salt, iterations);
        let client_key = hmac(&salted, &[b"Client Key"]);
        ScramSecret {
            iterations,
            salt: salt.to_vec(),
            stored_key: Sha256::digest(client_key).into(),
            server_key: hmac(&salted, &[b"Server Key"]),
        }
    }

    pub fn to_verifier_string(&self) -> String {
        format!(
            "SCRAM-SHA-256${}:{}${}:{}",
            self.iterations,
            B64.encode(&self.salt),
            B64.encode(self.stored_key),
            B64.encode(self.server_key)
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum AuthError {
    #[error("malformed SCRAM message: {0}")]
    Malformed(&'static str),
    #[error("password authentication failed")]
    BadPassword,
    #[error("unsupported SCRAM channel binding type (only tls-server-end-point, over TLS)")]
    ChannelBinding,
    #[error("SCRAM channel binding negotiation error: the client supports channel binding but thinks the server does not, and this server offered it")]
    Downgraded,
    #[error("SCRAM channel binding check failed")]
    BindingMismatch,
    #[error("SCRAM message received out of order")]
    OutOfOrder,
}

/// Exchange progress; any error moves it to `Done` so it cannot be resumed.
enum State {
    First,
    Final(Pending),
    Done,
}

/// What client-first fixed for client-final to check.
struct Pending {
    gs2_header: String,
    nonce: String,
    /// `client-first-message-bare "," server-first-message ","`: the signed text's start.
    auth_prefix: String,
}

/// One SCRAM-SHA-256 exchange, with channel binding (SCRAM-SHA-256-PLUS,
/// `tls-server-end-point`) when the connection is TLS. The gs2 header must fit the mechanism
/// the client chose: "p=tls-server-end-point" for -PLUS, "n" or "y" otherwise, and "y" (the
/// client could bind but thinks the server cannot) is refused when -PLUS was offered, since
/// someone in between removed it. The username in client-first is ignored, like PostgreSQL:
/// the startup-packet user counts.
pub(crate) struct ScramExchange {
    secret: ScramSecret,
    server_nonce: String,
    /// Mock exchanges run the full protocol but can never succeed.
    mock: bool,
    state: State,
    /// The TLS certificate's `tls-server-end-point`: -PLUS was offered.
    end_point: Option<Vec<u8>>,
    /// The client chose SCRAM-SHA-256-PLUS.
    plus: bool,
    /// The ClientKey the client's proof revealed, once it proved right (SCRAM pass-through).
    client_key: Option<[u8; 32]>,
}

/// The SASL mechanisms offered: -PLUS first when the connection can bind to its TLS channel.
pub(crate) fn mechanisms(tls: bool) -> &'static [&'static str] {
    if tls {
        &["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"]
    } else {
        &["SCRAM-SHA-256"]
    }
}

impl ScramExchange {
    pub(crate) fn new(secret: ScramSecret) -> Self {
        let nonce: [u8; 18] = rand::random();
        Self::with_server_nonce(secret, B64.encode(nonce))
    }

    fn with_server_nonce(secret: ScramSecret, server_nonce: String) -> Self {
        let state = State::First;
        ScramExchange {
            secret,
            server_nonce,
            mock: false,
            state,
            end_point: None,
            plus: false,
            client_key: None,
        }
    }

    /// After a successful exchange: the client's ClientKey, with which pgtide can log in to
    /// PostgreSQL as the client ([`crate::upstream::scram_keys`]) without its password.
    pub(crate) fn client_key(&self) -> Option<[u8; 32]> {
        self.client_key
    }

    /// The verifier's ServerKey (pass-through checks PostgreSQL's signature with it).
    pub(crate) fn server_key(&self) -> [u8; 32] {
        self.secret.server_key
    }

    /// Offers channel binding to the TLS certificate with this `tls-server-end-point`;
    /// `mechanism` is the one the client chose (it must be one of [`mechanisms`]).
    pub(crate) fn bind_channel(&mut self, end_point: Option<&[u8]>, mechanism: &str) {
        self.end_point = end_point.map(<[u8]>::to_vec);
        self.plus = mechanism == "SCRAM-SHA-256-PLUS";
    }

    /// client-first-message -> server-first-message.
    pub(crate) fn client_first(&mut self, data: &[u8]) -> Result<Vec<u8>, AuthError> {
        let State::First = std::mem::replace(&mut self.state, State::Done) else {
            return Err(OutOfOrder);
        };
        let msg = std::str::from_utf8(data).map_err(|_| Malformed("not UTF-8"))?;
        let (cbind, rest) = msg.split_once(',').ok_or(Malformed("missing gs2 header"))?;
        match (cbind, self.plus) {
            ("p=tls-server-end-point", true) if self.end_point.is_some() => {}
            (c, _) if c.starts_with("p=") => return Err(AuthError::ChannelBinding),
            ("n", false) => {}
            // The client could bind and believes the server cannot, but -PLUS was offered.
            ("y", false) if self.end_point.is_some() => return Err(AuthError::Downgraded),
            ("y", false) => {}
            ("n" | "y", true) => return Err(Malformed("SCRAM-SHA-256-PLUS without binding")),
            _ => return Err(Malformed("invalid channel binding flag")),
        }
        let (authzid, bare) = rest.split_once(',').ok_or(Malformed("missing authzid"))?;
        if !authzid.is_empty() {
            return Err(Malformed("authorization identity is not supported"));
        }
        let mut attrs = bare.split(',');
        match attrs.next() {
            Some(a) if a.starts_with("n=") => {}
            Some(a) if a.starts_with("m=") => return Err(Malformed("unsupported extension")),
            _ => return Err(Malformed("missing username")),
        }
        let client_nonce = attr(attrs.next(), "r=").ok_or(Malformed("missing nonce"))?;
        // RFC 5802: printable ASCII except ','; the split already excluded ','.
        if client_nonce.is_empty() || !client_nonce.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
            return Err(Malformed("invalid nonce"));
        }
        let nonce = format!("{client_nonce}{}", self.server_nonce);
        let (salt, iterations) = (B64.encode(&self.secret.salt), self.secret.iterations);
        let server_first = format!("r={nonce},s={salt},i={iterations}");
        let auth_prefix = format!("{bare},{server_first},");
        let gs2_header = format!("{cbind},,");
        self.state = State::Final(Pending {
            gs2_header,
            nonce,
            auth_prefix,
        });
        Ok(server_first.into_bytes())
    }

    /// client-final-message -> server-final-message (`v=<ServerSignature>`).
    pub(crate) fn client_final(&mut self, data: &[u8]) -> Result<Vec<u8>, AuthError> {
        let State::Final(pending) = std::mem::replace(&mut self.state, State::Done) else {
            return Err(OutOfOrder);
        };
        let msg = std::str::from_utf8(data).map_err(|_| Malformed("not UTF-8"))?;
        // The proof is always the last attribute; the signed text is everything before it.
        let (without_proof, proof) = msg.rsplit_once(",p=").ok_or(Malformed("missing proof"))?;
        let mut attrs = without_proof.split(',');
        let cb = attr(attrs.next(), "c=").ok_or(Malformed("missing channel binding"))?;
        let cb = B64.decode(cb).map_err(|_| Malformed("bad cbind base64"))?;
        let mut expected = pending.gs2_header.as_bytes().to_vec();
        if self.plus {
            expected.extend_from_slice(self.end_point.as_deref().unwrap_or_default());
        }
        if !ct_eq(&cb, &expected) {
            return Err(if self.plus {
                AuthError::BindingMismatch
            } else {
                Malformed("channel binding does not match gs2 header")
            });
        }
        if attr(attrs.next(), "r=") != Some(pending.nonce.as_str()) {
            return Err(Malformed("nonce mismatch"));
        }
        let proof = B64
            .decode(proof)
            .map_err(|_| Malformed("bad proof base64"))?;
        let proof: [u8; 32] = proof
            .try_into()
            .map_err(|_| Malformed("bad proof length"))?;

        let auth_message = format!("{}{without_proof}", pending.auth_prefix);
        let mut client_key = hmac(&self.secret.stored_key, &[auth_message.as_bytes()]);
        client_key.iter_mut().zip(proof).for_each(|(k, p)| *k ^= p);
        let computed: [u8; 32] = Sha256::digest(client_key).into();
        // Compute the check even for mocks so timing does not reveal unknown users.
        if !ct_eq(&computed, &self.secret.stored_key) || self.mock {
            return Err(BadPassword);
        }
        self.client_key = Some(client_key);
        let server_signature = hmac(&self.secret.server_key, &[auth_message.as_bytes()]);
        Ok(format!("v={}", B64.encode(server_signature)).into_bytes())
    }
}

fn attr<'a>(a: Option<&'a str>, prefix: &str) -> Option<&'a str> {
    a.and_then(|a| a.strip_prefix(prefix))
}

/// A dummy exchange for unknown users: same protocol flow, always fails at `client_final`
/// with `BadPassword`. Prefer [`mock_exchange_for`]: without a username, every unknown user
/// gets the same salt, which a prober could compare across usernames.
#[cfg(test)]
pub(crate) fn mock_exchange() -> ScramExchange {
    mock_exchange_for("")
}

/// Like [`mock_exchange`], but the salt is derived from a per-process secret and the
/// username (as PostgreSQL does), so repeated probes of one unknown user see a stable salt.
pub(crate) fn mock_exchange_for(user: &str) -> ScramExchange {
    static MOCK_KEY: OnceLock<[u8; 32]> = OnceLock::new();
    let key = MOCK_KEY.get_or_init(rand::random);
    let salt = hmac(key, &[b"mock-salt", user.as_bytes()]);
    let secret = ScramSecret {
        iterations: DEFAULT_ITERATIONS,
        salt: salt.get(..16).unwrap_or(&salt).to_vec(),
        stored_key: rand::random(),
        server_key: rand::random(),
    };
    let mut exchange = ScramExchange::new(secret);
    exchange.mock = true;
    exchange
}

/// Stored md5 hash: `"md5" + hex(md5(password + username))`.
pub fn md5_hash(user: &str, password: &str) -> String {
    md5_hex(&[password.as_bytes(), user.as_bytes()])
}

/// Check a client's md5 response (`"md5" + hex(md5(stored_hex + salt))`) in constant time.
pub(crate) fn md5_verify(stored_hash: &str, salt: [u8; 4], client_response: &str) -> bool {
    md5_response(stored_hash, salt)
        .is_some_and(|expected| ct_eq(expected.as_bytes(), client_response.as_bytes()))
}

/// The md5 answer to `salt` from a stored hash ("md5" + 32 hex): what a client computes from
/// the password, and what pgtide sends PostgreSQL for an `[auth] query` user. None for a
/// string that is not a stored md5 hash.
pub(crate) fn md5_response(stored_hash: &str, salt: [u8; 4]) -> Option<String> {
    let inner = stored_hash.strip_prefix("md5").filter(|h| h.len() == 32)?;
    Some(md5_hex(&[inner.as_bytes(), &salt]))
}

/// What a client sends for md5 auth (pgtide's logins to PostgreSQL use postgres-protocol's).
#[cfg(test)]
pub(crate) fn md5_client_response(user: &str, password: &str, salt: [u8; 4]) -> String {
    md5_response(&md5_hash(user, password), salt).unwrap_or_default()
}

pub(crate) fn random_salt() -> [u8; 4] {
    rand::random()
}

fn md5_hex(parts: &[&[u8]]) -> String {
    let mut md5 = Md5::new();
    parts.iter().for_each(|p| md5.update(p));
    format!("md5{}", hex(&md5.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    mac(&keyed(key), parts)
}

fn keyed(key: &[u8]) -> HmacSha256 {
    HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length")
}

/// MAC with a pre-keyed instance (cloning it saves re-keying in the PBKDF2 loop).
fn mac(keyed: &HmacSha256, parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = keyed.clone();
    parts.iter().for_each(|p| mac.update(p));
    mac.finalize().into_bytes().into()
}

/// PBKDF2-HMAC-SHA256 with a single output block (RFC 5802 "Hi").
fn hi(password: &[u8], salt: &[u8], iterations: u32) -> [u8; 32] {
    let base = keyed(password);
    let mut u = mac(&base, &[salt, &1u32.to_be_bytes()]);
    let mut out = u;
    for _ in 1..iterations {
        u = mac(&base, &[&u]);
        out.iter_mut().zip(u).for_each(|(o, x)| *o ^= x);
    }
    out
}

/// Constant time in the contents (length is not secret here). Also compares the HTTP token's
/// digests (`http/access.rs`).
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    a.len() == b.len() && std::hint::black_box(diff) == 0
}

/// ClientKey of `password` under `secret`'s salt and iterations, as a client derives it.
#[cfg(test)]
pub(crate) fn client_key_for_tests(password: &str, secret: &ScramSecret) -> [u8; 32] {
    let salted = hi(password.as_bytes(), &secret.salt, secret.iterations);
    hmac(&salted, &[b"Client Key"])
}

#[cfg(test)]
#[path = "auth_tests.rs"]
mod tests;
