package quic

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"time"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/transports"
)

// ALPN is the TLS application protocol of qpc over QUIC. A new
// incompatible version of the framing gets a new ALPN.
const ALPN = "qpc/1"

// certificate makes the self-signed certificate that carries the node's
// identity key into TLS. Nothing but the key matters to a qpc peer: no CA
// signs it and its names and dates are never checked. TLS 1.3's
// CertificateVerify is what proves that the peer holds the private key.
func certificate(id *crypto.Identity) (tls.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: id.Address().String()},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, id.PublicKey(), id.PrivateKey())
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: id.PrivateKey()}, nil
}

// peerKey returns the Ed25519 key of the single certificate a peer
// presented. Every error matches transports.ErrHandshake.
func peerKey(rawCerts [][]byte, own ed25519.PublicKey) (ed25519.PublicKey, error) {
	if len(rawCerts) != 1 {
		return nil, fmt.Errorf("%w: peer sent %d certificates, want 1", transports.ErrHandshake, len(rawCerts))
	}
	cert, err := x509.ParseCertificate(rawCerts[0])
	if err != nil {
		return nil, fmt.Errorf("%w: peer certificate: %w", transports.ErrHandshake, err)
	}
	key, ok := cert.PublicKey.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%w: peer certificate key is %T, want Ed25519", transports.ErrHandshake, cert.PublicKey)
	}
	if bytes.Equal(key, own) {
		return nil, fmt.Errorf("%w: %w", transports.ErrHandshake, transports.ErrSelf)
	}
	return key, nil
}

// tlsConfig is used for both roles: as a server it requires a client
// certificate, as a client it skips the CA check (there is no CA), and in
// both it accepts the peer only through verifyPeer.
func tlsConfig(cert tls.Certificate, own ed25519.PublicKey) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		NextProtos:   []string{ALPN},
		// Client role: no CA to check against; VerifyPeerCertificate below
		// is the check. Server role: demand a certificate, check it below.
		InsecureSkipVerify: true,
		ClientAuth:         tls.RequireAnyClientCert,
		VerifyPeerCertificate: func(rawCerts [][]byte, _ [][]*x509.Certificate) error {
			_, err := peerKey(rawCerts, own)
			return err
		},
		// Resumed sessions skip VerifyPeerCertificate; never resume.
		SessionTicketsDisabled: true,
		ServerName:             "qpc",
	}
}
