// Package keyring owns Nodus's master keys and the encryption of values at
// rest: secrets kept in a database (the SMTP password, the vault's data
// keys) are sealed with keys derived from them, so a copy of a database
// alone reveals none of them.
//
// Invariants:
//
//   - A master key is 32 random bytes with an id from 1 to 255. The keys
//     come from NODUS_MASTER_KEY or from the file master.key in the data
//     directory, which is created once (one key), atomically and with mode
//     0600, and never overwritten except whole by AddKeyToFile and
//     SetCurrentInFile, which keep every key. A key file readable by
//     anyone but its owner is refused.
//   - The key text (Parse) is one bare base64 key, which has id 1 (the
//     original format, so everything sealed before rotation existed still
//     opens), or entries "ID:KEY" separated by line breaks, commas or
//     spaces, "#" comments allowed. The entry marked "*" is current;
//     without a mark, the highest id is.
//   - The current key seals; every loaded key opens what it sealed. That
//     is rotation without downtime: add a key, make it current, rewrap
//     what the old one sealed (the vault's RotateMasterKey), and only then
//     remove the old one.
//   - A master key never encrypts anything itself. Each purpose
//     ("settings", "vault") gets its own AES-256 key per master key,
//     derived with HKDF-SHA-256, so keys for different purposes are
//     independent and a value sealed for one purpose does not open for
//     another.
//   - A sealed value is AES-256-GCM with a random 96-bit nonce:
//     key id (1 byte) | nonce (12 bytes) | ciphertext and tag (16 bytes).
//     The key id names the master key it was sealed under and is itself
//     authenticated. Additional data names what the value is and whom it
//     belongs to, so a sealed value copied into another row does not open
//     there.
//   - Open fails, and returns no plaintext, for any change to the sealed
//     bytes, other additional data, another key, a key that is not loaded
//     or a truncated value.
//   - Key material is never logged or put in an error: Keyring and Sealer
//     print as [redacted], parse errors name entries by position, and
//     Source names where the keys came from, not the keys.
package keyring
