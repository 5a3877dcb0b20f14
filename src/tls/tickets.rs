//! Session resumption of a `DownstreamTlsContext`, as Envoy configures BoringSSL: stateless
//! tickets (on by default with a random key per context; `session_ticket_keys` to share keys
//! between contexts and processes; `disable_stateless_session_resumption` to send none) and
//! a stateful session cache (`disable_stateful_session_resumption` to keep none).
//!
//! A key is Envoy's 80 bytes: a 16-byte name, 32 bytes of HMAC secret and a 32-byte AES key.
//! legate seals tickets with AES-256-GCM under the AES key (the AEAD authenticates, so the
//! HMAC secret is not needed) and prefixes the key's name; the first key seals, every key
//! opens, so a key file rotated with the new key first keeps old tickets valid. The tickets
//! are legate's own format: a ticket from Envoy does not resume on legate, nor the reverse
//! (each side falls back to a full handshake).

use std::sync::Arc;

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use rustls::server::{NoServerSessionStorage, ProducesTickets, ServerSessionMemoryCache};

/// The length of a key in a `session_ticket_keys` file, as Envoy requires it.
pub const KEY_LEN: usize = 80;
const NAME_LEN: usize = 16;

/// How long a client may keep a ticket (BoringSSL's default session timeout, which Envoy
/// keeps without `session_timeout`).
const LIFETIME_SECS: u32 = 7200;

/// The sessions a context resumes, as configured.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Resumption {
    /// `session_ticket_keys.keys`, in order; empty: a random key per context.
    pub keys: Vec<[u8; KEY_LEN]>,
    /// `disable_stateless_session_resumption`
    pub no_tickets: bool,
    /// `disable_stateful_session_resumption`
    pub no_cache: bool,
}

impl std::fmt::Debug for Resumption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the keys themselves: contexts are logged.
        f.debug_struct("Resumption")
            .field("keys", &self.keys.len())
            .field("no_tickets", &self.no_tickets)
            .field("no_cache", &self.no_cache)
            .finish()
    }
}

impl Resumption {
    /// Sets the context's ticketer and session cache.
    pub fn apply(&self, server: &mut rustls::ServerConfig) -> Result<(), rustls::Error> {
        if self.no_cache {
            server.session_storage = Arc::new(NoServerSessionStorage {});
        } else {
            server.session_storage = ServerSessionMemoryCache::new(256);
        }
        if !self.no_tickets {
            server.ticketer = if self.keys.is_empty() {
                super::server::ticketer()?
            } else {
                Arc::new(KeyedTicketer::new(&self.keys)?)
            };
        }
        if self.no_tickets && self.no_cache {
            // Nothing to resume: a TLS 1.3 ticket would only be refused later.
            server.send_tls13_tickets = 0;
        }
        Ok(())
    }
}

/// Tickets under configured keys.
struct KeyedTicketer {
    keys: Vec<([u8; NAME_LEN], LessSafeKey)>,
    rng: SystemRandom,
}

impl std::fmt::Debug for KeyedTicketer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyedTicketer").field("keys", &self.keys.len()).finish()
    }
}

impl KeyedTicketer {
    fn new(keys: &[[u8; KEY_LEN]]) -> Result<Self, rustls::Error> {
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            let mut name = [0u8; NAME_LEN];
            name.copy_from_slice(&k[..NAME_LEN]);
            let aes = UnboundKey::new(&AES_256_GCM, &k[KEY_LEN - 32..])
                .map_err(|_| rustls::Error::General("unusable session ticket key".into()))?;
            out.push((name, LessSafeKey::new(aes)));
        }
        Ok(KeyedTicketer { keys: out, rng: SystemRandom::new() })
    }
}

impl ProducesTickets for KeyedTicketer {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        LIFETIME_SECS
    }

    /// `name | nonce | sealed(plain)`.
    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        let (name, key) = self.keys.first()?;
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).ok()?;
        let mut out = Vec::with_capacity(NAME_LEN + NONCE_LEN + plain.len() + AES_256_GCM.tag_len());
        out.extend_from_slice(name);
        out.extend_from_slice(&nonce);
        let mut sealed = plain.to_vec();
        key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(name), &mut sealed).ok()?;
        out.extend_from_slice(&sealed);
        Some(out)
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        let (name, rest) = cipher.split_at_checked(NAME_LEN)?;
        let (nonce, sealed) = rest.split_at_checked(NONCE_LEN)?;
        let (name, key) = self.keys.iter().find(|(n, _)| n == name)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buf = sealed.to_vec();
        let plain = key.open_in_place(nonce, Aad::from(name), &mut buf).ok()?;
        Some(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(fill: u8) -> [u8; KEY_LEN] {
        let mut k = [fill; KEY_LEN];
        k[0] = fill ^ 0x55;
        k
    }

    #[test]
    fn the_first_key_seals_and_every_key_opens() {
        let old = KeyedTicketer::new(&[key(1)]).expect("keys");
        let rotated = KeyedTicketer::new(&[key(2), key(1)]).expect("keys");
        let stranger = KeyedTicketer::new(&[key(3)]).expect("keys");
        let t = old.encrypt(b"session").expect("sealed");
        assert_eq!(rotated.decrypt(&t).as_deref(), Some(&b"session"[..]));
        assert_eq!(stranger.decrypt(&t), None);
        let t2 = rotated.encrypt(b"session 2").expect("sealed");
        assert_eq!(old.decrypt(&t2), None, "sealed with the new first key");
        let mut tampered = t.clone();
        if let Some(last) = tampered.last_mut() {
            *last ^= 1;
        }
        assert_eq!(rotated.decrypt(&tampered), None);
        assert_eq!(rotated.decrypt(&t[..10]), None);
    }
}
