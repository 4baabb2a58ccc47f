package vault

import (
	"container/list"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"strconv"
	"sync"
)

// A value's ciphertext is
//
//	format (1 byte, 1) | data key version (4 bytes, big endian) | nonce (12) | ciphertext and GCM tag (16)
//
// sealed with AES-256-GCM under the tenant's data key of that version.
// The additional data is the header itself and the secret's identity
// (tenant, secret id, environment, path, key, version), so the bytes open
// only as the version of the secret they were written for.
const (
	valueFormat  byte = 1
	valueHeader       = 1 + 4
	valueNonce        = 12
	valueTag          = 16
	dataKeyBytes      = 32
)

// errCiphertext is the one error for a value that does not open: changed
// bytes, bytes copied from another secret, version or tenant, or another
// key. It never comes with plaintext.
var errCiphertext = errors.New("vault: the stored value does not decrypt: it was altered or belongs to another secret, version or tenant")

// checkPlaintext is what the check value holds, sealed with the master key.
const checkPlaintext = "nodus vault check value v1"

// checkAD and dataKeyAD are the additional data of the master-key-sealed
// values: the check value, and each data key, bound to its tenant and
// version so a wrapped key copied to another row does not open.
const checkAD = "vault|check"

func dataKeyAD(tenantID string, version int) []byte {
	return []byte("vault|data-key|" + tenantID + "|" + strconv.Itoa(version))
}

// valueAD is the additional data of one version's ciphertext.
func valueAD(header []byte, tenantID, secretID string, loc Location, version int) []byte {
	b := make([]byte, 0, 64+len(tenantID)+len(secretID)+len(loc.Path)+len(loc.Key))
	b = append(b, "nodus/vault/value\x00"...)
	b = append(b, header...)
	for _, s := range []string{tenantID, secretID, loc.Environment, loc.Path, loc.Key} {
		b = append(b, 0)
		b = append(b, s...)
	}
	b = append(b, 0)
	return strconv.AppendInt(b, int64(version), 10)
}

// newDataKeyAEAD returns AES-256-GCM over a raw data key.
func newDataKeyAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != dataKeyBytes {
		return nil, errors.New("vault: a data key is 32 bytes")
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// sealValue encrypts plaintext for one version of one secret.
func sealValue(aead cipher.AEAD, dataKeyVersion int, plaintext []byte, tenantID, secretID string, loc Location, version int) []byte {
	out := make([]byte, valueHeader+valueNonce, valueHeader+valueNonce+len(plaintext)+valueTag)
	out[0] = valueFormat
	binary.BigEndian.PutUint32(out[1:valueHeader], uint32(dataKeyVersion))
	nonce := out[valueHeader : valueHeader+valueNonce]
	_, _ = rand.Read(nonce) // crypto/rand.Read never fails
	return aead.Seal(out, nonce, plaintext, valueAD(out[:valueHeader], tenantID, secretID, loc, version))
}

// valueDataKeyVersion reads the data key version from a ciphertext's
// header; ok is false for anything that is not a ciphertext.
func valueDataKeyVersion(ct []byte) (int, bool) {
	if len(ct) < valueHeader+valueNonce+valueTag || ct[0] != valueFormat {
		return 0, false
	}
	v := binary.BigEndian.Uint32(ct[1:valueHeader])
	if v == 0 || v > 1<<31-1 {
		return 0, false
	}
	return int(v), true
}

// openValue decrypts a version's ciphertext. Any failure is errCiphertext,
// never plaintext.
func openValue(aead cipher.AEAD, ct []byte, tenantID, secretID string, loc Location, version int) ([]byte, error) {
	if _, ok := valueDataKeyVersion(ct); !ok {
		return nil, errCiphertext
	}
	nonce := ct[valueHeader : valueHeader+valueNonce]
	plain, err := aead.Open(nil, nonce, ct[valueHeader+valueNonce:], valueAD(ct[:valueHeader], tenantID, secretID, loc, version))
	if err != nil {
		return nil, errCiphertext
	}
	if plain == nil {
		plain = []byte{}
	}
	return plain, nil
}

// keyCache keeps unwrapped data keys (as ready AEADs) by tenant and
// version, least recently used out first, so a read through a handle does
// not unwrap a key each time. Entries never go stale: a data key version
// never changes, and rewrapping it under another master key leaves the key
// itself as it was.
type keyCache struct {
	mu    sync.Mutex
	max   int
	order *list.List // front: most recently used
	items map[cacheKey]*list.Element
}

type cacheKey struct {
	tenantID string
	version  int
}

type cacheEntry struct {
	key  cacheKey
	aead cipher.AEAD
}

func newKeyCache(max int) *keyCache {
	return &keyCache{max: max, order: list.New(), items: map[cacheKey]*list.Element{}}
}

func (c *keyCache) get(tenantID string, version int) cipher.AEAD {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.items[cacheKey{tenantID, version}]
	if !ok {
		return nil
	}
	c.order.MoveToFront(e)
	return e.Value.(*cacheEntry).aead
}

func (c *keyCache) put(tenantID string, version int, aead cipher.AEAD) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := cacheKey{tenantID, version}
	if e, ok := c.items[k]; ok {
		c.order.MoveToFront(e)
		return
	}
	c.items[k] = c.order.PushFront(&cacheEntry{key: k, aead: aead})
	for c.order.Len() > c.max {
		last := c.order.Back()
		c.order.Remove(last)
		delete(c.items, last.Value.(*cacheEntry).key)
	}
}

// drop forgets every key of a tenant.
func (c *keyCache) drop(tenantID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, e := range c.items {
		if k.tenantID == tenantID {
			c.order.Remove(e)
			delete(c.items, k)
		}
	}
}

func (c *keyCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
