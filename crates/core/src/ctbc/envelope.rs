//! The CTBC envelope: Big5 text, 3DES-EDE CBC, PKCS#5 padding and the MAC tail.
//! This is the only place in refundd that does cryptography; the client and the
//! simulator both seal and open messages through it, so they cannot drift apart.
//! The webhook's HMAC-SHA256 signature lives here too, so that every use of a
//! cipher or MAC in refundd is in this one file.

use cbc::cipher::{block_padding::Pkcs7, BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use des::TdesEde3;

type Encryptor = cbc::Encryptor<TdesEde3>;
type Decryptor = cbc::Decryptor<TdesEde3>;

/// Length in hex characters of the MAC tail that follows the JSON.
pub const MAC_HEX_LEN: usize = 48;
/// Length of the MAC key the bank issues, in ASCII characters.
pub const MAC_KEY_LEN: usize = 24;
/// Length of the IV the bank issues, in ASCII characters.
pub const IV_LEN: usize = 8;
/// A 3DES block, in bytes.
const BLOCK: usize = 8;

/// Why a message could not be sealed or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("the MAC key must be {MAC_KEY_LEN} ASCII characters (got {0} bytes)")]
    KeyLength(usize),
    #[error("the IV must be {IV_LEN} ASCII characters (got {0} bytes)")]
    IvLength(usize),
    #[error("text has a character Big5 cannot carry: {0:?}")]
    NotBig5Encodable(char),
    #[error("ciphertext is not hexadecimal")]
    NotHex,
    #[error("ciphertext length {0} is not a whole number of 3DES blocks")]
    BlockLength(usize),
    #[error("padding is wrong after decryption (wrong key, IV or a damaged message)")]
    Padding,
    #[error("decrypted text is not valid Big5")]
    NotBig5,
    #[error("decrypted text holds no JSON object")]
    NoJson,
    #[error("MAC does not match the message")]
    MacMismatch,
}

/// Keys of one merchant's envelope. Debug never shows them.
#[derive(Clone)]
pub struct Envelope {
    key: [u8; MAC_KEY_LEN],
    iv: [u8; IV_LEN],
}

impl std::fmt::Debug for Envelope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Envelope { key: [redacted], iv: [redacted] }")
    }
}

impl Envelope {
    /// Builds the envelope from the bank's MAC key (24 bytes, used as they are)
    /// and IV (8 bytes).
    pub fn new(mac_key: &[u8], iv: &[u8]) -> Result<Self, EnvelopeError> {
        let key: [u8; MAC_KEY_LEN] = mac_key
            .try_into()
            .map_err(|_| EnvelopeError::KeyLength(mac_key.len()))?;
        let iv: [u8; IV_LEN] = iv
            .try_into()
            .map_err(|_| EnvelopeError::IvLength(iv.len()))?;
        Ok(Self { key, iv })
    }

    /// `E(x)` (3DES-EDE CBC, PKCS#5 padded) of a text `x` whose whole blocks
    /// before `rest` are known to encrypt to `known` (a whole number of
    /// blocks): CBC chains each block on the ciphertext of the one before, so
    /// only `rest` is encrypted. With nothing known, this is `E(rest)`.
    fn encrypt_after(&self, known: &[u8], rest: &[u8]) -> Vec<u8> {
        let chain = known
            .len()
            .checked_sub(BLOCK)
            .and_then(|last| <[u8; BLOCK]>::try_from(&known[last..]).ok())
            .unwrap_or(self.iv);
        let mut e = Vec::with_capacity(known.len() + rest.len() + BLOCK);
        e.extend_from_slice(known);
        e.extend(
            Encryptor::new(&self.key.into(), &chain.into()).encrypt_padded_vec_mut::<Pkcs7>(rest),
        );
        e
    }

    /// The MAC `M` of a JSON text: the last 48 hex characters of `E(big5(J))`.
    pub fn mac(&self, json: &str) -> Result<String, EnvelopeError> {
        Ok(mac_of(&self.encrypt_after(&[], &to_big5(json)?)))
    }

    /// `ApiEnc` for a JSON text: `E(big5(J) + M)`. Its blocks that hold only
    /// the JSON are those of `E(big5(J))`, already made for the MAC: only the
    /// JSON's last, partial block and the MAC are encrypted again.
    pub fn seal(&self, json: &str) -> Result<String, EnvelopeError> {
        let bytes = to_big5(json)?;
        let e = self.encrypt_after(&[], &bytes);
        let mac = mac_of(&e);
        let whole = bytes.len() / BLOCK * BLOCK;
        let rest = [&bytes[whole..], mac.as_bytes()].concat();
        Ok(hex::encode_upper(self.encrypt_after(&e[..whole], &rest)))
    }

    /// Seals a message with a MAC tail of the caller's choosing. Only the
    /// simulator's fault injection uses this, to send answers a careful client
    /// must reject.
    pub fn seal_with_forged_mac(&self, json: &str, mac: &str) -> Result<String, EnvelopeError> {
        let bytes = [to_big5(json)?.as_slice(), mac.as_bytes()].concat();
        Ok(hex::encode_upper(self.encrypt_after(&[], &bytes)))
    }

    /// Opens an `ApiEnc` value: decrypts, checks the padding, decodes Big5,
    /// takes the JSON up to its last `}` and checks the MAC that follows it.
    /// Returns the JSON text.
    ///
    /// The protocol's MAC is a CBC-MAC under the same key and IV: it covers
    /// the end of the message only. Damage to a ciphertext block before the
    /// last block of the JSON garbles that block and flips bits in the next,
    /// yet re-encryption heals before the MAC, so such a message can open to
    /// altered text. Integrity of the whole message rests on TLS; the JSON and
    /// field checks of the answer catch most such damage.
    pub fn open(&self, api_enc: &str) -> Result<String, EnvelopeError> {
        let ct = hex::decode(api_enc.trim()).map_err(|_| EnvelopeError::NotHex)?;
        if ct.is_empty() || ct.len() % 8 != 0 {
            return Err(EnvelopeError::BlockLength(ct.len()));
        }
        let plain = Decryptor::new(&self.key.into(), &self.iv.into())
            .decrypt_padded_vec_mut::<Pkcs7>(&ct)
            .map_err(|_| EnvelopeError::Padding)?;
        // Big5 as sent: bytes that look like a UTF-8 or UTF-16 byte-order
        // mark are Big5 (or not Big5) like any others, never a switch to
        // another encoding.
        let (text, had_errors) = encoding_rs::BIG5.decode_without_bom_handling(&plain);
        if had_errors {
            return Err(EnvelopeError::NotBig5);
        }
        let end = text.rfind('}').ok_or(EnvelopeError::NoJson)?;
        let tail = &text[end + 1..];
        // The tail is ASCII hex, so its byte length in Big5 equals its length
        // here: the JSON's own bytes are everything before it, exactly as sent.
        if !tail.is_ascii() {
            return Err(EnvelopeError::MacMismatch);
        }
        let json_bytes = &plain[..plain.len() - tail.len()];
        // Encrypting the decrypted blocks again gives the received ones, so
        // `E(json)` is the ciphertext's whole blocks of the JSON followed by
        // its last, partial block, the only one encrypted here.
        let whole = json_bytes.len() / BLOCK * BLOCK;
        if mac_of(&self.encrypt_after(&ct[..whole], &json_bytes[whole..])) != tail {
            return Err(EnvelopeError::MacMismatch);
        }
        Ok(text[..=end].to_string())
    }
}

/// The MAC tail of a ciphertext `E(x)`: its last 48 hex characters. A text
/// shorter than three blocks has a shorter ciphertext: the MAC is then all of
/// it (as PHP's substr($e, -48) gives), never a panic.
fn mac_of(e: &[u8]) -> String {
    hex::encode_upper(&e[e.len().saturating_sub(MAC_HEX_LEN / 2)..])
}

/// Encodes text as Big5, refusing characters Big5 cannot carry (instead of the
/// HTML character references encoding_rs would put in their place).
pub fn to_big5(text: &str) -> Result<Vec<u8>, EnvelopeError> {
    let (bytes, _, had_errors) = encoding_rs::BIG5.encode(text);
    if had_errors {
        let bad = text
            .chars()
            .find(|c| {
                let mut buf = [0u8; 4];
                encoding_rs::BIG5.encode(c.encode_utf8(&mut buf)).2
            })
            .unwrap_or('\u{FFFD}');
        return Err(EnvelopeError::NotBig5Encodable(bad));
    }
    Ok(bytes.into_owned())
}

/// Decodes Big5 bytes (for example a bank's HTML page), replacing what is not Big5.
pub fn from_big5_lossy(bytes: &[u8]) -> String {
    encoding_rs::BIG5.decode(bytes).0.into_owned()
}

/// Hex HMAC-SHA256 of `parts` (concatenated) under `key`: the signature
/// refundd puts on its webhook deliveries (`notify::signature`).
pub fn hmac_sha256_hex(key: &[u8], parts: &[&[u8]]) -> String {
    use hmac::{Hmac, Mac};
    // HMAC takes a key of any length, so this cannot fail.
    let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(key) else {
        return String::new();
    };
    for part in parts {
        mac.update(part);
    }
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "ABCDEFGHIJKLMNOPQRSTUVWX";
    const IV: &str = "test8iv!";
    const REF_JSON: &str = r#"{"MERID":"1234567","LID-M":"ORDER001","VERSION":"3.2","SwRevision":"MicroQuery Server 3.2 (2019/10/25)","Tx_ATTRIBUTE":"TX_AUTH"}"#;

    fn env() -> Envelope {
        Envelope::new(KEY.as_bytes(), IV.as_bytes()).unwrap()
    }

    #[test]
    fn reproduces_the_reference_values() {
        let e = env();
        assert_eq!(
            e.mac(REF_JSON).unwrap(),
            "3C130B5FDF4BE63BE86D9E79E4B6D321FD174EA63A578652"
        );
        let api_enc = e.seal(REF_JSON).unwrap();
        assert_eq!(api_enc.len(), 368);
        assert!(api_enc.starts_with("B23A3F7C212A186468F9C150A6A9F723"));
        assert!(api_enc.ends_with("7F01119FD0FA84D8"));
        assert_eq!(e.open(&api_enc).unwrap(), REF_JSON);
    }

    /// The protocol's definitions, computed the long way: `E` over the whole
    /// text every time.
    fn naive_e(x: &[u8]) -> String {
        hex::encode_upper(
            Encryptor::new(KEY.as_bytes().into(), IV.as_bytes().into())
                .encrypt_padded_vec_mut::<Pkcs7>(x),
        )
    }

    #[test]
    fn seal_mac_and_open_agree_with_the_definitions_at_every_length() {
        let e = env();
        for len in 0..=90 {
            // Texts ending in `}` at every offset within a block.
            let json = format!(
                "{{\"A\":\"{}\"}}",
                "x交".repeat(len / 3) + &"y".repeat(len % 3)
            );
            let bytes = to_big5(&json).unwrap();
            let full = naive_e(&bytes);
            let mac = full[full.len().saturating_sub(MAC_HEX_LEN)..].to_string();
            assert_eq!(e.mac(&json).unwrap(), mac, "{json}");
            let sealed = naive_e(&[bytes.as_slice(), mac.as_bytes()].concat());
            assert_eq!(e.seal(&json).unwrap(), sealed, "{json}");
            assert_eq!(e.open(&sealed).unwrap(), json);
        }
    }

    #[test]
    fn big5_that_begins_like_a_byte_order_mark_is_read_as_big5() {
        let e = env();
        // Two Big5 characters whose bytes are EF BB BF 40: a UTF-8 BOM, then '@'.
        let (lead, bad) = encoding_rs::BIG5.decode_without_bom_handling(b"\xEF\xBB\xBF\x40");
        assert!(!bad && lead.chars().count() == 2, "{lead}");
        let text = format!(r#"{lead}{{"RespCode":"0"}}"#);
        assert_eq!(e.open(&e.seal(&text).unwrap()).unwrap(), text);
        // Bytes that begin like a UTF-16 BOM are no Big5 at all.
        for bom in [b"\xFF\xFE", b"\xFE\xFF"] {
            let json = br#"{"RespCode":"0"}"#;
            let bytes = [bom.as_slice(), json].concat();
            let e_bytes = naive_e(&bytes);
            let mac = &e_bytes.as_bytes()[e_bytes.len() - MAC_HEX_LEN..];
            let sealed = naive_e(&[bytes.as_slice(), mac].concat());
            assert_eq!(e.open(&sealed), Err(EnvelopeError::NotBig5), "{bom:?}");
        }
    }

    #[test]
    fn big5_text_survives() {
        let e = env();
        let json = r#"{"RespCode":"99","ERRDESC":"交易失敗"}"#;
        assert_eq!(e.open(&e.seal(json).unwrap()).unwrap(), json);
    }

    #[test]
    fn forged_mac_is_rejected() {
        let e = env();
        let forged = e.seal_with_forged_mac(REF_JSON, &"0".repeat(48)).unwrap();
        assert_eq!(e.open(&forged), Err(EnvelopeError::MacMismatch));
    }

    #[test]
    fn wrong_key_or_garbage_is_rejected() {
        let other = Envelope::new(b"XBCDEFGHIJKLMNOPQRSTUVWX", IV.as_bytes()).unwrap();
        let sealed = env().seal(REF_JSON).unwrap();
        assert!(other.open(&sealed).is_err());
        assert_eq!(env().open("zz"), Err(EnvelopeError::NotHex));
        assert_eq!(env().open("ABCD"), Err(EnvelopeError::BlockLength(2)));
    }

    #[test]
    fn short_texts_seal_and_open_without_panicking() {
        let e = env();
        for json in ["{}", r#"{"a":"b"}"#, "x }"] {
            assert_eq!(e.open(&e.seal(json).unwrap()).unwrap(), json);
        }
        // A forged short message whose tail is not the MAC is still rejected.
        let forged = e.seal_with_forged_mac("{}", "0").unwrap();
        assert_eq!(e.open(&forged), Err(EnvelopeError::MacMismatch));
    }

    #[test]
    fn unencodable_text_is_refused() {
        assert_eq!(
            env().seal(r#"{"a":"😀"}"#),
            Err(EnvelopeError::NotBig5Encodable('😀'))
        );
    }

    #[test]
    fn key_and_iv_lengths_are_checked() {
        assert_eq!(
            Envelope::new(b"short", IV.as_bytes()).unwrap_err(),
            EnvelopeError::KeyLength(5)
        );
        assert_eq!(
            Envelope::new(KEY.as_bytes(), b"x").unwrap_err(),
            EnvelopeError::IvLength(1)
        );
        assert!(!format!("{:?}", env()).contains(KEY));
    }
}
