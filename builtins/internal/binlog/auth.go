package binlog

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
)

const (
	pluginNative      = "mysql_native_password"
	pluginCachingSHA2 = "caching_sha2_password"
	pluginClear       = "mysql_clear_password"
)

// authResponse is the first answer to a plugin's scramble.
func (c *Conn) authResponse(plugin string, scramble []byte) ([]byte, error) {
	switch plugin {
	case pluginNative:
		return nativePassword(c.cfg.Password, scramble), nil
	case pluginCachingSHA2:
		return cachingSHA2(c.cfg.Password, scramble), nil
	case pluginClear:
		if !c.tls {
			return nil, errors.New("the server asks for mysql_clear_password, which would send the password in clear text: connect with TLS (tls=true in the DSN)")
		}
		return append([]byte(c.cfg.Password), 0), nil
	}
	return nil, fmt.Errorf("the server asks for the authentication plugin %q, which this client does not speak: give the replication user mysql_native_password or caching_sha2_password", plugin)
}

// nativePassword is SHA1(password) XOR SHA1(scramble + SHA1(SHA1(password))).
func nativePassword(password string, scramble []byte) []byte {
	if password == "" {
		return nil
	}
	if len(scramble) > 20 {
		scramble = scramble[:20]
	}
	h1 := sha1.Sum([]byte(password))
	h2 := sha1.Sum(h1[:])
	h := sha1.New()
	h.Write(scramble)
	h.Write(h2[:])
	out := h.Sum(nil)
	for i := range out {
		out[i] ^= h1[i]
	}
	return out
}

// cachingSHA2 is SHA256(password) XOR SHA256(SHA256(SHA256(password)) + scramble).
func cachingSHA2(password string, scramble []byte) []byte {
	if password == "" {
		return nil
	}
	if len(scramble) > 20 {
		scramble = scramble[:20]
	}
	h1 := sha256.Sum256([]byte(password))
	h2 := sha256.Sum256(h1[:])
	h := sha256.New()
	h.Write(h2[:])
	h.Write(scramble)
	out := h.Sum(nil)
	for i := range out {
		out[i] ^= h1[i]
	}
	return out
}

// authMoreData handles caching_sha2_password's second round: the fast path
// succeeded (3), or the server wants the password itself (4): in clear
// over TLS, else encrypted with its RSA public key.
func (c *Conn) authMoreData(plugin string, scramble, data []byte) error {
	if plugin != pluginCachingSHA2 || len(data) == 0 {
		return malformed("unexpected authentication data for %s", plugin)
	}
	switch data[0] {
	case 3: // fast authentication succeeded; OK follows
		return nil
	case 4:
	default:
		return malformed("unexpected caching_sha2_password state %d", data[0])
	}
	if c.tls {
		return c.pc.write(append([]byte(c.cfg.Password), 0))
	}
	if err := c.pc.write([]byte{2}); err != nil { // ask for the public key
		return err
	}
	p, err := c.pc.read()
	if err != nil {
		return err
	}
	if len(p) == 0 || p[0] != 1 {
		if len(p) > 0 && p[0] == 0xff {
			return parseError(p)
		}
		return malformed("expected the server's public key")
	}
	block, _ := pem.Decode(p[1:])
	if block == nil {
		return malformed("the server's public key is not PEM")
	}
	key, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return fmt.Errorf("the server's public key: %w", err)
	}
	pub, ok := key.(*rsa.PublicKey)
	if !ok {
		return errors.New("the server's public key is not RSA")
	}
	if len(scramble) == 0 {
		return malformed("no scramble to encrypt the password with")
	}
	plain := append([]byte(c.cfg.Password), 0)
	for i := range plain {
		plain[i] ^= scramble[i%len(scramble)]
	}
	enc, err := rsa.EncryptOAEP(sha1.New(), rand.Reader, pub, plain, nil)
	if err != nil {
		return err
	}
	return c.pc.write(enc)
}
