package idtoken

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/require"
)

func jwkJSON(t *testing.T, k jose.JSONWebKey) json.RawMessage {
	t.Helper()
	b, err := k.MarshalJSON()
	require.NoError(t, err)
	return b
}

func TestParseJWKSKeepsUsableKeys(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	require.NoError(t, err)
	ec, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	require.NoError(t, err)
	edPub, _, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)

	keys := []json.RawMessage{
		jwkJSON(t, jose.JSONWebKey{Key: rsaKey, KeyID: "private", Use: "sig"}), // served by mistake: only its public half is kept
		jwkJSON(t, jose.JSONWebKey{Key: &rsaKey.PublicKey, KeyID: "enc", Use: "enc"}),
		jwkJSON(t, jose.JSONWebKey{Key: &weak.PublicKey, KeyID: "weak"}),
		jwkJSON(t, jose.JSONWebKey{Key: []byte(strings.Repeat("k", 32)), KeyID: "hmac"}),
		json.RawMessage(`{"kty":"XYZ","kid":"unknown-kty"}`),
		jwkJSON(t, jose.JSONWebKey{Key: &ec.PublicKey, KeyID: "ec384", Algorithm: "ES384"}),
		jwkJSON(t, jose.JSONWebKey{Key: edPub, KeyID: "ed"}),
	}
	doc, err := json.Marshal(map[string]any{"keys": keys})
	require.NoError(t, err)
	ks, skipped, err := parseJWKS(doc, time.Now())
	require.NoError(t, err)
	require.Equal(t, 4, skipped)

	kids := []string{}
	for _, k := range ks.keys {
		kids = append(kids, k.kid)
	}
	require.Equal(t, []string{"private", "ec384", "ed"}, kids)
	_, isPublic := ks.keys[0].pub.(*rsa.PublicKey)
	require.True(t, isPublic)

	tests := []struct {
		kid, alg string
		want     []string
	}{
		{"private", "RS256", []string{"private"}},
		{"private", "PS512", []string{"private"}},
		{"private", "ES256", nil},
		{"ec384", "ES384", []string{"ec384"}},
		{"ec384", "ES256", nil}, // wrong curve for the algorithm
		{"ed", "EdDSA", []string{"ed"}},
		{"", "EdDSA", []string{"ed"}},
		{"", "RS256", []string{"private"}},
		{"hmac", "HS256", nil},
		{"nope", "RS256", nil},
	}
	for _, tt := range tests {
		t.Run(tt.kid+"/"+tt.alg, func(t *testing.T) {
			var got []string
			for _, k := range ks.candidates(tt.kid, tt.alg) {
				got = append(got, k.kid)
			}
			require.Equal(t, tt.want, got)
		})
	}
}

func TestParseJWKSRefusesUselessSets(t *testing.T) {
	for _, doc := range []string{`[]`, `{"keys":[]}`, `{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`, `not json`} {
		_, _, err := parseJWKS([]byte(doc), time.Now())
		require.Error(t, err, doc)
	}
}

func TestFetchRefusesBadAnswers(t *testing.T) {
	tests := []struct {
		name      string
		discovery bool
		handler   func(w http.ResponseWriter, r *http.Request, url string)
		want      string
	}{
		{"discovery points to plain http", true, func(w http.ResponseWriter, _ *http.Request, url string) {
			fmt.Fprintf(w, `{"issuer":%q,"jwks_uri":"http://keys.example/jwks"}`, url)
		}, `jwks_uri: "http://keys.example/jwks" must be https://`},
		{"discovery is not JSON", true, func(w http.ResponseWriter, _ *http.Request, _ string) {
			fmt.Fprint(w, "<html>")
		}, "not a discovery document"},
		{"key set too large", false, func(w http.ResponseWriter, _ *http.Request, _ string) {
			fmt.Fprint(w, `{"keys":[`+strings.Repeat(" ", maxDocumentSize)+`]}`)
		}, "answer larger than 1048576 bytes"},
		{"not found", false, func(w http.ResponseWriter, r *http.Request, _ string) {
			http.NotFound(w, r)
		}, "404 Not Found"},
		{"no usable key", false, func(w http.ResponseWriter, _ *http.Request, _ string) {
			fmt.Fprint(w, `{"keys":[]}`)
		}, "key set has no usable signing key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var url string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { tt.handler(w, r, url) }))
			t.Cleanup(srv.Close)
			url = srv.URL
			cfg := Issuer{Name: "x", IssuerURL: url, Audiences: []string{"a"},
				Rules: []Rule{{Subject: "s", Claims: map[string]string{"sub": "*"}}}}
			if tt.discovery {
				cfg.Discovery = true
			} else {
				cfg.JWKSURL = url + "/keys"
			}
			v, err := NewVerifier([]Issuer{cfg}, Options{})
			require.NoError(t, err)
			t.Cleanup(v.Close)
			ks, rr := v.issuers[0].keys.refresh(context.Background())
			require.Nil(t, ks)
			require.ErrorContains(t, rr.err, tt.want)
		})
	}
}
