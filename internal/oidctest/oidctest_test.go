package oidctest

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/stretchr/testify/require"
)

func get(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	t.Cleanup(func() { _ = resp.Body.Close() })
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, body
}

func TestServesDiscoveryAndKeys(t *testing.T) {
	s := New(t)
	require.True(t, strings.HasPrefix(s.URL, "http://127.0.0.1:"))

	code, body := get(t, s.URL+DiscoveryPath)
	require.Equal(t, http.StatusOK, code)
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	require.NoError(t, json.Unmarshal(body, &doc))
	require.Equal(t, s.URL, doc.Issuer)
	require.Equal(t, s.JWKSURL(), doc.JWKSURI)

	code, body = get(t, doc.JWKSURI)
	require.Equal(t, http.StatusOK, code)
	var set jose.JSONWebKeySet
	require.NoError(t, json.Unmarshal(body, &set))
	require.Len(t, set.Keys, 2)
	for _, k := range set.Keys {
		require.True(t, k.IsPublic(), "only public keys are served")
	}
	require.EqualValues(t, 1, s.JWKSFetches())
	require.EqualValues(t, 1, s.DiscoveryFetches())

	s.SetDown(true)
	code, _ = get(t, doc.JWKSURI)
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.EqualValues(t, 2, s.JWKSFetches(), "failed fetches count too")
}

func TestSignVerifiesWithTheJWKS(t *testing.T) {
	s := New(t)
	tests := []struct {
		name   string
		opts   []SignOption
		alg    string
		verify bool
	}{
		{"RS256", nil, "RS256", true},
		{"ES256", []SignOption{WithAlg("ES256")}, "ES256", true},
		{"PS256", []SignOption{WithAlg("PS256")}, "PS256", true},
		{"alg none", []SignOption{AlgNone()}, "none", false},
		{"HS256 with the public key", []SignOption{HS256WithPublicKey()}, "HS256", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := s.Sign(s.Claims("aud", time.Minute, map[string]any{"sub": "x", "nbf": nil}), tt.opts...)
			var set jose.JSONWebKeySet
			require.NoError(t, json.Unmarshal(s.JWKSJSON(), &set))
			parsed, err := jwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.PS256, jose.HS256})
			if !tt.verify {
				if err == nil {
					require.Error(t, parsed.Claims(&set, &jwt.Claims{}), "never verifies with the published keys")
				}
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.alg, parsed.Headers[0].Algorithm)
			var c jwt.Claims
			require.NoError(t, parsed.Claims(&set, &c))
			require.Equal(t, s.URL, c.Issuer)
			require.Equal(t, "x", c.Subject)
			require.Nil(t, c.NotBefore)
		})
	}
}

func TestRotate(t *testing.T) {
	s := New(t)
	old := s.KID("RS256")
	s.Rotate(false)
	require.NotEqual(t, old, s.KID("RS256"))
	require.Contains(t, string(s.JWKSJSON()), old)
	s.Rotate(true)
	require.NotContains(t, string(s.JWKSJSON()), old)
	// A dropped key can still sign, for revocation tests.
	tok := s.Sign(map[string]any{"sub": "x"}, WithSigningKey(old))
	parsed, err := jwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.RS256})
	require.NoError(t, err)
	require.Equal(t, old, parsed.Headers[0].KeyID)
}
