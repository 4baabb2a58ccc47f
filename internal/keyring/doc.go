// Package keyring owns Nodus's master key and the encryption of values at
// rest: secrets kept in a database (the SMTP password today, the vault
// later) are sealed with keys derived from it, so a copy of a database
// alone reveals none of them.
//
// Invariants:
//
//   - The master key is 32 random bytes. It comes from NODUS_MASTER_KEY
//     (base64) or from the file master.key in the data directory, which is
//     created once, atomically and with mode 0600, and never overwritten. A
//     key file readable by anyone but its owner is refused.
//   - The master key itself never encrypts anything. Each purpose
//     ("settings", later "vault") gets its own AES-256 key, derived from the
//     master key with HKDF-SHA-256, so keys for different purposes are
//     independent and a value sealed for one purpose does not open for
//     another.
//   - A sealed value is AES-256-GCM with a random 96-bit nonce:
//     key id (1 byte) | nonce (12 bytes) | ciphertext and tag (16 bytes).
//     The key id names the master key it was sealed under, so a later
//     rotation can keep opening old values while sealing new ones with a
//     new key. Additional data names what the value is and whom it belongs
//     to, so a sealed value copied into another row does not open there.
//   - Open fails, and returns no plaintext, for any change to the sealed
//     bytes, other additional data, another key or a truncated value.
//   - Key material is never logged: Keyring and Sealer print as
//     [redacted], and Source names where the key came from, not the key.
package keyring
